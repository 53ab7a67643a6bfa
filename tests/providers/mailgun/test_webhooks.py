"""Webhook signatures, parsing (JSON and legacy form) and the acceptance checks."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlencode

import pytest
from mailgun.security import SecurityGuard  # an independent verifier: Mailgun's own SDK

from tests.providers.mailgun.fixtures import SIGNING_KEY, load
from tidings.domain.events import EventKind
from tidings.providers.mailgun.webhooks import (
    ParsedWebhook,
    WebhookParseError,
    check_webhook,
    parse_webhook,
    sign,
    verify_signature,
)

JSON = "application/json"
FORM = "application/x-www-form-urlencoded"


def signed(body: dict[str, Any], key: str = SIGNING_KEY) -> bytes:
    signature = body["signature"]
    signature["signature"] = sign(key, signature["timestamp"], signature["token"])
    return json.dumps(body).encode()


def parsed_fixture(name: str) -> ParsedWebhook:
    return parse_webhook(signed(load(name)), JSON)


def test_signature_agrees_with_mailguns_sdk() -> None:
    timestamp, token = "1529006854", "a8ce0edb2dd8301dee6c2405235584e45aa91d1e9f979f3de0"
    signature = sign(SIGNING_KEY, timestamp, token)
    assert len(signature) == 64 and int(signature, 16) >= 0
    assert verify_signature(SIGNING_KEY, timestamp, token, signature)
    guard = SecurityGuard()
    assert guard.verify_webhook(SIGNING_KEY, token, timestamp, signature, max_age_seconds=10**10)


@pytest.mark.parametrize(
    ("key", "timestamp", "token", "signature"),
    [
        ("other-key", "1", "t", None),
        (SIGNING_KEY, "2", "t", None),
        (SIGNING_KEY, "1", "u", None),
        ("", "1", "t", None),
        (SIGNING_KEY, "1", "t", ""),
        (SIGNING_KEY, "1", "t", "é" * 64),
    ],
)
def test_bad_signatures(key: str, timestamp: str, token: str, signature: str | None) -> None:
    good = sign(SIGNING_KEY, "1", "t")
    assert not verify_signature(key, timestamp, token, good if signature is None else signature)


def test_json_webhook() -> None:
    body = load("delivered_webhook.json")
    parsed = parse_webhook(signed(body), "application/json; charset=utf-8")
    assert parsed.timestamp == "1534108637"
    assert parsed.token == body["signature"]["token"]
    assert parsed.signature == sign(SIGNING_KEY, parsed.timestamp, parsed.token)
    assert parsed.event.kind is EventKind.DELIVERED
    assert parsed.raw_without_signature == {"event-data": body["event-data"]}
    assert "signature" not in json.dumps(parsed.raw_without_signature)
    assert not parsed.legacy


def test_legacy_form_webhook() -> None:
    fields = load("legacy_bounced_form.json")
    fields["signature"] = sign(SIGNING_KEY, fields["timestamp"], fields["token"])
    parsed = parse_webhook(urlencode(fields).encode(), FORM)
    assert parsed.legacy
    assert parsed.timestamp == "1770918175" and parsed.token == fields["token"]
    event = parsed.event
    assert event.kind is EventKind.FAILED
    assert event.severity == "permanent" and event.reason == "bounce"
    assert event.code == 550
    assert event.message is not None and event.message.startswith("5.1.1")
    assert event.provider_message_id == "20130503182626.18666.16540@mg.example.com"
    assert event.tidings_id == "1-0a1b2c3d4e5f60718293a4b5c6d7e8f9"
    assert event.domain == "mg.example.com"
    assert event.recipient == "gone@example.com"
    assert "signature" not in event.raw and event.raw["event"] == "bounced"
    assert event.event_id.startswith("sha256:")
    assert (
        check_webhook(
            parsed,
            signing_key=SIGNING_KEY,
            expected_domain="mg.example.com",
            now=1770918175.0,
            window_s=900,
        )
        is None
    )


def test_legacy_multipart_webhook() -> None:
    fields = load("legacy_bounced_form.json")
    fields["signature"] = sign(SIGNING_KEY, fields["timestamp"], fields["token"])
    boundary = "mailgun-legacy-boundary"
    raw = _multipart(fields, boundary)
    parsed = parse_webhook(raw, f"multipart/form-data; boundary={boundary}")
    assert parsed.legacy and parsed.event.kind is EventKind.FAILED
    assert parsed.event.tidings_id == "1-0a1b2c3d4e5f60718293a4b5c6d7e8f9"
    assert verify_signature(SIGNING_KEY, parsed.timestamp, parsed.token, parsed.signature)


def _multipart(fields: dict[str, str], boundary: str) -> bytes:
    out = b""
    for key, value in fields.items():
        out += (
            f'--{boundary}\r\nContent-Disposition: form-data; name="{key}"\r\n\r\n{value}\r\n'
        ).encode()
    return out + f"--{boundary}--\r\n".encode()


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        (b"not json", JSON),
        (b"[]", JSON),
        (b'{"event-data": {}}', JSON),
        (b'{"signature": {}}', JSON),
        (b'{"signature": {}, "event-data": {"event": "nope", "timestamp": 1}}', JSON),
        (b"token=x", FORM),
        (b"event=nope&timestamp=1", FORM),
        (b"<xml/>", "text/xml"),
    ],
)
def test_unparseable_webhooks(body: bytes, content_type: str) -> None:
    with pytest.raises(WebhookParseError):
        parse_webhook(body, content_type)


NOW = 1770918200.0


def check(parsed: ParsedWebhook, **changes: Any) -> Any:
    options: dict[str, Any] = {
        "signing_key": SIGNING_KEY,
        "expected_domain": "mg.example.com",
        "now": NOW,
        "window_s": 900.0,
    }
    options.update(changes)
    return check_webhook(parsed, **options)


def test_accepted_when_everything_matches() -> None:
    assert check(parsed_fixture("opened_webhook.json")) is None
    assert check(parsed_fixture("opened_webhook.json"), expected_domain="MG.Example.com") is None


def test_no_key_never_fails_open() -> None:
    for key in (None, ""):
        refusal = check(parsed_fixture("opened_webhook.json"), signing_key=key)
        assert refusal is not None and refusal.code == "no-signing-key"
        assert "never fail open" in refusal.message
        assert refusal.http_status == 401


def test_forged_signature() -> None:
    body = load("opened_webhook.json")
    parsed = parse_webhook(signed(body, key="attacker"), JSON)
    refusal = check(parsed)
    assert refusal is not None and refusal.code == "bad-signature"


@pytest.mark.parametrize("offset", [-901.0, 901.0, -86400.0])
def test_stale_or_future_timestamps(offset: float) -> None:
    refusal = check(parsed_fixture("opened_webhook.json"), now=1770918175.0 - offset)
    assert refusal is not None and refusal.code == "stale-timestamp"
    assert refusal.http_status == 406


def test_wrong_domain_names_both() -> None:
    refusal = check(parsed_fixture("opened_webhook.json"), expected_domain="mg.other.com")
    assert refusal is not None and refusal.code == "domain-mismatch"
    assert "mg.example.com" in refusal.message and "mg.other.com" in refusal.message


def test_domain_from_message_id_when_no_domain_name() -> None:
    body = load("delivered_webhook.json")  # no domain.name: message id ...@example.org
    parsed = parse_webhook(signed(body), JSON)
    assert check(parsed, expected_domain="example.org", now=1534108637.0) is None
    refusal = check(parsed, now=1534108637.0)
    assert refusal is not None and "example.org" in refusal.message
