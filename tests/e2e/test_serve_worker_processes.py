"""`tidings serve --worker-processes N`: one command runs the API in its process and the
workers in N children on the same SQLite file; a child that dies is started again, and
the children stop with the server."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable
from pathlib import Path

import httpx

from tests.e2e.conftest import API_KEY, RunningSandbox, RunningTidings, Spawned
from tests.support.processes import wait_healthy
from tests.support.servers import free_port

SERVE = ("tidings", "serve", "--worker-processes", "2")


def _children(pid: int) -> list[int]:
    """The live `tidings worker` children of ``pid``."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        if int(fields[1]) == pid and fields[0] != "Z" and b"worker" in cmdline:
            found.append(int(entry.name))
    return sorted(found)


def _until(check: Callable[[], object], what: str, timeout: float = 90.0) -> object:
    deadline = time.monotonic() + timeout  # a safety net, not a timing check
    while True:
        value = check()
        if value:
            return value
        assert time.monotonic() < deadline, what
        time.sleep(0.1)


def _all_sent(server: RunningTidings, count: int) -> list[dict[str, object]]:
    with server.http() as http:
        rows: list[dict[str, object]] = http.get("/messages", params={"limit": 100}).json()[
            "results"
        ]
    if len(rows) == count and all(r["status"] in ("SENT", "DELIVERED") for r in rows):
        return rows
    return []


def test_workers_in_child_processes_send_each_message_once_and_come_back(
    spawn_tidings: Callable[..., Spawned], mailgun_sandbox: RunningSandbox
) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    api = spawn_tidings(
        SERVE,
        TIDINGS_HOST="127.0.0.1",
        TIDINGS_PORT=str(port),
        TIDINGS_API_KEY=API_KEY,
        TIDINGS_PUBLIC_URL=url,
        TIDINGS_SANDBOX="false",
        TIDINGS_LOG_LEVEL="info",
        TIDINGS_PROVIDER_HOSTS=mailgun_sandbox.url,
    )
    wait_healthy(url, api.proc, api.log, timeout=180)
    children = _until(lambda: len(_children(api.proc.pid)) == 2 and _children(api.proc.pid), "2")
    assert isinstance(children, list)

    server = RunningTidings(url, API_KEY, settings=None)  # type: ignore[arg-type]
    server.add_provider(mailgun_sandbox, polling="off")
    first = [{"email": f"child{i}@example.test"} for i in range(30)]
    with server.http() as http:
        answer = http.post(
            "/send",
            json={"message": {"to": first, "content": {"title": "Hi", "body": "from a child"}}},
        )
    assert answer.status_code == 202, answer.text
    _until(lambda: _all_sent(server, 30), api.output())
    output = api.output()
    assert output.count("dispatcher started") == 2, output  # in the children only
    assert output.count("worker process started") == 2, output

    # A child that dies is started again, and sending goes on.
    os.kill(children[0], signal.SIGKILL)
    _until(
        lambda: len(now := _children(api.proc.pid)) == 2 and children[0] not in now,
        "the killed worker was not started again:\n" + api.output(),
    )
    assert "worker process exited; starting it again" in api.output()
    _until(lambda: api.output().count("dispatcher started") == 3, "restarted:\n" + api.output())
    more = [{"email": f"again{i}@example.test"} for i in range(10)]
    with server.http() as http:
        answer = http.post(
            "/send", json={"message": {"to": more, "content": {"title": "Hi", "body": "again"}}}
        )
    assert answer.status_code == 202, answer.text
    _until(lambda: _all_sent(server, 40), api.output())
    copies = sorted(m["recipient"] for m in mailgun_sandbox.messages())
    assert copies == sorted(r["email"] for r in first + more)  # each exactly once

    # The children stop with the server.
    survivors = _children(api.proc.pid)
    api.proc.send_signal(signal.SIGTERM)
    api.proc.wait(timeout=90)
    assert not any(_alive(pid) for pid in survivors), "worker processes outlived the server"
    output = api.output()
    # Stopped by the server (they gave back their leases), not orphaned.
    assert output.count("dispatcher stopped") == 2, output  # the killed one never said it
    assert "the server that started this worker is gone" not in output


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def test_worker_processes_with_the_embedded_sandbox_are_refused(
    spawn_tidings: Callable[..., Spawned],
) -> None:
    port = free_port()
    api = spawn_tidings(SERVE, TIDINGS_HOST="127.0.0.1", TIDINGS_PORT=str(port))
    assert api.proc.wait(timeout=120) != 0
    output = api.output()
    assert (
        "--worker-processes (TIDINGS_WORKER_PROCESSES) cannot be used with the embedded sandbox"
        in output
    )
    assert "Traceback" not in output
    try:
        httpx.get(f"http://127.0.0.1:{port}/health", timeout=1)
    except httpx.HTTPError:
        pass
    else:
        raise AssertionError("the refused server is listening")
