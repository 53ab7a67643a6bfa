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
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from markdown_it import MarkdownIt
from markupsafe import Markup, escape

from tidings.domain.content import (
    ActionBlock,
    Block,
    DividerBlock,
    HtmlBlock,
    ImageBlock,
    QuoteBlock,
    TextBlock,
)
from tidings.domain.errors import key_path
from tidings.render.errors import RenderError
from tidings.render.templating import evaluate_condition, render_template
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

    def as_block(self) -> dict[str, str]:
        block = {"type": self.kind, "text": self.text}
        if self.href is not None:
            block["href"] = self.href
        return block


def render_block(block: Block, variables: Mapping[str, Any]) -> Fragment | None:
    """``block`` rendered with ``variables``; None when its ``if`` is false."""
    if block.condition is not None and not evaluate_condition(
        block.condition, variables, path=key_path(block.path, "if")
    ):
        return None
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
    tag = {"h1": "h1", "h2": "h2"}.get(block.text_style, "p")
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
    if block.style == "link":
        html = (
            f'<p class="t-action"{_style(text_align=_align(block.align))}>'
            f'<a class="t-link" href="{escape(href)}" target="_blank">{escape(label)}</a></p>\n'
        )
        return Fragment("action", html, label, href)
    # A "bulletproof" button: the colour is on the table cell, so clients that ignore
    # padding or background on links (Outlook) still show a button.
    color = block.background_color
    width = ' width="100%"' if block.align == "full" else ""
    bgcolor = f' bgcolor="{escape(color)}"' if color else ""
    html = (
        f'<table role="presentation" class="t-button-wrap" align="{align}"{width}'
        ' border="0" cellpadding="0" cellspacing="0"><tr>'
        f'<td class="t-button" align="center"{bgcolor}'
        f"{_style(background_color=color)}>"
        f'<a class="t-button-link" href="{escape(href)}" target="_blank"'
        f"{_style(background_color=color, border_color=color)}>{escape(label)}</a>"
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
    img = (
        f'<img class="t-image" src="{escape(src)}" alt="{escape(alt)}"{width_attr}'
        f"{_style(width=css_width)}>"
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
    style = _style(text_align=_align(block.align), border_left_color=block.border_color)
    return Fragment("quote", f'<blockquote class="t-quote"{style}>{inner}</blockquote>\n', text)
