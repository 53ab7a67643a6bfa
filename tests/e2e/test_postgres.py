"""Scale-out on PostgreSQL: several Tidings processes share one database and nothing else."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import sqlalchemy as sa

from tests.e2e.conftest import RunningSandbox, RunningTidings
from tidings.store.database import Database


def _wait_listening(database_url: str, within_s: float = 30) -> None:
    """Until a session on the database has issued LISTEN (the worker's wake-up channel)."""

    async def listening() -> bool:
        db = Database(database_url)
        try:
            async with db.read() as conn:
                count = await conn.scalar(
                    sa.text(
                        "SELECT count(*) FROM pg_stat_activity "
                        "WHERE datname = current_database() AND query LIKE 'LISTEN%'"
                    )
                )
                return bool(count)
        finally:
            await db.close()

    deadline = time.monotonic() + within_s
    while not asyncio.run(listening()):
        assert time.monotonic() < deadline, "no worker is listening"
        time.sleep(0.05)


def test_two_servers_share_the_queue_and_send_each_message_once(
    postgres_url: str,  # first: its database is dropped only after the servers stopped
    start_tidings: Callable[..., RunningTidings],
    mailgun_sandbox: RunningSandbox,
) -> None:
    first = start_tidings(database_url=postgres_url, dispatch_batch=4)
    second = start_tidings(database_url=postgres_url, dispatch_batch=4)
    first.add_provider(mailgun_sandbox, polling="off")
    recipients = [{"email": f"pg{i}@example.test"} for i in range(60)]
    request = second.courier().send.message(
        message={"to": recipients, "content": {"title": "Hi", "body": "from PostgreSQL"}},
        idempotency_key="pg-batch",
    )
    replay = first.courier().send.message(
        message={"to": recipients, "content": {"title": "Hi", "body": "from PostgreSQL"}},
        idempotency_key="pg-batch",
    )
    assert replay.request_id == request.request_id

    deadline = time.monotonic() + 60
    statuses: list[str] = []
    with first.http() as http:
        while time.monotonic() < deadline:
            rows = http.get("/messages", params={"limit": 500}).json()["results"]
            statuses = [r["status"] for r in rows]
            if len(rows) == 60 and all(s in ("SENT", "DELIVERED") for s in statuses):
                break
            time.sleep(0.1)
    assert len(statuses) == 60 and set(statuses) <= {"SENT", "DELIVERED"}, statuses
    copies = [m["recipient"] for m in mailgun_sandbox.messages()]
    assert sorted(copies) == sorted(r["email"] for r in recipients)  # each exactly once
    # Every message was sent once, by a named worker of one of the two processes.
    senders: set[str] = set()
    with second.http() as http:
        for mid in [
            r["id"] for r in http.get("/messages", params={"limit": 500}).json()["results"]
        ]:
            sent = [
                h
                for h in http.get(f"/messages/{mid}/history").json()["results"]
                if h["type"] == "SENT"
            ]
            assert len(sent) == 1
            senders.add(sent[0].get("worker", ""))
    assert senders and all(s.startswith("wrk_") for s in senders)


def test_api_only_process_wakes_a_separate_worker_by_notify(
    postgres_url: str,
    start_tidings: Callable[..., RunningTidings],
    mailgun_sandbox: RunningSandbox,
) -> None:
    """`tidings serve --no-workers` and a worker elsewhere share nothing but the database:
    LISTEN/NOTIFY wakes the worker at once (its idle poll here is far longer than the wait)."""
    api = start_tidings(database_url=postgres_url, run_workers=False)
    worker = start_tidings(database_url=postgres_url, dispatch_idle_s=600)
    api.add_provider(mailgun_sandbox, polling="off")
    _wait_listening(postgres_url)  # the worker is idle, listening
    message_id = (
        api.courier()
        .send.message(
            message={"to": {"email": "woken@example.test"}, "content": {"title": "t", "body": "b"}}
        )
        .request_id
    )
    details = worker.wait_status(message_id, "SENT", "DELIVERED", timeout=60)
    assert details["status"] in ("SENT", "DELIVERED")
