"""Courier brand payloads (``POST /brands``, ``PUT /brands/{id}``) checked whole, as plain data.

:func:`parse_brand` takes a JSON-decoded body and returns the brand's stored form: the same
shape Courier's API (and the ``trycourier`` SDK's ``Brand`` type) uses, camelCase keys and
all, with null-valued optional fields left out (Courier omits them too). Everything is
checked: an unknown field anywhere is refused by its path, colours must be plain CSS colour
values, logo, link and icon URLs absolute http(s).

What Tidings does with each part is in ``docs/brands.md``; here only what cannot be honoured
in an email is refused: an enabled ``templateOverride.mjml`` (Tidings renders no MJML). The
``inapp`` settings are checked and stored for round trips, since Tidings sends no in-app
messages.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from tidings.domain.errors import ValidationError, index_path, key_path

# The shape domain/content.py accepts for colours: a value ends up inside inline CSS and
# attributes, so nothing that could close the declaration and add another.
COLOR = re.compile(r"#[0-9a-fA-F]{3,8}|[a-zA-Z]{1,30}|rgba?\(\s*[\d.%,\s]{1,60}\)")
# The email's width: pixels only (a percentage of what? Outlook needs a fixed width).
WIDTH = re.compile(r"(\d{3,4})(px)?")
MIN_WIDTH, MAX_WIDTH = 320, 1200
# A client-given id is a path segment of /brands/{id}: URL-safe characters only.
BRAND_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}")
_URL = re.compile(r"https?://[^\s\"'<>\\\x00-\x1f\x7f]+", re.IGNORECASE)
SNIPPET_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_-]{0,63}")
COLOR_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_-]{0,31}")
# A length (``borderRadius``) for the in-app widget.
LENGTH = re.compile(r"\d{1,4}(\.\d{1,3})?(px|em|rem|%)?")

MAX_NAME = 255
MAX_MARKDOWN = 10_000
MAX_CSS = 20_000
MAX_HTML = 100_000
MAX_SNIPPETS = 100
MAX_SNIPPET = 50_000
MAX_COLORS = 20
MAX_URL = 2_000
MAX_FONT = 200

SOCIAL_NETWORKS = ("facebook", "instagram", "linkedin", "medium", "twitter")
# The sections of ``settings.email`` that may say ``inheritDefault``.
INHERITING_SECTIONS = ("header", "footer", "head")
PLACEMENTS = ("top", "bottom", "left", "right")


class BrandError(ValidationError):
    """A brand body is not valid; ``path`` names the field."""


@dataclass(frozen=True, slots=True)
class BrandFields:
    """A checked create/update body; ``settings`` and ``snippets`` in Courier's shape."""

    id: str | None
    name: str
    settings: dict[str, Any]
    snippets: dict[str, Any] | None


_Checker = Callable[[Any, str], Any]


def parse_brand(body: Any, *, creating: bool) -> BrandFields:
    """The stored form of a create (``creating``) or update body; ``BrandError`` otherwise.

    Update is Courier's full replacement: settings or snippets left out are cleared.
    """
    if not isinstance(body, Mapping):
        raise BrandError("body", "must be a JSON object")
    allowed = (
        ("id", "name", "settings", "snippets") if creating else ("name", "settings", "snippets")
    )
    _no_unknown(body, allowed, "")
    brand_id = None
    if creating and body.get("id") is not None:
        brand_id = body["id"]
        if not isinstance(brand_id, str) or not BRAND_ID.fullmatch(brand_id):
            raise BrandError(
                "id",
                "must be 1 to 64 letters, digits, '_', '.', ':' or '-', starting with a "
                "letter or digit",
            )
    name = body.get("name")
    if not isinstance(name, str) or not name.strip() or len(name) > MAX_NAME:
        raise BrandError("name", f"is required: a string of 1 to {MAX_NAME} characters")
    if creating and body.get("settings") is None:
        raise BrandError("settings", "is required (an object; {} for none)")
    settings = _settings(body.get("settings"), "settings")
    snippets = _snippets(body.get("snippets"), "snippets")
    return BrandFields(id=brand_id, name=name, settings=settings, snippets=snippets)


def _path(parent: str, key: str) -> str:
    return key_path(parent, key) if parent else key


def _no_unknown(value: Mapping[str, Any], allowed: tuple[str, ...], path: str) -> None:
    unknown = [str(k) for k in value if k not in allowed]
    if unknown:
        where = _path(path, unknown[0])
        others = f" (and {', '.join(unknown[1:])})" if len(unknown) > 1 else ""
        raise BrandError(
            where, f"is not a field Tidings knows here{others}; fields: {', '.join(allowed)}"
        )


def _object(value: Any, path: str, fields: Mapping[str, _Checker]) -> dict[str, Any]:
    """``value`` checked field by field; null-valued fields left out."""
    if not isinstance(value, Mapping):
        raise BrandError(path, "must be an object")
    _no_unknown(value, tuple(fields), path)
    out: dict[str, Any] = {}
    for key, check in fields.items():
        if value.get(key) is not None:
            out[key] = check(value[key], _path(path, key))
    return out


def _required(value: Mapping[str, Any], keys: tuple[str, ...], path: str) -> None:
    for key in keys:
        if value.get(key) is None:
            raise BrandError(_path(path, key), "is required")


def _string(limit: int) -> _Checker:
    def check(value: Any, path: str) -> str:
        if not isinstance(value, str) or len(value) > limit:
            raise BrandError(path, f"must be a string of at most {limit} characters")
        return value

    return check


def _flag(value: Any, path: str) -> bool:
    if not isinstance(value, bool):
        raise BrandError(path, "must be true or false")
    return value


def _color(value: Any, path: str) -> str:
    if not isinstance(value, str) or not COLOR.fullmatch(value.strip()):
        raise BrandError(
            path, 'must be a CSS colour: "#9D3789", a name like "teal", or rgb()/rgba()'
        )
    return value.strip()


def _url(value: Any, path: str) -> str:
    if not isinstance(value, str) or len(value) > MAX_URL:
        raise BrandError(path, f"must be an absolute http(s) URL of at most {MAX_URL} characters")
    url = value.strip()
    # No whitespace or control characters anywhere (browsers drop them, which could hide
    # another scheme from this check), nor quotes or angle brackets; and a host.
    if not _URL.fullmatch(url) or not _host(url):
        raise BrandError(path, f"must be an absolute http(s) URL, got {url[:80]!r}")
    return url


def _host(url: str) -> str | None:
    try:
        return urlsplit(url).hostname
    except ValueError:  # "http://[::1": not a URL at all
        return None


def _width(value: Any, path: str) -> str:
    match = WIDTH.fullmatch(value.strip()) if isinstance(value, str) else None
    if match is None or not MIN_WIDTH <= int(match.group(1)) <= MAX_WIDTH:
        raise BrandError(
            path, f'must be a width in pixels from {MIN_WIDTH} to {MAX_WIDTH}, like "600px"'
        )
    return str(value).strip()


def _css(value: Any, path: str) -> str:
    css: str = _string(MAX_CSS)(value, path)
    # The text goes inside the layout's <style>: "<" could end it and start markup, and
    # @import would make every reader's client fetch a stylesheet Tidings never saw.
    if "<" in css:
        raise BrandError(path, "must be CSS only (no '<': the <style> element is Tidings')")
    if "@import" in css.lower():
        raise BrandError(path, "may not use @import (remote stylesheets are not loaded)")
    return css


def _colors(value: Any, path: str) -> dict[str, str]:
    """Courier's ``colors``: primary, secondary, and any other named colour."""
    if not isinstance(value, Mapping):
        raise BrandError(path, "must be an object of colours")
    if len(value) > MAX_COLORS:
        raise BrandError(path, f"may name at most {MAX_COLORS} colours")
    out: dict[str, str] = {}
    for key, color in value.items():
        if not isinstance(key, str) or not COLOR_NAME.fullmatch(key):
            raise BrandError(key_path(path, str(key)), "is not a colour name (letters, digits)")
        if color is not None:
            out[key] = _color(color, key_path(path, key))
    return out


def _logo(value: Any, path: str) -> dict[str, Any]:
    return _object(value, path, {"href": _url, "image": _url})


def _header(value: Any, path: str) -> dict[str, Any]:
    if isinstance(value, Mapping):
        _required(value, ("logo",), path)
    return _object(value, path, {"logo": _logo, "barColor": _color, "inheritDefault": _flag})


def _social(value: Any, path: str) -> dict[str, Any]:
    def network(item: Any, item_path: str) -> dict[str, Any]:
        return _object(item, item_path, {"url": _url})

    return _object(value, path, dict.fromkeys(SOCIAL_NETWORKS, network))


def _footer(value: Any, path: str) -> dict[str, Any]:
    return _object(
        value,
        path,
        {"inheritDefault": _flag, "markdown": _string(MAX_MARKDOWN), "social": _social},
    )


def _head(value: Any, path: str) -> dict[str, Any]:
    if isinstance(value, Mapping):
        _required(value, ("inheritDefault",), path)
    return _object(value, path, {"inheritDefault": _flag, "content": _css})


_TEMPLATE: dict[str, _Checker] = {
    "enabled": _flag,
    "backgroundColor": _color,
    "blocksBackgroundColor": _color,
    "footer": _string(MAX_HTML),
    "head": _string(MAX_HTML),
    "header": _string(MAX_HTML),
    "width": _width,
}


def _mjml(value: Any, path: str) -> dict[str, Any]:
    if isinstance(value, Mapping):
        _required(value, ("enabled",), path)
    template = _object(value, path, _TEMPLATE)
    if template["enabled"]:
        raise BrandError(
            key_path(path, "enabled"),
            "must be false: Tidings does not render MJML templates; give the custom "
            "template as HTML in templateOverride.header/footer instead",
        )
    return template


def _template_override(value: Any, path: str) -> dict[str, Any]:
    if isinstance(value, Mapping):
        _required(value, ("enabled",), path)
    return _object(
        value,
        path,
        {
            **_TEMPLATE,
            "mjml": _mjml,
            "footerBackgroundColor": _color,
            "footerFullWidth": _flag,
        },
    )


def _email(value: Any, path: str) -> dict[str, Any]:
    return _object(
        value,
        path,
        {
            "footer": _footer,
            "head": _head,
            "header": _header,
            "templateOverride": _template_override,
        },
    )


def _border_radius(value: Any, path: str) -> str:
    if not isinstance(value, str) or not LENGTH.fullmatch(value.strip()):
        raise BrandError(path, 'must be a length like "24px"')
    return value.strip()


def _placement(value: Any, path: str) -> str:
    if value not in PLACEMENTS:
        raise BrandError(path, f"must be one of {', '.join(PLACEMENTS)}")
    return str(value)


def _inapp(value: Any, path: str) -> dict[str, Any]:
    if isinstance(value, Mapping):
        _required(value, ("colors", "icons", "widgetBackground"), path)

    def icons(item: Any, item_path: str) -> dict[str, Any]:
        return _object(item, item_path, {"bell": _url, "message": _url})

    def background(item: Any, item_path: str) -> dict[str, Any]:
        return _object(item, item_path, {"bottomColor": _color, "topColor": _color})

    return _object(
        value,
        path,
        {
            "colors": _colors,
            "icons": icons,
            "widgetBackground": background,
            "borderRadius": _border_radius,
            "disableMessageIcon": _flag,
            "fontFamily": _string(MAX_FONT),
            "placement": _placement,
        },
    )


def _settings(value: Any, path: str) -> dict[str, Any]:
    if value is None:
        return {}
    return _object(value, path, {"colors": _colors, "email": _email, "inapp": _inapp})


def _snippets(value: Any, path: str) -> dict[str, Any] | None:
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise BrandError(path, "must be an object with items")
    _no_unknown(value, ("items",), path)
    items = value.get("items")
    if items is None:
        return {}
    items_path = key_path(path, "items")
    if not isinstance(items, list) or len(items) > MAX_SNIPPETS:
        raise BrandError(items_path, f"must be a list of at most {MAX_SNIPPETS} snippets")
    seen: set[str] = set()
    out: list[dict[str, str]] = []
    for i, item in enumerate(items):
        item_path = index_path(items_path, i)
        if isinstance(item, Mapping):
            _required(item, ("name", "value"), item_path)
        snippet = _object(item, item_path, {"name": _string(64), "value": _string(MAX_SNIPPET)})
        if not SNIPPET_NAME.fullmatch(snippet["name"]):
            raise BrandError(
                key_path(item_path, "name"),
                "must be a Handlebars partial name: a letter or '_', then letters, digits, "
                "'_' or '-'",
            )
        if snippet["name"] in seen:
            raise BrandError(key_path(item_path, "name"), f"{snippet['name']!r} is given twice")
        seen.add(snippet["name"])
        out.append(snippet)
    return {"items": out}


def with_inherited(brand: Mapping[str, Any], default: Mapping[str, Any] | None) -> dict[str, Any]:
    """``brand`` (the API's shape) with its ``inheritDefault`` sections completed from the
    workspace default brand ``default``: what the brand's section leaves unset comes from
    the default's. One level down too: a header must name a ``logo`` (the SDK requires
    it), so ``"logo": {}`` takes the default's image and link; ``social`` networks merge
    the same way. Without a default (or without ``inheritDefault``) nothing changes.

    For a send, resolve this when the message is accepted and keep the result, so that a
    later change of the default brand does not change accepted mail.
    """
    out = dict(brand)
    given = brand.get("settings")
    if default is None or not isinstance(given, Mapping):
        return out
    if not isinstance(given.get("email"), Mapping):
        return out  # nothing to inherit into (a wrong shape is parse_brand's to refuse)
    settings = dict(given)
    email = dict(given["email"])
    fallback_settings = default.get("settings")
    fallback_email = (
        fallback_settings.get("email") if isinstance(fallback_settings, Mapping) else None
    )
    if not isinstance(fallback_email, Mapping):
        return out
    for name in INHERITING_SECTIONS:
        own = email.get(name)
        fallback = fallback_email.get(name)
        if not isinstance(own, Mapping) or not own.get("inheritDefault"):
            continue
        if not isinstance(fallback, Mapping):
            continue
        merged = {**fallback, **own}
        for key, value in own.items():
            if isinstance(value, Mapping) and isinstance(fallback.get(key), Mapping):
                merged[key] = {**fallback[key], **value}
        email[name] = merged
    settings["email"] = email
    out["settings"] = settings
    return out
