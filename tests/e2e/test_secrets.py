"""Secrets stay secret: no API key or signing key in any answer, log line or history entry."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from tests.support.processes import stop
from tests.support.servers import free_port, serve_asgi
from tidings.sandbox import Sandbox, SandboxSettings

TIDINGS_KEY = "tk_secret_Tidings_0123456789abcdefXYZ"
MAILGUN_KEY = "key-secretMailgun0123456789abcdefQRS"
SIGNING_KEY = "sign-secretSigning0123456789abcdefLMN"
DOMAIN = "mg.secrets.test"


def test_no_secret_in_answers_logs_or_history(tmp_path: Path) -> None:
    sandbox = Sandbox(
        SandboxSettings(
            domains=[DOMAIN],
            api_key=MAILGUN_KEY,
            signing_key=SIGNING_KEY,
            event_delay=0.02,
            retry_scale=0.001,
        )
    )
    answers: list[str] = []

    def record(response: httpx.Response) -> None:
        response.read()
        answers.append(json.dumps(dict(response.headers)) + response.text)

    with serve_asgi(sandbox.asgi()) as sandbox_url:
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        log = tmp_path / "serve.log"
        env = {k: v for k, v in os.environ.items() if not k.startswith(("TIDINGS_", "MAILGUN_"))}
        env.update(
            TIDINGS_API_KEY=TIDINGS_KEY,
            TIDINGS_LOG_LEVEL="debug",
            TIDINGS_PUBLIC_URL=url,
            MAILGUN_API_KEY=MAILGUN_KEY,
            MAILGUN_DOMAIN=DOMAIN,
            MAILGUN_HOST=sandbox_url,
            MAILGUN_WEBHOOK_SIGNING_KEY=SIGNING_KEY,
            TIDINGS_RETRY_BASE_S="0.05",
            TIDINGS_POLL_INTERVAL_S="0.2",
            TIDINGS_POLL_TRUST_S="0.5",
        )
        proc = subprocess.Popen(
            [sys.executable, "-m", "tidings.cli", "serve", "--port", str(port)],
            cwd=tmp_path,
            env=env,
            stdout=log.open("wb"),
            stderr=subprocess.STDOUT,
        )
        try:
            client = httpx.Client(
                base_url=url,
                headers={"Authorization": f"Bearer {TIDINGS_KEY}"},
                event_hooks={"response": [record]},
                timeout=30,
            )
            deadline = time.monotonic() + 60  # a loaded machine starts slowly
            while True:
                try:
                    if client.get("/health").status_code == 200:
                        break
                except httpx.HTTPError:
                    assert time.monotonic() < deadline, log.read_text(errors="replace")
                    assert proc.poll() is None, log.read_text(errors="replace")
                    time.sleep(0.1)
            providers = client.get("/providers").json()["results"]
            provider_id = providers[0]["id"]
            client.get(f"/providers/{provider_id}")
            client.post(f"/providers/{provider_id}/connect")
            client.get(f"/providers/{provider_id}/doctor")
            ids = []
            for to in ("a@example.test", "b+bounce@example.test", "c+click@example.test"):
                ids.append(
                    client.post(
                        "/send",
                        json={
                            "message": {
                                "to": {"email": to},
                                "content": {"title": "Hi", "body": "there"},
                            }
                        },
                    ).json()["requestId"]
                )
            # A send whose override carries a (wrong) key, and one that pastes the real key.
            ids.append(
                client.post(
                    "/send",
                    json={
                        "message": {
                            "to": {"email": "d@example.test"},
                            "content": {"title": "t", "body": "b"},
                            "providers": {
                                "mailgun": {
                                    "override": {
                                        "config": {"apiKey": "key-wrongWrongWrong0000"},
                                        "body": {"v:note": MAILGUN_KEY},
                                    }
                                }
                            },
                        }
                    },
                ).json()["requestId"]
            )
            client.post("/send", json={"message": {"to": {"email": "bad"}}})
            client.get("/messages", headers={"Authorization": "Bearer wrong"})
            # Until every message has been tried and a signed webhook came back: the log then
            # holds the send, webhook and polling paths.
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and not (
                "webhook accepted" in log.read_text(errors="replace")
                and all(client.get(f"/messages/{i}").json()["status"] != "ENQUEUED" for i in ids)
            ):
                time.sleep(0.05)
            client.get("/messages")
            for message_id in ids:
                client.get(f"/messages/{message_id}")
                client.get(f"/messages/{message_id}/history")
                client.get(f"/messages/{message_id}/output")
            client.get("/suppressions")
            client.get("/openapi.json")
            login = client.post("/ui/login", data={"key": TIDINGS_KEY}, follow_redirects=False)
            assert login.status_code == 303
            client.cookies = login.cookies
            for page in (
                "/ui/",
                f"/ui/messages/{ids[0]}",
                f"/ui/messages/{ids[3]}",
                "/ui/providers",
                f"/ui/providers/{provider_id}",
            ):
                assert client.get(page).status_code == 200, page
            client.close()
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=30)
        logs = log.read_text(errors="replace")

    assert len(answers) > 30
    assert "webhook accepted" in logs  # the run did exercise the webhook path
    for secret in (TIDINGS_KEY, MAILGUN_KEY, SIGNING_KEY):
        for answer in answers:
            assert secret not in answer, f"secret ending {secret[-4:]} in an API answer"
        assert secret not in logs, f"secret ending {secret[-4:]} in the logs"
    # Nor does any history entry, attempt record or status event in the database (the
    # providers table holds the configuration's keys, and a message's payload what its sender
    # wrote, both needed to send).
    import sqlite3

    db = sqlite3.connect(tmp_path / "tidings.db")
    for table in ("history", "attempts", "status_events", "unmatched_events"):
        dump = json.dumps(db.execute(f"select * from {table}").fetchall(), default=str)
        for secret in (TIDINGS_KEY, MAILGUN_KEY, SIGNING_KEY):
            assert secret not in dump, f"secret ending {secret[-4:]} in table {table}"


# -- a database error with a per-message key in the message ---------------------------------

OVERRIDE_KEY = "key-overrideOnlyInTheMessage0123456789WXYZ"
REFUSED = "refused@example.test"


def _serve(workdir: Path, **env_extra: str) -> tuple[subprocess.Popen[bytes], Path, str]:
    """`tidings serve` in sandbox mode; its stdout and stderr go to a file."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = workdir / f"serve-{port}.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TIDINGS_", "MAILGUN_"))}
    env.update(TIDINGS_API_KEY=TIDINGS_KEY, TIDINGS_LOG_LEVEL="debug", **env_extra)
    proc = subprocess.Popen(
        [sys.executable, "-m", "tidings.cli", "serve", "--port", str(port)],
        cwd=workdir,
        env=env,
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                return proc, log, url
        except httpx.HTTPError:
            pass
        assert proc.poll() is None, log.read_text(errors="replace")
        time.sleep(0.1)
    proc.kill()
    raise AssertionError("tidings serve did not start:\n" + log.read_text(errors="replace"))


def _send_with_override_key(url: str, to: str) -> httpx.Response:
    return httpx.post(
        f"{url}/send",
        headers={"Authorization": f"Bearer {TIDINGS_KEY}"},
        json={
            "message": {
                "to": {"email": to},
                "content": {"title": "t", "body": "b"},
                "providers": {"mailgun": {"override": {"config": {"apiKey": OVERRIDE_KEY}}}},
            }
        },
        timeout=30,
    )


def _assert_key_kept_out(logs: str) -> None:
    assert "IntegrityError" in logs, logs[-3000:]  # the failure was logged...
    # ...without the key: nothing of it but, at most, its last four characters.
    assert OVERRIDE_KEY[:-4] not in logs, "the per-message key is in the log"
    assert OVERRIDE_KEY[:12] not in logs
    assert TIDINGS_KEY not in logs


def test_a_database_error_does_not_log_a_per_message_key_sqlite(tmp_path: Path) -> None:
    """A real SQLite error: a trigger refuses one recipient's row (as a constraint would)."""
    import sqlite3

    proc, log, url = _serve(tmp_path)
    try:
        db = sqlite3.connect(tmp_path / "tidings.db")
        db.execute(
            "CREATE TRIGGER refuse_one BEFORE INSERT ON messages "
            f"WHEN NEW.recipient_email = '{REFUSED}' "
            "BEGIN SELECT RAISE(ABORT, 'this recipient is refused by a trigger'); END"
        )
        db.commit()
        db.close()
        answer = _send_with_override_key(url, REFUSED)
        assert answer.status_code >= 500, answer.text
        assert OVERRIDE_KEY not in answer.text
        # The database works for everyone else.
        assert _send_with_override_key(url, "fine@example.test").status_code == 202
    finally:
        stop(proc)
    _assert_key_kept_out(log.read_text(errors="replace"))


def test_a_database_error_does_not_log_a_per_message_key_postgres(
    tmp_path: Path, postgres_url: str
) -> None:
    """A real PostgreSQL error whose text quotes the whole row ("Failing row contains ...",
    the message's payload with its key among it): a CHECK constraint refuses one recipient."""
    import asyncio

    import asyncpg
    import sqlalchemy as sa

    proc, log, url = _serve(tmp_path, TIDINGS_DATABASE_URL=postgres_url)
    try:
        dsn = sa.make_url(postgres_url).set(drivername="postgresql")

        async def constrain() -> None:
            conn = await asyncpg.connect(dsn.render_as_string(hide_password=False))
            try:
                await conn.execute(
                    "ALTER TABLE messages ADD CONSTRAINT refuse_one "
                    f"CHECK (recipient_email IS DISTINCT FROM '{REFUSED}')"
                )
            finally:
                await conn.close()

        asyncio.run(constrain())
        answer = _send_with_override_key(url, REFUSED)
        assert answer.status_code >= 500, answer.text
        assert OVERRIDE_KEY not in answer.text
        assert _send_with_override_key(url, "fine@example.test").status_code == 202
    finally:
        stop(proc)
    _assert_key_kept_out(log.read_text(errors="replace"))
