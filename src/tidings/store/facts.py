"""Status facts as JSON (the ``messages.facts`` column) and the columns derived from them."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from tidings.domain.status import (
    Failure,
    Reason,
    StatusFacts,
    Unroutable,
    derive,
    error_message,
)

_TIMES = ("enqueued_at", "sent_at", "delivered_at", "opened_at", "clicked_at", "canceled_at")


def _t(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


def dump(facts: StatusFacts) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name in _TIMES:
        value = getattr(facts, name)
        if value is not None:
            out[name] = value.isoformat()
    if facts.failure is not None:
        f = facts.failure
        out["failure"] = {
            "at": f.at.isoformat(),
            "reason": f.reason.value,
            "code": f.code,
            "message": f.message,
        }
    if facts.unroutable is not None:
        u = facts.unroutable
        out["unroutable"] = {"at": u.at.isoformat(), "reason": u.reason.value, "why": u.why}
    return out


def load(doc: dict[str, Any] | None) -> StatusFacts:
    doc = doc or {}
    failure = doc.get("failure")
    unroutable = doc.get("unroutable")
    return StatusFacts(
        **{name: _t(doc.get(name)) for name in _TIMES},
        failure=Failure(
            at=datetime.fromisoformat(failure["at"]),
            reason=Reason(failure["reason"]),
            code=failure.get("code"),
            message=failure.get("message"),
        )
        if failure
        else None,
        unroutable=Unroutable(
            at=datetime.fromisoformat(unroutable["at"]),
            reason=Reason(unroutable["reason"]),
            why=unroutable.get("why"),
        )
        if unroutable
        else None,
    )


def columns(facts: StatusFacts) -> dict[str, Any]:
    """The message columns that mirror the facts, for filtering and listing."""
    status, reason = derive(facts)
    return {
        "facts": dump(facts),
        "status": status.value,
        "reason": reason.value if reason else None,
        "error": error_message(facts),
        "sent": facts.sent_at,
        "delivered": facts.delivered_at,
        "opened": facts.opened_at,
        "clicked": facts.clicked_at,
    }
