"""The dispatcher's decisions (tidings.workers.plan), branch by branch: pure functions, so
plain values in and out — real provider classes from the registry, no I/O."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tidings.domain.status import Reason
from tidings.providers import registry
from tidings.providers.base import OutcomeKind, RequestRecord, SendOutcome
from tidings.workers import plan

NOW = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)
OWNER = "wrk_test"
MAILGUN = plan.Configuration(
    id="prv_mg",
    provider="mailgun",
    settings={"api_key": "key-0123456789abcdef", "domain": "mg.example.test"},
    is_default=True,
)
SMTP = plan.Configuration(
    id="prv_smtp",
    provider="smtp",
    settings={"host": "smtp.example.test", "from_address": "Ops <ops@example.test>"},
)


def situation(**changes: Any) -> plan.Situation:
    base = plan.Situation(
        message_id="msg_1",
        owner=OWNER,
        now=NOW,
        queued=True,
        lease_owner=OWNER,
        expires_at=NOW + timedelta(hours=1),
        attempts=0,
        in_doubt=False,
        has_open_attempt=False,
        user_id=None,
        rendered=False,
        payload={"to": {"email": "ada@example.test"}, "content": {"title": "t", "body": "b"}},
        stored_profile=None,
        provider_id=None,
        route=None,
        configurations=[MAILGUN, SMTP],
        strategy=None,
        providers=registry.classes(),
    )
    return dataclasses.replace(base, **changes)


def route(*providers: str, step: int = 0, since: datetime = NOW) -> plan.RouteState:
    return plan.RouteState(providers=providers, step=step, since=since)


# -- plan_message ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "changes", [{"queued": False}, {"lease_owner": "wrk_other"}, {"lease_owner": None}]
)
def test_a_message_no_longer_ours_is_skipped(changes: dict[str, Any]) -> None:
    assert isinstance(plan.plan_message(situation(**changes)), plan.Skip)


def test_an_expired_message_fails_without_an_attempt() -> None:
    decision = plan.plan_message(situation(expires_at=NOW, attempts=2))
    assert isinstance(decision, plan.End) and not decision.unroutable
    assert decision.reason is Reason.FAILED and "expired" in decision.message
    assert "2 attempt(s)" in decision.message


def test_an_expired_message_with_an_unanswered_attempt_is_still_settled() -> None:
    decision = plan.plan_message(situation(expires_at=NOW, has_open_attempt=True))
    assert isinstance(decision, plan.Go)


def test_a_bad_recipient_is_unroutable() -> None:
    decision = plan.plan_message(situation(payload={"to": {"email": 12}}))
    assert isinstance(decision, plan.End) and decision.unroutable
    assert decision.reason is Reason.NO_CHANNELS


def test_no_email_address_is_unroutable_and_names_the_profile() -> None:
    decision = plan.plan_message(
        situation(payload={"to": {"user_id": "u1"}}, user_id="u1", stored_profile={})
    )
    assert isinstance(decision, plan.End) and decision.unroutable
    assert "profile of user 'u1' has no 'email'" in decision.message
    assert decision.history[0][0] == "PROFILE_LOADED"


def test_first_dispatch_routes_to_the_workspace_default() -> None:
    decision = plan.plan_message(situation())
    assert isinstance(decision, plan.Go)
    assert decision.route.providers == ("mailgun",) and decision.route_changed
    assert decision.configuration == MAILGUN
    assert [t for t, _ in decision.history] == ["ROUTED"]
    assert decision.config.target == "https://api.mailgun.net"


def test_channels_email_providers_give_the_order() -> None:
    payload = {
        **situation().payload,
        "channels": {"email": {"providers": ["smtp", "mailgun"]}},
    }
    decision = plan.plan_message(situation(payload=payload))
    assert isinstance(decision, plan.Go)
    assert decision.route.providers == ("smtp", "mailgun")
    assert decision.configuration == SMTP


def test_only_channels_tidings_does_not_deliver_is_unroutable_naming_them() -> None:
    payload = {**situation().payload, "routing": {"method": "single", "channels": ["sms"]}}
    decision = plan.plan_message(situation(payload=payload))
    assert isinstance(decision, plan.End) and decision.unroutable
    assert decision.reason is Reason.NO_CHANNELS and "sms" in decision.message


def test_a_stored_route_is_kept_and_its_step_followed() -> None:
    decision = plan.plan_message(situation(route=route("mailgun", "smtp", step=1)))
    assert isinstance(decision, plan.Go)
    assert decision.configuration == SMTP and not decision.route_changed
    assert decision.history == []


def test_a_provider_without_a_configuration_is_passed_over() -> None:
    decision = plan.plan_message(situation(route=route("mailgun", "smtp"), configurations=[SMTP]))
    assert isinstance(decision, plan.Go)
    assert decision.configuration == SMTP and decision.route.step == 1
    assert decision.route_changed
    kind, data = decision.history[0]
    assert kind == "FAILOVER" and data["next"] == "smtp" and "no mailgun" in data["why"]


def test_no_configuration_for_any_provider_of_the_route_is_no_providers() -> None:
    decision = plan.plan_message(situation(configurations=[]))
    assert isinstance(decision, plan.End) and decision.unroutable
    assert decision.reason is Reason.NO_PROVIDERS and "POST /providers" in decision.message


def test_an_unknown_provider_key_in_a_stored_configuration_fails() -> None:
    odd = plan.Configuration(id="prv_x", provider="pigeon", settings={}, is_default=True)
    decision = plan.plan_message(situation(configurations=[odd], route=route("pigeon")))
    assert isinstance(decision, plan.End) and not decision.unroutable
    assert decision.reason is Reason.PROVIDER_ERROR and "pigeon" in decision.message


def test_an_override_sending_the_stored_key_elsewhere_fails() -> None:
    payload = {
        **situation().payload,
        "provider_overrides": {"mailgun": {"config": {"host": "https://evil.example"}}},
    }
    decision = plan.plan_message(situation(payload=payload))
    assert isinstance(decision, plan.End)
    assert decision.reason is Reason.PROVIDER_ERROR and "stored key" in decision.message


def test_an_in_doubt_message_is_settled_with_the_configuration_it_went_to() -> None:
    decision = plan.plan_message(
        situation(route=route("smtp", "mailgun"), in_doubt=True, provider_id="prv_mg")
    )
    assert isinstance(decision, plan.Go) and decision.configuration == MAILGUN


def test_route_state_round_trips_through_its_column() -> None:
    state = plan.RouteState(("mailgun", "smtp"), 1, NOW, (("sms", "not delivered"),))
    assert plan.RouteState.from_row(state.as_json(), 1) == state
    assert plan.RouteState.from_row(None, 0) is None
    assert plan.RouteState.from_row(state.as_json(), 7).step == 1  # clamped


# -- plan_outcome ----------------------------------------------------------------------

RECORD = RequestRecord(method="POST", url="u", region="us", fields=[], files=[])


def outcome(kind: OutcomeKind, **changes: Any) -> SendOutcome:
    return SendOutcome(kind=kind, request=RECORD, error_message="boom", **changes)


def decide(result: SendOutcome, **changes: Any) -> Any:
    args: dict[str, Any] = {
        "provider_name": "Mailgun",
        "number": 1,
        "now": NOW,
        "expires_at": NOW + timedelta(hours=1),
        "route": route("mailgun", "smtp"),
        "next_step": 1,
        "provider_timeout_s": 300.0,
        "backoff_s": 10.0,
        "in_doubt_lag_s": 120.0,
    }
    args.update(changes)
    return plan.plan_outcome(result, **args)


def test_sent_is_sent() -> None:
    assert isinstance(decide(outcome(OutcomeKind.SENT)), plan.Sent)


def test_a_refusal_about_the_provider_fails_over() -> None:
    decision = decide(outcome(OutcomeKind.FAILED, provider_fault=True))
    assert decision == plan.FailOver(1, "Mailgun refused: boom")


def test_a_refusal_about_the_provider_with_no_next_one_is_undeliverable() -> None:
    decision = decide(outcome(OutcomeKind.FAILED, provider_fault=True), next_step=None)
    assert decision == plan.Undeliverable(Reason.PROVIDER_ERROR, "boom")


def test_a_refusal_about_the_recipient_never_fails_over() -> None:
    decision = decide(outcome(OutcomeKind.FAILED, provider_fault=False))
    assert isinstance(decision, plan.Undeliverable)


def test_in_doubt_waits_to_be_looked_up_and_never_fails_over() -> None:
    decision = decide(
        outcome(OutcomeKind.IN_DOUBT), route=route("mailgun", "smtp", since=NOW - timedelta(days=1))
    )
    assert decision == plan.Requeue(NOW + timedelta(seconds=120), in_doubt=True)


def test_a_retry_within_the_provider_timeout_stays_with_the_provider() -> None:
    decision = decide(outcome(OutcomeKind.RETRY))
    assert decision == plan.Requeue(NOW + timedelta(seconds=10), in_doubt=False)


def test_retries_past_the_provider_timeout_fail_over() -> None:
    decision = decide(
        outcome(OutcomeKind.RETRY), route=route("mailgun", "smtp", since=NOW - timedelta(minutes=5))
    )
    assert isinstance(decision, plan.FailOver) and "provider timeout (300 s" in decision.why


def test_retries_past_the_provider_timeout_without_a_next_provider_keep_trying() -> None:
    decision = decide(
        outcome(OutcomeKind.RETRY),
        route=route("mailgun", since=NOW - timedelta(hours=1)),
        next_step=None,
    )
    assert isinstance(decision, plan.Requeue)


def test_retries_past_the_expiry_give_up() -> None:
    decision = decide(
        outcome(OutcomeKind.RETRY), expires_at=NOW + timedelta(seconds=5), next_step=None
    )
    assert decision == plan.Undeliverable(Reason.FAILED, "gave up after 1 attempt(s): boom")


def test_retries_past_the_expiry_with_a_next_provider_fail_over() -> None:
    decision = decide(
        outcome(OutcomeKind.RETRY), expires_at=NOW + timedelta(seconds=5), provider_timeout_s=None
    )
    assert isinstance(decision, plan.FailOver) and "expires" in decision.why


def test_throttled_waits_for_the_latest_pause_in_force() -> None:
    asked = NOW + timedelta(seconds=30)
    later = NOW + timedelta(seconds=90)
    decision = decide(
        outcome(OutcomeKind.THROTTLED, retry_at=asked), paused_until=later, jitter_s=0.1
    )
    assert isinstance(decision, plan.Requeue) and not decision.in_doubt
    assert decision.retry_at == later + timedelta(seconds=0.1)
    assert decision.note and "asked to wait until" in decision.note


def test_next_step_skips_providers_without_a_configuration() -> None:
    state = route("mailgun", "pigeon", "smtp")
    assert plan.next_step(state, [MAILGUN, SMTP]) == 2
    assert plan.next_step(state, [MAILGUN]) is None


def test_a_key_means_that_providers_default_configuration() -> None:
    other = dataclasses.replace(MAILGUN, id="prv_mg2", is_default=False)
    assert plan.pick_configuration([other, MAILGUN], "mailgun") == MAILGUN
    assert plan.pick_configuration([other], "mailgun") == other
    assert plan.pick_configuration([other], "smtp") is None
