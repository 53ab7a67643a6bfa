"""Courier ``message.content`` as plain data: the ``{title, body}`` shorthand and Elemental.

:func:`parse_content` checks a JSON-decoded ``content`` and turns it into a
:class:`Content` that holds only what the email channel uses: elements for other
channels are dropped here, so the renderer never has to ask. Strings stay *templates*
(``Hello {{name}}``, Handlebars); rendering them is the renderer's job.

Elements: ``meta``, ``text`` (plain or markdown), ``action``, ``image``, ``divider``,
``quote``, ``html``, ``group`` (``elements``), ``columns`` (``elements`` of ``column``
elements, each with its own ``elements``) and the top-level ``channel`` (``elements`` or
``raw``). Control flow is kept on each node for the renderer: ``if`` (a JavaScript-like
condition, :mod:`tidings.render.conditions`), ``loop`` (a path to an array; ``$.item`` and
``$.index`` inside), ``ref`` (a name later conditions read as ``refs.NAME``) and
``channels`` (applied here). Any other element type, and any field an element does not
have, is refused naming the field: nothing a sender writes is silently dropped.

``locales``: an element may carry ``{"fr": {"content": "Bonjour"}}``; with a ``locale``
given, :func:`parse_content` lays the matching entry (``fr-CA`` falls back to ``fr``) over
the element's own fields before reading it, and every locale entry is checked either way.
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
TextStyle: TypeAlias = Literal["text", "h1", "h2", "h3", "subtext"]
ActionStyle: TypeAlias = Literal["button", "secondary", "tertiary", "link"]

_ALIGNS: tuple[Align, ...] = ("left", "center", "right", "full")
_TEXT_STYLES: tuple[TextStyle, ...] = ("text", "h1", "h2", "h3", "subtext")
_ACTION_STYLES: tuple[ActionStyle, ...] = ("button", "secondary", "tertiary", "link")

# Colours and sizes end up inside inline CSS and attributes; accepting only these shapes
# keeps a sender's value from closing the declaration and adding its own.
_COLOR = re.compile(r"#[0-9a-fA-F]{3,8}|[a-zA-Z]{1,30}|rgba?\(\s*[\d.%,\s]{1,60}\)")
_WIDTH = re.compile(r"\d{1,4}(px|%)?")
_PX = re.compile(r"\d{1,3}(\.\d{1,2})?px")
_LINE_HEIGHT = re.compile(r"\d{1,3}(\.\d{1,2})?(px)?")
_PADDING = re.compile(r"\d{1,3}px(\s+\d{1,3}px){0,3}")
_REF = re.compile(r"[A-Za-z_][\w-]{0,63}")
_LOOP = re.compile(r"(data|profile|refs|\$)(\.[A-Za-z_$][\w$-]*|\[\d+\])*")

_CONTROL = frozenset({"type", "id", "if", "loop", "ref", "channels", "locales"})
_FIELDS: dict[str, frozenset[str]] = {
    "meta": frozenset({"title"}),
    "text": frozenset(
        {
            "content",
            "format",
            "text_style",
            "align",
            "color",
            "bold",
            "italic",
            "underline",
            "strikethrough",
            "font_size",
            "line_height",
        }
    ),
    "action": frozenset(
        {
            "content",
            "href",
            "style",
            "align",
            "background_color",
            "action_id",
            "border_radius",
            "border_size",
            "disable_tracking",
            "font_size",
            "padding",
        }
    ),
    "image": frozenset(
        {"src", "href", "alt_text", "width", "align", "border_color", "border_size", "padding"}
    ),
    "divider": frozenset({"color"}),
    "quote": frozenset(
        {"content", "align", "border_color", "font_size", "line_height", "text_style"}
    ),
    "html": frozenset({"content"}),
    "group": frozenset({"elements"}),
    "columns": frozenset({"elements"}),
    "column": frozenset({"elements", "width"}),
    "channel": frozenset({"channel", "elements", "raw"}),
}
_KNOWN_TYPES = ", ".join(sorted(_FIELDS))
# Fields a locale entry may replace: the element's text, never its structure.
_LOCALIZABLE = frozenset({"title", "content", "href", "src", "alt_text", "raw"})


class ContentError(ValidationError):
    """``message.content`` is not valid; ``path`` names the field."""


@dataclass(frozen=True, slots=True, kw_only=True)
class _Node:
    # ``path`` is where the node came from, so a render error can name the field; it is
    # not part of the node's value.
    path: str = field(default="message.content", compare=False)
    condition: str | None = None
    loop: str | None = None
    ref: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class MetaBlock(_Node):
    """The email's subject: the first visible ``meta`` title wins."""

    title: str | None = None


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
    font_size: str | None = None
    line_height: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class ActionBlock(_Node):
    """A call to action: a button (primary, secondary, tertiary) or a plain link."""

    content: str
    href: str
    style: ActionStyle = "button"
    align: Align = "center"
    background_color: str | None = None
    action_id: str | None = None
    border_radius: str | None = None
    border_size: str | None = None
    font_size: str | None = None
    padding: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class ImageBlock(_Node):
    """An image, optionally a link."""

    src: str
    href: str | None = None
    alt_text: str | None = None
    width: str | None = None
    align: Align = "center"
    border_color: str | None = None
    border_size: str | None = None
    padding: str | None = None


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
    font_size: str | None = None
    line_height: str | None = None
    text_style: TextStyle = "text"


@dataclass(frozen=True, slots=True, kw_only=True)
class HtmlBlock(_Node):
    """The sender's own HTML, placed in the email as it is (after templating)."""

    content: str


@dataclass(frozen=True, slots=True, kw_only=True)
class GroupBlock(_Node):
    """Elements that share an ``if``, ``loop`` or ``ref``."""

    elements: tuple[Block, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class ColumnBlock(_Node):
    """One column of a ``columns`` element."""

    elements: tuple[Block, ...] = ()
    width: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class ColumnsBlock(_Node):
    """Columns side by side (stacked on narrow screens)."""

    columns: tuple[ColumnBlock, ...] = ()


Block: TypeAlias = (
    MetaBlock
    | TextBlock
    | ActionBlock
    | ImageBlock
    | DividerBlock
    | QuoteBlock
    | HtmlBlock
    | GroupBlock
    | ColumnsBlock
)


@dataclass(frozen=True, slots=True, kw_only=True)
class RawEmail(_Node):
    """A ``channel`` element's ``raw`` email: the sender wrote the whole thing."""

    subject: str | None = None
    html: str | None = None
    text: str | None = None


@dataclass(frozen=True, slots=True)
class Content:
    """The email's content: blocks (``meta`` blocks give the subject), or a raw email.

    ``title`` is the shorthand's ``title`` (a subject template) or the raw email's
    subject. When ``raw`` is set the sender wrote the email; ``blocks`` is then empty.
    ``locale`` is the key of the ``locales`` entries that were applied, if any.
    """

    title: str | None
    blocks: tuple[Block, ...] = ()
    raw: RawEmail | None = None
    title_path: str = field(default="message.content.title", compare=False)
    locale: str | None = field(default=None, compare=False)


def parse_content(
    value: Any, path: str = "message.content", *, locale: str | None = None
) -> Content:
    """Check ``message.content`` and keep what the email channel uses.

    ``locale`` (``fr``, ``fr-CA``) picks element ``locales`` entries. Raises
    :class:`ContentError` naming the first wrong field.
    """
    if not isinstance(value, Mapping):
        raise ContentError(path, "must be an object")
    if "elements" in value:
        return _Parser(locale).elemental(value, path)
    if "body" in value or "title" in value:
        return _parse_shorthand(value, path)
    raise ContentError(path, "must have elements (Elemental) or a title and body")


def email_channel_present(value: Any) -> bool:
    """Whether Elemental ``value`` has a top-level ``channel`` element for email."""
    elements = value.get("elements") if isinstance(value, Mapping) else None
    return isinstance(elements, list) and any(
        isinstance(e, Mapping) and e.get("type") == "channel" and e.get("channel") == "email"
        for e in elements
    )


def _parse_shorthand(value: Mapping[str, Any], path: str) -> Content:
    for key in value:
        if key not in ("title", "body", "version"):
            raise ContentError(key_path(path, key), "is not a field of the {title, body} shorthand")
    # Courier requires both; a missing title is accepted (an email with an empty
    # subject is the sender's call), a missing body is not.
    title = _optional_str(value, "title", path)
    body = _required_str(value, "body", path)
    return Content(
        title=title,
        blocks=(TextBlock(content=body, path=key_path(path, "body")),),
        title_path=key_path(path, "title"),
    )


def _locale_keys(locale: str | None) -> tuple[str, ...]:
    if not locale:
        return ()
    normal = locale.replace("_", "-")
    keys = [locale, normal, normal.lower()]
    if "-" in normal:
        language = normal.split("-", 1)[0]
        keys += [language, language.lower()]
    return tuple(dict.fromkeys(keys))


@dataclass(frozen=True, slots=True)
class _ChannelNode:
    channel: str
    nodes: tuple[Block, ...] | None
    raw: RawEmail | None
    path: str
    channels: tuple[str, ...] | None


@dataclass(frozen=True, slots=True)
class _Skipped:
    """A node for another channel."""


_Parsed: TypeAlias = Block | _ChannelNode | _Skipped


class _Parser:
    def __init__(self, locale: str | None) -> None:
        self.locale_keys = _locale_keys(locale)
        self.applied: str | None = None

    def elemental(self, value: Mapping[str, Any], path: str) -> Content:
        for key in value:
            if key not in ("version", "elements"):
                raise ContentError(key_path(path, key), "is not a field of Elemental content")
        version = value.get("version")
        if version is not None and version != ELEMENTAL_VERSION:
            raise ContentError(
                key_path(path, "version"), f'must be "{ELEMENTAL_VERSION}", got {version!r}'
            )
        elements_path = key_path(path, "elements")
        nodes = self.elements(value["elements"], elements_path, top=True)
        channel_nodes = [n for n in nodes if isinstance(n, _ChannelNode)]
        if channel_nodes:
            # Courier: a top-level channel element makes every sibling a channel element.
            for i, node in enumerate(nodes):
                if not isinstance(node, _ChannelNode):
                    raise ContentError(
                        index_path(elements_path, i),
                        "must be a channel element, because a sibling is one",
                    )
            for channel_node in channel_nodes:
                if channel_node.channel == EMAIL_CHANNEL and _for_email(channel_node.channels):
                    return self.of_channel(channel_node)
            raise ContentError(elements_path, "has no channel element for email")
        blocks = tuple(n for n in nodes if not isinstance(n, _Skipped | _ChannelNode))
        return Content(title=None, blocks=blocks, locale=self.applied)

    def of_channel(self, node: _ChannelNode) -> Content:
        if node.raw is not None:
            return Content(
                title=node.raw.subject,
                raw=node.raw,
                title_path=key_path(node.raw.path, "subject"),
                locale=self.applied,
            )
        return Content(title=None, blocks=node.nodes or (), locale=self.applied)

    def elements(self, value: Any, path: str, *, top: bool = False) -> list[_Parsed]:
        if not isinstance(value, list):
            raise ContentError(path, "must be a list")
        nodes = [self.element(e, index_path(path, i), top=top) for i, e in enumerate(value)]
        return nodes

    def blocks(self, value: Any, path: str) -> tuple[Block, ...]:
        out: list[Block] = []
        for node in self.elements(value, path):
            if isinstance(node, _ChannelNode):
                raise ContentError(node.path, "channel elements are only allowed at the top level")
            if not isinstance(node, _Skipped):
                out.append(node)
        return tuple(out)

    def localized(self, value: Mapping[str, Any], path: str, kind: str) -> Mapping[str, Any]:
        locales = value.get("locales")
        if locales is None:
            return value
        locales_path = key_path(path, "locales")
        if not isinstance(locales, Mapping):
            raise ContentError(locales_path, "must be an object of locale: fields")
        for name, entry in locales.items():
            entry_path = key_path(locales_path, name)
            if not isinstance(entry, Mapping):
                raise ContentError(entry_path, "must be an object")
            for key in entry:
                if key not in _LOCALIZABLE or key not in _FIELDS[kind]:
                    raise ContentError(
                        key_path(entry_path, key), f"is not a field a {kind} element localizes"
                    )
        for key in self.locale_keys:
            entry = locales.get(key)
            if isinstance(entry, Mapping):
                self.applied = self.applied or key
                merged = dict(value)
                merged.update(entry)
                return merged
        return value

    def element(self, value: Any, path: str, *, top: bool = False) -> _Parsed:
        if not isinstance(value, Mapping):
            raise ContentError(path, "must be an object")
        kind = _required_str(value, "type", path)
        if kind not in _FIELDS:
            raise ContentError(
                key_path(path, "type"), f"{kind!r} is not an element type; use {_KNOWN_TYPES}"
            )
        for key in value:
            if key not in _CONTROL and key not in _FIELDS[kind]:
                raise ContentError(key_path(path, key), f"is not a field of a {kind} element")
        if kind == "column":
            raise ContentError(key_path(path, "type"), "column elements belong in columns")
        value = self.localized(value, path, kind)
        channels = _channels(value, path)
        control = self.control(value, path, kind)

        if kind == "channel":
            if not top:
                raise ContentError(path, "channel elements are only allowed at the top level")
            for key in ("if", "loop", "ref"):
                if value.get(key) is not None:
                    raise ContentError(key_path(path, key), "is not supported on channel elements")
            return self.channel(value, path, channels)
        if not _for_email(channels):
            # Still checked above for shape; its content is not ours to validate.
            return _Skipped()

        match kind:
            case "meta":
                return MetaBlock(title=_optional_str(value, "title", path), **control)
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
                    font_size=_pattern(value, "font_size", _PX, 'a size like "16px"', path),
                    line_height=_pattern(
                        value, "line_height", _LINE_HEIGHT, 'a height like "24px" or "1.5"', path
                    ),
                    **control,
                )
            case "action":
                if _flag(value, "disable_tracking", path):
                    raise ContentError(
                        key_path(path, "disable_tracking"),
                        "is not supported: Mailgun tracks clicks per message, not per link "
                        "(set message.channels.email.override.tracking.click to false)",
                    )
                return ActionBlock(
                    content=_required_str(value, "content", path),
                    href=_required_str(value, "href", path),
                    style=_choice(value, "style", _ACTION_STYLES, "button", path),
                    align=_choice(value, "align", _ALIGNS, "center", path),
                    background_color=_pattern(value, "background_color", _COLOR, "a colour", path),
                    action_id=_pattern(value, "action_id", _REF, "a plain name", path),
                    border_radius=_pattern(value, "border_radius", _PX, 'a size like "4px"', path),
                    border_size=_pattern(value, "border_size", _PX, 'a size like "1px"', path),
                    font_size=_pattern(value, "font_size", _PX, 'a size like "16px"', path),
                    padding=_pattern(value, "padding", _PADDING, 'px values like "8px 16px"', path),
                    **control,
                )
            case "image":
                return ImageBlock(
                    src=_required_str(value, "src", path),
                    href=_optional_str(value, "href", path),
                    alt_text=_optional_str(value, "alt_text", path),
                    width=_pattern(value, "width", _WIDTH, 'a width like "300px" or "50%"', path),
                    align=_choice(value, "align", _ALIGNS, "center", path),
                    border_color=_pattern(value, "border_color", _COLOR, "a colour", path),
                    border_size=_pattern(value, "border_size", _PX, 'a size like "1px"', path),
                    padding=_pattern(value, "padding", _PADDING, 'px values like "8px 16px"', path),
                    **control,
                )
            case "divider":
                return DividerBlock(
                    color=_pattern(value, "color", _COLOR, "a colour", path), **control
                )
            case "quote":
                return QuoteBlock(
                    content=_required_str(value, "content", path),
                    align=_choice(value, "align", _ALIGNS, "left", path),
                    border_color=_pattern(value, "border_color", _COLOR, "a colour", path),
                    font_size=_pattern(value, "font_size", _PX, 'a size like "16px"', path),
                    line_height=_pattern(
                        value, "line_height", _LINE_HEIGHT, 'a height like "24px" or "1.5"', path
                    ),
                    text_style=_choice(value, "text_style", _TEXT_STYLES, "text", path),
                    **control,
                )
            case "html":
                return HtmlBlock(content=_required_str(value, "content", path), **control)
            case "group":
                elements_path = key_path(path, "elements")
                if value.get("elements") is None:
                    raise ContentError(elements_path, "is required")
                return GroupBlock(elements=self.blocks(value["elements"], elements_path), **control)
            case _:
                return self.columns(value, path, control)

    def columns(self, value: Mapping[str, Any], path: str, control: dict[str, Any]) -> ColumnsBlock:
        elements_path = key_path(path, "elements")
        items = value.get("elements")
        if not isinstance(items, list) or not items:
            raise ContentError(elements_path, "must be a non-empty list of column elements")
        columns: list[ColumnBlock] = []
        for i, item in enumerate(items):
            column_path = index_path(elements_path, i)
            if not isinstance(item, Mapping) or item.get("type") != "column":
                raise ContentError(key_path(column_path, "type"), 'must be "column"')
            for key in item:
                if key not in _CONTROL and key not in _FIELDS["column"]:
                    raise ContentError(key_path(column_path, key), "is not a field of a column")
            if not _for_email(_channels(item, column_path)):
                continue
            inner = item.get("elements")
            inner_path = key_path(column_path, "elements")
            if inner is None:
                raise ContentError(inner_path, "is required")
            columns.append(
                ColumnBlock(
                    elements=self.blocks(inner, inner_path),
                    width=_pattern(item, "width", _WIDTH, 'a width like "50%"', column_path),
                    **self.control(item, column_path, "column"),
                )
            )
        return ColumnsBlock(columns=tuple(columns), **control)

    def control(self, value: Mapping[str, Any], path: str, kind: str) -> dict[str, Any]:
        loop = _optional_str(value, "loop", path)
        if loop is not None:
            if kind == "meta":
                raise ContentError(key_path(path, "loop"), "is not supported on meta elements")
            if not _LOOP.fullmatch(loop.strip()):
                raise ContentError(
                    key_path(path, "loop"),
                    'must be a path to an array, such as "data.products"',
                )
            loop = loop.strip()
        ref = _optional_str(value, "ref", path)
        if ref is not None and not _REF.fullmatch(ref):
            raise ContentError(key_path(path, "ref"), "must be a name of letters, digits, - and _")
        return {
            "path": path,
            "condition": _optional_str(value, "if", path),
            "loop": loop,
            "ref": ref,
        }

    def channel(
        self, value: Mapping[str, Any], path: str, channels: tuple[str, ...] | None
    ) -> _ChannelNode:
        channel = _required_str(value, "channel", path)
        elements, raw = value.get("elements"), value.get("raw")
        if elements is None and raw is None:
            raise ContentError(path, "must have elements or raw")
        if channel != EMAIL_CHANNEL:
            # Content for other channels is not validated: Tidings does not send it.
            return _ChannelNode(channel, None, None, path, channels)
        nodes: tuple[Block, ...] | None = None
        raw_email: RawEmail | None = None
        if elements is not None:
            nodes = self.blocks(elements, key_path(path, "elements"))
        else:
            raw_path = key_path(path, "raw")
            if not isinstance(raw, Mapping):
                raise ContentError(raw_path, "must be an object")
            for key in raw:
                if key not in ("subject", "html", "text"):
                    raise ContentError(
                        key_path(raw_path, key),
                        "is not a raw email field (subject, html, text)",
                    )
            raw_email = RawEmail(
                subject=_optional_str(raw, "subject", raw_path),
                html=_optional_str(raw, "html", raw_path),
                text=_optional_str(raw, "text", raw_path),
                path=raw_path,
            )
            if raw_email.html is None and raw_email.text is None:
                raise ContentError(raw_path, "must have html or text")
        return _ChannelNode(channel, nodes, raw_email, path, channels)


def _for_email(channels: tuple[str, ...] | None) -> bool:
    return channels is None or EMAIL_CHANNEL in channels


def walk(blocks: Sequence[Block]) -> list[Block]:
    """Every block of ``blocks``, nested ones included, in document order."""
    out: list[Block] = []
    for block in blocks:
        out.append(block)
        if isinstance(block, GroupBlock):
            out.extend(walk(block.elements))
        elif isinstance(block, ColumnsBlock):
            for column in block.columns:
                out.extend(walk(column.elements))
    return out


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
    # Courier's schema types these as strings ("true"); booleans are accepted too.
    item = value.get(key, False)
    if item is None:
        return False
    if isinstance(item, bool):
        return item
    if isinstance(item, str) and item.lower() in ("true", "false"):
        return item.lower() == "true"
    raise ContentError(key_path(path, key), 'must be true or false (or "true"/"false")')


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
    "ColumnBlock",
    "ColumnsBlock",
    "Content",
    "ContentError",
    "DividerBlock",
    "GroupBlock",
    "HtmlBlock",
    "ImageBlock",
    "MetaBlock",
    "QuoteBlock",
    "RawEmail",
    "TextBlock",
    "email_channel_present",
    "parse_content",
    "walk",
]
