"""Routing strategies and failover, Courier's way, from outside: the official SDK, the Tidings
server, the Mailgun sandbox and a real SMTP server (aiosmtpd) on loopback.

A routing strategy says Mailgun first, then SMTP. With the sandbox's account disabled, a
message ends up delivered by the SMTP server, and its history names both providers; a
recipient Mailgun bounces is never failed over; a send that asks only for SMS ends
UNROUTABLE with a reason naming it.
"""

from __future__ import annotations

import email
import email.policy
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from email.message import EmailMessage
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session

from tests.e2e.conftest import RunningSandbox, RunningTidings
from tests.support.servers import free_port


@dataclass
class Inbox:
    """What the SMTP server on loopback received."""

    messages: list[tuple[Envelope, EmailMessage]] = field(default_factory=list)
    arrived: threading.Condition = field(default_factory=threading.Condition)

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        parsed = email.message_from_bytes(
            bytes(envelope.content or b""), policy=email.policy.default
        )
        assert isinstance(parsed, EmailMessage)
        with self.arrived:
            self.messages.append((envelope, parsed))
            self.arrived.notify_all()
        return "250 OK queued"

    def wait_for(self, count: int, timeout: float = 20) -> list[tuple[Envelope, EmailMessage]]:
        deadline = time.monotonic() + timeout
        with self.arrived:
            while len(self.messages) < count:
                left = deadline - time.monotonic()
                if left <= 0 or not self.arrived.wait(left):
                    break
            return list(self.messages)


@pytest.fixture
def smtp_inbox() -> Iterator[tuple[Inbox, int]]:
    inbox = Inbox()
    port = free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield inbox, port
    finally:
        controller.stop()


@pytest.fixture
def routed(
    start_tidings: Callable[..., RunningTidings],
    mailgun_sandbox: RunningSandbox,
    smtp_inbox: tuple[Inbox, int],
) -> Iterator[tuple[RunningTidings, Inbox, str]]:
    """Tidings with a Mailgun and an SMTP configuration, and a default routing strategy
    made through the SDK: Mailgun, then SMTP."""
    inbox, port = smtp_inbox
    server = start_tidings(provider_hosts=f"smtp://127.0.0.1:{port}")
    server.add_provider(mailgun_sandbox, alias="main")
    with server.http() as http:
        answer = http.post(
            "/providers",
            json={
                "provider": "smtp",
                "alias": "relay",
                "settings": {
                    "host": "127.0.0.1",
                    "port": port,
                    "security": "none",
                    "from_address": "Acme <no-reply@acme.test>",
                },
            },
        )
        assert answer.status_code == 200, answer.text
    strategy = server.courier().routing_strategies.create(
        name="Mailgun, then SMTP",
        routing={"method": "single", "channels": ["email"]},
        channels={"email": {"providers": ["mailgun", "smtp"], "routing_method": "single"}},
    )
    assert strategy.id.startswith("rs_")
    with server.http() as http:
        made = http.put(f"/routing-strategies/{strategy.id}/default")
        assert made.status_code == 204, made.text
    yield server, inbox, strategy.id
    mailgun_sandbox.set_faults({})


def _send(server: RunningTidings, to: str, **message: Any) -> str:
    body = {"to": {"email": to}, "content": {"title": "Hello", "body": "It works"}, **message}
    return server.courier().send.message(message=body).request_id  # type: ignore[arg-type]


def test_a_disabled_mailgun_account_fails_over_to_smtp(
    routed: tuple[RunningTidings, Inbox, str], mailgun_sandbox: RunningSandbox
) -> None:
    server, inbox, _ = routed
    mailgun_sandbox.set_faults({"account_disabled": True})
    message_id = _send(server, "ada@example.test")
    details = server.wait_status(message_id, "SENT", "UNDELIVERABLE")
    assert details["status"] == "SENT", details
    assert details["providers"][0]["provider"] == "smtp"
    received = inbox.wait_for(1)
    assert len(received) == 1
    envelope, mime = received[0]
    assert envelope.rcpt_tos == ["ada@example.test"]
    assert mime["Subject"] == "Hello" and mime["X-Tidings-Id"] == message_id
    history = server.history(message_id)
    types = [h["type"] for h in history]
    assert "ROUTED" in types and "FAILOVER" in types and types[-1] == "SENT"
    failover = next(h for h in history if h["type"] == "FAILOVER")
    assert failover["left"]["provider"] == "mailgun" and failover["next"] == "smtp"
    assert "not allowed to send" in failover["why"]
    sent = next(h for h in history if h["type"] == "SENT")
    assert sent["integration"]["provider"] == "smtp"
    assert not mailgun_sandbox.messages()  # Mailgun refused it: nothing stored there


def test_a_healthy_mailgun_takes_it_and_smtp_never_sees_it(
    routed: tuple[RunningTidings, Inbox, str], mailgun_sandbox: RunningSandbox
) -> None:
    server, inbox, _ = routed
    message_id = _send(server, "grace@example.test")
    assert server.wait_status(message_id, "SENT", "DELIVERED")["status"] in ("SENT", "DELIVERED")
    sent = next(h for h in server.history(message_id) if h["type"] == "SENT")
    assert sent["integration"]["provider"] == "mailgun"
    assert inbox.messages == []


def test_a_bounced_recipient_is_not_failed_over(
    routed: tuple[RunningTidings, Inbox, str], mailgun_sandbox: RunningSandbox
) -> None:
    server, inbox, _ = routed
    server.connect_webhooks()
    message_id = _send(server, "bob+bounce@example.test")
    details = server.wait_status(message_id, "UNDELIVERABLE", timeout=30)
    assert details["status"] == "UNDELIVERABLE", details
    assert "FAILOVER" not in [h["type"] for h in server.history(message_id)]
    assert inbox.messages == []


def test_only_sms_is_unroutable_with_a_reason(
    routed: tuple[RunningTidings, Inbox, str],
) -> None:
    server, inbox, _ = routed
    message_id = _send(
        server, "carol@example.test", routing={"method": "single", "channels": ["sms"]}
    )
    details = server.wait_status(message_id, "UNROUTABLE")
    assert details["status"] == "UNROUTABLE", details
    assert "sms" in (details.get("error") or "")
    assert inbox.messages == []


def test_channels_email_providers_on_the_send_win_over_the_strategy(
    routed: tuple[RunningTidings, Inbox, str], mailgun_sandbox: RunningSandbox
) -> None:
    server, inbox, _ = routed
    message_id = _send(server, "dan@example.test", channels={"email": {"providers": ["smtp"]}})
    assert server.wait_status(message_id, "SENT")["status"] == "SENT"
    assert len(inbox.wait_for(1)) == 1
    assert mailgun_sandbox.messages() == []
