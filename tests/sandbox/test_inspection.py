"""The inspection API and the inbox page."""

from __future__ import annotations

import requests
from mailgun.client import Client

from tests.sandbox.conftest import DOMAIN, KEY, Running, basic_message, send, wait_until


def test_messages_newest_first_with_every_field(running: Running) -> None:
    send(running.base, basic_message(to="first@example.test"))
    send(running.base, basic_message(to="second@example.test", html="<b>hi</b>"))
    listed = requests.get(running.api("/messages")).json()
    assert [m["recipient"] for m in listed] == ["second@example.test", "first@example.test"]
    expected_keys = {
        "id",
        "domain",
        "from",
        "to",
        "cc",
        "bcc",
        "subject",
        "text",
        "html",
        "tags",
        "headers",
        "variables",
        "options",
        "attachments",
        "inline",
        "received_at",
    }
    assert expected_keys <= set(listed[0])
    assert listed[0]["html"] == "<b>hi</b>"
    assert listed[0]["received_at"] >= listed[1]["received_at"]
    only = requests.get(running.api("/messages"), params={"recipient": "first@example.test"}).json()
    assert [m["recipient"] for m in only] == ["first@example.test"]
    by_id = requests.get(running.api("/messages"), params={"id": listed[1]["id"]}).json()
    assert [m["recipient"] for m in by_id] == ["first@example.test"]


def test_delete_resets(running: Running, client: Client) -> None:
    send(running.base, basic_message(to="ann+bounce@example.test"))
    wait_until(
        lambda: client.events.get(domain=DOMAIN, filters={"event": "failed"}).json()["items"]
    )
    deleted = requests.delete(running.api("/messages")).json()
    assert deleted["count"] == 1
    assert requests.get(running.api("/messages")).json() == []
    assert client.events.get(domain=DOMAIN).json()["items"] == []
    # The bounce list is forgotten too: the address is tried again.
    send(running.base, basic_message(to="ann+bounce@example.test"))
    failed = wait_until(
        lambda: client.events.get(domain=DOMAIN, filters={"event": "failed"}).json()["items"]
    )
    assert failed[0]["reason"] == "bounce"


def test_stats_count_requests_by_route_and_status(running: Running, client: Client) -> None:
    send(running.base, basic_message())
    send(running.base, basic_message())
    send(running.base, {"to": "x@example.test"})
    requests.post(f"{running.base}/v3/{DOMAIN}/messages", data=basic_message(), auth=("api", "no"))
    client.events.get(domain=DOMAIN)
    client.domains_webhooks.get(domain=DOMAIN)
    stats = requests.get(running.api("/stats")).json()
    assert stats == {
        "requests": {
            "POST /v3/{domain}/messages": {"200": 2, "400": 1, "401": 1},
            "GET /v3/{domain}/events": {"200": 1},
            "GET /v3/domains/{domain}/webhooks": {"200": 1},
        },
        "webhooks": {"posted": 0, "answers": {}},
    }


def test_inbox_lists_and_shows_a_message(running: Running) -> None:
    html = (
        '<p onclick="x()">Hello "you" & <script>alert(1)</script></p><a href="https://x.test">x</a>'
    )
    data = basic_message(to="ann+open@example.test", html=html, subject="Welcome <aboard>")
    send(running.base, data, files=[("attachment", ("a.txt", b"abc"))])
    assert requests.get(f"{running.base}/").url.endswith("/sandbox/")
    inbox = requests.get(f"{running.base}/sandbox/")
    assert inbox.status_code == 200
    assert "Welcome &lt;aboard&gt;" in inbox.text
    [stored] = requests.get(running.api("/messages")).json()
    wait_until(
        lambda: len(requests.get(running.api(f"/messages/{stored['id']}/events")).json()) == 3
    )
    page = requests.get(f"{running.base}/sandbox/messages/{stored['key']}")
    assert page.status_code == 200
    assert "<iframe sandbox srcdoc=" in page.text
    assert "<script>alert(1)</script>" not in page.text  # only as escaped srcdoc
    assert "&lt;script&gt;" in page.text
    assert "opened" in page.text and "delivered" in page.text
    assert f"../api/messages/{stored['id']}/attachments/0" in page.text
    download = requests.get(f"{running.base}/sandbox/api/messages/{stored['id']}/attachments/0")
    assert download.content == b"abc"
    assert requests.get(f"{running.base}/sandbox/messages/999").status_code == 200
    assert requests.get(f"{running.base}/v3/{DOMAIN}/events", auth=("api", KEY)).status_code == 200
