"""Access, tried from outside as a hostile client would: a thousand wrong keys against a real
`tidings serve`, and the embedded sandbox's keys and inspection APIs.

Prints its figures (for docs/RELIABILITY.md).
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.processes import wait_healthy
from tests.support.servers import free_port
from tidings.app import StartupReport, _announce
from tidings.config import Settings
from tidings.runtime import Runtime
from tidings.sandbox import DEFAULT_API_KEY, DEFAULT_SIGNING_KEY
from tidings.store.database import Database
from tidings.store.keyring import KeyRing

API_KEY = "tk_access_test_0123456789abcdefghij"
GUESSES = 1000
BURST, PER_MINUTE = 10, 10.0  # the defaults (TIDINGS_AUTH_FAIL_BURST, ..._PER_MINUTE)


class Serve:
    """`tidings serve` in sandbox mode (the embedded default), output in a file."""

    def __init__(self, workdir: Path, port: int | None = None, **env_extra: str) -> None:
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = workdir / f"serve-{self.port}-{time.monotonic_ns()}.log"
        env = {k: v for k, v in os.environ.items() if not k.startswith(("TIDINGS_", "MAILGUN_"))}
        env.update(TIDINGS_API_KEY=API_KEY, TIDINGS_LOG_LEVEL="info", **env_extra)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tidings.cli", "serve", "--port", str(self.port)],
            cwd=workdir,
            env=env,
            stdout=self.log.open("wb"),
            stderr=subprocess.STDOUT,
        )
        wait_healthy(self.url, self.proc, self.log, timeout=60)

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def client(url: str, source: str = "127.0.0.1", **headers: str) -> httpx.Client:
    return httpx.Client(
        base_url=url,
        headers=headers,
        transport=httpx.HTTPTransport(local_address=source),
        timeout=30,
    )


def sandbox_settings_in(db_file: Path) -> dict[str, Any]:
    with closing(sqlite3.connect(db_file)) as db:
        (raw,) = db.execute("select settings from providers where origin = 'sandbox'").fetchone()
    settings: dict[str, Any] = json.loads(raw)
    return settings


def basic(key: str) -> str:
    return "Basic " + base64.b64encode(f"api:{key}".encode()).decode()


def test_a_thousand_wrong_guesses(tmp_path: Path) -> None:
    served = Serve(tmp_path)
    guesses = [f"tk_guess_{n:04d}_{'x' * 24}" for n in range(GUESSES)]
    try:
        started = time.monotonic()

        local = threading.local()
        made: list[httpx.Client] = []

        def guess(key: str) -> int:
            if not hasattr(local, "http"):  # one keep-alive connection per thread
                local.http = client(served.url)
                made.append(local.http)
            http: httpx.Client = local.http
            return http.get("/messages", headers={"Authorization": f"Bearer {key}"}).status_code

        with ThreadPoolExecutor(8) as pool:
            codes = list(pool.map(guess, guesses))
        for http in made:
            http.close()
        elapsed = time.monotonic() - started
        with client(served.url, Authorization=f"Bearer {API_KEY}") as right:
            right_while_throttled = right.get("/messages").status_code
            login_while_throttled = right.post("/ui/login", data={"key": API_KEY}).status_code
        with client(served.url, "127.0.0.2", Authorization=f"Bearer {API_KEY}") as other:
            other_address = other.get("/messages").status_code
    finally:
        served.stop()
    checked, refused = codes.count(401), codes.count(429)
    print(
        f"\n{GUESSES} wrong keys from one address in {elapsed:.1f} s "
        f"({GUESSES / elapsed:.0f}/s): {checked} answered 401 (the key was looked at), "
        f"{refused} answered 429 (refused unseen); then the right key from that address: "
        f"{right_while_throttled}, the login form: {login_while_throttled}, the right key "
        f"from another address: {other_address}"
    )
    assert checked + refused == GUESSES
    # The burst, plus what refilled while the guesses ran (one per 60/PER_MINUTE seconds).
    assert BURST <= checked <= BURST + int(elapsed * PER_MINUTE / 60) + 1
    assert right_while_throttled == 429 and login_while_throttled == 429
    assert other_address == 200
    logs = served.output()
    episodes = [line for line in logs.splitlines() if "too many wrong keys" in line]
    assert len(episodes) == 1, episodes  # once per episode, not once per refusal
    assert "127.0.0.1" in episodes[0]
    assert not any(key in logs for key in guesses)  # never the key tried
    assert not any(key[:12] in logs for key in guesses)


def test_the_embedded_sandbox_keeps_its_keys_and_its_inbox_to_itself(tmp_path: Path) -> None:
    served = Serve(tmp_path)
    try:
        banner = served.output()
        assert "The sandbox is loopback-only" in banner
        stored = sandbox_settings_in(tmp_path / "tidings.db")
        api_key, signing_key = stored["api_key"], stored["webhook_signing_key"]
        assert api_key != DEFAULT_API_KEY and signing_key != DEFAULT_SIGNING_KEY
        assert len(api_key) >= 32 and len(signing_key) >= 32
        signing = "/sandbox/v5/accounts/http_signing_key"
        with client(served.url) as local:
            # The well-known default key opens nothing; the installation's own key does.
            assert (
                local.get(signing, headers={"Authorization": basic(DEFAULT_API_KEY)}).status_code
                == 401
            )
            answer = local.get(signing, headers={"Authorization": basic(api_key)})
            assert answer.json()["http_signing_key"] == signing_key
            # On this machine the inbox and the inspection API answer...
            assert local.get("/sandbox/api/messages").status_code == 200
            assert local.get("/sandbox/").status_code == 200
            # ...to a client elsewhere (here seen through a proxy on this machine, which
            # uvicorn trusts by default to name the client), they do not.
            away = {"X-Forwarded-For": "203.0.113.9"}
            refusals = [
                local.get("/sandbox/api/messages", headers=away).status_code,
                local.delete("/sandbox/api/messages", headers=away).status_code,
                local.post("/sandbox/api/faults", json={"drop_rate": 1}, headers=away).status_code,
                local.get("/sandbox/api/stats", headers=away).status_code,
                local.get("/sandbox/", headers=away).status_code,
                local.get("/sandbox/messages/1", headers=away).status_code,
            ]
            assert refusals == [403] * 6
            assert local.get("/sandbox/api/faults").json()["drop_rate"] == 0
            # Mail still goes through it, and its signed webhooks are taken.
            sent = local.post(
                "/send",
                headers={"Authorization": f"Bearer {API_KEY}"},
                json={
                    "message": {
                        "to": {"email": "ann@example.test"},
                        "content": {"title": "t", "body": "b"},
                    }
                },
            )
            assert sent.status_code == 202, sent.text
            message_id = sent.json()["requestId"]
            deadline = time.monotonic() + 30
            while True:
                status = local.get(
                    f"/messages/{message_id}", headers={"Authorization": f"Bearer {API_KEY}"}
                ).json()["status"]
                if status == "DELIVERED" or time.monotonic() > deadline:
                    break
                time.sleep(0.05)
            assert status == "DELIVERED"
    finally:
        served.stop()
    print(f"\nsandbox: default key refused, inspection from elsewhere: {refusals}")

    # A database from before: the sandbox's configuration holds the public default keys.
    with closing(sqlite3.connect(tmp_path / "tidings.db")) as db:
        old = {**stored, "api_key": DEFAULT_API_KEY, "webhook_signing_key": DEFAULT_SIGNING_KEY}
        db.execute("update providers set settings = ? where origin = 'sandbox'", (json.dumps(old),))
        db.commit()
    again = Serve(tmp_path)
    try:
        renewed = sandbox_settings_in(tmp_path / "tidings.db")
        assert renewed["api_key"] not in (DEFAULT_API_KEY, api_key)
        assert renewed["webhook_signing_key"] not in (DEFAULT_SIGNING_KEY, signing_key)
        with client(again.url) as local:
            signing_answer = local.get(
                "/sandbox/v5/accounts/http_signing_key",
                headers={"Authorization": basic(renewed["api_key"])},
            )
            assert signing_answer.json()["http_signing_key"] == renewed["webhook_signing_key"]
    finally:
        again.stop()
    # Kept once made: a restart does not change them again.
    assert sandbox_settings_in(tmp_path / "tidings.db")["api_key"] == renewed["api_key"]


def test_the_operator_may_expose_the_sandbox_and_is_told(tmp_path: Path) -> None:
    served = Serve(tmp_path, TIDINGS_SANDBOX_EXPOSE="1")
    try:
        assert "TIDINGS_SANDBOX_EXPOSE is on" in served.output()
        with client(served.url) as local:
            away = {"X-Forwarded-For": "203.0.113.9"}
            assert local.get("/sandbox/api/messages", headers=away).status_code == 200
    finally:
        served.stop()


@pytest.mark.parametrize(
    ("host", "said"),
    [("0.0.0.0", "the API itself listens on 0.0.0.0, open to the network"), ("127.0.0.1", "")],
)
def test_serving_on_every_interface_says_the_sandbox_stays_local(
    host: str, said: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """What `tidings serve --host 0.0.0.0` prints in sandbox mode (the announcement itself,
    without listening on every interface of the test machine)."""
    settings = Settings(host=host, api_key=API_KEY, sandbox=True)
    db = Database("sqlite+aiosqlite:///:memory:")
    rt = Runtime(settings=settings, db=db, keyring=KeyRing(API_KEY, []), sandbox_mode=True)
    _announce(rt, StartupReport(announce=True, sandbox_mode=True))
    asyncio.run(db.close())
    text = " ".join(capsys.readouterr().err.split())
    assert "The sandbox is loopback-only" in text
    assert "answer only clients on this machine" in text
    assert (said in text) if said else ("open to the network" not in text)
    assert re.search(r"TIDINGS_SANDBOX_EXPOSE=1", text)
