"""GET /v3/{domain}/events: Mailgun's shape, filters and paging, through the official SDK."""

from __future__ import annotations

import time
from typing import Any

import requests
from mailgun.client import Client
from starlette.applications import Starlette
from starlette.routing import Mount

from tests.sandbox.conftest import DOMAIN, KEY, Running, basic_message, sdk, send, wait_until
from tests.support.servers import serve_asgi
from tidings.sandbox import Sandbox, SandboxSettings


def all_events(client: Client, **filters: Any) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = client.events.get(domain=DOMAIN, filters=filters).json()["items"]
    return items


def settle(client: Client, count: int) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = wait_until(
        lambda: (found := all_events(client)) and len(found) >= count and found
    )
    return items


def follow(url: str) -> dict[str, Any]:
    page: dict[str, Any] = requests.get(url, auth=("api", KEY)).json()
    return page


def test_items_have_mailgun_full_shape(running: Running, client: Client) -> None:
    data = basic_message(to="ann+bounce@example.test")
    data["v:tidings-id"] = "msg_1"
    data["o:tag"] = "receipts"
    message_id = send(running.base, data).json()["id"]
    failed = wait_until(lambda: all_events(client, event="failed"))[0]

    assert isinstance(failed["timestamp"], float)
    assert len(failed["id"]) == 22
    assert failed["event"] == "failed"
    assert failed["severity"] == "permanent"
    assert failed["reason"] == "bounce"
    assert failed["log-level"] == "error"
    assert failed["recipient"] == "ann+bounce@example.test"
    assert failed["recipient-domain"] == "example.test"
    assert failed["message"]["headers"] == {
        "to": "ann+bounce@example.test",
        "message-id": message_id.strip("<>"),
        "from": f"Tidings <noreply@{DOMAIN}>",
        "subject": "Hello",
    }
    assert failed["delivery-status"]["code"] == 550
    assert failed["delivery-status"]["bounce-type"] == "hard"
    assert failed["envelope"]["targets"] == "ann+bounce@example.test"
    assert failed["envelope"]["sender"] == f"noreply@{DOMAIN}"
    assert failed["flags"]["is-test-mode"] is False
    assert failed["tags"] == ["receipts"]
    assert failed["user-variables"] == {"tidings-id": "msg_1"}
    assert failed["domain"] == {"name": DOMAIN}


def test_paging_walks_the_window_in_pages_until_an_empty_one(
    running: Running, client: Client
) -> None:
    for n in range(7):
        send(running.base, basic_message(to=f"user{n}+silent@example.test"))
    expected = settle(client, 7)

    first = client.events.get(domain=DOMAIN, filters={"ascending": "yes", "limit": 3}).json()
    assert len(first["items"]) == 3
    assert set(first["paging"]) == {"first", "last", "next", "previous"}
    assert first["paging"]["next"].startswith(f"{running.base}/v3/{DOMAIN}/events/")
    seen = list(first["items"])
    page = first
    pages = 1
    while page["items"]:
        page = follow(page["paging"]["next"])
        seen += page["items"]
        pages += 1
    assert pages == 4  # 3 + 3 + 1, then the empty page
    assert [e["id"] for e in seen] == [e["id"] for e in reversed(expected)]
    timestamps = [e["timestamp"] for e in seen]
    assert timestamps == sorted(timestamps)

    # An event that happens later shows up when the same `next` is asked again.
    send(running.base, basic_message(to="late+silent@example.test"))
    later = wait_until(lambda: follow(page["paging"]["next"])["items"])
    assert [e["recipient"] for e in later] == ["late+silent@example.test"]

    # previous goes back; last is the end of the window.
    second = follow(first["paging"]["next"])
    back = follow(second["paging"]["previous"])
    assert [e["id"] for e in back["items"]] == [e["id"] for e in first["items"]]
    last = follow(first["paging"]["last"])
    assert [e["recipient"] for e in last["items"]][-1] == "late+silent@example.test"


def test_default_order_is_newest_first(running: Running, client: Client) -> None:
    for n in range(3):
        send(running.base, basic_message(to=f"user{n}+silent@example.test"))
    items = settle(client, 3)
    assert [e["recipient"] for e in items] == [
        "user2+silent@example.test",
        "user1+silent@example.test",
        "user0+silent@example.test",
    ]


def test_filters(running: Running, client: Client) -> None:
    tagged = basic_message(to="ann+open@example.test")
    tagged["o:tag"] = "news"
    news_id = send(running.base, tagged).json()["id"]
    send(running.base, basic_message(to="bob+defer@example.test"))
    send(running.base, basic_message(to="carl+bounce@example.test"))
    settle(client, 8)  # open: 3 events, defer: 3, bounce: 2

    kinds = {e["event"] for e in all_events(client, event="failed OR opened")}
    assert kinds == {"failed", "opened"}
    assert {e["event"] for e in all_events(client, event="NOT accepted")} >= {"delivered", "failed"}
    by_id = all_events(client, **{"message-id": news_id.strip("<>")})
    assert {e["event"] for e in by_id} == {"accepted", "delivered", "opened"}
    assert all_events(client, **{"message-id": news_id})  # angle brackets tolerated
    assert {e["recipient"] for e in all_events(client, tags="news")} == {"ann+open@example.test"}
    temporary = all_events(client, severity="temporary")
    assert [e["recipient"] for e in temporary] == ["bob+defer@example.test"]
    assert {e["event"] for e in all_events(client, recipient="CARL+bounce@example.test")} == {
        "accepted",
        "failed",
    }
    # begin/end: a window entirely in the past is empty.
    assert all_events(client, begin=1_000_000, end=1_000_100) == []
    rfc_window = all_events(
        client, begin="Thu, 01 Jan 1970 00:00:00 +0000", end=str(time.time() + 60)
    )
    assert len(rfc_window) == 8


def test_visibility_lag_hides_fresh_events(make_running: Any) -> None:
    lagging = make_running(visibility_lag=60.0)
    send(lagging.base, basic_message())
    with sdk(lagging.base) as client:
        assert all_events(client) == []
        stored = requests.get(lagging.api("/messages")).json()
        assert len(stored) == 1  # accepted, just not visible yet


def test_event_errors(running: Running, client: Client) -> None:
    too_many = client.events.get(domain=DOMAIN, filters={"limit": 301})
    assert too_many.status_code == 400
    assert too_many.json() == {"message": "Invalid limit: must be an integer between 1 and 300"}
    bad_time = client.events.get(domain=DOMAIN, filters={"begin": "yesterday-ish"})
    assert bad_time.status_code == 400
    unknown = client.events.get(domain="nope.example.test")
    assert unknown.status_code == 404
    assert unknown.json() == {"message": "Domain not found: nope.example.test"}
    token = requests.get(f"{running.base}/v3/{DOMAIN}/events/garbage!!", auth=("api", KEY))
    assert token.status_code == 400
    assert token.json() == {"message": "Invalid page token"}
    assert requests.get(f"{running.base}/v3/{DOMAIN}/events").status_code == 401


def test_mounted_at_a_prefix_paging_urls_keep_it() -> None:
    sandbox = Sandbox(SandboxSettings(event_delay=0.01))
    host = Starlette(routes=[Mount("/sandbox", app=sandbox.asgi(""))])
    with serve_asgi(host) as base:
        api_url = f"{base}/sandbox"
        assert send(api_url, basic_message(to="ann+silent@example.test")).status_code == 200
        send(api_url, basic_message(to="bob+deliver@example.test"))
        with sdk(api_url) as client:
            page = client.events.get(
                domain=DOMAIN, filters={"limit": 1, "event": "accepted"}
            ).json()
            assert page["items"][0]["recipient"] == "bob+deliver@example.test"
            assert page["paging"]["next"].startswith(f"{base}/sandbox/v3/{DOMAIN}/events/")
            assert (
                follow(page["paging"]["next"])["items"][0]["recipient"] == "ann+silent@example.test"
            )
        stored = requests.get(f"{base}/sandbox/api/messages").json()
        assert {m["recipient"] for m in stored} == {
            "ann+silent@example.test",
            "bob+deliver@example.test",
        }
        inbox = requests.get(f"{base}/sandbox/")
        assert inbox.status_code == 200
        assert "ann+silent@example.test" in inbox.text
        # Nobody called start(): the background work started with the first message.
        assert sandbox.scheduler.running
