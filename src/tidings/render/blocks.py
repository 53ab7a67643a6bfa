"""One Elemental block to an HTML fragment (for the email body) and its plain text.

Template strings of text-like fields (text, action labels, quotes, URLs) are rendered
*without* autoescaping and then escaped as a whole: the sender wrote text, so a literal
``<b>`` in it is text too, and a variable's ``<script>`` becomes ``&lt;script&gt;``
exactly once. Only ``html`` blocks are HTML templates (autoescaped variables, the
sender's markup kept). Markdown text goes through markdown-it with raw HTML disabled,
which escapes anything HTML-like and refuses ``javascript:`` links.

Styling is by class (``t-…``) and a stylesheet in the layout, which css-inline turns into
inline styles; the few per-block values (alignment, colours the content chose) are
written inline here because they differ per block.

:func:`render_blocks` walks a document with Elemental's control flow: ``loop`` renders a
node once per item of an array (``$.item``, ``$.index``; the iterations count against the
render's loop budget), ``if`` is evaluated per rendering (:mod:`tidings.render.conditions`),
``ref`` records ``refs.NAME`` (the node's fields and ``visible``) for later conditions and
templates, ``group`` renders its children and ``columns`` its columns side by side. The
first visible ``meta`` title is the subject.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from markdown_it import MarkdownIt
from markupsafe import Markup, escape

from tidings.domain.content import (
    ActionBlock,
    Block,
    ColumnsBlock,
    DividerBlock,
    GroupBlock,
    HtmlBlock,
    ImageBlock,
    MetaBlock,
    QuoteBlock,
    TextBlock,
)
from tidings.domain.errors import key_path
from tidings.render.conditions import UNDEFINED, evaluate_condition, lookup
from tidings.render.errors import RenderError
from tidings.render.templating import render_template, spend_loop
from tidings.render.text import html_to_text

_LINK_SCHEMES = frozenset({"http", "https", "mailto", "tel"})
_IMAGE_SCHEMES = frozenset({"http", "https", "cid"})
# Mailgun fills these in at send time (``%unsubscribe_url%``, ``%recipient.link%``).
_MAILGUN_VARIABLE = re.compile(r"%[\w.-]+%")
# Browsers drop these from URLs, so they must not hide a scheme from the check.
_URL_JUNK = re.compile(r"[\x00-\x20\x7f]")
_PARAGRAPH_BREAK = re.compile(r"\n[ \t]*\n\s*")

_markdown = MarkdownIt("commonmark", {"html": False}).enable("strikethrough")


@dataclass(frozen=True, slots=True)
class Fragment:
    """A rendered block: its HTML, and its entry in Courier's output ``blocks``."""

    kind: str
    html: str
    text: str
    href: str | None = None
    children: tuple[Fragment, ...] = ()

    def as_block(self) -> dict[str, str]:
        block = {"type": self.kind, "text": self.text}
        if self.href is not None:
            block["href"] = self.href
        return block

    def as_blocks(self) -> list[dict[str, str]]:
        """Courier's output entries: a container lists its children's."""
        if self.children:
            return [entry for child in self.children for entry in child.as_blocks()]
        return [self.as_block()]


@dataclass(slots=True)
class RenderedBlocks:
    """The body of an email: fragments in order, and the subject a ``meta`` gave."""

    fragments: list[Fragment]
    subject: str | None = None
    subject_path: str | None = None

    @property
    def html(self) -> str:
        return "".join(fragment.html for fragment in self.fragments)


def render_blocks(blocks: Sequence[Block], variables: Mapping[str, Any]) -> RenderedBlocks:
    """``blocks`` rendered with ``variables`` (see :meth:`RenderContext.variables`)."""
    walker = _Walker(variables)
    walker.nodes(blocks, walker.scope, walker.out.fragments)
    return walker.out


def render_block(block: Block, variables: Mapping[str, Any]) -> Fragment | None:
    """One leaf ``block`` rendered with ``variables``; None when its ``if`` is false."""
    rendered = render_blocks([block], variables)
    return rendered.fragments[0] if rendered.fragments else None


class _Walker:
    def __init__(self, variables: Mapping[str, Any]) -> None:
        self.refs: dict[str, Any] = {}
        self.scope: dict[str, Any] = dict(variables)
        self.scope["refs"] = self.refs
        self.out = RenderedBlocks([])

    def nodes(self, blocks: Sequence[Block], scope: Mapping[str, Any], out: list[Fragment]) -> None:
        for block in blocks:
            if block.loop is None:
                self.one(block, scope, out)
                continue
            loop_path = key_path(block.path, "loop")
            items = _loop_items(block.loop, scope, loop_path)
            spend_loop(len(items), loop_path)
            for index, item in enumerate(items):
                inner = dict(scope)
                inner["$"] = {"item": item, "index": index}
                self.one(block, inner, out)

    def one(self, block: Block, scope: Mapping[str, Any], out: list[Fragment]) -> None:
        visible = block.condition is None or evaluate_condition(
            block.condition, scope, path=key_path(block.path, "if")
        )
        if block.ref is not None:
            self.refs[block.ref] = {**_properties(block), "visible": visible}
        if not visible:
            return
        match block:
            case MetaBlock():
                if self.out.subject is None and block.title is not None:
                    title_path = key_path(block.path, "title")
                    self.out.subject = _text_of(block.title, scope, title_path)
                    self.out.subject_path = title_path
            case GroupBlock():
                self.nodes(block.elements, scope, out)
            case ColumnsBlock():
                self.columns(block, scope, out)
            case _:
                out.append(_leaf(block, scope))

    def columns(self, block: ColumnsBlock, scope: Mapping[str, Any], out: list[Fragment]) -> None:
        rendered: list[tuple[str | None, list[Fragment]]] = []
        for column in block.columns:
            if column.condition is not None and not evaluate_condition(
                column.condition, scope, path=key_path(column.path, "if")
            ):
                continue
            inner: list[Fragment] = []
            self.nodes(column.elements, scope, inner)
            rendered.append((column.width, inner))
        if not rendered:
            return
        default_width = f"{100 // len(rendered)}%"
        cells = "".join(
            f'<td class="t-column" width="{escape(width or default_width)}"'
            f"{_style(width=width or default_width)}>" + "".join(f.html for f in inner) + "</td>"
            for width, inner in rendered
        )
        children = tuple(f for _, inner in rendered for f in inner)
        html = (
            '<table role="presentation" class="t-columns" width="100%" border="0"'
            f' cellpadding="0" cellspacing="0"><tr>{cells}</tr></table>\n'
        )
        text = "\n\n".join(f.text for f in children if f.text)
        out.append(Fragment("columns", html, text, children=children))


def _loop_items(loop: str, scope: Mapping[str, Any], path: str) -> list[Any]:
    root, _, rest = loop.partition(".")
    keys: list[str | int] = []
    for part in rest.replace("[", ".").replace("]", "").split(".") if rest else []:
        if part:
            keys.append(int(part) if part.isdigit() else part)
    value = lookup(scope.get(root, UNDEFINED), tuple(keys))
    if value is UNDEFINED or value is None:
        return []
    if not isinstance(value, list):
        kind = type(value).__name__
        raise RenderError(path, f"{loop!r} must name an array, but it is a {kind}")
    return value


def _properties(block: Block) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name in getattr(block, "__slots__", ()):
        if name in ("path", "condition", "loop", "ref"):
            continue
        value = getattr(block, name, None)
        if isinstance(value, str | bool | int | float) or value is None:
            out[name] = value
    return out


def _leaf(block: Block, variables: Mapping[str, Any]) -> Fragment:
    match block:
        case TextBlock():
            return _text(block, variables)
        case ActionBlock():
            return _action(block, variables)
        case ImageBlock():
            return _image(block, variables)
        case DividerBlock():
            return _divider(block)
        case QuoteBlock():
            return _quote(block, variables)
        case HtmlBlock():
            html = render_template(
                block.content, variables, html=True, path=key_path(block.path, "content")
            )
            return Fragment("html", html, html_to_text(html).strip())
    raise AssertionError(f"not a leaf block: {block!r}")


def _text_of(source: str, variables: Mapping[str, Any], path: str) -> str:
    return render_template(source, variables, html=False, path=path)


def _paragraphs(text: str) -> list[Markup]:
    """Blank lines separate paragraphs; a single newline is a line break."""
    return [
        Markup("<br>\n").join(escape(line) for line in part.split("\n"))
        for part in _PARAGRAPH_BREAK.split(text.strip())
        if part.strip()
    ]


def _style(**declarations: str | None) -> str:
    parts = [f"{name.replace('_', '-')}:{value}" for name, value in declarations.items() if value]
    return f' style="{escape(";".join(parts))}"' if parts else ""


def _align(align: str) -> str | None:
    return None if align == "left" else ("justify" if align == "full" else align)


def _text(block: TextBlock, variables: Mapping[str, Any]) -> Fragment:
    text = _text_of(block.content, variables, key_path(block.path, "content"))
    style = _style(
        text_align=_align(block.align),
        color=block.color,
        font_size=block.font_size,
        line_height=block.line_height,
        font_weight="bold" if block.bold else None,
        font_style="italic" if block.italic else None,
        text_decoration=" ".join(
            d
            for d, on in (("underline", block.underline), ("line-through", block.strikethrough))
            if on
        ),
    )
    if block.markdown:
        inner = _markdown.render(text)
        return Fragment("text", f'<div class="t-text"{style}>{inner}</div>\n', text)
    tag = {"h1": "h1", "h2": "h2", "h3": "h3"}.get(block.text_style, "p")
    html = "".join(
        f'<{tag} class="t-{block.text_style}"{style}>{paragraph}</{tag}>\n'
        for paragraph in _paragraphs(text)
    )
    return Fragment("text", html, text.strip())


def checked_url(url: str, schemes: frozenset[str], path: str) -> str:
    """``url`` if it is absolute with one of ``schemes`` (or a Mailgun variable)."""
    cleaned = _URL_JUNK.sub("", url)
    if _MAILGUN_VARIABLE.fullmatch(cleaned):
        return cleaned
    scheme = urlsplit(cleaned).scheme.lower()
    if scheme not in schemes:
        shown = cleaned if len(cleaned) <= 80 else cleaned[:77] + "..."
        raise RenderError(
            path,
            f"must be an absolute {', '.join(sorted(schemes))} URL, got {shown!r}",
        )
    return cleaned


def _action(block: ActionBlock, variables: Mapping[str, Any]) -> Fragment:
    label = _text_of(block.content, variables, key_path(block.path, "content")).strip()
    href_path = key_path(block.path, "href")
    href = checked_url(_text_of(block.href, variables, href_path), _LINK_SCHEMES, href_path)
    align = "center" if block.align == "full" else block.align
    action_id = f' data-action-id="{escape(block.action_id)}"' if block.action_id else ""
    if block.style == "link":
        html = (
            f'<p class="t-action"{_style(text_align=_align(block.align))}>'
            f'<a class="t-link" href="{escape(href)}" target="_blank"{action_id}>'
            f"{escape(label)}</a></p>\n"
        )
        return Fragment("action", html, label, href)
    # A "bulletproof" button: the colour is on the table cell, so clients that ignore
    # padding or background on links (Outlook) still show a button.
    color = block.background_color
    secondary = block.style == "secondary"
    width = ' width="100%"' if block.align == "full" else ""
    bgcolor = f' bgcolor="{escape(color)}"' if color and not secondary else ""
    variant = f" t-button-{block.style}" if block.style != "button" else ""
    cell_style = _style(
        background_color=None if secondary else color, border_radius=block.border_radius
    )
    link_style = _style(
        background_color=None if secondary else color,
        color=color if secondary else None,
        border_color=color,
        border_width=block.border_size,
        border_radius=block.border_radius,
        font_size=block.font_size,
        padding=block.padding,
    )
    html = (
        f'<table role="presentation" class="t-button-wrap{variant}" align="{align}"{width}'
        ' border="0" cellpadding="0" cellspacing="0"><tr>'
        f'<td class="t-button" align="center"{bgcolor}{cell_style}>'
        f'<a class="t-button-link" href="{escape(href)}" target="_blank"{action_id}'
        f"{link_style}>{escape(label)}</a>"
        "</td></tr></table>\n"
    )
    return Fragment("action", html, label, href)


def _image(block: ImageBlock, variables: Mapping[str, Any]) -> Fragment:
    src_path = key_path(block.path, "src")
    src = checked_url(_text_of(block.src, variables, src_path), _IMAGE_SCHEMES, src_path)
    alt = ""
    if block.alt_text is not None:
        alt = _text_of(block.alt_text, variables, key_path(block.path, "alt_text"))
    width_attr, css_width = "", None
    if block.width:
        if block.width.endswith("%"):
            css_width = block.width
        else:
            number = block.width.removesuffix("px")
            width_attr, css_width = f' width="{number}"', f"{number}px"
    border = (
        f"{block.border_size} solid {block.border_color or '#d0d7de'}"
        if block.border_size
        else None
    )
    img = (
        f'<img class="t-image" src="{escape(src)}" alt="{escape(alt)}"{width_attr}'
        f"{_style(width=css_width, border=border, padding=block.padding)}>"
    )
    href = None
    if block.href is not None:
        href_path = key_path(block.path, "href")
        href = checked_url(_text_of(block.href, variables, href_path), _LINK_SCHEMES, href_path)
        img = f'<a href="{escape(href)}" target="_blank">{img}</a>'
    align = "center" if block.align == "full" else block.align
    html = f'<div class="t-image-wrap"{_style(text_align=align)}>{img}</div>\n'
    return Fragment("image", html, alt, href)


def _divider(block: DividerBlock) -> Fragment:
    html = f'<hr class="t-divider"{_style(border_top_color=block.color)}>\n'
    return Fragment("divider", html, "")


def _quote(block: QuoteBlock, variables: Mapping[str, Any]) -> Fragment:
    text = _text_of(block.content, variables, key_path(block.path, "content"))
    inner = "".join(f"<p>{paragraph}</p>" for paragraph in _paragraphs(text))
    style = _style(
        text_align=_align(block.align),
        border_left_color=block.border_color,
        font_size=block.font_size,
        line_height=block.line_height,
    )
    classes = "t-quote" if block.text_style == "text" else f"t-quote t-{block.text_style}"
    html = f'<blockquote class="{classes}"{style}>{inner}</blockquote>\n'
    return Fragment("quote", html, text)
