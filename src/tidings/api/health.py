"""``GET /health/ready``: the readiness probe (``/health`` is the liveness one).

Ready when the database answers a ``SELECT 1`` within ``TIDINGS_READY_DB_TIMEOUT_S`` and
every background loop of this process has completed a cycle recently: within
``TIDINGS_READY_STALE_S`` plus the loop's own cadence (see ``tidings.workers.supervise``).
An API-only process (``--no-workers``) has no loops and reports the database only. No API
key is needed, so the answer names checks and error kinds, never settings or error text.
"""

from __future__ import annotations

import time
from typing import Any

from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse

from tidings.runtime import LoopHealth, Runtime, runtime

router = APIRouter(tags=["health"])


@router.get("/health/ready", include_in_schema=False)
async def ready(rt: Runtime = Depends(runtime)) -> JSONResponse:
    checks = [await _database(rt), *(_loop(health, time.time()) for health in rt.loops.values())]
    ok = all(check["ok"] for check in checks)
    return JSONResponse(
        {"status": "ready" if ok else "not ready", "checks": checks},
        status_code=200 if ok else 503,
        headers={"cache-control": "no-store"},
    )


async def _database(rt: Runtime) -> dict[str, Any]:
    timeout = rt.settings.ready_db_timeout_s
    started = time.monotonic()
    try:
        await rt.db.ping(timeout)
    except TimeoutError:
        return {"name": "database", "ok": False, "why": f"no answer within {timeout:g} s"}
    except Exception as exc:
        return {"name": "database", "ok": False, "why": f"unavailable ({type(exc).__name__})"}
    took_ms = round((time.monotonic() - started) * 1000, 1)
    return {"name": "database", "ok": True, "why": f"answered in {took_ms:g} ms"}


def _loop(health: LoopHealth, now: float) -> dict[str, Any]:
    check: dict[str, Any] = {
        "name": f"loop:{health.name}",
        "ok": True,
        "stale_after_s": health.stale_after_s,
        "last_success_age_s": None
        if health.last_success is None
        else round(now - health.last_success, 1),
    }
    if health.failing_since is not None:
        check["failing_for_s"] = round(now - health.failing_since, 1)
        check["failures"] = health.failures
        check["error"] = health.last_error
    if not health.running:
        check.update(ok=False, why="the loop is not running")
    elif health.stale(now):
        since = "its last successful cycle" if health.last_success else "it started"
        failing = f"; failing ({health.last_error})" if health.failing_since is not None else ""
        check.update(
            ok=False,
            why=f"no successful cycle for {health.stale_after_s:g} s since {since}{failing}",
        )
    elif health.failing_since is not None:
        check["why"] = (
            f"failing ({health.last_error}), retrying; not ready after "
            f"{health.stale_after_s:g} s without a successful cycle"
        )
    else:
        check["why"] = "cycling"
    return check
