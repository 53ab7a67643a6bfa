"""Event details Mailgun gives: message.scheduled-for (and the wait for it), attachment
content types without parameters, message.recipients, the list / attachment / size /
recipients filters, and rejected events."""

from __future__ import annotations

import time
from email.utils import formatdate
from typing import Any

import requests

from tests.sandbox.conftest import DOMAIN, KEY, Running, basic_message, sdk, send, wait_until


def events(running: Running, **filters: Any) -> list[dict[str, Any]]:
    with sdk(running.base) as mailgun:
        answer = mailgun.events.get(domain=DOMAIN, filters={"ascending": "yes", **filters})
        assert answer.status_code == 200, answer.text
        items: list[dict[str, Any]] = answer.json()["items"]
        return items


def test_a_scheduled_send_says_when_and_waits_until_then(running: Running) -> None:
    due = int(time.time()) + 2  # o:deliverytime has whole seconds
    response = send(running.base, basic_message(**{"o:deliverytime": formatdate(due)}))
    assert response.status_code == 200
    [accepted] = events(running, event="accepted")
    assert accepted["message"]["scheduled-for"] == float(due)
    delivered = wait_until(lambda: events(running, event="delivered"))[0]
    assert delivered["timestamp"] >= due
    assert delivered["message"]["scheduled-for"] == float(due)

    now = send(running.base, basic_message(to="bob@example.test"))
    [plain] = events(running, recipient="bob@example.test", event="accepted")
    assert now.status_code == 200 and "scheduled-for" not in plain["message"]


def test_attachments_are_listed_without_content_type_parameters(running: Running) -> None:
    files = [
        ("attachment", ("notes.txt", b"hello", "text/plain; charset=utf-8")),
        ("attachment", ("data.json", b"{}", "application/json")),
    ]
    assert send(running.base, basic_message(), files=files).status_code == 200
    [accepted] = events(running, event="accepted")
    assert accepted["message"]["attachments"] == [
        {"filename": "notes.txt", "content-type": "text/plain", "size": 5},
        {"filename": "data.json", "content-type": "application/json", "size": 2},
    ]


def test_list_attachment_size_and_recipients_filters(running: Running) -> None:
    small = send(running.base, basic_message(to="ann@example.test, bob@example.test"))
    big = send(
        running.base,
        basic_message(to="carl@example.test"),
        files=[("attachment", ("report.pdf", b"x" * 5000, "application/pdf"))],
    )
    assert small.status_code == big.status_code == 200
    wait_until(lambda: len(events(running, event="delivered")) == 3)

    by_attachment = events(running, attachment="report.pdf", event="accepted")
    assert [e["recipient"] for e in by_attachment] == ["carl@example.test"]
    assert events(running, attachment="other.pdf") == []

    large = events(running, size=">4000", event="accepted")
    assert [e["recipient"] for e in large] == ["carl@example.test"]
    little = events(running, size="<4000", event="accepted")
    assert sorted(e["recipient"] for e in little) == ["ann@example.test", "bob@example.test"]
    assert events(running, size=">100 <200") == []
    assert len(events(running, size="<100 OR >4000", event="accepted")) == 1

    # Every event of a message lists all of its recipients; the filter matches any of them.
    together = events(running, recipients="bob@example.test", event="accepted")
    assert sorted(e["recipient"] for e in together) == ["ann@example.test", "bob@example.test"]
    assert together[0]["message"]["recipients"] == ["ann@example.test", "bob@example.test"]

    # No mailing lists in the sandbox: a list filter matches nothing, NOT list everything.
    assert events(running, list="team@lists.test") == []
    assert len(events(running, list="NOT team@lists.test", event="accepted")) == 3

    with sdk(running.base) as mailgun:
        bad = mailgun.events.get(domain=DOMAIN, filters={"size": "huge"})
    assert bad.status_code == 400
    assert bad.json()["message"].startswith("Invalid size: 'huge'")


def test_refused_sends_are_rejected_events_with_a_reason(running: Running) -> None:
    data = basic_message(template="missing")
    del data["text"]
    data["o:tag"] = "signup"
    response = send(running.base, data)
    assert response.status_code == 400
    [rejected] = wait_until(lambda: events(running, event="rejected"))
    assert rejected["reject"] == {"reason": "template not found", "description": ""}
    assert rejected["tags"] == ["signup"]
    assert rejected["message"]["headers"]["subject"] == "Hello"
    assert "recipient" not in rejected
    # A send refused before it was read (a missing field) leaves no event at all.
    assert send(running.base, {"to": "ann@example.test"}).status_code == 400
    assert [e["event"] for e in events(running)] == ["rejected"]
    assert requests.get(running.api("/messages")).json() == []


def test_a_batch_copy_lists_only_its_own_recipient(running: Running) -> None:
    data = basic_message(
        to=["ann@example.test", "bob@example.test"],
        **{"recipient-variables": '{"ann@example.test": {}, "bob@example.test": {}}'},
    )
    assert send(running.base, data).status_code == 200
    accepted = events(running, event="accepted")
    assert {e["recipient"]: e["message"]["recipients"] for e in accepted} == {
        "ann@example.test": ["ann@example.test"],
        "bob@example.test": ["bob@example.test"],
    }


async def test_the_async_client_filters_events(running: Running) -> None:
    import asyncio

    from mailgun.client import AsyncClient
    from mailgun.config import RetryPolicy

    files = [("attachment", ("a.pdf", b"x" * 3000, "application/pdf"))]
    answer = await asyncio.to_thread(send, running.base, basic_message(), files)
    assert answer.status_code == 200
    async with AsyncClient(
        auth=("api", KEY), api_url=running.base, retry_policy=RetryPolicy(max_retries=0)
    ) as mailgun:
        found = await mailgun.events.get(
            domain=DOMAIN, filters={"event": "accepted", "attachment": "a.pdf", "size": ">2000"}
        )
    assert [e["recipient"] for e in found.json()["items"]] == ["ann@example.test"]
