"""Clear refusals against a real server: 400 naming the field for what cannot be stored or
computed, 413 before a body is read, 503 with Retry-After when the database cannot take a
request, a JSON 500 with a logged request id for anything unforeseen, and an X-Request-Id
on every answer. Nothing refused is stored."""

from __future__ import annotations

import contextlib
import json
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from tests.api import faulty_server
from tests.e2e.conftest import RunningSandbox, RunningTidings
from tests.e2e.conftest import mailgun_sandbox as mailgun_sandbox
from tests.e2e.conftest import start_tidings as start_tidings
from tests.support.processes import wait_healthy
from tests.support.servers import free_port
from tests.support.tcp_forward import tcp_forward
from tidings.sandbox.settings import DEFAULT_DOMAIN

CONTENT = {"title": "Hello", "body": "World"}


def message(**fields: Any) -> dict[str, Any]:
    return {"message": {"to": {"email": "jane@example.com"}, "content": CONTENT, **fields}}


def assert_refused(answer: httpx.Response, status: int, *words: str) -> dict[str, Any]:
    assert answer.status_code == status, answer.text
    assert answer.headers["content-type"] == "application/json"
    body: dict[str, Any] = answer.json()
    assert set(body) >= {"message", "type"}, body
    for word in words:
        assert word in body["message"], (word, body)
    assert answer.headers.get("x-request-id")
    return body


def stored_messages(server: RunningTidings) -> int:
    with server.http() as http:
        return len(http.get("/messages", params={"limit": 500}).json()["results"])


@pytest.fixture(params=["sqlite", "postgresql"])
def backend(request: pytest.FixtureRequest) -> dict[str, Any]:
    if request.param == "sqlite":
        return {}
    return {"database_url": str(request.getfixturevalue("postgres_url"))}


def test_out_of_range_numbers_dates_and_headers_are_400_naming_the_field(
    start_tidings: Callable[..., RunningTidings],
) -> None:
    server = start_tidings(run_workers=False)
    huge = 10**15
    cases: list[tuple[dict[str, Any], dict[str, str], str]] = [
        (message(delay={"duration": huge}), {}, "message.delay.duration"),
        (message(delay={"duration": 10**30}), {}, "message.delay.duration"),
        (message(timeout={"message": huge}), {}, "message.timeout.message"),
        (message(timeout={"provider": huge}), {}, "message.timeout.provider"),
        (message(timeout={"channel": {"email": huge}}), {}, "message.timeout.channel.email"),
        (message(expiry={"expires_in": huge}), {}, "message.expiry.expires_in"),
        (message(expiry={"expires_in": "99999999999999999999"}), {}, "message.expiry.expires_in"),
        (message(expiry={"expires_in": "P999999999D"}), {}, "message.expiry.expires_in"),
        (message(expiry={"expires_at": "9999-12-31T23:59:59-14:00"}), {}, "expires_at"),
        (message(delay={"until": "0001-01-01T00:00:00+14:00"}), {}, "message.delay.until"),
        (message(delay={"until": "1900-01-01T00:00:00Z"}), {}, "message.delay.until"),
        (
            message(),
            {"Idempotency-Key": "k1", "X-Idempotency-Expiration": "99999999999999999999"},
            "x-idempotency-expiration",
        ),
        (
            message(),
            {"Idempotency-Key": "k2", "X-Idempotency-Expiration": "+275760-09-13T00:00:00Z"},
            "x-idempotency-expiration",
        ),
        (message(), {"Idempotency-Key": "k" * 300}, "Idempotency-Key"),
    ]
    with server.http() as http:
        for body, headers, field in cases:
            assert_refused(http.post("/send", json=body, headers=headers), 400, field)
        for query in ({"enqueued_after": "9" * 30}, {"enqueued_after": "+99999-01-01"}):
            assert_refused(http.get("/messages", params=query), 400, "enqueued_after")
        assert_refused(http.get("/events/unmatched", params={"cursor": 2**40}), 400, "cursor")
        assert_refused(
            http.get("/messages/stream", headers={"Last-Event-ID": "9" * 30}), 400, "Last-Event-ID"
        )
        assert stored_messages(server) == 0
        # Within range, the same fields are accepted.
        ok = message(
            delay={"duration": 1000}, expiry={"expires_in": "PT1H"}, timeout={"provider": 5}
        )
        assert http.post("/send", json=ok).status_code == 202


def test_text_no_database_can_store_is_400_naming_the_field(
    start_tidings: Callable[..., RunningTidings], backend: dict[str, Any]
) -> None:
    server = start_tidings(run_workers=False, **backend)
    to = {"email": "jane@example.com"}
    sends: list[tuple[dict[str, Any], str]] = [
        ({"to": {**to, "user_id": "jane\x00"}, "content": CONTENT}, "message.to.user_id"),
        ({"to": {**to, "name": "J\x00"}, "content": CONTENT}, "message.to.name"),
        ({"to": to, "content": {"title": "a\x00", "body": "b"}}, "message.content.title"),
        ({"to": to, "content": CONTENT, "data": {"k": ["ok", "\x00"]}}, "message.data.k[1]"),
        ({"to": to, "content": CONTENT, "metadata": {"tags": ["t\x00"]}}, "metadata.tags[0]"),
        ({"to": to, "content": CONTENT, "metadata": {"event": "\x00"}}, "metadata.event"),
    ]
    with server.http() as http:
        for msg, field in sends:
            assert_refused(http.post("/send", json={"message": msg}), 400, field, "NUL")
        # A lone surrogate, as JSON can carry it and no database can store it.
        raw = json.dumps(message(data={"k": "x"})).replace('"x"', '"\\ud800"')
        answer = http.post("/send", content=raw, headers={"content-type": "application/json"})
        assert_refused(answer, 400, "message.data.k", "surrogate")
        assert_refused(
            http.post("/profiles/jane", json={"profile": {"a": "\x00"}}), 400, "profile.a"
        )
        assert_refused(http.put("/profiles/jane", json={"profile": {"\x00": 1}}), 400, "profile")
        assert_refused(http.get("/profiles/ja%00ne"), 400, "NUL")
        assert_refused(http.get("/messages", params={"recipient": "a\x00"}), 400, "NUL")
        assert_refused(
            http.post("/webhooks/endpoints", json={"url": "https://example.test/\x00"}), 400, "url"
        )
        assert stored_messages(server) == 0
        assert http.get("/profiles/jane").status_code == 404
        assert http.get("/webhooks/endpoints").json()["results"] == []


def test_deep_json_is_400_on_every_route_that_reads_json(
    start_tidings: Callable[..., RunningTidings], mailgun_sandbox: RunningSandbox
) -> None:
    server = start_tidings(run_workers=False)
    provider = server.add_provider(mailgun_sandbox)
    webhook_path = httpx.URL(provider["webhook_url"]).path
    deep = b"[" * 100_000 + b"]" * 100_000
    wrapped = b'{"profile": {"a": ' + deep + b"}}"
    with server.http() as http:
        for path, body in (
            ("/send", deep),
            ("/send", b'{"message": {"data": ' + deep + b"}}"),
            ("/profiles/jane", wrapped),
            (webhook_path, deep),
            ("/providers", deep),
            ("/webhooks/endpoints", deep),
        ):
            answer = http.post(path, content=body, headers={"content-type": "application/json"})
            assert_refused(answer, 400, "nested deeper than")
        # 64 levels is fine.
        nested: Any = "x"
        for _ in range(60):
            nested = {"k": nested}
        assert http.post("/send", json=message(data=nested)).status_code == 202


def test_bodies_over_the_limit_are_413_before_they_are_read(
    start_tidings: Callable[..., RunningTidings], mailgun_sandbox: RunningSandbox
) -> None:
    server = start_tidings(
        run_workers=False,
        max_body_bytes=8 * 1024,
        max_send_body_bytes=64 * 1024,
        max_webhook_body_bytes=16 * 1024,
    )
    provider = server.add_provider(mailgun_sandbox)
    webhook_path = httpx.URL(provider["webhook_url"]).path
    routes = [
        ("/send", 64 * 1024, "TIDINGS_MAX_SEND_BODY_BYTES", "application/json"),
        (webhook_path, 16 * 1024, "TIDINGS_MAX_WEBHOOK_BODY_BYTES", "application/json"),
        (webhook_path, 16 * 1024, "TIDINGS_MAX_WEBHOOK_BODY_BYTES", "multipart/form-data; b=x"),
        ("/profiles/jane", 8 * 1024, "TIDINGS_MAX_BODY_BYTES", "application/json"),
        ("/ui/login", 8 * 1024, "TIDINGS_MAX_BODY_BYTES", "application/x-www-form-urlencoded"),
    ]
    with server.http() as http:
        for path, limit, setting, content_type in routes:
            over = b"x" * (limit + 1)
            headers = {"content-type": content_type}
            # Declared length: refused on the header alone.
            answer = http.post(path, content=over, headers=headers)
            assert_refused(answer, 413, setting)

            # Chunked (no length): refused while it streams in.
            def chunks(body: bytes = over) -> Iterator[bytes]:
                for start in range(0, len(body), 1024):
                    yield body[start : start + 1024]

            answer = http.post(path, content=chunks(), headers=headers)
            assert_refused(answer, 413, setting)
        # Just under the limit, /send works (its padding is an ignored extra field).
        padded = message()
        padded["padding"] = "x" * (60 * 1024)
        assert http.post("/send", json=padded).status_code == 202


def test_the_sandbox_keeps_mailguns_limits_not_ours(
    start_tidings: Callable[..., RunningTidings],
) -> None:
    server = start_tidings(run_workers=False, sandbox=True, max_body_bytes=64 * 1024)
    # The embedded sandbox has keys of its own per installation, kept in its configuration.
    db_file = server.settings.database_url.split("///", 1)[1]
    with contextlib.closing(sqlite3.connect(db_file)) as db:
        (raw,) = db.execute("select settings from providers where origin = 'sandbox'").fetchone()
    attachment = b"a" * (2 * 1024 * 1024)
    answer = httpx.post(
        f"{server.url}/sandbox/v3/{DEFAULT_DOMAIN}/messages",
        auth=("api", json.loads(raw)["api_key"]),
        data={
            "from": f"a@{DEFAULT_DOMAIN}",
            "to": "jane@example.com",
            "subject": "big",
            "text": "see attached",
        },
        files={"attachment": ("big.bin", attachment)},
        timeout=30,
    )
    assert answer.status_code == 200, answer.text
    assert answer.headers.get("x-request-id")


def test_every_answer_carries_a_request_id(start_tidings: Callable[..., RunningTidings]) -> None:
    server = start_tidings(run_workers=False)
    with httpx.Client(base_url=server.url, timeout=10) as anonymous:
        ids = [
            anonymous.get("/health").headers["x-request-id"],
            anonymous.get("/no/such/route").headers["x-request-id"],
            anonymous.post("/send", json=message()).headers["x-request-id"],  # 401
            anonymous.get("/ui/login").headers["x-request-id"],
        ]
        assert len(set(ids)) == len(ids)
        assert all(i.startswith("req_") for i in ids)
        given = anonymous.get("/health", headers={"X-Request-Id": "trace-42.a:b"})
        assert given.headers["x-request-id"] == "trace-42.a:b"
        insane = anonymous.get("/health", headers={"X-Request-Id": "x" * 500})
        assert insane.headers["x-request-id"].startswith("req_")


def test_postgres_out_of_reach_is_503_and_service_resumes(
    start_tidings: Callable[..., RunningTidings], postgres_url: str
) -> None:
    url = sa.make_url(postgres_url)
    port = free_port()
    with tcp_forward(url.host or "127.0.0.1", url.port or 5432, port) as forward:
        through = url.set(host="127.0.0.1", port=port).render_as_string(hide_password=False)
        server = start_tidings(run_workers=False, database_url=through)
        with server.http() as http:
            assert http.post("/send", json=message()).status_code == 202
            forward.cut()
            for method, path, body in (
                ("POST", "/send", message()),
                ("GET", "/messages", None),
                ("GET", "/profiles/jane", None),
                ("POST", "/profiles/jane", {"profile": {"a": 1}}),
            ):
                answer = http.request(method, path, json=body)
                refused = assert_refused(answer, 503, "database is unavailable")
                assert refused["type"] == "api_error"
                assert int(answer.headers["retry-after"]) > 0
            forward.restore()
            deadline = time.monotonic() + 30
            while (answer := http.post("/send", json=message())).status_code != 202:
                assert answer.status_code == 503 and time.monotonic() < deadline, answer.text
            assert stored_messages(server) == 2


async def _admin(postgres_url: str, *statements: str) -> None:
    import asyncpg

    url = sa.make_url(postgres_url)
    conn = await asyncpg.connect(
        host=url.host, port=url.port, user=url.username, password=url.password, database="postgres"
    )
    try:
        for statement in statements:
            await conn.execute(statement)
    finally:
        await conn.close()


def test_read_only_postgres_is_503_and_no_202_without_a_commit(
    start_tidings: Callable[..., RunningTidings], postgres_url: str
) -> None:
    import asyncio

    name = sa.make_url(postgres_url).database
    server = start_tidings(run_workers=False, database_url=postgres_url)
    terminate = (
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
        f"WHERE datname = '{name}' AND pid <> pg_backend_pid()"
    )
    with server.http() as http:
        asyncio.run(
            _admin(
                postgres_url,
                f'ALTER DATABASE "{name}" SET default_transaction_read_only = on',
                terminate,
            )
        )
        # The pool finds its connections gone and opens read-only ones.
        deadline = time.monotonic() + 30
        while (answer := http.post("/send", json=message())).status_code != 503:
            assert answer.status_code != 202, "a 202 without a commit"
            assert time.monotonic() < deadline, answer.text
        assert_refused(answer, 503, "read-only")
        assert int(answer.headers["retry-after"]) > 0
        asyncio.run(
            _admin(
                postgres_url,
                f'ALTER DATABASE "{name}" RESET default_transaction_read_only',
                terminate,
            )
        )
        deadline = time.monotonic() + 30
        while (answer := http.post("/send", json=message())).status_code != 202:
            assert answer.status_code == 503 and time.monotonic() < deadline, answer.text
        assert stored_messages(server) == 1


@pytest.fixture
def faulty(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    port = free_port()
    log = tmp_path / "server.log"
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.api.faulty_server", str(port), f"sqlite:///{tmp_path}/t.db"],
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    wait_healthy(url, proc, log, timeout=30)
    try:
        yield url, log
    finally:
        proc.terminate()
        proc.wait(30)


def test_unforeseen_errors_are_json_500_with_a_request_id_in_the_log(
    faulty: tuple[str, Path],
) -> None:
    url, log = faulty
    auth = {"Authorization": f"Bearer {faulty_server.API_KEY}"}
    for path in ("/test/boom", "/test/middleware", "/test/outer"):
        answer = httpx.get(f"{url}{path}", headers=auth, timeout=10)
        assert answer.status_code == 500, answer.text
        assert answer.headers["content-type"] == "application/json"
        body = answer.json()
        assert body["type"] == "api_error" and "request id" in body["message"]
        if path != "/test/outer":  # outside the guard, the answer has no header to carry it
            assert body["request_id"] == answer.headers["x-request-id"]
        assert "Internal Server Error" not in answer.text
        deadline = time.monotonic() + 10
        while body["request_id"] not in log.read_text():
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.05)
    # A stream that breaks after its first chunk ends short; it is never turned into text.
    with pytest.raises(httpx.HTTPError):
        httpx.get(f"{url}/test/stream", headers=auth, timeout=10).read()
    text = log.read_text()
    assert "unhandled error" in text and "RuntimeError" in text
    assert faulty_server.SECRET not in text
    assert "****" + faulty_server.SECRET[-4:] in text


def test_values_wider_than_their_columns_are_400_naming_the_field(
    start_tidings: Callable[..., RunningTidings], backend: dict[str, Any]
) -> None:
    """PostgreSQL enforces column widths (SQLite does not): refused up front on both."""
    server = start_tidings(run_workers=False, **backend)
    wide = "x" * 300
    with server.http() as http:
        to = {"user_id": wide, "email": "jane@example.com"}
        assert_refused(
            http.post("/send", json={"message": {"to": to, "content": CONTENT}}),
            400,
            "message.to.user_id",
        )
        for field in ("trace_id", "event"):
            answer = http.post("/send", json=message(metadata={field: wide}))
            assert_refused(answer, 400, f"message.metadata.{field}")
        assert_refused(http.put(f"/profiles/{wide}", json={"profile": {"a": 1}}), 400, "user_id")
        for field in ("alias", "title"):
            body = {
                "provider": "mailgun",
                field: wide,
                "settings": {"api_key": "k" * 20, "domain": "mg.example.com"},
            }
            assert_refused(http.post("/providers", json=body), 400, field)
        assert stored_messages(server) == 0
