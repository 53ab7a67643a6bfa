"""Parsing Courier content: the shorthand, every Elemental element, channels, errors."""

from __future__ import annotations

from typing import Any

import pytest

from tidings.domain.content import (
    ActionBlock,
    ColumnBlock,
    ColumnsBlock,
    Content,
    ContentError,
    DividerBlock,
    GroupBlock,
    HtmlBlock,
    ImageBlock,
    MetaBlock,
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
    assert content.title is None
    assert content.blocks == (
        MetaBlock(title="Subject {{x}}"),
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
    assert [b.path for b in content.blocks] == [f"message.content.elements[{i}]" for i in range(7)]


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
    assert [b.title for b in content.blocks if isinstance(b, MetaBlock)] == ["email title"]


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
    assert content.blocks == (MetaBlock(title="T"), TextBlock(content="for email"))


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
            'message.content.elements[0].bold must be true or false (or "true"/"false")',
        ),
        (
            elemental({"type": "text", "content": "a", "channels": "email"}),
            "message.content.elements[0].channels must be a list of channel names",
        ),
        (
            elemental({"type": "carousel"}),
            "message.content.elements[0].type 'carousel' is not an element type; use action,"
            " channel, column, columns, divider, group, html, image, meta, quote, text",
        ),
        (
            elemental({"type": "group", "elements": [{"type": "jsonnet"}]}),
            "message.content.elements[0].elements[0].type 'jsonnet' is not an element type;"
            " use action, channel, column, columns, divider, group, html, image, meta, quote,"
            " text",
        ),
        (
            elemental({"type": "text", "content": "a", "colour": "red"}),
            "message.content.elements[0].colour is not a field of a text element",
        ),
        (
            elemental({"type": "text", "content": "a", "loop": "items; drop"}),
            'message.content.elements[0].loop must be a path to an array, such as "data.products"',
        ),
        (
            elemental({"type": "columns"}),
            "message.content.elements[0].elements must be a non-empty list of column elements",
        ),
        (
            elemental({"type": "columns", "elements": [{"type": "text", "content": "x"}]}),
            'message.content.elements[0].elements[0].type must be "column"',
        ),
        (
            elemental({"type": "text", "content": "a", "locales": {"fr": {"color": "red"}}}),
            "message.content.elements[0].locales.fr.color is not a field a text element localizes",
        ),
        (
            elemental({"type": "action", "content": "a", "href": "x", "disable_tracking": True}),
            "message.content.elements[0].disable_tracking is not supported: Mailgun tracks clicks"
            " per message, not per link (set message.channels.email.override.tracking.click to"
            " false)",
        ),
        (
            {"title": "t", "body": "b", "extra": 1},
            "message.content.extra is not a field of the {title, body} shorthand",
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
            "message.content.elements[0].elements[0] channel elements are only allowed at the"
            " top level",
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


def test_group_columns_loop_and_ref_are_kept_for_the_renderer() -> None:
    content = parse_content(
        elemental(
            {
                "type": "group",
                "loop": "data.products",
                "if": "$.item.price > 0",
                "elements": [{"type": "text", "content": "{{$.item.name}}", "ref": "name"}],
            },
            {
                "type": "columns",
                "elements": [
                    {"type": "column", "width": "30%", "elements": [{"type": "divider"}]},
                    {"type": "column", "elements": [{"type": "html", "content": "<i>x</i>"}]},
                ],
            },
        )
    )
    group, columns = content.blocks
    assert isinstance(group, GroupBlock) and group.loop == "data.products"
    assert group.condition == "$.item.price > 0"
    assert group.elements == (TextBlock(content="{{$.item.name}}", ref="name"),)
    assert columns == ColumnsBlock(
        columns=(
            ColumnBlock(width="30%", elements=(DividerBlock(),)),
            ColumnBlock(elements=(HtmlBlock(content="<i>x</i>"),)),
        )
    )


def test_locales_are_laid_over_the_element() -> None:
    value = elemental(
        {"type": "meta", "title": "Hello", "locales": {"fr": {"title": "Bonjour"}}},
        {"type": "text", "content": "Thanks", "locales": {"fr": {"content": "Merci"}}},
    )
    assert parse_content(value).blocks == (
        MetaBlock(title="Hello"),
        TextBlock(content="Thanks"),
    )
    french = parse_content(value, locale="fr-CA")
    assert french.blocks == (MetaBlock(title="Bonjour"), TextBlock(content="Merci"))
    assert french.locale == "fr"
    assert parse_content(value, locale="de").locale is None


def test_courier_string_flags_are_read() -> None:
    content = parse_content(elemental({"type": "text", "content": "x", "bold": "true"}))
    assert content.blocks == (TextBlock(content="x", bold=True),)
