"""Send requests: ``GET /requests/{request_id}`` (a Tidings extension) and Courier's
``requests.archive`` (``PUT /requests/{request_id}/archive``).

A ``/send`` answers a ``requestId``: the message id when it made one message to one
recipient, else a ``req_…`` id for all of them (a list send may make none). ``GET`` answers
``{requestId, total, counts: {STATUS: n}}`` (``archived`` too, once archived); the messages
themselves are at ``GET /messages?messageId=<requestId>``. Archiving keeps the messages
(and their delivery) but leaves them out of ``GET /messages`` unless ``archived=true``.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Response

from tidings.errors import NotFound
from tidings.runtime import Runtime, runtime
from tidings.store import requests as store
from tidings.store.clock import to_ms

router = APIRouter(prefix="/requests", tags=["requests"])

RequestId = Annotated[str, Path(max_length=40)]


@router.get("/{request_id}")
async def get_request(request_id: RequestId, rt: Runtime = Depends(runtime)) -> dict[str, Any]:
    """How many messages the request made, and how many are in each status now."""
    async with rt.db.read() as conn:
        found = await store.get(conn, request_id)
        if found is None:
            raise NotFound(f"No request '{request_id}'")
        counts = await store.counts(conn, request_id)
    return {
        "requestId": found.id,
        "total": found.total,
        "counts": counts,
        "enqueued": to_ms(found.created),
        "archived": to_ms(found.archived_at),
    }


@router.put("/{request_id}/archive", status_code=204)
async def archive_request(request_id: RequestId, rt: Runtime = Depends(runtime)) -> Response:
    async with rt.db.write() as conn:
        if not await store.archive(conn, request_id):
            raise NotFound(f"No request '{request_id}'")
    return Response(status_code=204)
