"""What the pages show, without a browser: hints, history entries, secrets, filters."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from tidings.providers.mailgun.hints import hint_for
from tidings.ui import views

NOW = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)


def test_a_stored_hint_splits_into_title_explanation_and_fix() -> None:
    hint = hint_for(401, "Forbidden")
    assert hint is not None
    shown = views.split_hint(hint.text())
    assert shown == views.HintView(hint.title, hint.explanation, hint.fix)
    assert views.split_hint(None) is None
    unknown = views.split_hint("Something odd. It broke. Fix: turn it off and on.")
    assert unknown == views.HintView("Something odd", "It broke.", "turn it off and on.")
    assert views.split_hint("plain words") == views.HintView("What went wrong", "plain words", "")


def test_attempt_entries_show_request_answer_and_duration() -> None:
    data = {
        "attempt": 2,
        "region": "eu",
        "request": {
            "method": "POST",
            "url": "https://api.eu.mailgun.net/v3/mg.example.com/messages",
            "region": "eu",
            "fields": [["to", "ann@example.com"], ["html", "<p>" + "x" * 500 + "</p>"]],
            "files": [
                {
                    "field": "attachment",
                    "filename": "a.pdf",
                    "content_type": "application/pdf",
                    "size": 2048,
                    "sha256": "ab",
                }
            ],
        },
        "response": {"status": 200, "body": '{"id":"<x@mg>","message":"Queued. Thank you."}'},
        "duration_ms": 12.5,
        "reference": "<x@mg>",
    }
    entry = views.entry_view("SENT", NOW, data, views.Redactor([]))
    assert entry.attempt is not None
    assert entry.attempt.url.endswith("/v3/mg.example.com/messages")
    assert entry.attempt.region == "eu"
    assert [(f.name, f.long) for f in entry.attempt.fields] == [("to", False), ("html", True)]
    assert entry.attempt.files == [
        {"field": "attachment", "name": "a.pdf", "type": "application/pdf", "size": "2.0 KiB"}
    ]
    assert entry.attempt.status == 200 and entry.attempt.duration_ms == 12.5
    assert '"message": "Queued. Thank you."' in entry.attempt.body
    assert ("reference", "<x@mg>") in entry.facts
    assert all(k not in dict(entry.facts) for k in ("request", "response", "duration_ms"))
    assert entry.ts == "2025-03-01 12:00:00.000Z"


def test_a_bounce_event_gets_its_hint_from_mailguns_words() -> None:
    data = {
        "event": "failed",
        "code": 550,
        "error_message": "5.1.1 The email account that you tried to reach does not exist",
        "raw": {"event": "failed", "severity": "permanent"},
    }
    entry = views.entry_view("UNDELIVERABLE", NOW, data, views.Redactor([]))
    assert entry.hint is not None and "mailbox does not exist" in entry.hint.title
    assert entry.raw is not None and '"severity": "permanent"' in entry.raw
    assert entry.attempt is None


def test_secrets_are_hidden_wherever_they_appear() -> None:
    secret = "key-0123456789abcdef"
    redact = views.Redactor([secret, None, "abc"])  # too short to hide safely: ignored
    data = {"request": {"fields": [["o:note", f"pasted {secret} here"]]}, "abc": "abc"}
    entry = views.entry_view("SENT", NOW, data, redact)
    assert entry.attempt is not None
    assert entry.attempt.fields[0].value == "pasted **** here"
    assert ("abc", "abc") in entry.facts


def test_provider_settings_are_masked() -> None:
    shown = dict(
        views.masked_settings(
            {
                "api_key": "key-0123456789abcdef",
                "domain": "mg.example.com",
                "webhook_signing_key": "sign-0123456789abcdef",
                "proxy_url": "http://user:hunter2@proxy.example.com:3128",
            }
        )
    )
    assert shown["api_key"] == "****cdef"
    assert shown["webhook_signing_key"] == "****cdef"
    assert shown["proxy_url"] == "http://user:****@proxy.example.com:3128"
    assert "hunter2" not in str(shown)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", None),
        ("15m", NOW - timedelta(minutes=15)),
        ("2h", NOW - timedelta(hours=2)),
        ("3D", NOW - timedelta(days=3)),
        ("2025-01-31T08:00", datetime(2025, 1, 31, 8, 0, tzinfo=UTC)),
        ("2025-01-31T08:00+01:00", datetime(2025, 1, 31, 7, 0, tzinfo=UTC)),
    ],
)
def test_since_accepts_relative_and_absolute_times(text: str, expected: datetime | None) -> None:
    assert views.parse_since(text, now=NOW) == expected


def test_since_says_what_it_accepts() -> None:
    with pytest.raises(ValueError, match="use 15m, 2h, 3d, 1w"):
        views.parse_since("last tuesday", now=NOW)


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        ("/ui/messages/1?x=2", "/ui/messages/1?x=2"),
        ("https://evil.example/ui", "/ui/"),
        ("//evil.example/ui", "/ui/"),
        ("/api", "/ui/"),
        ("/uiother", "/ui/"),
        ("/ui?status=SENT", "/ui?status=SENT"),
        ("/ui\\@evil", "/ui/"),
        (None, "/ui/"),
    ],
)
def test_login_only_returns_to_ui_pages(target: str | None, expected: str) -> None:
    assert views.safe_next(target) == expected
