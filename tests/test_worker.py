"""``tidings worker`` alone (a real process) is wired like ``tidings serve``: a provider key
stored in the database is masked in its logs from the start, before any batch teaches it.

The stored configuration points at a local server that answers the poller's Events API call
with a 500 whose message carries the key (as a broken proxy might echo it); the poller logs
that answer, and the worker never loaded a batch that would have taught it the key.
"""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta
from pathlib import Path

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from tests.support.processes import WORKER, spawn, stop
from tests.support.servers import serve_asgi
from tidings.store import messages, providers
from tidings.store.clock import utcnow
from tidings.store.database import Database

KEY = "key-stored-only-in-the-database-4242abcd"
DOMAIN = "mg.example.test"


def _echoing_mailgun(hits: list[str]) -> Starlette:
    async def events(request: Request) -> JSONResponse:
        hits.append(request.url.path)
        return JSONResponse({"message": f"account suspended for {KEY}"}, status_code=500)

    return Starlette(routes=[Route("/v3/{domain}/events", events)])


async def _seed(url: str, host: str) -> None:
    db = Database(url)
    await db.upgrade()
    try:
        async with db.write() as conn:
            await providers.create(
                conn,
                provider="mailgun",
                settings={"api_key": KEY, "domain": DOMAIN, "host": host, "polling": "on"},
            )
            now = utcnow()
            await messages.insert(
                conn,
                [
                    messages.NewMessage(
                        id="msg_sent_before",
                        request_id="msg_sent_before",
                        recipient="someone@example.test",
                        recipient_email="someone@example.test",
                        user_id=None,
                        payload={},
                        tags=[],
                        trace_id=None,
                        event=None,
                        next_attempt_at=now,
                        expires_at=None,
                    )
                ],
                [messages.HistoryEntry(type="ENQUEUED", ts=now, data={})],
            )
            # Sent a moment ago (by another worker): outstanding, so the poller polls.
            await messages.update(
                conn,
                "msg_sent_before",
                status="SENT",
                queued=False,
                provider_domain=DOMAIN,
                sent=now - timedelta(seconds=5),
            )
    finally:
        await db.close()


def test_a_standalone_worker_masks_a_stored_provider_key(tmp_path: Path) -> None:
    hits: list[str] = []
    url = f"sqlite+aiosqlite:///{tmp_path / 'tidings.db'}"
    log = tmp_path / "worker.log"
    with serve_asgi(_echoing_mailgun(hits)) as host:
        asyncio.run(_seed(url, host))
        proc = spawn(
            WORKER,
            cwd=tmp_path,
            log=log,
            env={
                "TIDINGS_DATABASE_URL": url,
                "TIDINGS_PROVIDER_HOSTS": host,
                "TIDINGS_POLL_INTERVAL_S": "0.2",
            },
        )
        try:
            deadline = time.monotonic() + 60
            while "polling the provider's events failed" not in log.read_text(errors="replace"):
                assert proc.poll() is None and time.monotonic() < deadline, log.read_text()
                time.sleep(0.1)
        finally:
            stop(proc)
    output = log.read_text(errors="replace")
    assert hits, output
    assert KEY not in output, output
    assert "****" + KEY[-4:] in output, output
