"""Status through polling alone: Courier's SDK → Tidings → the sandbox, and back through the
Events API. The sandbox here has no webhook registered, so every status change below can
only have come from the poller."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import API_KEY, RunningSandbox, RunningTidings, tidings_settings
from tests.support.servers import free_port, serve_asgi
from tidings.app import build_app

EVENTS_ROUTES = ("GET /v3/{domain}/events", "GET /v3/{domain}/events/{token}")
POLLING = {"poll_interval_s": 0.1, "poll_trust_s": 0.5, "poll_overlap_s": 1.0}


def events_requests(sandbox: RunningSandbox) -> int:
    requests: dict[str, dict[str, int]] = sandbox.stats()["requests"]
    return sum(sum(requests.get(route, {}).values()) for route in EVENTS_ROUTES)


def add_provider(server: RunningTidings, sandbox: RunningSandbox, polling: str) -> None:
    with server.http() as http:
        answer = http.post(
            "/providers",
            json={
                "provider": "mailgun",
                "alias": "main",
                "settings": {
                    "api_key": sandbox.settings.api_key,
                    "domain": "mg.tidings.test",
                    "host": sandbox.url,
                    "from_address": "Acme <no-reply@mg.tidings.test>",
                    "webhook_signing_key": sandbox.settings.signing_key,
                    "polling": polling,
                },
            },
        )
        assert answer.status_code == 200, answer.text


def send(server: RunningTidings, email: str) -> str:
    answer = server.courier().send.message(
        message={"to": {"email": email}, "content": {"title": "Hi", "body": "Hello there."}}
    )
    return str(answer.request_id)


def types(server: RunningTidings, message_id: str) -> list[str]:
    return [entry["type"] for entry in server.history(message_id)]


def has(*wanted: str) -> Callable[[RunningTidings, str], Callable[[dict[str, Any]], bool]]:
    def predicate(server: RunningTidings, message_id: str) -> Callable[[dict[str, Any]], bool]:
        return lambda _details: all(t in types(server, message_id) for t in wanted)

    return predicate


@pytest.fixture
def polling_tidings(
    start_tidings: Callable[..., RunningTidings], mailgun_sandbox: RunningSandbox
) -> RunningTidings:
    assert not mailgun_sandbox.settings.webhook_urls  # nothing but polling can tell
    server = start_tidings(**POLLING)
    add_provider(server, mailgun_sandbox, "on")
    return server


def test_every_scenario_through_polling_alone(
    polling_tidings: RunningTidings, mailgun_sandbox: RunningSandbox
) -> None:
    server = polling_tidings
    ids = {
        tag: send(server, f"ann+{tag}@example.test" if tag else "ann@example.test")
        for tag in (
            "bounce",
            "nomx",
            "defer",
            "open",
            "click",
            "complain",
            "unsubscribe",
            "silent",
            "",
        )
    }

    bounced = server.wait_status(ids["bounce"], "UNDELIVERABLE")
    assert (bounced["status"], bounced["reason"]) == ("UNDELIVERABLE", "BOUNCED")
    failure = [e for e in server.history(ids["bounce"]) if e["type"] == "UNDELIVERABLE"]
    assert failure and failure[0]["code"] == 550 and failure[0]["source"] == "poll"

    nomx = server.wait_status(ids["nomx"], "UNDELIVERABLE")
    assert (nomx["status"], nomx["reason"]) == ("UNDELIVERABLE", "BOUNCED")

    server.wait_for(ids["defer"], has("TEMPORARY_FAILURE", "DELIVERED")(server, ids["defer"]))
    deferred = server.wait_status(ids["defer"], "DELIVERED")
    assert deferred["status"] == "DELIVERED"
    assert "TEMPORARY_FAILURE" in types(server, ids["defer"])

    opened = server.wait_status(ids["open"], "OPENED")
    assert opened["status"] == "OPENED"
    stamps = _event_times(mailgun_sandbox, "ann+open@example.test")
    # Times are the events' own (to the millisecond Courier's API shows), not arrival times.
    assert abs(opened["delivered"] - stamps["delivered"] * 1000) <= 1
    assert abs(opened["opened"] - stamps["opened"] * 1000) <= 1

    clicked = server.wait_status(ids["click"], "CLICKED")
    assert clicked["status"] == "CLICKED"
    clicked_at = _event_times(mailgun_sandbox, "ann+click@example.test")["clicked"]
    assert abs(clicked["clicked"] - clicked_at * 1000) <= 1

    for tag, kind in (("complain", "COMPLAINED"), ("unsubscribe", "UNSUBSCRIBED")):
        server.wait_for(ids[tag], has(kind)(server, ids[tag]))
        details = server.wait_status(ids[tag], "DELIVERED")
        assert details["status"] == "DELIVERED"
        assert kind in types(server, ids[tag])
        with server.http() as http:
            listed = http.get(f"/suppressions/ann+{tag}@example.test")
        assert listed.status_code == 200, listed.text

    plain = server.wait_status(ids[""], "DELIVERED")
    assert plain["status"] == "DELIVERED"
    # Nothing ever comes for +silent: it stays SENT (polled, not settled by a guess).
    assert server.wait_status(ids["silent"], "SENT")["status"] == "SENT"
    assert events_requests(mailgun_sandbox) > 0


def _event_times(sandbox: RunningSandbox, recipient: str) -> dict[str, float]:
    store = sandbox.sandbox.store
    records = store.logs["mg.tidings.test"].by_recipient[recipient]
    return {r.item["event"]: r.item["timestamp"] for r in records}


def test_polling_off_makes_no_events_request(
    start_tidings: Callable[..., RunningTidings], mailgun_sandbox: RunningSandbox
) -> None:
    server = start_tidings(**POLLING)
    add_provider(server, mailgun_sandbox, "off")
    message_id = send(server, "ann+open@example.test")
    assert server.wait_status(message_id, "SENT")["status"] == "SENT"
    # Let the sandbox play the whole scenario and the poller run many cycles.
    server.wait_for(message_id, lambda _d: False, timeout=1.5)
    assert events_requests(mailgun_sandbox) == 0
    assert server.wait_status(message_id, "SENT")["status"] == "SENT"


@contextlib.contextmanager
def running_tidings(tmp_path: Path, **overrides: Any) -> Iterator[RunningTidings]:
    """A Tidings server on the database in ``tmp_path``, stopped when the block ends."""
    port = free_port()
    settings = tidings_settings(tmp_path, port, **overrides)
    app = asyncio.run(build_app(settings))
    with serve_asgi(app, port=port) as url:
        yield RunningTidings(url, API_KEY, settings)


def settled_until(tmp_path: Path) -> list[tuple[str, str]]:
    with contextlib.closing(sqlite3.connect(tmp_path / "tidings.db")) as db:
        return list(db.execute("SELECT key, settled_until FROM poll_cursors"))


def test_restart_resumes_from_the_cursor(mailgun_sandbox: RunningSandbox, tmp_path: Path) -> None:
    with running_tidings(tmp_path, provider_hosts=mailgun_sandbox.url, **POLLING) as first:
        add_provider(first, mailgun_sandbox, "on")
        early = send(first, "ann+click@example.test")
        assert first.wait_status(early, "CLICKED")["status"] == "CLICKED"
        # Wait for a trust pass to settle those events, so the cursor has moved.
        first.wait_for(early, lambda _d: bool(settled_until(tmp_path)), timeout=10)
        # Sent just before the stop: its events happen while Tidings is down.
        late = send(first, "bob+click@example.test")
        assert first.wait_status(late, "SENT", "DELIVERED", "OPENED", "CLICKED")["sent"]
    cursors = settled_until(tmp_path)
    assert len(cursors) == 1 and cursors[0][0] == f"{mailgun_sandbox.url} mg.tidings.test"

    with running_tidings(tmp_path, provider_hosts=mailgun_sandbox.url, **POLLING) as second:
        assert second.wait_status(late, "CLICKED")["status"] == "CLICKED"
        more = send(second, "cy+open@example.test")
        assert second.wait_status(more, "OPENED")["status"] == "OPENED"
        # Several more cycles, trust passes included, over the same windows.
        second.wait_for(more, lambda _d: False, timeout=1.5)
        for message_id in (early, late, more):
            polled = [e["raw"]["id"] for e in second.history(message_id) if "raw" in e]
            assert polled and len(polled) == len(set(polled)), polled
        assert types(second, early).count("CLICKED") == 1
        assert types(second, late).count("CLICKED") == 1
    after = settled_until(tmp_path)
    assert len(after) == 1 and after[0][1] > cursors[0][1]


def test_auto_mode_polls_while_no_webhooks_flow(
    start_tidings: Callable[..., RunningTidings], mailgun_sandbox: RunningSandbox
) -> None:
    server = start_tidings(**POLLING, poll_auto_after_s=0.5, poll_auto_quiet_s=5.0)
    add_provider(server, mailgun_sandbox, "auto")
    message_id = send(server, "ann+open@example.test")
    # No webhook has ever come, so auto means polling.
    assert server.wait_status(message_id, "OPENED")["status"] == "OPENED"
    assert events_requests(mailgun_sandbox) > 0
