"""The table of known Mailgun failures."""

from __future__ import annotations

import pytest

from tidings.providers.mailgun.hints import HINTS, hint_for


@pytest.mark.parametrize(
    ("status", "message", "code", "key"),
    [
        (
            None,
            "550 5.7.1 Sender domain mg.example.com has no MX record",
            550,
            "sender-domain-no-mx",
        ),
        (
            None,
            "5.1.8 <no-reply@mg.example.com>: Sender address rejected: Domain not found",
            550,
            "sender-domain-no-mx",
        ),
        (
            429,
            "Domain mg.example.com is not allowed to send: recipient limit exceeded, try again "
            "after Mon, 25 Aug 2025 07:00:31 UTC",
            None,
            "throttled",
        ),
        (420, "anything", None, "throttled"),
        (401, "Forbidden", None, "unauthorized"),
        (404, "Domain not found: mg.example.com", None, "domain-not-found"),
        (
            400,
            "Domain mg.example.com is not allowed to send: Free accounts are for test purposes "
            "only",
            None,
            "not-allowed-to-send",
        ),
        (
            403,
            "Domain example is not allowed to send large batches yet",
            None,
            "not-allowed-to-send",
        ),
        (
            400,
            "Sandbox subdomains are for test purposes only. Please add your own domain or add "
            "the address to authorized recipients in Account Settings.",
            None,
            "sandbox-domain-recipient",
        ),
        (
            400,
            "Send options (parameters starting with o:, h:, or v:) are limited to 16 kB total",
            None,
            "options-too-large",
        ),
        (413, "request size exceeds 52.4MiB limit", None, "message-too-large"),
        (None, "No MX for [gmai.com]", 498, "recipient-domain-no-mx"),
        (None, "", 605, "suppressed-bounce"),
        (None, "", 606, "suppressed-unsubscribe"),
        (None, "", 607, "suppressed-complaint"),
        (
            None,
            "5.1.1 The email account that you tried to reach does not exist.",
            550,
            "no-such-mailbox",
        ),
        (None, "Too old", 602, "too-old"),
    ],
)
def test_known_failures(status: int | None, message: str, code: int | None, key: str) -> None:
    hint = hint_for(status, message, code)
    assert hint is not None
    assert hint.key == key
    assert hint.title and hint.explanation and hint.fix
    assert hint.fix in hint.text()


def test_specific_advice() -> None:
    mx = hint_for(None, "Sender domain has no MX record", 550)
    assert mx is not None and "MX record" in mx.fix and "2 hours" in mx.fix
    throttled = hint_for(429, "limit exceeded")
    assert throttled is not None
    assert "Business Verification" in throttled.fix and "bounce" in throttled.fix
    assert "retries" in throttled.explanation
    unauthorized = hint_for(401, "Forbidden")
    assert unauthorized is not None and "region" in unauthorized.explanation


def test_unknown_failures_have_no_hint() -> None:
    assert hint_for(500, "Internal Server Error") is None
    assert hint_for(None, None) is None
    assert hint_for(400, "from parameter is missing") is None


def test_http_answers_do_not_match_mailbox_rules() -> None:
    # "does not exist" in an API answer is about the request, not a mailbox
    assert hint_for(400, "template 'x' does not exist") is None


def test_keys_are_unique() -> None:
    keys = [hint.key for hint, _ in HINTS]
    assert len(keys) == len(set(keys))
