"""Mailgun event items, as the Events API and webhooks deliver them, -> DeliveryEvent."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from tests.providers.mailgun.fixtures import load
from tidings.domain.events import EventKind
from tidings.providers.mailgun.events import EventParseError, parse_event_item

TIDINGS_ID = "1-6f1d2c3b4a5e6f708192a3b4c5d6e7f8"
MESSAGE_ID = "20260212174255.58bbb7ce85a423e5@mg.example.com"


def test_delivered() -> None:
    item = load("delivered_webhook.json")["event-data"]
    event = parse_event_item(item)
    assert event.kind is EventKind.DELIVERED
    assert event.event_id == "hTWCTD81RtiDN-..."
    assert event.timestamp == datetime.fromtimestamp(1534108637.153125, tz=UTC)
    assert event.timestamp.tzinfo is UTC
    assert event.recipient == "recipient@example.com"
    assert event.provider_message_id == "20180812211713.1.DF5966851B4BAA99@example.org"
    assert event.tidings_id is None  # user-variables: {}
    assert event.domain == "example.org"  # no domain.name: the message id's domain
    assert event.code == 250
    assert event.message == "OK"
    assert event.severity is None
    assert event.raw is item


def test_permanent_failure_with_empty_user_variables_list() -> None:
    event = parse_event_item(load("permanent_fail_event.json"))
    assert event.kind is EventKind.FAILED
    assert event.severity == "permanent"
    assert event.reason == "bounce"
    assert event.code == 550
    assert event.message is not None and event.message.startswith("5.5.0 Requested action")
    assert event.domain == "sample.mailgun.com"
    assert event.tidings_id is None
    assert event.recipient == "badrecipient@sample.mailgun.com"


def test_events_page_temporary_498() -> None:
    (item,) = load("events_page.json")["items"]
    event = parse_event_item(item)
    assert event.kind is EventKind.FAILED
    assert event.severity == "temporary"
    assert event.reason == "generic"
    assert event.code == 498
    assert event.message == "No MX for [example.com]"
    assert event.recipient == "bar@example.com"
    assert event.domain == "samples.mailgun.org"


def test_accepted_with_null_delivery_status_and_bracketed_id() -> None:
    event = parse_event_item(load("accepted_event.json"))
    assert event.kind is EventKind.ACCEPTED
    assert event.provider_message_id == MESSAGE_ID
    assert event.tidings_id == TIDINGS_ID
    assert event.code is None and event.message is None
    assert event.domain == "mg.example.com"


def test_opened_and_clicked() -> None:
    opened = parse_event_item(load("opened_webhook.json")["event-data"])
    clicked = parse_event_item(load("clicked_webhook.json")["event-data"])
    assert opened.kind is EventKind.OPENED and clicked.kind is EventKind.CLICKED
    assert opened.tidings_id == clicked.tidings_id == TIDINGS_ID
    assert opened.url is None
    assert clicked.url == "https://example.com/invoices/42?utm_source=email"
    assert clicked.timestamp == datetime.fromtimestamp(1770918301.11, tz=UTC)


def test_suppress_bounce_605_takes_the_description() -> None:
    event = parse_event_item(load("suppress_bounce_605_event.json"))
    assert event.severity == "permanent"
    assert event.reason == "suppress-bounce"
    assert event.code == 605
    assert event.message == "Not delivering to previously bounced address"


def test_rejected_has_no_recipient() -> None:
    event = parse_event_item(load("rejected_event.json"))
    assert event.kind is EventKind.REJECTED
    assert event.recipient is None
    assert event.reason is not None and event.reason.startswith("Sandbox subdomains")
    assert event.message == event.reason
    assert event.domain == "sandbox0123.mailgun.org"


@pytest.mark.parametrize(
    ("name", "kind"),
    [
        ("complained_event.json", EventKind.COMPLAINED),
        ("unsubscribed_event.json", EventKind.UNSUBSCRIBED),
    ],
)
def test_complaints_and_unsubscribes(name: str, kind: EventKind) -> None:
    event = parse_event_item(load(name))
    assert event.kind is kind
    assert event.tidings_id == TIDINGS_ID
    assert event.domain == "mg.example.com"


def test_missing_id_is_derived_and_stable() -> None:
    item = load("accepted_event.json")
    del item["id"]
    first, second = parse_event_item(item), parse_event_item(dict(item))
    assert first.event_id == second.event_id
    assert first.event_id.startswith("sha256:")


@pytest.mark.parametrize(
    "item",
    [
        {"event": "list_member_uploaded", "timestamp": 1.0},
        {"event": "delivered"},
        {"event": "delivered", "timestamp": "yesterday"},
    ],
)
def test_items_that_are_not_delivery_events(item: dict[str, object]) -> None:
    with pytest.raises(EventParseError):
        parse_event_item(item)
