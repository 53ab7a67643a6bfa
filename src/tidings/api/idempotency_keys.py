"""Courier's ``Idempotency-Key``: when a stored answer expires, and how it is replayed.

The answers themselves are stored by :mod:`tidings.store.idempotency`; every route that
takes the header (``/send``, brands, notifications, routing strategies) answers a repeat
the same way: the first answer again, or a 409 when the body differs.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from fastapi.responses import JSONResponse, Response

from tidings.api.errors import error_response
from tidings.api.schemas import parse_epoch_ms, parse_when
from tidings.errors import BadRequest
from tidings.store import idempotency

IDEMPOTENCY_MIN = timedelta(hours=24)


def expiry(header: str | None, now: datetime) -> datetime:
    """When a key's answer may be forgotten: ``x-idempotency-expiration`` (epoch ms or ISO
    8601), never sooner than 24 hours from ``now``."""
    if not header:
        return now + IDEMPOTENCY_MIN
    value = header.strip()
    try:
        at = (
            parse_epoch_ms(value, "x-idempotency-expiration")
            if value.isdigit()
            else parse_when(value, "x-idempotency-expiration")
        )
    except ValueError as exc:
        raise BadRequest(f"{exc} (epoch milliseconds or an ISO 8601 date are accepted)") from None
    return max(at, now + IDEMPOTENCY_MIN)


def replay(stored: idempotency.StoredAnswer, request_hash: str) -> Response:
    """The stored answer for a repeated key; 409 when the body is not the first one."""
    if stored.request_hash != request_hash:
        return error_response(
            409,
            "Idempotency-Key was already used with a different request body",
            headers={"x-should-retry": "false"},
        )
    if stored.status_code == 204:
        return Response(status_code=204)
    return JSONResponse(stored.body, status_code=stored.status_code)
