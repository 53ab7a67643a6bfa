"""The SMTP reply classifier and hints, as pure functions."""

from __future__ import annotations

import pytest

from tidings.providers.base import OutcomeKind
from tidings.providers.smtp.answers import Step, classify_failure, classify_reply, hint_for


@pytest.mark.parametrize(
    ("code", "words", "step", "kind", "fault"),
    [
        (250, "OK", Step.MESSAGE, OutcomeKind.SENT, False),
        (421, "closing", Step.CONNECT, OutcomeKind.RETRY, False),
        (450, "busy", Step.RCPT, OutcomeKind.RETRY, False),
        (451, "local error", Step.MESSAGE, OutcomeKind.RETRY, False),
        (452, "full", Step.RCPT, OutcomeKind.RETRY, False),
        (554, "no service", Step.CONNECT, OutcomeKind.FAILED, True),
        (554, "no", Step.EHLO, OutcomeKind.FAILED, True),
        (535, "bad credentials", Step.AUTH, OutcomeKind.FAILED, True),
        (534, "weak", Step.AUTH, OutcomeKind.FAILED, True),
        (530, "Must issue a STARTTLS command first", Step.MAIL, OutcomeKind.FAILED, True),
        (550, "5.7.1 sender not allowed", Step.MAIL, OutcomeKind.FAILED, True),
        (550, "5.1.1 No such user", Step.RCPT, OutcomeKind.FAILED, False),
        (551, "User not local", Step.RCPT, OutcomeKind.FAILED, False),
        (553, "mailbox name not allowed", Step.RCPT, OutcomeKind.FAILED, False),
        (554, "5.7.1 Relay access denied", Step.RCPT, OutcomeKind.FAILED, True),
        (552, "too big", Step.MESSAGE, OutcomeKind.FAILED, False),
        (535, "auth", Step.MESSAGE, OutcomeKind.FAILED, True),
    ],
)
def test_classify_reply(code: int, words: str, step: Step, kind: OutcomeKind, fault: bool) -> None:
    verdict = classify_reply(code, words, step)
    assert verdict.kind is kind
    assert verdict.provider_fault is fault


def test_breaks_are_retried_until_the_message_was_written() -> None:
    for step in Step:
        expected = OutcomeKind.IN_DOUBT if step is Step.MESSAGE else OutcomeKind.RETRY
        assert classify_failure(step).kind is expected


def test_hints() -> None:
    assert (h := hint_for(535, "5.7.8 bad")) and h.key == "smtp_auth_failed"
    assert (h := hint_for(530, "Must issue a STARTTLS command first")) and h.key == (
        "smtp_tls_required"
    )
    assert (h := hint_for(554, "5.7.1 Relay access denied")) and h.key == "smtp_relay_denied"
    assert (h := hint_for(550, "5.1.1 No such user")) and h.key == "smtp_mailbox_unknown"
    assert hint_for(250, "ok") is None
