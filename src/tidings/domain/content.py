"""Courier ``message.content`` as plain data: the ``{title, body}`` shorthand and Elemental.

:func:`parse_content` checks a JSON-decoded ``content`` and turns it into a
:class:`Content` that holds only what the email channel uses: elements for other
channels are dropped here, so the renderer never has to ask. Strings stay *templates*
(``Hello {{name}}``); rendering them is the renderer's job.

Supported Elemental elements: ``meta``, ``text``, ``action``, ``image``, ``divider``,
``quote``, ``html`` and top-level ``channel`` (with ``elements`` or ``raw``). Not
supported, and refused with a clear error rather than silently sent wrong: ``loop``,
``ref``, ``locales``-only content and any other element type. ``if`` is kept as a
condition for the renderer, which evaluates it as a *Jinja expression* over the template
variables (``data.plan == "pro"``, ``not profile.vip``); Courier's JavaScript syntax
(``===``, ``&&``) is not understood and fails the render with a clear error.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, TypeAlias, TypeVar

from tidings.domain.errors import ValidationError, index_path, key_path

ELEMENTAL_VERSION = "2022-01-01"
EMAIL_CHANNEL = "email"

Align: TypeAlias = Literal["left", "center", "right", "full"]
TextStyle: TypeAlias = Literal["text", "h1", "h2", "subtext"]
ActionStyle: TypeAlias = Literal["button", "link"]

_ALIGNS: tuple[Align, ...] = ("left", "center", "right", "full")
_TEXT_STYLES: tuple[TextStyle, ...] = ("text", "h1", "h2", "subtext")
_ACTION_STYLES: tuple[ActionStyle, ...] = ("button", "link")

# Colours and widths end up inside inline CSS and attributes; accepting only these shapes
# keeps a sender's value from closing the declaration and adding its own.
_COLOR = re.compile(r"#[0-9a-fA-F]{3,8}|[a-zA-Z]{1,30}|rgba?\(\s*[\d.%,\s]{1,60}\)")
_WIDTH = re.compile(r"\d{1,4}(px|%)?")

_UNSUPPORTED_KEYS = ("loop", "ref")


class ContentError(ValidationError):
    """``message.content`` is not valid; ``path`` names the field."""


@dataclass(frozen=True, slots=True, kw_only=True)
class _Node:
    # ``path`` is where the node came from, so a render error can name the field; it is
    # not part of the node's value.
    path: str = field(default="message.content", compare=False)
    condition: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class TextBlock(_Node):
    """A paragraph (or heading) of text; blank lines separate paragraphs."""

    content: str
    text_style: TextStyle = "text"
    markdown: bool = False
    align: Align = "left"
    color: str | None = None
    bold: bool = False
    italic: bool = False
    underline: bool = False
    strikethrough: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class ActionBlock(_Node):
    """A call to action: a button, or a plain link."""

    content: str
    href: str
    style: ActionStyle = "button"
    align: Align = "center"
    background_color: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class ImageBlock(_Node):
    """An image, optionally a link."""

    src: str
    href: str | None = None
    alt_text: str | None = None
    width: str | None = None
    align: Align = "center"


@dataclass(frozen=True, slots=True, kw_only=True)
class DividerBlock(_Node):
    """A horizontal rule."""

    color: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class QuoteBlock(_Node):
    """A quotation."""

    content: str
    align: Align = "left"
    border_color: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class HtmlBlock(_Node):
    """The sender's own HTML, placed in the email as it is (after templating)."""

    content: str


Block: TypeAlias = TextBlock | ActionBlock | ImageBlock | DividerBlock | QuoteBlock | HtmlBlock


@dataclass(frozen=True, slots=True, kw_only=True)
class RawEmail(_Node):
    """A ``channel`` element's ``raw`` email: the sender wrote the whole thing."""

    subject: str | None = None
    html: str | None = None
    text: str | None = None


@dataclass(frozen=True, slots=True)
class Content:
    """The email's content: a subject template and blocks, or a raw email.

    ``title`` is the subject template (shorthand ``title`` or Elemental ``meta``).
    When ``raw`` is set the sender wrote the email; ``blocks`` is then empty.
    """

    title: str | None
    blocks: tuple[Block, ...] = ()
    raw: RawEmail | None = None
    title_path: str = field(default="message.content.title", compare=False)


def parse_content(value: Any, path: str = "message.content") -> Content:
    """Check ``message.content`` and keep what the email channel uses.

    Raises :class:`ContentError` naming the first wrong field.
    """
    if not isinstance(value, Mapping):
        raise ContentError(path, "must be an object")
    if "elements" in value:
        return _parse_elemental(value, path)
    if "body" in value or "title" in value:
        return _parse_shorthand(value, path)
    raise ContentError(path, "must have elements (Elemental) or a title and body")


def _parse_shorthand(value: Mapping[str, Any], path: str) -> Content:
    # Courier requires both; a missing title is accepted (an email with an empty
    # subject is the sender's call), a missing body is not.
    title = _optional_str(value, "title", path)
    body = _required_str(value, "body", path)
    return Content(
        title=title,
        blocks=(TextBlock(content=body, path=key_path(path, "body")),),
        title_path=key_path(path, "title"),
    )


def _parse_elemental(value: Mapping[str, Any], path: str) -> Content:
    version = value.get("version")
    if version is not None and version != ELEMENTAL_VERSION:
        raise ContentError(
            key_path(path, "version"), f'must be "{ELEMENTAL_VERSION}", got {version!r}'
        )
    elements_path = key_path(path, "elements")
    elements = value["elements"]
    if not isinstance(elements, list):
        raise ContentError(elements_path, "must be a list")

    nodes = [_element(element, index_path(elements_path, i)) for i, element in enumerate(elements)]
    channel_nodes = [n for n in nodes if isinstance(n, _ChannelNode)]
    if channel_nodes:
        # Courier: a top-level channel element makes every sibling a channel element.
        for i, node in enumerate(nodes):
            if not isinstance(node, _ChannelNode):
                raise ContentError(
                    index_path(elements_path, i),
                    "must be a channel element, because a sibling is one",
                )
        for node in channel_nodes:
            if node.channel == EMAIL_CHANNEL and _for_email(node.channels):
                return _content_of_channel(node)
        raise ContentError(elements_path, "has no channel element for email")

    return _collect(nodes, title_path=key_path(path, "title"))


@dataclass(frozen=True, slots=True)
class _Meta:
    title: str | None
    path: str
    channels: tuple[str, ...] | None


@dataclass(frozen=True, slots=True)
class _ChannelNode:
    channel: str
    nodes: tuple[_Parsed, ...] | None
    raw: RawEmail | None
    path: str
    channels: tuple[str, ...] | None


@dataclass(frozen=True, slots=True)
class _Skipped:
    """A node for another channel."""


_Parsed: TypeAlias = Block | _Meta | _ChannelNode | _Skipped


def _content_of_channel(node: _ChannelNode) -> Content:
    if node.raw is not None:
        return Content(
            title=node.raw.subject,
            raw=node.raw,
            title_path=key_path(node.raw.path, "subject"),
        )
    return _collect(node.nodes or (), title_path=key_path(node.path, "title"))


def _collect(nodes: Sequence[_Parsed], title_path: str) -> Content:
    # The first meta title meant for email is the subject.
    title: str | None = None
    blocks: list[Block] = []
    for node in nodes:
        if isinstance(node, _Meta):
            if node.title is not None and title is None and _for_email(node.channels):
                title, title_path = node.title, key_path(node.path, "title")
        elif isinstance(node, _ChannelNode):
            raise ContentError(node.path, "channel elements are only allowed at the top level")
        elif not isinstance(node, _Skipped):
            blocks.append(node)
    return Content(title=title, blocks=tuple(blocks), title_path=title_path)


def _for_email(channels: tuple[str, ...] | None) -> bool:
    return channels is None or EMAIL_CHANNEL in channels


def _element(value: Any, path: str) -> _Parsed:
    if not isinstance(value, Mapping):
        raise ContentError(path, "must be an object")
    for key in _UNSUPPORTED_KEYS:
        if key in value:
            raise ContentError(key_path(path, key), "is not supported yet")
    kind = _required_str(value, "type", path)
    channels = _channels(value, path)
    condition = _optional_str(value, "if", path)

    if kind == "meta":
        return _Meta(_optional_str(value, "title", path), path, channels)
    if kind == "channel":
        if condition is not None:
            raise ContentError(key_path(path, "if"), "is not supported on channel elements")
        return _channel(value, path, channels)
    if not _for_email(channels):
        # Still checked above for shape; its content is not ours to validate.
        return _Skipped()

    common: dict[str, Any] = {"path": path, "condition": condition}
    match kind:
        case "text":
            fmt = _optional_str(value, "format", path)
            if fmt not in (None, "markdown"):
                raise ContentError(key_path(path, "format"), 'must be "markdown"')
            return TextBlock(
                content=_required_str(value, "content", path),
                text_style=_choice(value, "text_style", _TEXT_STYLES, "text", path),
                markdown=fmt == "markdown",
                align=_choice(value, "align", _ALIGNS, "left", path),
                color=_pattern(value, "color", _COLOR, "a colour", path),
                bold=_flag(value, "bold", path),
                italic=_flag(value, "italic", path),
                underline=_flag(value, "underline", path),
                strikethrough=_flag(value, "strikethrough", path),
                **common,
            )
        case "action":
            return ActionBlock(
                content=_required_str(value, "content", path),
                href=_required_str(value, "href", path),
                style=_choice(value, "style", _ACTION_STYLES, "button", path),
                align=_choice(value, "align", _ALIGNS, "center", path),
                background_color=_pattern(value, "background_color", _COLOR, "a colour", path),
                **common,
            )
        case "image":
            return ImageBlock(
                src=_required_str(value, "src", path),
                href=_optional_str(value, "href", path),
                alt_text=_optional_str(value, "alt_text", path),
                width=_pattern(value, "width", _WIDTH, 'a width like "300px" or "50%"', path),
                align=_choice(value, "align", _ALIGNS, "center", path),
                **common,
            )
        case "divider":
            return DividerBlock(color=_pattern(value, "color", _COLOR, "a colour", path), **common)
        case "quote":
            return QuoteBlock(
                content=_required_str(value, "content", path),
                align=_choice(value, "align", _ALIGNS, "left", path),
                border_color=_pattern(value, "border_color", _COLOR, "a colour", path),
                **common,
            )
        case "html":
            return HtmlBlock(content=_required_str(value, "content", path), **common)
    raise ContentError(
        key_path(path, "type"),
        f"{kind!r} is not supported; use meta, text, action, image, divider, quote, html"
        " or channel",
    )


def _channel(value: Mapping[str, Any], path: str, channels: tuple[str, ...] | None) -> _ChannelNode:
    channel = _required_str(value, "channel", path)
    elements, raw = value.get("elements"), value.get("raw")
    if elements is None and raw is None:
        raise ContentError(path, "must have elements or raw")
    if channel != EMAIL_CHANNEL:
        # Content for other channels is not validated: Tidings does not send it.
        return _ChannelNode(channel, None, None, path, channels)
    nodes: tuple[_Parsed, ...] | None = None
    raw_email: RawEmail | None = None
    if elements is not None:
        elements_path = key_path(path, "elements")
        if not isinstance(elements, list):
            raise ContentError(elements_path, "must be a list")
        nodes = tuple(
            _element(element, index_path(elements_path, i)) for i, element in enumerate(elements)
        )
        for node in nodes:
            if isinstance(node, _ChannelNode):
                raise ContentError(node.path, "channel elements cannot be nested")
    else:
        raw_path = key_path(path, "raw")
        if not isinstance(raw, Mapping):
            raise ContentError(raw_path, "must be an object")
        raw_email = RawEmail(
            subject=_optional_str(raw, "subject", raw_path),
            html=_optional_str(raw, "html", raw_path),
            text=_optional_str(raw, "text", raw_path),
            path=raw_path,
        )
        if raw_email.html is None and raw_email.text is None:
            raise ContentError(raw_path, "must have html or text")
    return _ChannelNode(channel, nodes, raw_email, path, channels)


# --- field readers: each names the field it rejects -------------------------------------


def _required_str(value: Mapping[str, Any], key: str, path: str) -> str:
    if value.get(key) is None:
        raise ContentError(key_path(path, key), "is required")
    result = _optional_str(value, key, path)
    assert result is not None
    return result


def _optional_str(value: Mapping[str, Any], key: str, path: str) -> str | None:
    item = value.get(key)
    if item is None:
        return None
    if not isinstance(item, str):
        raise ContentError(key_path(path, key), "must be a string")
    return item


def _flag(value: Mapping[str, Any], key: str, path: str) -> bool:
    item = value.get(key, False)
    if item is None:
        return False
    if not isinstance(item, bool):
        raise ContentError(key_path(path, key), "must be true or false")
    return item


_Choice = TypeVar("_Choice", bound=str)


def _choice(
    value: Mapping[str, Any], key: str, choices: tuple[_Choice, ...], default: _Choice, path: str
) -> _Choice:
    item = value.get(key)
    if item is None:
        return default
    for choice in choices:
        if item == choice:
            return choice
    raise ContentError(key_path(path, key), "must be one of " + ", ".join(choices))


def _pattern(
    value: Mapping[str, Any], key: str, pattern: re.Pattern[str], what: str, path: str
) -> str | None:
    item = _optional_str(value, key, path)
    if item is None:
        return None
    if not pattern.fullmatch(item.strip()):
        raise ContentError(key_path(path, key), f"must be {what}")
    return item.strip()


def _channels(value: Mapping[str, Any], path: str) -> tuple[str, ...] | None:
    item = value.get("channels")
    if item is None:
        return None
    if not isinstance(item, list) or not all(isinstance(c, str) for c in item):
        raise ContentError(key_path(path, "channels"), "must be a list of channel names")
    return tuple(item)


__all__ = [
    "ActionBlock",
    "Block",
    "Content",
    "ContentError",
    "DividerBlock",
    "HtmlBlock",
    "ImageBlock",
    "QuoteBlock",
    "RawEmail",
    "TextBlock",
    "parse_content",
]
