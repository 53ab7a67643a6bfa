"""The *shape* of a rendered email: what stays the same when only the recipient's values change.

A batch send (one provider call for many recipients) carries one subject, one HTML and one
text part with placeholders, and each recipient's values; the provider fills them in per
copy. That is only right when every recipient's copy is exactly what a single send would
have produced, so the shape is found by rendering, not by reading the template:

1. the message is rendered as usual (``R``: what a single send sends);
2. it is rendered again with every string and integer leaf of ``data`` and of the profile
   replaced by a sentinel token (``S``; ``profile.locale`` stays, since it picks the
   content). ``S`` depends only on the payload's structure, so it is cached per template
   version and structure, and recipients with the same keys share it;
3. ``S`` is cut at its tokens and matched against ``R``: each literal piece must be found
   exactly, and at each token the recipient's own value must stand, plain or in one of the
   escaped forms HTML output uses. Only then is ``S`` with its tokens made placeholders the
   shape, and the values as they stand in ``R`` the recipient's variables.

A value a condition or a loop looked at (``{{#if name}}``, an ``eq`` helper, an empty string
that hid a block) makes ``R`` differ from ``S`` around the token: no shape, and that
recipient is sent alone. By construction, substituting a recipient's variables into the
shape reproduces ``R`` character for character.

Segments are tuples of strings alternating literal text and placeholder names
(``("Hello ", "s0", "!")``): plain data, so that the render pool can return them.
"""

from __future__ import annotations

import hashlib
import html as html_lib
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from tidings.render.email import RenderedEmail
from tidings.render.message import render_message

__all__ = [
    "Shape",
    "find_shape",
    "render_with_shape",
    "sentinel_values",
    "substitute",
]

Segments = tuple[str, ...]

_TOKEN = re.compile(r"Zq(\d+)xTdg")
# Profile keys that choose what is rendered rather than appear in it.
_STRUCTURAL_PROFILE_KEYS = frozenset({"locale"})
# The payload keys rendering reads besides data (see render.message.render_message).
_RENDER_KEYS = (
    "content",
    "template",
    "template_email",
    "brand",
    "brand_default",
    "email_override",
    "utm",
)
_CACHE_MAX = 256
# Sentinel renderings, per process (each render worker keeps its own).
_cache: dict[str, RenderedEmail | None] = {}


def _token(index: int) -> str:
    return f"Zq{index}xTdg"


def _attribute(value: str) -> str:
    return value.replace("&", "&amp;").replace('"', "&quot;")


def _text_node(value: str) -> str:
    return html_lib.escape(value, quote=False).replace("\xa0", "&nbsp;")


def _markup(value: str) -> str:
    return (
        value.replace("&", "&amp;")
        .replace("<", "&lt;")
        .replace(">", "&gt;")
        .replace('"', "&#34;")
        .replace("'", "&#39;")
    )


# How a value may stand in a rendered part: as given, or escaped the ways the HTML output
# does it (text nodes and attributes as the CSS inliner writes them, Handlebars, MarkupSafe).
_ENCODINGS: tuple[Callable[[str], str], ...] = (
    lambda value: value,
    _text_node,
    _attribute,
    html_lib.escape,
    _markup,
)


@dataclass(frozen=True, slots=True)
class Shape:
    """A rendered email with placeholders, and one recipient's values for them."""

    key: str  # equal for recipients whose copies differ only in the placeholders' values
    subject: Segments
    html: Segments
    text: Segments
    values: dict[str, str]

    def to_wire(self) -> tuple[Any, ...]:
        """Plain data for the render pool's answer."""
        return (self.key, self.subject, self.html, self.text, self.values)

    @classmethod
    def from_wire(cls, wire: tuple[Any, ...]) -> Shape:
        key, subject, html, text, values = wire
        return cls(key, tuple(subject), tuple(html), tuple(text), dict(values))


def sentinel_values(value: Any, leaves: list[str], *, top_profile: bool = False) -> Any:
    """``value`` with each string and integer leaf replaced by a token; the leaves' texts are
    appended to ``leaves`` (a token's number is its index there)."""
    if isinstance(value, bool) or value is None or isinstance(value, float):
        return value
    if isinstance(value, str | int):
        leaves.append(str(value))
        return _token(len(leaves) - 1)
    if isinstance(value, Mapping):
        return {
            key: (
                item
                if top_profile and key in _STRUCTURAL_PROFILE_KEYS
                else sentinel_values(item, leaves)
            )
            for key, item in value.items()
        }
    if isinstance(value, list | tuple):
        return [sentinel_values(item, leaves) for item in value]
    return value


def _match(
    sentinel: str, actual: str, leaves: list[str], prefix: str
) -> tuple[Segments, dict[str, str]] | None:
    """``sentinel`` cut at its tokens, matched against ``actual``: the segments and values,
    or None when ``actual`` is not ``sentinel`` with the leaves' values in place.

    Each occurrence of a token is its own placeholder (``prefix`` and its number): the same
    value may stand plain in one place and escaped in another, and one recipient's value
    may need escaping where another's does not; named by place, not by form, the
    placeholders are the same for every recipient of the shape."""
    parts = _TOKEN.split(sentinel)
    first = parts[0]
    if not actual.startswith(first):
        return None
    pos = len(first)
    segments: list[str] = [first]
    values: dict[str, str] = {}
    for i in range(1, len(parts), 2):
        index, literal = int(parts[i]), parts[i + 1]
        if index >= len(leaves):
            return None
        last = i + 2 >= len(parts)
        for encode in _ENCODINGS:
            encoded = encode(leaves[index])
            end = pos + len(encoded)
            if not actual.startswith(encoded, pos) or not actual.startswith(literal, end):
                continue
            if last and end + len(literal) != len(actual):
                continue
            name = f"{prefix}{len(values)}"
            values[name] = encoded
            segments.extend((name, literal))
            pos = end + len(literal)
            break
        else:
            return None
    if pos != len(actual):
        return None
    return tuple(segments), values


def substitute(segments: Segments, values: Mapping[str, str]) -> str:
    """The text ``segments`` stand for with ``values`` in place (what a provider does)."""
    return "".join(values[part] if i % 2 else part for i, part in enumerate(segments))


def find_shape(rendered: RenderedEmail, sentinel: RenderedEmail, leaves: list[str]) -> Shape | None:
    """The shape of ``rendered`` given its sentinel rendering (see the module doc), or None."""
    if sentinel.headers != rendered.headers or sentinel.locale != rendered.locale:
        return None  # a value in From/Reply-To/Cc, or a different content: sent alone
    if any("%recipient." in leaf for leaf in leaves):
        return None  # a value a provider would read as a placeholder of its own
    matched = []
    for part, prefix in (("subject", "s"), ("html", "h"), ("text", "t")):
        s, r = getattr(sentinel, part) or "", getattr(rendered, part) or ""
        found = _match(s, r, leaves, prefix)
        if found is None:
            return None
        matched.append(found)
    values: dict[str, str] = {}
    for segments, part_values in matched:
        if any("%recipient." in segments[i] for i in range(0, len(segments), 2)):
            return None  # the content itself names a placeholder: a batch would fill it
        values.update(part_values)
    subject, html, text = (segments for segments, _ in matched)
    digest = hashlib.sha256(
        json.dumps([subject, html, text, rendered.headers], default=str).encode()
    ).hexdigest()
    return Shape(digest, subject, html, text, values)


def _structure_key(payload: Mapping[str, Any], data: Any, profile: Any) -> str:
    relevant = {key: payload.get(key) for key in _RENDER_KEYS}
    blob = json.dumps([relevant, data, profile], default=str, sort_keys=False)
    return hashlib.sha256(blob.encode()).hexdigest()


def _sentinel_render(
    payload: dict[str, Any], data: Any, profile: dict[str, Any]
) -> RenderedEmail | None:
    key = _structure_key(payload, data, profile)
    if key in _cache:
        return _cache[key]
    try:
        result: RenderedEmail | None = render_message({**payload, "data": data}, profile)
    except Exception:
        result = None  # a template that cannot take tokens for values: sent alone
    if len(_cache) >= _CACHE_MAX:
        _cache.clear()
    _cache[key] = result
    return result


def render_with_shape(
    payload: dict[str, Any], profile: dict[str, Any]
) -> tuple[RenderedEmail, tuple[Any, ...] | None]:
    """The message rendered for ``profile`` (exactly as a single send renders it), and its
    shape as plain data (:meth:`Shape.from_wire`), or None when it has none. Raises what
    rendering raises. Run in the render pool."""
    rendered = render_message(payload, profile)
    leaves: list[str] = []
    data = sentinel_values(payload.get("data") or {}, leaves)
    sentinel_profile = sentinel_values(profile, leaves, top_profile=True)
    sentinel = _sentinel_render(payload, data, sentinel_profile)
    if sentinel is None:
        return rendered, None
    shape = find_shape(rendered, sentinel, leaves)
    return rendered, shape.to_wire() if shape is not None else None
