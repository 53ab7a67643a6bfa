"""Status: signed Mailgun webhooks ingested per second, and Events API calls to settle.

Webhooks, per database: ``tidings serve`` sends N messages to the sandbox (whose own events
are an hour away, so it posts nothing itself); once all are SENT, the bench builds two
events per message as Mailgun posts them (``delivered`` then ``opened``, each with its
``tidings-id`` user variable and the message id Mailgun gave), signs each as Mailgun does
(hex HMAC-SHA256 of ``timestamp + token`` with the HTTP webhook signing key, a fresh token
each) and posts them to the configuration's webhook URL from 32 keep-alive connections. Each
one is verified, its token checked once (replay refusal: the dedup), matched, recorded and
the message's status updated before the answer. The baseline, in the same run, is the same
bodies posted to a bare endpoint of the same stack (bench/_bare.py: read the body, answer
200). On SQLite and on PostgreSQL (a scratch database per run).

Events API: ``bench/poll_settle.py`` (SQLite, polling alone, no webhooks) settles
``--settle-messages`` messages and counts the Events API requests; its baseline is the
fewest pages the events it polled for can fit in (300 a page).

    python bench/status.py [--messages 2500] [--connections 32] [--settle-messages 1000]

Writes bench/results/status.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import secrets
import subprocess
import sys
import time
from typing import Any

import _harness as h
import httpx


def wait_all_sent(running: h.Stack, limit_s: float = 600) -> None:
    """Until no message is ENQUEUED any more (the API's own view)."""
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        answer = httpx.get(
            f"{running.tidings_url}/messages",
            params={"status": "ENQUEUED", "limit": 1},
            headers=running.headers,
            timeout=30,
        )
        if not answer.json()["results"]:
            return
        time.sleep(0.2)
    raise RuntimeError("messages still ENQUEUED")


def event(kind: str, tidings_id: str, mailgun_id: str, recipient: str) -> dict[str, Any]:
    return {
        "event": kind,
        "id": secrets.token_hex(11),
        "timestamp": time.time(),
        "recipient": recipient,
        "domain": {"name": h.DOMAIN},
        "message": {"headers": {"message-id": mailgun_id}},
        "user-variables": {"tidings-id": tidings_id},
        **({"delivery-status": {"code": 250, "message": "OK"}} if kind == "delivered" else {}),
    }


def webhook_bodies(sandbox_url: str, n: int) -> list[bytes]:
    copies = httpx.get(f"{sandbox_url}/sandbox/api/messages", params={"limit": n}, timeout=60)
    sent = [
        (copy["variables"]["tidings-id"], copy["id"], copy["recipient"]) for copy in copies.json()
    ]
    if len(sent) != n:
        raise RuntimeError(f"the sandbox holds {len(sent)} messages, not {n}")
    return [
        h.signed_webhook(event(kind, tid, mid, rcpt))
        for kind in ("delivered", "opened")
        for tid, mid, rcpt in sent
    ]


async def post(url: str, bodies: list[bytes], connections: int, label: str) -> h.Load:
    with h.progress() as bar:
        return await h.post_all(
            url,
            bodies,
            headers={"Content-Type": "application/json"},
            connections=connections,
            progress=bar,
            label=label,
        )


def opened(running: h.Stack) -> int:
    """How many of (at most) the first page of 100 messages are OPENED: a sanity check that
    the webhooks did update the statuses (the API pages at 100)."""
    answer = httpx.get(
        f"{running.tidings_url}/messages",
        params={"status": "OPENED", "limit": 100},
        headers=running.headers,
        timeout=60,
    )
    return len(answer.json().get("results", []))


def settle(messages: int) -> dict[str, Any]:
    h.console.print(f"poll_settle.py: settling {messages} messages by polling (quiet)")
    done = subprocess.run(
        [sys.executable, str(h.BENCH / "poll_settle.py"), "--messages", str(messages)],
        capture_output=True,
        text=True,
    )
    if done.returncode:
        raise RuntimeError(f"poll_settle.py failed: {done.stderr[-3000:]}")
    result: dict[str, Any] = json.loads((h.RESULTS / "poll_settle.json").read_text())
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=2500, help="two webhooks each")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--settle-messages", type=int, default=1000, help="0: skip")
    h.add_database_args(parser)
    args = parser.parse_args()
    load = h.warn_if_loaded()
    n, c = args.messages, args.connections
    results: dict[str, Any] = {}
    rows: list[list[object]] = []
    for backend in h.backends(args):
        with h.database(backend, args.postgres) as url, h.stack(url) as running:
            bodies = [h.send_body(i, tag="silent") for i in range(n)]
            headers = {**running.headers, "Content-Type": "application/json"}
            with h.progress() as bar:
                asyncio.run(
                    h.post_all(
                        f"{running.tidings_url}/send",
                        bodies,
                        headers=headers,
                        connections=c,
                        progress=bar,
                        label=f"{backend}: sending the messages",
                    )
                )
            wait_all_sent(running)
            hooks = webhook_bodies(running.sandbox_url, n)
            with h.bare_endpoint() as bare_url:
                bare = asyncio.run(
                    post(f"{bare_url}/webhooks/bare", hooks, c, f"{backend}: bare endpoint")
                )
            providers = httpx.get(
                f"{running.tidings_url}/providers", headers=running.headers, timeout=30
            ).json()["results"]
            ours = asyncio.run(
                post(providers[0]["webhook_url"], hooks, c, f"{backend}: Tidings webhooks")
            )
            now_opened = opened(running)
        entry = {
            "messages": n,
            "webhooks": len(hooks),
            "bare_endpoint": bare.summary(),
            "tidings": ours.summary(),
            "opened_in_first_page_of_100_after": now_opened,
            "ratio_vs_bare": h.ratio(ours.rate, bare.rate),
        }
        results[backend] = entry
        rows.append(
            [
                f"{backend}: webhooks/s",
                round(bare.rate, 1),
                round(ours.rate, 1),
                entry["ratio_vs_bare"],
                f"p50 {ours.pct_ms(50)} / p99 {ours.pct_ms(99)} ms; {ours.failed} refused",
            ]
        )
    if args.settle_messages:
        polled = settle(args.settle_messages)
        results["events_api_settle"] = polled
        rows.append(
            [
                f"sqlite: Events API calls, {polled['messages']} messages",
                polled["min_pages"],
                polled["events_api_requests"],
                h.ratio(polled["events_api_requests"], max(polled["min_pages"], 1)),
                f"{polled['unsettled']} unsettled after {polled['settle_s']} s",
            ]
        )
    h.console.print(
        h.table(
            f"status ingestion, {c} connections",
            ["measure", "baseline", "Tidings", "ratio", "notes"],
            rows,
        )
    )
    quick = n < 1000 or 0 < args.settle_messages < 1000
    h.write_result("status", {"connections": c, **results}, load, quick=quick)


if __name__ == "__main__":
    main()
