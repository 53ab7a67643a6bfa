"""``POST /tidings/templates/{id}/render``: a template version rendered for a user, unsent.

Courier's own ``previews`` resource is about push devices; this is Tidings' route for what
a person writing a template wants: the email exactly as a send would render it — the same
Handlebars sandbox and render pool, the brand, the locale picked from the profile — with
nothing stored and nothing sent. The CLI's ``tidings templates render`` and the web UI's
preview page call it.

Body (every field optional): ``version`` ("published" by default, else "draft" or a name
like "v001"), ``data``, ``user_id`` (whose stored profile fills ``profile.*``),
``profile`` (fields laid over the stored profile), ``locale`` (over the profile's),
``brand_id`` (over the template's brand and the workspace default).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends
from pydantic import BaseModel, ConfigDict, Field

from tidings.domain.errors import ValidationError
from tidings.errors import BadRequest, NotFound
from tidings.render.errors import RenderError
from tidings.render.message import render_message
from tidings.render.pool import RenderFailure
from tidings.runtime import Runtime, runtime
from tidings.store import profiles as profiles_store
from tidings.store import templates as templates_store
from tidings.store.template_payload import UnknownBrand, template_payload

router = APIRouter(prefix="/tidings/templates", tags=["templates"])


class RenderRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    version: str = Field(default="published", max_length=32)
    data: dict[str, Any] = Field(default_factory=dict)
    user_id: str | None = Field(default=None, max_length=256)
    profile: dict[str, Any] = Field(default_factory=dict)
    locale: str | None = Field(default=None, max_length=35)
    brand_id: str | None = Field(default=None, max_length=64)


class RenderAnswer(BaseModel):
    template: str
    version: str
    locale: str
    brand: str | None
    subject: str
    html: str
    text: str
    headers: dict[str, Any]


@router.post("/{template_id}/render", response_model=RenderAnswer)
async def render_template_version(
    template_id: str, body: RenderRequest, rt: Runtime = Depends(runtime)
) -> RenderAnswer:
    async with rt.db.read() as conn:
        try:
            template = await templates_store.find_version(conn, template_id, body.version)
        except templates_store.TemplateUnavailable as exc:
            raise NotFound(str(exc)) from None
        profile: dict[str, Any] = {}
        if body.user_id is not None:
            stored = await profiles_store.get(conn, body.user_id)
            if stored is None:
                raise BadRequest(f"user_id: there is no profile for {body.user_id!r}")
            profile = dict(stored[0])
        try:
            payload = await template_payload(conn, template, body.data, body.brand_id)
        except UnknownBrand as exc:
            raise BadRequest(f"brand_id: {exc}") from None
    profile.update(body.profile)
    if body.locale is not None:
        profile["locale"] = body.locale
    try:
        rendered = await rt.render_pool.run(render_message, payload, profile)
    except (RenderError, ValidationError) as exc:
        raise BadRequest(str(exc)) from None
    except RenderFailure as exc:
        raise BadRequest(f"rendering failed: {exc}") from None
    brand = payload.get("brand")
    return RenderAnswer(
        template=template.id,
        version=template.version,
        locale=rendered.locale or "default",
        brand=brand.get("id") if isinstance(brand, dict) else None,
        subject=rendered.subject,
        html=rendered.html,
        text=rendered.text,
        headers=rendered.headers,
    )
