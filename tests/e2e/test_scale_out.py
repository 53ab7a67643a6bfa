"""The compose.yaml shape, with its very command lines: one `tidings serve --no-workers` and
two `tidings worker` processes on PostgreSQL, sharing nothing but the database."""

from __future__ import annotations

import time
from collections.abc import Callable

import httpx
from courier import Courier

from tests.e2e.conftest import API_KEY, RunningSandbox, RunningTidings, Spawned
from tests.support.processes import API, WORKER
from tests.support.servers import free_port


def test_an_api_process_and_two_workers_send_each_message_once(
    postgres_url: str,  # first: its database is dropped only after the processes stopped
    spawn_tidings: Callable[..., Spawned],
    mailgun_sandbox: RunningSandbox,
) -> None:
    port = free_port()
    shared = {
        "TIDINGS_DATABASE_URL": postgres_url,
        "TIDINGS_SANDBOX": "false",
        "TIDINGS_DISPATCH_IDLE_S": "0.2",
        "TIDINGS_LOG_LEVEL": "info",
        # As an operator would: the sandbox's base URL is a trusted provider host.
        "TIDINGS_PROVIDER_HOSTS": mailgun_sandbox.url,
    }
    api = spawn_tidings(
        API,
        TIDINGS_HOST="127.0.0.1",
        TIDINGS_PORT=str(port),
        TIDINGS_API_KEY=API_KEY,
        TIDINGS_PUBLIC_URL=f"http://127.0.0.1:{port}",
        **shared,
    )
    workers = [spawn_tidings(WORKER, **shared) for _ in range(2)]
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 180  # a safety net: a loaded machine starts slowly
    while True:
        try:
            if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        assert api.proc.poll() is None, api.output()
        assert time.monotonic() < deadline, [api.output()] + [w.output() for w in workers]
        time.sleep(0.1)
    for worker in workers:
        assert worker.proc.poll() is None, worker.output()

    server = RunningTidings(url, API_KEY, settings=None)  # type: ignore[arg-type]
    server.add_provider(mailgun_sandbox, polling="off")
    courier = Courier(api_key=API_KEY, base_url=url, max_retries=0)
    recipients = [{"email": f"scale{i}@example.test"} for i in range(30)]
    request_id = courier.send.message(
        message={"to": recipients, "content": {"title": "Hi", "body": "scaled out"}}
    ).request_id
    assert request_id

    rows: list[dict[str, object]] = []
    deadline = time.monotonic() + 120
    with server.http() as http:
        while time.monotonic() < deadline:
            rows = http.get("/messages", params={"limit": 100}).json()["results"]
            if len(rows) == 30 and all(r["status"] in ("SENT", "DELIVERED") for r in rows):
                break
            time.sleep(0.2)
    assert len(rows) == 30, rows
    assert {r["status"] for r in rows} <= {"SENT", "DELIVERED"}, [w.output() for w in workers]
    copies = sorted(m["recipient"] for m in mailgun_sandbox.messages())
    assert copies == sorted(r["email"] for r in recipients)  # each exactly once
    assert "dispatcher started" in workers[0].output() + workers[1].output()
    assert "dispatcher started" not in api.output()  # --no-workers
