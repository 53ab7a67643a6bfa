"""Events API requests needed to settle 1,000 messages by polling alone.

Starts a Mailgun sandbox (no webhooks registered) and a Tidings server on a fresh SQLite
database, both in-process under uvicorn on loopback; configures a Mailgun provider with
polling on; sends N messages through ``POST /send`` with a mix of recipient scenarios; waits
until every message has reached its final state; then reads the sandbox's request counters
for ``GET /v3/{domain}/events`` and ``GET /v3/{domain}/events/{token}``. Prints the figure
and writes bench/results/poll_settle.json.

"Settled" means: the status the scenario ends in (DELIVERED, OPENED, CLICKED, UNDELIVERABLE)
and, for +defer/+complain/+unsubscribe, the TEMPORARY_FAILURE/COMPLAINED/UNSUBSCRIBED history
entry too. ``+silent`` is left out of the mix: nothing ever settles it.

The polling settings are Tidings' defaults (15 s interval, 30 min trust threshold) unless
given; the cost is about one request per 300 events plus one per cycle, so the figure
depends on the number of events (the mix) far more than on the number of messages.

    python bench/poll_settle.py [--messages 1000] [--poll-interval 15] [--event-delay 0.1]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import platform
import socket
import sqlite3
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import httpx
import uvicorn

from tidings.app import build_app
from tidings.config import Settings
from tidings.sandbox import Sandbox, SandboxSettings

DOMAIN = "mg.bench.test"
API_KEY = "tk_bench_0123456789abcdef"
RESULTS = Path(__file__).parent / "results" / "poll_settle.json"
EVENTS_ROUTES = ("GET /v3/{domain}/events", "GET /v3/{domain}/events/{token}")

# tag -> (final status, history entry that must be there too, Events API events it makes
# apart from `accepted`, which the poller does not ask for)
SCENARIOS: dict[str, tuple[str, str | None, int]] = {
    "": ("DELIVERED", None, 1),
    "open": ("OPENED", None, 2),
    "click": ("CLICKED", None, 3),
    "bounce": ("UNDELIVERABLE", None, 1),
    "nomx": ("UNDELIVERABLE", None, 1),
    "defer": ("DELIVERED", "TEMPORARY_FAILURE", 2),
    "complain": ("DELIVERED", "COMPLAINED", 2),
    "unsubscribe": ("DELIVERED", "UNSUBSCRIBED", 2),
}


class _Server(uvicorn.Server):
    def install_signal_handlers(self) -> None:  # the main thread keeps its signals
        pass


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def serve(app: Any, port: int) -> Iterator[str]:
    config = uvicorn.Config(
        app, host="127.0.0.1", port=port, log_level="warning", access_log=False, lifespan="on"
    )
    server = _Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError(f"server on port {port} did not start")
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)


def recipients(count: int) -> list[tuple[str, str]]:
    """(address, tag) pairs, the scenarios in turn."""
    tags = list(SCENARIOS)
    out = []
    for n in range(count):
        tag = tags[n % len(tags)]
        local = f"user{n}+{tag}" if tag else f"user{n}"
        out.append((f"{local}@example.test", tag))
    return out


async def send_all(url: str, targets: list[tuple[str, str]], concurrency: int) -> dict[str, str]:
    """POST /send for each address; returns message id -> tag."""
    headers = {"Authorization": f"Bearer {API_KEY}"}
    slots = asyncio.Semaphore(concurrency)
    sent: dict[str, str] = {}
    async with aiohttp.ClientSession(headers=headers) as http:

        async def one(address: str, tag: str) -> None:
            body = {"message": {"to": {"email": address}, "content": {"title": "Hi", "body": "x"}}}
            async with slots, http.post(f"{url}/send", json=body) as answer:
                data = await answer.json()
                if answer.status != 202:
                    raise RuntimeError(f"/send answered {answer.status}: {data}")
                sent[str(data["requestId"])] = tag

        await asyncio.gather(*(one(address, tag) for address, tag in targets))
    return sent


def unsettled(db_path: Path, sent: dict[str, str]) -> int:
    with contextlib.closing(sqlite3.connect(db_path, timeout=30)) as db:
        status = dict(db.execute("SELECT id, status FROM messages"))
        entries = set(db.execute("SELECT message_id, type FROM history"))
    left = 0
    for message_id, tag in sent.items():
        final, needed = SCENARIOS[tag][:2]
        if status.get(message_id) != final or (needed and (message_id, needed) not in entries):
            left += 1
    return left


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--poll-interval", type=float, default=None, help="default: Tidings'")
    parser.add_argument("--poll-trust", type=float, default=None, help="default: Tidings'")
    parser.add_argument("--event-delay", type=float, default=0.1)
    parser.add_argument("--timeout", type=float, default=600.0)
    args = parser.parse_args()

    sandbox = Sandbox(SandboxSettings(domains=[DOMAIN], event_delay=args.event_delay, seed=1))
    tmp = Path(tempfile.mkdtemp(prefix="tidings-bench-"))
    db_path = tmp / "tidings.db"
    port = free_port()
    overrides: dict[str, Any] = {}
    if args.poll_interval is not None:
        overrides["poll_interval_s"] = args.poll_interval
    if args.poll_trust is not None:
        overrides["poll_trust_s"] = args.poll_trust
    settings = Settings(
        database_url=f"sqlite+aiosqlite:///{db_path}",
        api_key=API_KEY,
        public_url=f"http://127.0.0.1:{port}",
        host="127.0.0.1",
        port=port,
        sandbox=False,
        log_level="warning",
        # The sandbox is on loopback, which provider hosts given through the API may not be.
        allow_private_networks=True,
        **overrides,
    )
    app = asyncio.run(build_app(settings))
    targets = recipients(args.messages)
    expected_events = sum(SCENARIOS[tag][2] for _, tag in targets)

    with serve(sandbox.asgi(), free_port()) as sandbox_url, serve(app, port) as url:
        answer = httpx.post(
            f"{url}/providers",
            headers={"Authorization": f"Bearer {API_KEY}"},
            json={
                "provider": "mailgun",
                "settings": {
                    "api_key": sandbox.settings.api_key,
                    "domain": DOMAIN,
                    "host": sandbox_url,
                    "from_address": f"Bench <no-reply@{DOMAIN}>",
                    "polling": "on",
                },
            },
            timeout=30,
        )
        answer.raise_for_status()
        started = time.monotonic()
        sent = asyncio.run(send_all(url, targets, args.concurrency))
        sent_in = time.monotonic() - started
        left = len(sent)
        while left and time.monotonic() - started < args.timeout:
            time.sleep(0.5)
            left = unsettled(db_path, sent)
        settled_in = time.monotonic() - started
        stats = httpx.get(f"{sandbox_url}/sandbox/api/stats", timeout=30).json()
        log = sandbox.store.logs[DOMAIN].records
        kinds = Counter(record.item["event"] for record in log)

    per_route = {route: stats["requests"].get(route, {}) for route in EVENTS_ROUTES}
    requests = sum(sum(counts.values()) for counts in per_route.values())
    polled_events = sum(n for kind, n in kinds.items() if kind != "accepted")
    result = {
        "benchmark": "poll_settle",
        "when": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "python": platform.python_version(),
        "messages": len(sent),
        "mix": dict(Counter(tag or "deliver" for tag in sent.values())),
        "settled": len(sent) - left,
        "unsettled": left,
        "events_api_requests": requests,
        "events_api_requests_by_route": per_route,
        "target": 10,
        "events_in_log": dict(kinds),
        "events_polled_for": polled_events,
        "events_expected": expected_events,
        "min_pages": math.ceil(polled_events / 300),
        "send_s": round(sent_in, 2),
        "settle_s": round(settled_in, 2),
        "poll_interval_s": settings.poll_interval_s,
        "poll_trust_s": settings.poll_trust_s,
        "poll_overlap_s": settings.poll_overlap_s,
        "sandbox_event_delay_s": args.event_delay,
        "note": "polling alone (no webhooks); settle = every message in its scenario's final "
        "state; requests counted by the sandbox until then",
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print(
        f"{len(sent)} messages, {polled_events} events: settled {len(sent) - left} in "
        f"{settled_in:.1f} s with {requests} Events API requests (target <= 10; "
        f"at least {result['min_pages']} pages)"
    )
    if left:
        sys.exit(1)


if __name__ == "__main__":
    main()
