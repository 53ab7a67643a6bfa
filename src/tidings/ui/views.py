"""What the pages show, shaped from stored rows: pure functions, no I/O, no HTTP.

Templates stay simple loops and conditions; every decision about what a person sees (which
fields of a history entry matter, how a hint splits into explanation and fix, how a secret
is hidden) is made here, where it can be tested without a browser.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from tidings.providers import registry
from tidings.providers.settings import public_settings

# The statuses Tidings moves messages through (Courier's names), for the filter.
STATUSES = (
    "ENQUEUED",
    "SENT",
    "DELIVERED",
    "OPENED",
    "CLICKED",
    "UNDELIVERABLE",
    "UNROUTABLE",
    "FILTERED",
    "CANCELED",
)
ATTEMPT_TYPES = frozenset({"SENT", "RETRYING", "IN_DOUBT", "UNDELIVERABLE"})
# Shown elsewhere in an entry (the request/answer block, the hint box, the raw JSON).
_SPECIAL_KEYS = frozenset({"request", "response", "duration_ms", "hint", "raw", "attempt"})
_RELATIVE = re.compile(r"^\s*(\d+)\s*([smhdw])\s*$", re.IGNORECASE)
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
REDACTED = "****"
LONG_FIELD = 240


def badge_class(status: str | None) -> str:
    """A CSS class per status family, so colour says good / bad / waiting at a glance."""
    value = (status or "").upper()
    if value in ("DELIVERED", "OPENED", "CLICKED"):
        return "badge-good"
    if value in ("UNDELIVERABLE", "UNROUTABLE", "FAILED"):
        return "badge-bad"
    if value in ("CANCELED", "FILTERED"):
        return "badge-muted"
    if value in ("RETRYING", "IN_DOUBT", "TEMPORARY_FAILURE", "THROTTLED"):
        return "badge-warn"
    return "badge-neutral"


def parse_since(text: str | None, *, now: datetime | None = None) -> datetime | None:
    """``15m``, ``2h``, ``3d``, ``1w`` ago, or an ISO date/time (UTC unless it says).

    Raises ValueError with a sentence for the page when the text is neither."""
    if not text or not text.strip():
        return None
    now = now or datetime.now(UTC)
    relative = _RELATIVE.match(text)
    if relative:
        amount, unit = int(relative.group(1)), relative.group(2).lower()
        return now - timedelta(**{_UNITS[unit]: amount})
    try:
        value = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ValueError(
            f"since: '{text}' is not a time; use 15m, 2h, 3d, 1w or 2025-01-31T08:00"
        ) from None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def fmt_time(value: datetime | str | None) -> str:
    """UTC, to the millisecond: events of one message are often milliseconds apart."""
    if value is None:
        return ""
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            return value
        value = parsed
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3] + "Z"


def fmt_size(size: Any) -> str:
    if not isinstance(size, int | float):
        return str(size or "")
    if size < 1024:
        return f"{int(size)} B"
    if size < 1024 * 1024:
        return f"{size / 1024:.1f} KiB"
    return f"{size / (1024 * 1024):.1f} MiB"


@dataclass(frozen=True, slots=True)
class HintView:
    """A hint split for the hint box: what happened, why, and what to do."""

    title: str
    explanation: str
    fix: str


def split_hint(text: str | None) -> HintView | None:
    """Recover the parts of a stored hint (stored as one paragraph, see ``Hint.text``).

    A known hint is matched by its title, so its parts come from the table itself; an
    unknown paragraph is split at ``Fix:``."""
    if not text:
        return None
    for hint in registry.all_hints():
        if text.startswith(hint.title):
            return HintView(hint.title, hint.explanation, hint.fix)
    before, marker, fix = text.partition(" Fix: ")
    if not marker:
        return HintView("What went wrong", text, "")
    title, dot, rest = before.partition(". ")
    if dot and rest:
        return HintView(title, rest, fix)
    return HintView("What went wrong", before, fix)


class Redactor:
    """Hides known secrets wherever they might appear in what a page shows.

    History never stores an API key (the request record is redacted when written); this is
    a second line, because a page is the one place such a mistake would be shown to people."""

    def __init__(self, secrets: Iterable[str | None]) -> None:
        # Longest first, so a secret that contains another is replaced whole; very short
        # values are skipped, as replacing them would garble ordinary text.
        self._secrets = sorted({s for s in secrets if s and len(s) >= 6}, key=len, reverse=True)

    def text(self, value: str) -> str:
        for secret in self._secrets:
            value = value.replace(secret, REDACTED)
        return value

    def data(self, value: Any) -> Any:
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, Mapping):
            return {self.text(str(k)): self.data(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self.data(v) for v in value]
        return value


def pretty_json(value: Any) -> str:
    return json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False, default=str)


def pretty_body(body: str | None) -> str:
    """An answer body, indented when it is JSON (Mailgun's answers are)."""
    if not body:
        return ""
    try:
        return pretty_json(json.loads(body))
    except (ValueError, TypeError):
        return body


def scalar(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, bool) or value is None:
        return json.dumps(value)
    if isinstance(value, int | float):
        return str(value)
    return json.dumps(value, sort_keys=True, ensure_ascii=False, default=str)


@dataclass(frozen=True, slots=True)
class FieldView:
    """One form field of a request; long values (the HTML part) are shown folded."""

    name: str
    value: str

    @property
    def long(self) -> bool:
        return len(self.value) > LONG_FIELD or self.value.count("\n") > 3


@dataclass(slots=True)
class AttemptView:
    """One call to Mailgun as recorded: the request (never the key), the answer, the time."""

    number: Any
    method: str
    url: str
    region: str
    fields: list[FieldView]
    files: list[dict[str, str]]
    status: Any
    body: str
    duration_ms: Any


@dataclass(slots=True)
class EntryView:
    """One history entry, ready for the timeline."""

    ts: str
    type: str
    badge: str
    facts: list[tuple[str, str]] = field(default_factory=list)
    attempt: AttemptView | None = None
    hint: HintView | None = None
    raw: str | None = None


def _attempt(data: Mapping[str, Any]) -> AttemptView | None:
    request = data.get("request")
    if not isinstance(request, Mapping):
        return None
    response = data.get("response") if isinstance(data.get("response"), Mapping) else {}
    assert isinstance(response, Mapping)
    fields = [
        FieldView(str(pair[0]), str(pair[1]))
        for pair in request.get("fields") or []
        if isinstance(pair, list | tuple) and len(pair) == 2
    ]
    files = [
        {
            "field": str(f.get("field", "")),
            "name": str(f.get("filename", "")),
            "type": str(f.get("content_type", "")),
            "size": fmt_size(f.get("size")),
        }
        for f in request.get("files") or []
        if isinstance(f, Mapping)
    ]
    return AttemptView(
        number=data.get("attempt"),
        method=str(request.get("method", "POST")),
        url=str(request.get("url", "")),
        region=str(request.get("region") or data.get("region") or ""),
        fields=fields,
        files=files,
        status=response.get("status"),
        body=pretty_body(response.get("body")),
        duration_ms=data.get("duration_ms"),
    )


def event_hint(data: Mapping[str, Any]) -> HintView | None:
    """The hint for a failure a provider reported in an event (a bounce, a deferral).

    Send attempts store their hint when they are recorded; events carry only the provider's
    words and code, so their hint is looked up here, from the provider's table."""
    words = data.get("error_message") or data.get("detail")
    code = data.get("code")
    if not isinstance(words, str) and not isinstance(code, int):
        return None
    integration = data.get("integration")
    key = integration.get("provider") if isinstance(integration, Mapping) else None
    found = registry.hint_for(
        key if isinstance(key, str) else None,
        None,
        words if isinstance(words, str) else None,
        code if isinstance(code, int) else None,
    )
    return HintView(found.title, found.explanation, found.fix) if found else None


def entry_view(type_: str, ts: datetime, data: Mapping[str, Any], redact: Redactor) -> EntryView:
    clean = redact.data(dict(data))
    assert isinstance(clean, dict)
    facts = [
        (key, scalar(value))
        for key, value in clean.items()
        if key not in _SPECIAL_KEYS and value not in (None, "", [], {})
    ]
    raw = clean.get("raw")
    hint = split_hint(clean.get("hint")) if isinstance(clean.get("hint"), str) else None
    if hint is None and raw is not None:
        hint = event_hint(clean)
    return EntryView(
        ts=fmt_time(ts),
        type=type_,
        badge=badge_class(type_),
        facts=facts,
        attempt=_attempt(clean) if type_ in ATTEMPT_TYPES or "request" in clean else None,
        hint=hint,
        raw=pretty_json(raw) if raw is not None else None,
    )


def masked_settings(settings: Mapping[str, Any]) -> list[tuple[str, str]]:
    """Provider settings for display: secrets as their last four characters at most (see
    ``public_settings``), and a proxy URL without its password."""
    shown = public_settings(dict(settings))
    proxy = shown.get("proxy_url")
    if isinstance(proxy, str):
        shown["proxy_url"] = mask_url_password(proxy)
    return [(key, scalar(value)) for key, value in sorted(shown.items()) if value is not None]


def mask_url_password(url: str) -> str:
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    user = parts.username or ""
    return urlunsplit((parts.scheme, f"{user}:{REDACTED}@{host}", parts.path, parts.query, ""))


def safe_next(target: str | None) -> str:
    """Where to go after login: a UI path on this server, never another site (an open
    redirect would let a link to our login page send a user anywhere)."""
    if not target or "\\" in target:
        return "/ui/"
    if target == "/ui" or target.startswith(("/ui/", "/ui?")):
        return target
    return "/ui/"
