"""Signed webhooks while PostgreSQL is stopped: a burst that arrives during the outage is
answered 5xx as a whole (nothing half-recorded, no token spent), so Mailgun's retries of the
very same webhooks are accepted once the database is back; what was answered 200 before
the outage stays recorded. Webhooks of a burst share group commits (tidings.api.webhooks)."""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx

from tests.reliability.conftest import (
    API_KEY,
    DOMAIN,
    SANDBOX_SIGNING_KEY,
    Cluster,
    PgCluster,
    ready,
    wait_until,
)

MESSAGES = 24


def _signed(event: dict[str, Any]) -> bytes:
    timestamp, token = str(int(time.time())), secrets.token_hex(25)
    signature = hmac.new(
        SANDBOX_SIGNING_KEY.encode(), (timestamp + token).encode(), hashlib.sha256
    ).hexdigest()
    body = {
        "signature": {"timestamp": timestamp, "token": token, "signature": signature},
        "event-data": event,
    }
    return json.dumps(body).encode()


def _delivered(message_id: str, reference: str) -> dict[str, Any]:
    return {
        "event": "delivered",
        "id": secrets.token_hex(8),
        "timestamp": time.time(),
        "recipient": "x+silent@example.test",
        "domain": {"name": DOMAIN},
        "message": {"headers": {"message-id": reference}},
        "user-variables": {"tidings-id": message_id},
        "delivery-status": {"code": 250, "message": "OK"},
    }


def _post_all(url: str, bodies: list[bytes]) -> list[int | None]:
    """POST every body at once (16 at a time): the server groups what arrives together."""

    def post(body: bytes) -> int | None:
        try:
            return httpx.post(
                url, content=body, headers={"Content-Type": "application/json"}, timeout=60
            ).status_code
        except httpx.HTTPError:
            return None

    with ThreadPoolExecutor(16) as pool:
        return list(pool.map(post, bodies))


def test_webhooks_during_a_postgres_outage_are_5xx_and_their_retries_are_accepted(
    pg_cluster: PgCluster, make_cluster: Callable[[str], Cluster]
) -> None:
    cluster = make_cluster(pg_cluster.url)
    worker = cluster.worker("worker")
    _, api_url = cluster.serve()
    cluster.add_provider(api_url)
    cluster.wait_started(worker)
    http = httpx.Client(base_url=api_url, headers={"Authorization": f"Bearer {API_KEY}"})
    hook_path = http.get("/providers").json()["results"][0]["webhook_url"].split("/webhooks/")[1]
    hook = f"{api_url}/webhooks/{hook_path}"

    ids = [
        http.post(
            "/send",
            json={
                "message": {
                    "to": {"email": "x+silent@example.test"},
                    "content": {"title": f"t{n}", "body": "b"},
                }
            },
        ).json()["requestId"]
        for n in range(MESSAGES)
    ]

    def references() -> dict[str, str] | None:
        found = {}
        for message_id in ids:
            details = http.get(f"/messages/{message_id}").json()
            if details["status"] != "SENT":
                return None
            found[message_id] = details["providers"][0]["reference"]
        return found

    sent = wait_until(references, 120, "every message to be SENT", 0.5)
    bodies = {message_id: _signed(_delivered(message_id, ref)) for message_id, ref in sent.items()}
    before, during = ids[: MESSAGES // 2], ids[MESSAGES // 2 :]

    assert _post_all(hook, [bodies[m] for m in before]) == [200] * len(before)

    pg_cluster.stop()
    try:
        answers = _post_all(hook, [bodies[m] for m in during])
    finally:
        pg_cluster.start()
    # Mailgun retries anything but a 2xx (or 406): each must be a 5xx, none a 200 or a 4xx.
    assert all(a is not None and 500 <= a < 600 for a in answers), answers

    wait_until(lambda: ready(api_url) == 200, 60, "/health/ready to be 200 again")
    # Mailgun's retry is the same body (same token, same signature): nothing was spent.
    assert _post_all(hook, [bodies[m] for m in during]) == [200] * len(during)
    # And a retry of one already accepted is a replay.
    assert _post_all(hook, [bodies[before[0]]]) == [406]

    for message_id in ids:
        assert http.get(f"/messages/{message_id}").json()["status"] == "DELIVERED", message_id
        history = http.get(f"/messages/{message_id}/history").json()["results"]
        assert [h["type"] for h in history].count("DELIVERED") == 1, history
