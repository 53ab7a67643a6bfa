"""Disk full on SQLite: the server's own database lives on a small tmpfs that the test fills
to the last byte (a real ENOSPC, so a real SQLITE_FULL). /send answers 503 with Retry-After
and Courier's body, nothing is half-written, and once space is freed sending resumes by
itself. The figures are printed."""

from __future__ import annotations

import contextlib
import errno
import sqlite3
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import RunningSandbox, RunningTidings
from tests.e2e.conftest import mailgun_sandbox as mailgun_sandbox
from tests.e2e.conftest import start_tidings as start_tidings


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    mount = tmp_path / "disk"
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=32m", "tmpfs", str(mount)],
        capture_output=True,
        check=False,
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root): {done.stderr.decode().strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def fill(directory: Path) -> Path:
    """Write a file until the file system has no byte left."""
    filler = directory / "filler"
    with filler.open("wb", buffering=0) as out:
        for size in (1024 * 1024, 4096, 1):
            with contextlib.suppress(OSError):
                while True:
                    out.write(b"\0" * size)
    return filler


def send(server: RunningTidings, **headers: str) -> Any:
    with server.http() as http:
        return http.post(
            "/send",
            json={
                "message": {
                    "to": {"email": "jane@example.com"},
                    "content": {"title": "Hello", "body": "x" * 2000},
                }
            },
            headers=headers,
        )


def test_disk_full_answers_503_and_sending_resumes_by_itself(
    start_tidings: Callable[..., RunningTidings],
    mailgun_sandbox: RunningSandbox,
    small_disk: Path,
) -> None:
    database = small_disk / "tidings.db"
    server = start_tidings(database_url=f"sqlite+aiosqlite:///{database}")
    server.add_provider(mailgun_sandbox, alias="main")
    before = [send(server).json()["requestId"] for _ in range(5)]
    for message_id in before:
        assert server.wait_status(message_id, "SENT", "DELIVERED")["status"] != "ENQUEUED"

    filler = fill(small_disk)
    with pytest.raises(OSError) as full:
        (small_disk / "probe").write_bytes(b"x" * 4096)
    assert full.value.errno == errno.ENOSPC

    refused = 0
    accepted_while_full = 0
    for attempt in range(40):
        answer = send(server, **({"Idempotency-Key": "during-full"} if attempt == 0 else {}))
        if answer.status_code == 202:
            # SQLite may still fit a small write in pages it already has; that is a real
            # commit, and must then be there.
            accepted_while_full += 1
            continue
        assert answer.status_code == 503, answer.text
        body = answer.json()
        assert body["type"] == "api_error" and "disk space" in body["message"], body
        assert int(answer.headers["retry-after"]) > 0
        refused += 1
    assert refused > 0

    with server.http() as http:
        listed = http.get("/messages", params={"limit": 500}).json()["results"]
    conn = sqlite3.connect(f"file:{database}?mode=ro", uri=True)
    integrity = conn.execute("PRAGMA integrity_check").fetchone()[0]
    rows = conn.execute("SELECT count(*) FROM messages").fetchone()[0]
    conn.close()
    assert integrity == "ok"
    assert rows == len(listed) == len(before) + accepted_while_full

    filler.unlink()
    freed_at = time.monotonic()
    tries = 0
    while True:
        tries += 1
        answer = send(server, **{"Idempotency-Key": "during-full"})
        if answer.status_code == 202:
            break
        assert answer.status_code == 503 and time.monotonic() - freed_at < 60, answer.text
        time.sleep(0.1)
    resumed_after = time.monotonic() - freed_at
    # The key refused while the disk was full was never stored: this is a fresh send.
    after = [answer.json()["requestId"], *(send(server).json()["requestId"] for _ in range(4))]
    sent = [server.wait_status(m, "SENT", "DELIVERED")["status"] for m in after]
    print(
        f"\ndisk full (tmpfs 32 MB): {refused} of 40 sends answered 503 with Retry-After, "
        f"{accepted_while_full} committed in pages SQLite already had; integrity_check "
        f"{integrity}; {rows} rows = {len(listed)} listed. After freeing: first 202 after "
        f"{tries} tries ({resumed_after:.2f} s), {sent.count('SENT') + sent.count('DELIVERED')}"
        f" of {len(after)} new messages sent"
    )
    assert all(s in ("SENT", "DELIVERED") for s in sent), sent
