"""Mailgun's answers (and failures to get one) -> what the dispatcher does next.

Everything here is pure: the client hands over the status, body and headers it read, or the
exception it caught and how far the request got, and gets a :class:`SendOutcome`. The rules
(issue 3, item 6):

* 2xx -> SENT, with Mailgun's message id (angle brackets removed, as events carry it).
* 401 -> FAILED: the key is wrong or the domain lives in the other region.
* 420/429 -> THROTTLED at the time Mailgun gave (``Retry-After``, ``X-RateLimit-Reset`` or
  "try again after <date>" in the body), unless the body says the domain is not allowed to
  send for another reason.
* 5xx and 408 -> RETRY. Other 4xx (400, 403, 404, 413) and any "not allowed to send" ->
  FAILED with Mailgun's own message.
* No answer: the request never arrived (refused, DNS, connect timeout, broken mid-body) ->
  RETRY; it was fully written and then the connection broke or timed out -> IN_DOUBT, because
  Mailgun may have accepted it.
"""

from __future__ import annotations

import enum
import json
import re
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime

from tidings.providers.base import (
    OutcomeKind,
    ProviderAPIError,
    ProviderError,
    ProviderRefused,
    ProviderUnreachable,
    RequestError,
    RequestRecord,
    SendOutcome,
)
from tidings.providers.mailgun.hints import hint_for

__all__ = [
    "DEFAULT_THROTTLE_BACKOFF",
    "UNAUTHORIZED_MESSAGE",
    "MailgunAPIError",
    "MailgunConfigError",
    "MailgunConnectionError",
    "MailgunError",
    "PayloadError",
    "Progress",
    "classify",
    "classify_transport_error",
    "mailgun_message",
    "parse_http_date",
    "throttle_retry_at",
]

# When a throttled answer names no time at all. Mailgun's probation limits are hourly, but a
# minute is enough to not hammer it and short enough to not waste an allowance that reset.
DEFAULT_THROTTLE_BACKOFF = timedelta(seconds=60)
UNAUTHORIZED_MESSAGE = "Mailgun refused the API key (401 Forbidden): wrong API key or wrong region"
# Bodies are kept in the message history; Mailgun's are small, an HTML error page is not.
MAX_BODY_CHARS = 10_000

_TRY_AGAIN_AFTER = re.compile(r"try again after\s+(.+?)\s*\.?\s*$", re.IGNORECASE)
_THROTTLE_WORDS = re.compile(r"limit exceeded|try again after", re.IGNORECASE)
_NOT_ALLOWED = re.compile(r"not allowed to send", re.IGNORECASE)


class MailgunError(ProviderError):
    """Base of every error this package raises; ``str()`` is meant for a person."""


class PayloadError(MailgunError, RequestError):
    """The message cannot be turned into a valid Mailgun request (e.g. more than 3 tags)."""


class MailgunConfigError(MailgunError, ProviderRefused):
    """The provider configuration cannot work as given (e.g. a SOCKS proxy without
    ``aiohttp-socks`` installed, an unsupported proxy scheme)."""


class MailgunConnectionError(MailgunError, ProviderUnreachable):
    """Mailgun could not be reached, or the connection broke before it answered."""


class MailgunAPIError(MailgunError, ProviderAPIError):
    """Mailgun answered an API call (events, domains, webhooks) with an error."""


class Progress(enum.Enum):
    """How far a request got before the connection failed."""

    NOT_CONNECTED = "not_connected"  # DNS, refused, connect timeout: nothing was sent
    PARTIALLY_WRITTEN = "partially_written"  # broke mid-body: Mailgun cannot have parsed it
    WRITTEN = "written"  # fully written: Mailgun may have accepted it


def mailgun_message(body: str) -> str:
    """Mailgun's human message: ``{"message": ...}`` when JSON, else the text (401 answers
    the bare word ``Forbidden``)."""
    try:
        data = json.loads(body)
    except ValueError:
        return body.strip()[:500]
    if isinstance(data, dict) and isinstance(data.get("message"), str):
        return str(data["message"])
    return body.strip()[:500]


def parse_http_date(value: str) -> datetime | None:
    """An RFC 2822 / HTTP date as an aware UTC datetime, or ``None`` if it is not one.

    Mailgun writes ``Mon, 25 Aug 2025 07:00:31 UTC``; a date with ``-0000`` parses naive
    and is taken as UTC too.
    """
    try:
        parsed = parsedate_to_datetime(value.strip())
    except (TypeError, ValueError, IndexError):
        return None
    if parsed.tzinfo is None:
        return parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def _header(headers: Mapping[str, str], name: str) -> str | None:
    lowered = name.lower()
    for key, value in headers.items():
        if key.lower() == lowered:
            return value
    return None


def throttle_retry_at(headers: Mapping[str, str], message: str, now: datetime) -> datetime:
    """When a throttled request may be sent again: ``Retry-After`` (seconds or an HTTP
    date), then ``X-RateLimit-Reset`` (epoch seconds; small values are taken as seconds from
    now), then "try again after <date>" in Mailgun's message, else a default backoff.
    Never earlier than ``now``."""
    candidate: datetime | None = None
    retry_after = _header(headers, "Retry-After")
    if retry_after:
        try:
            candidate = now + timedelta(seconds=float(retry_after))
        except ValueError:
            candidate = parse_http_date(retry_after)
    reset = _header(headers, "X-RateLimit-Reset")
    if candidate is None and reset:
        try:
            value = float(reset)
        except ValueError:
            value = -1.0
        if value >= 1e9:  # an epoch; anything smaller can only be a delay
            candidate = datetime.fromtimestamp(value, tz=UTC)
        elif value >= 0:
            candidate = now + timedelta(seconds=value)
    if candidate is None:
        match = _TRY_AGAIN_AFTER.search(message)
        if match:
            candidate = parse_http_date(match.group(1))
    if candidate is None:
        candidate = now + DEFAULT_THROTTLE_BACKOFF
    return max(candidate, now)


def _message_id(body: str) -> str | None:
    try:
        data = json.loads(body)
    except ValueError:
        return None
    if not isinstance(data, dict) or not isinstance(data.get("id"), str) or not data["id"]:
        return None
    return str(data["id"]).strip().strip("<>")


def classify(
    status_code: int,
    body: str,
    headers: Mapping[str, str],
    *,
    request: RequestRecord,
    now: datetime,
    duration_ms: float = 0.0,
) -> SendOutcome:
    """Turn one Mailgun Messages API answer into an outcome, with a hint when one is known."""
    kept_body = body[:MAX_BODY_CHARS]
    if 200 <= status_code < 300:
        message_id = _message_id(body)
        if message_id is None:
            # Real Mailgun always returns an id: something else answered (a captive proxy, a
            # wrong base URL). The message may or may not have gone out: look it up.
            return SendOutcome(
                kind=OutcomeKind.IN_DOUBT,
                request=request,
                status_code=status_code,
                response_body=kept_body,
                error_message=f"{status_code} answer without a Mailgun message id",
                duration_ms=duration_ms,
            )
        return SendOutcome(
            kind=OutcomeKind.SENT,
            request=request,
            status_code=status_code,
            response_body=kept_body,
            provider_message_id=message_id,
            duration_ms=duration_ms,
        )

    message = mailgun_message(body) or f"HTTP {status_code}"
    hint = hint_for(status_code, message)
    hint_text = hint.text() if hint else None
    retry_at: datetime | None = None
    if status_code == 401:
        kind = OutcomeKind.FAILED
        message = f"{UNAUTHORIZED_MESSAGE} (region: {request.region})"
    elif status_code in (420, 429):
        if _NOT_ALLOWED.search(message) and not _THROTTLE_WORDS.search(message):
            kind = OutcomeKind.FAILED
        else:
            kind = OutcomeKind.THROTTLED
            retry_at = throttle_retry_at(headers, message, now)
    elif _NOT_ALLOWED.search(message):
        kind = OutcomeKind.FAILED
    elif status_code >= 500 or status_code == 408:
        kind = OutcomeKind.RETRY
    elif 400 <= status_code < 500:
        kind = OutcomeKind.FAILED
    else:  # 1xx/3xx: not an answer Mailgun gives to a POST; retrying will not change it
        kind = OutcomeKind.FAILED
        message = f"unexpected answer {status_code} from {request.url}: {message}"
    return SendOutcome(
        kind=kind,
        request=request,
        status_code=status_code,
        response_body=kept_body,
        retry_at=retry_at,
        error_message=message,
        hint=hint_text,
        duration_ms=duration_ms,
        provider_fault=kind is OutcomeKind.FAILED and _about_the_account(status_code, message),
    )


def _about_the_account(status_code: int, message: str) -> bool:
    """A refusal about the key, account or domain (another provider may well take the
    message), not about this recipient or this message (no other provider would)."""
    return status_code in (401, 403, 404) or bool(_NOT_ALLOWED.search(message))


def _describe(error: BaseException) -> str:
    text = str(error).strip()
    name = type(error).__name__
    if isinstance(error, TimeoutError) and not text:
        return "timed out"
    return f"{name}: {text}" if text else name


def classify_transport_error(
    error: BaseException,
    progress: Progress,
    *,
    request: RequestRecord,
    duration_ms: float = 0.0,
) -> SendOutcome:
    """An outcome for a request that got no answer, from how far it got."""
    what = _describe(error)
    if progress is Progress.WRITTEN:
        return SendOutcome(
            kind=OutcomeKind.IN_DOUBT,
            request=request,
            error_message=(
                f"no answer from Mailgun after the request was sent ({what}); it may have "
                "been accepted: look it up by its v:tidings-id before sending again"
            ),
            duration_ms=duration_ms,
        )
    where = (
        "could not reach Mailgun"
        if progress is Progress.NOT_CONNECTED
        else ("the connection broke while the request was being sent")
    )
    return SendOutcome(
        kind=OutcomeKind.RETRY,
        request=request,
        error_message=f"{where} ({what}); the request did not arrive, so it is safe to retry",
        duration_ms=duration_ms,
    )
