"""Signed webhooks to a real receiver: each recipient scenario's events, signatures checked
with the official SDK's verifier, Mailgun's retry rules.

What the sandbox promises about order (as Mailgun does): a message's events to *one* URL are
first posted in the order they happened. Posts to different URLs (one per webhook kind, as
most receivers register them) race each other, so across URLs only the events' timestamps
tell the order."""

from __future__ import annotations

import re
from email.utils import parsedate_to_datetime
from typing import Any

import pytest
from mailgun.client import Client
from mailgun.security import SecurityGuard

from tests.sandbox.conftest import (
    DOMAIN,
    SIGNING_KEY,
    Receiver,
    Running,
    basic_message,
    send,
    wait_until,
)
from tidings.sandbox.state import WEBHOOK_KINDS


def register_all(client: Client, receiver: Receiver) -> None:
    for kind in WEBHOOK_KINDS:
        response = client.domains_webhooks.create(
            domain=DOMAIN, data={"id": kind, "url": receiver.url(kind)}
        )
        assert response.status_code == 200


def events_for(receiver: Receiver, recipient: str) -> list[dict[str, Any]]:
    return [
        p["body"]["event-data"]
        for p in receiver.posts
        if p["body"]["event-data"]["recipient"] == recipient
    ]


def kinds(events: list[dict[str, Any]]) -> list[str]:
    return [e["event"] + (f":{e['severity']}" if "severity" in e else "") for e in events]


SCENARIOS = [
    ("ann@example.test", ["accepted", "delivered"]),
    ("ann+deliver@example.test", ["accepted", "delivered"]),
    ("ann+bounce@example.test", ["accepted", "failed:permanent"]),
    ("ann+nomx@example.test", ["accepted", "failed:permanent"]),
    ("ann+defer@example.test", ["accepted", "failed:temporary", "delivered"]),
    ("ann+open@example.test", ["accepted", "delivered", "opened"]),
    ("ann+click@example.test", ["accepted", "delivered", "opened", "clicked"]),
    ("ann+complain@example.test", ["accepted", "delivered", "complained"]),
    ("ann+unsubscribe@example.test", ["accepted", "delivered", "unsubscribed"]),
    ("ann+silent@example.test", ["accepted"]),
]


@pytest.mark.parametrize(("recipient", "expected"), SCENARIOS, ids=[s[0] for s in SCENARIOS])
def test_recipient_scenarios_post_signed_events_in_order(
    running: Running, client: Client, receiver: Receiver, recipient: str, expected: list[str]
) -> None:
    register_all(client, receiver)
    html = "<p>Hi</p><a class='x' href=\"https://shop.example.test/order/1\">order</a> <a href='https://2nd'>"
    data = basic_message(to=recipient, html=html)
    data["v:tidings-id"] = "msg_42"
    message_id = send(running.base, data).json()["id"].strip("<>")

    wait_until(lambda: len(events_for(receiver, recipient)) >= len(expected))
    wait_until(lambda: running.sandbox.poster.pending == 0)
    # One URL per kind: arrival order is not promised, the events' own times are.
    events = sorted(events_for(receiver, recipient), key=lambda e: float(e["timestamp"]))
    assert kinds(events) == expected

    tokens = set()
    for post in receiver.posts:
        assert post["content_type"] == "application/json"
        signature = post["body"]["signature"]
        assert len(signature["token"]) == 50
        assert SecurityGuard.verify_webhook(
            SIGNING_KEY, signature["token"], signature["timestamp"], signature["signature"]
        )
        assert not SecurityGuard.verify_webhook(
            "another-key", signature["token"], signature["timestamp"], signature["signature"]
        )
        tokens.add(signature["token"])
        event = post["body"]["event-data"]
        assert post["kind"] == _webhook_name(event)
    assert len(tokens) == len(receiver.posts)
    assert len({e["id"] for e in events}) == len(events)
    assert len({e["timestamp"] for e in events}) == len(events)  # one step after another
    for event in events:
        assert event["message"]["headers"]["message-id"] == message_id
        assert event["user-variables"] == {"tidings-id": "msg_42"}
        assert event["recipient-domain"] == "example.test"
        assert event["domain"] == {"name": DOMAIN}
    _check_details(events, recipient)


@pytest.mark.parametrize(
    ("recipient", "expected"),
    [
        ("ann+click@example.test", ["accepted", "delivered", "opened", "clicked"]),
        ("ann+defer@example.test", ["accepted", "failed:temporary", "delivered"]),
        ("ann+rcptnomx@example.test", ["accepted", "failed:temporary", "failed:permanent"]),
    ],
)
def test_one_url_receives_a_messages_events_in_the_order_they_happened(
    running: Running, client: Client, receiver: Receiver, recipient: str, expected: list[str]
) -> None:
    for kind in WEBHOOK_KINDS:  # every kind to the same URL
        answer = client.domains_webhooks.create(
            domain=DOMAIN, data={"id": kind, "url": receiver.url("all")}
        )
        assert answer.status_code == 200
    others = [f"bob{n}+click@example.test" for n in range(5)]  # interleaved, other messages
    send(running.base, basic_message(to=recipient, html="<a href='https://x.test/1'>x</a>"))
    for other in others:
        send(running.base, basic_message(to=other, html="<a href='https://x.test/2'>y</a>"))

    wait_until(lambda: len(receiver.posts) >= len(expected) + 4 * len(others))
    wait_until(lambda: running.sandbox.poster.pending == 0)
    for address, kinds_expected in [(recipient, expected)] + [
        (o, ["accepted", "delivered", "opened", "clicked"]) for o in others
    ]:
        arrived = events_for(receiver, address)  # in the order the receiver got them
        assert kinds(arrived) == kinds_expected, address
        stamps = [float(e["timestamp"]) for e in arrived]
        assert stamps == sorted(stamps), address


def _webhook_name(event: dict[str, Any]) -> str:
    if event["event"] == "failed":
        return "permanent_fail" if event["severity"] == "permanent" else "temporary_fail"
    return str(event["event"])


def _check_details(events: list[dict[str, Any]], recipient: str) -> None:
    by_kind = {e["event"]: e for e in events}
    if "delivered" in by_kind:
        assert by_kind["delivered"]["delivery-status"]["code"] == 250
    tag = recipient.partition("+")[2].partition("@")[0]
    if tag == "bounce":
        failed = by_kind["failed"]
        assert failed["reason"] == "bounce"
        assert failed["delivery-status"]["code"] == 550
        assert failed["delivery-status"]["enhanced-code"] == "5.1.1"
        assert failed["delivery-status"]["bounce-type"] == "hard"
    if tag == "nomx":
        status = by_kind["failed"]["delivery-status"]
        assert status["code"] == 550
        assert DOMAIN in status["message"]
        assert "no MX record" in status["message"]
    if tag == "defer":
        failed = by_kind["failed"]
        assert failed["reason"] == "greylisted"
        assert 400 <= failed["delivery-status"]["code"] < 500
        assert failed["delivery-status"]["attempt-no"] == 1
        assert by_kind["delivered"]["delivery-status"]["attempt-no"] == 2
    if tag == "click":
        assert by_kind["clicked"]["url"] == "https://shop.example.test/order/1"
        assert by_kind["clicked"]["ip"]
        assert by_kind["opened"]["client-info"]["client-type"] == "browser"


def test_an_address_that_bounced_gets_605_next_time(
    running: Running, client: Client, receiver: Receiver
) -> None:
    register_all(client, receiver)
    send(running.base, basic_message(to="gone+bounce@example.test"))
    wait_until(lambda: receiver.of("permanent_fail"))
    send(running.base, basic_message(to="gone+bounce@example.test"))
    wait_until(lambda: len(receiver.of("permanent_fail")) == 2)
    second = receiver.of("permanent_fail")[1]["body"]["event-data"]
    assert second["reason"] == "suppress-bounce"
    assert second["delivery-status"]["code"] == 605
    assert second["severity"] == "permanent"


def test_failed_posts_are_retried_on_the_schedule_until_200(
    running: Running, client: Client, receiver: Receiver
) -> None:
    register_all(client, receiver)
    receiver.script["opened"] = [500, 503, 200]
    receiver.script["accepted"] = [500] * 10  # never succeeds: 1 try + 6 retries
    receiver.script["delivered"] = [500]  # delivered is never retried
    receiver.script["clicked"] = [406]  # 406: rejected, never retried
    send(running.base, basic_message(to="ann+click@example.test", html="<a href='https://x.test'>"))

    wait_until(lambda: len(receiver.of("clicked")) == 1)
    wait_until(lambda: running.sandbox.poster.pending == 0)
    assert len(receiver.of("opened")) == 3
    assert len(receiver.of("accepted")) == 7
    assert len(receiver.of("delivered")) == 1
    assert len(receiver.of("clicked")) == 1
    # Every attempt is signed afresh.
    tokens = {p["body"]["signature"]["token"] for p in receiver.of("accepted")}
    assert len(tokens) == 7

    stats = client.events.get(domain=DOMAIN).json()  # the API stays usable meanwhile
    assert stats["items"]
    counts = running.sandbox.store.stats()["webhooks"]
    assert counts["posted"] == 12
    assert counts["answers"] == {"500": 9, "503": 1, "200": 1, "406": 1}


def test_unreachable_receiver_is_retried_too(make_running: Any) -> None:
    running = make_running(webhook_urls=["http://127.0.0.1:9/unreachable"])
    send(running.base, basic_message(to="ann+silent@example.test"))
    wait_until(lambda: running.sandbox.store.webhooks_posted == 7)
    wait_until(lambda: running.sandbox.poster.pending == 0)
    assert running.sandbox.store.stats()["webhooks"]["answers"] == {"error": 7}


def test_date_helper_matches_rfc_2822() -> None:
    from tidings.sandbox.faults import rfc2822_utc

    text = rfc2822_utc(1756105231)
    assert text == "Mon, 25 Aug 2025 07:00:31 UTC"
    assert parsedate_to_datetime(text).timestamp() == 1756105231
    assert re.match(r"^\w{3}, \d{2} \w{3} \d{4} \d{2}:\d{2}:\d{2} UTC$", text)
