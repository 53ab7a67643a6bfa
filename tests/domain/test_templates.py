"""The pure template core: payload checks, ids, element and locale edits, checksums,
version names, the metrics window."""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tidings.domain import templates as t
from tidings.domain.errors import ValidationError

CONTENT: Any = {
    "version": "2022-01-01",
    "elements": [
        {
            "type": "channel",
            "channel": "email",
            "elements": [
                {"type": "meta", "title": "Hello"},
                {"id": "body", "type": "text", "content": "Hi"},
                {"type": "text", "content": "Bye"},
                {"type": "image", "src": "https://example.test/a.png"},
            ],
        }
    ],
}


def _payload(**overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "name": "n",
        "tags": [],
        "brand": None,
        "routing": None,
        "subscription": None,
        "content": copy.deepcopy(CONTENT),
    }
    base.update(overrides)
    return base


def _error(call: Any) -> ValidationError:
    with pytest.raises(ValidationError) as raised:
        call()
    return raised.value


def test_states_and_version_names() -> None:
    assert t.parse_state(None, "state") == "DRAFT"
    assert t.parse_state("published", "state") == "PUBLISHED"
    assert t.parse_state("Draft", "state") == "DRAFT"
    assert _error(lambda: t.parse_state("live", "state")).path == "state"
    assert [t.version_name(n) for n in (1, 12, 999, 1000)] == ["v001", "v012", "v999", "v1000"]
    assert (
        t.is_version_name("v001") and not t.is_version_name("v1") and not t.is_version_name("draft")
    )


def test_ids_are_assigned_where_missing_and_kept_where_given() -> None:
    content = t.check_content(copy.deepcopy(CONTENT), "c", require_channel=True)
    channel = content["elements"][0]
    assert channel["id"] == "elem_channel_1"
    assert [e["id"] for e in channel["elements"]] == [
        "elem_meta_1",
        "body",
        "elem_text_1",
        "elem_image_1",
    ]
    # A given id that looks like an assigned one is skipped, not duplicated.
    taken = copy.deepcopy(CONTENT)
    taken["elements"][0]["elements"][0]["id"] = "elem_text_1"
    ids = [
        e["id"]
        for e in t.check_content(taken, "c", require_channel=True)["elements"][0]["elements"]
    ]
    assert ids == ["elem_text_1", "body", "elem_text_2", "elem_image_1"]
    assert CONTENT["elements"][0].get("id") is None  # the input is not changed


def test_content_rules() -> None:
    shorthand = _error(
        lambda: t.check_content({"title": "a", "body": "b"}, "n.content", require_channel=True)
    )
    assert shorthand.path == "n.content.version"
    unwrapped: Any = {"version": "2022-01-01", "elements": [{"type": "text", "content": "x"}]}
    assert _error(lambda: t.check_content(unwrapped, "n.content", require_channel=True)).path == (
        "n.content.elements[0]"
    )
    assert t.check_content(unwrapped, "n.content", require_channel=False)["elements"][0]["id"]
    empty: Any = {"version": "2022-01-01", "elements": []}
    assert t.check_content(empty, "c", require_channel=True) == empty
    defaulted = t.check_content({"elements": []}, "c", require_channel=False, default_version=True)
    assert defaulted["version"] == "2022-01-01"
    assert (
        _error(lambda: t.check_content({"elements": []}, "c", require_channel=False)).path
        == "c.version"
    )
    extra: Any = {"version": "2022-01-01", "elements": [], "brand": "x"}
    assert _error(lambda: t.check_content(extra, "c", require_channel=False)).path == "c.brand"
    duplicate = copy.deepcopy(CONTENT)
    duplicate["elements"][0]["elements"][2]["id"] = "body"
    assert _error(lambda: t.check_content(duplicate, "c", require_channel=True)).path == (
        "c.elements[0].elements[2].id"
    )
    bad_id = copy.deepcopy(CONTENT)
    bad_id["elements"][0]["id"] = "no spaces"
    assert (
        _error(lambda: t.check_content(bad_id, "c", require_channel=True)).path
        == "c.elements[0].id"
    )
    bad_locales = copy.deepcopy(CONTENT)
    bad_locales["elements"][0]["elements"][0]["locales"] = {"fr": "Salut"}
    assert _error(lambda: t.check_content(bad_locales, "c", require_channel=True)).path.endswith(
        "elements[0].locales"
    )


def test_write_payload_fields() -> None:
    checked = t.check_write_payload(_payload(), "notification", creating=True)
    assert checked.alias is t.MISSING and checked.email is t.MISSING
    assert _error(
        lambda: t.check_write_payload({**_payload(), "x": 1}, "notification", creating=True)
    ).path == ("notification.x")
    no_name = {k: v for k, v in _payload().items() if k != "name"}
    assert (
        _error(lambda: t.check_write_payload(no_name, "notification", creating=True)).path
        == "notification.name"
    )
    assert _error(
        lambda: t.check_write_payload(_payload(alias="tenant/a"), "notification", creating=True)
    ).path == ("notification.alias")
    assert t.check_write_payload(_payload(alias=None), "n", creating=True).alias is None
    assert _error(
        lambda: t.check_write_payload(_payload(routing={"strategy": "x"}), "n", creating=True)
    ).path == ("n.routing.strategy")
    assert t.check_write_payload(_payload(tags=["a", "a"]), "n", creating=True).tags == ["a"]


def test_email_headers_omit_null_object() -> None:
    stored = {"from": "a@x.test"}
    keep = t.check_write_payload(_payload(), "n", creating=False)
    assert keep.document(stored)["email"] == stored
    cleared = t.check_write_payload(_payload(email=None), "n", creating=False)
    assert cleared.document(stored)["email"] is None
    replaced = t.check_write_payload(_payload(email={"bcc": ["b@x.test"]}), "n", creating=False)
    assert replaced.document(stored)["email"] == {"bcc": ["b@x.test"]}
    assert t.check_email({}, "e") is None
    assert _error(lambda: t.check_email({"from": "a\r\nBcc: x"}, "e")).path == "e.from"
    assert _error(lambda: t.check_email({"cc": [1]}, "e")).path == "e.cc[0]"
    # No email channel, no headers stored.
    push_only: Any = {"version": "2022-01-01", "elements": []}
    none = t.check_write_payload(
        _payload(content=push_only, email={"from": "a@x.test"}), "n", creating=False
    )
    assert none.document(None)["email"] is None
    assert t.has_email_channel(CONTENT)
    assert t.has_email_channel({"elements": [{"type": "text", "content": "x"}]})
    assert not t.has_email_channel(
        {"elements": [{"type": "channel", "channel": "push", "elements": []}]}
    )


def test_replace_element_anywhere_in_the_tree() -> None:
    content = t.check_content(copy.deepcopy(CONTENT), "c", require_channel=True)
    content["elements"][0]["elements"][1]["locales"] = {"fr": {"content": "Salut"}}
    updated = t.replace_element(
        content,
        "body",
        {"type": "text", "data": {"content": "New", "format": "markdown"}, "if": "data.x"},
    )
    element = t.find_element(updated, "body")
    assert element == {
        "id": "body",
        "type": "text",
        "content": "New",
        "format": "markdown",
        "if": "data.x",
        "locales": {"fr": {"content": "Salut"}},  # kept: put_locale owns them
    }
    assert (
        t.find_element(content, "body") is not None and t.find_element(content, "body") != element
    )
    with pytest.raises(LookupError):
        t.replace_element(content, "ghost", {"type": "text"})
    # Type-specific fields may also come at the top level, as Courier's request allows.
    top = t.replace_element(content, "body", {"type": "text", "content": "Top"})
    assert t.find_element(top, "body") == {
        "id": "body",
        "type": "text",
        "content": "Top",
        "locales": {"fr": {"content": "Salut"}},
    }
    assert (
        _error(lambda: t.replace_element(content, "body", {"type": "text", "id": "x"})).path == "id"
    )
    twice = {"type": "text", "content": "a", "data": {"content": "b"}}
    assert _error(lambda: t.replace_element(content, "body", twice)).path == "data.content"
    assert _error(lambda: t.replace_element(content, "body", {"data": {}})).path == "type"
    assert _error(
        lambda: t.replace_element(content, "body", {"type": "text", "data": {"id": "x"}})
    ).path == ("data.id")


def test_set_locale_stores_overrides_inside_elements() -> None:
    content = t.check_content(copy.deepcopy(CONTENT), "c", require_channel=True)
    fr = t.set_locale(
        content,
        "fr",
        [{"id": "elem_meta_1", "title": "Salut"}, {"id": "body", "content": "Coucou"}],
    )
    inner = fr["elements"][0]["elements"]
    assert inner[0] == {
        "type": "meta",
        "title": "Hello",
        "id": "elem_meta_1",
        "locales": {"fr": {"title": "Salut"}},
    }
    assert inner[1]["locales"] == {"fr": {"content": "Coucou"}}
    both = t.set_locale(fr, "de", [{"id": "body", "content": "Hallo"}])
    assert both["elements"][0]["elements"][1]["locales"] == {
        "fr": {"content": "Coucou"},
        "de": {"content": "Hallo"},
    }
    # PUT semantics: fr set again without the meta drops its fr override.
    again = t.set_locale(both, "fr", [{"id": "body", "content": "Re"}])
    assert "locales" not in again["elements"][0]["elements"][0]
    with pytest.raises(LookupError) as missing:
        t.set_locale(content, "fr", [{"id": "ghost", "title": "x"}])
    assert missing.value.args == ("ghost",)
    assert (
        _error(lambda: t.set_locale(content, "fr", [{"id": "body", "title": "x"}])).path
        == "elements[0].title"
    )
    assert _error(lambda: t.set_locale(content, "fr", [{"id": "body"}])).path == "elements[0]"
    assert _error(
        lambda: t.set_locale(
            content, "fr", [{"id": "body", "content": "a"}, {"id": "body", "content": "b"}]
        )
    ).path == ("elements[1].id")
    assert _error(lambda: t.set_locale(content, "fr", [{"id": "body", "content": 3}])).path == (
        "elements[0].content"
    )


def test_checksums_follow_content_not_structure() -> None:
    a = {"id": "x", "type": "text", "content": "Hi"}
    assert t.checksum(a) == t.checksum({"type": "text", "content": "Hi", "id": "other"})
    assert t.checksum(a) == t.checksum({**a, "locales": {"fr": {"content": "Salut"}}})
    assert t.checksum(a) != t.checksum({**a, "content": "Hello"})
    assert len(t.checksum(a)) == 32
    content = t.check_content(copy.deepcopy(CONTENT), "c", require_channel=True)
    sums = t.element_checksums(content)
    assert [s["id"] for s in sums] == [
        "elem_channel_1",
        "elem_meta_1",
        "body",
        "elem_text_1",
        "elem_image_1",
    ]
    localized = t.set_locale(content, "fr", [{"id": "body", "content": "Salut"}])
    shown = t.with_checksums(localized)
    body = shown["elements"][0]["elements"][1]
    assert body["content"] == "Hi" and body["checksum"] == t.checksum(a)
    assert set(body["locales"]) == {"fr"} and len(body["locales"]["fr"]["checksum"]) == 32


def test_durations() -> None:
    assert t.parse_duration("P30D", "l") == timedelta(days=30)
    assert t.parse_duration("P12W", "l") == timedelta(weeks=12)
    assert t.parse_duration("PT12H", "l") == timedelta(hours=12)
    assert t.parse_duration("P1DT2H30M", "l") == timedelta(days=1, hours=2, minutes=30)
    for bad in ("P", "PT", "P0D", "30D", "P1M", "P1Y", "P1DT"):
        assert _error(lambda bad=bad: t.parse_duration(bad, "lookback")).path == "lookback"


def test_metrics_window_snaps_outwards() -> None:
    at = datetime(2026, 4, 1, 10, 30, tzinfo=UTC)  # a Wednesday
    day = t.metrics_window(
        start=at, end=at + timedelta(days=1), lookback=None, granularity="DAY", now=at
    )
    assert day.start == datetime(2026, 4, 1, tzinfo=UTC) and day.end == datetime(
        2026, 4, 3, tzinfo=UTC
    )
    assert day.buckets == [datetime(2026, 4, 1, tzinfo=UTC), datetime(2026, 4, 2, tzinfo=UTC)]
    week = t.metrics_window(
        start=at, end=at + timedelta(hours=1), lookback=None, granularity="WEEK", now=at
    )
    assert week.start == datetime(2026, 3, 29, tzinfo=UTC) and week.start.weekday() == 6  # Sunday
    month = t.metrics_window(
        start=None, end=None, lookback=timedelta(days=40), granularity="MONTH", now=at
    )
    assert [b.month for b in month.buckets] == [2, 3, 4] and month.end == datetime(
        2026, 5, 1, tzinfo=UTC
    )
    december = t.metrics_window(
        start=datetime(2026, 12, 5, tzinfo=UTC),
        end=datetime(2027, 1, 2, tzinfo=UTC),
        lookback=None,
        granularity="MONTH",
        now=at,
    )
    assert december.buckets == [datetime(2026, 12, 1, tzinfo=UTC), datetime(2027, 1, 1, tzinfo=UTC)]
    default = t.metrics_window(start=None, end=None, lookback=None, granularity="DAY", now=at)
    assert len(default.buckets) == 31  # 30 days back, both ends snapped outwards
    hour = t.metrics_window(
        start=None, end=None, lookback=timedelta(hours=2), granularity="HOUR", now=at
    )
    assert len(hour.buckets) == 3
    assert _error(
        lambda: t.metrics_window(start=at, end=None, lookback=None, granularity="DAY", now=at)
    ).path == ("end")
    assert _error(
        lambda: t.metrics_window(start=at, end=at, lookback=None, granularity="DAY", now=at)
    ).path == ("start")
    too_long = timedelta(days=8)
    assert _error(
        lambda: t.metrics_window(
            start=None, end=None, lookback=too_long, granularity="HOUR", now=at
        )
    ).path == ("granularity")
    assert _error(
        lambda: t.metrics_window(
            start=None, end=None, lookback=timedelta(weeks=1100), granularity="WEEK", now=at
        )
    ).path == ("granularity")
