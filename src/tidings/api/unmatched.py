"""Provider events that matched no message: kept and shown, never treated as errors.

They happen when Mailgun reports on mail Tidings did not send (another application using the
same domain), or on a message deleted since.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Query

from tidings.api.schemas import MAX_ID
from tidings.runtime import Runtime, runtime
from tidings.store.clock import to_ms
from tidings.store.events import unmatched_page

router = APIRouter(prefix="/events", tags=["events"])


@router.get("/unmatched")
async def list_unmatched(
    rt: Runtime = Depends(runtime),
    cursor: int | None = Query(
        default=None, ge=0, le=MAX_ID, description="Show events older than this id."
    ),
    limit: int = Query(default=50, ge=1, le=500),
) -> dict[str, Any]:
    async with rt.db.read() as conn:
        rows, more = await unmatched_page(conn, before_id=cursor, limit=limit)
    return {
        "paging": {"cursor": str(rows[-1].id) if more else None, "more": more},
        "results": [
            {
                "id": row.id,
                "event": row.kind,
                "recipient": row.recipient,
                "reference": row.provider_message_id,
                "source": row.source,
                "provider_id": row.provider_id,
                "received": to_ms(row.received_at),
                "raw": row.raw,
            }
            for row in rows
        ],
    }
