"""Courier's MessageDetails for a message row: what the API answers and status feeds carry."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from tidings.store.clock import to_ms


def message_details(row: sa.Row[Any]) -> dict[str, Any]:
    """Courier's MessageDetails, plus Tidings' own fields (requestId, hint, traceId)."""
    return {
        "id": row.id,
        "status": row.status,
        "enqueued": to_ms(row.enqueued),
        "sent": to_ms(row.sent),
        "delivered": to_ms(row.delivered),
        "opened": to_ms(row.opened),
        "clicked": to_ms(row.clicked),
        "recipient": row.recipient or "",
        "recipientEmail": row.recipient_email,
        "event": row.event or "",
        "notification": "",
        "error": row.error,
        "reason": row.reason,
        "hint": row.hint,
        "requestId": row.request_id,
        "traceId": row.trace_id,
    }
