"""The front door: `tidings serve` on its embedded default (SQLite + sandbox), and the CLI."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.processes import wait_healthy
from tests.support.servers import free_port

TIDINGS = [sys.executable, "-m", "tidings.cli"]


def _clean_env(**extra: str) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("TIDINGS_", "MAILGUN_", "COURIER_"))
    }
    env.update(extra)
    return env


class Served:
    def __init__(self, workdir: Path, port: int, **env: str) -> None:
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.log = workdir / f"serve-{port}-{time.monotonic_ns()}.log"
        self.proc = subprocess.Popen(
            [*TIDINGS, "serve", "--port", str(port)],
            cwd=workdir,
            env=_clean_env(TIDINGS_LOG_LEVEL="info", **env),
            stdout=self.log.open("wb"),
            stderr=subprocess.STDOUT,
        )
        wait_healthy(self.url, self.proc, self.log, timeout=30)

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def stop(self) -> None:
        """SIGTERM: the server stops claiming, finishes or releases in-flight work, exits."""
        self.proc.send_signal(signal.SIGTERM)
        code = self.proc.wait(timeout=30)
        # uvicorn re-raises the signal it caught once shutdown is complete.
        assert code in (0, -signal.SIGTERM), self.output()
        assert "dispatcher stopped" in self.output()


@pytest.fixture
def workdir(tmp_path: Path) -> Iterator[Path]:
    yield tmp_path


def test_serve_sandbox_mode_and_cli_send(workdir: Path) -> None:
    port = free_port()
    served = Served(workdir, port)
    try:
        banner = served.output()
        assert "Sandbox mode" in banner
        keys = re.findall(r"\btk_[A-Za-z0-9_-]{20,}", banner)
        assert len(keys) == 1
        key = keys[0]
        assert (workdir / "tidings.db").exists()

        sent = subprocess.run(
            [
                *TIDINGS,
                "send",
                "--to",
                "ann+open@example.test",
                "--title",
                "Hi {{name}}",
                "--body",
                "Welcome",
                "--data",
                "name=Ann",
                "--tag",
                "cli",
                "--wait",
            ],
            env=_clean_env(TIDINGS_URL=served.url, TIDINGS_API_KEY=key),
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert sent.returncode == 0, sent.stderr
        labelled = dict(line.split(None, 1) for line in sent.stdout.splitlines())
        message_id = labelled["requestId"]
        assert labelled["waiting"].startswith("until DELIVERED")
        # Polled, so it may see OPENED (delivered, then opened) without DELIVERED itself.
        assert sent.stdout.splitlines()[-1] in ("status     DELIVERED", "status     OPENED")
        headers = {"Authorization": f"Bearer {key}"}
        deadline = time.monotonic() + 20
        status = None
        while time.monotonic() < deadline:
            status = httpx.get(f"{served.url}/messages/{message_id}", headers=headers).json()[
                "status"
            ]
            if status == "OPENED":
                break
            time.sleep(0.1)
        assert status == "OPENED"  # events came back from the embedded sandbox
        inbox = httpx.get(f"{served.url}/sandbox/api/messages").json()
        assert inbox[0]["subject"] == "Hi Ann"
        assert httpx.get(f"{served.url}/sandbox/").status_code == 200
        # A real configuration added through the API takes over as the default.
        created = httpx.post(
            f"{served.url}/providers",
            headers=headers,
            json={
                "provider": "mailgun",
                "settings": {"api_key": "key-new-000000000", "domain": "mg.new.test"},
            },
        ).json()
        assert created["default"] is True
        listed = httpx.get(f"{served.url}/providers", headers=headers).json()["results"]
        assert [p["default"] for p in listed if p["origin"] == "sandbox"] == [False]
        assert (
            httpx.get(f"{served.url}/messages", headers={"Authorization": "Bearer no"}).status_code
            == 401
        )
    finally:
        served.stop()

    # A second start keeps the key (only its hash was stored) and prints none.
    again = Served(workdir, port)
    try:
        assert not re.findall(r"\btk_[A-Za-z0-9_-]{20,}", again.output())
        assert httpx.get(f"{again.url}/messages", headers=headers).status_code == 200
    finally:
        again.stop()
    assert key not in (workdir / "tidings.db").read_bytes().decode("latin-1")


def test_sigterm_ends_open_status_streams(workdir: Path) -> None:
    """An SSE client must not hold the server's shutdown for uvicorn's 30 s grace period."""
    import threading

    port = free_port()
    served = Served(workdir, port)
    key = re.findall(r"\btk_[A-Za-z0-9_-]{20,}", served.output())[0]
    lines: list[str] = []

    def follow() -> None:
        with httpx.stream(
            "GET",
            f"{served.url}/messages/stream",
            headers={"Authorization": f"Bearer {key}"},
            timeout=None,
        ) as stream:
            for line in stream.iter_lines():
                lines.append(line)

    reader = threading.Thread(target=follow, daemon=True)
    reader.start()
    deadline = time.monotonic() + 10
    while not lines and time.monotonic() < deadline:
        time.sleep(0.05)
    assert lines, "the stream never started"
    served.proc.send_signal(signal.SIGTERM)
    served.proc.wait(timeout=20)  # well under uvicorn's 30 s graceful timeout
    reader.join(timeout=5)
    assert not reader.is_alive()  # the stream ended with the server


def test_going_real_after_trying_the_sandbox(workdir: Path) -> None:
    """Try it in sandbox mode, then set MAILGUN_* and restart: mail goes to Mailgun (here a
    standalone sandbox standing in for it), not to the sandbox that is no longer mounted."""
    from tests.support.servers import serve_asgi
    from tidings.sandbox import Sandbox, SandboxSettings

    port = free_port()
    first = Served(workdir, port)
    key = re.findall(r"\btk_[A-Za-z0-9_-]{20,}", first.output())[0]
    first.stop()
    mailgun = Sandbox(SandboxSettings(domains=["mg.real.test"], api_key="key-real-000000000"))
    with serve_asgi(mailgun.asgi()) as mailgun_url:
        served = Served(
            workdir,
            port,
            MAILGUN_API_KEY="key-real-000000000",
            MAILGUN_DOMAIN="mg.real.test",
            MAILGUN_HOST=mailgun_url,
        )
        try:
            assert "Sandbox mode" not in served.output()
            assert httpx.get(f"{served.url}/sandbox/api/messages").status_code == 404
            headers = {"Authorization": f"Bearer {key}"}
            answer = httpx.post(
                f"{served.url}/send",
                headers=headers,
                json={
                    "message": {
                        "to": {"email": "real@example.test"},
                        "content": {"title": "t", "body": "b"},
                    }
                },
            )
            message_id = answer.json()["requestId"]
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline:
                status = httpx.get(f"{served.url}/messages/{message_id}", headers=headers).json()
                if status["status"] != "ENQUEUED":
                    break
                time.sleep(0.1)
            assert status["status"] in ("SENT", "DELIVERED"), status
            copies = httpx.get(f"{mailgun_url}/sandbox/api/messages").json()
            assert [c["domain"] for c in copies] == ["mg.real.test"]
        finally:
            served.stop()


def test_a_port_in_use_fails_before_anything_is_made(workdir: Path) -> None:
    import socket

    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen(1)
        port = holder.getsockname()[1]
        result = subprocess.run(
            [*TIDINGS, "serve", "--port", str(port)],
            cwd=workdir,
            env=_clean_env(),
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert result.returncode == 1
    assert result.stderr.startswith(f"error: cannot listen on 127.0.0.1:{port}")
    assert result.stderr.count("\n") == 1
    assert not re.findall(r"\btk_[A-Za-z0-9_-]{20,}", result.stdout + result.stderr)
    assert list(workdir.iterdir()) == []  # no database, so the next start shows its key


def test_keys_made_and_revoked_while_the_server_runs(workdir: Path) -> None:
    """A lost first key is no dead end: `tidings keys create` (no server involved) makes one
    that the running server accepts at once; `revoke` shuts it out again."""
    served = Served(workdir, free_port())
    try:
        made = subprocess.run(
            [*TIDINGS, "keys", "create", "--name", "laptop"],
            cwd=workdir,
            env=_clean_env(),
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert made.returncode == 0, made.stderr
        key = made.stdout.strip()
        headers = {"Authorization": f"Bearer {key}"}
        assert httpx.get(f"{served.url}/messages", headers=headers).status_code == 200
        listed = subprocess.run(
            [*TIDINGS, "keys", "list", "--json"],
            cwd=workdir,
            env=_clean_env(),
            capture_output=True,
            text=True,
            timeout=60,
        )
        names = {k["name"]: k for k in json.loads(listed.stdout)}
        assert set(names) == {"generated at first start", "laptop"}
        deadline = time.monotonic() + 20
        while names["laptop"]["last_used"] is None and time.monotonic() < deadline:
            time.sleep(0.1)  # recorded in the background, off the request
            listed = subprocess.run(
                [*TIDINGS, "keys", "list", "--json"],
                cwd=workdir,
                env=_clean_env(),
                capture_output=True,
                text=True,
                timeout=60,
            )
            names = {k["name"]: k for k in json.loads(listed.stdout)}
        assert names["laptop"]["last_used"] is not None

        revoked = subprocess.run(
            [*TIDINGS, "keys", "revoke", "laptop"],
            cwd=workdir,
            env=_clean_env(),
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert revoked.returncode == 0, revoked.stderr
        deadline = time.monotonic() + 20
        status = 200
        while status == 200 and time.monotonic() < deadline:
            status = httpx.get(f"{served.url}/messages", headers=headers).status_code
            time.sleep(0.1)
        assert status == 401
    finally:
        served.stop()
