"""Stored notification templates as plain data: write payloads, content, versions, locales.

Pure functions over JSON-decoded documents; the API and the store call them. What lives
here:

* checking a write payload (``notification`` of ``POST``/``PUT /notifications``) whole,
  every unknown field refused by name, into the *document* that is stored as the draft and
  copied into a version on publish: ``name``, ``tags``, ``brand``, ``routing``,
  ``subscription``, ``content`` and ``email``;
* content rules on top of :func:`tidings.domain.content.parse_content`: versioned
  Elemental, a channel block on create, unique element ids; elements without an ``id`` get
  one (``elem_<type>_<n>``, the first number of that type not yet taken);
* addressing elements by id anywhere in the tree (``elements`` lists, channel blocks
  included), replacing one, and storing a locale's overrides inside each element, as
  Elemental's per-element ``locales`` property (``{"fr": {"title": "Salut"}}``);
* checksums (MD5) of each element's content and of each locale override;
* version names (``v001``), states, and the metrics window and its buckets.
"""

from __future__ import annotations

import copy
import hashlib
import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal, TypeAlias

from tidings.domain.content import ELEMENTAL_VERSION, parse_content
from tidings.domain.errors import ValidationError, index_path, key_path

State: TypeAlias = Literal["DRAFT", "PUBLISHED"]
Granularity: TypeAlias = Literal["HOUR", "DAY", "WEEK", "MONTH"]

DRAFT: State = "DRAFT"
PUBLISHED: State = "PUBLISHED"
MAX_NAME = 255
MAX_TAGS = 50
MAX_TAG = 128
MAX_ALIAS = 200  # the column's width
MAX_REF_ID = 64
MAX_HEADER = 1000  # one email header value (it may hold template variables)
MAX_ADDRESSES = 50  # cc / bcc entries
MAX_ELEMENT_ID = 100

WRITE_FIELDS = ("alias", "brand", "content", "email", "name", "routing", "subscription", "tags")
REQUIRED_FIELDS = ("brand", "content", "name", "routing", "subscription", "tags")
EMAIL_FIELDS = ("from", "reply_to", "cc", "bcc")

# Which fields of an element a locale may override: the text a person translates (and
# the link or image that goes with it). Other types carry nothing to translate.
LOCALE_FIELDS: dict[str, tuple[str, ...]] = {
    "meta": ("title",),
    "text": ("content",),
    "action": ("content", "href"),
    "image": ("src", "href", "alt_text"),
    "quote": ("content",),
    "html": ("content",),
    "channel": ("raw",),
}

_ELEMENT_ID = re.compile(rf"[A-Za-z0-9_.:\-]{{1,{MAX_ELEMENT_ID}}}")
_VERSION = re.compile(r"v(\d{3,})")
_STRUCTURE = ("id", "locales", "elements")


class Missing:
    """An omitted field (distinct from null, which means something else for alias/email)."""


MISSING = Missing()


def parse_state(value: Any, path: str) -> State:
    """``state`` of a write: ``DRAFT`` or ``PUBLISHED``, any case; omitted → ``DRAFT``."""
    if value is None or value is MISSING:
        return DRAFT
    if isinstance(value, str) and value.upper() in (DRAFT, PUBLISHED):
        return DRAFT if value.upper() == DRAFT else PUBLISHED
    raise ValidationError(path, 'must be "DRAFT" or "PUBLISHED"')


def version_name(number: int) -> str:
    """The name of the ``number``-th published version: ``v001``, ``v002``, … (Courier's)."""
    return f"v{number:03d}"


def is_version_name(value: str) -> bool:
    return _VERSION.fullmatch(value) is not None


# --- the write payload ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class WritePayload:
    """A checked ``notification``: the fields of the document, and what to do with aliases
    and email headers (each may be :data:`MISSING`, meaning "keep what is stored")."""

    name: str
    tags: list[str]
    brand: dict[str, str] | None
    routing: dict[str, str] | None
    subscription: dict[str, str] | None
    content: dict[str, Any]
    email: dict[str, Any] | Missing | None
    alias: str | Missing | None

    def document(self, stored_email: dict[str, Any] | None) -> dict[str, Any]:
        """The draft this payload makes, given the headers stored before it."""
        email = stored_email if isinstance(self.email, Missing) else self.email
        return {
            "name": self.name,
            "tags": self.tags,
            "brand": self.brand,
            "routing": self.routing,
            "subscription": self.subscription,
            "content": self.content,
            "email": email if email and has_email_channel(self.content) else None,
        }


def check_write_payload(value: Any, path: str, *, creating: bool) -> WritePayload:
    """Check ``notification`` whole. ``creating`` adds create's content rule: elements
    inside a channel block (or none at all)."""
    if not isinstance(value, Mapping):
        raise ValidationError(path, "must be an object")
    unknown = [k for k in value if k not in WRITE_FIELDS]
    if unknown:
        raise ValidationError(
            key_path(path, str(unknown[0])),
            f"is not a field of a notification template (fields: {', '.join(WRITE_FIELDS)})",
        )
    for name in REQUIRED_FIELDS:
        if name not in value:
            raise ValidationError(
                key_path(path, name), "is required (send null or [] for none, as Courier does)"
            )
    name = value["name"]
    if not isinstance(name, str) or not name.strip() or len(name) > MAX_NAME:
        raise ValidationError(
            key_path(path, "name"), f"must be a string of 1 to {MAX_NAME} characters"
        )
    return WritePayload(
        name=name,
        tags=check_tags(value["tags"], key_path(path, "tags")),
        brand=_reference(value["brand"], key_path(path, "brand"), "id"),
        routing=_reference(value["routing"], key_path(path, "routing"), "strategy_id"),
        subscription=_reference(value["subscription"], key_path(path, "subscription"), "topic_id"),
        content=check_content(
            value["content"], key_path(path, "content"), require_channel=creating
        ),
        email=check_email(value["email"], key_path(path, "email")) if "email" in value else MISSING,
        alias=check_alias(value["alias"], key_path(path, "alias")) if "alias" in value else MISSING,
    )


def check_tags(value: Any, path: str) -> list[str]:
    if not isinstance(value, list) or len(value) > MAX_TAGS:
        raise ValidationError(path, f"must be a list of at most {MAX_TAGS} strings")
    for i, tag in enumerate(value):
        if not isinstance(tag, str) or not 0 < len(tag) <= MAX_TAG:
            raise ValidationError(
                index_path(path, i), f"must be a string of 1 to {MAX_TAG} characters"
            )
    return list(dict.fromkeys(value))


def _reference(value: Any, path: str, key: str) -> dict[str, str] | None:
    """``{key: "..."}`` or null."""
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise ValidationError(path, f'must be an object {{"{key}": ...}} or null')
    unknown = [k for k in value if k != key]
    if unknown:
        raise ValidationError(key_path(path, str(unknown[0])), f"is not a field (only {key})")
    ref = value.get(key)
    if not isinstance(ref, str) or not 0 < len(ref) <= MAX_REF_ID:
        raise ValidationError(
            key_path(path, key), f"is required: a string of 1 to {MAX_REF_ID} characters"
        )
    return {key: ref}


def check_alias(value: Any, path: str) -> str | None:
    """A string makes it the only alias; null removes every alias."""
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip() or len(value) > MAX_ALIAS:
        raise ValidationError(path, f"must be a string of 1 to {MAX_ALIAS} characters, or null")
    if value.startswith("tenant/"):
        raise ValidationError(path, 'may not begin with "tenant/"')
    return value


def check_email(value: Any, path: str) -> dict[str, Any] | None:
    """Email headers: null clears all four; an object replaces all four (a field left out
    is cleared). Values may hold template variables, so they are not parsed as addresses."""
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise ValidationError(path, "must be an object (from, reply_to, cc, bcc) or null")
    unknown = [k for k in value if k not in EMAIL_FIELDS]
    if unknown:
        raise ValidationError(
            key_path(path, str(unknown[0])),
            f"is not an email header field ({', '.join(EMAIL_FIELDS)})",
        )
    headers: dict[str, Any] = {}
    for key in ("from", "reply_to"):
        if value.get(key) is not None:
            headers[key] = _header(value[key], key_path(path, key))
    for key in ("cc", "bcc"):
        if value.get(key) is not None:
            items = value[key]
            if not isinstance(items, list) or len(items) > MAX_ADDRESSES:
                raise ValidationError(
                    key_path(path, key), f"must be a list of at most {MAX_ADDRESSES} strings"
                )
            headers[key] = [
                _header(v, index_path(key_path(path, key), i)) for i, v in enumerate(items)
            ]
    return headers or None


def _header(value: Any, path: str) -> str:
    if not isinstance(value, str) or not value.strip() or len(value) > MAX_HEADER:
        raise ValidationError(path, f"must be a string of 1 to {MAX_HEADER} characters")
    if "\r" in value or "\n" in value:
        raise ValidationError(path, "may not contain line breaks")
    return value


# --- content ----------------------------------------------------------------------------


def check_content(
    value: Any, path: str, *, require_channel: bool, default_version: bool = False
) -> dict[str, Any]:
    """Versioned Elemental, checked by the content parser, with every element given an id.

    ``require_channel``: create's rule, top-level elements must be channel blocks (an empty
    list is allowed). ``default_version``: put_content's rule, an omitted ``version`` is
    Elemental's current one."""
    if not isinstance(value, Mapping):
        raise ValidationError(path, "must be an object")
    version = value.get("version")
    if version is None and default_version and "elements" in value:
        version = ELEMENTAL_VERSION
    if version != ELEMENTAL_VERSION:
        raise ValidationError(
            key_path(path, "version"),
            f'must be "{ELEMENTAL_VERSION}": a template holds versioned Elemental '
            "(the {title, body} shorthand is for /send only)",
        )
    unknown = [k for k in value if k not in ("version", "elements")]
    if unknown:
        raise ValidationError(
            key_path(path, str(unknown[0])),
            "is not a field of Elemental content (version, elements)",
        )
    elements = value.get("elements")
    if not isinstance(elements, list):
        raise ValidationError(key_path(path, "elements"), "must be a list")
    if require_channel:
        for i, element in enumerate(elements):
            if not isinstance(element, Mapping) or element.get("type") != "channel":
                raise ValidationError(
                    index_path(key_path(path, "elements"), i),
                    'must be a channel block ({"type": "channel", "channel": "email", '
                    '"elements": [...]}): a new template keeps its elements inside one',
                )
    content: dict[str, Any] = {"version": ELEMENTAL_VERSION, "elements": copy.deepcopy(elements)}
    _check_structure(content, path)
    if elements:
        parse_content(content, path)
    return assign_ids(content)


def _check_structure(content: dict[str, Any], path: str) -> None:
    """Element ids unique and well formed; ``locales`` an object of objects."""
    seen: dict[str, str] = {}
    for element, where in iter_elements(content, path):
        if not isinstance(element, Mapping):
            raise ValidationError(where, "must be an object")
        if "id" in element:
            element_id = element["id"]
            if not isinstance(element_id, str) or not _ELEMENT_ID.fullmatch(element_id):
                raise ValidationError(
                    key_path(where, "id"),
                    f"must be 1 to {MAX_ELEMENT_ID} letters, digits or _ . : -",
                )
            if element_id in seen:
                raise ValidationError(
                    key_path(where, "id"), f"{element_id!r} is already the id of {seen[element_id]}"
                )
            seen[element_id] = where
        locales = element.get("locales")
        if locales is not None and (
            not isinstance(locales, Mapping)
            or not all(isinstance(k, str) and isinstance(v, Mapping) for k, v in locales.items())
        ):
            raise ValidationError(
                key_path(where, "locales"), 'must map locales to overrides: {"fr": {...}}'
            )


def iter_elements(content: Mapping[str, Any], path: str = "content") -> Iterator[tuple[Any, str]]:
    """Every element of the tree, depth first, with its path (children under ``elements``)."""

    def walk(items: Any, where: str) -> Iterator[tuple[Any, str]]:
        if not isinstance(items, list):
            return
        for i, item in enumerate(items):
            item_path = index_path(where, i)
            yield item, item_path
            if isinstance(item, Mapping):
                yield from walk(item.get("elements"), key_path(item_path, "elements"))

    yield from walk(content.get("elements"), key_path(path, "elements"))


def assign_ids(content: dict[str, Any]) -> dict[str, Any]:
    """Give each element without an ``id`` one: ``elem_<type>_<n>``, n the first number of
    that type not taken, so ids stay stable across edits that keep them."""
    taken = {e["id"] for e, _ in iter_elements(content) if isinstance(e, dict) and "id" in e}
    counters: dict[str, int] = {}
    for element, _ in iter_elements(content):
        if isinstance(element, dict) and "id" not in element:
            kind = re.sub(r"[^A-Za-z0-9_]", "_", str(element.get("type", "element")))[:40]
            n = counters.get(kind, 0)
            while True:
                n += 1
                candidate = f"elem_{kind}_{n}"
                if candidate not in taken:
                    break
            counters[kind] = n
            element["id"] = candidate
            taken.add(candidate)
    return content


def has_email_channel(content: Mapping[str, Any]) -> bool:
    """Whether content has an email channel: a top-level ``channel`` block for email, or
    unwrapped elements (which every channel, email included, renders)."""
    elements = content.get("elements") or []
    blocks = [e for e in elements if isinstance(e, Mapping) and e.get("type") == "channel"]
    if not blocks:
        return bool(elements)
    return any(b.get("channel") == "email" for b in blocks)


def find_element(content: Mapping[str, Any], element_id: str) -> dict[str, Any] | None:
    for element, _ in iter_elements(content):
        if isinstance(element, dict) and element.get("id") == element_id:
            return element
    return None


PUT_ELEMENT_FIELDS = ("type", "channels", "data", "if", "loop", "ref", "state")
_CONTROL = ("channels", "if", "loop", "ref")


def replace_element(
    content: Mapping[str, Any], element_id: str, body: Mapping[str, Any]
) -> dict[str, Any]:
    """The content with element ``element_id`` replaced by the put_element ``body``:
    ``type``, ``channels``, ``if``, ``loop``, ``ref``, and the element's own fields either
    in ``data`` or at the top level (Courier's request allows type-specific fields there).
    The element keeps its id, and its locales unless the body gives some. Raises
    :class:`LookupError` for an unknown id; the result is checked by the caller (the
    content parser refuses what an element of that type cannot hold)."""
    updated = copy.deepcopy(dict(content))
    target = find_element(updated, element_id)
    if target is None:
        raise LookupError(element_id)
    if "id" in body:
        raise ValidationError("id", "is not a body field: the path gives the element's id")
    kind = body.get("type")
    if not isinstance(kind, str) or not kind:
        raise ValidationError("type", "is required: the element's type (text, meta, action, ...)")
    data = body.get("data", {})
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        raise ValidationError("data", "must be an object: the element's own fields")
    top = {k: v for k, v in body.items() if k not in ("type", "data", "state", *_CONTROL)}
    for key in data:
        if key in ("id", "type"):
            raise ValidationError(
                key_path("data", key),
                "is not an element field here (the path gives the id, type the type)",
            )
        if key in body:
            raise ValidationError(key_path("data", key), "is given twice (in data and at the top)")
    new: dict[str, Any] = {
        "id": element_id,
        "type": kind,
        **copy.deepcopy(top),
        **copy.deepcopy(dict(data)),
    }
    for key in _CONTROL:
        if body.get(key) is not None:
            new[key] = body[key]
    if "locales" not in new and "locales" in target:
        new["locales"] = target["locales"]
    target.clear()
    target.update(new)
    return updated


def set_locale(
    content: Mapping[str, Any], locale_id: str, overrides: Any, path: str = "elements"
) -> dict[str, Any]:
    """The content with locale ``locale_id`` set to ``overrides`` (``[{id, ...fields}]``),
    stored inside each element as ``element["locales"][locale_id] = {fields}``. A PUT: the
    locale's earlier overrides on elements not listed are removed.
    Raises :class:`LookupError` naming an unknown element id."""
    if not isinstance(overrides, list):
        raise ValidationError(path, "must be a list of {id, ...fields}")
    updated = copy.deepcopy(dict(content))
    for element, _ in iter_elements(updated):
        if isinstance(element, dict) and isinstance(element.get("locales"), dict):
            element["locales"].pop(locale_id, None)
            if not element["locales"]:
                del element["locales"]
    seen: set[str] = set()
    for i, override in enumerate(overrides):
        where = index_path(path, i)
        if not isinstance(override, Mapping):
            raise ValidationError(where, "must be an object {id, ...fields}")
        element_id = override.get("id")
        if not isinstance(element_id, str) or not element_id:
            raise ValidationError(
                key_path(where, "id"), "is required: the id of the element to translate"
            )
        if element_id in seen:
            raise ValidationError(key_path(where, "id"), f"{element_id!r} is listed twice")
        seen.add(element_id)
        target = find_element(updated, element_id)
        if target is None:
            raise LookupError(element_id)
        kind = str(target.get("type"))
        allowed = LOCALE_FIELDS.get(kind, ())
        fields = {k: v for k, v in override.items() if k != "id"}
        if not fields:
            raise ValidationError(where, f"gives nothing to translate for {element_id!r}")
        for key, field_value in fields.items():
            if key not in allowed:
                raise ValidationError(
                    key_path(where, key),
                    f"is not translatable on a {kind} element"
                    + (
                        f" ({', '.join(allowed)})"
                        if allowed
                        else " (it has no translatable fields)"
                    ),
                )
            wanted = dict if key == "raw" else str
            if not isinstance(field_value, wanted):
                raise ValidationError(
                    key_path(where, key), f"must be {'an object' if key == 'raw' else 'a string'}"
                )
        target.setdefault("locales", {})[locale_id] = copy.deepcopy(fields)
    return updated


# --- checksums --------------------------------------------------------------------------


def _md5(value: Any) -> str:
    canonical = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.md5(canonical.encode(), usedforsecurity=False).hexdigest()


def checksum(element: Mapping[str, Any]) -> str:
    """MD5 of an element's own content: its fields except ``id``, ``locales`` and child
    ``elements`` (children and each locale have checksums of their own), as canonical JSON."""
    return _md5({k: v for k, v in element.items() if k not in _STRUCTURE})


def element_checksums(content: Mapping[str, Any]) -> list[dict[str, str]]:
    """``[{id, checksum}]`` for every element of the tree, depth first (mutation answers)."""
    return [
        {"id": str(e.get("id")), "checksum": checksum(e)}
        for e, _ in iter_elements(content)
        if isinstance(e, Mapping)
    ]


def with_checksums(content: Mapping[str, Any]) -> dict[str, Any]:
    """retrieve_content's answer: each element's fields with its checksum, its children the
    same way, and each locale's checksum."""

    def one(element: Mapping[str, Any]) -> dict[str, Any]:
        out: dict[str, Any] = {k: v for k, v in element.items() if k not in ("locales", "elements")}
        out["checksum"] = checksum(element)
        if isinstance(element.get("elements"), list):
            out["elements"] = [
                one(child) for child in element["elements"] if isinstance(child, Mapping)
            ]
        locales = element.get("locales")
        if isinstance(locales, Mapping):
            out["locales"] = {name: {"checksum": _md5(value)} for name, value in locales.items()}
        return out

    return {
        "version": content.get("version", ELEMENTAL_VERSION),
        "elements": [one(e) for e in content.get("elements") or [] if isinstance(e, Mapping)],
    }


# --- metrics ----------------------------------------------------------------------------

GRANULARITIES: tuple[Granularity, ...] = ("HOUR", "DAY", "WEEK", "MONTH")
_CAPS: dict[str, timedelta] = {"HOUR": timedelta(days=7), "DAY": timedelta(days=90)}
MAX_BUCKETS = 1000
_DURATION = re.compile(
    r"P(?:(?P<w>\d+)W)?(?:(?P<d>\d+)D)?(?:T(?:(?P<h>\d+)H)?(?:(?P<m>\d+)M)?(?:(?P<s>\d+)S)?)?"
)


def parse_duration(value: str, path: str) -> timedelta:
    """An ISO 8601 duration of weeks, days, hours, minutes, seconds (``P30D``, ``PT12H``).
    Years and months have no fixed length and are refused."""
    match = _DURATION.fullmatch(value)
    if match is None or value in ("P", "PT") or value.endswith("T"):
        raise ValidationError(
            path, "must be an ISO 8601 duration of W, D, H, M, S like P30D or PT12H"
        )
    parts = {k: int(v) for k, v in match.groupdict().items() if v}
    length = timedelta(
        weeks=parts.get("w", 0),
        days=parts.get("d", 0),
        hours=parts.get("h", 0),
        minutes=parts.get("m", 0),
        seconds=parts.get("s", 0),
    )
    if length <= timedelta(0):
        raise ValidationError(path, "must be a positive duration")
    return length


def floor_to(at: datetime, granularity: Granularity) -> datetime:
    at = at.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    if granularity == "HOUR":
        return at
    at = at.replace(hour=0)
    if granularity == "DAY":
        return at
    if granularity == "WEEK":
        # weekday(): Monday 0 … Sunday 6; weeks start on Sunday.
        return at - timedelta(days=(at.weekday() + 1) % 7)
    return at.replace(day=1)


def next_bucket(at: datetime, granularity: Granularity) -> datetime:
    if granularity == "HOUR":
        return at + timedelta(hours=1)
    if granularity == "DAY":
        return at + timedelta(days=1)
    if granularity == "WEEK":
        return at + timedelta(weeks=1)
    return (
        at.replace(year=at.year + 1, month=1) if at.month == 12 else at.replace(month=at.month + 1)
    )


def ceil_to(at: datetime, granularity: Granularity) -> datetime:
    floored = floor_to(at, granularity)
    return floored if floored == at.astimezone(UTC) else next_bucket(floored, granularity)


@dataclass(frozen=True, slots=True)
class Window:
    start: datetime
    end: datetime
    granularity: Granularity
    buckets: list[datetime]  # each bucket's start, oldest first


def metrics_window(
    *,
    start: datetime | None,
    end: datetime | None,
    lookback: timedelta | None,
    granularity: Granularity,
    now: datetime,
) -> Window:
    """The window get_metrics reports on, snapped outwards onto the granularity grid.
    ``start`` and ``end`` come together and win over ``lookback`` (default 30 days)."""
    if (start is None) != (end is None):
        raise ValidationError(
            "start" if start is None else "end",
            "must be given together with " + ("end" if start is not None else "start"),
        )
    if start is not None and end is not None:
        if start >= end:
            raise ValidationError("start", "must be earlier than end")
        lo, hi = start, end
    else:
        hi = now
        lo = now - (lookback or timedelta(days=30))
    cap = _CAPS.get(granularity)
    if cap is not None and hi - lo > cap:
        raise ValidationError(
            "granularity",
            f"{granularity} covers at most {cap.days} days; ask for a coarser granularity",
        )
    lo, hi = floor_to(lo, granularity), ceil_to(hi, granularity)
    buckets: list[datetime] = []
    at = lo
    while at < hi:
        buckets.append(at)
        if len(buckets) > MAX_BUCKETS:
            raise ValidationError(
                "granularity",
                f"the window has more than {MAX_BUCKETS} buckets; ask for a coarser granularity",
            )
        at = next_bucket(at, granularity)
    return Window(lo, hi, granularity, buckets)
