"""What every store can keep: NUL, lone surrogates and deep nesting are refused by path."""

from __future__ import annotations

import json

import pytest

from tidings.domain.errors import ValidationError
from tidings.domain.storable import MAX_DEPTH, check_json, text_problem


def test_plain_text_and_paired_surrogates_are_fine() -> None:
    assert text_problem("héllo 👋") is None
    check_json(json.loads('{"a": ["\\ud83d\\udc4b", 1, null, {"b": true}]}'))


@pytest.mark.parametrize(
    ("body", "path", "words"),
    [
        ('{"message": {"to": {"user_id": "a\\u0000b"}}}', "message.to.user_id", "NUL"),
        ('{"message": {"data": {"x": ["ok", "\\ud800"]}}}', "message.data.x[1]", "surrogate"),
        ('{"profile": {"a\\u0000": 1}}', "profile", "key"),
        ('["\\udfff"]', "[0]", "surrogate"),
    ],
)
def test_unstorable_text_is_named_by_its_path(body: str, path: str, words: str) -> None:
    with pytest.raises(ValidationError) as caught:
        check_json(json.loads(body))
    assert caught.value.path == path
    assert words in caught.value.message


def test_nesting_is_bounded_without_recursion() -> None:
    fine: object = "x"
    for _ in range(MAX_DEPTH):
        fine = [fine]
    check_json(fine)
    deep: object = "x"
    for _ in range(100_000):  # far past Python's recursion limit
        deep = {"a": deep}
    with pytest.raises(ValidationError) as caught:
        check_json(deep)
    assert "nested deeper than" in caught.value.message
    assert caught.value.path == ".".join(["a"] * MAX_DEPTH)
