"""A stored message's payload to its email: content or template, locale, brand, UTM, headers.

The payload is what ``/send`` accepted, with the stored template version and brand it
copied at accept time (so a later edit changes nothing already accepted). This is the
function the render pool runs, for the dispatcher and for previews alike.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from tidings.domain.content import parse_content
from tidings.render.branding import brand_look
from tidings.render.email import RenderedEmail, apply_overrides, clean_subject, render_email
from tidings.render.links import add_utm
from tidings.render.templating import RenderContext, render_template


def content_path(payload: dict[str, Any]) -> str:
    """Where the message's content came from, for errors: the request or a template."""
    template = payload.get("template")
    if isinstance(template, dict):
        return f"template {template.get('id')} {template.get('version')}: content"
    return "message.content"


def render_message(payload: dict[str, Any], profile: dict[str, Any]) -> RenderedEmail:
    """Render a stored message's payload (what /send accepted, with the template and brand
    it copied) for a recipient whose merged profile is ``profile``."""
    locale = profile.get("locale")
    content = parse_content(
        payload.get("content"),
        content_path(payload),
        locale=locale if isinstance(locale, str) else None,
    )
    context = RenderContext(data=payload.get("data") or {}, profile=profile)
    brand = payload.get("brand")
    look = brand_look(brand, default=payload.get("brand_default")) if brand else None
    lang = locale.split("-")[0].split("_")[0] if isinstance(locale, str) and locale else "en"
    rendered = render_email(content, context, brand=look, lang=lang)
    override = payload.get("email_override") or {}
    if any(override.get(k) is not None for k in ("subject", "html", "text")):
        rendered = apply_overrides(
            rendered,
            context,
            subject=override.get("subject"),
            html=override.get("html"),
            text=override.get("text"),
        )
    html, text = add_utm(rendered.html, rendered.text, payload.get("utm") or {})
    headers = _template_headers(payload.get("template_email"), context)
    return dataclasses.replace(rendered, html=html, text=text, headers=headers)


def render_facts(payload: dict[str, Any], rendered: RenderedEmail) -> dict[str, Any]:
    """What a RENDERED history entry says about where the email came from: the template
    and version, the locale whose content was used ("default" when none matched) and
    the brand."""
    facts: dict[str, Any] = {}
    template = payload.get("template")
    if isinstance(template, dict):
        facts["template"] = template.get("id")
        facts["template_version"] = template.get("version")
        if template.get("alias"):
            facts["template_alias"] = template.get("alias")
    facts["locale"] = rendered.locale or "default"
    brand = payload.get("brand")
    if isinstance(brand, dict) and brand.get("id"):
        facts["brand"] = brand["id"]
    return facts


def _template_headers(headers: Any, context: RenderContext) -> dict[str, Any]:
    """A template's ``email`` headers with their variables filled (``{{data.cc}}``)."""
    if not isinstance(headers, dict):
        return {}
    variables = context.variables()
    out: dict[str, Any] = {}
    for name in ("from", "reply_to"):
        value = headers.get(name)
        if isinstance(value, str) and value:
            path = f"template.email.{name}"
            out[name] = clean_subject(render_template(value, variables, html=False, path=path))
    for name in ("cc", "bcc"):
        values = headers.get(name)
        if isinstance(values, list):
            rendered = [
                clean_subject(
                    render_template(v, variables, html=False, path=f"template.email.{name}[{i}]")
                )
                for i, v in enumerate(values)
                if isinstance(v, str)
            ]
            out[name] = [r for r in rendered if r]
    return out
