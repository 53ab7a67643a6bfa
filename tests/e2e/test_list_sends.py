"""``/send`` to lists through Courier's SDK on a real server and the Mailgun sandbox: every
subscriber gets their own tracked message, patterns, dedupe, the recipient limit, request
ids that resolve (counts, archive) and ``messages.list``'s filters."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import courier
import pytest

from tests.e2e.conftest import RunningSandbox, RunningTidings
from tidings.store import messages as messages_store
from tidings.store.database import Database

CONTENT = {"title": "News for {{profile.name}}", "body": "Hello {{profile.name}}"}
PREFS: Any = {"notifications": {"digest": {"status": "OPTED_OUT"}}}


def _profiles(server: RunningTidings, users: dict[str, str]) -> None:
    with server.http() as http:
        for user_id, email in users.items():
            answer = http.put(
                f"/profiles/{user_id}", json={"profile": {"email": email, "name": user_id}}
            )
            assert answer.status_code == 200, answer.text


def _request(server: RunningTidings, request_id: str) -> dict[str, Any]:
    with server.http() as http:
        answer = http.get(f"/requests/{request_id}")
        assert answer.status_code == 200, answer.text
        found: dict[str, Any] = answer.json()
        return found


def _wait_counts(
    server: RunningTidings, request_id: str, done: Callable[[dict[str, int]], bool]
) -> dict[str, Any]:
    deadline = time.monotonic() + 120
    while True:
        found = _request(server, request_id)
        if done(found["counts"]) or time.monotonic() > deadline:
            return found
        time.sleep(0.2)


def _all_messages(client: courier.Courier, **filters: Any) -> list[Any]:
    seen: list[Any] = []
    cursor = None
    while True:
        page = client.messages.list(cursor=cursor, **filters)
        seen += page.results
        if not page.paging.more:
            return seen
        cursor = page.paging.cursor


def _payload(server: RunningTidings, message_id: str) -> dict[str, Any]:
    async def read() -> dict[str, Any]:
        db = Database(server.settings.database_url)
        try:
            async with db.read() as conn:
                row = await messages_store.get(conn, message_id)
        finally:
            await db.close()
        assert row is not None
        return dict(row.payload)

    return asyncio.run(read())


def test_a_list_of_300_each_get_their_own_delivered_message(
    tidings_with_mailgun: RunningTidings, mailgun_sandbox: RunningSandbox
) -> None:
    server = tidings_with_mailgun
    client = server.courier()
    users = {f"user{i:03}": f"user{i:03}@list.test" for i in range(300)}
    _profiles(server, users)
    client.lists.update("team.all", name="Everyone")
    client.lists.subscriptions.subscribe(
        "team.all",
        recipients=[
            {"recipient_id": u, **({"preferences": PREFS} if u == "user007" else {})} for u in users
        ],
    )
    request_id = client.send.message(
        message={"to": {"list_id": "team.all"}, "content": CONTENT, "metadata": {"tags": ["t"]}}
    ).request_id
    assert request_id.startswith("req_")
    found = _wait_counts(server, request_id, lambda c: c.get("DELIVERED", 0) == 300)
    assert found["total"] == 300 and found["counts"] == {"DELIVERED": 300}, found
    assert found["requestId"] == request_id

    # Every subscriber got their own copy at Mailgun (the sandbox), rendered for them.
    copies = [m for m in mailgun_sandbox.messages() if m["to"][0].endswith("@list.test")]
    assert sorted(m["to"][0] for m in copies) == sorted(users.values())
    assert {m["subject"] for m in copies} == {f"News for {u}" for u in users}

    messages = _all_messages(client, message_id=request_id)
    assert sorted(m.recipient for m in messages) == sorted(users)
    assert {m.status for m in messages} == {"DELIVERED"}
    assert len(_all_messages(client, list="team.all")) == 300
    # The subscription's preferences travel with the message, exactly as stored.
    by_user = {m.recipient: m.id for m in messages}
    assert _payload(server, by_user["user007"])["list_preferences"] == PREFS
    assert _payload(server, by_user["user008"])["list_preferences"] is None
    assert _payload(server, by_user["user008"])["list_id"] == "team.all"
    history = server.history(by_user["user008"])
    assert history[0]["type"] == "ENQUEUED" and history[0]["list"] == "team.all"


def test_pattern_mix_and_dedupe(
    tidings_with_mailgun: RunningTidings, mailgun_sandbox: RunningSandbox
) -> None:
    server = tidings_with_mailgun
    client = server.courier()
    _profiles(server, {u: f"{u}@mix.test" for u in "abcde"})
    subs = client.lists.subscriptions
    subs.subscribe("eng.eu", recipients=[{"recipient_id": "a"}, {"recipient_id": "b"}])
    subs.subscribe("eng.us", recipients=[{"recipient_id": "b"}, {"recipient_id": "c"}])
    subs.subscribe("eng.us.x", recipients=[{"recipient_id": "d"}])  # three parts: not eng.*
    subs.subscribe("eng.old", recipients=[{"recipient_id": "e"}])
    client.lists.delete("eng.old")  # archived: reaches no one
    request_id = client.send.message(
        message={
            "to": [
                {"list_pattern": "eng.*", "data": {"via": "pattern"}},
                {"user_id": "a"},
                {"email": "zed@mix.test"},
                {"list_id": "eng.us"},  # b and c again: already reached
            ],
            "content": {"title": "Hi", "body": "via {{data.via}}"},
        }
    ).request_id
    found = _wait_counts(server, request_id, lambda c: c.get("DELIVERED", 0) == 4)
    assert found["total"] == 4 and found["counts"] == {"DELIVERED": 4}
    messages = _all_messages(client, message_id=request_id)
    assert sorted(m.recipient for m in messages) == ["a", "b", "c", "zed@mix.test"]
    # b reached first through eng.eu (the pattern's lists in id order), c through eng.us;
    # a was named itself, so its copy from eng.eu was dropped.
    assert [m.recipient for m in _all_messages(client, list="eng.eu")] == ["b"]
    assert [m.recipient for m in _all_messages(client, list="eng.us")] == ["c"]
    bodies = {m["to"][0]: m["text"] for m in mailgun_sandbox.messages()}
    assert "via pattern" in bodies["b@mix.test"] and "via pattern" in bodies["c@mix.test"]
    assert "via pattern" not in bodies["a@mix.test"]
    assert "d@mix.test" not in bodies and "e@mix.test" not in bodies

    # An empty list, or a pattern that matches none: 202, a request id, zero messages.
    client.lists.update("empty", name="Nobody yet")
    for to in ({"list_id": "empty"}, {"list_pattern": "nothing.**"}):
        empty = client.send.message(message={"to": to, "content": CONTENT}).request_id
        assert empty.startswith("req_")
        assert _request(server, empty)["total"] == 0 and _request(server, empty)["counts"] == {}
        assert _all_messages(client, message_id=empty) == []
    # A list id that names no list, or an archived one, is a mistake: 400 naming the field.
    for to, says in (
        ({"list_id": "no.such"}, "message.to.list_id: there is no list 'no.such'"),
        (
            [{"email": "q@mix.test"}, {"list_id": "eng.old"}],
            "message.to[1].list_id: list 'eng.old' is archived",
        ),
    ):
        with pytest.raises(courier.BadRequestError) as refused:
            client.send.message(message={"to": to, "content": CONTENT})
        assert says in refused.value.body["message"]  # type: ignore[index]


def test_a_send_beyond_the_recipient_limit_is_refused(
    start_tidings: Callable[..., RunningTidings], mailgun_sandbox: RunningSandbox
) -> None:
    server = start_tidings(max_send_recipients=5)
    server.add_provider(mailgun_sandbox, alias="main")
    client = server.courier()
    subs = client.lists.subscriptions
    subs.subscribe("x", recipients=[{"recipient_id": f"u{i}"} for i in range(1, 5)])
    subs.subscribe("y", recipients=[{"recipient_id": f"u{i}"} for i in range(3, 6)])
    # u1..u5: five distinct users, within the limit once deduped.
    accepted = client.send.message(
        message={"to": [{"list_id": "x"}, {"list_id": "y"}], "content": CONTENT}
    ).request_id
    assert _request(server, accepted)["total"] == 5
    subs.add("y", recipients=[{"recipient_id": "u6"}])
    for to in (
        [{"list_id": "x"}, {"list_id": "y"}],
        [{"list_pattern": "*"}],
        [{"list_id": "x"}, {"email": "a@b.test"}, {"email": "c@b.test"}],
    ):
        with pytest.raises(courier.BadRequestError) as refused:
            client.send.message(message={"to": to, "content": CONTENT})
        message = refused.value.body["message"]  # type: ignore[index]
        assert "more than 5 recipients" in message and "TIDINGS_MAX_SEND_RECIPIENTS" in message
    assert len(_all_messages(client)) == 5  # nothing of the refused sends was stored


def test_requests_counts_archive_and_message_filters(
    tidings_with_mailgun: RunningTidings, mailgun_sandbox: RunningSandbox
) -> None:
    server = tidings_with_mailgun
    client = server.courier()
    made = client.notifications.create(
        notification={
            "name": "Digest",
            "tags": [],
            "brand": None,
            "routing": None,
            "subscription": None,
            "content": {
                "version": "2022-01-01",
                "elements": [
                    {
                        "type": "channel",
                        "channel": "email",
                        "elements": [
                            {"type": "meta", "title": "Digest"},
                            {"type": "text", "content": "Hi"},
                        ],
                    }
                ],
            },
        }
    )
    client.notifications.publish(made.id)
    by_template = client.send.message(
        message={
            "to": [
                {"email": "ok@req.test", "tenant_id": "acme"},
                {"email": "gone+bounce@req.test", "context": {"tenant_id": "globex"}},
            ],
            "template": made.id,
        }
    ).request_id
    by_content = client.send.message(
        message={"to": {"email": "solo@req.test"}, "content": CONTENT}
    ).request_id
    assert by_template.startswith("req_") and not by_content.startswith("req_")
    found = _wait_counts(
        server, by_template, lambda c: c.get("DELIVERED") == 1 and c.get("UNDELIVERABLE") == 1
    )
    assert found["total"] == 2 and found["counts"] == {"DELIVERED": 1, "UNDELIVERABLE": 1}
    server.wait_status(by_content, "DELIVERED")
    # A one-recipient send's id is its message's, and resolves as a request too.
    assert _request(server, by_content)["total"] == 1

    recipients = lambda **f: sorted(m.recipient for m in _all_messages(client, **f))  # noqa: E731
    assert recipients(message_id=by_template) == ["gone+bounce@req.test", "ok@req.test"]
    assert recipients(message_id=f"{by_template},{by_content}") == [
        "gone+bounce@req.test",
        "ok@req.test",
        "solo@req.test",
    ]
    assert recipients(notification=made.id) == ["gone+bounce@req.test", "ok@req.test"]
    assert recipients(tenant_id="acme") == ["ok@req.test"]
    assert recipients(tenant_id="globex") == ["gone+bounce@req.test"]
    assert recipients(tenant_id="nobody") == []
    assert recipients(provider=["mailgun", "smtp"]) == recipients()
    assert recipients(list="no.list") == []

    with pytest.raises(courier.NotFoundError) as not_a_message:
        client.messages.retrieve(by_template)
    assert "is a request id" in not_a_message.value.body["message"]  # type: ignore[index]

    client.requests.archive(by_template)
    assert recipients() == ["solo@req.test"]
    assert recipients(archived=True) == ["gone+bounce@req.test", "ok@req.test", "solo@req.test"]
    assert _request(server, by_template)["archived"] is not None
    with pytest.raises(courier.NotFoundError):
        client.requests.archive("req_nothing")
    with server.http() as http:
        assert http.get("/requests/req_nothing").status_code == 404
        refused = http.get("/messages", params={"lst": "x"})
        assert refused.status_code == 400 and refused.json()["message"].startswith(
            "lst: not a filter"
        )
        assert http.get("/messages", params={"archived": "maybe"}).status_code == 400
        assert http.get("/requests/" + "r" * 41).status_code == 400


@pytest.fixture(params=["sqlite", "postgresql"])
def backend(request: pytest.FixtureRequest) -> dict[str, Any]:
    if request.param == "sqlite":
        return {}
    return {"database_url": str(request.getfixturevalue("postgres_url"))}


def test_a_send_to_40000_subscribers_is_accepted_in_one_go(
    start_tidings: Callable[..., RunningTidings], backend: dict[str, Any]
) -> None:
    """Past what one statement may bind (PostgreSQL: 32767 parameters), all committed
    before the 202; no workers, so only acceptance is measured."""
    server = start_tidings(run_workers=False, **backend)
    client = server.courier()
    count = 40_000
    for start in range(0, count, 10_000):
        client.lists.subscriptions.add(
            "everyone",
            recipients=[{"recipient_id": f"u{i:05}"} for i in range(start, start + 10_000)],
        )
    request_id = client.send.message(
        message={"to": {"list_id": "everyone"}, "content": CONTENT}, timeout=300
    ).request_id
    found = _request(server, request_id)
    assert found["total"] == count and found["counts"] == {"ENQUEUED": count}
    page = client.messages.list(list="everyone", extra_query={"limit": 500})
    assert len(page.results) == 500 and page.paging.more
