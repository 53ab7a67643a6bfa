"""Parsing Courier content: the shorthand, every Elemental element, channels, errors."""

from __future__ import annotations

from typing import Any

import pytest

from tidings.domain.content import (
    ActionBlock,
    Content,
    ContentError,
    DividerBlock,
    HtmlBlock,
    ImageBlock,
    QuoteBlock,
    RawEmail,
    TextBlock,
    parse_content,
)


def elemental(*elements: Any) -> dict[str, Any]:
    return {"version": "2022-01-01", "elements": list(elements)}


def error_of(value: Any) -> str:
    with pytest.raises(ContentError) as caught:
        parse_content(value)
    return str(caught.value)


def test_shorthand() -> None:
    content = parse_content({"title": "Hi {{name}}", "body": "Line one\n\nLine two"})
    assert content == Content(
        title="Hi {{name}}", blocks=(TextBlock(content="Line one\n\nLine two"),)
    )
    assert content.blocks[0].path == "message.content.body"


def test_shorthand_needs_a_body() -> None:
    assert error_of({"title": "x"}) == "message.content.body is required"
    assert error_of({"title": "x", "body": 3}) == "message.content.body must be a string"


def test_every_element() -> None:
    content = parse_content(
        elemental(
            {"type": "meta", "title": "Subject {{x}}"},
            {"type": "text", "content": "# Hi", "format": "markdown", "text_style": "h1"},
            {
                "type": "action",
                "content": "Go",
                "href": "https://example.com",
                "style": "link",
                "align": "left",
                "background_color": "#ff0000",
            },
            {"type": "image", "src": "https://x/i.png", "alt_text": "i", "width": "300px"},
            {"type": "divider", "color": "gray"},
            {"type": "quote", "content": "wise", "border_color": "rgb(1, 2, 3)"},
            {"type": "html", "content": "<b>mine</b>"},
        )
    )
    assert content.title == "Subject {{x}}"
    assert content.title_path == "message.content.elements[0].title"
    assert content.blocks == (
        TextBlock(content="# Hi", markdown=True, text_style="h1"),
        ActionBlock(
            content="Go",
            href="https://example.com",
            style="link",
            align="left",
            background_color="#ff0000",
        ),
        ImageBlock(src="https://x/i.png", alt_text="i", width="300px"),
        DividerBlock(color="gray"),
        QuoteBlock(content="wise", border_color="rgb(1, 2, 3)"),
        HtmlBlock(content="<b>mine</b>"),
    )
    assert [b.path for b in content.blocks] == [
        f"message.content.elements[{i}]" for i in range(1, 7)
    ]


def test_channels_filter_elements() -> None:
    content = parse_content(
        elemental(
            {"type": "text", "content": "everywhere"},
            {"type": "text", "content": "email", "channels": ["email", "push"]},
            {"type": "text", "content": "push only", "channels": ["push"]},
            {"type": "meta", "title": "push title", "channels": ["push"]},
            {"type": "meta", "title": "email title"},
        )
    )
    assert [b.content for b in content.blocks if isinstance(b, TextBlock)] == [
        "everywhere",
        "email",
    ]
    assert content.title == "email title"


def test_element_for_another_channel_is_not_validated() -> None:
    content = parse_content(elemental({"type": "action", "channels": ["sms"]}))
    assert content.blocks == ()


def test_if_is_kept_as_a_condition() -> None:
    content = parse_content(elemental({"type": "text", "content": "x", "if": "data.vip"}))
    assert content.blocks[0].condition == "data.vip"


def test_channel_element_with_elements() -> None:
    content = parse_content(
        elemental(
            {"type": "channel", "channel": "push", "elements": [{"type": "bogus"}]},
            {
                "type": "channel",
                "channel": "email",
                "elements": [
                    {"type": "meta", "title": "T"},
                    {"type": "text", "content": "for email"},
                ],
            },
        )
    )
    assert content.title == "T"
    assert content.blocks == (TextBlock(content="for email"),)


def test_channel_element_with_raw() -> None:
    content = parse_content(
        elemental(
            {
                "type": "channel",
                "channel": "email",
                "raw": {"subject": "S", "html": "<p>{{x}}</p>", "text": "t"},
            }
        )
    )
    assert content == Content(title="S", raw=RawEmail(subject="S", html="<p>{{x}}</p>", text="t"))


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("hi", "message.content must be an object"),
        ({}, "message.content must have elements (Elemental) or a title and body"),
        ({"elements": "x"}, "message.content.elements must be a list"),
        (
            {"version": "2020-01-01", "elements": []},
            "message.content.version must be \"2022-01-01\", got '2020-01-01'",
        ),
        (elemental("x"), "message.content.elements[0] must be an object"),
        (elemental({}), "message.content.elements[0].type is required"),
        (
            elemental({"type": "text", "content": "a"}, {"type": "action", "content": "b"}),
            "message.content.elements[1].href is required",
        ),
        (elemental({"type": "image"}), "message.content.elements[0].src is required"),
        (elemental({"type": "quote"}), "message.content.elements[0].content is required"),
        (elemental({"type": "html"}), "message.content.elements[0].content is required"),
        (
            elemental({"type": "text", "content": "a", "align": "middle"}),
            "message.content.elements[0].align must be one of left, center, right, full",
        ),
        (
            elemental({"type": "text", "content": "a", "color": "red;background:url(x)"}),
            "message.content.elements[0].color must be a colour",
        ),
        (
            elemental({"type": "image", "src": "x", "width": "1px;x"}),
            'message.content.elements[0].width must be a width like "300px" or "50%"',
        ),
        (
            elemental({"type": "text", "content": "a", "format": "html"}),
            'message.content.elements[0].format must be "markdown"',
        ),
        (
            elemental({"type": "text", "content": "a", "bold": "yes"}),
            "message.content.elements[0].bold must be true or false",
        ),
        (
            elemental({"type": "text", "content": "a", "channels": "email"}),
            "message.content.elements[0].channels must be a list of channel names",
        ),
        (
            elemental({"type": "columns"}),
            "message.content.elements[0].type 'columns' is not supported; use meta, text,"
            " action, image, divider, quote, html or channel",
        ),
        (
            elemental({"type": "text", "content": "a", "loop": "data.items"}),
            "message.content.elements[0].loop is not supported yet",
        ),
        (
            elemental({"type": "channel", "channel": "push", "raw": {}}),
            "message.content.elements has no channel element for email",
        ),
        (
            elemental(
                {"type": "channel", "channel": "email", "raw": {"html": "x"}},
                {"type": "text", "content": "a"},
            ),
            "message.content.elements[1] must be a channel element, because a sibling is one",
        ),
        (
            elemental({"type": "channel", "channel": "email"}),
            "message.content.elements[0] must have elements or raw",
        ),
        (
            elemental({"type": "channel", "channel": "email", "raw": {"subject": "s"}}),
            "message.content.elements[0].raw must have html or text",
        ),
        (
            elemental(
                {
                    "type": "channel",
                    "channel": "email",
                    "elements": [{"type": "channel", "channel": "email", "raw": {"text": "t"}}],
                }
            ),
            "message.content.elements[0].elements[0] channel elements cannot be nested",
        ),
        (
            elemental(
                {
                    "type": "channel",
                    "channel": "email",
                    "elements": [{"type": "action", "content": "x", "href": 1}],
                }
            ),
            "message.content.elements[0].elements[0].href must be a string",
        ),
    ],
)
def test_errors_name_the_field(value: Any, message: str) -> None:
    assert error_of(value) == message


def test_error_carries_path_and_message() -> None:
    with pytest.raises(ContentError) as caught:
        parse_content(elemental({"type": "action", "content": "x"}))
    assert caught.value.path == "message.content.elements[0].href"
    assert caught.value.message == "is required"
