"""Status you can subscribe to, end to end on loopback: signed outbound webhooks received by a
real receiver (which refuses the first one), Server-Sent Events read by a real HTTP client,
and the CLI timeline against the running server."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route
from typer.testing import CliRunner

from tests.e2e.conftest import RunningSandbox, RunningTidings
from tests.support.servers import serve_asgi
from tidings.cli import app as cli_app
from tidings.commands.messages import SSEEvent, parse_sse

SECRET = "whsec_test_receiver_secret"


@dataclass
class Received:
    headers: dict[str, str]
    raw: bytes
    answered: int


@dataclass
class Receiver:
    """A customer's endpoint: answers 500 to the first delivery, 200 to every other."""

    url: str = ""
    fail_first: int = 1
    received: list[Received] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def app(self) -> Starlette:
        async def hook(request: Request) -> PlainTextResponse:
            raw = await request.body()
            with self.lock:
                answered = 500 if len(self.received) < self.fail_first else 200
                self.received.append(Received(dict(request.headers), raw, answered))
            return PlainTextResponse("nope" if answered == 500 else "ok", status_code=answered)

        return Starlette(routes=[Route("/hook", hook, methods=["POST"])])

    def accepted(self) -> list[Received]:
        with self.lock:
            return [r for r in self.received if r.answered == 200]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    target = Receiver()
    with serve_asgi(target.app()) as url:
        target.url = f"{url}/hook"
        yield target


@pytest.fixture(params=["sqlite", "postgresql"])
def server(request: pytest.FixtureRequest, mailgun_sandbox: RunningSandbox) -> RunningTidings:
    """Tidings sending to the standalone sandbox, with fast outbound-webhook retries; on
    SQLite, and on PostgreSQL when a server is configured."""
    # The receivers are on loopback, which the outbound network policy refuses otherwise.
    overrides: dict[str, Any] = {
        "notify_retry_base_s": 0.05,
        "notify_retry_max_s": 0.5,
        "allow_private_networks": True,
    }
    if request.param == "postgresql":
        # Set up before the server, so that the database is dropped only after it stopped.
        overrides["database_url"] = request.getfixturevalue("postgres_url")
    start_tidings: Callable[..., RunningTidings] = request.getfixturevalue("start_tidings")
    running = start_tidings(**overrides)
    running.add_provider(mailgun_sandbox, alias="main")
    return running


def send(server: RunningTidings, to: dict[str, str]) -> str:
    with server.http() as http:
        answer = http.post(
            "/send", json={"message": {"to": to, "content": {"title": "Hi", "body": "Hello"}}}
        )
        assert answer.status_code == 202, answer.text
        message_id: str = answer.json()["requestId"]
        return message_id


def wait_until(predicate: Callable[[], bool], timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return
        time.sleep(0.05)


def verify(secret: str, header: str, raw: bytes) -> bool:
    """Courier's scheme, recomputed independently: t=<ms>,signature=<hex HMAC("t.body")>."""
    fields = dict(part.split("=", 1) for part in header.split(","))
    expected = hmac.new(
        secret.encode(), f"{fields['t']}.".encode() + raw, hashlib.sha256
    ).hexdigest()
    return fields["t"].isdigit() and hmac.compare_digest(expected, fields["signature"])


def events(response: httpx.Response) -> Iterator[SSEEvent]:
    return (e for e in parse_sse(response.iter_lines()) if not e.comment)


# -- outbound webhooks ----------------------------------------------------------------------


def test_outbound_webhooks_are_signed_ordered_and_retried(
    server: RunningTidings, receiver: Receiver
) -> None:
    with server.http() as http:
        created = http.post("/webhooks/endpoints", json={"url": receiver.url, "secret": SECRET})
        assert created.status_code == 200, created.text
        endpoint = created.json()
    assert endpoint["secret"] == SECRET

    message_id = send(server, {"email": "ann@example.test"})
    details = server.wait_status(message_id, "SENT", "DELIVERED")
    assert details["status"] in ("SENT", "DELIVERED")

    def got_sent() -> bool:
        return any(
            json.loads(r.raw)["data"]["status"] in ("SENT", "DELIVERED")
            for r in receiver.accepted()
        )

    wait_until(got_sent)
    received = list(receiver.received)
    assert received, "the receiver got nothing"
    assert received[0].answered == 500
    for item in received:
        assert item.headers["content-type"] == "application/json"
        assert verify(SECRET, item.headers["courier-signature"], item.raw), item.headers
        body = json.loads(item.raw)
        assert body["type"] == "message:updated"
        assert body["data"]["id"] == message_id
        assert body["data"]["recipientId"] == body["data"]["recipient"]
        assert body["data"]["recipientEmail"] == "ann@example.test"
    # The refused delivery came again (same body) and was accepted.
    assert any(r.raw == received[0].raw and r.answered == 200 for r in received[1:])
    # Statuses arrive in order, each once accepted, and SENT is among them.
    statuses = [json.loads(r.raw)["data"]["status"] for r in receiver.accepted()]
    assert statuses[0] == "ENQUEUED" and "SENT" in statuses
    assert len(statuses) == len(set(statuses))
    rank = ["ENQUEUED", "SENT", "DELIVERED", "OPENED", "CLICKED"]
    assert statuses == sorted(statuses, key=rank.index)

    with server.http() as http:
        deliveries = http.get(f"/webhooks/endpoints/{endpoint['id']}/deliveries").json()
    rows = deliveries["results"]
    assert rows and all(r["messageId"] == message_id for r in rows)
    first = min(rows, key=lambda r: r["id"])
    assert first["state"] == "delivered"
    assert first["attempts"] == 2
    assert first["lastStatus"] == 200


def test_disabled_endpoint_receives_nothing(server: RunningTidings, receiver: Receiver) -> None:
    with server.http() as http:
        created = http.post("/webhooks/endpoints", json={"url": receiver.url, "enabled": False})
        assert created.status_code == 200, created.text
        assert created.json()["secret"].startswith("whsec_")
    message_id = send(server, {"email": "bob@example.test"})
    assert server.wait_status(message_id, "SENT", "DELIVERED")["status"] in ("SENT", "DELIVERED")
    assert receiver.received == []


# -- Server-Sent Events ---------------------------------------------------------------------


def test_stream_of_all_changes_sees_a_message_sent(server: RunningTidings) -> None:
    with (
        server.http() as http,
        http.stream("GET", "/messages/stream", timeout=httpx.Timeout(30, read=30)) as stream,
    ):
        assert stream.status_code == 200
        assert stream.headers["content-type"].startswith("text/event-stream")
        message_id = send(server, {"email": "carol@example.test"})
        seen: list[tuple[int, str]] = []
        for event in events(stream):
            assert event.event == "message:updated"
            assert event.id is not None
            data = json.loads(event.data)
            if data["id"] == message_id:
                seen.append((int(event.id), data["status"]))
            if data["status"] in ("SENT", "DELIVERED") and data["id"] == message_id:
                break
    assert [s for _, s in seen][-1] in ("SENT", "DELIVERED")
    ids = [i for i, _ in seen]
    assert ids == sorted(ids)


def test_message_stream_starts_with_current_state_and_resumes(server: RunningTidings) -> None:
    message_id = send(server, {"email": "dan@example.test"})
    assert server.wait_status(message_id, "SENT", "DELIVERED")["status"] in ("SENT", "DELIVERED")
    with server.http() as http:
        with http.stream("GET", f"/messages/{message_id}/stream") as stream:
            assert stream.status_code == 200
            first = next(events(stream))
        current = json.loads(first.data)
        assert current["id"] == message_id
        assert current["status"] in ("SENT", "DELIVERED")

        # Replay from the beginning, then resume after the first event with Last-Event-ID.
        with http.stream("GET", "/messages/stream", params={"after": 0}) as stream:
            replay: list[SSEEvent] = []
            for event in events(stream):
                replay.append(event)
                if json.loads(event.data)["id"] == message_id and json.loads(event.data)[
                    "status"
                ] in ("SENT", "DELIVERED"):
                    break
        assert len(replay) >= 1
        assert replay[0].id is not None
        mine = [e for e in replay if json.loads(e.data)["id"] == message_id]
        assert mine
        with http.stream(
            "GET",
            f"/messages/{message_id}/stream",
            headers={"Last-Event-ID": str(int(mine[0].id or 0) - 1)},
        ) as stream:
            resumed = next(events(stream))
        assert resumed.id == mine[0].id
        assert resumed.data == mine[0].data
        if len(replay) > 1:
            with http.stream(
                "GET", "/messages/stream", headers={"Last-Event-ID": replay[0].id}
            ) as stream:
                assert next(events(stream)).id == replay[1].id

        assert http.get("/messages/nope/stream").status_code == 404
        bad = http.get("/messages/stream", headers={"Last-Event-ID": "x"})
        assert bad.status_code == 400


def test_streams_need_the_api_key(server: RunningTidings) -> None:
    assert httpx.get(f"{server.url}/messages/stream", timeout=10).status_code == 401


# -- CLI --------------------------------------------------------------------------------------


def cli_env(server: RunningTidings) -> dict[str, str]:
    return {"TIDINGS_URL": server.url, "TIDINGS_API_KEY": server.api_key, "COLUMNS": "200"}


def test_cli_message_timeline_and_list(server: RunningTidings) -> None:
    message_id = send(server, {"email": "erin@example.test"})
    assert server.wait_status(message_id, "SENT", "DELIVERED")["status"] in ("SENT", "DELIVERED")
    runner = CliRunner()
    result = runner.invoke(cli_app, ["message", message_id], env=cli_env(server))
    assert result.exit_code == 0, result.output
    assert message_id in result.output
    assert "ENQUEUED" in result.output
    assert "SENT" in result.output
    assert "/messages" in result.output  # the request to Mailgun, with its answer
    assert "→ 200" in result.output

    listed = runner.invoke(
        cli_app, ["messages", "--status", "SENT", "--status", "DELIVERED"], env=cli_env(server)
    )
    assert listed.exit_code == 0, listed.output
    assert message_id in listed.output
    assert "erin@example.test" in listed.output

    missing = runner.invoke(cli_app, ["message", "nope"], env=cli_env(server))
    assert missing.exit_code == 1


def test_cli_follow_ends_when_the_message_settles(server: RunningTidings) -> None:
    # A user with no profile has no address: the message ends UNROUTABLE on its own.
    message_id = send(server, {"user_id": "no-such-user"})
    result = CliRunner().invoke(cli_app, ["message", message_id, "--follow"], env=cli_env(server))
    assert result.exit_code == 0, result.output
    assert "ENQUEUED" in result.output
    assert "UNROUTABLE" in result.output
