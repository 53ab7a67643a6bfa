"""Audience filters: every operator, AND/OR nesting, refusals by path, hostile filters, and
properties of the evaluation (the negations, AND/OR as all/any, the wire round trip)."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tidings.domain.audiences import (
    COMPARISONS,
    MAX_DEPTH,
    MAX_RULES,
    MAX_VALUE,
    Condition,
    Group,
    matches,
    parse_filter,
    resolve,
    to_wire,
)
from tidings.domain.errors import ValidationError

PROFILE: dict[str, Any] = {
    "email": "ada@acme.test",
    "name": "Ada",
    "age": 36,
    "score": "12.5",
    "vip": True,
    "plan": None,
    "location": {"city": "Oakland", "zip": "94607"},
    "channels": ["push", "email"],
    "signed_up": "2024-03-01T12:00:00+00:00",
    "born": "1990-06-15",
    "orders": [{"sku": "a1"}, {"sku": "b2"}],
}


def one(operator: str, path: str, value: Any) -> Group:
    return parse_filter({"filters": [{"operator": operator, "path": path, "value": value}]})


def holds(operator: str, path: str, value: Any, profile: dict[str, Any] = PROFILE) -> bool:
    return matches(one(operator, path, value), profile)


@pytest.mark.parametrize(
    ("operator", "path", "value", "expected"),
    [
        ("EQ", "name", "Ada", True),
        ("EQ", "name", "ada", False),  # case-sensitive, as Courier's operators are
        ("EQ", "location.city", "Oakland", True),
        ("EQ", "age", "36", True),
        ("EQ", "age", "36.0", True),
        ("EQ", "vip", "true", True),
        ("EQ", "vip", "True", False),
        ("EQ", "plan", "null", False),
        ("EQ", "missing", "x", False),
        ("EQ", "location", "Oakland", False),
        ("EQ", "orders.1.sku", "b2", True),
        ("NEQ", "name", "Bob", True),
        ("NEQ", "name", "Ada", False),
        ("NEQ", "missing", "x", True),
        ("GT", "age", "35", True),
        ("GT", "age", "36", False),
        ("GTE", "age", "36", True),
        ("LT", "age", "36", False),
        ("LTE", "age", "36", True),
        ("GT", "score", "12", True),  # a string that reads as a number
        ("GT", "name", "1", False),
        ("GT", "vip", "0", False),  # a boolean is not a number
        ("LT", "missing", "1", False),
        ("STARTS_WITH", "email", "ada@", True),
        ("STARTS_WITH", "email", "bob", False),
        ("ENDS_WITH", "email", "@acme.test", True),
        ("ENDS_WITH", "age", "6", False),  # strings only
        ("INCLUDES", "channels", "push", True),
        ("INCLUDES", "channels", "sms", False),
        ("INCLUDES", "channels", ["sms", "email"], True),  # any of the values
        ("INCLUDES", "email", "acme", True),  # a substring of a string field
        ("INCLUDES", "missing", "x", False),
        ("OMIT", "channels", "sms", True),
        ("OMIT", "channels", "push", False),
        ("OMIT", "channels", ["sms", "push"], False),
        ("OMIT", "missing", "x", True),
        ("IS_BEFORE", "born", "1991-01-01", True),
        ("IS_BEFORE", "born", "1990-06-15", False),
        ("IS_AFTER", "signed_up", "2024-03-01", True),
        ("IS_AFTER", "signed_up", "2024-03-01T12:00:00Z", False),
        ("IS_AFTER", "signed_up", "2024-03-01T13:00:00+02:00", True),
        ("IS_BEFORE", "name", "2024-01-01", False),
        ("EXISTS", "email", "true", True),
        ("EXISTS", "plan", "true", False),  # null is not there
        ("EXISTS", "missing", "false", True),
        ("EXISTS", "location.city", "false", False),
    ],
)
def test_each_operator(operator: str, path: str, value: Any, expected: bool) -> None:
    assert holds(operator, path, value) is expected


def test_and_or_nesting() -> None:
    audience = parse_filter(
        {
            "operator": "AND",
            "filters": [
                {"operator": "EQ", "path": "location.city", "value": "Oakland"},
                {
                    "operator": "OR",
                    "filters": [
                        {"operator": "GT", "path": "age", "value": "40"},
                        {"operator": "INCLUDES", "path": "channels", "value": "push"},
                    ],
                },
            ],
        }
    )
    assert matches(audience, PROFILE)
    assert not matches(audience, {**PROFILE, "channels": []})
    assert matches(audience, {**PROFILE, "channels": [], "age": 41})
    assert not matches(audience, {**PROFILE, "location": {"city": "Berkeley"}})


def test_the_request_operator_is_an_alias_for_the_filters() -> None:
    rules = [
        {"operator": "EQ", "path": "name", "value": "Bob"},
        {"operator": "EQ", "path": "age", "value": "36"},
    ]
    assert matches(parse_filter({"filters": rules}, operator="OR"), PROFILE)
    assert not matches(parse_filter({"filters": rules}, operator="AND"), PROFILE)
    assert parse_filter({"filters": rules, "operator": "OR"}, operator="OR").operator == "OR"
    with pytest.raises(ValidationError) as raised:
        parse_filter({"filters": rules, "operator": "OR"}, operator="AND")
    assert raised.value.path == "operator"
    with pytest.raises(ValidationError) as raised:
        parse_filter({"filters": rules})
    assert raised.value.path == "filter.operator"
    # One rule needs no operator.
    assert parse_filter({"filters": rules[:1]}).operator is None


@pytest.mark.parametrize(
    ("raw", "path", "words"),
    [
        (None, "filter", "object"),
        ({}, "filter.filters", "required"),
        ({"filters": []}, "filter.filters", "at least one"),
        ({"filters": [1]}, "filter.filters[0]", "object"),
        ({"filters": [{"path": "a", "value": "b"}]}, "filter.filters[0].operator", "required"),
        (
            {"filters": [{"operator": "eq", "path": "a", "value": "b"}]},
            "filter.filters[0].operator",
            "not an operator",
        ),
        (
            {"filters": [{"operator": "LIKE", "path": "a", "value": "b"}]},
            "filter.filters[0].operator",
            "not an operator",
        ),
        (
            {"filters": [{"operator": "MEMBER_OF", "path": "account_id", "value": "t"}]},
            "filter.filters[0].operator",
            "tenants",
        ),
        ({"filters": [{"operator": "EQ", "value": "b"}]}, "filter.filters[0].path", "required"),
        (
            {"filters": [{"operator": "EQ", "path": "a..b", "value": "b"}]},
            "filter.filters[0].path",
            "empty segment",
        ),
        ({"filters": [{"operator": "EQ", "path": "a"}]}, "filter.filters[0].value", "string"),
        (
            {"filters": [{"operator": "EQ", "path": "a", "value": 3}]},
            "filter.filters[0].value",
            "string",
        ),
        (
            {"filters": [{"operator": "EQ", "path": "a", "value": ["x"]}]},
            "filter.filters[0].value",
            "string",
        ),
        (
            {"filters": [{"operator": "INCLUDES", "path": "a", "value": []}]},
            "filter.filters[0].value",
            "1 to",
        ),
        (
            {"filters": [{"operator": "INCLUDES", "path": "a", "value": ["x", 2]}]},
            "filter.filters[0].value[1]",
            "string",
        ),
        (
            {"filters": [{"operator": "GT", "path": "a", "value": "many"}]},
            "filter.filters[0].value",
            "number",
        ),
        (
            {"filters": [{"operator": "GT", "path": "a", "value": "NaN"}]},
            "filter.filters[0].value",
            "number",
        ),
        (
            {"filters": [{"operator": "IS_AFTER", "path": "a", "value": "yesterday"}]},
            "filter.filters[0].value",
            "ISO 8601",
        ),
        (
            {"filters": [{"operator": "EXISTS", "path": "a", "value": "yes"}]},
            "filter.filters[0].value",
            "'true' or 'false'",
        ),
        (
            {"filters": [{"operator": "EQ", "path": "a", "value": "b", "extra": 1}]},
            "filter.filters[0].extra",
            "not a field",
        ),
        (
            {"filters": [{"operator": "EQ", "path": "a", "value": "b", "filters": []}]},
            "filter.filters[0].filters",
            "only for AND/OR",
        ),
        (
            {"filters": [{"operator": "AND", "path": "a", "filters": []}]},
            "filter.filters[0].path",
            "not used",
        ),
        ({"filters": [{"operator": "OR"}]}, "filter.filters[0].filters", "required"),
        ({"filters": [{"operator": "OR", "filters": []}]}, "filter.filters[0].filters", "least"),
        (
            {"filters": [{"operator": "EQ", "path": "a", "value": "b"}], "operator": "XOR"},
            "filter.operator",
            "AND or OR",
        ),
        ({"filters": [], "name": "x"}, "filter.name", "not a field"),
    ],
)
def test_refusals_name_the_field(raw: Any, path: str, words: str) -> None:
    with pytest.raises(ValidationError) as raised:
        parse_filter(raw)
    assert raised.value.path == path
    assert words in raised.value.message


def _nested(depth: int) -> dict[str, Any]:
    rule: dict[str, Any] = {"operator": "EQ", "path": "name", "value": "Ada"}
    for _ in range(depth):
        rule = {"operator": "AND", "filters": [rule]}
    return {"filters": [rule]}


def test_depth_is_bounded() -> None:
    assert matches(parse_filter(_nested(MAX_DEPTH)), PROFILE)
    with pytest.raises(ValidationError) as raised:
        parse_filter(_nested(MAX_DEPTH + 1))
    assert "deeper than" in raised.value.message
    assert raised.value.path.startswith("filter.filters[0].filters[0]")
    # Far deeper than the limit: refused at the limit, not by exhausting the stack.
    with pytest.raises(ValidationError):
        parse_filter(_nested(5000))


def test_size_is_bounded() -> None:
    rule = {"operator": "EQ", "path": "name", "value": "Ada"}
    assert parse_filter({"filters": [rule] * MAX_RULES, "operator": "OR"})
    with pytest.raises(ValidationError) as raised:
        parse_filter({"filters": [rule] * (MAX_RULES + 1), "operator": "OR"})
    assert raised.value.path == "filter.filters" and "rules" in raised.value.message
    # The count is of every level together.
    wide = {"operator": "OR", "filters": [rule] * 150}
    with pytest.raises(ValidationError):
        parse_filter({"filters": [wide, wide], "operator": "OR"})
    with pytest.raises(ValidationError) as raised:
        one("EQ", "name", "x" * (MAX_VALUE + 1))
    assert raised.value.path == "filter.filters[0].value"
    with pytest.raises(ValidationError):
        one("EQ", "a" * 300, "x")
    with pytest.raises(ValidationError):
        one("EQ", ".".join("a" * 20), "x")
    with pytest.raises(ValidationError):
        one("INCLUDES", "channels", ["x"] * 101)


def test_hostile_profiles_do_not_break_evaluation() -> None:
    huge = {"age": 10**400, "name": "x" * 1_000_000, "channels": list(range(10_000))}
    assert not holds("GT", "age", "1", huge)  # beyond a float: not a number
    assert holds("STARTS_WITH", "name", "xxx", huge)
    assert holds("INCLUDES", "channels", "9999", huge)
    assert not holds("IS_AFTER", "name", "2020-01-01", huge)
    assert resolve({"a": [1]}, "a.5") is resolve({}, "a")  # both missing
    # The widest INCLUDES against a long list field: a set lookup per item.
    many = [f"v{i}" for i in range(100)]
    assert holds("INCLUDES", "tags", many, {"tags": [f"t{i}" for i in range(100_000)] + ["v99"]})
    assert not holds("INCLUDES", "tags", many, {"tags": [f"t{i}" for i in range(100_000)]})
    assert not holds("GT", "n", "1", {"n": "1_000"})  # not a number to a JSON reader
    assert holds("INCLUDES", "n", ["7", "36"], {"n": [1, 36.0, True]})
    assert holds("INCLUDES", "flags", "true", {"flags": [False, True]})


# Properties ---------------------------------------------------------------------------

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-1000, 1000),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from(["Ada", "ada", "36", "12.5", "push", "2024-03-01", "true", ""]),
    st.text(max_size=8),
)
fields = st.sampled_from(["name", "age", "channels", "location.city", "born"])
profiles = st.fixed_dictionaries(
    {},
    optional={
        "name": scalars,
        "age": scalars,
        "channels": st.lists(scalars, max_size=3),
        "location": st.fixed_dictionaries({}, optional={"city": scalars}),
        "born": st.sampled_from(["1990-06-15", "2024-03-01T12:00:00Z", "not a date"]),
    },
)
_VALUES = {
    "EXISTS": st.sampled_from(["true", "false"]),
    "GT": st.sampled_from(["0", "36", "-1.5", "1e3"]),
    "IS_BEFORE": st.sampled_from(["1991-01-01", "2024-03-01T12:00:00+02:00"]),
}


@st.composite
def conditions(draw: st.DrawFn) -> dict[str, Any]:
    operator = draw(st.sampled_from(COMPARISONS))
    family = {"GTE": "GT", "LT": "GT", "LTE": "GT", "IS_AFTER": "IS_BEFORE"}.get(operator, operator)
    value = draw(_VALUES.get(family, st.sampled_from(["Ada", "36", "push", "true", "x", ""])))
    return {"operator": operator, "path": draw(fields), "value": value}


rules = st.recursive(
    conditions(),
    lambda children: st.builds(
        lambda op, fs: {"operator": op, "filters": fs},
        st.sampled_from(["AND", "OR"]),
        st.lists(children, min_size=1, max_size=2),
    ),
    max_leaves=5,
)
filters = st.builds(
    lambda op, fs: {"operator": op, "filters": fs},
    st.sampled_from(["AND", "OR"]),
    st.lists(rules, min_size=1, max_size=3),
)


@settings(suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(filters)
def test_the_wire_shape_round_trips(raw: dict[str, Any]) -> None:
    parsed = parse_filter(raw)
    assert to_wire(parsed) == raw
    assert parse_filter(to_wire(parsed)) == parsed


@settings(suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(filters, profiles)
def test_and_is_all_and_or_is_any(raw: dict[str, Any], profile: dict[str, Any]) -> None:
    parsed = parse_filter(raw)
    each = [matches(r, profile) for r in parsed.rules]
    assert matches(parsed, profile) == (all(each) if parsed.operator == "AND" else any(each))


_OPPOSITES = {"NEQ": "EQ", "OMIT": "INCLUDES"}


@given(conditions(), profiles)
def test_neq_and_omit_are_negations(raw: dict[str, Any], profile: dict[str, Any]) -> None:
    if raw["operator"] not in _OPPOSITES:
        return
    opposite = {**raw, "operator": _OPPOSITES[raw["operator"]]}
    assert holds(**raw, profile=profile) != holds(**opposite, profile=profile)


@given(st.sampled_from(["0", "36", "-1.5", "1e3"]), profiles)
def test_numeric_comparisons_agree(value: str, profile: dict[str, Any]) -> None:
    gt, lte = holds("GT", "age", value, profile), holds("LTE", "age", value, profile)
    lt, gte = holds("LT", "age", value, profile), holds("GTE", "age", value, profile)
    numeric = holds("EXISTS", "age", "true", profile) and (gt or lte)
    if numeric:  # a number compares one way or the other
        assert gt != lte and lt != gte
    else:  # not a number: nothing numeric holds
        assert not (gt or lte or lt or gte)


json_values = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.text(max_size=5)),
    lambda children: st.one_of(
        st.lists(children, max_size=3), st.dictionaries(st.text(max_size=8), children, max_size=3)
    ),
    max_leaves=20,
)
keys = st.sampled_from(["operator", "filters", "path", "value", "x"])
shaped = st.recursive(
    st.one_of(json_values, st.sampled_from(["AND", "OR", "EQ", "GT", "EXISTS", "INCLUDES"])),
    lambda children: st.one_of(
        st.lists(children, max_size=3), st.dictionaries(keys, children, max_size=4)
    ),
    max_leaves=25,
)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(shaped, st.one_of(st.none(), st.sampled_from(["AND", "OR", "NOT", 1])))
def test_anything_either_parses_or_is_refused_by_path(raw: Any, operator: Any) -> None:
    try:
        parsed = parse_filter(raw, operator=operator)
    except ValidationError as exc:
        assert exc.path == "operator" or exc.path.startswith("filter")
        return
    assert isinstance(parsed, Group)
    assert all(isinstance(r, Condition | Group) for r in parsed.rules)
    matches(parsed, {})
