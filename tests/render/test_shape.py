"""The shape of a rendered email (render/shape.py): found only when each recipient's copy is
the shape with its values in place, character for character."""

from __future__ import annotations

from typing import Any

from tidings.render.message import render_message
from tidings.render.shape import Shape, render_with_shape, sentinel_values, substitute


def _shape(payload: dict[str, Any], profile: dict[str, Any] | None = None) -> Shape | None:
    rendered, wire = render_with_shape(payload, profile or {"email": "a@example.test"})
    assert rendered == render_message(payload, profile or {"email": "a@example.test"})
    return Shape.from_wire(wire) if wire is not None else None


def _payload(body: str, data: dict[str, Any], title: str = "Hi {{name}}") -> dict[str, Any]:
    return {"content": {"title": title, "body": body}, "data": data}


def _reproduces(payload: dict[str, Any], profile: dict[str, Any], shape: Shape) -> None:
    rendered = render_message(payload, profile)
    assert substitute(shape.subject, shape.values) == rendered.subject
    assert substitute(shape.html, shape.values) == rendered.html
    assert substitute(shape.text, shape.values) == rendered.text


def test_values_become_placeholders_and_fill_back_exactly() -> None:
    for name in ("Ann", "O'Neil & <Sons>", 'quote " here', "", "Zoé 🎉"):
        payload = _payload(
            "Dear {{name}}, code {{code}} for {{profile.email}}.",
            {"name": name, "code": 42},
            title="Hi {{name}}!",
        )
        profile = {"email": "ann@example.test"}
        shape = _shape(payload, profile)
        assert shape is not None, name
        _reproduces(payload, profile, shape)
        assert shape.subject[0] == "Hi "


def test_recipients_with_the_same_keys_share_one_shape() -> None:
    one = _shape(_payload("Dear {{name}}", {"name": "Ann"}))
    two = _shape(_payload("Dear {{name}}", {"name": "Bob & Co"}))
    assert one is not None and two is not None
    assert one.key == two.key
    assert one.html == two.html and one.text == two.text
    assert one.values != two.values


def test_a_value_the_renderer_changes_has_no_shape() -> None:
    # "Hi {{name}}" with an empty name is the subject "Hi": not the shape with "" in it.
    assert _shape(_payload("Dear {{name}}", {"name": ""})) is None
    # Whitespace in a subject is made one space: "a\tb" does not stand there as given.
    assert _shape(_payload("Dear {{name}}", {"name": "a\tb"})) is None


def test_a_condition_on_a_value_has_no_shape_when_it_changes_the_copy() -> None:
    body = '{{#if (eq tier "gold")}}Gold{{else}}Member{{/if}} {{name}}'
    assert _shape(_payload(body, {"tier": "gold", "name": "A"})) is None
    # The branch the tokens took is this recipient's too: the copy is the shape.
    assert _shape(_payload(body, {"tier": "silver", "name": "A"})) is not None


def test_an_empty_value_that_hides_a_block_has_no_shape() -> None:
    body = "{{#if nick}}Hey {{nick}}{{else}}Hello{{/if}}"
    assert _shape(_payload(body, {"nick": ""}, title="t")) is None
    shape = _shape(_payload(body, {"nick": "Al"}, title="t"))
    assert shape is not None


def test_a_value_changed_by_a_helper_has_no_shape() -> None:
    payload = _payload("{{#each items}}[{{this}}]{{/each}}", {"items": ["a", "b"]}, title="t")
    shape = _shape(payload)
    assert shape is not None  # a list is structure: same length, same shape
    other = _shape(_payload("{{#each items}}[{{this}}]{{/each}}", {"items": ["a"]}, title="t"))
    assert other is not None and other.key != shape.key


def test_placeholder_syntax_in_content_or_values_has_no_shape() -> None:
    assert _shape(_payload("Dear {{name}} %recipient.x%", {"name": "A"})) is None
    assert _shape(_payload("Dear {{name}}", {"name": "%recipient.x%"})) is None


def test_locale_picks_the_content_and_is_not_a_placeholder() -> None:
    payload = {
        "content": {
            "version": "2022-01-01",
            "elements": [
                {
                    "type": "meta",
                    "title": "Hi {{name}}",
                    "locales": {"fr": {"title": "Salut {{name}}"}},
                },
                {
                    "type": "text",
                    "content": "Hello {{name}}",
                    "locales": {"fr": {"content": "Bonjour {{name}}"}},
                },
            ],
        },
        "data": {"name": "Zoé"},
    }
    french = _shape(payload, {"email": "a@example.test", "locale": "fr"})
    english = _shape(payload, {"email": "a@example.test"})
    assert french is not None and english is not None
    assert french.key != english.key
    assert substitute(french.subject, french.values) == "Salut Zoé"


def test_sentinels_replace_strings_and_integers_only() -> None:
    leaves: list[str] = []
    out = sentinel_values(
        {"a": "x", "b": 3, "c": True, "d": None, "e": 1.5, "f": [{"g": "y"}]}, leaves
    )
    assert leaves == ["x", "3", "y"]
    assert out["c"] is True and out["d"] is None and out["e"] == 1.5
    assert out["a"] != "x" and out["f"][0]["g"] != "y"
