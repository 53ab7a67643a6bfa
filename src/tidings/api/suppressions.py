"""The suppression list API: ``GET /suppressions``, ``DELETE /suppressions/{address}``."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Query, Response

from tidings.errors import NotFound
from tidings.runtime import Runtime, runtime
from tidings.store import suppressions

router = APIRouter(prefix="/suppressions", tags=["suppressions"])


@router.get("")
async def list_suppressions(
    rt: Runtime = Depends(runtime),
    cursor: str | None = None,
    limit: int = Query(default=100, ge=1, le=1000),
) -> dict[str, Any]:
    async with rt.db.read() as conn:
        rows = await suppressions.list_all(conn, limit=limit + 1, after=cursor)
    more = len(rows) > limit
    rows = rows[:limit]
    return {
        "paging": {"cursor": rows[-1].address if more else None, "more": more},
        "results": [r.as_dict() for r in rows],
    }


@router.get("/{address}")
async def get_suppression(address: str, rt: Runtime = Depends(runtime)) -> dict[str, Any]:
    async with rt.db.read() as conn:
        found = await suppressions.get(conn, address)
    if found is None:
        raise NotFound()
    return found.as_dict()


@router.delete("/{address}", status_code=204)
async def delete_suppression(address: str, rt: Runtime = Depends(runtime)) -> Response:
    async with rt.db.write() as conn:
        removed = await suppressions.remove(conn, address)
    if not removed:
        raise NotFound()
    return Response(status_code=204)
