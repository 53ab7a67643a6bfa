"""Tidings' suppression list in step with Mailgun's (the sandbox's), end to end: ``providers
connect`` imports the domain's bounces, unsubscribes and complaints; a send to an imported
address is refused by Tidings (Mailgun is never called); deleting it in Tidings (API or CLI)
deletes it at Mailgun; and a Mailgun that cannot be reached makes the delete fail loudly."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import pytest
from mailgun.client import Client
from mailgun.config import RetryPolicy
from typer.testing import CliRunner

from tests.e2e.conftest import RunningSandbox, RunningTidings
from tests.support.servers import free_port
from tidings.cli import app as cli_app
from tidings.store import suppressions
from tidings.store.database import Database

DOMAIN = "mg.tidings.test"
SECRET = "key-not-to-be-shown-0123456789"


def _mailgun(sandbox: RunningSandbox) -> Client:
    return Client(
        auth=("api", sandbox.settings.api_key),
        api_url=sandbox.url,
        retry_policy=RetryPolicy(max_retries=0),
    )


@contextmanager
def _cli_env(server: RunningTidings) -> Iterator[CliRunner]:
    old = dict(os.environ)
    os.environ.update({"TIDINGS_URL": server.url, "TIDINGS_API_KEY": server.api_key})
    try:
        yield CliRunner()
    finally:
        os.environ.clear()
        os.environ.update(old)


def _seed(sandbox: RunningSandbox) -> None:
    with _mailgun(sandbox) as mailgun:
        assert mailgun.bounces.create(
            domain=DOMAIN, data={"address": "gone@example.test", "code": 550, "error": "No such"}
        ).ok
        assert mailgun.unsubscribes.create(
            domain=DOMAIN, data={"address": "bye@example.test", "tag": "*"}
        ).ok
        assert mailgun.unsubscribes.create(
            domain=DOMAIN, data={"address": "news-only@example.test", "tag": "news"}
        ).ok
        assert mailgun.complaints.create(domain=DOMAIN, data={"address": "spam@example.test"}).ok


def _send(server: RunningTidings, to: str) -> str:
    answer = server.courier().send.message(
        message={"to": {"email": to}, "content": {"title": "Hi", "body": "Hello"}}
    )
    return str(answer.request_id)


def test_connect_imports_and_delete_removes_at_mailgun(
    tidings_with_mailgun: RunningTidings, mailgun_sandbox: RunningSandbox
) -> None:
    server = tidings_with_mailgun
    _seed(mailgun_sandbox)
    with _cli_env(server) as runner:
        connected = runner.invoke(cli_app, ["providers", "connect", "main"])
    assert connected.exit_code == 0, connected.output
    assert "3 on Mailgun's lists, 3 added to Tidings' suppression list" in connected.output

    with server.http() as http:
        listed = {s["address"]: s for s in http.get("/suppressions").json()["results"]}
        assert {a: s["reason"] for a, s in listed.items()} == {
            "gone@example.test": "bounce",
            "bye@example.test": "unsubscribe",
            "spam@example.test": "complaint",
        }
        assert listed["gone@example.test"]["code"] == 550
        assert "Mailgun's bounce list" in listed["gone@example.test"]["detail"]
        # Connecting again imports nothing new.
        again = http.post("/providers/main/connect").json()["suppressions"]
        assert again == {"imported": True, "read": 3, "added": 0}

    # Tidings refuses the send itself: Mailgun never sees it.
    refused = _send(server, "gone@example.test")
    details = server.wait_status(refused, "UNDELIVERABLE")
    assert details["status"] == "UNDELIVERABLE"
    assert not [m for m in mailgun_sandbox.messages() if m["recipient"] == "gone@example.test"]
    # An address unsubscribed from one tag only is not suppressed for everything.
    allowed = _send(server, "news-only@example.test")
    assert server.wait_status(allowed, "SENT", "DELIVERED")["status"] in ("SENT", "DELIVERED")

    # Deleting in Tidings deletes at Mailgun (all three lists).
    with server.http() as http:
        assert http.delete("/suppressions/gone@example.test").status_code == 204
        assert http.get("/suppressions/gone@example.test").status_code == 404
    with _cli_env(server) as runner:
        removed = runner.invoke(cli_app, ["suppressions", "delete", "spam@example.test"])
    assert removed.exit_code == 0, removed.output
    with _mailgun(mailgun_sandbox) as mailgun:
        assert (
            mailgun.bounces.get(domain=DOMAIN, bounce_address="gone@example.test").status_code
            == 404
        )
        assert (
            mailgun.complaints.get(domain=DOMAIN, complaint_address="spam@example.test").status_code
            == 404
        )
        assert mailgun.unsubscribes.get(
            domain=DOMAIN, unsubscribe_address="bye@example.test"
        ).ok  # untouched

    # And the next send goes through, at Mailgun too.
    again_id = _send(server, "gone@example.test")
    assert server.wait_status(again_id, "DELIVERED")["status"] == "DELIVERED"


def test_an_address_only_mailgun_lists_can_be_deleted_from_tidings(
    tidings_with_mailgun: RunningTidings, mailgun_sandbox: RunningSandbox
) -> None:
    with _mailgun(mailgun_sandbox) as mailgun:
        mailgun.complaints.create(domain=DOMAIN, data={"address": "late@example.test"})
    with tidings_with_mailgun.http() as http:
        assert http.delete("/suppressions/late@example.test").status_code == 204
        assert http.delete("/suppressions/late@example.test").status_code == 404
    with _mailgun(mailgun_sandbox) as mailgun:
        assert (
            mailgun.complaints.get(domain=DOMAIN, complaint_address="late@example.test").status_code
            == 404
        )


def test_the_periodic_sync_imports_later_suppressions(
    start_tidings: Callable[..., RunningTidings], mailgun_sandbox: RunningSandbox
) -> None:
    server = start_tidings(suppression_sync_interval_s=0.1)
    server.add_provider(mailgun_sandbox, alias="main")
    _seed(mailgun_sandbox)
    deadline = time.monotonic() + 20
    with server.http() as http:
        while len(http.get("/suppressions").json()["results"]) != 3:
            assert time.monotonic() < deadline, "the sync never imported the lists"
            time.sleep(0.05)
        reasons = {s["reason"] for s in http.get("/suppressions").json()["results"]}
    assert reasons == {"bounce", "unsubscribe", "complaint"}


def test_delete_fails_loudly_when_mailgun_cannot_be_reached(
    start_tidings: Callable[..., RunningTidings],
) -> None:
    dead = f"http://127.0.0.1:{free_port()}"  # nothing listens here
    server = start_tidings(provider_hosts=dead)
    with server.http() as http:
        created = http.post(
            "/providers",
            json={
                "provider": "mailgun",
                "alias": "down",
                "settings": {"api_key": SECRET, "domain": DOMAIN, "host": dead},
            },
        )
        assert created.status_code == 200, created.text

    # A bounce Tidings learnt itself (as from a webhook), while Mailgun is down.
    async def add() -> None:
        db = Database(server.settings.database_url)
        try:
            async with db.write() as conn:
                await suppressions.add(conn, "held@example.test", reason="bounce", code=550)
        finally:
            await db.close()

    asyncio.run(add())
    with server.http() as http:
        answer = http.delete("/suppressions/held@example.test")
        assert answer.status_code == 502, answer.text
        message = answer.json()["message"]
        assert "held@example.test is still on Tidings' suppression list" in message
        assert "could not reach Mailgun" in message and "Try the DELETE again" in message
        assert SECRET not in answer.text
        assert http.get("/suppressions/held@example.test").status_code == 200


@pytest.mark.parametrize(
    ("add", "reason", "code"),
    [
        ("unsubscribes", "unsubscribe", 606),
        ("complaints", "complaint", 607),
        ("bounces", "bounce", 605),
    ],
)
def test_a_606_or_607_from_mailgun_names_the_suppression(
    tidings_with_mailgun: RunningTidings,
    mailgun_sandbox: RunningSandbox,
    add: str,
    reason: str,
    code: int,
) -> None:
    server = tidings_with_mailgun
    server.connect_webhooks()  # before the address is listed: Tidings does not know it
    with _mailgun(mailgun_sandbox) as mailgun:
        assert getattr(mailgun, add).create(domain=DOMAIN, data={"address": "x@example.test"}).ok
    message_id = _send(server, "x@example.test")
    details = server.wait_for(
        message_id, lambda d: d.get("status") == "UNDELIVERABLE" and bool(d.get("hint"))
    )
    assert details["status"] == "UNDELIVERABLE"
    assert f"({code})" in details["hint"] and "at Mailgun too" in details["hint"]
    with server.http() as http:
        listed = http.get("/suppressions/x@example.test")
    assert listed.status_code == 200, listed.text
    assert listed.json()["reason"] == reason and listed.json()["code"] == code
