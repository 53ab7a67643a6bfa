"""The SMTP provider against a real aiosmtpd server on 127.0.0.1: every security mode, AUTH,
byte-exact attachments, envelopes, classification of refusals and drops, the policy."""

from __future__ import annotations

import email
import json
from collections.abc import Callable
from email.message import EmailMessage
from email.policy import default
from typing import Any

import pytest
import trustme
from pydantic import ValidationError

from tidings.domain.network import OutboundPolicy
from tidings.providers.base import Attachment, OutcomeKind, OutgoingEmail, ProviderContext
from tidings.providers.outbound import Outbound
from tidings.providers.registry import provider_class
from tidings.providers.settings import public_settings
from tidings.providers.smtp.provider import SmtpProvider
from tidings.providers.smtp.settings import SmtpSettings

from .conftest import PASSWORD, Server

BLOB = bytes(range(256)) * 9 + b"\r\n.\r\n\x00end"


def _email(**kwargs: Any) -> OutgoingEmail:
    base: dict[str, Any] = {
        "tidings_id": "1-abc",
        "from_address": "Acme <no-reply@acme.test>",
        "to": "alice@example.test",
        "subject": "Hello",
        "html": "<p>Hi <img src='cid:logo.png'></p>",
        "text": "Hi",
    }
    base.update(kwargs)
    return OutgoingEmail(**base)


def _settings(server: Server, ca: trustme.CA, **kwargs: Any) -> SmtpSettings:
    values: dict[str, Any] = {
        "host": "127.0.0.1",
        "port": server.port,
        "security": "none",
        "from_address": "no-reply@acme.test",
        "ca_cert": ca.cert_pem.bytes().decode(),
    }
    values.update(kwargs)
    return SmtpSettings(**values)


async def _send(settings: SmtpSettings, mail: OutgoingEmail, **ctx: Any) -> Any:
    provider = SmtpProvider(ProviderContext(**ctx))
    config = settings.to_config()
    return await provider.send(provider.build(mail, config), config)


def _no_password(outcome: Any) -> None:
    text = json.dumps(outcome.request.as_dict()) + repr(outcome)
    assert PASSWORD not in text


def test_registry_finds_it() -> None:
    assert provider_class("smtp") is SmtpProvider
    assert SmtpProvider.has_events is False


@pytest.mark.parametrize("mode", ["none", "starttls", "tls"])
async def test_each_security_mode_delivers(
    smtp_server: Callable[..., Server], ca: trustme.CA, mode: str
) -> None:
    server = smtp_server(mode, auth=mode != "none")
    creds = {"username": "user", "password": PASSWORD} if mode != "none" else {}
    outcome = await _send(_settings(server, ca, security=mode, **creds), _email())
    assert outcome.kind is OutcomeKind.SENT, outcome
    assert outcome.provider_message_id.endswith("@acme.test>")
    assert len(server.recorder.envelopes) == 1
    _no_password(outcome)


async def test_wrong_password_is_the_providers_fault(
    smtp_server: Callable[..., Server], ca: trustme.CA
) -> None:
    server = smtp_server("starttls", auth=True)
    settings = _settings(server, ca, security="starttls", username="user", password="nope-wrong1")
    outcome = await _send(settings, _email(), read_timeout_s=5.0)
    assert outcome.kind is OutcomeKind.FAILED, outcome.error_message
    assert outcome.provider_fault is True
    assert outcome.status_code == 535
    assert outcome.hint and "password" in outcome.hint
    assert server.recorder.envelopes == []


async def test_untrusted_certificate_fails_closed(
    smtp_server: Callable[..., Server], ca: trustme.CA
) -> None:
    server = smtp_server("tls")
    other = trustme.CA()
    settings = _settings(server, other, security="tls")
    outcome = await _send(settings, _email())
    assert outcome.kind is OutcomeKind.FAILED and outcome.provider_fault is True
    assert server.recorder.envelopes == []


async def test_message_is_byte_exact(smtp_server: Callable[..., Server], ca: trustme.CA) -> None:
    server = smtp_server()
    mail = _email(
        cc=("Bob <bob@example.test>",),
        bcc=("carol@example.test",),
        reply_to="help@acme.test",
        headers={"X-Campaign": "spring"},
        tags=("welcome", "a,b"),
        attachments=(
            Attachment("report.bin", "application/octet-stream", BLOB),
            Attachment("logo.png", "image/png", b"\x89PNG\r\n\x1a\n" + BLOB, inline=True),
        ),
    )
    outcome = await _send(_settings(server, ca), mail)
    assert outcome.kind is OutcomeKind.SENT
    envelope = server.recorder.envelopes[0]
    assert envelope.mail_from == "no-reply@acme.test"
    assert envelope.rcpt_tos == ["alice@example.test", "bob@example.test", "carol@example.test"]
    msg = email.message_from_bytes(envelope.original_content or b"", policy=default)
    assert isinstance(msg, EmailMessage)
    assert (
        msg["Bcc"] is None
        and "carol"
        not in (envelope.original_content or b"").decode("latin-1").split("\r\n\r\n", 1)[0]
    )
    assert msg["Cc"] == "Bob <bob@example.test>"
    assert msg["Reply-To"] == "help@acme.test"
    assert msg["X-Campaign"] == "spring"
    assert msg["X-Tidings-Id"] == "1-abc"
    assert msg.get_all("X-Tidings-Tag") == ["welcome", "a,b"]
    assert msg["Message-ID"] == outcome.provider_message_id
    body = msg.get_body(("plain",))
    assert body is not None and body.get_content().strip() == "Hi"
    html = msg.get_body(("html",))
    assert html is not None and "cid:logo.png" in html.get_content()
    parts = {p.get_filename(): p for p in msg.walk() if p.get_filename()}
    assert parts["report.bin"].get_payload(decode=True) == BLOB
    assert parts["report.bin"].get_content_type() == "application/octet-stream"
    logo = parts["logo.png"]
    assert logo.get_payload(decode=True) == b"\x89PNG\r\n\x1a\n" + BLOB
    assert logo["Content-ID"] == "<logo.png>" and logo.get_content_type() == "image/png"
    files = outcome.request.files
    assert {f["filename"]: f["size"] for f in files} == {
        "report.bin": len(BLOB),
        "logo.png": len(BLOB) + 8,
    }


@pytest.mark.parametrize(
    ("where", "answer", "kind", "fault"),
    [
        ("rcpt", "550 5.1.1 No such user", OutcomeKind.FAILED, False),
        ("rcpt", "554 5.7.1 Relay access denied", OutcomeKind.FAILED, True),
        ("rcpt", "452 4.2.2 Mailbox full", OutcomeKind.RETRY, False),
        ("mail", "550 5.7.1 Sender not allowed", OutcomeKind.FAILED, True),
        ("data", "421 4.3.0 Try later", OutcomeKind.RETRY, False),
        ("data", "554 5.6.0 Content rejected", OutcomeKind.FAILED, False),
    ],
)
async def test_answers_are_classified(
    smtp_server: Callable[..., Server],
    ca: trustme.CA,
    where: str,
    answer: str,
    kind: OutcomeKind,
    fault: bool,
) -> None:
    server = smtp_server()
    if where == "rcpt":
        server.recorder.rcpt_answer = lambda address: answer
    elif where == "mail":
        server.recorder.mail_answer = answer
    else:
        server.recorder.data_answer = answer
    outcome = await _send(_settings(server, ca), _email())
    assert outcome.kind is kind, outcome
    assert outcome.provider_fault is fault
    assert outcome.status_code == int(answer[:3])
    assert answer[4:] in (outcome.error_message or "")


async def test_drop_after_data_is_in_doubt(
    smtp_server: Callable[..., Server], ca: trustme.CA
) -> None:
    server = smtp_server()
    server.recorder.drop_after_data = True
    outcome = await _send(_settings(server, ca), _email())
    assert outcome.kind is OutcomeKind.IN_DOUBT, outcome


async def test_nothing_listening_is_retried(ca: trustme.CA) -> None:
    from .conftest import _free_port

    settings = SmtpSettings(
        host="127.0.0.1", port=_free_port(), security="none", from_address="a@acme.test"
    )
    outcome = await _send(settings, _email())
    assert outcome.kind is OutcomeKind.RETRY


async def test_policy_refuses_loopback(smtp_server: Callable[..., Server], ca: trustme.CA) -> None:
    server = smtp_server("starttls", auth=True)
    settings = _settings(server, ca, security="starttls", username="user", password=PASSWORD)
    outcome = await _send(settings, _email(), outbound=Outbound(OutboundPolicy()))
    assert outcome.kind is OutcomeKind.FAILED and outcome.provider_fault is True
    assert "loopback" in (outcome.error_message or "")
    assert server.recorder.logins == [] and server.recorder.envelopes == []
    _no_password(outcome)


def test_settings_validation_and_masking() -> None:
    with pytest.raises(ValidationError):
        SmtpSettings(host="smtp.example.com", security="ssl", from_address="a@b.test")  # type: ignore[arg-type,unused-ignore]
    with pytest.raises(ValidationError):
        SmtpSettings.model_validate({"from_address": "a@b.test"})
    with pytest.raises(ValidationError):
        SmtpSettings(
            host="h.test", security="none", username="u", password="p" * 12, from_address="a@b.test"
        )
    assert SmtpSettings(host="h.test", from_address="a@b.test").port == 587
    assert SmtpSettings(host="h.test", security="tls", from_address="a@b.test").port == 465
    stored = {"host": "h.test", "password": PASSWORD, "username": "u"}
    shown = public_settings(stored, SmtpSettings.SECRET_FIELDS)
    assert PASSWORD not in json.dumps(shown) and shown["password"].startswith("****")


def test_record_masks_secrets_pasted_into_headers() -> None:
    settings = SmtpSettings(host="h.test", username="u", password=PASSWORD, from_address="a@b.test")
    provider = SmtpProvider()
    config = settings.to_config()
    request = provider.build(_email(headers={"X-Oops": PASSWORD}), config)
    shown = provider.record(request, config.secrets())
    assert PASSWORD not in json.dumps(shown.as_dict())
    assert shown.method == "SMTP" and shown.url == "smtp://h.test:587"
