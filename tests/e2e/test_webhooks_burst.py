"""A burst of signed webhooks posted at once, as Mailgun does under load: on SQLite they
share group commits (tidings.api.webhooks), and a webhook refused in a group (a replay of a
token, a forged signature) costs its neighbours nothing; duplicates are recorded once,
events for unknown messages are kept as unmatched, every message ends in the right state."""

from __future__ import annotations

import secrets
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx

from tests.e2e.conftest import RunningSandbox, RunningTidings
from tests.e2e.test_webhooks import DOMAIN, _delivered_event, _signed

MESSAGES = 12


def _post_all(url: str, bodies: list[dict[str, Any]]) -> list[int]:
    with ThreadPoolExecutor(32) as pool:
        return list(
            pool.map(lambda body: httpx.post(url, json=body, timeout=60).status_code, bodies)
        )


def test_a_burst_of_webhooks_with_replays_duplicates_forgeries_and_strangers(
    start_tidings: Callable[..., RunningTidings], mailgun_sandbox: RunningSandbox
) -> None:
    server = start_tidings()
    url = server.add_provider(mailgun_sandbox, domain=DOMAIN, polling="off")["webhook_url"]
    key = mailgun_sandbox.settings.signing_key
    client = server.courier()
    ids = [
        client.send.message(
            message={
                "to": {"email": f"x{n}+silent@example.test"},
                "content": {"title": "t", "body": "b"},
            }
        ).request_id
        for n in range(MESSAGES)
    ]
    references: dict[str, str] = {}
    for message_id in ids:
        server.wait_status(message_id, "SENT")
        providers = client.messages.retrieve(message_id).providers
        references[message_id] = str(providers[0]["reference"])  # type: ignore[index]

    bodies: list[dict[str, Any]] = []
    kinds: list[str] = []
    for message_id, reference in references.items():
        event = _delivered_event(message_id, reference)
        good = _signed(key, event)
        bodies += [good, good]  # the same webhook twice: one is a replay
        kinds += ["token", "token"]
        bodies.append(_signed(key, event))  # the same event, a new token: a duplicate
        kinds.append("duplicate")
        bodies.append(_signed("not-the-key", event))
        kinds.append("forged")
        stranger = _delivered_event(f"nobody-{message_id}", f"{secrets.token_hex(6)}@{DOMAIN}")
        bodies.append(_signed(key, stranger))
        kinds.append("stranger")

    answers = _post_all(url, bodies)

    by_kind: dict[str, Counter[int]] = {}
    for kind, answer in zip(kinds, answers, strict=True):
        by_kind.setdefault(kind, Counter())[answer] += 1
    assert by_kind["token"] == Counter({200: MESSAGES, 406: MESSAGES})
    assert by_kind["duplicate"] == Counter({200: MESSAGES})
    assert by_kind["forged"] == Counter({401: MESSAGES})
    assert by_kind["stranger"] == Counter({200: MESSAGES})

    for message_id in ids:
        assert server.wait_status(message_id, "DELIVERED")["status"] == "DELIVERED"
        types = [h["type"] for h in server.history(message_id)]
        assert types.count("DELIVERED") == 1, types
    with server.http() as http:
        unmatched = http.get("/events/unmatched", params={"limit": 100}).json()["results"]
    assert len(unmatched) == MESSAGES
    assert {u["source"] for u in unmatched} == {"webhook"}
