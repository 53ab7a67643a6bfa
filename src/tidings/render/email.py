"""Content to an email: subject, responsive HTML with inlined CSS, and a text part.

Blocks are rendered one by one (:mod:`tidings.render.blocks`), placed in a table-based
layout no wider than 600px (``templates/email.html``: the layout most clients, Outlook
included, get right), and the layout's stylesheet is inlined with css-inline so that
clients that drop ``<style>`` still show it; media queries stay in a ``<style>`` for
the clients that honour them. The text part is made from the blocks' HTML (not the
layout) by :func:`~tidings.render.text.html_to_text`.

A channel element's ``raw`` email is the sender's own: its HTML is templated and sent as
it is, without layout or inlining. Overrides (``channels.email.override``) are applied
by :func:`apply_overrides`; when an override replaces the HTML but gives no text, the
text part is made again from the new HTML so the two parts say the same thing.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import asdict, dataclass, field
from importlib import resources
from typing import Any

import css_inline
from jinja2 import Environment
from markupsafe import Markup

from tidings.domain.content import ColumnsBlock, Content, HtmlBlock, RawEmail, walk
from tidings.domain.errors import key_path
from tidings.render.blocks import render_blocks
from tidings.render.branding import DEFAULT_WIDTH, BrandLook, layout_values
from tidings.render.conditions import check_condition
from tidings.render.templating import (
    RenderContext,
    check_template,
    new_budget,
    render_template,
    reset_budget,
    reset_partials,
    use_partials,
)
from tidings.render.text import html_to_text

_WHITESPACE = re.compile(r"\s+")

# The layout is Tidings' own, so it needs no sandbox; autoescape guards the subject.
_layout = Environment(autoescape=True, keep_trailing_newline=True).from_string(
    resources.files("tidings.render").joinpath("templates/email.html").read_text("utf-8")
)
# Remote stylesheets are never fetched: a sender's <link> must not make the dispatcher
# open connections on their behalf.
_inliner = css_inline.CSSInliner(
    keep_at_rules=True, load_remote_stylesheets=False, keep_link_tags=True
)


@dataclass(frozen=True, slots=True)
class RenderedEmail:
    """A rendered email, as stored for ``/messages/{id}/output`` and handed to a provider.

    ``blocks`` follows Courier's output: ``[{"type": "text", "text": "…"}, …]`` (actions
    and linked images add ``href``).
    """

    subject: str
    html: str
    text: str
    blocks: list[dict[str, str]] = field(default_factory=list)
    # The ``locales`` key that was applied (None: the default content).
    locale: str | None = None
    # A stored template's email headers, rendered: from, reply_to, cc, bcc.
    headers: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready; ``RenderedEmail(**d)`` makes it again."""
        return asdict(self)


def clean_subject(subject: str) -> str:
    """One line: a subject is a header, and a newline in a header is never wanted."""
    return _WHITESPACE.sub(" ", subject).strip()


def render_email(
    content: Content,
    context: RenderContext,
    *,
    preheader: str | None = None,
    lang: str = "en",
    brand: BrandLook | None = None,
) -> RenderedEmail:
    """Render ``content`` for one recipient. Raises ``RenderError`` naming the field.

    ``brand`` (see :mod:`tidings.render.branding`) puts its logo, colours and footer in the
    layout; a ``raw`` email is the sender's own and is left as it is.
    """
    variables = context.variables()
    token = new_budget()
    # A brand's snippets are the partials its templates include: {{> footer_note}}.
    snippets = use_partials(brand.snippets if brand is not None else {})
    try:
        subject = ""
        if content.title is not None:
            subject = clean_subject(
                render_template(content.title, variables, html=False, path=content.title_path)
            )
        if content.raw is not None:
            return _render_raw(content.raw, subject, context)

        rendered = render_blocks(content.blocks, variables)
    finally:
        reset_partials(snippets)
        reset_budget(token)
    if rendered.subject is not None:
        subject = clean_subject(rendered.subject)
    body = rendered.html
    branded = layout_values(brand) if brand is not None else {}
    document = _layout.render(
        subject=subject,
        preheader=preheader,
        lang=lang,
        body=Markup(body),
        width=brand.width if brand is not None else DEFAULT_WIDTH,
        **branded,
    )
    # The brand's footer says who sent it and how to reach them: the text part needs it too.
    text_source = body + brand.footer_for_text() if brand is not None else body
    return RenderedEmail(
        subject=subject,
        html=_inliner.inline(document),
        text=html_to_text(text_source),
        blocks=[entry for fragment in rendered.fragments for entry in fragment.as_blocks()],
        locale=content.locale,
    )


def _render_raw(raw: RawEmail, subject: str, context: RenderContext) -> RenderedEmail:
    variables = context.variables()
    html = ""
    if raw.html is not None:
        html = render_template(raw.html, variables, html=True, path=key_path(raw.path, "html"))
    if raw.text is not None:
        text = render_template(raw.text, variables, html=False, path=key_path(raw.path, "text"))
    else:
        text = html_to_text(html)
    return RenderedEmail(subject=subject, html=html, text=text, blocks=[], locale=None)


def apply_overrides(
    rendered: RenderedEmail,
    context: RenderContext,
    *,
    subject: str | None = None,
    html: str | None = None,
    text: str | None = None,
    path: str = "message.channels.email.override",
) -> RenderedEmail:
    """``rendered`` with override templates (rendered in the same sandbox) in place."""
    variables = context.variables()
    new_subject, new_html, new_text = rendered.subject, rendered.html, rendered.text
    if subject is not None:
        new_subject = clean_subject(
            render_template(subject, variables, html=False, path=key_path(path, "subject"))
        )
    if html is not None:
        new_html = render_template(html, variables, html=True, path=key_path(path, "html"))
    if text is not None:
        new_text = render_template(text, variables, html=False, path=key_path(path, "text"))
    elif html is not None:
        new_text = html_to_text(new_html)
    return dataclasses.replace(rendered, subject=new_subject, html=new_html, text=new_text)


def check_content(content: Content) -> None:
    """Raise ``RenderError`` naming the field if a template of ``content`` cannot compile.

    For the API: a syntax error is the sender's to fix, so it is answered at once
    rather than found by the dispatcher later.
    """
    if content.title is not None:
        check_template(content.title, html=False, path=content.title_path)
    if content.raw is not None:
        for name, source, html in (
            ("html", content.raw.html, True),
            ("text", content.raw.text, False),
        ):
            if source is not None:
                check_template(source, html=html, path=key_path(content.raw.path, name))
    for block in walk(content.blocks):
        for name in ("content", "href", "src", "alt_text", "title"):
            source = getattr(block, name, None)
            if isinstance(source, str):
                html = isinstance(block, HtmlBlock) and name == "content"
                check_template(source, html=html, path=key_path(block.path, name))
        conditions = [(block.condition, block.path)]
        if isinstance(block, ColumnsBlock):
            conditions += [(column.condition, column.path) for column in block.columns]
        for condition, path in conditions:
            if condition is not None:
                check_condition(condition, path=key_path(path, "if"))
