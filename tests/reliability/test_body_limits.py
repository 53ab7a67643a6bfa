"""Size limits before reading, against `tidings serve` in its own process: a 400 MB chunked
POST to the webhook route is refused (413) while it streams in, and the server's memory
stays where it was. The figures (RSS before and after, peak growth) are printed."""

from __future__ import annotations

import os
import select
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.processes import wait_healthy
from tests.support.servers import free_port

API_KEY = "tk_test_0123456789abcdef"
MB = 1024 * 1024


def _memory(pid: int) -> dict[str, int]:
    """VmRSS (now) and VmHWM (peak) of a process, in bytes, from /proc."""
    values: dict[str, int] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, rest = line.partition(":")
        if name in ("VmRSS", "VmHWM"):
            values[name] = int(rest.split()[0]) * 1024
    return values


def post_chunked(port: int, path: str, total: int, content_type: str) -> tuple[int | None, int]:
    """Send ``total`` bytes as a chunked body, 64 KB at a time, watching for an early answer;
    return its status (None if none came) and how many bytes were sent before it."""
    chunk = b"x" * (64 * 1024)
    frame = b"%x\r\n" % len(chunk) + chunk + b"\r\n"
    sock = socket.create_connection(("127.0.0.1", port), timeout=30)
    sock.sendall(
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: {content_type}\r\n"
        "Transfer-Encoding: chunked\r\n\r\n".encode()
    )
    sent = 0
    try:
        while sent < total:
            readable, _, _ = select.select([sock], [], [], 0)
            if readable:
                break
            sock.sendall(frame)
            sent += len(chunk)
        else:
            sock.sendall(b"0\r\n\r\n")
    except (BrokenPipeError, ConnectionResetError, TimeoutError):
        pass
    data = b""
    try:
        while b"\r\n" not in data:
            more = sock.recv(65536)
            if not more:
                break
            data += more
    except (ConnectionResetError, TimeoutError):
        pass
    sock.close()
    status = int(data.split(b" ", 2)[1]) if data.startswith(b"HTTP/1.1 ") else None
    return status, sent


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[int, subprocess.Popen[bytes], str]]:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TIDINGS_", "MAILGUN_"))}
    env.update(
        TIDINGS_API_KEY=API_KEY,
        TIDINGS_DATABASE_URL=f"sqlite:///{tmp_path / 'tidings.db'}",
        TIDINGS_LOG_LEVEL="warning",
    )
    log = tmp_path / "serve.log"
    proc = subprocess.Popen(
        [sys.executable, "-m", "tidings.cli", "serve", "--port", str(port)],
        cwd=tmp_path,
        env=env,
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    wait_healthy(url, proc, log, timeout=60)
    # Sandbox mode: its configuration's webhook URL is a real one.
    providers = httpx.get(
        f"{url}/providers", headers={"Authorization": f"Bearer {API_KEY}"}, timeout=10
    ).json()["results"]
    webhook_path = httpx.URL(providers[0]["webhook_url"]).path
    try:
        yield port, proc, webhook_path
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)


def test_a_400_mb_chunked_webhook_is_refused_without_memory_growth(
    served: tuple[int, subprocess.Popen[bytes], str],
) -> None:
    port, proc, webhook_path = served
    # Warm the route up (imports, first connection) before the baseline.
    for _ in range(3):
        status, _ = post_chunked(port, webhook_path, 2 * MB, "application/json")
        assert status == 413
    before = _memory(proc.pid)
    results = {}
    for content_type in ("application/json", "multipart/form-data; boundary=x"):
        results[content_type] = post_chunked(port, webhook_path, 400 * MB, content_type)
    send_status, send_sent = post_chunked(port, "/send", 400 * MB, "application/json")
    after = _memory(proc.pid)
    peak_growth = after["VmHWM"] - before["VmHWM"]
    rss_growth = after["VmRSS"] - before["VmRSS"]
    for content_type, (status, sent) in results.items():
        print(
            f"\nwebhook, 400 MB chunked ({content_type}): answered {status} after "
            f"{sent / MB:.1f} MB sent"
        )
    print(f"/send, 400 MB chunked: answered {send_status} after {send_sent / MB:.1f} MB sent")
    print(
        f"server RSS before {before['VmRSS'] / MB:.1f} MB, after {after['VmRSS'] / MB:.1f} MB "
        f"(growth {rss_growth / MB:+.1f} MB); peak RSS growth {peak_growth / MB:+.1f} MB"
    )
    assert all(status == 413 for status, _ in results.values())
    assert send_status == 413
    assert all(sent < 50 * MB for _, sent in results.values())
    assert peak_growth < 10 * MB
    assert proc.poll() is None


def test_a_declared_length_over_the_limit_is_refused_before_any_body(
    served: tuple[int, subprocess.Popen[bytes], str],
) -> None:
    port, _proc, webhook_path = served
    for path in (webhook_path, "/send", "/profiles/jane", "/ui/login"):
        sock = socket.create_connection(("127.0.0.1", port), timeout=30)
        sock.sendall(
            f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            f"Authorization: Bearer {API_KEY}\r\nContent-Length: {400 * MB}\r\n\r\n".encode()
        )
        answer = b""
        while b"\r\n\r\n" not in answer:
            more = sock.recv(65536)
            assert more, answer
            answer += more
        sock.close()
        assert answer.startswith(b"HTTP/1.1 413 "), answer
        assert b"x-request-id" in answer.lower()
