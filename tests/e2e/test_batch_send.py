"""Batch sends, end to end: a multi-recipient ``/send`` reaches Mailgun (the sandbox) as one
call per batch of recipients that share a rendered shape, every copy exactly what a single
send would have been, each recipient still its own tracked message; failures retried as a
batch without anyone getting two copies."""

from __future__ import annotations

import html
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

import httpx

from tests.e2e.conftest import RunningSandbox, RunningTidings

POLLING = {"poll_interval_s": 0.2, "poll_trust_s": 0.5, "poll_overlap_s": 2.0}
ROUTE = "POST /v3/{domain}/messages"


def _calls(sandbox: RunningSandbox, status: str | None = "200") -> int:
    counts = sandbox.stats()["requests"].get(ROUTE, {})
    if status is None:
        return sum(int(n) for n in counts.values())
    return int(counts.get(status, 0))


def _send(server: RunningTidings, to: list[dict[str, Any]], content: dict[str, Any]) -> str:
    answer = server.courier().send.message(message={"to": to, "content": content})
    return answer.request_id


def _messages(server: RunningTidings) -> list[dict[str, Any]]:
    """Every message of the server (paged)."""
    out: list[dict[str, Any]] = []
    cursor: str | None = None
    with server.http() as http:
        while True:
            params: dict[str, Any] = {"limit": 500}
            if cursor:
                params["cursor"] = cursor
            page = http.get("/messages", params=params).json()
            out.extend(page["results"])
            cursor = page["paging"].get("cursor")
            if not page["paging"].get("more") or not cursor:
                return out


def _wait_all(
    server: RunningTidings, count: int, statuses: set[str], timeout: float = 180
) -> list[dict[str, Any]]:
    deadline = time.monotonic() + timeout
    while True:
        found = _messages(server)
        if len(found) >= count and all(m["status"] in statuses for m in found):
            return found
        if time.monotonic() > deadline:
            seen = Counter(m["status"] for m in found)
            raise AssertionError(f"not all {count} messages reached {statuses}: {seen}")
        time.sleep(0.2)


def _copies_by_recipient(sandbox: RunningSandbox) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    answer = httpx.get(f"{sandbox.url}/sandbox/api/messages", params={"limit": 100000}, timeout=30)
    answer.raise_for_status()
    for copy in answer.json():
        out.setdefault(copy["recipient"], []).append(copy)
    return out


def _address(i: int) -> str:
    return f"person{i}@example.test"


def _name(i: int) -> str:
    # Every few names carry characters HTML escapes: the copy must show them as a single
    # send would.
    return f"O'Neil & <{i}>" if i % 7 == 0 else f"Person {i}"


def test_2500_recipients_reach_mailgun_in_three_calls_each_personalised(
    start_tidings: Callable[..., RunningTidings], mailgun_sandbox: RunningSandbox
) -> None:
    server = start_tidings(**POLLING)
    server.add_provider(mailgun_sandbox, alias="main")
    count = 2500
    to = [{"email": _address(i), "data": {"name": _name(i), "code": i * 3}} for i in range(count)]
    request_id = _send(
        server,
        to,
        {"title": "Hello {{name}}", "body": "Dear {{name}}, your code is {{code}}."},
    )
    assert request_id.startswith("req_")
    found = _wait_all(server, count, {"DELIVERED"})
    assert _calls(mailgun_sandbox, None) <= 3
    copies = _copies_by_recipient(mailgun_sandbox)
    assert len(copies) == count
    by_recipient = {m["recipient"]: m for m in found}
    reference_of: dict[str, str] = {}
    for i in range(count):
        address = _address(i)
        (copy,) = copies[address]
        name = _name(i)
        assert copy["to"] == [address]  # each copy shows only its own recipient
        assert copy["subject"] == f"Hello {name}"
        assert f"Dear {name}, your code is {i * 3}." in copy["text"]
        assert f"Dear {html.escape(name, quote=False)}, your code is" in copy["html"]
        assert "%recipient." not in copy["html"] + copy["text"] + copy["subject"]
        message = by_recipient[address]
        # Every event of the copy carries the recipient's own Tidings id.
        assert copy["variables"]["tidings-id"] == message["id"]
        reference_of[message["id"]] = copy["id"]  # without angle brackets, as stored
    assert len(set(reference_of.values())) <= 3
    # Each message is its own, with its own history: its attempt, its SENT (the batch's
    # Mailgun id), its delivery.
    for i in (0, 7, 1234, count - 1):
        message = by_recipient[_address(i)]
        history = server.history(message["id"])
        types = [h["type"] for h in history]
        assert types.count("SENT") == 1 and "DELIVERED" in types, types
        sent = next(h for h in history if h["type"] == "SENT")
        assert sent["reference"] == reference_of[message["id"]]
        assert sent["batch"]["size"] > 1
        fields = sent["request"]["fields"]
        assert [v for k, v in fields if k == "to"] == [_address(i)]
        delivered = next(h for h in history if h["type"] == "DELIVERED")
        assert delivered["raw"]["recipient"] == _address(i)
    # Its output is what a single send renders.
    with server.http() as http:
        output = http.get(f"/messages/{by_recipient[_address(7)]['id']}/output").json()
    text = str(output)
    assert "O'Neil & <7>" in text or html.escape("O'Neil & <7>", quote=False) in text


def test_a_condition_on_data_sends_those_recipients_alone(
    tidings_with_mailgun: RunningTidings, mailgun_sandbox: RunningSandbox
) -> None:
    tiers = ["gold", "silver", "silver", "gold", "silver", "silver"]
    to = [
        {"email": f"tier{i}@example.test", "data": {"tier": tier, "name": f"N{i}"}}
        for i, tier in enumerate(tiers)
    ]
    _send(
        tidings_with_mailgun,
        to,
        {
            "title": "Status",
            "body": '{{#if (eq tier "gold")}}Gold member{{else}}Member{{/if}} {{name}}',
        },
    )
    _wait_all(tidings_with_mailgun, len(tiers), {"SENT", "DELIVERED"})
    copies = _copies_by_recipient(mailgun_sandbox)
    for i, tier in enumerate(tiers):
        (copy,) = copies[f"tier{i}@example.test"]
        expected = "Gold member" if tier == "gold" else "Member"
        assert f"{expected} N{i}" in copy["text"], copy["text"]
        assert copy["to"] == [f"tier{i}@example.test"]
    # The silver ones share a shape (one call); each gold one is sent alone, since the
    # value its copy depends on is not a placeholder Mailgun could fill.
    assert _calls(mailgun_sandbox) == 1 + tiers.count("gold")


def test_a_suppressed_recipient_is_left_out_of_the_batch(
    start_tidings: Callable[..., RunningTidings], mailgun_sandbox: RunningSandbox
) -> None:
    server = start_tidings(**POLLING)
    server.add_provider(mailgun_sandbox, alias="main")
    gone = "gone+bounce@example.test"
    first = _send(server, [{"email": gone}], {"title": "t", "body": "b"})
    server.wait_status(first, "UNDELIVERABLE")
    with server.http() as http:
        deadline = time.monotonic() + 20
        while http.get(f"/suppressions/{gone}").status_code != 200:
            assert time.monotonic() < deadline, "the hard bounce never suppressed the address"
            time.sleep(0.05)
    before = _calls(mailgun_sandbox)
    to = [{"email": f"keep{i}@example.test", "data": {"n": str(i)}} for i in range(4)]
    _send(
        server,
        [*to[:2], {"email": gone, "data": {"n": "x"}}, *to[2:]],
        {
            "title": "News {{n}}",
            "body": "Item {{n}}",
        },
    )
    found = _wait_all(server, 6, {"DELIVERED", "UNDELIVERABLE"})
    assert _calls(mailgun_sandbox) - before == 1
    copies = _copies_by_recipient(mailgun_sandbox)
    assert len(copies[gone]) == 1  # only the first, bounced send
    for i in range(4):
        (copy,) = copies[f"keep{i}@example.test"]
        assert copy["subject"] == f"News {i}"
    suppressed = [m for m in found if m["recipient"] == gone and m["id"] != first]
    assert len(suppressed) == 1
    assert suppressed[0]["status"] == "UNDELIVERABLE" and suppressed[0]["reason"] == "BOUNCED"
    assert "suppression list" in suppressed[0]["error"]


def _wait_history(server: RunningTidings, kind: str, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for message in _messages(server):
            if any(h["type"] == kind for h in server.history(message["id"])):
                return
        time.sleep(0.05)
    raise AssertionError(f"no {kind} entry in any history")


def _ten(server: RunningTidings) -> list[str]:
    to = [{"email": f"r{i}@example.test", "data": {"name": f"R{i}"}} for i in range(10)]
    _send(server, to, {"title": "Hi {{name}}", "body": "Body {{name}}"})
    return [f"r{i}@example.test" for i in range(10)]


def _each_once(sandbox: RunningSandbox, addresses: list[str]) -> None:
    copies = _copies_by_recipient(sandbox)
    for i, address in enumerate(addresses):
        assert len(copies.get(address, [])) == 1, (address, copies.get(address))
        assert copies[address][0]["subject"] == f"Hi R{i}"


def test_a_500_is_retried_as_a_batch_and_nobody_gets_two(
    tidings_with_mailgun: RunningTidings, mailgun_sandbox: RunningSandbox
) -> None:
    mailgun_sandbox.set_faults({"status_rates": {"500": 1.0}})
    addresses = _ten(tidings_with_mailgun)
    _wait_history(tidings_with_mailgun, "RETRYING")
    mailgun_sandbox.set_faults({})
    found = _wait_all(tidings_with_mailgun, 10, {"SENT", "DELIVERED"})
    _each_once(mailgun_sandbox, addresses)
    assert _calls(mailgun_sandbox) == 1  # the retry was one batch call again
    assert _calls(mailgun_sandbox, "500") >= 1
    history = tidings_with_mailgun.history(found[0]["id"])
    retry = next(h for h in history if h["type"] == "RETRYING")
    assert retry["response"]["status"] == 500 and retry["batch"]["size"] == 10


def test_an_in_doubt_batch_is_reconciled_without_duplicates(
    start_tidings: Callable[..., RunningTidings], mailgun_sandbox: RunningSandbox
) -> None:
    server = start_tidings()
    server.add_provider(mailgun_sandbox, alias="main", polling="off")
    # Accepted, then the connection cut before the answer: every copy is in Mailgun's log.
    mailgun_sandbox.set_faults({"drop_rate": 1.0})
    addresses = _ten(server)
    _wait_history(server, "IN_DOUBT")
    mailgun_sandbox.set_faults({})
    found = _wait_all(server, 10, {"SENT", "DELIVERED"})
    _each_once(mailgun_sandbox, addresses)
    assert _calls(mailgun_sandbox, "dropped") == 1
    assert _calls(mailgun_sandbox) == 0  # nothing was sent again
    for message in found:
        sent = [h for h in server.history(message["id"]) if h["type"] == "SENT"]
        assert len(sent) == 1 and "event log" in sent[0]["note"]
    # The batch was looked up as one: a read of its window per look, not one per message
    # (the first look may come before the visibility lag and find nothing yet).
    lookups = mailgun_sandbox.stats()["requests"].get("GET /v3/{domain}/events", {})
    assert 1 <= sum(int(n) for n in lookups.values()) < 10


def test_a_429_pauses_the_batch_then_sends_it_once(
    tidings_with_mailgun: RunningTidings, mailgun_sandbox: RunningSandbox
) -> None:
    mailgun_sandbox.set_faults({"status_rates": {"429": 1.0}, "retry_after_s": 1})
    addresses = _ten(tidings_with_mailgun)
    _wait_history(tidings_with_mailgun, "RETRYING")
    mailgun_sandbox.set_faults({})
    found = _wait_all(tidings_with_mailgun, 10, {"SENT", "DELIVERED"})
    _each_once(mailgun_sandbox, addresses)
    history = tidings_with_mailgun.history(found[0]["id"])
    first = next(h for h in history if h["type"] == "RETRYING")
    assert first["outcome"] == "throttled" and first["response"]["status"] == 429
    assert first["retry_at"]


def test_batch_size_1_sends_one_call_per_recipient(
    start_tidings: Callable[..., RunningTidings], mailgun_sandbox: RunningSandbox
) -> None:
    server = start_tidings(mailgun_batch_size=1)
    server.add_provider(mailgun_sandbox, alias="main")
    addresses = _ten(server)
    _wait_all(server, 10, {"SENT", "DELIVERED"})
    _each_once(mailgun_sandbox, addresses)
    assert _calls(mailgun_sandbox) == 10
    assert all("recipient-variables" not in m["options"] for m in mailgun_sandbox.messages())


def test_a_refused_batch_fails_every_message_of_it(
    tidings_with_mailgun: RunningTidings, mailgun_sandbox: RunningSandbox
) -> None:
    mailgun_sandbox.set_faults({"account_disabled": True})
    _ten(tidings_with_mailgun)
    found = _wait_all(tidings_with_mailgun, 10, {"UNDELIVERABLE"})
    assert _calls(mailgun_sandbox, "400") == 1  # one call, refused, for all ten
    assert mailgun_sandbox.messages() == []
    for message in found:
        assert message["reason"] == "PROVIDER_ERROR"
        assert "not allowed to send" in message["error"]


def test_two_servers_on_postgresql_batch_a_request_and_send_each_once(
    postgres_url: str,  # first: its database is dropped only after the servers stopped
    start_tidings: Callable[..., RunningTidings],
    mailgun_sandbox: RunningSandbox,
) -> None:
    first = start_tidings(database_url=postgres_url, dispatch_batch=4)
    second = start_tidings(database_url=postgres_url, dispatch_batch=4)
    first.add_provider(mailgun_sandbox, polling="off")
    count = 1200
    to = [{"email": _address(i), "data": {"name": _name(i), "code": i}} for i in range(count)]
    _send(second, to, {"title": "Hello {{name}}", "body": "Dear {{name}}, code {{code}}."})
    _wait_all(first, count, {"SENT", "DELIVERED"})
    copies = _copies_by_recipient(mailgun_sandbox)
    for i in range(count):
        (copy,) = copies[_address(i)]
        assert copy["subject"] == f"Hello {_name(i)}"
    # Each worker claims a few messages and fills the batch from the same request.
    assert _calls(mailgun_sandbox, None) <= 4


def test_the_rate_limit_counts_recipients_not_calls(
    start_tidings: Callable[..., RunningTidings], mailgun_sandbox: RunningSandbox
) -> None:
    server = start_tidings()
    server.add_provider(mailgun_sandbox, rate_limit={"rate": 5, "period": "second"})
    addresses = _ten(server)
    _wait_all(server, 10, {"SENT", "DELIVERED"})
    _each_once(mailgun_sandbox, addresses)
    # The bucket holds one second's worth, 5 tokens: the first call carries 5 recipients,
    # the others wait for theirs.
    per_call = Counter(copy["id"] for copy in mailgun_sandbox.messages())
    assert max(per_call.values()) == 5
    assert sum(per_call.values()) == 10 and len(per_call) >= 2
