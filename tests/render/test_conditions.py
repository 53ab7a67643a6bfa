"""Elemental ``if``: Courier's JavaScript-like conditions, evaluated safely."""

from __future__ import annotations

from typing import Any

import pytest

from tidings.render.conditions import check_condition, evaluate_condition
from tidings.render.errors import RenderError

SCOPE: dict[str, Any] = {
    "data": {"plan": "pro", "n": 3, "s": "3", "items": [1, 2], "empty": [], "zero": 0},
    "profile": {"vip": False, "email": "a@b.c"},
    "refs": {"el3": {"visible": True, "content": "Hi"}},
    "$": {"item": {"name": "Mouse"}, "index": 0},
}


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("data.plan === 'pro'", True),
        ('data.plan !== "pro"', False),
        ("refs.el3.visible && !profile.vip", True),
        ("refs.el3.content === 'Hi'", True),
        ("refs.nope.visible", False),
        ("data.n > 2 && data.n <= 3", True),
        ("data.s == 3", True),
        ("data.s === 3", False),
        ("data.missing", False),
        ("!data.missing", True),
        ("data.items.length === 2", True),
        ("data.items[1] === 2", True),
        ("data['plan'] == 'pro'", True),
        ("$.index === 0 && $.item.name === 'Mouse'", True),
        ("(data.n === 1 || data.n === 3) && true", True),
        ("data.empty", True),  # JavaScript: an empty array is truthy
        ("data.zero", False),
        ("null == undefined", True),
        ("null === undefined", False),
        ("data.plan < 'q'", True),
        ("profile.email", True),
        ("data.zero || data.plan === 'pro'", True),
    ],
)
def test_javascript_semantics(source: str, expected: bool) -> None:
    assert evaluate_condition(source, SCOPE, path="p") is expected


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("data.plan.toUpperCase()", "calls are not allowed"),
        ("window.location", "'window' is not allowed"),
        ("constructor", "'constructor' is not allowed"),
        ("data.n + 1", "cannot read"),
        ("data.plan = 'x'", "cannot read"),
        ("", "is empty"),
        ("((data.n", "expected ')'"),
        ("data.n ===", "ends too early"),
        ("!" * 100 + "data.n", "nests too deeply"),
    ],
)
def test_everything_else_is_refused(source: str, message: str) -> None:
    with pytest.raises(RenderError) as caught:
        check_condition(source, path="message.content.elements[0].if")
    assert str(caught.value).startswith("message.content.elements[0].if is not a valid condition")
    assert message in str(caught.value)
