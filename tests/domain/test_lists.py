"""List ids, list patterns and subscription preferences, checked as plain data."""

from __future__ import annotations

from typing import Any

import pytest

from tidings.domain.lists import ListError, check_list_id, check_preferences, parse_pattern


@pytest.mark.parametrize("good", ["a", "acme.eu.weekly", "a-b_c.d:e@f+g~h"])
def test_list_ids(good: str) -> None:
    assert check_list_id(good) == good


@pytest.mark.parametrize(
    "bad", ["", "a..b", ".a", "a.", "a b", "a/b", "a*", "a.*", "x" * 256, "a\x00", 3, None]
)
def test_bad_list_ids(bad: Any) -> None:
    with pytest.raises(ListError) as caught:
        check_list_id(bad, "list_id")
    assert str(caught.value).startswith("list_id ")


@pytest.mark.parametrize(
    ("pattern", "yes", "no"),
    [
        ("a.b", ["a.b"], ["a", "a.b.c", "a.bb"]),
        ("a.*", ["a.b", "a.c"], ["a", "a.b.c", "b.a"]),
        ("*.b", ["a.b", "x.b"], ["b", "a.b.c"]),
        ("a.*.c", ["a.x.c"], ["a.c", "a.x.y.c"]),
        ("a.**", ["a.b", "a.b.c.d"], ["a", "b.a"]),
        ("*.**", ["a.b", "a.b.c"], ["a"]),
        ("**", ["a", "a.b"], []),
    ],
)
def test_patterns(pattern: str, yes: list[str], no: list[str]) -> None:
    parsed = parse_pattern(pattern)
    assert all(parsed.matches(i) for i in yes)
    assert not any(parsed.matches(i) for i in no)


@pytest.mark.parametrize("bad", ["", "a.**.b", "a*", "a..b", "x" * 256, 7])
def test_bad_patterns(bad: Any) -> None:
    with pytest.raises(ListError):
        parse_pattern(bad)


def test_preferences_are_checked_and_kept_exactly() -> None:
    prefs = {
        "categories": None,
        "notifications": {
            "t1": {
                "status": "OPTED_OUT",
                "channel_preferences": [{"channel": "email"}],
                "rules": [{"until": "2030-01-01", "start": "2029-01-01"}],
            }
        },
    }
    assert check_preferences(prefs) == prefs
    assert check_preferences(None) is None


@pytest.mark.parametrize(
    ("bad", "path"),
    [
        ([], "preferences"),
        ({"topics": {}}, "preferences.topics"),
        ({"notifications": {"t": {"status": "MAYBE"}}}, "preferences.notifications.t.status"),
        ({"notifications": {"t": {}}}, "preferences.notifications.t.status"),
        (
            {
                "notifications": {
                    "t": {"status": "OPTED_IN", "channel_preferences": [{"channel": "fax"}]}
                }
            },
            "preferences.notifications.t.channel_preferences[0].channel",
        ),
        (
            {"categories": {"c": {"status": "REQUIRED", "rules": [{"start": "x"}]}}},
            "preferences.categories.c.rules[0].until",
        ),
        (
            {"categories": {"c": {"status": "REQUIRED", "extra": 1}}},
            "preferences.categories.c.extra",
        ),
    ],
)
def test_bad_preferences_name_the_field(bad: Any, path: str) -> None:
    with pytest.raises(ListError) as caught:
        check_preferences(bad)
    assert caught.value.path == path
