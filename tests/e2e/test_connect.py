"""``POST /providers/{id}/connect`` against the sandbox: what it registers, what it keeps, what
it refuses, and that the events of a sent message then arrive by webhook alone."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest

from tests.e2e.conftest import RunningSandbox, RunningTidings
from tidings.providers.mailgun.connect import WEBHOOK_KINDS

DOMAIN = "mg.tidings.test"


def _hooks(sandbox: RunningSandbox, domain: str = DOMAIN) -> dict[str, list[str]]:
    answer = httpx.get(
        f"{sandbox.url}/v3/domains/{domain}/webhooks", auth=("api", sandbox.settings.api_key)
    )
    answer.raise_for_status()
    return {kind: value["urls"] for kind, value in answer.json()["webhooks"].items()}


def _add_provider(server: RunningTidings, sandbox: RunningSandbox, **settings: Any) -> Any:
    values = {
        "api_key": sandbox.settings.api_key,
        "domain": DOMAIN,
        "host": sandbox.url,
        "webhook_signing_key": sandbox.settings.signing_key,
        **settings,
    }
    with server.http() as http:
        answer = http.post("/providers", json={"provider": "mailgun", "settings": values})
    assert answer.status_code == 200, answer.text
    return answer.json()


def test_connect_registers_every_kind_and_is_idempotent(
    tidings_with_mailgun: RunningTidings, mailgun_sandbox: RunningSandbox
) -> None:
    with tidings_with_mailgun.http() as http:
        url = http.get("/providers/main").json()["webhook_url"]
        first = http.post("/providers/main/connect")
        assert first.status_code == 200, first.text
        report = first.json()
        assert report["url"] == url
        assert report["domain"] == DOMAIN
        assert report["domain_state"] == "active"
        assert report["host"] == mailgun_sandbox.url
        assert report["route"] == f"direct to {mailgun_sandbox.url}"
        assert report["registered"] == list(WEBHOOK_KINDS)
        assert report["already"] == [] and report["complete"] is True
        assert {item["action"] for item in report["webhooks"]} == {"created"}

        # Visible through Mailgun's own webhooks API, for exactly these kinds.
        assert _hooks(mailgun_sandbox) == {kind: [url] for kind in WEBHOOK_KINDS}

        second = http.post("/providers/main/connect").json()
        assert second["registered"] == []
        assert second["already"] == list(WEBHOOK_KINDS)
        assert _hooks(mailgun_sandbox) == {kind: [url] for kind in WEBHOOK_KINDS}


def test_connect_keeps_other_urls_and_leaves_full_kinds_alone(
    tidings_with_mailgun: RunningTidings, mailgun_sandbox: RunningSandbox
) -> None:
    auth = ("api", mailgun_sandbox.settings.api_key)
    base = f"{mailgun_sandbox.url}/v3/domains/{DOMAIN}/webhooks"
    other = "https://other.example.test/hooks/mailgun"
    three = [f"https://other.example.test/{i}" for i in range(3)]
    assert httpx.post(base, data={"id": "delivered", "url": other}, auth=auth).status_code == 200
    assert httpx.post(base, data={"id": "clicked", "url": three}, auth=auth).status_code == 200
    with tidings_with_mailgun.http() as http:
        answer = http.post("/providers/main/connect")
    assert answer.status_code == 200, answer.text
    report = answer.json()
    url = report["url"]
    actions = {item["kind"]: item["action"] for item in report["webhooks"]}
    assert actions["delivered"] == "added"
    assert actions["clicked"] == "full"
    assert actions["permanent_fail"] == "created"
    assert report["full"] == ["clicked"] and report["complete"] is False
    hooks = _hooks(mailgun_sandbox)
    assert hooks["delivered"] == [other, url]
    assert hooks["clicked"] == three


def test_connect_unknown_domain_says_wrong_domain_or_region(
    tidings_with_mailgun: RunningTidings, mailgun_sandbox: RunningSandbox
) -> None:
    stored = _add_provider(tidings_with_mailgun, mailgun_sandbox, domain="nope.tidings.test")
    with tidings_with_mailgun.http() as http:
        answer = http.post(f"/providers/{stored['id']}/connect")
    assert answer.status_code == 400
    body = answer.json()
    assert body["type"] == "invalid_request_error"
    assert body["message"].startswith("wrong domain or region: domain nope.tidings.test not found")
    assert mailgun_sandbox.url in body["message"]
    # Nothing was registered anywhere.
    assert _hooks(mailgun_sandbox) == {}


def test_connect_wrong_key_says_key_or_region_and_hides_the_key(
    tidings_with_mailgun: RunningTidings, mailgun_sandbox: RunningSandbox
) -> None:
    bad_key = "key-wrong-0123456789abcdefWXYZ"
    stored = _add_provider(tidings_with_mailgun, mailgun_sandbox, api_key=bad_key)
    with tidings_with_mailgun.http() as http:
        answer = http.post(f"/providers/{stored['id']}/connect")
    assert answer.status_code == 400
    assert "wrong API key or wrong region" in answer.json()["message"]
    assert bad_key not in answer.text and bad_key[:-4] not in answer.text


def test_connect_unknown_provider_is_404(tidings_with_mailgun: RunningTidings) -> None:
    with tidings_with_mailgun.http() as http:
        answer = http.post("/providers/prv_nope/connect")
    assert answer.status_code == 404
    assert answer.json()["type"] == "invalid_request_error"


def test_connect_unreachable_mailgun_is_502(
    start_tidings: Callable[..., RunningTidings], mailgun_sandbox: RunningSandbox
) -> None:
    from tests.support.servers import free_port

    nowhere = f"http://127.0.0.1:{free_port()}"
    server = start_tidings(provider_hosts=nowhere)  # the operator's own (down) host
    stored = _add_provider(server, mailgun_sandbox, host=nowhere)
    with server.http() as http:
        answer = http.post(f"/providers/{stored['id']}/connect")
    assert answer.status_code == 502
    assert "could not reach Mailgun" in answer.json()["message"]


@pytest.mark.parametrize("recipient", ["connect+open@example.test"])
def test_after_connect_events_arrive_by_webhook_alone(
    start_tidings: Callable[..., RunningTidings],
    mailgun_sandbox: RunningSandbox,
    recipient: str,
) -> None:
    server = start_tidings()
    stored = _add_provider(server, mailgun_sandbox, polling="off")
    with server.http() as http:
        assert http.post(f"/providers/{stored['id']}/connect").status_code == 200
    message_id = (
        server.courier()
        .send.message(message={"to": {"email": recipient}, "content": {"title": "t", "body": "b"}})
        .request_id
    )
    details = server.wait_status(message_id, "OPENED")
    assert details["status"] == "OPENED", details
    assert details["delivered"] is not None
    # Polling is off: those events can only have come by webhook.
    assert not [route for route in mailgun_sandbox.stats()["requests"] if "/events" in route]
