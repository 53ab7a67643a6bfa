"""Courier's ``bulk`` resource through the official SDK against a running Tidings and the
Mailgun sandbox: jobs by template and by inline content, users added in several calls, every
user its own delivered, personalised message; counts, user statuses and hostile input."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path
from typing import Any

import courier
import httpx
import pytest
from courier import Courier

from tests.e2e.conftest import API_KEY, RunningSandbox, RunningTidings, tidings_settings
from tests.support.servers import free_port, serve_asgi
from tidings.app import build_app
from tidings.store import bulk as store
from tidings.store.clock import utcnow
from tidings.store.database import Database

TEMPLATE: Any = {
    "name": "Spring sale",
    "tags": [],
    "brand": None,
    "routing": None,
    "subscription": None,
    "alias": "spring-sale",
    "content": {
        "version": "2022-01-01",
        "elements": [
            {
                "type": "channel",
                "channel": "email",
                "elements": [
                    {"type": "meta", "title": "{{data.campaign}} for {{profile.name}}"},
                    {"type": "text", "content": "Your code is {{data.code}}."},
                ],
            }
        ],
    },
}

TEXT: Any = {"title": "Hi", "body": "b"}
FINAL = {"DELIVERED", "OPENED", "CLICKED", "UNDELIVERABLE", "UNROUTABLE"}


def wait_job(client: Courier, job_id: str, done: Callable[[Any], bool], timeout: float = 60) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        job = client.bulk.retrieve_job(job_id).job
        if done(job) or time.monotonic() > deadline:
            return job
        time.sleep(0.1)


def all_delivered(total: int) -> Callable[[Any], bool]:
    def check(job: Any) -> bool:
        statuses: dict[str, int] = getattr(job, "statuses", None) or {}
        return job.status == "COMPLETED" and statuses.get("DELIVERED", 0) == total

    return check


def users_of(client: Courier, job_id: str) -> list[Any]:
    items: list[Any] = []
    cursor: str | None = None
    while True:
        page = client.bulk.list_users(job_id, cursor=cursor)
        items.extend(page.items)
        if not page.paging.more:
            return items
        cursor = page.paging.cursor


def copies_to(sandbox: RunningSandbox) -> dict[str, list[dict[str, Any]]]:
    found: dict[str, list[dict[str, Any]]] = {}
    # Every copy the sandbox keeps (its list stops at 1,000 unless told).
    answer = httpx.get(f"{sandbox.url}/sandbox/api/messages", params={"limit": 100_000}, timeout=30)
    answer.raise_for_status()
    for copy in answer.json():
        for to in copy["to"] if isinstance(copy["to"], list) else [copy["to"]]:
            found.setdefault(to, []).append(copy)
    return found


def error_of(raised: pytest.ExceptionInfo[courier.APIStatusError]) -> str:
    body = raised.value.body
    assert isinstance(body, dict), body
    return str(body["message"])


def test_template_job_in_chunks_every_user_delivered_and_personalised(
    tidings_with_mailgun: RunningTidings, mailgun_sandbox: RunningSandbox
) -> None:
    server = tidings_with_mailgun
    server.connect_webhooks()
    client = server.courier()
    made = client.notifications.create(notification=TEMPLATE)
    client.notifications.publish(made.id)

    job_id = client.bulk.create_job(
        message={"event": "spring-sale", "data": {"campaign": "Spring sale", "code": "NONE"}}
    ).job_id
    users: list[Any] = [
        {"profile": {"email": f"u{i}@bulk.test", "name": f"User {i}"}, "data": {"code": f"C{i}"}}
        for i in range(120)
    ]
    for start in (0, 50, 100):
        client.bulk.add_users(job_id, users=users[start : start + 50])
    before = client.bulk.retrieve_job(job_id).job
    assert (before.status, before.received, before.enqueued, before.failures) == (
        "CREATED",
        120,
        0,
        0,
    )
    assert before.definition.event == "spring-sale"
    assert {u.status for u in users_of(client, job_id)} == {"PENDING"}

    client.bulk.run_job(job_id)
    job = wait_job(client, job_id, all_delivered(120))
    assert (job.status, job.received, job.enqueued, job.failures) == ("COMPLETED", 120, 120, 0)

    listed = users_of(client, job_id)
    assert len(listed) == 120
    assert [u.profile["email"] for u in listed] == [f"u{i}@bulk.test" for i in range(120)]
    assert {u.status for u in listed} == {"ENQUEUED"}
    ids = [u.message_id for u in listed]
    assert len(set(ids)) == 120 and all(ids)

    copies = copies_to(mailgun_sandbox)
    for i in (0, 49, 50, 119):
        (copy,) = copies[f"u{i}@bulk.test"]
        assert copy["subject"] == f"Spring sale for User {i}"
        assert f"Your code is C{i}." in copy["html"]
    assert sum(len(copies.get(f"u{i}@bulk.test", [])) for i in range(120)) == 120

    # Each user's message is tracked on its own, under the job's one request.
    message = client.messages.retrieve(listed[7].message_id)
    assert message.status == "DELIVERED" and message.recipient == "u7@bulk.test"
    assert getattr(job, "requestId", None)
    with server.http() as http:
        history = http.get(f"/messages/{listed[7].message_id}/history").json()["results"]
    assert history[0]["request_id"] == job.requestId and history[0]["template"] == made.id


def test_inline_content_job_with_stored_profiles(
    tidings_with_mailgun: RunningTidings, mailgun_sandbox: RunningSandbox
) -> None:
    server = tidings_with_mailgun
    server.connect_webhooks()
    client = server.courier()
    client.profiles.create("ann", profile={"email": "ann@bulk.test", "name": "Ann"})
    job_id = client.bulk.create_job(
        message={
            "event": "announcement",
            "content": {"title": "News for {{profile.name}}", "body": "Plan: {{data.plan}}"},
            "data": {"plan": "basic"},
        }
    ).job_id
    client.bulk.add_users(
        job_id,
        users=[
            {"to": {"user_id": "ann"}, "data": {"plan": "pro"}},
            {"recipient": "bob", "profile": {"email": "bob@bulk.test", "name": "Bob"}},
        ],
    )
    cy: Any = {"to": {"email": "cy@bulk.test", "name": "Cy"}}  # a profile field inline
    client.bulk.add_users(job_id, users=[cy])
    client.bulk.run_job(job_id)
    job = wait_job(client, job_id, all_delivered(3))
    assert (job.status, job.enqueued, job.failures) == ("COMPLETED", 3, 0)

    copies = copies_to(mailgun_sandbox)
    assert copies["ann@bulk.test"][0]["subject"] == "News for Ann"
    assert "Plan: pro" in copies["ann@bulk.test"][0]["text"]
    assert copies["bob@bulk.test"][0]["subject"] == "News for Bob"
    assert "Plan: basic" in copies["bob@bulk.test"][0]["text"]
    assert copies["cy@bulk.test"][0]["subject"] == "News for Cy"
    listed = users_of(client, job_id)
    assert [u.recipient for u in listed] == [None, "bob", None]
    assert client.messages.retrieve(listed[0].message_id).event == "announcement"


def test_a_user_who_cannot_be_reached_counts_as_a_failure(
    tidings_with_mailgun: RunningTidings,
) -> None:
    client = tidings_with_mailgun.courier()
    job_id = client.bulk.create_job(message={"event": "e", "content": TEXT}).job_id
    # A user id with no stored profile: accepted (it may get one before the run), then
    # UNROUTABLE, as /send would do.
    client.bulk.add_users(
        job_id, users=[{"to": {"user_id": "nobody"}}, {"to": {"email": "a@b.test"}}]
    )
    client.bulk.run_job(job_id)
    job = wait_job(client, job_id, lambda j: j.failures == 1 and j.status == "COMPLETED")
    assert (job.status, job.enqueued, job.failures) == ("COMPLETED", 2, 1)


def test_hostile_input_is_refused_naming_the_field(
    tidings_with_mailgun: RunningTidings, mailgun_sandbox: RunningSandbox
) -> None:
    client = tidings_with_mailgun.courier()
    bad_definitions: list[tuple[Any, str]] = [
        ({}, "message.event is required"),
        ({"event": "no-such-template"}, "message.template"),
        ({"event": "e", "content": TEXT, "locale": {"fr": {}}}, "message.locale"),
        ({"event": "e", "content": TEXT, "override": {"x": 1}}, "message.override"),
        ({"event": "e", "content": TEXT, "brand": "nope"}, "message.brand"),
        ({"event": "e", "content": TEXT, "channel": "sms"}, "message.channel"),
        ({"event": "e", "content": TEXT, "template": "x"}, "either content or"),
    ]
    for definition, expected in bad_definitions:
        with pytest.raises(courier.BadRequestError) as raised:
            client.bulk.create_job(message=definition)
        assert expected in error_of(raised), (definition, error_of(raised))

    job_id = client.bulk.create_job(message={"event": "e", "content": TEXT}).job_id
    bad_users: list[tuple[Any, str]] = [
        ({"profile": {"email": "not-an-address"}}, "users[0].profile.email"),
        ({"to": {"email": "x@y"}}, "users[0].to.email"),
        ({"profile": {"name": "No address"}}, "users[0] needs an address"),
        ({"profile": {"email": "a@b.test"}, "preferences": {"x": 1}}, "users[0].preferences"),
        ({"to": {"list_id": "l1"}}, "users[0].to.list_id"),
        ({"to": {"audience_id": "vips"}}, "users[0].to.audience_id"),
        ({"profile": {"email": "a@b.test", "list_id": "l"}}, "users[0].profile.list_id"),
        ({"profile": {"email": "a@b.test"}, "extra": 1}, "users[0].extra"),
        ({"profile": {"email": "a@b.test"}, "data": "text"}, "users[0].data must be an object"),
        ({"recipient": "a", "to": {"user_id": "b"}}, "name different users"),
        ("a@b.test", "users[0] must be an object"),
    ]
    for user, expected in bad_users:
        with pytest.raises(courier.BadRequestError) as raised:
            client.bulk.add_users(job_id, users=[user])
        assert expected in error_of(raised), (user, error_of(raised))
    # One bad user refuses the whole call: nothing of it is kept.
    with pytest.raises(courier.BadRequestError) as raised:
        client.bulk.add_users(
            job_id, users=[{"profile": {"email": "ok@b.test"}}, {"profile": {"email": "bad"}}]
        )
    assert "users[1].profile.email" in error_of(raised)
    with pytest.raises(courier.BadRequestError) as raised:
        client.bulk.add_users(
            job_id, users=[{"profile": {"email": f"u{i}@b.test"}} for i in range(5001)]
        )
    assert "at most 5000 users per call" in error_of(raised)
    with pytest.raises(courier.BadRequestError):
        client.bulk.add_users(job_id, users=[])
    assert client.bulk.retrieve_job(job_id).job.received == 0
    with pytest.raises(courier.BadRequestError) as raised:
        client.bulk.run_job(job_id)
    assert "has no users" in error_of(raised)

    for call in (
        lambda: client.bulk.retrieve_job("bulk_nope"),
        lambda: client.bulk.run_job("bulk_nope"),
        lambda: client.bulk.list_users("bulk_nope"),
        lambda: client.bulk.add_users("bulk_nope", users=[{"profile": {"email": "a@b.test"}}]),
    ):
        with pytest.raises(courier.NotFoundError):
            call()
    with pytest.raises(courier.BadRequestError):
        client.bulk.list_users(job_id, cursor="'; drop table")

    # Run twice (and at once): each user gets one email.
    client.bulk.add_users(
        job_id, users=[{"profile": {"email": f"twice{i}@bulk.test"}} for i in range(30)]
    )
    client.bulk.run_job(job_id)
    client.bulk.run_job(job_id)
    job = wait_job(client, job_id, lambda j: j.status == "COMPLETED")
    client.bulk.run_job(job_id)
    assert (job.enqueued, job.received) == (30, 30)
    with pytest.raises(courier.ConflictError) as conflict:
        client.bulk.add_users(job_id, users=[{"profile": {"email": "late@bulk.test"}}])
    assert "has been run" in error_of(conflict)
    wait_job(client, job_id, lambda j: sum(j.statuses.get(s, 0) for s in ("SENT", *FINAL)) == 30)
    copies = copies_to(mailgun_sandbox)
    assert all(len(copies[f"twice{i}@bulk.test"]) == 1 for i in range(30))
    assert "late@bulk.test" not in copies

    # Without the API key, nothing.
    anonymous = httpx.post(f"{tidings_with_mailgun.url}/bulk", json={"message": {"event": "e"}})
    assert anonymous.status_code == 401


def test_concurrent_runs_on_postgresql_send_each_user_once(
    start_tidings: Callable[..., RunningTidings],
    mailgun_sandbox: RunningSandbox,
    postgres_url: str,
) -> None:
    server = start_tidings(database_url=postgres_url)
    server.add_provider(mailgun_sandbox, alias="main")
    client = server.courier()
    job_id = client.bulk.create_job(message={"event": "e", "content": TEXT}).job_id
    users: list[Any] = [{"profile": {"email": f"pg{i}@bulk.test"}} for i in range(1200)]
    for start in range(0, 1200, 400):
        client.bulk.add_users(job_id, users=users[start : start + 400])
    # Several runs at once: one takes the job, the others leave it alone.
    with ThreadPoolExecutor(4) as pool:
        list(pool.map(lambda _: client.bulk.run_job(job_id), range(4)))
    job = wait_job(
        client,
        job_id,
        lambda j: sum(j.statuses.get(s, 0) for s in ("SENT", *FINAL)) == 1200,
        timeout=120,
    )
    assert (job.status, job.enqueued, job.received) == ("COMPLETED", 1200, 1200)
    copies = copies_to(mailgun_sandbox)
    assert sum(len(copies.get(f"pg{i}@bulk.test", [])) for i in range(1200)) == 1200


def test_a_run_whose_process_died_is_taken_over(
    tidings_with_mailgun: RunningTidings, mailgun_sandbox: RunningSandbox
) -> None:
    server = tidings_with_mailgun
    client = server.courier()
    dead, alive = (
        client.bulk.create_job(message={"event": "e", "content": TEXT}).job_id for _ in range(2)
    )
    for job_id, name in ((dead, "dead"), (alive, "alive")):
        client.bulk.add_users(
            job_id, users=[{"profile": {"email": f"{name}{i}@bulk.test"}} for i in range(5)]
        )

    async def claim() -> None:
        # As another process would: it took the jobs and then stopped answering.
        db = Database(server.settings.database_url)
        try:
            now = utcnow()
            async with db.write() as conn:
                assert await store.take(conn, dead, "run_gone", now, now - timedelta(seconds=1))
                assert await store.take(conn, alive, "run_busy", now, now + timedelta(hours=1))
        finally:
            await db.close()

    asyncio.run(claim())
    assert client.bulk.retrieve_job(dead).job.status == "PROCESSING"
    client.bulk.run_job(dead)
    client.bulk.run_job(alive)
    job = wait_job(client, dead, lambda j: sum(j.statuses.get(s, 0) for s in ("SENT", *FINAL)) == 5)
    assert (job.status, job.enqueued) == ("COMPLETED", 5)
    # The live run is left to its owner: nothing of it is sent by this one.
    held = client.bulk.retrieve_job(alive).job
    assert (held.status, held.enqueued) == ("PROCESSING", 0)
    copies = copies_to(mailgun_sandbox)
    assert all(len(copies[f"dead{i}@bulk.test"]) == 1 for i in range(5))
    assert not any(to.startswith("alive") for to in copies)


def test_a_server_stopped_mid_run_hands_the_job_to_the_next_start(
    start_tidings: Callable[..., RunningTidings],
    mailgun_sandbox: RunningSandbox,
    tmp_path: Path,
) -> None:
    port = free_port()
    settings = tidings_settings(tmp_path, port, provider_hosts=mailgun_sandbox.url)
    first = RunningTidings(f"http://127.0.0.1:{port}", API_KEY, settings)
    with serve_asgi(asyncio.run(build_app(settings)), port=port):
        first.add_provider(mailgun_sandbox, alias="main")
        client = first.courier()
        job_id = client.bulk.create_job(message={"event": "e", "content": TEXT}).job_id
        users: list[Any] = [{"profile": {"email": f"s{i}@bulk.test"}} for i in range(3000)]
        for start in range(0, 3000, 1000):
            client.bulk.add_users(job_id, users=users[start : start + 1000])
        client.bulk.run_job(job_id)
    # Stopped: wherever the run was, the next start takes it up (same database file).
    second = start_tidings()
    client = second.courier()
    job = wait_job(
        client,
        job_id,
        lambda j: sum(j.statuses.get(s, 0) for s in ("SENT", *FINAL)) == 3000,
        timeout=180,
    )
    assert (job.status, job.enqueued, job.received) == ("COMPLETED", 3000, 3000)
    copies = copies_to(mailgun_sandbox)
    assert sorted(len(copies.get(f"s{i}@bulk.test", [])) for i in range(3000)) == [1] * 3000


def test_idempotency_keys_make_retried_writes_happen_once(
    tidings_with_mailgun: RunningTidings,
) -> None:
    client = tidings_with_mailgun.courier()
    message: Any = {"event": "e", "content": TEXT}
    once = {"Idempotency-Key": "job-1"}
    job_id = client.bulk.create_job(message=message, extra_headers=once).job_id
    assert client.bulk.create_job(message=message, extra_headers=once).job_id == job_id
    other = client.bulk.create_job(message=message).job_id
    assert other != job_id

    users: Any = [{"profile": {"email": f"k{i}@bulk.test"}} for i in range(3)]
    for _ in range(3):  # a call retried after its answer was lost
        client.bulk.add_users(job_id, users=users, extra_headers={"Idempotency-Key": "add-1"})
    assert client.bulk.retrieve_job(job_id).job.received == 3
    # The same key with other users is a mistake, said as such; nothing is added.
    with pytest.raises(courier.ConflictError) as raised:
        client.bulk.add_users(job_id, users=users[:1], extra_headers={"Idempotency-Key": "add-1"})
    assert "Idempotency-Key" in error_of(raised)
    # The same users and key for another job are another write (the route is in the hash),
    # refused as a reuse rather than replayed as if added.
    with pytest.raises(courier.ConflictError):
        client.bulk.add_users(other, users=users, extra_headers={"Idempotency-Key": "add-1"})
    assert client.bulk.retrieve_job(other).job.received == 0
    assert client.bulk.retrieve_job(job_id).job.received == 3
    # A refused call keeps no answer: once the cause is gone, the key works.
    client.bulk.run_job(job_id)
    with pytest.raises(courier.ConflictError):
        client.bulk.add_users(job_id, users=users, extra_headers={"Idempotency-Key": "add-2"})
    client.bulk.add_users(other, users=users, extra_headers={"Idempotency-Key": "add-2"})
    assert client.bulk.retrieve_job(other).job.received == 3
