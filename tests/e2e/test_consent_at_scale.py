"""Issue 13's check, whole, through Courier's SDK against a running Tidings and the Mailgun
sandbox: a list of 2,500 subscribers, one opted out of the template's subscription topic and
one suppressed by an earlier hard bounce. A ``to.list_id`` send and a bulk job each reach
Mailgun in at most three calls; every copy is personalised and carries its own one-click
``List-Unsubscribe``; the opted-out and the suppressed recipient are never sent to and their
messages say why; a one-click POST opts a recipient out, and the next send skips them."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import courier
import httpx

from tests.e2e.conftest import RunningSandbox, RunningTidings

SUBSCRIBERS = 2500
LIST_ID = "news.weekly"
OPTED_OUT = "u0003"
BOUNCED = "u0007"
UNSUBSCRIBES = "u0010"
FINAL = {"DELIVERED", "FILTERED", "UNDELIVERABLE", "UNROUTABLE"}
CONTENT: Any = {
    "version": "2022-01-01",
    "elements": [
        {
            "type": "channel",
            "channel": "email",
            "elements": [
                {"type": "meta", "title": "Weekly news for {{profile.name}}"},
                {
                    "type": "text",
                    "content": "Hello {{profile.name}}, your code is {{profile.code}}.",
                },
            ],
        }
    ],
}


def _user(i: int) -> str:
    return f"u{i:04d}"


def _email(user_id: str) -> str:
    return f"{user_id}+bounce@acme.test" if user_id == BOUNCED else f"{user_id}@acme.test"


def _messages_calls(sandbox: RunningSandbox) -> int:
    """Messages API calls the sandbox has answered, whatever their answer (its request
    counters)."""
    counts = sandbox.stats()["requests"].get("POST /v3/{domain}/messages", {})
    return sum(int(n) for n in counts.values())


def _wait_request(server: RunningTidings, request_id: str, total: int) -> dict[str, int]:
    deadline = time.monotonic() + 240
    with server.http() as http:
        while True:
            answer = http.get(f"/requests/{request_id}")
            counts: dict[str, int] = answer.json().get("counts", {}) if answer.is_success else {}
            if sum(n for s, n in counts.items() if s in FINAL) >= total:
                return counts
            assert time.monotonic() < deadline, counts
            time.sleep(0.2)


def _messages_of(client: courier.Courier, request_id: str) -> dict[str, Any]:
    """The request's messages by recipient (a user id), following the cursor."""
    found: dict[str, Any] = {}
    cursor: str | None = None
    while True:
        page = client.messages.list(message_id=request_id, cursor=cursor)
        for m in page.results:
            found[m.recipient] = m
        cursor = page.paging.cursor if page.paging and page.paging.more else None
        if cursor is None:
            return found


def _copies(sandbox: RunningSandbox, subject_prefix: str) -> dict[str, list[dict[str, Any]]]:
    by_address: dict[str, list[dict[str, Any]]] = {}
    answer = httpx.get(f"{sandbox.url}/sandbox/api/messages", params={"limit": 100_000}, timeout=60)
    answer.raise_for_status()
    for copy in answer.json():
        if copy["subject"].startswith(subject_prefix):
            by_address.setdefault(copy["recipient"], []).append(copy)
    return by_address


def _unsubscribe_url(copy: dict[str, Any]) -> str:
    return str(copy["headers"]["List-Unsubscribe"].split(",")[0].strip().strip("<>"))


def _check_copies(
    copies: dict[str, list[dict[str, Any]]], skipped: set[str]
) -> dict[str, dict[str, Any]]:
    """Every subscriber but the skipped ones has exactly one copy, personalised, with a
    List-Unsubscribe of their own; the skipped have none."""
    urls: set[str] = set()
    own: dict[str, dict[str, Any]] = {}
    for i in range(SUBSCRIBERS):
        user_id = _user(i)
        got = copies.get(_email(user_id), [])
        if user_id in skipped:
            assert got == [], user_id
            continue
        assert len(got) == 1, (user_id, len(got))
        (copy,) = got
        name = f"Name {i}"
        assert copy["subject"] == f"Weekly news for {name}"
        assert f"Hello {name}, your code is C{i}." in copy["text"]
        assert f"Hello {name}, your code is C{i}." in copy["html"]
        assert copy["headers"]["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
        urls.add(_unsubscribe_url(copy))
        own[user_id] = copy
    assert len(urls) == len(own)  # one link per recipient
    return own


def test_list_send_and_bulk_job_in_three_calls_honour_consent(
    tidings_with_mailgun: RunningTidings, mailgun_sandbox: RunningSandbox
) -> None:
    server = tidings_with_mailgun
    server.connect_webhooks()
    client = server.courier()

    section = client.workspace_preferences.create(name="Marketing")
    topic = client.workspace_preferences.topics.create(
        section.id, default_status="OPTED_IN", name="Weekly news"
    )
    made = client.notifications.create(
        notification={
            "name": "weekly",
            "tags": [],
            "brand": None,
            "routing": None,
            "subscription": {"topic_id": topic.id},
            "content": CONTENT,
        }
    )
    client.notifications.publish(made.id)

    def profile(i: int) -> None:
        user_id = _user(i)
        with server.http() as http:
            answer = http.post(
                f"/profiles/{user_id}",
                json={"profile": {"email": _email(user_id), "name": f"Name {i}", "code": f"C{i}"}},
            )
            assert answer.is_success, answer.text

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(profile, range(SUBSCRIBERS)))
    for start in range(0, SUBSCRIBERS, 500):
        client.lists.subscriptions.add(
            LIST_ID,
            recipients=[
                {"recipient_id": _user(i)} for i in range(start, min(start + 500, SUBSCRIBERS))
            ],
        )

    # An earlier hard bounce puts BOUNCED's address on the suppression list.
    earlier = client.send.message(
        message={"to": {"user_id": BOUNCED}, "content": {"title": "Welcome", "body": "Hi"}}
    ).request_id
    assert server.wait_status(earlier, "UNDELIVERABLE", timeout=30)["status"] == "UNDELIVERABLE"
    with server.http() as http:
        deadline = time.monotonic() + 30
        while http.get(f"/suppressions/{_email(BOUNCED)}").status_code != 200:
            assert time.monotonic() < deadline
            time.sleep(0.1)
    client.users.preferences.update_or_create_topic(
        topic.id, user_id=OPTED_OUT, topic={"status": "OPTED_OUT"}
    )

    # The list send.
    calls = _messages_calls(mailgun_sandbox)
    by_list = client.send.message(
        message={"to": {"list_id": LIST_ID}, "template": made.id}
    ).request_id
    counts = _wait_request(server, by_list, SUBSCRIBERS)
    assert counts.get("DELIVERED") == SUBSCRIBERS - 2, counts
    list_calls = _messages_calls(mailgun_sandbox) - calls
    assert 1 <= list_calls <= 3, list_calls
    own = _check_copies(_copies(mailgun_sandbox, "Weekly news"), {OPTED_OUT, BOUNCED})

    sent = _messages_of(client, by_list)
    assert len(sent) == SUBSCRIBERS
    assert (sent[OPTED_OUT].status, sent[OPTED_OUT].reason) == ("FILTERED", "UNSUBSCRIBED")
    assert sent[BOUNCED].status == "UNDELIVERABLE"
    bounced_history = server.history(sent[BOUNCED].id)
    assert any("suppress" in str(h).lower() for h in bounced_history), bounced_history
    filtered = [h for h in server.history(sent[OPTED_OUT].id) if h["type"] == "FILTERED"]
    assert len(filtered) == 1 and filtered[0]["topic_id"] == topic.id

    # One click: the recipient's own link opts them out, without an API key.
    answer = httpx.post(
        _unsubscribe_url(own[UNSUBSCRIBES]),
        content=b"List-Unsubscribe=One-Click",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
        timeout=10,
    )
    assert answer.status_code == 200, answer.text

    # The bulk job: the same people, by user id; the unsubscribed one is skipped now.
    seen = {c["key"] for copies in _copies(mailgun_sandbox, "Weekly news").values() for c in copies}
    job_id = client.bulk.create_job(message={"template": made.id}).job_id
    users: list[Any] = [{"recipient": _user(i)} for i in range(SUBSCRIBERS)]
    for start in range(0, SUBSCRIBERS, 1000):
        client.bulk.add_users(job_id, users=users[start : start + 1000])
    calls = _messages_calls(mailgun_sandbox)
    client.bulk.run_job(job_id)
    with server.http() as http:
        request_id = http.get(f"/bulk/{job_id}").json()["job"]["requestId"]
    counts = _wait_request(server, request_id, SUBSCRIBERS)
    assert counts.get("DELIVERED") == SUBSCRIBERS - 3, counts
    bulk_calls = _messages_calls(mailgun_sandbox) - calls
    assert 1 <= bulk_calls <= 3, bulk_calls
    after = _copies(mailgun_sandbox, "Weekly news")
    new_copies = {
        address: [c for c in copies if c["key"] not in seen] for address, copies in after.items()
    }
    _check_copies(new_copies, {OPTED_OUT, BOUNCED, UNSUBSCRIBES})
    skipped = _messages_of(client, request_id)[UNSUBSCRIBES]
    assert (skipped.status, skipped.reason) == ("FILTERED", "UNSUBSCRIBED")
