"""The tags API and tag statistics through the official SDK (sync and async): tags come
from the sends that carry them, statistics from the events the sandbox produced."""

from __future__ import annotations

import time
from email.utils import formatdate
from typing import Any

import requests
from mailgun.client import AsyncClient, Client
from mailgun.config import RetryPolicy

from tests.sandbox.conftest import DOMAIN, KEY, Running, basic_message, send, wait_until
from tidings.sandbox.tags import Window, bucket_start, buckets, months_before, stats_time

HTML = '<a href="https://shop.example.test/">shop</a>'


def events_of(running: Running, message_id: str) -> list[str]:
    answer = requests.get(running.api(f"/messages/{message_id.strip('<>')}/events"), timeout=5)
    return [item["event"] for item in answer.json()]


def tagged_send(running: Running, to: str, *tags: str) -> str:
    answer = send(running.base, basic_message(to=to, html=HTML, **{"o:tag": list(tags)}))
    assert answer.status_code == 200, answer.text
    return str(answer.json()["id"])


def test_tags_come_from_sends(running: Running, client: Client) -> None:
    assert client.tags.get(domain=DOMAIN).json()["items"] == []
    tagged_send(running, "ann@example.test", "Newsletter", "welcome")
    tagged_send(running, "bob@example.test", "newsletter")

    listed = client.tags.get(domain=DOMAIN).json()
    assert [item["tag"] for item in listed["items"]] == ["Newsletter", "welcome"]
    first = listed["items"][0]
    assert set(first) == {"tag", "description", "first-seen", "last-seen"}
    assert first["first-seen"] <= first["last-seen"] and first["first-seen"].endswith("Z")
    assert set(listed["paging"]) == {"first", "last", "next", "previous"}

    one = client.tags.get(domain=DOMAIN, tag_name="newsletter")
    assert one.json()["tag"] == "Newsletter"
    updated = client.tags.put(domain=DOMAIN, tag_name="welcome", data={"description": "Hello"})
    assert updated.json() == {"message": "Tag updated"}
    assert client.tags.get(domain=DOMAIN, tag_name="welcome").json()["description"] == "Hello"

    deleted = client.tags.delete(domain=DOMAIN, tag_name="welcome")
    assert deleted.json() == {"message": "Tag deleted"}
    missing = client.tags.get(domain=DOMAIN, tag_name="welcome")
    assert (missing.status_code, missing.json()) == (404, {"message": "tag not found"})
    assert client.tags.delete(domain=DOMAIN, tag_name="welcome").status_code == 404
    extra = client.tags.put(domain=DOMAIN, tag_name="newsletter", data={"colour": "red"})
    assert (extra.status_code, extra.json()) == (400, {"message": "Unsupported parameter: colour"})


def test_tag_paging(running: Running, client: Client) -> None:
    for name in ("a", "b", "c", "d", "e"):
        tagged_send(running, f"{name}@example.test", f"tag-{name}")
    page = client.tags.get(domain=DOMAIN, filters={"limit": 2}).json()
    seen = [item["tag"] for item in page["items"]]
    while True:
        following = requests.get(page["paging"]["next"], auth=("api", KEY), timeout=5).json()
        if not following["items"]:
            break
        seen += [item["tag"] for item in following["items"]]
        page = following
    assert seen == ["tag-a", "tag-b", "tag-c", "tag-d", "tag-e"]
    previous = requests.get(page["paging"]["previous"], auth=("api", KEY), timeout=5).json()
    assert [item["tag"] for item in previous["items"]] == ["tag-c", "tag-d"]
    last = requests.get(page["paging"]["last"], auth=("api", KEY), timeout=5).json()
    assert [item["tag"] for item in last["items"]] == ["tag-d", "tag-e"]
    prefixed = client.tags.get(domain=DOMAIN, filters={"prefix": "tag-c"}).json()
    assert [item["tag"] for item in prefixed["items"]] == ["tag-c"]
    assert page["paging"]["next"].startswith(f"{running.base}/v3/{DOMAIN}/tags?")


def test_tag_stats_count_the_events_produced(running: Running, client: Client) -> None:
    clicked = tagged_send(running, "ann+click@example.test", "promo")
    bounced = tagged_send(running, "bob+bounce@example.test", "promo")
    tagged_send(running, "cid@example.test", "other")
    wait_until(lambda: "clicked" in events_of(running, clicked))
    wait_until(lambda: "failed" in events_of(running, bounced))

    answer = client.tags_stats.get(
        domain=DOMAIN,
        tag_name="promo",
        filters={"event": ["accepted", "delivered", "failed", "opened", "clicked"]},
    )
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["tag"] == "promo" and body["resolution"] == "day"
    assert body["start"].endswith(" UTC") and body["end"].endswith(" UTC")
    assert len(body["stats"]) in (7, 8)  # the days of the last week, today included

    # Summed over the buckets, so that a test run across midnight UTC counts the same.
    def total(*path: str, stats: list[dict[str, Any]] = body["stats"]) -> int:
        count = 0
        for entry in stats:
            value: Any = entry
            for key in path:
                value = value[key]
            count += value
        return count

    assert total("accepted", "outgoing") == total("accepted", "total") == 2
    assert total("accepted", "incoming") == 0
    assert total("delivered", "total") == 1
    assert total("failed", "permanent", "bounce") == total("failed", "permanent", "total") == 1
    assert (total("opened", "total"), total("opened", "unique")) == (1, 1)
    assert (total("clicked", "total"), total("clicked", "unique")) == (1, 1)
    assert all("complained" not in entry for entry in body["stats"])

    hourly = client.tags_stats.get(
        domain=DOMAIN, tag_name="promo", filters={"event": "accepted", "duration": "3h"}
    ).json()
    assert hourly["resolution"] == "hour" and len(hourly["stats"]) in (3, 4)
    assert sum(entry["accepted"]["total"] for entry in hourly["stats"]) == 2
    earlier = client.tags_stats.get(
        domain=DOMAIN,
        tag_name="promo",
        filters={"event": "accepted", "end": formatdate(time.time() - 86400 * 3)},
    ).json()
    assert sum(entry["accepted"]["total"] for entry in earlier["stats"]) == 0

    devices = client.tags_stats_aggregates_devices.get(domain=DOMAIN, tag_name="promo").json()
    assert devices["tag"] == "promo"
    assert devices["devices"]["desktop"]["opened"] == 1
    assert devices["devices"]["desktop"]["unique_clicked"] == 1
    countries = client.tags_stats_aggregates_countries.get(domain=DOMAIN, tag_name="promo")
    assert countries.json()["countries"]["us"]["clicked"] == 1
    providers = client.tags_stats_aggregates_providers.get(domain=DOMAIN, tag_name="promo")
    assert providers.json()["providers"]["example.test"]["accepted"] == 2

    # Deleting a tag keeps its statistics, as at Mailgun.
    client.tags.delete(domain=DOMAIN, tag_name="promo")
    kept = client.tags_stats.get(domain=DOMAIN, tag_name="promo", filters={"event": "accepted"})
    assert sum(entry["accepted"]["total"] for entry in kept.json()["stats"]) == 2


def test_tag_stats_errors(running: Running, client: Client) -> None:
    tagged_send(running, "ann@example.test", "promo")
    cases = [
        ({}, "event parameter is missing"),
        ({"event": "bounced"}, "Invalid event: 'bounced'"),
        ({"event": "accepted", "resolution": "week"}, "Invalid resolution: 'week'"),
        ({"event": "accepted", "duration": "3w"}, "Invalid duration: '3w'"),
        ({"event": "accepted", "start": "yesterday"}, "Invalid start"),
        ({"event": "accepted", "tags": "x"}, "Unsupported parameter: tags"),
    ]
    for filters, message in cases:
        answer = client.tags_stats.get(domain=DOMAIN, tag_name="promo", filters=filters)
        assert answer.status_code == 400, filters
        assert answer.json()["message"].startswith(message), answer.json()
    unknown = client.tags_stats.get(domain=DOMAIN, tag_name="nope", filters={"event": "accepted"})
    assert unknown.status_code == 404


async def test_async_client(running: Running) -> None:
    tagged_send(running, "ann@example.test", "async")
    async with AsyncClient(
        auth=("api", KEY), api_url=running.base, retry_policy=RetryPolicy(max_retries=0)
    ) as client:
        listed = await client.tags.get(domain=DOMAIN)
        assert [item["tag"] for item in listed.json()["items"]] == ["async"]
        await client.tags.put(domain=DOMAIN, tag_name="async", data={"description": "d"})
        one = await client.tags.get(domain=DOMAIN, tag_name="async")
        assert one.json()["description"] == "d"
        stats = await client.tags_stats.get(
            domain=DOMAIN, tag_name="async", filters={"event": "accepted"}
        )
        assert sum(entry["accepted"]["total"] for entry in stats.json()["stats"]) == 1
        deleted = await client.tags.delete(domain=DOMAIN, tag_name="async")
        assert deleted.json() == {"message": "Tag deleted"}


def test_periods() -> None:
    march_31 = 1743422400.0  # Mon, 31 Mar 2025 12:00:00 UTC
    assert stats_time(bucket_start(march_31, "day")) == "Mon, 31 Mar 2025 00:00:00 UTC"
    assert stats_time(bucket_start(march_31, "month")) == "Sat, 01 Mar 2025 00:00:00 UTC"
    assert stats_time(months_before(march_31, 1)) == "Fri, 28 Feb 2025 12:00:00 UTC"
    assert stats_time(months_before(march_31, 3)) == "Tue, 31 Dec 2024 12:00:00 UTC"
    months = buckets(Window(months_before(march_31, 2), march_31, "month"))
    assert [stats_time(m)[5:16] for m in months] == ["01 Jan 2025", "01 Feb 2025", "01 Mar 2025"]
    assert len(buckets(Window(march_31 - 3 * 3600, march_31, "hour"))) == 4
