"""``GET /metrics``: Prometheus' text format, behind the API key like every other route."""

from __future__ import annotations

import sqlalchemy as sa
from fastapi import APIRouter, Depends
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from tidings.runtime import Runtime, runtime
from tidings.store.clock import utcnow
from tidings.store.database import is_database_error
from tidings.store.tables import messages

router = APIRouter(tags=["metrics"])


@router.get("/metrics", include_in_schema=False)
async def metrics(rt: Runtime = Depends(runtime)) -> Response:
    try:
        async with rt.db.read() as conn:
            by_status = list(
                await conn.execute(
                    sa.select(messages.c.status, sa.func.count()).group_by(messages.c.status)
                )
            )
            due = await conn.scalar(
                sa.select(sa.func.count())
                .select_from(messages)
                .where(messages.c.queued.is_(True), messages.c.next_attempt_at <= utcnow())
            )
    except Exception as exc:
        if not is_database_error(exc) and not isinstance(exc, OSError):
            raise
        # The database is down: the process's own metrics (loop failures) matter most now.
        rt.metrics.messages.clear()
        return Response(generate_latest(rt.metrics.registry), media_type=CONTENT_TYPE_LATEST)
    rt.metrics.messages.clear()
    for status, count in by_status:
        rt.metrics.messages.labels(status).set(count)
    rt.metrics.queue_due.set(int(due or 0))
    return Response(generate_latest(rt.metrics.registry), media_type=CONTENT_TYPE_LATEST)
