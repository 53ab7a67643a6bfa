"""Courier's audience filters: parsing a filter into a checked value, and matching a profile.

An audience's ``filter`` is ``{"filters": [rule, ...], "operator": "AND" | "OR"}``. A rule is
either a condition ``{"operator": "EQ", "path": "location.city", "value": "Oakland"}`` or a
nested group ``{"operator": "AND" | "OR", "filters": [rule, ...]}``. ``path`` names a profile
field, dotted for nested fields (``location.city``; a segment of digits indexes a list).

What each operator means (Courier's audience operators reference; operators are
case-sensitive, as Courier's are, and so are the string comparisons):

* ``EQ`` / ``NEQ``: the field equals / does not equal the value. A number equals a value that
  reads as the same number, a boolean the value ``"true"`` or ``"false"``; a missing field
  equals nothing, so ``NEQ`` matches it.
* ``GT`` ``GTE`` ``LT`` ``LTE``: numeric; the value must read as a number, and the field must
  be a number (or a string that reads as one), else the profile does not match.
* ``STARTS_WITH`` / ``ENDS_WITH``: the field is a string with that prefix / suffix.
* ``INCLUDES``: the value is a string or a list of strings (Courier: "any of the specified
  values"); a list field includes it when one of its items equals one of them, a string
  field when one of them is a substring. ``OMIT`` is its negation (a missing field omits
  everything).
* ``IS_BEFORE`` / ``IS_AFTER``: the value is an ISO 8601 date or date-time; the field must be
  one too (a date is its midnight, a time without a zone is UTC).
* ``EXISTS``: the value is ``"true"`` (the field is present and not null) or ``"false"``.
* ``MEMBER_OF`` is tenant membership in Courier; Tidings has no tenants and refuses it.

A filter is bounded (depth, rule count, path and value sizes) so that a hostile one cannot
cost more than a bounded amount per profile. Every problem is a :class:`ValidationError`
whose path names the offending field (``filter.filters[1].filters[0].operator``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any, Literal

from tidings.domain.errors import ValidationError, index_path, key_path

LOGICAL = ("AND", "OR")
COMPARISONS = (
    "EQ",
    "NEQ",
    "GT",
    "GTE",
    "LT",
    "LTE",
    "INCLUDES",
    "OMIT",
    "STARTS_WITH",
    "ENDS_WITH",
    "IS_BEFORE",
    "IS_AFTER",
    "EXISTS",
)
NUMERIC = ("GT", "GTE", "LT", "LTE")
DATES = ("IS_BEFORE", "IS_AFTER")
MULTI = ("INCLUDES", "OMIT")  # the operators whose value may be a list of strings

MAX_DEPTH = 8  # nested groups below the top-level filter
MAX_RULES = 200  # conditions and groups in one filter, all levels together
MAX_PATH = 256
MAX_SEGMENTS = 16
MAX_VALUE = 1024
MAX_VALUES = 100  # items of an INCLUDES / OMIT list

Logical = Literal["AND", "OR"]
_RULE_KEYS = ("operator", "path", "value", "filters")
_FILTER_KEYS = ("filters", "operator")


@dataclass(frozen=True, slots=True)
class Condition:
    """One comparison of a profile field with a value."""

    operator: str
    path: str
    value: str | tuple[str, ...]
    # The value read once, at parse time: a number, a time, a flag, per the operator.
    number: float | None = None
    when: datetime | None = None
    flag: bool | None = None
    # INCLUDES / OMIT: the values as a set, so that a long list field costs one lookup an
    # item rather than one comparison an item per value.
    choices: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class Group:
    """Rules joined by AND or OR (the top-level filter is a group too). ``operator`` is
    None only for a top-level filter of one rule that named none."""

    operator: Logical | None
    rules: tuple[Condition | Group, ...]


Rule = Condition | Group


def parse_filter(raw: Any, *, operator: Any = None, path: str = "filter") -> Group:
    """The checked filter of an audience. ``operator`` is the request's top-level
    ``operator``, Courier's alias for ``filter.operator``; both may be given only if they
    agree."""
    if not isinstance(raw, Mapping):
        raise ValidationError(path, "must be an object with filters (and operator)")
    _no_unknown(raw, _FILTER_KEYS, path)
    alias = _logical(operator, "operator") if operator is not None else None
    own = raw.get("operator")
    own = _logical(own, key_path(path, "operator")) if own is not None else None
    if alias is not None and own is not None and alias != own:
        raise ValidationError(
            "operator", f"is {alias} but {key_path(path, 'operator')} is {own}: give one"
        )
    budget = [MAX_RULES]
    rules = _rules(raw.get("filters"), key_path(path, "filters"), 0, budget)
    joined = own or alias
    if joined is None and len(rules) > 1:
        raise ValidationError(
            key_path(path, "operator"), "is required (AND or OR) when filters has several rules"
        )
    return Group(joined, rules)


def _no_unknown(raw: Mapping[Any, Any], known: tuple[str, ...], path: str) -> None:
    for key in raw:
        if key not in known:
            raise ValidationError(
                key_path(path, str(key)[:64]), f"is not a field here (fields: {', '.join(known)})"
            )


def _logical(value: Any, path: str) -> Logical:
    if value == "AND":
        return "AND"
    if value == "OR":
        return "OR"
    raise ValidationError(path, "must be AND or OR")


def _rules(raw: Any, path: str, depth: int, budget: list[int]) -> tuple[Rule, ...]:
    if not isinstance(raw, list):
        raise ValidationError(path, "is required: a list of filter rules")
    if not raw:
        raise ValidationError(path, "must hold at least one rule")
    budget[0] -= len(raw)
    if budget[0] < 0:
        raise ValidationError(path, f"makes the filter longer than {MAX_RULES} rules in all")
    return tuple(_rule(item, index_path(path, i), depth, budget) for i, item in enumerate(raw))


def _rule(raw: Any, path: str, depth: int, budget: list[int]) -> Rule:
    if not isinstance(raw, Mapping):
        raise ValidationError(path, "must be an object (operator with path and value, or filters)")
    _no_unknown(raw, _RULE_KEYS, path)
    operator = raw.get("operator")
    where = key_path(path, "operator")
    if not isinstance(operator, str):
        raise ValidationError(where, "is required")
    if operator in LOGICAL:
        for key in ("path", "value"):
            if key in raw:
                raise ValidationError(
                    key_path(path, key), f"is not used by a nested {operator} group"
                )
        if depth + 1 > MAX_DEPTH:
            raise ValidationError(path, f"nests groups deeper than {MAX_DEPTH} levels")
        rules = _rules(raw.get("filters"), key_path(path, "filters"), depth + 1, budget)
        return Group(_logical(operator, where), rules)
    if operator == "MEMBER_OF":
        raise ValidationError(
            where, "MEMBER_OF (tenant membership) is not supported: Tidings has no tenants"
        )
    if operator not in COMPARISONS:
        raise ValidationError(
            where,
            f"'{operator[:64]}' is not an operator (operators: "
            f"{', '.join(COMPARISONS + LOGICAL)}; case-sensitive)",
        )
    if "filters" in raw:
        raise ValidationError(
            key_path(path, "filters"), f"is only for AND/OR groups, not {operator}"
        )
    return _condition(operator, raw, path)


def _condition(operator: str, raw: Mapping[str, Any], path: str) -> Condition:
    field = _field_path(raw.get("path"), key_path(path, "path"))
    where = key_path(path, "value")
    value = raw.get("value")
    if operator in MULTI and isinstance(value, list):
        if not value or len(value) > MAX_VALUES:
            raise ValidationError(where, f"must list 1 to {MAX_VALUES} strings")
        items = tuple(_string(v, index_path(where, i)) for i, v in enumerate(value))
        return Condition(operator, field, items, choices=frozenset(items))
    text = _string(value, where)
    if operator in MULTI:
        return Condition(operator, field, text, choices=frozenset((text,)))
    if operator in NUMERIC:
        number = _number(text)
        if number is None:
            raise ValidationError(where, f"must be a number for {operator} ('{text[:64]}')")
        return Condition(operator, field, text, number=number)
    if operator in DATES:
        when = _time(text)
        if when is None:
            raise ValidationError(
                where, f"must be an ISO 8601 date or date-time for {operator} ('{text[:64]}')"
            )
        return Condition(operator, field, text, when=when)
    if operator == "EXISTS":
        if text not in ("true", "false"):
            raise ValidationError(where, "must be 'true' or 'false' for EXISTS")
        return Condition(operator, field, text, flag=text == "true")
    return Condition(operator, field, text)


def _field_path(raw: Any, where: str) -> str:
    if not isinstance(raw, str) or not raw:
        raise ValidationError(where, "is required: the profile field to compare (e.g. 'email')")
    if len(raw) > MAX_PATH:
        raise ValidationError(where, f"is longer than {MAX_PATH} characters")
    segments = raw.split(".")
    if len(segments) > MAX_SEGMENTS:
        raise ValidationError(where, f"has more than {MAX_SEGMENTS} dotted segments")
    if any(not s for s in segments):
        raise ValidationError(where, f"'{raw}' has an empty segment")
    return raw


def _string(value: Any, where: str) -> str:
    if not isinstance(value, str):
        raise ValidationError(where, "is required: a string (Courier's filter values are strings)")
    if len(value) > MAX_VALUE:
        raise ValidationError(where, f"is longer than {MAX_VALUE} characters")
    return value


def _number(value: Any) -> float | None:
    """A finite number, from a JSON number or a string that reads as one (not a boolean)."""
    if isinstance(value, bool):
        return None
    try:
        if isinstance(value, int | float):
            number = float(value)
        elif isinstance(value, str) and len(value) <= 64 and "_" not in value:
            # float() would also read "1_000"; a JSON reader (and Courier's) would not.
            number = float(value.strip())
        else:
            return None
    except (ValueError, OverflowError):  # "abc"; an integer beyond a float's range
        return None
    return number if math.isfinite(number) else None


def _time(value: Any) -> datetime | None:
    """An aware datetime from an ISO 8601 date or date-time string (a date is its midnight
    UTC, a time without a zone is UTC)."""
    if not isinstance(value, str) or not 0 < len(value) <= 64:
        return None
    text = value.strip()
    try:
        if len(text) == 10:
            day = date.fromisoformat(text)
            return datetime(day.year, day.month, day.day, tzinfo=UTC)
        when = datetime.fromisoformat(text)
    except ValueError:
        return None
    return when if when.tzinfo is not None else when.replace(tzinfo=UTC)


_MISSING = object()


def resolve(profile: Mapping[str, Any], path: str) -> Any:
    """The profile's value at a dotted path, or ``_MISSING``."""
    current: Any = profile
    for segment in path.split("."):
        if isinstance(current, Mapping):
            if segment not in current:
                return _MISSING
            current = current[segment]
        elif isinstance(current, list) and segment.isdigit() and int(segment) < len(current):
            current = current[int(segment)]
        else:
            return _MISSING
    return current


def _equals(field: Any, value: str) -> bool:
    if isinstance(field, bool):
        return value == ("true" if field else "false")
    if isinstance(field, str):
        return field == value
    if isinstance(field, int | float):
        number = _number(value)
        return number is not None and float(field) == number
    return False


def _includes(field: Any, choices: frozenset[str]) -> bool:
    if isinstance(field, str):
        return any(v in field for v in choices)
    items = field if isinstance(field, list) else [field]
    for item in items:
        if isinstance(item, str):
            if item in choices:
                return True
        elif isinstance(item, bool | int | float) and any(_equals(item, v) for v in choices):
            return True
    return False


def _holds(rule: Condition, profile: Mapping[str, Any]) -> bool:
    field = resolve(profile, rule.path)
    op = rule.operator
    if op == "EXISTS":
        return (field is not _MISSING and field is not None) == rule.flag
    if op == "INCLUDES":
        return field is not _MISSING and _includes(field, rule.choices)
    if op == "OMIT":
        return field is _MISSING or not _includes(field, rule.choices)
    assert isinstance(rule.value, str)  # only INCLUDES / OMIT take a list
    if op == "EQ":
        return _equals(field, rule.value)
    if op == "NEQ":
        return not _equals(field, rule.value)
    if op == "STARTS_WITH":
        return isinstance(field, str) and field.startswith(rule.value)
    if op == "ENDS_WITH":
        return isinstance(field, str) and field.endswith(rule.value)
    if op in NUMERIC:
        number = _number(field)
        if number is None or rule.number is None:
            return False
        if op == "GT":
            return number > rule.number
        if op == "GTE":
            return number >= rule.number
        if op == "LT":
            return number < rule.number
        return number <= rule.number
    when = _time(field)
    if when is None or rule.when is None:
        return False
    return when < rule.when if op == "IS_BEFORE" else when > rule.when


def matches(rule: Rule, profile: Mapping[str, Any]) -> bool:
    """Whether a profile belongs: the filter (or one rule of it) holds for it."""
    if isinstance(rule, Condition):
        return _holds(rule, profile)
    if rule.operator == "OR":
        return any(matches(r, profile) for r in rule.rules)
    return all(matches(r, profile) for r in rule.rules)


def to_wire(rule: Rule) -> dict[str, Any]:
    """Courier's shape of a filter (or of one rule): what the API stores and answers."""
    if isinstance(rule, Condition):
        value: str | list[str] = list(rule.value) if isinstance(rule.value, tuple) else rule.value
        return {"operator": rule.operator, "path": rule.path, "value": value}
    wire: dict[str, Any] = {"filters": [to_wire(r) for r in rule.rules]}
    if rule.operator is not None:
        wire["operator"] = rule.operator
    return wire
