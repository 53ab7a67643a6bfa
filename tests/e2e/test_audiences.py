"""Courier's Audiences API through Courier's SDK on a real server (SQLite and PostgreSQL):
create-or-replace, retrieve, list by cursor, delete, members by each operator family and by
AND/OR nesting, members following the profiles, and hostile filters refused by field."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import courier
import pytest
from courier import Courier

from tests.e2e.conftest import RunningTidings

PEOPLE: dict[str, dict[str, Any]] = {
    "ada": {
        "email": "ada@acme.test",
        "name": "Ada",
        "age": 36,
        "location": {"city": "Oakland"},
        "channels": ["email", "push"],
        "signed_up": "2024-03-01T12:00:00Z",
        "plan": "pro",
    },
    "bob": {
        "email": "bob@example.test",
        "name": "Bob",
        "age": 17,
        "location": {"city": "Berkeley"},
        "channels": ["sms"],
        "signed_up": "2022-01-10",
    },
    "cy": {
        "email": "cy@acme.test",
        "name": "Cy",
        "age": "52",
        "location": {"city": "Oakland"},
        "channels": [],
        "signed_up": "2025-07-04T08:30:00+02:00",
        "plan": None,
    },
    "dee": {"phone_number": "+15555550100", "name": "Dee", "age": 29},
}


@pytest.fixture(params=["sqlite", "postgresql"])
def client(
    start_tidings: Callable[..., RunningTidings], request: pytest.FixtureRequest
) -> Iterator[Courier]:
    """A server on SQLite, then on PostgreSQL (whose collation orders user ids otherwise),
    with PEOPLE's profiles stored."""
    backend: dict[str, Any] = {}
    if request.param == "postgresql":
        backend["database_url"] = str(request.getfixturevalue("postgres_url"))
    client = start_tidings(run_workers=False, **backend).courier()
    for user_id, profile in PEOPLE.items():
        client.profiles.replace(user_id, profile=profile)
    yield client


def rule(operator: str, path: str, value: Any) -> Any:
    return {"operator": operator, "path": path, "value": value}


def members(client: Courier, audience_id: str) -> list[str]:
    """Every member, through every page."""
    found: list[str] = []
    cursor: str | None = None
    while True:
        page = client.audiences.list_members(audience_id, cursor=cursor)
        found += [item.member_id for item in page.items]
        if not page.paging.more:
            assert page.paging.cursor is None
            return found
        cursor = page.paging.cursor


def audience_of(client: Courier, *rules: Any, operator: Any = "AND") -> list[str]:
    client.audiences.update("probe", filter={"filters": rules, "operator": operator})
    return sorted(members(client, "probe"))


def test_create_retrieve_list_replace_delete(client: Courier) -> None:
    made = client.audiences.update(
        "oakland",
        name="Oakland",
        description="People in Oakland",
        filter={"filters": [rule("EQ", "location.city", "Oakland")]},
    )
    audience = made.audience
    assert audience.id == "oakland" and audience.name == "Oakland"
    assert audience.description == "People in Oakland"
    assert audience.filter is not None and audience.operator is None
    assert audience.filter.model_dump(exclude_none=True) == {
        "filters": [rule("EQ", "location.city", "Oakland")]
    }
    assert audience.created_at.endswith("Z") and audience.created_at == audience.updated_at
    assert client.audiences.retrieve("oakland") == audience

    first = client.audiences.list_members("oakland")
    assert sorted(i.member_id for i in first.items) == ["ada", "cy"]
    assert {i.audience_version for i in first.items} == {1}
    assert all(i.audience_id == "oakland" and i.reason and i.added_at for i in first.items)

    # Replaced whole, with the request's operator as the alias of filter.operator.
    replaced = client.audiences.update(
        "oakland",
        operator="OR",
        filter={"filters": [rule("EQ", "location.city", "Oakland"), rule("LT", "age", "18")]},
    ).audience
    assert replaced.operator == "OR" and replaced.filter is not None
    assert replaced.filter.operator == "OR"
    assert replaced.name == "" and replaced.description == ""  # left out: cleared
    assert replaced.created_at == audience.created_at
    second = client.audiences.list_members("oakland")
    assert sorted(i.member_id for i in second.items) == ["ada", "bob", "cy"]
    assert {i.audience_version for i in second.items} == {2}

    listed = client.audiences.list()
    assert [a.id for a in listed.items] == ["oakland"] and not listed.paging.more
    assert listed.items[0] == replaced

    client.audiences.delete("oakland")
    with pytest.raises(courier.NotFoundError) as raised:
        client.audiences.retrieve("oakland")
    assert "oakland" in str(raised.value.body)
    with pytest.raises(courier.NotFoundError):
        client.audiences.delete("oakland")
    with pytest.raises(courier.NotFoundError):
        client.audiences.list_members("oakland")
    assert client.audiences.list().items == []


def test_list_and_members_page_by_cursor(client: Courier) -> None:
    for i in range(25):
        client.audiences.update(f"a{i:02}", filter={"filters": [rule("EXISTS", "email", "true")]})
    seen: list[str] = []
    cursor: str | None = None
    pages = 0
    while True:
        page = client.audiences.list(cursor=cursor)
        pages += 1
        seen += [a.id for a in page.items]
        if not page.paging.more:
            break
        cursor = page.paging.cursor
    assert seen == [f"a{i:02}" for i in range(25)] and pages == 2  # 20 a page
    with pytest.raises(courier.BadRequestError) as raised:
        client.audiences.list(cursor="not-a-cursor")
    assert "cursor" in str(raised.value.body)

    for i in range(45):
        client.profiles.replace(f"bulk{i:03}", profile={"email": f"b{i}@acme.test"})
    everyone = members(client, "a00")
    assert sorted(everyone) == sorted([f"bulk{i:03}" for i in range(45)] + ["ada", "bob", "cy"])
    assert len(everyone) == len(set(everyone))
    with pytest.raises(courier.BadRequestError):
        client.audiences.list_members("a00", cursor="%%%")


@pytest.mark.parametrize(
    ("rules", "expected"),
    [
        ([rule("EQ", "name", "Ada")], ["ada"]),
        ([rule("EQ", "age", "52")], ["cy"]),  # a string holding a number
        ([rule("NEQ", "location.city", "Oakland")], ["bob", "dee"]),
        ([rule("GT", "age", "30")], ["ada", "cy"]),
        ([rule("GTE", "age", "29")], ["ada", "cy", "dee"]),
        ([rule("LT", "age", "29")], ["bob"]),
        ([rule("LTE", "age", "29")], ["bob", "dee"]),
        ([rule("STARTS_WITH", "email", "cy@")], ["cy"]),
        ([rule("ENDS_WITH", "email", "@acme.test")], ["ada", "cy"]),
        ([rule("INCLUDES", "channels", "push")], ["ada"]),
        ([rule("INCLUDES", "channels", ["push", "sms"])], ["ada", "bob"]),
        ([rule("OMIT", "channels", "push")], ["bob", "cy", "dee"]),
        ([rule("IS_BEFORE", "signed_up", "2024-01-01")], ["bob"]),
        ([rule("IS_AFTER", "signed_up", "2024-03-01T12:00:00Z")], ["cy"]),
        ([rule("EXISTS", "plan", "true")], ["ada"]),  # null is not there
        ([rule("EXISTS", "email", "false")], ["dee"]),
    ],
)
def test_each_operator_family(client: Courier, rules: list[Any], expected: list[str]) -> None:
    assert audience_of(client, *rules) == expected


def test_and_or_nesting(client: Courier) -> None:
    oakland_adults_or_texters = [
        {
            "operator": "OR",
            "filters": [
                {
                    "operator": "AND",
                    "filters": [
                        rule("EQ", "location.city", "Oakland"),
                        rule("GTE", "age", "40"),
                    ],
                },
                rule("INCLUDES", "channels", "sms"),
            ],
        },
        rule("EXISTS", "email", "true"),
    ]
    assert audience_of(client, *oakland_adults_or_texters) == ["bob", "cy"]
    assert audience_of(client, *oakland_adults_or_texters, operator="OR") == [
        "ada",
        "bob",
        "cy",
    ]


def test_concurrent_creates_of_one_id_all_succeed(client: Courier) -> None:
    """Eight PUTs of a new id at once: one creates it, the others replace it (on
    PostgreSQL the losing inserts are retried as replacements), and none is an error."""

    def put(i: int) -> int:
        made = client.audiences.update(
            "race", name=f"n{i}", filter={"filters": [rule("GT", "age", str(i))]}
        )
        return int(made.audience.name[1:])

    with ThreadPoolExecutor(max_workers=8) as pool:
        assert sorted(pool.map(put, range(8))) == list(range(8))
    versions = {i.audience_version for i in client.audiences.list_members("race").items}
    assert versions == {8}
    assert [a.id for a in client.audiences.list().items] == ["race"]


def test_members_follow_the_profiles(client: Courier) -> None:
    client.audiences.update("teens", filter={"filters": [rule("LT", "age", "20")]})
    assert members(client, "teens") == ["bob"]
    client.profiles.create("ada", profile={"age": 19})  # a merge
    client.profiles.delete("bob")
    assert members(client, "teens") == ["ada"]


def _refused(client: Courier, body: dict[str, Any]) -> str:
    with pytest.raises(courier.BadRequestError) as raised:
        client.audiences.update("bad", extra_body=body)
    error = raised.value.body
    assert isinstance(error, dict) and error["type"] == "invalid_request_error"
    message: str = error["message"]
    return message


def _nested(depth: int) -> dict[str, Any]:
    current: dict[str, Any] = rule("EQ", "name", "Ada")
    for _ in range(depth):
        current = {"operator": "AND", "filters": [current]}
    return current


def test_hostile_and_wrong_filters_are_refused_by_field(client: Courier) -> None:
    one = rule("EQ", "name", "Ada")
    cases: list[tuple[dict[str, Any], str]] = [
        ({"name": "x"}, "filter is required"),
        ({"filter": {"filters": [rule("LIKE", "name", "A")]}}, "filter.filters[0].operator"),
        ({"filter": {"filters": [rule("eq", "name", "A")]}}, "not an operator"),
        ({"filter": {"filters": [rule("MEMBER_OF", "account_id", "t")]}}, "tenants"),
        ({"filter": {"filters": [one, one]}}, "filter.operator is required"),
        ({"filter": {"filters": [one], "operator": "OR"}, "operator": "AND"}, "operator is AND"),
        ({"filter": {"filters": [rule("GT", "age", "old")]}}, "filter.filters[0].value"),
        ({"filter": {"filters": [rule("EQ", "age", 36)]}}, "filter.filters[0].value"),
        ({"filter": {"filters": [{"operator": "EQ", "value": "x"}]}}, "filter.filters[0].path"),
        ({"filter": {"filters": [{**one, "extra": 1}]}}, "filter.filters[0].extra"),
        ({"filter": {"filters": [one]}, "tenant_id": "t"}, "tenant_id is not a field"),
        ({"filter": {"filters": [_nested(12)]}}, "deeper than 8"),
        ({"filter": {"filters": [_nested(200)]}}, "nested deeper than"),  # the body guard
        ({"filter": {"filters": [one] * 201, "operator": "OR"}}, "200 rules"),
        ({"filter": {"filters": [rule("EQ", "name", "x" * 5000)]}}, "1024 characters"),
        ({"filter": {"filters": [one]}, "name": "n" * 300}, "name must be a string"),
    ]
    for body, words in cases:
        message = _refused(client, body)
        assert words in message, (body, message)
    with pytest.raises(courier.NotFoundError):
        client.audiences.retrieve("bad")  # nothing refused was stored
    with pytest.raises(courier.BadRequestError):
        client.audiences.retrieve("x" * 129)
