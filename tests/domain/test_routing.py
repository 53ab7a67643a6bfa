"""The route planner: precedence, single/all, skipped entries, unroutable reasons, JSON."""

from __future__ import annotations

from typing import Any

import pytest

from tidings.domain.routing import Route, Unroutable, plan_route

KNOWN = {"mailgun": "email", "smtp": "email"}


def plan(
    routing: dict[str, Any] | None = None,
    channels: dict[str, Any] | None = None,
    strategy: dict[str, Any] | None = None,
    default: str | None = "mailgun",
) -> Route | Unroutable:
    return plan_route(routing, channels, strategy, known_providers=KNOWN, default_provider=default)


def test_no_routing_anywhere_is_email_through_the_default_provider() -> None:
    assert plan() == Route(("mailgun",), (), "single")
    assert plan(default="smtp") == Route(("smtp",))


def test_no_provider_at_all_is_unroutable() -> None:
    assert plan(default=None) == Unroutable("no email provider is configured")


def test_channels_email_providers_give_the_order_without_duplicates() -> None:
    route = plan(channels={"email": {"providers": ["smtp", "mailgun", "smtp"]}})
    assert route == Route(("smtp", "mailgun"))


def test_provider_keys_in_routing_give_the_order_for_single() -> None:
    route = plan({"method": "single", "channels": ["mailgun", "smtp"]})
    assert route == Route(("mailgun", "smtp"), (), "single")


def test_channels_email_providers_beat_routing_keys() -> None:
    route = plan(
        {"method": "single", "channels": ["mailgun"]},
        {"email": {"providers": ["smtp"]}},
    )
    assert isinstance(route, Route) and route.providers == ("smtp",)


def test_single_takes_the_first_deliverable_entry_and_records_those_before() -> None:
    route = plan({"method": "single", "channels": ["sms", "push", "email", "inbox"]})
    assert isinstance(route, Route)
    assert route.providers == ("mailgun",)
    assert route.skipped == (
        ("sms", "Tidings does not deliver sms"),
        ("push", "Tidings does not deliver push"),
    )


def test_all_delivers_email_and_records_every_other_entry() -> None:
    route = plan({"method": "all", "channels": ["email", "sms", "push"]})
    assert isinstance(route, Route)
    assert route.method == "all"
    assert route.providers == ("mailgun",)
    assert [name for name, _ in route.skipped] == ["sms", "push"]


@pytest.mark.parametrize(
    ("channels", "asked"),
    [(["sms"], "sms"), (["sms", "push"], "sms, push"), (["push", "push"], "push")],
)
def test_nothing_deliverable_is_unroutable_naming_the_channels(
    channels: list[str], asked: str
) -> None:
    for method in ("single", "all"):
        result = plan({"method": method, "channels": channels})
        assert result == Unroutable(f"Tidings delivers email only; this message asks for {asked}")


def test_nested_routing_is_followed() -> None:
    nested = {"method": "single", "channels": ["sms", {"method": "all", "channels": ["smtp"]}]}
    route = plan(nested)
    assert isinstance(route, Route)
    assert route.providers == ("smtp",)
    assert route.skipped == (("sms", "Tidings does not deliver sms"),)
    deep = {"method": "single", "channels": [{"method": "single", "channels": ["push"]}]}
    assert plan(deep) == Unroutable("Tidings delivers email only; this message asks for push")


def test_nesting_deeper_than_the_bound_is_left_out() -> None:
    routing: dict[str, Any] = {"method": "single", "channels": ["smtp"]}
    for _ in range(6):
        routing = {"method": "single", "channels": [routing]}
    assert isinstance(plan(routing), Unroutable)


def test_later_fallbacks_join_the_order_but_are_not_skipped() -> None:
    route = plan({"method": "single", "channels": ["email", "sms", "smtp"]})
    assert route == Route(("smtp",), (), "single")


def test_message_level_routing_wins_over_the_strategy() -> None:
    strategy = {
        "routing": {"method": "single", "channels": ["sms"]},
        "channels": {},
        "providers": {},
    }
    assert isinstance(plan(strategy=strategy), Unroutable)
    route = plan({"method": "single", "channels": ["smtp"]}, strategy=strategy)
    assert route == Route(("smtp",))


def test_strategy_routes_a_message_without_its_own() -> None:
    strategy = {
        "routing": {"method": "single", "channels": ["email"]},
        "channels": {"email": {"providers": ["mailgun", "smtp"]}},
        "providers": {},
    }
    assert plan(strategy=strategy) == Route(("mailgun", "smtp"))
    # The message's own email providers win over the strategy's.
    assert plan(None, {"email": {"providers": ["smtp"]}}, strategy) == Route(("smtp",))
    by_keys = {"routing": {"method": "single", "channels": ["smtp", "mailgun"]}}
    assert plan(strategy=by_keys) == Route(("smtp", "mailgun"))
    # Message routing naming only a channel: the strategy's email providers still apply.
    assert plan({"method": "single", "channels": ["email"]}, None, strategy) == Route(
        ("mailgun", "smtp")
    )


def test_unknown_provider_keys_are_skipped_with_a_reason() -> None:
    route = plan(channels={"email": {"providers": ["postmark", "smtp"]}})
    assert isinstance(route, Route)
    assert route.providers == ("smtp",)
    assert route.skipped == (("postmark", "postmark is not an email provider Tidings has"),)
    assert isinstance(plan(channels={"email": {"providers": ["postmark"]}}), Route)


def test_an_unknown_routing_entry_is_named() -> None:
    result = plan({"method": "single", "channels": ["carrier-pigeon"]})
    assert result == Unroutable("Tidings delivers email only; this message asks for carrier-pigeon")
    route = plan({"method": "all", "channels": ["email", "carrier-pigeon"]})
    assert isinstance(route, Route)
    assert route.skipped == (
        ("carrier-pigeon", "carrier-pigeon is neither a channel nor a provider Tidings has"),
    )


def test_a_provider_on_a_channel_not_delivered() -> None:
    result = plan_route(
        {"method": "single", "channels": ["twilio", "email"]},
        None,
        None,
        known_providers={**KNOWN, "twilio": "sms"},
        default_provider="mailgun",
    )
    assert result == Route(
        ("mailgun",), (("twilio", "Tidings does not deliver sms (provider twilio)"),)
    )


def test_routing_method_all_for_email_is_unroutable() -> None:
    result = plan(channels={"email": {"providers": ["smtp"], "routing_method": "all"}})
    assert isinstance(result, Unroutable) and "sends each email once" in result.reason


def test_empty_routing_is_like_none() -> None:
    assert plan({"method": "single", "channels": []}) == Route(("mailgun",))


def test_route_json_round_trip() -> None:
    route = Route(("mailgun", "smtp"), (("sms", "Tidings does not deliver sms"),), "all")
    assert Route.from_json(route.as_json()) == route
    assert route.as_json() == {
        "providers": ["mailgun", "smtp"],
        "skipped": [["sms", "Tidings does not deliver sms"]],
        "method": "all",
    }
    with pytest.raises(ValueError, match=r"route\.method"):
        Route.from_json({"providers": [], "method": "most"})
