"""Signed Mailgun webhooks ingested per second: verified, deduplicated, matched, recorded.

Starts the Mailgun sandbox and `tidings serve` (SQLite by default, or `--postgres URL`: a
fresh database is made there) as subprocesses, adds a Mailgun configuration with a signing
key, sends N/3 messages through `/send` and waits until they are SENT (so each has
Mailgun's id). Then N webhooks — delivered, opened, clicked for each message, signed as
Mailgun signs them (hex HMAC-SHA256 of timestamp + token with the signing key, a fresh
token each) — are posted from C keep-alive aiohttp clients to the configuration's webhook
URL, and every answer must be 200. Afterwards every message must be CLICKED with its three
history entries (checked through the API), so nothing counted was lost.

Baseline in the same run: the same clients post the same bodies to a bare endpoint of the
same stack (FastAPI under uvicorn, started from this file) that only reads and parses the
body. The ratio says how much of the stack's bare speed the whole ingest path keeps.

    python bench/webhooks_ingest.py [--webhooks 6000] [--clients 32] [--postgres URL]

Writes bench/results/webhooks_ingest[_postgres].json.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import hmac
import json
import os
import platform
import secrets
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

RESULTS = Path(__file__).parent / "results"
DOMAIN = "sandbox.tidings.test"
SANDBOX_KEY = "sandbox-api-key"
SIGNING_KEY = "bench-signing-key-0123456789abcdef"
API_KEY = "tk_bench_0123456789abcdef0123"
KINDS = ("delivered", "opened", "clicked")
# The sandbox posts no webhooks of its own during the run.
DELAY = ("--event-delay", "3600")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def baseline_app() -> FastAPI:
    """The bare endpoint: the same stack, reading and parsing the body, nothing more."""
    app = FastAPI()

    @app.post("/webhooks/{provider_key}/{token}")
    async def hook(provider_key: str, token: str, request: Request) -> JSONResponse:
        data = json.loads(await request.body())
        if not isinstance(data.get("signature"), dict):
            return JSONResponse({"message": "no signature"}, status_code=406)
        return JSONResponse({"message": "ok"})

    @app.get("/health")
    async def health() -> JSONResponse:
        return JSONResponse({"status": "ok"})

    return app


async def wait_http(url: str, limit_s: float = 60) -> None:
    deadline = time.monotonic() + limit_s
    async with aiohttp.ClientSession() as session:
        while time.monotonic() < deadline:
            try:
                async with session.get(url) as response:
                    if response.status < 500:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.1)
    raise RuntimeError(f"{url} did not come up")


def cpu_s(pid: int) -> float:
    """CPU seconds (user + system) process ``pid`` has used: on a shared machine, CPU per
    webhook says more than wall-clock rates do."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def signed(event: dict[str, Any]) -> bytes:
    timestamp = str(int(time.time()))
    token = secrets.token_hex(25)
    signature = hmac.new(
        SIGNING_KEY.encode(), (timestamp + token).encode(), hashlib.sha256
    ).hexdigest()
    return json.dumps(
        {
            "signature": {"timestamp": timestamp, "token": token, "signature": signature},
            "event-data": event,
        }
    ).encode()


def event_for(kind: str, message_id: str, reference: str, n: int) -> dict[str, Any]:
    event: dict[str, Any] = {
        "event": kind,
        "id": secrets.token_hex(11),
        "timestamp": time.time() - 60 + n * 0.001,
        "recipient": "bench@example.test",
        "domain": {"name": DOMAIN},
        "message": {"headers": {"message-id": reference}},
        "user-variables": {"tidings-id": message_id},
    }
    if kind == "delivered":
        event["delivery-status"] = {"code": 250, "message": "OK"}
    if kind == "clicked":
        event["url"] = "https://example.test/a"
    return event


async def post_all(url: str, bodies: list[bytes], clients: int) -> tuple[int, float, list[str]]:
    """POST every body once, from ``clients`` keep-alive clients; (ok, seconds, failures)."""
    ok = 0
    failures: list[str] = []
    queue = list(reversed(bodies))
    connector = aiohttp.TCPConnector(limit=clients)
    headers = {"Content-Type": "application/json"}
    async with aiohttp.ClientSession(connector=connector, headers=headers) as session:

        async def one_client() -> None:
            nonlocal ok
            while queue:
                body = queue.pop()
                async with session.post(url, data=body) as response:
                    text = await response.text()
                    if response.status == 200:
                        ok += 1
                    else:
                        failures.append(f"{response.status} {text[:200]}")

        started = time.monotonic()
        await asyncio.gather(*(one_client() for _ in range(clients)))
        elapsed = time.monotonic() - started
    return ok, elapsed, failures


async def create_messages(base: str, count: int, clients: int) -> list[tuple[str, str]]:
    """``count`` messages sent through /send, once SENT: (tidings id, Mailgun's id)."""
    headers = {"Authorization": f"Bearer {API_KEY}"}
    body = {
        "message": {
            "to": {"email": "bench+silent@example.test"},
            "content": {"title": "Hello", "body": "Your code is 1234."},
        }
    }
    ids: list[str] = []
    connector = aiohttp.TCPConnector(limit=clients)
    async with aiohttp.ClientSession(connector=connector, headers=headers) as session:

        async def one(_: int) -> None:
            async with session.post(f"{base}/send", json=body) as response:
                assert response.status == 202, await response.text()
                ids.append((await response.json())["requestId"])

        await asyncio.gather(*(one(i) for i in range(count)))
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline:
            async with session.get(
                f"{base}/messages", params={"status": "ENQUEUED", "limit": "1"}
            ) as r:
                if not (await r.json())["results"]:
                    break
            await asyncio.sleep(0.2)
        references: list[tuple[str, str]] = []
        semaphore = asyncio.Semaphore(clients)

        async def reference(message_id: str) -> None:
            async with semaphore, session.get(f"{base}/messages/{message_id}") as r:
                data = await r.json()
                assert data["status"] == "SENT", data
                references.append((message_id, data["providers"][0]["reference"]))

        await asyncio.gather(*(reference(i) for i in ids))
    return references


async def check_settled(base: str, messages: list[tuple[str, str]], clients: int) -> list[str]:
    """Messages whose status or history is not what the webhooks said."""
    wrong: list[str] = []
    semaphore = asyncio.Semaphore(clients)
    headers = {"Authorization": f"Bearer {API_KEY}"}
    async with aiohttp.ClientSession(headers=headers) as session:

        async def check(message_id: str) -> None:
            async with semaphore:
                async with session.get(f"{base}/messages/{message_id}") as r:
                    status = (await r.json())["status"]
                async with session.get(f"{base}/messages/{message_id}/history") as r:
                    types = [h["type"] for h in (await r.json())["results"]]
            want = {"DELIVERED", "OPENED", "CLICKED"}
            if status != "CLICKED" or not want <= set(types):
                wrong.append(f"{message_id}: {status} {types}")

        await asyncio.gather(*(check(m) for m, _ in messages))
    return wrong


def make_database(postgres: str) -> str:
    """A fresh PostgreSQL database for this run; its URL."""
    import asyncpg

    name = f"bench_hooks_{secrets.token_hex(4)}"
    plain = postgres.replace("postgresql+asyncpg://", "postgresql://")

    async def create() -> None:
        conn = await asyncpg.connect(plain)
        try:
            await conn.execute(f'CREATE DATABASE "{name}"')
        finally:
            await conn.close()

    asyncio.run(create())
    return postgres.rsplit("/", 1)[0] + "/" + name


def start(postgres: str | None) -> tuple[list[subprocess.Popen[bytes]], str, str, str]:
    workdir = Path(tempfile.mkdtemp(prefix="tidings-bench-hooks-"))
    sandbox_port, tidings_port, bare_port = free_port(), free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TIDINGS_", "MAILGUN_"))}
    sandbox = subprocess.Popen(
        [sys.executable, "-m", "tidings.cli", "sandbox", "--port", str(sandbox_port), *DELAY],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    tidings_env = {
        **env,
        "TIDINGS_API_KEY": API_KEY,
        "TIDINGS_LOG_LEVEL": "warning",
        "TIDINGS_SANDBOX": "false",
        "TIDINGS_PUBLIC_URL": f"http://127.0.0.1:{tidings_port}",
        "TIDINGS_POLL_INTERVAL_S": "3600",
        "TIDINGS_PROVIDER_HOSTS": f"http://127.0.0.1:{sandbox_port}",
    }
    if postgres:
        tidings_env["TIDINGS_DATABASE_URL"] = make_database(postgres)
    tidings = subprocess.Popen(
        [sys.executable, "-m", "tidings.cli", "serve", "--port", str(tidings_port)],
        cwd=workdir,
        env=tidings_env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    bare = subprocess.Popen(
        [sys.executable, __file__, "--serve-baseline", str(bare_port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    return (
        [tidings, sandbox, bare],
        f"http://127.0.0.1:{sandbox_port}",
        f"http://127.0.0.1:{tidings_port}",
        f"http://127.0.0.1:{bare_port}",
    )


async def measure(
    urls: tuple[str, str, str], pids: tuple[int, int], webhooks: int, clients: int
) -> dict[str, Any]:
    sandbox_url, tidings_url, bare_url = urls
    await wait_http(f"{sandbox_url}/sandbox/api/stats")
    await wait_http(f"{tidings_url}/health")
    await wait_http(f"{bare_url}/health")
    headers = {"Authorization": f"Bearer {API_KEY}"}
    async with aiohttp.ClientSession(headers=headers) as session:
        settings = {
            "api_key": SANDBOX_KEY,
            "domain": DOMAIN,
            "host": sandbox_url,
            "from_address": f"Bench <bench@{DOMAIN}>",
            "webhook_signing_key": SIGNING_KEY,
            "polling": "off",
        }
        async with session.post(
            f"{tidings_url}/providers", json={"provider": "mailgun", "settings": settings}
        ) as r:
            assert r.status == 200, await r.text()
            hook_url = (await r.json())["webhook_url"]
    path = hook_url.split("://", 1)[1].split("/", 1)[1]
    messages = await create_messages(tidings_url, max(1, webhooks // len(KINDS)), clients)
    events = [
        event_for(kind, message_id, reference, n)
        for n, kind in enumerate(KINDS)
        for message_id, reference in messages
    ]
    if os.environ.get("BENCH_PRINT_PIDS"):
        print("posting webhooks", flush=True)
    # Interleaved as Mailgun would send them: a message's events are not back to back.
    bodies = [signed(e) for e in events]
    cpu_before = cpu_s(pids[1])
    bare_ok, bare_s, bare_failed = await post_all(f"{bare_url}/{path}", bodies, clients)
    bare_cpu = cpu_s(pids[1]) - cpu_before
    bodies = [signed(e) for e in events]
    cpu_before = cpu_s(pids[0])
    ok, ingest_s, failed = await post_all(f"{tidings_url}/{path}", bodies, clients)
    tidings_cpu = cpu_s(pids[0]) - cpu_before
    if not ok or not bare_ok:
        raise RuntimeError(f"nothing accepted: {(failed + bare_failed)[:3]}")
    if os.environ.get("BENCH_PRINT_PIDS"):
        print("posted", flush=True)
    wrong = await check_settled(tidings_url, messages, clients)
    rate, bare_rate = ok / ingest_s, bare_ok / bare_s
    return {
        "clients": clients,
        "webhooks": len(events),
        "messages": len(messages),
        "baseline_bare_endpoint_per_s": round(bare_rate, 1),
        "tidings_webhooks_per_s": round(rate, 1),
        "ratio_vs_baseline": round(rate / bare_rate, 3),
        "baseline_cpu_ms_per_webhook": round(bare_cpu * 1000 / max(bare_ok, 1), 3),
        "tidings_cpu_ms_per_webhook": round(tidings_cpu * 1000 / max(ok, 1), 3),
        "cpu_ratio_vs_baseline": round(bare_cpu * ok / max(tidings_cpu * bare_ok, 1e-9), 3),
        "refused_or_failed": len(failed) + len(bare_failed),
        "first_failures": (failed + bare_failed)[:3],
        "messages_not_settled": len(wrong),
        "first_not_settled": wrong[:3],
        "load_average": os.getloadavg(),
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count()},
        "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--webhooks", type=int, default=6000)
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--postgres", help="a PostgreSQL URL to make a fresh database at")
    parser.add_argument("--serve-baseline", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_baseline:
        import uvicorn

        uvicorn.run(baseline_app(), host="127.0.0.1", port=args.serve_baseline, log_level="error")
        return
    procs, sandbox_url, tidings_url, bare_url = start(args.postgres)
    if os.environ.get("BENCH_PRINT_PIDS"):
        print(f"tidings pid {procs[0].pid}", flush=True)
    try:
        result = asyncio.run(
            measure(
                (sandbox_url, tidings_url, bare_url),
                (procs[0].pid, procs[2].pid),
                args.webhooks,
                args.clients,
            )
        )
    finally:
        for proc in procs:
            proc.terminate()
            proc.wait(timeout=30)
    result["database"] = "postgresql" if args.postgres else "sqlite"
    for key, value in result.items():
        print(f"{key:30} {value}")
    RESULTS.mkdir(parents=True, exist_ok=True)
    name = "webhooks_ingest_postgres.json" if args.postgres else "webhooks_ingest.json"
    (RESULTS / name).write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
