"""Courier's Routing Strategies API and /send's routing fields, through the official SDK
against a real Tidings server (SQLite), and the store on both backends."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import courier
import pytest

from tests.e2e.conftest import RunningTidings
from tidings.store import messages
from tidings.store.database import Database

ROUTING: Any = {"method": "single", "channels": ["email"]}
CHANNELS: Any = {"email": {"providers": ["mailgun", "smtp"], "routing_method": "single"}}


def _payload(server: RunningTidings, request_id: str) -> dict[str, Any]:
    async def read() -> dict[str, Any]:
        db = Database(server.settings.database_url)
        try:
            async with db.read() as conn:
                rows = await messages.by_request(conn, request_id)
            return dict(rows[0].payload)
        finally:
            await db.close()

    return asyncio.run(read())


def test_create_list_retrieve_replace_archive(
    start_tidings: Callable[..., RunningTidings],
) -> None:
    server = start_tidings(run_workers=False)
    client = server.courier()
    created = client.routing_strategies.create(
        name="Mailgun then SMTP",
        routing=ROUTING,
        channels=CHANNELS,
        providers={"smtp": {"timeouts": 5000}},
        description="fail over",
        tags=["ops"],
    )
    assert created.id.startswith("rs_")
    assert created.channels["email"].providers == ["mailgun", "smtp"]
    assert created.creator and created.created > 0 and created.updated
    got = client.routing_strategies.retrieve(created.id)
    assert got.model_dump() == created.model_dump()

    more = [client.routing_strategies.create(name=f"s{i}", routing=ROUTING) for i in range(3)]
    assert more[0].channels == {} and more[0].providers == {} and more[0].tags is None
    first = client.routing_strategies.list(limit=2)
    assert first.paging.more and first.paging.cursor
    assert [r.id for r in first.results] == [created.id, more[0].id]
    assert "routing" not in first.results[0].model_dump()
    second = client.routing_strategies.list(limit=2, cursor=first.paging.cursor)
    assert [r.id for r in second.results] == [more[1].id, more[2].id]
    assert not second.paging.more and second.paging.cursor is None

    replaced = client.routing_strategies.replace(created.id, name="renamed", routing=ROUTING)
    assert replaced.name == "renamed"
    assert replaced.channels == {} and replaced.providers == {}
    assert replaced.description is None and replaced.tags is None
    assert replaced.created == created.created and replaced.updater

    notes = client.routing_strategies.list_notifications(created.id)
    assert notes.results == [] and not notes.paging.more
    # A template that routes by the strategy is listed with it; others are not.
    content: Any = {
        "version": "2022-01-01",
        "elements": [{"type": "channel", "channel": "email", "elements": []}],
    }
    linked = client.notifications.create(
        notification={
            "name": "Routed",
            "tags": [],
            "brand": None,
            "routing": {"strategy_id": created.id},
            "subscription": None,
            "content": content,
        }
    )
    client.notifications.create(
        notification={
            "name": "Not routed",
            "tags": [],
            "brand": None,
            "routing": None,
            "subscription": None,
            "content": content,
        }
    )
    notes = client.routing_strategies.list_notifications(created.id)
    assert [n.id for n in notes.results] == [linked.id] and not notes.paging.more

    client.routing_strategies.archive(created.id)
    with pytest.raises(courier.NotFoundError):
        client.routing_strategies.retrieve(created.id)
    with pytest.raises(courier.NotFoundError) as raised:
        client.routing_strategies.archive(created.id)
    assert raised.value.response.json()["type"] == "invalid_request_error"
    with pytest.raises(courier.NotFoundError):
        client.routing_strategies.replace("rs_nothing", name="x", routing=ROUTING)
    with pytest.raises(courier.NotFoundError):
        client.routing_strategies.list_notifications("rs_nothing")
    assert created.id not in [r.id for r in client.routing_strategies.list().results]


def test_validation_names_the_field(start_tidings: Callable[..., RunningTidings]) -> None:
    server = start_tidings(run_workers=False)
    client = server.courier()
    bad: list[tuple[dict[str, Any], str]] = [
        ({"routing": {"method": "most", "channels": []}}, "routing.method"),
        ({"routing": {"method": "all", "channels": [1]}}, "routing.channels[0]"),
        ({"routing": {"method": "all", "channels": ["email"], "x": 1}}, "routing.x"),
        ({"routing": {"method": "all", "channels": ["postmark"]}}, "'postmark'"),
        (
            {"routing": ROUTING, "channels": {"email": {"providers": ["smtp", "postmark"]}}},
            "channels.email.providers[1]: 'postmark' is not a provider Tidings has",
        ),
        (
            {"routing": ROUTING, "channels": {"email": {"routing_method": "all"}}},
            "sends each email once",
        ),
        ({"routing": ROUTING, "channels": {"email": {"colour": "red"}}}, "channels.email.colour"),
        ({"routing": ROUTING, "providers": {"postmark": {}}}, "'postmark'"),
        ({"routing": ROUTING, "providers": {"smtp": {"if": "data.x"}}}, "providers.smtp.if"),
        (
            {"routing": ROUTING, "providers": {"smtp": {"timeouts": "soon"}}},
            "providers.smtp.timeouts",
        ),
    ]
    for body, named in bad:
        with pytest.raises(courier.BadRequestError) as raised:
            client.routing_strategies.create(name="n", **body)
        assert named in raised.value.response.json()["message"], body
    deep: Any = {"method": "single", "channels": ["email"]}
    for _ in range(5):
        deep = {"method": "single", "channels": [deep]}
    with pytest.raises(courier.BadRequestError, match="nests at most"):
        client.routing_strategies.create(name="deep", routing=deep)
    with server.http() as http:
        answer = http.post("/routing-strategies", json={"name": "n", "routing": ROUTING, "y": 1})
        assert answer.status_code == 400 and "y:" in answer.json()["message"]
        assert http.post("/routing-strategies", json={"name": "n"}).status_code == 400
        assert http.get("/routing-strategies", params={"limit": 101}).status_code == 400
        assert http.get("/routing-strategies", params={"cursor": "zzz"}).status_code == 400


def test_idempotent_create(start_tidings: Callable[..., RunningTidings]) -> None:
    client = start_tidings(run_workers=False).courier()
    one = client.routing_strategies.create(name="a", routing=ROUTING, idempotency_key="k1")
    two = client.routing_strategies.create(name="a", routing=ROUTING, idempotency_key="k1")
    assert one.id == two.id
    with pytest.raises(courier.ConflictError):
        client.routing_strategies.create(name="b", routing=ROUTING, idempotency_key="k1")
    assert len(client.routing_strategies.list().results) == 1


def test_workspace_default_routes_sends_without_their_own(
    start_tidings: Callable[..., RunningTidings],
) -> None:
    server = start_tidings(run_workers=False)
    client = server.courier()
    strategy = client.routing_strategies.create(
        name="default", routing=ROUTING, channels=CHANNELS, providers={"smtp": {"timeouts": 7}}
    )
    with server.http() as http:
        assert http.get("/routing-strategies/default").json() == {"id": None}
        assert http.put(f"/routing-strategies/{strategy.id}/default").status_code == 204
        assert http.get("/routing-strategies/default").json() == {"id": strategy.id}
        assert http.put("/routing-strategies/rs_nothing/default").status_code == 404
        refused = http.delete(f"/routing-strategies/{strategy.id}")
        assert refused.status_code == 409 and "default" in refused.json()["message"]
    msg: Any = {"to": {"email": "a@example.test"}, "content": {"title": "t", "body": "b"}}
    plain = _payload(server, client.send.message(message=msg).request_id)
    assert plain["strategy"]["id"] == strategy.id
    assert plain["strategy"]["channels"]["email"]["providers"] == ["mailgun", "smtp"]
    assert plain["provider_timeouts_ms"] == {"smtp": 7}
    own = _payload(
        server,
        client.send.message(
            message={**msg, "channels": {"email": {"providers": ["smtp"]}}}
        ).request_id,
    )
    assert own["strategy"] is None
    with server.http() as http:
        assert http.delete("/routing-strategies/default").status_code == 204
        assert http.get("/routing-strategies/default").json() == {"id": None}
    assert _payload(server, client.send.message(message=msg).request_id)["strategy"] is None
    client.routing_strategies.archive(strategy.id)


def test_send_stores_routing_fields(start_tidings: Callable[..., RunningTidings]) -> None:
    server = start_tidings(run_workers=False)
    client = server.courier()
    message: Any = {
        "to": {"email": "r@example.test"},
        "content": {"title": "t", "body": "b"},
        "routing": {"method": "single", "channels": ["mailgun", "smtp"]},
        "channels": {"email": {"providers": ["smtp", "mailgun"], "routing_method": "single"}},
        "providers": {
            "mailgun": {"override": {"body": {"v:x": "1"}}},
            "smtp": {"override": {"headers": {"X-A": "b"}}, "timeouts": 900},
        },
        "timeout": {"provider": 3000, "providers": {"mailgun": 1200}},
    }
    payload = _payload(server, client.send.message(message=message).request_id)
    assert payload["routing"] == message["routing"]
    assert payload["channels"] == {
        "email": {"providers": ["smtp", "mailgun"], "routing_method": "single"}
    }
    assert payload["provider_overrides"] == {
        "mailgun": {"body": {"v:x": "1"}},
        "smtp": {"headers": {"X-A": "b"}},
    }
    assert payload["mailgun_override"] == {"body": {"v:x": "1"}}
    assert payload["provider_timeouts_ms"] == {"smtp": 900, "mailgun": 1200, "*": 3000}
    assert payload["strategy"] is None
    by_map = {**message, "timeout": {"provider": {"smtp": 10}}}
    assert _payload(server, client.send.message(message=by_map).request_id)[
        "provider_timeouts_ms"
    ] == {"smtp": 10}
    sms = {**message, "routing": {"method": "single", "channels": ["sms"]}}
    sms.pop("channels")
    assert (
        _payload(server, client.send.message(message=sms).request_id)["routing"] == sms["routing"]
    )


@pytest.mark.parametrize(
    ("change", "named"),
    [
        (
            {"channels": {"email": {"providers": ["mailgun", "postmark"]}}},
            "message.channels.email.providers[1]: 'postmark' is not a provider Tidings has; "
            "known: mailgun, smtp",
        ),
        ({"channels": {"email": {"routing_method": "all"}}}, "sends each email once"),
        ({"routing": {"method": "some", "channels": ["email"]}}, "message.routing.method"),
        ({"routing": {"method": "all", "channels": ["email"], "z": 1}}, "message.routing.z"),
        ({"providers": {"postmark": {"override": {}}}}, "'postmark' is not a provider"),
        ({"providers": {"mailgun": {"if": "x"}}}, "message.providers.mailgun.if"),
        ({"timeout": {"providers": {"postmark": 5}}}, "message.timeout.providers"),
        ({"timeout": {"provider": {"postmark": 5}}}, "message.timeout.provider"),
    ],
)
def test_send_refuses_bad_routing(
    start_tidings: Callable[..., RunningTidings], change: dict[str, Any], named: str
) -> None:
    client = start_tidings(run_workers=False).courier()
    message: Any = {"to": {"email": "r@example.test"}, "content": {"title": "t", "body": "b"}}
    with pytest.raises(courier.BadRequestError) as raised:
        client.send.message(message={**message, **change})
    assert named in raised.value.response.json()["message"]
