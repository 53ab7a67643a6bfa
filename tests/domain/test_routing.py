"""Courier's routing, decided purely (tidings.domain.routing)."""

from __future__ import annotations

from typing import Any

import pytest

from tidings.domain.routing import Route, Unroutable, plan_route

KNOWN = {"mailgun": "email", "smtp": "email", "twilio": "sms"}


def route(
    routing: dict[str, Any] | None = None,
    channels: dict[str, Any] | None = None,
    strategy: dict[str, Any] | None = None,
    default: str | None = "mailgun",
) -> Route | Unroutable:
    return plan_route(routing, channels, strategy, known_providers=KNOWN, default_provider=default)


def test_nothing_given_is_email_through_the_default() -> None:
    assert route() == Route(providers=("mailgun",))


def test_nothing_given_and_no_default_is_an_empty_route() -> None:
    assert route(default=None) == Route(providers=())


def test_channels_email_providers_give_the_order_without_duplicates() -> None:
    got = route(channels={"email": {"providers": ["smtp", "mailgun", "smtp"]}})
    assert isinstance(got, Route) and got.providers == ("smtp", "mailgun")


def test_single_takes_the_first_deliverable_entry_and_records_those_before() -> None:
    got = route({"method": "single", "channels": ["sms", "push", "email", "chat"]})
    assert isinstance(got, Route) and got.providers == ("mailgun",)
    assert [name for name, _ in got.skipped] == ["sms", "push"]
    assert "does not deliver the sms channel" in got.skipped[0][1]


def test_all_delivers_email_and_records_every_other_channel() -> None:
    got = route({"method": "all", "channels": ["sms", "email", "push"]})
    assert isinstance(got, Route) and got.method == "all"
    assert [name for name, _ in got.skipped] == ["sms", "push"]


def test_provider_keys_in_routing_are_those_providers() -> None:
    got = route({"method": "single", "channels": ["twilio", "smtp", "mailgun"]})
    assert isinstance(got, Route) and got.providers == ("smtp",)
    assert got.skipped[0][0] == "twilio" and "delivers sms" in got.skipped[0][1]
    both = route({"method": "all", "channels": ["smtp", "mailgun"]})
    assert isinstance(both, Route) and both.providers == ("smtp", "mailgun")


def test_nested_routing_is_walked() -> None:
    got = route(
        {"method": "single", "channels": [{"method": "all", "channels": ["push"]}, "email"]}
    )
    assert isinstance(got, Route) and got.providers == ("mailgun",)
    assert got.skipped == (("push", "Tidings does not deliver the push channel"),)


@pytest.mark.parametrize(
    ("channels", "named"),
    [
        (["sms"], "sms"),
        (["sms", "push"], "sms, push"),
        ([{"method": "all", "channels": ["twilio"]}], "twilio"),
    ],
)
def test_only_undelivered_channels_is_unroutable_naming_them(
    channels: list[Any], named: str
) -> None:
    got = route({"method": "single", "channels": channels})
    assert isinstance(got, Unroutable)
    assert got.reason == f"Tidings delivers email only; this message asks for {named}"


def test_the_strategy_applies_when_the_message_gives_no_routing() -> None:
    strategy = {
        "routing": {"method": "single", "channels": ["email"]},
        "channels": {"email": {"providers": ["mailgun", "smtp"]}},
    }
    got = route(strategy=strategy)
    assert isinstance(got, Route) and got.providers == ("mailgun", "smtp")


def test_the_messages_own_routing_wins_over_the_strategy() -> None:
    strategy = {
        "routing": {"method": "single", "channels": ["email"]},
        "channels": {"email": {"providers": ["mailgun", "smtp"]}},
    }
    got = route(channels={"email": {"providers": ["smtp"]}}, strategy=strategy)
    assert isinstance(got, Route) and got.providers == ("smtp",)
    sms = route({"method": "single", "channels": ["sms"]}, strategy=strategy)
    assert isinstance(sms, Unroutable)
