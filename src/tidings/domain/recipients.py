"""Courier ``message.to``: one recipient or a list of them, checked and made plain data.

A recipient names someone by ``user_id`` (resolved through the stored profile), by
address (``email``, ``phone_number``), or by ``list_id``. Whatever else it carries
(``locale``, or any extra key) is merged over the stored profile for this send only;
:meth:`Recipient.profile_overrides` gives exactly that part.

Addresses are checked for a sane shape, not against RFC 5322 in full: a bare
``local@domain`` with a dotted domain. Quoted local parts and display names
(``"Jane" <jane@example.com>``) are refused, because the address is also the
suppression-list key and the recipient Mailgun reports back, and both must compare
as plain addresses.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from tidings.domain.errors import ValidationError, index_path, key_path

# Keys Courier gives a meaning; any other key of a recipient is a profile field.
_KNOWN_KEYS = frozenset(
    {
        "user_id",
        "email",
        "phone_number",
        "list_id",
        "locale",
        "tenant_id",
        "data",
        "context",
        "preferences",
    }
)
_STRING_KEYS = ("user_id", "email", "phone_number", "list_id", "locale", "tenant_id")
# A user id is a stored key (the profile's, the message's recipient): at most this long.
MAX_USER_ID = 256

# Printable ASCII without the characters that need quoting in a local part.
_LOCAL_PART = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~.-]{1,64}")
_LABEL = re.compile(r"(?!-)[A-Za-z0-9-]{1,63}(?<!-)")


class RecipientError(ValidationError):
    """``message.to`` is not valid; ``path`` names the field."""


@dataclass(frozen=True, slots=True)
class Recipient:
    """One recipient of a send, as the request gave it."""

    user_id: str | None = None
    email: str | None = None
    phone_number: str | None = None
    list_id: str | None = None
    locale: str | None = None
    tenant_id: str | None = None
    data: Mapping[str, Any] = field(default_factory=dict)
    preferences: Mapping[str, Any] = field(default_factory=dict)
    # Keys Courier does not name: profile fields given inline.
    extra: Mapping[str, Any] = field(default_factory=dict)

    def profile_overrides(self) -> dict[str, Any]:
        """The fields that override the stored profile for this send."""
        overrides = dict(self.extra)
        for key in ("email", "phone_number", "locale"):
            value = getattr(self, key)
            if value is not None:
                overrides[key] = value
        return overrides


def parse_recipients(value: Any, path: str = "message.to") -> list[Recipient]:
    """Check ``message.to`` (an object or a non-empty list) and return its recipients.

    Raises :class:`RecipientError` naming the first wrong field.
    """
    if isinstance(value, Mapping):
        return [parse_recipient(value, path)]
    if isinstance(value, list):
        if not value:
            raise RecipientError(path, "must name at least one recipient")
        return [parse_recipient(item, index_path(path, i)) for i, item in enumerate(value)]
    raise RecipientError(path, "must be a recipient object or a list of them")


def parse_recipient(value: Any, path: str) -> Recipient:
    """Check one recipient object."""
    if not isinstance(value, Mapping):
        raise RecipientError(path, "must be an object")
    strings: dict[str, str | None] = {}
    for key in _STRING_KEYS:
        item = value.get(key)
        if item is not None and not isinstance(item, str):
            raise RecipientError(key_path(path, key), "must be a string")
        # An empty string names no one; treat it as absent rather than as an address.
        strings[key] = (item.strip() or None) if isinstance(item, str) else None

    user_id = strings["user_id"]
    if user_id is not None and len(user_id) > MAX_USER_ID:
        raise RecipientError(key_path(path, "user_id"), f"must be at most {MAX_USER_ID} characters")
    email = strings["email"]
    if email is not None and not is_valid_email(email):
        raise RecipientError(key_path(path, "email"), "is not a valid email address")
    if not any(strings[key] for key in ("user_id", "email", "phone_number", "list_id")):
        raise RecipientError(path, "must have an email, a user_id, a phone_number or a list_id")

    data = _object(value, "data", path)
    preferences = _object(value, "preferences", path)
    context = _object(value, "context", path)
    tenant_id = strings["tenant_id"]
    if tenant_id is None and context.get("tenant_id") is not None:
        if not isinstance(context["tenant_id"], str):
            raise RecipientError(key_path(path, "context.tenant_id"), "must be a string")
        tenant_id = context["tenant_id"]

    return Recipient(
        user_id=strings["user_id"],
        email=email,
        phone_number=strings["phone_number"],
        list_id=strings["list_id"],
        locale=strings["locale"],
        tenant_id=tenant_id,
        data=data,
        preferences=preferences,
        extra={k: v for k, v in value.items() if k not in _KNOWN_KEYS},
    )


def is_valid_email(address: str) -> bool:
    """Whether ``address`` is a plain ``local@domain`` address with a dotted domain."""
    if len(address) > 254 or address.count("@") != 1:
        return False
    local, domain = address.split("@")
    if not _LOCAL_PART.fullmatch(local) or local.startswith(".") or local.endswith("."):
        return False
    if ".." in local:
        return False
    try:
        # Internationalised domains are fine; their ASCII form must be a valid name.
        ascii_domain = domain.encode("idna").decode("ascii")
    except UnicodeError:
        return False
    labels = ascii_domain.split(".")
    return len(labels) >= 2 and all(_LABEL.fullmatch(label) for label in labels)


def _object(value: Mapping[str, Any], key: str, path: str) -> dict[str, Any]:
    item = value.get(key)
    if item is None:
        return {}
    if not isinstance(item, Mapping):
        raise RecipientError(key_path(path, key), "must be an object")
    return dict(item)


__all__ = [
    "Recipient",
    "RecipientError",
    "is_valid_email",
    "parse_recipient",
    "parse_recipients",
]
