"""Courier's Notifications (templates) API through the official SDK against a real Tidings
server: SQLite, and PostgreSQL for the alias race."""

from __future__ import annotations

import asyncio
import copy
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import courier
import pytest
from courier.types import ElementWithChecksums, NotificationContentGetResponse

from tests.e2e.conftest import RunningTidings
from tidings.store import templates as store
from tidings.store.database import Database

CONTENT: Any = {
    "version": "2022-01-01",
    "elements": [
        {
            "type": "channel",
            "channel": "email",
            "elements": [
                {"type": "meta", "title": "Hello {{name}}"},
                {"type": "text", "content": "Welcome aboard"},
                {"type": "action", "content": "Start", "href": "https://example.test/start"},
            ],
        }
    ],
}


# The SDK's types say upper case; Courier takes any case.
LOWER_DRAFT: Any = "draft"
LOWER_PUBLISHED: Any = "published"


def _notification(**overrides: Any) -> Any:
    base: dict[str, Any] = {
        "name": "Welcome",
        "tags": ["onboarding"],
        "brand": None,
        "routing": None,
        "subscription": None,
        "content": copy.deepcopy(CONTENT),
    }
    base.update(overrides)
    return base


def _sendable(server: RunningTidings, ref: str) -> store.SendableTemplate:
    async def read() -> store.SendableTemplate:
        db = Database(server.settings.database_url)
        try:
            async with db.read() as conn:
                return await store.find_sendable(conn, ref)
        finally:
            await db.close()

    return asyncio.run(read())


def _content(answer: Any) -> dict[str, Any]:
    """retrieve_content's answer as a dict, checked against the SDK's V2 shape (the SDK
    hands back the plain dict: its answer type is a union it does not resolve)."""
    data = answer if isinstance(answer, dict) else answer.model_dump()
    parsed = NotificationContentGetResponse.model_validate(data)
    assert all(isinstance(e, ElementWithChecksums) for e in parsed.elements)
    return dict(data)


def _els(*overrides: Any) -> Any:
    """put_locale's elements: the SDK types only ``id``; the fields are extra items."""
    return list(overrides)


def _error(raised: pytest.ExceptionInfo[courier.APIStatusError]) -> dict[str, Any]:
    body: dict[str, Any] = raised.value.response.json()
    return body


def test_create_publish_versions_and_draft_edits(
    start_tidings: Callable[..., RunningTidings],
) -> None:
    server = start_tidings(run_workers=False)
    client = server.courier()
    created = client.notifications.create(notification=_notification(), state=LOWER_DRAFT)
    assert created.id.startswith("nt_") and created.state == "DRAFT"
    assert created.name == "Welcome" and created.tags == ["onboarding"]
    assert created.brand is None and created.alias is None and created.email is None
    assert created.created > 0 and created.creator
    channel = created.content.elements[0]
    # Elements without an id get one: elem_<type>_<n>.
    assert channel.model_dump()["id"] == "elem_channel_1"
    ids = [e["id"] for e in channel.model_dump()["elements"]]
    assert ids == ["elem_meta_1", "elem_text_1", "elem_action_1"]

    # The published version is the default read; there is none yet.
    with pytest.raises(courier.NotFoundError) as missing:
        client.notifications.retrieve(created.id)
    assert "version=draft" in _error(missing)["message"]
    draft = client.notifications.retrieve(created.id, version="draft")
    assert draft.model_dump() == created.model_dump()

    client.notifications.publish(created.id)
    published = client.notifications.retrieve(created.id)
    assert published.state == "PUBLISHED" and published.name == "Welcome"
    assert client.notifications.retrieve(created.id, version="draft").state == "PUBLISHED"
    assert _sendable(server, created.id).version == "v001"

    # A draft edit changes only the draft; the template reads DRAFT until published again.
    edited = client.notifications.replace(created.id, notification=_notification(name="Hi"))
    assert edited.state == "DRAFT" and edited.name == "Hi"
    assert client.notifications.retrieve(created.id).name == "Welcome"
    assert _sendable(server, created.id).name == "Welcome"
    versions = client.notifications.list_versions(created.id).versions
    assert [v.version for v in versions] == ["draft", "published:v001"]
    assert versions[0].has_changes is True and versions[1].has_changes is None

    client.notifications.publish(created.id)
    assert client.notifications.retrieve(created.id).name == "Hi"
    assert client.notifications.retrieve(created.id, version="v001").name == "Welcome"
    # Publishing a historical version again makes it the next version.
    client.notifications.publish(created.id, version="v001")
    sendable = _sendable(server, created.id)
    assert sendable.version == "v003" and sendable.name == "Welcome"
    names = [v.version for v in client.notifications.list_versions(created.id).versions]
    assert names == ["draft", "published:v003", "v002", "v001"]
    page = client.notifications.list_versions(created.id, limit=2)
    assert page.paging.more and page.paging.cursor
    rest = client.notifications.list_versions(created.id, limit=2, cursor=page.paging.cursor)
    assert [v.version for v in rest.versions] == ["v002", "v001"] and not rest.paging.more

    with pytest.raises(courier.NotFoundError):
        client.notifications.publish(created.id, version="v009")
    with pytest.raises(courier.NotFoundError):
        client.notifications.retrieve(created.id, version="v009")
    with pytest.raises(courier.BadRequestError):
        client.notifications.retrieve(created.id, version="latest")

    # state=PUBLISHED on create publishes at once.
    live = client.notifications.create(notification=_notification(), state=LOWER_PUBLISHED)
    assert live.state == "PUBLISHED" and _sendable(server, live.id).version == "v001"


def test_create_refuses_what_courier_refuses(
    start_tidings: Callable[..., RunningTidings],
) -> None:
    client = start_tidings(run_workers=False).courier()
    cases: list[tuple[Any, str]] = [
        (_notification(content={"title": "Hi", "body": "there"}), "notification.content.version"),
        (
            _notification(
                content={"version": "2022-01-01", "elements": [{"type": "text", "content": "x"}]}
            ),
            "notification.content.elements[0]",
        ),
        ({**_notification(), "colour": "red"}, "notification.colour"),
        ({k: v for k, v in _notification().items() if k != "tags"}, "notification.tags"),
        (_notification(alias="tenant/acme"), "notification.alias"),
        (_notification(routing={"strategy_id": "rs_missing"}), "notification.routing.strategy_id"),
        (_notification(brand={"id": "b1", "x": 1}), "notification.brand.x"),
        (
            _notification(email={"from": "a@example.test", "sender": "x"}),
            "notification.email.sender",
        ),
        (
            _notification(
                content={
                    "version": "2022-01-01",
                    "elements": [
                        {
                            "type": "channel",
                            "channel": "email",
                            "elements": [
                                {"id": "same", "type": "text", "content": "a"},
                                {"id": "same", "type": "text", "content": "b"},
                            ],
                        }
                    ],
                }
            ),
            "elements[1].id",
        ),
    ]
    for notification, named in cases:
        with pytest.raises(courier.BadRequestError) as raised:
            client.notifications.create(notification=notification)
        body = _error(raised)
        assert named in body["message"], (named, body)
        assert body["type"] == "invalid_request_error"
    with pytest.raises(courier.BadRequestError) as raised:
        client.notifications.create(notification=_notification(), state="LIVE")  # type: ignore[arg-type]
    assert "state" in _error(raised)["message"]
    with pytest.raises(courier.BadRequestError) as raised:
        client.notifications.create(notification=_notification(), extra_body={"publish": True})
    assert "publish" in _error(raised)["message"]
    # An empty elements list needs no channel block; replace accepts unwrapped content.
    empty = client.notifications.create(
        notification=_notification(content={"version": "2022-01-01", "elements": []})
    )
    unwrapped = client.notifications.replace(
        empty.id,
        notification=_notification(
            content={"version": "2022-01-01", "elements": [{"type": "text", "content": "plain"}]}
        ),
    )
    assert unwrapped.content.elements[0].model_dump()["id"] == "elem_text_1"
    with pytest.raises(courier.BadRequestError):
        client.notifications.replace(
            empty.id, notification=_notification(content={"title": "Hi", "body": "x"})
        )


def test_routing_strategy_and_brand_references(
    start_tidings: Callable[..., RunningTidings],
) -> None:
    client = start_tidings(run_workers=False).courier()
    strategy = client.routing_strategies.create(
        name="s", routing={"method": "single", "channels": ["email"]}
    )
    created = client.notifications.create(
        notification=_notification(
            brand={"id": "brand_1"},
            routing={"strategy_id": strategy.id},
            subscription={"topic_id": "topic_1"},
        ),
        state="PUBLISHED",
    )
    assert created.brand is not None and created.brand.id == "brand_1"
    assert created.routing is not None and created.routing.strategy_id == strategy.id
    assert created.subscription is not None and created.subscription.topic_id == "topic_1"
    summary = client.notifications.list().results[0].model_dump()
    assert summary["subscription_topic_id"] == summary["topic_id"] == "topic_1"


def test_aliases_claim_keep_remove_and_archive(
    start_tidings: Callable[..., RunningTidings],
) -> None:
    server = start_tidings(run_workers=False)
    client = server.courier()
    first = client.notifications.create(notification=_notification(alias="welcome"))
    assert first.alias == "welcome"
    with pytest.raises(courier.ConflictError) as raised:
        client.notifications.create(notification=_notification(alias="welcome"))
    body = _error(raised)
    assert body["type"] == "invalid_request_error" and first.id in body["message"]
    second = client.notifications.create(notification=_notification(name="Other"))
    with pytest.raises(courier.ConflictError):
        client.notifications.replace(second.id, notification=_notification(alias="welcome"))

    kept = client.notifications.replace(first.id, notification=_notification(name="Kept"))
    assert kept.alias == "welcome"  # omitted: untouched
    renamed = client.notifications.replace(first.id, notification=_notification(alias="hello"))
    assert renamed.alias == "hello"
    assert [t.id for t in client.notifications.list(event_id="hello").results] == [first.id]
    client.notifications.publish(first.id)
    assert _sendable(server, "hello").id == first.id
    removed = client.notifications.replace(first.id, notification=_notification(alias=None))
    assert removed.alias is None and "alias" not in removed.model_dump(exclude_unset=True)
    assert client.notifications.list(event_id="hello").results == []
    with pytest.raises(store.TemplateUnavailable, match="no template"):
        _sendable(server, "hello")

    client.notifications.replace(second.id, notification=_notification(alias="welcome"))
    client.notifications.publish(second.id)
    client.notifications.archive(second.id)
    # Archived: not listed, not sendable, its alias free; still readable (its history).
    assert second.id not in [t.id for t in client.notifications.list().results]
    with pytest.raises(store.TemplateUnavailable, match="archived"):
        _sendable(server, second.id)
    assert client.notifications.retrieve(second.id).name == "Welcome"
    assert client.notifications.retrieve(second.id).alias is None
    with pytest.raises(courier.ConflictError):
        client.notifications.replace(second.id, notification=_notification())
    with pytest.raises(courier.ConflictError):
        client.notifications.publish(second.id)
    with pytest.raises(courier.NotFoundError):
        client.notifications.archive(second.id)
    with pytest.raises(courier.NotFoundError):
        client.notifications.archive("nt_missing")
    third = client.notifications.create(notification=_notification(alias="welcome"))
    assert third.alias == "welcome"


def test_email_headers_keep_replace_clear(start_tidings: Callable[..., RunningTidings]) -> None:
    client = start_tidings(run_workers=False).courier()
    headers: Any = {"from": "Acme <hi@acme.test>", "cc": ["{{data.cc}}"], "bcc": ["b@acme.test"]}
    created = client.notifications.create(notification=_notification(email=headers))
    assert created.email is not None and created.email.from_ == "Acme <hi@acme.test>"
    assert created.email.cc == ["{{data.cc}}"] and created.email.reply_to is None
    assert "reply_to" not in created.email.model_dump(exclude_unset=True)
    kept = client.notifications.replace(created.id, notification=_notification())
    assert kept.email is not None and kept.email.bcc == ["b@acme.test"]
    replaced = client.notifications.replace(
        created.id, notification=_notification(email={"reply_to": "r@acme.test"})
    )
    assert replaced.email is not None and replaced.email.reply_to == "r@acme.test"
    assert replaced.email.from_ is None and replaced.email.cc is None
    cleared = client.notifications.replace(created.id, notification=_notification(email=None))
    assert cleared.email is None
    # Headers are kept only while the content has an email channel.
    client.notifications.replace(created.id, notification=_notification(email=headers))
    client.notifications.put_content(created.id, content={"elements": []})
    assert client.notifications.retrieve(created.id, version="draft").email is None
    none = client.notifications.replace(
        created.id,
        notification=_notification(
            email=headers, content={"version": "2022-01-01", "elements": []}
        ),
    )
    assert none.email is None
    with pytest.raises(courier.BadRequestError) as raised:
        client.notifications.replace(
            created.id, notification=_notification(email={"cc": "one@acme.test"})
        )
    assert "notification.email.cc" in _error(raised)["message"]


def test_content_elements_and_locales(start_tidings: Callable[..., RunningTidings]) -> None:
    server = start_tidings(run_workers=False)
    client = server.courier()
    created = client.notifications.create(notification=_notification())
    dumped = _content(client.notifications.retrieve_content(created.id, version="draft"))
    assert dumped["version"] == "2022-01-01"
    channel = dumped["elements"][0]
    assert channel["id"] == "elem_channel_1" and channel["type"] == "channel"
    assert len(channel["checksum"]) == 32
    text = channel["elements"][1]
    assert text["id"] == "elem_text_1" and text["content"] == "Welcome aboard"
    before = text["checksum"]

    changed = client.notifications.put_element(
        "elem_text_1", id=created.id, type="text", data={"content": "Welcome back"}
    )
    assert changed.id == created.id and changed.state == "DRAFT"
    assert changed.version == "2022-01-01"
    sums = {e.id: e.checksum for e in changed.elements}
    assert set(sums) == {"elem_channel_1", "elem_meta_1", "elem_text_1", "elem_action_1"}
    assert sums["elem_text_1"] != before
    with pytest.raises(courier.NotFoundError) as raised:
        client.notifications.put_element("elem_nope", id=created.id, type="text")
    assert "elem_nope" in _error(raised)["message"]
    with pytest.raises(courier.BadRequestError):
        client.notifications.put_element(
            "elem_text_1", id=created.id, type="text", data={"id": "other", "content": "x"}
        )
    # Type-specific fields may also come at the top level of the body.
    top = client.notifications.put_element(
        "elem_text_1", id=created.id, type="text", extra_body={"content": "Welcome back"}
    )
    assert {e.id: e.checksum for e in top.elements}["elem_text_1"] == sums["elem_text_1"]
    # The content parser refuses a text without content.
    with pytest.raises(courier.BadRequestError):
        client.notifications.put_element("elem_text_1", id=created.id, type="text")

    localized = client.notifications.put_locale(
        "fr",
        id=created.id,
        elements=_els(
            {"id": "elem_meta_1", "title": "Bonjour {{name}}"},
            {"id": "elem_text_1", "content": "Bon retour"},
        ),
    )
    assert {e.id for e in localized.elements} >= {"elem_meta_1", "elem_text_1"}
    draft = client.notifications.retrieve(created.id, version="draft").model_dump()
    inner = draft["content"]["elements"][0]["elements"]
    assert inner[0]["locales"] == {"fr": {"title": "Bonjour {{name}}"}}
    assert inner[1]["locales"] == {"fr": {"content": "Bon retour"}}
    with_sums = _content(client.notifications.retrieve_content(created.id, version="draft"))
    assert len(with_sums["elements"][0]["elements"][0]["locales"]["fr"]["checksum"]) == 32
    # A PUT of the locale replaces it: elements not listed lose their fr override.
    client.notifications.put_locale(
        "fr", id=created.id, elements=_els({"id": "elem_text_1", "content": "Re-bonjour"})
    )
    inner = client.notifications.retrieve(created.id, version="draft").model_dump()["content"][
        "elements"
    ][0]["elements"]
    assert "locales" not in inner[0] and inner[1]["locales"] == {"fr": {"content": "Re-bonjour"}}
    with pytest.raises(courier.NotFoundError) as raised:
        client.notifications.put_locale(
            "fr", id=created.id, elements=_els({"id": "ghost", "title": "x"})
        )
    assert "ghost" in _error(raised)["message"]
    with pytest.raises(courier.BadRequestError) as refused:
        client.notifications.put_locale(
            "fr", id=created.id, elements=_els({"id": "elem_text_1", "href": "https://x.test"})
        )
    assert "href" in _error(refused)["message"]

    # state=PUBLISHED publishes the edited draft; the published content carries the locale.
    published = client.notifications.put_locale(
        "de",
        id=created.id,
        elements=_els({"id": "elem_meta_1", "title": "Hallo"}),
        state="PUBLISHED",
    )
    assert published.state == "PUBLISHED"
    sendable = _sendable(server, created.id)
    meta = sendable.content["elements"][0]["elements"][0]
    assert meta["locales"] == {"de": {"title": "Hallo"}}
    published_content = _content(client.notifications.retrieve_content(created.id))
    assert published_content["elements"][0]["elements"][0]["locales"]["de"]["checksum"]

    replaced = client.notifications.put_content(
        created.id,
        content={"elements": [{"type": "meta", "title": "Only"}]},  # version defaulted
    )
    assert [e.id for e in replaced.elements] == ["elem_meta_1"]
    with pytest.raises(courier.BadRequestError):
        client.notifications.put_content(created.id, content={"elements": [{"type": "text"}]})
    assert client.notifications.retrieve(created.id).content.elements  # published unchanged


def test_list_pages_and_filters_by_tags(start_tidings: Callable[..., RunningTidings]) -> None:
    server = start_tidings(run_workers=False)
    client = server.courier()
    made = [
        client.notifications.create(notification=_notification(name=f"t{i}", tags=tags))
        for i, tags in enumerate([["A", "b"], ["a"], ["b"], ["a", "B"]])
    ]
    with server.http() as http:
        first = http.get("/notifications", params={"limit": 2}).json()
        assert [r["id"] for r in first["results"]] == [made[0].id, made[1].id]
        assert first["paging"]["more"] and first["paging"]["cursor"]
        rest = http.get(
            "/notifications", params={"limit": 2, "cursor": first["paging"]["cursor"]}
        ).json()
        assert [r["id"] for r in rest["results"]] == [made[2].id, made[3].id]
        assert rest["paging"] == {"cursor": None, "more": False}
        assert http.get("/notifications", params={"cursor": "junk"}).status_code == 400
    tagged = client.notifications.list(tags="a,b").results
    assert [t.id for t in tagged] == [made[0].id, made[3].id]
    summary = tagged[0].model_dump()
    assert summary["state"] == "DRAFT" and summary["name"] == "t0" and "content" not in summary
    assert len(client.notifications.list().results) == 4


def test_idempotent_create_and_publish(start_tidings: Callable[..., RunningTidings]) -> None:
    server = start_tidings(run_workers=False)
    client = server.courier()
    once = client.notifications.create(notification=_notification(), idempotency_key="k-1")
    again = client.notifications.create(notification=_notification(), idempotency_key="k-1")
    assert again.id == once.id and len(client.notifications.list().results) == 1
    with pytest.raises(courier.ConflictError):
        client.notifications.create(notification=_notification(name="other"), idempotency_key="k-1")
    client.notifications.publish(once.id, idempotency_key="p-1")
    client.notifications.publish(once.id, idempotency_key="p-1")
    names = [v.version for v in client.notifications.list_versions(once.id).versions]
    assert names == ["draft", "published:v001"]


def test_metrics_of_a_template_without_messages(
    start_tidings: Callable[..., RunningTidings],
) -> None:
    client = start_tidings(run_workers=False).courier()
    created = client.notifications.create(notification=_notification())
    metrics = client.notifications.get_metrics(
        created.id, start="2026-04-01T10:30:00Z", end="2026-04-03T00:00:00+00:00"
    )
    assert metrics.notification_id == created.id and metrics.granularity == "DAY"
    assert metrics.start.isoformat() == "2026-04-01T00:00:00+00:00"
    assert metrics.end.isoformat() == "2026-04-03T00:00:00+00:00"
    assert [s.period.day for s in metrics.series] == [1, 2]
    assert all(s.data == [] for s in metrics.series)
    hourly = client.notifications.get_metrics("nt_unknown", lookback="PT3H", granularity="HOUR")
    assert len(hourly.series) in (3, 4) and all(s.data == [] for s in hourly.series)
    bad: Any
    for bad in (
        {"lookback": "P0D"},
        {"lookback": "soon"},
        {"start": "2026-04-01T00:00:00Z"},
        {"start": "2026-01-01T00:00:00Z", "end": "2026-06-01T00:00:00Z"},  # DAY over 90 days
        {"start": "2026-04-01T00:00:00", "end": "2026-04-02T00:00:00"},  # no offset
    ):
        with pytest.raises(courier.BadRequestError):
            client.notifications.get_metrics(created.id, **bad)
    weekly = client.notifications.get_metrics(
        created.id,
        start="2026-04-01T00:00:00Z",
        end="2026-04-02T00:00:00Z",
        granularity="WEEK",
    )
    assert weekly.start.isoformat() == "2026-03-29T00:00:00+00:00"  # a Sunday


def test_alias_race_on_postgresql(
    postgres_url: str, start_tidings: Callable[..., RunningTidings]
) -> None:
    """Two API processes' worth of concurrent creates claim one alias: exactly one wins."""
    first = start_tidings(database_url=postgres_url, run_workers=False)
    second = start_tidings(database_url=postgres_url, run_workers=False)
    clients = [first.courier(), second.courier()]

    def claim(i: int) -> str:
        try:
            clients[i % 2].notifications.create(notification=_notification(alias="race"))
            return "won"
        except courier.ConflictError as exc:
            assert exc.response.json()["type"] == "invalid_request_error"
            return "409"

    with ThreadPoolExecutor(max_workers=8) as pool:
        outcomes = list(pool.map(claim, range(8)))
    assert outcomes.count("won") == 1 and outcomes.count("409") == 7
    owners = [t for t in clients[0].notifications.list(event_id="race").results]
    assert len(owners) == 1
    with pytest.raises(courier.ConflictError):
        clients[1].notifications.create(notification=_notification(alias="race"))
