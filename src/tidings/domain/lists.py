"""Courier lists as plain data: list ids, list patterns, and subscription preferences.

A list id is dotted (``acme.eu.weekly``): one or more parts, each a non-empty name without
dots, wildcards, slashes, whitespace or control characters. A pattern is a list id whose
parts may be ``*`` (exactly one part, any name) and whose last part may be ``**`` (one or
more parts): ``acme.*.weekly`` matches ``acme.eu.weekly``; ``acme.**`` matches
``acme.eu`` and ``acme.eu.weekly`` but not ``acme``. A pattern without wildcards is an exact
match. Anything else (``acme*``, ``**`` before the last part) is refused rather than guessed.

Preferences are Courier's ``RecipientPreferences``: checked field by field, then stored and
answered exactly as given (a subscription's preferences are the sender's document).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from tidings.domain.errors import ValidationError, index_path, key_path

# The width of the column that holds it.
MAX_LIST_ID = 255
# A pattern longer than any list id could not match one.
MAX_PATTERN = MAX_LIST_ID

_PART = re.compile(r"[^\s./*?#%\\\x00-\x1f\x7f]+")
_STATUSES = ("OPTED_IN", "OPTED_OUT", "REQUIRED")
_CHANNELS = ("direct_message", "email", "push", "sms", "webhook", "inbox")


class ListError(ValidationError):
    """A list id, pattern or preferences document is not valid; ``path`` names the field."""


def check_list_id(value: Any, path: str = "list_id") -> str:
    """``value`` if it is a valid list id; raises :class:`ListError` otherwise."""
    if not isinstance(value, str):
        raise ListError(path, "must be a string")
    if not value:
        raise ListError(path, "must not be empty")
    if len(value) > MAX_LIST_ID:
        raise ListError(path, f"must be at most {MAX_LIST_ID} characters")
    for part in value.split("."):
        if not _PART.fullmatch(part):
            raise ListError(
                path,
                f"is not a list id ({value[:80]!r}): dotted parts (a.b.c), each a non-empty "
                "name without whitespace, '*', '/', '?', '#', '%' or '\\'",
            )
    return value


@dataclass(frozen=True, slots=True)
class ListPattern:
    """A parsed list pattern: its parts, and whether the last one was ``**``."""

    parts: tuple[str, ...]  # names and "*"; without the trailing "**"
    rest: bool  # a trailing "**": one or more parts follow

    @property
    def literal_prefix(self) -> str:
        """The dotted names before the first wildcard ('' if it starts with one): every
        matching id starts with it, so a store can narrow its scan by it."""
        names: list[str] = []
        for part in self.parts:
            if part == "*":
                break
            names.append(part)
        return ".".join(names)

    @property
    def is_exact(self) -> bool:
        return not self.rest and "*" not in self.parts

    def matches(self, list_id: str) -> bool:
        parts = list_id.split(".")
        if self.rest:
            if len(parts) <= len(self.parts):
                return False
        elif len(parts) != len(self.parts):
            return False
        return all(p == "*" or p == name for p, name in zip(self.parts, parts, strict=False))


def parse_pattern(value: Any, path: str = "pattern") -> ListPattern:
    """Check a list pattern; raises :class:`ListError` naming what is wrong."""
    if not isinstance(value, str):
        raise ListError(path, "must be a string")
    if not value:
        raise ListError(path, "must not be empty")
    if len(value) > MAX_PATTERN:
        raise ListError(path, f"must be at most {MAX_PATTERN} characters")
    parts = value.split(".")
    rest = parts[-1] == "**"
    if rest:
        parts = parts[:-1]
    for i, part in enumerate(parts):
        if part == "**":
            raise ListError(path, f"is not a list pattern ({value[:80]!r}): '**' may only be last")
        if part != "*" and not _PART.fullmatch(part):
            raise ListError(
                path,
                f"is not a list pattern ({value[:80]!r}): dotted parts, each a name, '*' (one "
                f"part) or, last, '**' (one or more parts); part {i + 1} is {part[:80]!r}",
            )
    return ListPattern(tuple(parts), rest)


def check_preferences(value: Any, path: str = "preferences") -> dict[str, Any] | None:
    """Courier's ``RecipientPreferences`` (or null): ``{categories?, notifications?}``, each
    ``{name: {status, channel_preferences?: [{channel}], rules?: [{until, start?}]}}``.
    Returns the document as given; raises :class:`ListError` naming the first wrong field."""
    if value is None:
        return None
    doc = _mapping(value, path)
    for key, section in doc.items():
        at = key_path(path, key)
        if key not in ("categories", "notifications"):
            raise ListError(at, "is not a field of preferences (fields: categories, notifications)")
        if section is None:
            continue
        for name, details in _mapping(section, at).items():
            _check_details(details, key_path(at, name))
    return dict(doc)


def _check_details(value: Any, path: str) -> None:
    details = _mapping(value, path)
    known = ("status", "channel_preferences", "rules")
    for key in details:
        if key not in known:
            raise ListError(
                key_path(path, key), f"is not a field here (fields: {', '.join(known)})"
            )
    status = details.get("status")
    if status not in _STATUSES:
        raise ListError(key_path(path, "status"), f"must be one of {', '.join(_STATUSES)}")
    channels = details.get("channel_preferences")
    if channels is not None:
        at = key_path(path, "channel_preferences")
        for i, item in enumerate(_sequence(channels, at)):
            entry = _mapping(item, index_path(at, i))
            _only(entry, ("channel",), index_path(at, i))
            if entry.get("channel") not in _CHANNELS:
                raise ListError(
                    key_path(index_path(at, i), "channel"), f"must be one of {', '.join(_CHANNELS)}"
                )
    rules = details.get("rules")
    if rules is not None:
        at = key_path(path, "rules")
        for i, item in enumerate(_sequence(rules, at)):
            entry = _mapping(item, index_path(at, i))
            _only(entry, ("until", "start"), index_path(at, i))
            if not isinstance(entry.get("until"), str):
                raise ListError(key_path(index_path(at, i), "until"), "is required: a string")
            if entry.get("start") is not None and not isinstance(entry["start"], str):
                raise ListError(key_path(index_path(at, i), "start"), "must be a string")


def _mapping(value: Any, path: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise ListError(path, "must be an object")
    return value


def _sequence(value: Any, path: str) -> list[Any]:
    if not isinstance(value, list):
        raise ListError(path, "must be a list")
    return value


def _only(entry: Mapping[str, Any], fields: tuple[str, ...], path: str) -> None:
    for key in entry:
        if key not in fields:
            raise ListError(
                key_path(path, key), f"is not a field here (fields: {', '.join(fields)})"
            )


__all__ = [
    "MAX_LIST_ID",
    "MAX_PATTERN",
    "ListError",
    "ListPattern",
    "check_list_id",
    "check_preferences",
    "parse_pattern",
]
