"""Courier's Lists API, list subscriptions and profiles.lists through Courier's SDK on a
real server: every method, patterns and paging, archive and restore, per-subscription
preferences kept exactly, and hostile input refused with Courier's error body."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import courier
import pytest

from tests.e2e.conftest import RunningTidings

PREFS: Any = {
    "notifications": {
        "weekly": {
            "status": "OPTED_OUT",
            "channel_preferences": [{"channel": "email"}],
            "rules": [{"until": "2030-01-01T00:00:00Z", "start": "2029-01-01T00:00:00Z"}],
        }
    },
    "categories": {"news": {"status": "REQUIRED"}},
}


def _all_lists(client: courier.Courier, pattern: str | None = None) -> list[str]:
    seen: list[str] = []
    cursor = None
    while True:
        page = client.lists.list(pattern=pattern, cursor=cursor, extra_query={"limit": 2})
        seen += [item.id for item in page.items]
        if not page.paging.more:
            assert page.paging.cursor is None
            return seen
        cursor = page.paging.cursor


def test_lists_crud_patterns_paging_archive_restore(
    start_tidings: Callable[..., RunningTidings],
) -> None:
    client = start_tidings(run_workers=False).courier()
    for list_id in ["acme.eu.weekly", "acme.us.weekly", "acme.eu.daily", "acme.eu", "other"]:
        client.lists.update(list_id, name=f"List {list_id}")
    client.lists.update("acme.eu", name="Europe", preferences=PREFS)
    found = client.lists.retrieve("acme.eu")
    assert found.id == "acme.eu" and found.name == "Europe"
    assert found.created and found.updated
    assert found.model_dump(exclude_none=True)["preferences"] == PREFS  # kept exactly

    assert _all_lists(client) == [
        "acme.eu",
        "acme.eu.daily",
        "acme.eu.weekly",
        "acme.us.weekly",
        "other",
    ]
    assert _all_lists(client, "acme.*.weekly") == ["acme.eu.weekly", "acme.us.weekly"]
    assert _all_lists(client, "acme.**") == [
        "acme.eu",
        "acme.eu.daily",
        "acme.eu.weekly",
        "acme.us.weekly",
    ]
    assert _all_lists(client, "acme.eu") == ["acme.eu"]
    assert _all_lists(client, "*") == ["other"]

    client.lists.delete("acme.eu.daily")
    with pytest.raises(courier.NotFoundError) as gone:
        client.lists.retrieve("acme.eu.daily")
    assert "archived" in gone.value.body["message"]  # type: ignore[index]
    assert "acme.eu.daily" not in _all_lists(client)
    # A PUT on an archived list changes it, and it stays archived until restored.
    client.lists.update("acme.eu.daily", name="Daily, renamed")
    with pytest.raises(courier.NotFoundError):
        client.lists.retrieve("acme.eu.daily")
    client.lists.restore("acme.eu.daily")
    assert client.lists.retrieve("acme.eu.daily").name == "Daily, renamed"

    for missing in (client.lists.retrieve, client.lists.delete, client.lists.restore):
        with pytest.raises(courier.NotFoundError) as caught:
            missing("nothing.here")
        assert caught.value.body == {  # type: ignore[comparison-overlap]
            "message": "No list 'nothing.here'",
            "type": "invalid_request_error",
        }


def test_subscriptions_and_profile_lists(start_tidings: Callable[..., RunningTidings]) -> None:
    client = start_tidings(run_workers=False).courier()
    subs = client.lists.subscriptions
    # Subscribing to a list that does not exist creates it (named by its id).
    subs.add(
        "news", recipients=[{"recipient_id": "u1", "preferences": PREFS}, {"recipient_id": "u2"}]
    )
    assert client.lists.retrieve("news").name == "news"
    # add leaves existing subscriptions alone
    subs.add("news", recipients=[{"recipient_id": "u1"}, {"recipient_id": "u3"}])
    page = subs.list("news")
    assert [i.recipient_id for i in page.items] == ["u1", "u2", "u3"]
    assert page.items[0].model_dump(exclude_none=True)["preferences"] == PREFS
    assert page.items[1].preferences is None
    assert page.items[0].created

    subs.subscribe_user("u2", list_id="news", preferences=PREFS)
    assert subs.list("news").items[1].model_dump(exclude_none=True)["preferences"] == PREFS
    subs.unsubscribe_user("u3", list_id="news")
    with pytest.raises(courier.NotFoundError):
        subs.unsubscribe_user("u3", list_id="news")
    assert [i.recipient_id for i in subs.list("news").items] == ["u1", "u2"]
    # PUT replaces the whole set
    subs.subscribe("news", recipients=[{"recipient_id": f"p{i:03}"} for i in range(250)])
    seen: list[str] = []
    cursor = None
    while True:
        got = subs.list("news", cursor=cursor)
        seen += [i.recipient_id for i in got.items]
        if not got.paging.more:
            break
        cursor = got.paging.cursor
    assert seen == [f"p{i:03}" for i in range(250)]

    # profiles.lists
    answer = client.profiles.lists.subscribe(
        "ann", lists=[{"list_id": "a.one", "preferences": PREFS}, {"list_id": "a.two"}]
    )
    assert answer.status == "SUCCESS"
    subs.add("a.three", recipients=[{"recipient_id": "ann"}])
    client.lists.delete("a.three")  # archived lists are not the user's lists
    mine = client.profiles.lists.retrieve("ann")
    assert [(r.id, r.name) for r in mine.results] == [("a.one", "a.one"), ("a.two", "a.two")]
    assert mine.results[0].model_dump(exclude_none=True)["preferences"] == PREFS
    assert mine.results[1].preferences is None and not mine.paging.more
    assert mine.results[0].created and mine.results[0].updated
    assert client.profiles.lists.delete("ann").status == "SUCCESS"
    assert client.profiles.lists.retrieve("ann").results == []
    client.lists.restore("a.three")
    assert [i.recipient_id for i in subs.list("a.three").items] == []  # delete took all


def test_idempotency_key_replays_subscriptions(
    start_tidings: Callable[..., RunningTidings],
) -> None:
    server = start_tidings(run_workers=False)
    client = server.courier()
    client.lists.subscriptions.add("k", recipients=[{"recipient_id": "a"}], idempotency_key="k1")
    client.lists.subscriptions.unsubscribe_user("a", list_id="k")
    # The same key replays the first answer; nothing is done again.
    client.lists.subscriptions.add("k", recipients=[{"recipient_id": "a"}], idempotency_key="k1")
    assert client.lists.subscriptions.list("k").items == []
    with pytest.raises(courier.ConflictError):
        client.lists.subscriptions.add(
            "k", recipients=[{"recipient_id": "b"}], idempotency_key="k1"
        )


@pytest.mark.parametrize(
    ("method", "path", "body", "says"),
    [
        ("PUT", "/lists/a..b", {"name": "x"}, "list_id is not a list id"),
        ("PUT", "/lists/a*", {"name": "x"}, "list_id is not a list id"),
        ("PUT", "/lists/" + "x" * 300, {"name": "x"}, "at most 255"),
        ("PUT", "/lists/ok", {}, "name is required"),
        ("PUT", "/lists/ok", {"name": 5}, "name must be"),
        ("PUT", "/lists/ok", {"name": "x", "extra": 1}, "extra: not a field"),
        ("PUT", "/lists/ok", [1, 2], "must be a JSON object"),
        (
            "PUT",
            "/lists/ok",
            {"name": "x", "preferences": {"notifications": {"t": {"status": "NOPE"}}}},
            "preferences.notifications.t.status must be one of",
        ),
        ("GET", "/lists?pattern=" + "a." * 200, None, "pattern must be at most 255"),
        ("GET", "/lists?pattern=a.**.b", None, "'**' may only be last"),
        ("GET", "/lists?cursor=bogus", None, "cursor"),
        ("GET", "/lists?limit=0", None, "limit"),
        ("POST", "/lists/ok/subscriptions", {"recipients": "u1"}, "recipients must be a list"),
        ("POST", "/lists/ok/subscriptions", {"recipients": [{}]}, "recipients[0].recipientId"),
        (
            "POST",
            "/lists/ok/subscriptions",
            {"recipients": [{"recipientId": 7}]},
            "recipients[0].recipientId must be",
        ),
        (
            "PUT",
            "/lists/ok/subscriptions",
            {"recipients": [{"recipientId": "u", "preferences": []}]},
            "recipients[0].preferences must be an object",
        ),
        ("PUT", "/lists/ok/subscriptions/u1", {"preferences": 3}, "preferences must be"),
        ("POST", "/profiles/u1/lists", {"lists": [{"listId": "a b"}]}, "lists[0].listId"),
        ("POST", "/profiles/u1/lists", {"lists": {}}, "lists must be a list"),
        ("POST", "/profiles/u1/lists", "nonsense", "must be a JSON object"),
    ],
)
def test_hostile_input_is_a_400_naming_the_field(
    start_tidings: Callable[..., RunningTidings],
    method: str,
    path: str,
    body: Any,
    says: str,
) -> None:
    server = start_tidings(run_workers=False)
    with server.http() as http:
        answer = http.request(method, path, json=body)
        assert answer.status_code == 400, answer.text
        assert answer.json()["type"] == "invalid_request_error"
        assert says in answer.json()["message"], answer.json()
        # nothing was created by a refused request
        assert http.get("/lists").json()["items"] == []


@pytest.fixture(params=["sqlite", "postgresql"])
def backend(request: pytest.FixtureRequest) -> dict[str, Any]:
    if request.param == "sqlite":
        return {}
    return {"database_url": str(request.getfixturevalue("postgres_url"))}


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("GET", "/lists/a%00b", None),
        ("PUT", "/lists/ok/subscriptions/u%00", {}),
        ("POST", "/lists/ok/subscriptions", {"recipients": [{"recipientId": "a\u0000"}]}),
        ("PUT", "/lists/ok", {"name": "n\u0000"}),
        ("GET", "/lists?pattern=a%00", None),
        ("GET", "/profiles/" + "u" * 300 + "/lists", None),
        ("GET", "/requests/r%00", None),
        ("GET", "/messages?list=a%00", None),
        ("GET", "/messages?tenant_id=a%00", None),
        ("GET", "/messages?notification=" + "n" * 100, None),
    ],
)
def test_what_no_database_can_store_is_a_400(
    start_tidings: Callable[..., RunningTidings],
    backend: dict[str, Any],
    method: str,
    path: str,
    body: Any,
) -> None:
    server = start_tidings(run_workers=False, **backend)
    with server.http() as http:
        answer = http.request(method, path, json=body)
        assert answer.status_code == 400, answer.text
        assert answer.json()["type"] == "invalid_request_error"
