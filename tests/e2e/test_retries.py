"""Mailgun's failures, end to end: retried until SENT exactly once, or UNDELIVERABLE."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from tests.e2e.conftest import RunningSandbox, RunningTidings


def _send(server: RunningTidings, to: str) -> str:
    answer = server.courier().send.message(
        message={"to": {"email": to}, "content": {"title": "t", "body": "b"}}
    )
    return answer.request_id


def _copies(sandbox: RunningSandbox, to: str) -> int:
    return len([m for m in sandbox.messages() if to in m["to"]])


def _retry_entries(server: RunningTidings, message_id: str) -> list[dict[str, Any]]:
    return [h for h in server.history(message_id) if h["type"] == "RETRYING"]


def test_500s_are_retried_until_sent_once(
    tidings_with_mailgun: RunningTidings, mailgun_sandbox: RunningSandbox
) -> None:
    mailgun_sandbox.set_faults({"status_rates": {"500": 1.0}, "seed": 3})
    message_id = _send(tidings_with_mailgun, "five@example.test")
    tidings_with_mailgun.wait_for(
        message_id, lambda d: len(_retry_entries(tidings_with_mailgun, message_id)) >= 2
    )
    mailgun_sandbox.set_faults({})
    details = tidings_with_mailgun.wait_status(message_id, "SENT", "DELIVERED")
    assert details["status"] in ("SENT", "DELIVERED")
    assert _copies(mailgun_sandbox, "five@example.test") == 1
    retries = _retry_entries(tidings_with_mailgun, message_id)
    assert retries and all(r["response"]["status"] == 500 for r in retries)


def test_429_waits_for_retry_after(
    tidings_with_mailgun: RunningTidings, mailgun_sandbox: RunningSandbox
) -> None:
    mailgun_sandbox.set_faults({"status_rates": {"429": 1.0}, "retry_after_s": 1})
    message_id = _send(tidings_with_mailgun, "slow@example.test")
    tidings_with_mailgun.wait_for(
        message_id, lambda d: bool(_retry_entries(tidings_with_mailgun, message_id))
    )
    mailgun_sandbox.set_faults({})
    tidings_with_mailgun.wait_status(message_id, "SENT", "DELIVERED")
    assert _copies(mailgun_sandbox, "slow@example.test") == 1
    first = _retry_entries(tidings_with_mailgun, message_id)[0]
    assert first["outcome"] == "throttled" and first["response"]["status"] == 429
    assert first["retry_at"]


def test_420_probation_is_retried_with_hint(
    tidings_with_mailgun: RunningTidings, mailgun_sandbox: RunningSandbox
) -> None:
    mailgun_sandbox.set_faults({"status_rates": {"420": 1.0}, "retry_after_s": 1})
    message_id = _send(tidings_with_mailgun, "probation@example.test")
    details = tidings_with_mailgun.wait_for(message_id, lambda d: bool(d.get("hint")))
    assert "verification" in (details["hint"] or "").lower()
    mailgun_sandbox.set_faults({})
    tidings_with_mailgun.wait_status(message_id, "SENT", "DELIVERED")
    assert _copies(mailgun_sandbox, "probation@example.test") == 1


def test_dropped_connection_is_settled_without_sending_twice(
    tidings_with_mailgun: RunningTidings, mailgun_sandbox: RunningSandbox
) -> None:
    mailgun_sandbox.set_faults({"drop_rate": 1.0})
    message_id = _send(tidings_with_mailgun, "doubt@example.test")
    tidings_with_mailgun.wait_for(
        message_id,
        lambda d: any(h["type"] == "IN_DOUBT" for h in tidings_with_mailgun.history(message_id)),
    )
    mailgun_sandbox.set_faults({})
    details = tidings_with_mailgun.wait_status(message_id, "SENT", "DELIVERED")
    assert details["status"] in ("SENT", "DELIVERED")
    assert _copies(mailgun_sandbox, "doubt@example.test") == 1


def test_wrong_key_and_unknown_domain_are_undeliverable(
    start_tidings: Callable[..., RunningTidings], mailgun_sandbox: RunningSandbox
) -> None:
    server = start_tidings()
    with server.http() as http:
        for alias, settings in {
            "badkey": {"api_key": "key-wrong-000000", "domain": "mg.tidings.test"},
            "baddomain": {"api_key": mailgun_sandbox.settings.api_key, "domain": "nope.test"},
        }.items():
            answer = http.post(
                "/providers",
                json={
                    "provider": "mailgun",
                    "alias": alias,
                    "settings": {**settings, "host": mailgun_sandbox.url},
                },
            )
            assert answer.status_code == 200, answer.text
    client = server.courier()
    bad_key = client.send.message(
        message={
            "to": {"email": "k@example.test"},
            "content": {"title": "t", "body": "b"},
        }
    )
    bad_domain = client.send.message(
        message={
            "to": {"email": "d@example.test"},
            "content": {"title": "t", "body": "b"},
            "providers": {
                "mailgun": {
                    "override": {
                        "config": {
                            "apiKey": mailgun_sandbox.settings.api_key,
                            "domain": "nope.test",
                        }
                    }
                }
            },
        }
    )
    key_details = server.wait_status(bad_key.request_id, "UNDELIVERABLE")
    assert key_details["reason"] == "PROVIDER_ERROR"
    assert "wrong API key or wrong region" in key_details["error"]
    domain_details = server.wait_status(bad_domain.request_id, "UNDELIVERABLE")
    assert "Domain not found: nope.test" in domain_details["error"]
    assert domain_details["hint"]
    assert mailgun_sandbox.messages() == []
