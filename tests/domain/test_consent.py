"""The consent decision, unsubscribe tokens and RFC 8058 headers (pure)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from tidings.domain.consent import (
    Choice,
    Topic,
    decide,
    list_choice,
    sign_token,
    unsubscribe_headers,
    verify_token,
)
from tidings.domain.status import NO_FACTS, Reason, Status, derive, is_final, with_unroutable

IN = Topic("tp_1", "News", "OPTED_IN")
OUT = Topic("tp_2", "Offers", "OPTED_OUT")
REQUIRED = Topic("tp_3", "Security", "REQUIRED")
SECRET = b"s" * 32


@pytest.mark.parametrize(
    ("topic", "choice", "lists", "send", "reason", "source"),
    [
        (IN, None, None, True, None, "default"),
        (OUT, None, None, False, Reason.OPT_IN_REQUIRED, "default"),
        (IN, Choice("OPTED_OUT"), None, False, Reason.UNSUBSCRIBED, "recipient"),
        (OUT, Choice("OPTED_IN"), None, True, None, "recipient"),
        (REQUIRED, Choice("OPTED_OUT"), None, True, None, "required"),
        (
            IN,
            None,
            {"notifications": {"tp_1": {"status": "OPTED_OUT"}}},
            False,
            Reason.UNSUBSCRIBED,
            "list",
        ),
        (OUT, None, {"categories": {"tp_2": {"status": "OPTED_IN"}}}, True, None, "list"),
        # The recipient's own choice beats the list's.
        (
            IN,
            Choice("OPTED_IN"),
            {"notifications": {"tp_1": {"status": "OPTED_OUT"}}},
            True,
            None,
            "recipient",
        ),
        (IN, Choice("OPTED_IN", True, ("sms",)), None, False, Reason.UNSUBSCRIBED, "recipient"),
        (IN, Choice("OPTED_IN", True, ("sms", "email")), None, True, None, "recipient"),
        (IN, None, "not a document", True, None, "default"),
    ],
)
def test_decide(
    topic: Topic,
    choice: Choice | None,
    lists: object,
    send: bool,
    reason: Reason | None,
    source: str,
) -> None:
    decision = decide(topic, choice, lists, recipient="u1")
    assert (decision.send, decision.reason, decision.source) == (send, reason, source)
    assert topic.id in decision.why or topic.name in decision.why
    assert decision.history["topic_id"] == topic.id


def test_list_choice_reads_channel_preferences() -> None:
    found = list_choice(
        {
            "notifications": {
                "t": {"status": "OPTED_IN", "channel_preferences": [{"channel": "sms"}]}
            }
        },
        "t",
    )
    assert found == Choice("OPTED_IN", True, ("sms",))
    assert list_choice({"notifications": {"t": {"status": "maybe"}}}, "t") is None


def test_tokens_round_trip_and_refuse_forgeries() -> None:
    token = sign_token(SECRET, "user@example.test", "tp_1")
    assert verify_token(SECRET, token) == ("user@example.test", "tp_1")
    assert sign_token(SECRET, "u1", "tp_1") != sign_token(SECRET, "u1", "tp_2")
    assert verify_token(b"other" * 8, token) is None
    version, body, mac = token.split(".")
    other_body = sign_token(SECRET, "u2", "tp_1").split(".")[1]
    for forged in (
        f"{version}.{other_body}.{mac}",
        f"{version}.{body}.{mac[:-2]}",
        f"u0.{body}.{mac}",
        f"{body}.{mac}",
        "",
        "u1.%%%.%%%",
        token + "x" * 3000,
    ):
        assert verify_token(SECRET, forged) is None


def test_unsubscribe_headers() -> None:
    url = "https://t.example.test/unsubscribe/abc"
    assert unsubscribe_headers(url, None) == {
        "List-Unsubscribe": f"<{url}>",
        "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
    }
    both = unsubscribe_headers(url, "unsub@example.test")
    assert both["List-Unsubscribe"] == f"<{url}>, <mailto:unsub@example.test>"
    assert unsubscribe_headers(None, "mailto:u@example.test") == {
        "List-Unsubscribe": "<mailto:u@example.test>"
    }
    assert unsubscribe_headers(None, None) == {}


def test_preference_filtering_is_courier_filtered_and_final() -> None:
    at = datetime(2026, 1, 1, tzinfo=UTC)
    for reason in (Reason.UNSUBSCRIBED, Reason.OPT_IN_REQUIRED):
        facts = with_unroutable(NO_FACTS, at, reason, "opted out")
        assert derive(facts) == (Status.FILTERED, reason) and is_final(facts)
    assert derive(with_unroutable(NO_FACTS, at, Reason.NO_CHANNELS))[0] is Status.UNROUTABLE
