"""How a bulk user becomes a recipient (``tidings.api.bulk.check_user``): profile fields,
``to`` over them, the legacy ``recipient`` as the user id, data merged; refusals name the
field."""

from __future__ import annotations

from typing import Any

import pytest

from tidings.api.bulk import check_user
from tidings.errors import BadRequest


def test_profile_to_recipient_and_data_make_one_recipient() -> None:
    made = check_user(
        {
            "profile": {"email": "ann@x.test", "name": "Ann", "plan": "pro"},
            "to": {"name": "Annie", "data": {"a": 1, "b": 1}},
            "recipient": "ann",
            "data": {"b": 2},
        },
        "users[0]",
    )
    assert made.recipient == {
        "email": "ann@x.test",
        "name": "Annie",
        "plan": "pro",
        "user_id": "ann",
        "data": {"a": 1, "b": 2},
    }
    assert made.user["recipient"] == "ann"  # kept as given, for list_users
    assert check_user({"to": {"user_id": "bob"}}, "users[1]").recipient == {"user_id": "bob"}


@pytest.mark.parametrize(
    ("user", "expected"),
    [
        ({"to": {"email": "a@x.test", "audience_id": "x"}}, "users[3].to.audience_id"),
        ({"profile": {"email": "a@x.test", "tenant_id": "t"}}, "users[3].profile.tenant_id"),
        (
            {"profile": {"email": "a@x.test", "preferences": {"a": 1}}},
            "users[3].profile.preferences",
        ),
        ({"profile": "a@x.test"}, "users[3].profile must be an object"),
        ({"recipient": 7}, "users[3].recipient must be a string"),
        ({"to": {"user_id": "u" * 300}}, "users[3].user_id must be at most"),
        ({"to": {"phone_number": "+15555550100"}}, "users[3].to.phone_number"),
        ({}, "users[3] needs an address"),
    ],
)
def test_refusals_name_the_field(user: Any, expected: str) -> None:
    with pytest.raises(BadRequest) as raised:
        check_user(user, "users[3]")
    assert expected in raised.value.message
