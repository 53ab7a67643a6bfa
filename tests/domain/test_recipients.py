"""Parsing Courier ``message.to``."""

from __future__ import annotations

from typing import Any

import pytest

from tidings.domain.recipients import (
    Recipient,
    RecipientError,
    is_valid_email,
    parse_recipients,
)


def test_one_object() -> None:
    assert parse_recipients({"email": "jane@example.com"}) == [Recipient(email="jane@example.com")]


def test_a_list_with_every_field() -> None:
    recipients = parse_recipients(
        [
            {"user_id": "u1"},
            {
                "email": " jane@example.com ",
                "phone_number": "+15555550100",
                "locale": "fr",
                "data": {"name": "Jane"},
                "preferences": {"x": 1},
                "context": {"tenant_id": "t1"},
                "first_name": "Jane",
            },
        ]
    )
    assert recipients[0] == Recipient(user_id="u1")
    jane = recipients[1]
    assert jane.email == "jane@example.com"
    assert jane.tenant_id == "t1"
    assert jane.data == {"name": "Jane"}
    assert jane.profile_overrides() == {
        "first_name": "Jane",
        "email": "jane@example.com",
        "phone_number": "+15555550100",
        "locale": "fr",
    }


def test_tenant_id_wins_over_context() -> None:
    (one,) = parse_recipients({"user_id": "u", "tenant_id": "a", "context": {"tenant_id": "b"}})
    assert one.tenant_id == "a"


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("jane@example.com", "message.to must be a recipient object or a list of them"),
        ([], "message.to must name at least one recipient"),
        (
            {"data": {}},
            "message.to must have an email, a user_id, a phone_number or a list_id",
        ),
        (
            [{"email": "a@example.com"}, {"email": "not-an-address"}],
            "message.to[1].email is not a valid email address",
        ),
        ([{"email": "a@example.com"}, 3], "message.to[1] must be an object"),
        ({"email": ""}, "message.to must have an email, a user_id, a phone_number or a list_id"),
        ({"user_id": 5}, "message.to.user_id must be a string"),
        ({"user_id": "u", "data": []}, "message.to.data must be an object"),
        (
            {"user_id": "u", "context": {"tenant_id": 1}},
            "message.to.context.tenant_id must be a string",
        ),
    ],
)
def test_errors_name_the_field(value: Any, message: str) -> None:
    with pytest.raises(RecipientError) as caught:
        parse_recipients(value)
    assert str(caught.value) == message


@pytest.mark.parametrize(
    "address",
    ["a@b.co", "jane+bounce@example.com", "o'brien@example.ie", "x@bücher.de", "a.b@c.d.e"],
)
def test_valid_addresses(address: str) -> None:
    assert is_valid_email(address)


@pytest.mark.parametrize(
    "address",
    [
        "a@b",
        "a@@b.com",
        "a b@c.com",
        "@b.com",
        "a@",
        "a@-b.com",
        ".a@b.com",
        "a..b@c.com",
        "Jane <jane@example.com>",
        '"quoted"@example.com',
        "a@b.com\n",
        "a@" + "x" * 64 + ".com",
    ],
)
def test_invalid_addresses(address: str) -> None:
    assert not is_valid_email(address)
