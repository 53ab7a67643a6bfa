"""A worker that dies mid-send: its message is taken over, looked up in Mailgun's event log by
the Tidings id, and sent at most once (DESIGN: "An attempt is recorded before it is made")."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import httpx
import pytest

from tests.e2e.conftest import RunningSandbox, RunningTidings
from tidings.store import messages as store
from tidings.store.database import Database


async def _die_mid_send(database_url: str, message_id: str, base_url: str) -> None:
    """What a worker leaves behind when it dies after writing its attempt: a lease that will
    run out, and an attempt with no answer."""
    db = Database(database_url)
    try:
        async with db.write() as conn:
            claimed = await store.claim_due(conn, owner="wrk_dead", limit=10, lease_s=0.3)
            assert claimed == [message_id]
            await store.start_attempt(conn, message_id, 1, base_url, {"note": "died"})
            await store.update(conn, message_id, attempts=1)
    finally:
        await db.close()


@pytest.mark.parametrize("reached_mailgun", [True, False])
def test_a_dead_workers_send_is_settled_without_a_second_copy(
    start_tidings: Callable[..., RunningTidings],
    mailgun_sandbox: RunningSandbox,
    reached_mailgun: bool,
) -> None:
    api = start_tidings(run_workers=False)
    api.add_provider(mailgun_sandbox, polling="off")
    message_id = (
        api.courier()
        .send.message(
            message={"to": {"email": "once@example.test"}, "content": {"title": "t", "body": "b"}}
        )
        .request_id
    )
    asyncio.run(_die_mid_send(api.settings.database_url, message_id, mailgun_sandbox.url))
    if reached_mailgun:
        # The request was written before the worker died, and Mailgun took it.
        answer = httpx.post(
            f"{mailgun_sandbox.url}/v3/mg.tidings.test/messages",
            auth=("api", mailgun_sandbox.settings.api_key),
            data={
                "from": "a@mg.tidings.test",
                "to": "once@example.test",
                "subject": "t",
                "text": "b",
                "v:tidings-id": message_id,
            },
        )
        assert answer.status_code == 200, answer.text
    # The new worker takes the message over once the dead one's lease (0.3 s) has run out.
    worker = start_tidings(database_url=api.settings.database_url, in_doubt_lag_s=0.5)
    details = worker.wait_status(message_id, "SENT", "DELIVERED", timeout=30)
    assert details["status"] in ("SENT", "DELIVERED"), details
    copies = [m for m in mailgun_sandbox.messages() if m["recipient"] == "once@example.test"]
    assert len(copies) == 1
    notes = " ".join(str(h.get("note", "")) for h in worker.history(message_id))
    if reached_mailgun:
        assert "found in Mailgun's event log" in notes
        assert details["id"] == message_id and copies[0]["variables"]["tidings-id"] == message_id
    else:
        assert "sending again" in notes
