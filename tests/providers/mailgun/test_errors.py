"""Classifying Mailgun's answers (and missing answers) into what the dispatcher does next."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import aiohttp
import pytest

from tidings.providers.base import OutcomeKind, RequestRecord
from tidings.providers.mailgun.errors import (
    DEFAULT_THROTTLE_BACKOFF,
    Progress,
    classify,
    classify_transport_error,
    mailgun_message,
    parse_http_date,
    throttle_retry_at,
)

NOW = datetime(2025, 8, 25, 6, 0, 0, tzinfo=UTC)
RECORD = RequestRecord(
    method="POST",
    url="https://api.mailgun.net/v3/mg.example.com/messages",
    region="us",
    fields=[("to", "alice@example.com")],
    files=[],
)
THROTTLE_BODY = (
    '{"message": "Domain mg.example.com is not allowed to send: recipient limit exceeded, '
    'try again after Mon, 25 Aug 2025 07:00:31 UTC"}'
)


def test_accepted() -> None:
    body = (
        '{"id": "<20260203192638.000be97f99f8cea1@mg.example.com>", '
        '"message": "Queued. Thank you."}'
    )
    outcome = classify(200, body, {}, request=RECORD, now=NOW, duration_ms=12.5)
    assert outcome.kind is OutcomeKind.SENT
    assert outcome.provider_message_id == "20260203192638.000be97f99f8cea1@mg.example.com"
    assert outcome.status_code == 200
    assert outcome.response_body == body
    assert outcome.duration_ms == 12.5
    assert outcome.error_message is None and outcome.hint is None


def test_2xx_without_an_id_is_in_doubt() -> None:
    outcome = classify(200, "<html>welcome</html>", {}, request=RECORD, now=NOW)
    assert outcome.kind is OutcomeKind.IN_DOUBT


@pytest.mark.parametrize(
    ("status", "body", "message"),
    [
        (400, '{"message": "from parameter is missing"}', "from parameter is missing"),
        (
            404,
            '{"message": "Domain not found: mg.example.com"}',
            "Domain not found: mg.example.com",
        ),
        (
            413,
            '{"message": "request size exceeds 52.4MiB limit"}',
            "request size exceeds 52.4MiB limit",
        ),
        (
            403,
            '{"message": "Domain example is not allowed to send large batches yet"}',
            "Domain example is not allowed to send large batches yet",
        ),
        (
            400,
            '{"message": "Domain mg.example.com is not allowed to send: account disabled"}',
            "Domain mg.example.com is not allowed to send: account disabled",
        ),
        (
            429,
            '{"message": "Domain mg.example.com is not allowed to send: account disabled"}',
            "Domain mg.example.com is not allowed to send: account disabled",
        ),
    ],
)
def test_permanent_failures_keep_mailguns_message(status: int, body: str, message: str) -> None:
    outcome = classify(status, body, {}, request=RECORD, now=NOW)
    assert outcome.kind is OutcomeKind.FAILED
    assert outcome.error_message == message
    assert outcome.retry_at is None


def test_unauthorized() -> None:
    outcome = classify(401, "Forbidden", {}, request=RECORD, now=NOW)
    assert outcome.kind is OutcomeKind.FAILED
    assert outcome.error_message is not None
    assert outcome.error_message.startswith(
        "Mailgun refused the API key (401 Forbidden): wrong API key or wrong region"
    )
    assert outcome.hint is not None and "region" in outcome.hint
    assert outcome.response_body == "Forbidden"


def test_throttled_with_retry_after_seconds() -> None:
    outcome = classify(429, THROTTLE_BODY, {"Retry-After": "120"}, request=RECORD, now=NOW)
    assert outcome.kind is OutcomeKind.THROTTLED
    assert outcome.retry_at == NOW + timedelta(seconds=120)
    assert outcome.hint is not None and "Business Verification" in outcome.hint


def test_throttled_with_retry_after_date() -> None:
    headers = {"retry-after": "Mon, 25 Aug 2025 06:05:00 GMT"}
    outcome = classify(429, '{"message": "slow down"}', headers, request=RECORD, now=NOW)
    assert outcome.retry_at == datetime(2025, 8, 25, 6, 5, tzinfo=UTC)


def test_throttled_with_rate_limit_reset_epoch() -> None:
    reset = NOW + timedelta(seconds=300)
    headers = {"X-RateLimit-Reset": str(int(reset.timestamp()))}
    outcome = classify(429, "{}", headers, request=RECORD, now=NOW)
    assert outcome.retry_at == reset


def test_throttled_420_with_date_in_body() -> None:
    outcome = classify(420, THROTTLE_BODY, {}, request=RECORD, now=NOW)
    assert outcome.kind is OutcomeKind.THROTTLED
    assert outcome.retry_at == datetime(2025, 8, 25, 7, 0, 31, tzinfo=UTC)
    assert outcome.error_message is not None and "try again after" in outcome.error_message


def test_throttled_without_a_time_backs_off_by_default() -> None:
    outcome = classify(429, '{"message": "Too Many Requests"}', {}, request=RECORD, now=NOW)
    assert outcome.retry_at == NOW + DEFAULT_THROTTLE_BACKOFF


def test_retry_at_is_never_in_the_past() -> None:
    assert throttle_retry_at({"Retry-After": "Mon, 25 Aug 2025 05:00:00 GMT"}, "", NOW) == NOW
    assert throttle_retry_at({"Retry-After": "-5"}, "", NOW) == NOW


def test_rate_limit_reset_small_value_is_a_delay() -> None:
    assert throttle_retry_at({"X-RateLimit-Reset": "30"}, "", NOW) == NOW + timedelta(seconds=30)


@pytest.mark.parametrize("status", [500, 502, 503, 504, 408])
def test_server_errors_are_retried(status: int) -> None:
    outcome = classify(status, '{"message": "Internal Server Error"}', {}, request=RECORD, now=NOW)
    assert outcome.kind is OutcomeKind.RETRY
    assert outcome.error_message == "Internal Server Error"


def test_redirect_is_a_failure_naming_the_url() -> None:
    outcome = classify(302, "", {"Location": "/x"}, request=RECORD, now=NOW)
    assert outcome.kind is OutcomeKind.FAILED
    assert outcome.error_message is not None and RECORD.url in outcome.error_message


def test_parse_http_date() -> None:
    assert parse_http_date("Mon, 25 Aug 2025 07:00:31 UTC") == datetime(
        2025, 8, 25, 7, 0, 31, tzinfo=UTC
    )
    assert parse_http_date("Mon, 25 Aug 2025 09:00:31 +0200") == datetime(
        2025, 8, 25, 7, 0, 31, tzinfo=UTC
    )
    assert parse_http_date("Mon, 25 Aug 2025 07:00:31 -0000") == datetime(
        2025, 8, 25, 7, 0, 31, tzinfo=UTC
    )
    assert parse_http_date("soon") is None


def test_mailgun_message() -> None:
    assert mailgun_message('{"message": "x"}') == "x"
    assert mailgun_message("Forbidden\n") == "Forbidden"
    assert mailgun_message('["not", "an object"]') == '["not", "an object"]'


@pytest.mark.parametrize(
    ("error", "progress", "kind"),
    [
        (aiohttp.ServerDisconnectedError(), Progress.WRITTEN, OutcomeKind.IN_DOUBT),
        (TimeoutError(), Progress.WRITTEN, OutcomeKind.IN_DOUBT),
        (ConnectionResetError("reset"), Progress.PARTIALLY_WRITTEN, OutcomeKind.RETRY),
        (ConnectionRefusedError("refused"), Progress.NOT_CONNECTED, OutcomeKind.RETRY),
    ],
)
def test_transport_errors(error: BaseException, progress: Progress, kind: OutcomeKind) -> None:
    outcome = classify_transport_error(error, progress, request=RECORD, duration_ms=3.0)
    assert outcome.kind is kind
    assert outcome.status_code is None
    assert outcome.error_message
    assert outcome.duration_ms == 3.0
    if kind is OutcomeKind.IN_DOUBT:
        assert "tidings-id" in outcome.error_message
