"""Signed Mailgun webhooks, end to end: the sandbox posts them to the URL Tidings generated."""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from tests.e2e.conftest import RunningSandbox, RunningTidings

DOMAIN = "mg.tidings.test"
KINDS = (
    "delivered",
    "permanent_fail",
    "temporary_fail",
    "opened",
    "clicked",
    "complained",
    "unsubscribed",
)


@pytest.fixture
def webhook_only(
    start_tidings: Callable[..., RunningTidings], mailgun_sandbox: RunningSandbox
) -> tuple[RunningTidings, str]:
    """Tidings with polling off and its webhook URL registered at the sandbox."""
    server = start_tidings()
    url = server.add_provider(mailgun_sandbox, domain=DOMAIN, polling="off")["webhook_url"]
    auth = ("api", mailgun_sandbox.settings.api_key)
    for kind in KINDS:
        created = httpx.post(
            f"{mailgun_sandbox.url}/v3/domains/{DOMAIN}/webhooks",
            data={"id": kind, "url": url},
            auth=auth,
        )
        assert created.status_code == 200, created.text
    return server, url


SCENARIOS: dict[str, tuple[str, str | None]] = {
    "plain": ("DELIVERED", None),
    "bounce": ("UNDELIVERABLE", "BOUNCED"),
    "nomx": ("UNDELIVERABLE", "BOUNCED"),
    "defer": ("DELIVERED", None),
    "open": ("OPENED", None),
    "click": ("CLICKED", None),
    "complain": ("DELIVERED", None),
    "unsubscribe": ("DELIVERED", None),
}


def test_every_scenario_settles_through_webhooks_alone(
    webhook_only: tuple[RunningTidings, str], mailgun_sandbox: RunningSandbox
) -> None:
    server, _ = webhook_only
    client = server.courier()
    ids: dict[str, str] = {}
    for name in [*SCENARIOS, "silent"]:
        address = "w@example.test" if name == "plain" else f"w+{name}@example.test"
        ids[name] = client.send.message(
            message={"to": {"email": address}, "content": {"title": name, "body": "b"}}
        ).request_id
    for name, (status, reason) in SCENARIOS.items():
        details = server.wait_for(
            ids[name],
            lambda d, s=status, n=name: (
                d["status"] == s and (s != "DELIVERED" or _history_has(server, ids[n], n))
            ),
        )
        assert details["status"] == status, (name, details)
        assert details["reason"] == reason, (name, details)
    types = {name: [h["type"] for h in server.history(mid)] for name, mid in ids.items()}
    assert "TEMPORARY_FAILURE" in types["defer"]
    assert "COMPLAINED" in types["complain"]
    assert "UNSUBSCRIBED" in types["unsubscribe"]
    bounce = server.wait_status(ids["bounce"], "UNDELIVERABLE")
    assert "550" in json.dumps(
        [h for h in server.history(ids["bounce"]) if h["type"] == "UNDELIVERABLE"]
    )
    assert bounce["delivered"] is None
    opened = server.wait_status(ids["open"], "OPENED")
    assert opened["delivered"] is not None and opened["opened"] >= opened["delivered"]
    clicked = server.wait_status(ids["click"], "CLICKED")
    assert clicked["clicked"] is not None
    assert server.wait_status(ids["silent"], "SENT")["status"] == "SENT"
    # Polling is off: the sandbox never saw an Events API request.
    requests = mailgun_sandbox.stats()["requests"]
    assert not [route for route in requests if "/events" in route]

    with server.http() as http:
        listed = {s["address"]: s["reason"] for s in http.get("/suppressions").json()["results"]}
    assert listed["w+bounce@example.test"] == "bounce"
    assert listed["w+complain@example.test"] == "complaint"
    assert listed["w+unsubscribe@example.test"] == "unsubscribe"

    # A later send to a suppressed address ends without calling Mailgun.
    before = len(mailgun_sandbox.messages())
    again = client.send.message(
        message={"to": {"email": "w+bounce@example.test"}, "content": {"title": "t", "body": "b"}}
    ).request_id
    details = server.wait_status(again, "UNDELIVERABLE")
    assert details["reason"] == "BOUNCED"
    assert "suppression list" in details["error"]
    assert len(mailgun_sandbox.messages()) == before
    with server.http() as http:
        assert http.delete("/suppressions/w+bounce@example.test").status_code == 204
        assert http.get("/suppressions/w+bounce@example.test").status_code == 404


def _history_has(server: RunningTidings, message_id: str, name: str) -> bool:
    wanted = {
        "defer": "TEMPORARY_FAILURE",
        "complain": "COMPLAINED",
        "unsubscribe": "UNSUBSCRIBED",
    }.get(name)
    return wanted is None or wanted in [h["type"] for h in server.history(message_id)]


def _signed(
    key: str, event: dict[str, Any], *, ts: float | None = None, token: str | None = None
) -> dict[str, Any]:
    timestamp = str(int(ts if ts is not None else time.time()))
    token = token or secrets.token_hex(25)
    signature = hmac.new(key.encode(), (timestamp + token).encode(), hashlib.sha256).hexdigest()
    return {
        "signature": {"timestamp": timestamp, "token": token, "signature": signature},
        "event-data": event,
    }


def _delivered_event(message_id: str, provider_id: str, domain: str = DOMAIN) -> dict[str, Any]:
    return {
        "event": "delivered",
        "id": secrets.token_hex(8),
        "timestamp": time.time(),
        "recipient": "x@example.test",
        "domain": {"name": domain},
        "message": {"headers": {"message-id": provider_id}},
        "user-variables": {"tidings-id": message_id},
        "delivery-status": {"code": 250, "message": "OK"},
    }


def test_forged_replayed_stale_and_wrong_domain_are_refused(
    webhook_only: tuple[RunningTidings, str], mailgun_sandbox: RunningSandbox
) -> None:
    server, url = webhook_only
    client = server.courier()
    message_id = client.send.message(
        message={"to": {"email": "x+silent@example.test"}, "content": {"title": "t", "body": "b"}}
    ).request_id
    sent = server.wait_status(message_id, "SENT")
    reference = client.messages.retrieve(message_id).providers[0]["reference"]  # type: ignore[index]
    key = mailgun_sandbox.settings.signing_key
    event = _delivered_event(message_id, reference)

    forged = _signed("not-the-key", event)
    assert httpx.post(url, json=forged).status_code in (401, 406)
    stale = _signed(key, event, ts=time.time() - 3600)
    assert httpx.post(url, json=stale).status_code == 406
    wrong = _signed(key, _delivered_event(message_id, reference, domain="evil.test"))
    assert httpx.post(url, json=wrong).status_code == 406
    assert httpx.post(url + "x", json=_signed(key, event)).status_code == 406
    after = server.wait_status(message_id, "SENT")
    assert after["status"] == "SENT"
    assert after["delivered"] is None and sent["delivered"] is None
    assert [h["type"] for h in server.history(message_id)] == [
        h["type"] for h in server.history(message_id) if h["type"] != "DELIVERED"
    ]

    good = _signed(key, event)
    assert httpx.post(url, json=good).status_code == 200
    replay = dict(good, **{"event-data": {**event, "id": "another"}})
    assert httpx.post(url, json=replay).status_code == 406
    details = server.wait_status(message_id, "DELIVERED")
    assert details["status"] == "DELIVERED"
    delivered = [h for h in server.history(message_id) if h["type"] == "DELIVERED"]
    assert len(delivered) == 1
    assert "signature" not in json.dumps(delivered[0]["raw"])


def test_legacy_form_webhook_is_accepted(
    webhook_only: tuple[RunningTidings, str], mailgun_sandbox: RunningSandbox
) -> None:
    server, url = webhook_only
    client = server.courier()
    message_id = client.send.message(
        message={"to": {"email": "y+silent@example.test"}, "content": {"title": "t", "body": "b"}}
    ).request_id
    server.wait_status(message_id, "SENT")
    reference = client.messages.retrieve(message_id).providers[0]["reference"]  # type: ignore[index]
    timestamp, token = str(int(time.time())), secrets.token_hex(25)
    # Legacy webhooks were signed with the API key.
    signature = hmac.new(
        mailgun_sandbox.settings.api_key.encode(), (timestamp + token).encode(), hashlib.sha256
    ).hexdigest()
    answer = httpx.post(
        url,
        data={
            "event": "delivered",
            "recipient": "y+silent@example.test",
            "domain": DOMAIN,
            "Message-Id": f"<{reference}>",
            "timestamp": timestamp,
            "token": token,
            "signature": signature,
        },
    )
    assert answer.status_code == 200, answer.text
    assert server.wait_status(message_id, "DELIVERED")["status"] == "DELIVERED"


def test_no_signing_key_refuses_everything(
    start_tidings: Callable[..., RunningTidings], mailgun_sandbox: RunningSandbox
) -> None:
    server = start_tidings()
    with server.http() as http:
        url = http.post(
            "/providers",
            json={
                "provider": "mailgun",
                "settings": {
                    "api_key": "k" * 20,
                    "domain": DOMAIN,
                    "host": mailgun_sandbox.url,
                    "polling": "off",
                },
            },
        ).json()["webhook_url"]
    body = _signed(mailgun_sandbox.settings.signing_key, _delivered_event("m", "p@" + DOMAIN))
    assert httpx.post(url, json=body).status_code == 401


def test_event_for_unknown_message_is_kept_as_unmatched(
    webhook_only: tuple[RunningTidings, str], mailgun_sandbox: RunningSandbox
) -> None:
    server, url = webhook_only
    event = _delivered_event("not-a-tidings-id", "unknown-123@" + DOMAIN)
    assert (
        httpx.post(url, json=_signed(mailgun_sandbox.settings.signing_key, event)).status_code
        == 200
    )
    with server.http() as http:
        unmatched = http.get("/events/unmatched").json()["results"]
    assert [u["reference"] for u in unmatched] == ["unknown-123@" + DOMAIN]
    assert unmatched[0]["event"] == "delivered" and unmatched[0]["source"] == "webhook"
