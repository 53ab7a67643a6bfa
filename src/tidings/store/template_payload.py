"""What rendering a stored template needs, read from the store: its version and its brand.

``/send`` copies this into each message it accepts; previews (the API's and the UI's)
build the same thing for one render, so a preview shows exactly what a send would.
"""

from __future__ import annotations

from typing import Any

from tidings.store import brands as brands_store
from tidings.store.database import Conn
from tidings.store.templates import SendableTemplate


class UnknownBrand(LookupError):
    """A brand id names no brand."""


async def brand_with_default(
    conn: Conn, brand_id: str | None
) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    """``(brand, default)``: the brand ``brand_id`` names (else the workspace default) and
    the default it may inherit sections from (None when it is the default itself)."""
    default = await brands_store.default_brand(conn)
    if brand_id:
        brand = await brands_store.get_brand(conn, brand_id)
        if brand is None:
            raise UnknownBrand(f"there is no brand {brand_id!r}")
    else:
        brand = default
    if brand is None or (default is not None and default.get("id") == brand.get("id")):
        default = None
    return brand, default


def template_reference(template: SendableTemplate) -> dict[str, Any]:
    """What a message records of the template it was sent by (history, errors)."""
    return {
        "id": template.id,
        "version": template.version,
        "alias": template.alias,
        "name": template.name,
    }


async def template_payload(
    conn: Conn, template: SendableTemplate, data: dict[str, Any], brand_id: str | None
) -> dict[str, Any]:
    """The payload the renderer takes for ``template`` with ``data``; ``brand_id`` wins over
    the template's brand, which wins over the workspace default."""
    brand, default = await brand_with_default(conn, brand_id or template.brand_id)
    return {
        "content": template.content,
        "template": template_reference(template),
        "template_email": template.email,
        "brand": brand,
        "brand_default": default,
        "data": data,
    }
