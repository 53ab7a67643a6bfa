"""``GET /metrics``: Prometheus' text format, behind the API key like every other route."""

from __future__ import annotations

from fastapi import APIRouter, Depends
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from tidings.runtime import Runtime, runtime
from tidings.store import messages
from tidings.store.clock import utcnow
from tidings.store.database import is_database_error

router = APIRouter(tags=["metrics"])


@router.get("/metrics", include_in_schema=False)
async def metrics(rt: Runtime = Depends(runtime)) -> Response:
    try:
        async with rt.db.read() as conn:
            by_status = await messages.count_by_status(conn)
            due = await messages.count_due(conn, now=utcnow())
    except Exception as exc:
        if not is_database_error(exc) and not isinstance(exc, OSError):
            raise
        # The database is down: the process's own metrics (loop failures) matter most now.
        rt.metrics.messages.clear()
        return Response(generate_latest(rt.metrics.registry), media_type=CONTENT_TYPE_LATEST)
    rt.metrics.messages.clear()
    for status, count in by_status.items():
        rt.metrics.messages.labels(status).set(count)
    rt.metrics.queue_due.set(due)
    return Response(generate_latest(rt.metrics.registry), media_type=CONTENT_TYPE_LATEST)
