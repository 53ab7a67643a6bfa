"""Hints for Mailgun's known failures, attached to the message wherever the error is shown."""

from __future__ import annotations

from collections.abc import Callable

from tests.e2e.conftest import RunningSandbox, RunningTidings


def _hint_of(server: RunningTidings, message_id: str) -> str:
    details = server.wait_for(message_id, lambda d: bool(d.get("hint")))
    return str(details.get("hint") or "")


def _send(server: RunningTidings, to: str, **message: object) -> str:
    body = {"to": {"email": to}, "content": {"title": "t", "body": "b"}, **message}
    return server.courier().send.message(message=body).request_id  # type: ignore[arg-type]


def test_sender_domain_without_mx_hint(
    tidings_with_mailgun: RunningTidings, mailgun_sandbox: RunningSandbox
) -> None:
    server = tidings_with_mailgun
    server.connect_webhooks()
    message_id = _send(server, "m+nomx@example.test")
    hint = _hint_of(server, message_id)
    assert "MX record" in hint and "2 hours" in hint
    entries = [h for h in server.history(message_id) if h["type"] == "UNDELIVERABLE"]
    assert entries and "MX record" in entries[0]["hint"]


def test_throttling_and_probation_hints(
    tidings_with_mailgun: RunningTidings, mailgun_sandbox: RunningSandbox
) -> None:
    mailgun_sandbox.set_faults({"status_rates": {"429": 1.0}, "retry_after_s": 30})
    message_id = _send(tidings_with_mailgun, "busy@example.test")
    hint = _hint_of(tidings_with_mailgun, message_id).lower()
    assert "business verification" in hint and "bounce" in hint
    mailgun_sandbox.set_faults({})


def test_account_not_activated_hint(
    tidings_with_mailgun: RunningTidings, mailgun_sandbox: RunningSandbox
) -> None:
    mailgun_sandbox.set_faults({"account_disabled": True})
    message_id = _send(tidings_with_mailgun, "na@example.test")
    details = tidings_with_mailgun.wait_status(message_id, "UNDELIVERABLE")
    assert "not allowed to send" in details["error"]
    assert details["hint"]
    mailgun_sandbox.set_faults({})


def test_wrong_key_and_wrong_domain_hints(
    start_tidings: Callable[..., RunningTidings], mailgun_sandbox: RunningSandbox
) -> None:
    server = start_tidings()
    server.add_provider(mailgun_sandbox)
    wrong_key = _send(
        server,
        "k@example.test",
        providers={"mailgun": {"override": {"config": {"apiKey": "key-not-right-0000"}}}},
    )
    wrong_domain = _send(
        server,
        "d@example.test",
        providers={"mailgun": {"override": {"config": {"domain": "other.test"}}}},
    )
    key_hint = _hint_of(server, wrong_key).lower()
    assert "api key" in key_hint and "region" in key_hint
    domain_hint = _hint_of(server, wrong_domain).lower()
    assert "domain" in domain_hint and "region" in domain_hint


def test_recipient_domain_no_mx_through_the_sandbox(
    tidings_with_mailgun: RunningTidings, mailgun_sandbox: RunningSandbox
) -> None:
    server = tidings_with_mailgun
    server.connect_webhooks()
    message_id = _send(server, "r+rcptnomx@example.test")
    details = server.wait_status(message_id, "UNDELIVERABLE")
    assert "recipient" in (details["hint"] or "").lower()
    temporary = [h for h in server.history(message_id) if h["type"] == "TEMPORARY_FAILURE"]
    assert temporary and temporary[0]["code"] == 498 and "recipient" in temporary[0]["hint"].lower()
    with server.http() as http:
        assert http.get("/suppressions/r+rcptnomx@example.test").status_code == 404


def test_recipient_domain_no_mx_498_hint() -> None:
    """498 'No MX for' is a temporary failure event; its hint names the recipient's domain."""
    from tidings.providers.mailgun.events import parse_event_item

    item = {
        "event": "failed",
        "id": "x1",
        "timestamp": 1376435471.1,
        "severity": "temporary",
        "reason": "generic",
        "recipient": "bar@example.com",
        "delivery-status": {"code": 498, "message": "No MX for [example.com]"},
        "message": {"headers": {"message-id": "a@b"}},
    }
    event = parse_event_item(item)
    assert event.hint and "recipient" in event.hint.lower()
