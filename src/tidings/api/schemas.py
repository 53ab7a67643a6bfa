"""Request and response schemas of the Courier-compatible API (pydantic).

Models accept the fields Courier's SDK sends and keep unknown ones (Courier's models are
lenient too); what Tidings acts on is validated here, with errors that name the field.
"""

from __future__ import annotations

import base64
import binascii
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, field_validator
from pydantic import ValidationError as PydanticValidationError

MAX_TAGS = 3
# Longer delays, timeouts and expiries are mistakes, and past a few thousand years they do
# not fit in a date at all (OverflowError): ten years, in milliseconds.
MAX_DURATION_MS = 10 * 366 * 24 * 3600 * 1000
# What a stored time may be: after the epoch, before the year 9999 (Python's last).
EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
LATEST = datetime(9999, 1, 1, tzinfo=UTC)
MAX_ID = 2**31 - 1  # ids and cursors are INTEGER columns (32 bits on PostgreSQL)
Duration = Annotated[int, Field(ge=0, le=MAX_DURATION_MS)]
_DURATION = TypeAdapter(timedelta)
_DATETIME = TypeAdapter(datetime)


def parse_when(value: str, path: str) -> datetime:
    """An ISO 8601 date and time with a zone, within what can be stored, in UTC."""
    try:
        at = _DATETIME.validate_python(value)
    except PydanticValidationError:
        raise ValueError(f"{path} is not an ISO 8601 date and time") from None
    if at.tzinfo is None:
        raise ValueError(f"{path} needs a time zone (e.g. 2026-01-01T09:00:00Z)")
    try:
        at = at.astimezone(UTC)
    except OverflowError:  # the zone pushes it off Python's calendar
        raise ValueError(f"{path} must be between 1970 and 9999") from None
    if not EARLIEST <= at < LATEST:
        raise ValueError(f"{path} must be between 1970 and 9999")
    return at


def parse_epoch_ms(value: str, path: str) -> datetime:
    """Epoch milliseconds (digits only), within what can be stored."""
    ms = int(value) if value.isdigit() and len(value) <= 18 else None
    if ms is None or ms >= int(LATEST.timestamp() * 1000):
        raise ValueError(f"{path} must be epoch milliseconds before the year 9999")
    return datetime.fromtimestamp(ms / 1000.0, UTC)


def duration_ms(value: int | str) -> int:
    """Milliseconds (a number or digits) or an ISO 8601 duration, at most ten years; the
    ``ValueError`` says what is accepted."""
    if isinstance(value, int) or value.isdigit():
        ms = int(value) if len(str(value)) <= 18 else MAX_DURATION_MS + 1
    else:
        try:
            ms = int(_DURATION.validate_python(value) / timedelta(milliseconds=1))
        except (PydanticValidationError, OverflowError):
            raise ValueError("must be milliseconds or an ISO 8601 duration") from None
    if not 0 <= ms <= MAX_DURATION_MS:
        raise ValueError(f"must be between 0 and {MAX_DURATION_MS} ms (ten years)")
    return ms


class Lenient(BaseModel):
    model_config = ConfigDict(extra="allow", populate_by_name=True)


class AttachmentIn(Lenient):
    filename: str = Field(min_length=1)
    content_type: str | None = Field(default=None, alias="contentType")
    data: str

    @field_validator("data")
    @classmethod
    def _base64(cls, value: str) -> str:
        try:
            base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            raise ValueError("is not valid base64") from None
        return value

    def decoded(self) -> bytes:
        return base64.b64decode(self.data, validate=True)


class MailgunOverrideConfig(Lenient):
    api_key: str | None = Field(default=None, alias="apiKey")
    domain: str | None = None
    host: str | None = None
    from_address: str | None = Field(default=None, alias="fromAddress")
    proxy_url: str | None = Field(default=None, alias="proxyUrl")


class MailgunOverride(Lenient):
    body: dict[str, Any] = Field(default_factory=dict)
    config: MailgunOverrideConfig | None = None
    attachment: list[AttachmentIn] | None = None
    attachments: list[AttachmentIn] | None = None

    def all_attachments(self) -> list[AttachmentIn]:
        return [*(self.attachment or []), *(self.attachments or [])]


class ProviderSpec(Lenient):
    override: dict[str, Any] | None = None
    metadata: dict[str, Any] | None = None


class Tracking(Lenient):
    open: bool | None = None
    click: bool | None = None


class EmailOverride(Lenient):
    cc: str | list[str] | None = None
    bcc: str | list[str] | None = None
    reply_to: str | None = None
    from_: str | None = Field(default=None, alias="from")
    subject: str | None = None
    html: str | None = None
    text: str | None = None
    attachments: list[AttachmentIn] | None = None
    tracking: Tracking | None = None


class ChannelSpec(Lenient):
    override: dict[str, Any] | None = None
    providers: list[str] | None = None
    routing_method: Literal["single", "all"] | None = None


class Utm(BaseModel):
    model_config = ConfigDict(extra="forbid")

    source: str | None = Field(default=None, max_length=500)
    medium: str | None = Field(default=None, max_length=500)
    campaign: str | None = Field(default=None, max_length=500)
    term: str | None = Field(default=None, max_length=500)
    content: str | None = Field(default=None, max_length=500)


class Metadata(Lenient):
    event: str | None = Field(default=None, max_length=200)
    tags: list[str] | None = None
    trace_id: str | None = Field(default=None, max_length=200)
    utm: Utm | None = None

    @field_validator("tags")
    @classmethod
    def _tags(cls, value: list[str] | None) -> list[str] | None:
        if value is None:
            return None
        if len(value) > MAX_TAGS:
            raise ValueError(
                f"at most {MAX_TAGS} tags per message (Mailgun's limit), got {len(value)}"
            )
        for tag in value:
            if not tag or len(tag) > 128 or not tag.isascii():
                raise ValueError("each tag must be 1 to 128 ASCII characters")
        return value


class Delay(Lenient):
    duration: Duration | None = None
    until: str | None = None


class Expiry(Lenient):
    expires_in: int | str | None = None
    expires_at: str | None = None

    @field_validator("expires_in")
    @classmethod
    def _expires_in(cls, value: int | str | None) -> int | str | None:
        if value is not None:
            duration_ms(value)
        return value


class Timeout(Lenient):
    message: Annotated[int, Field(gt=0, le=MAX_DURATION_MS)] | None = None
    # Courier's SDK types it {provider key: ms}; its docs also show one number (ms) for
    # every provider. Both are taken.
    provider: Duration | dict[str, Duration] | None = None
    escalation: Duration | None = None
    channel: dict[str, Duration] | None = None
    providers: dict[str, Duration] | None = None


class MessageIn(Lenient):
    to: dict[str, Any] | list[dict[str, Any]] | None = None
    content: dict[str, Any] | None = None
    template: str | None = None
    data: dict[str, Any] | None = None
    metadata: Metadata | None = None
    providers: dict[str, ProviderSpec] | None = None
    channels: dict[str, ChannelSpec] | None = None
    delay: Delay | None = None
    expiry: Expiry | None = None
    timeout: Timeout | None = None
    routing: dict[str, Any] | None = None
    brand_id: str | None = None
    # Courier's older name for sending by a template's alias; the same as ``template``.
    event: str | None = None


class SendRequest(BaseModel):
    model_config = ConfigDict(extra="allow")

    message: MessageIn


class SendResponse(BaseModel):
    requestId: str


# -- profiles ---------------------------------------------------------------------------


class ProfileBody(Lenient):
    profile: dict[str, Any]


class PatchOp(Lenient):
    op: Literal["add", "remove", "replace", "move", "copy", "test"]
    path: str
    value: Any = None
    from_: str | None = Field(default=None, alias="from")


class ProfilePatch(BaseModel):
    patch: list[PatchOp]


# -- providers --------------------------------------------------------------------------


class ProviderIn(Lenient):
    provider: str
    alias: str | None = Field(default=None, max_length=200)
    title: str | None = Field(default=None, max_length=200)
    settings: dict[str, Any] = Field(default_factory=dict)


class ProviderPatchIn(Lenient):
    alias: str | None = Field(default=None, max_length=200)
    title: str | None = Field(default=None, max_length=200)
    settings: dict[str, Any] | None = None


# -- routing (Courier's MessageRouting, MessageChannels, MessageProviders) -----------------

MAX_ROUTING_DEPTH = 5  # nested routing objects, counting the top one
MAX_ROUTING_ENTRIES = 20  # entries in one routing.channels list, keys in one providers list
MAX_ROUTING_KEYS = 20  # channels in a channels map, providers in a providers map
MAX_NAME = 64  # a channel name or provider key


def _object(value: Any, path: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ValueError(f"{path} must be an object")
    return value


def _no_unknown(value: dict[str, Any], allowed: tuple[str, ...], path: str) -> None:
    unknown = [k for k in value if k not in allowed]
    if unknown:
        names = ", ".join(f"{path}.{k}" for k in unknown)
        raise ValueError(f"{names}: not a field Tidings knows here (allowed: {', '.join(allowed)})")


def _refuse_if(value: dict[str, Any], path: str) -> None:
    if value.get("if") is not None:
        raise ValueError(
            f"{path}.if: conditions are not evaluated by Tidings; remove the condition "
            "(nothing would be sent differently because of it)"
        )


def _key(value: Any, path: str, known: frozenset[str], what: str = "provider") -> str:
    if not isinstance(value, str) or not 0 < len(value) <= MAX_NAME:
        raise ValueError(f"{path} must be a {what} key of 1 to {MAX_NAME} characters")
    if value not in known:
        raise ValueError(
            f"{path}: '{value}' is not a provider Tidings has; known: {', '.join(sorted(known))}"
        )
    return value


def _duration(value: Any, path: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_DURATION_MS:
        raise ValueError(f"{path} must be milliseconds between 0 and {MAX_DURATION_MS}")
    return value


def check_routing(
    value: Any, path: str, known: frozenset[str], channels: frozenset[str], depth: int = 1
) -> dict[str, Any]:
    """Courier's ``{method: single|all, channels: [channel | provider key | routing]}``;
    ``ValueError`` names the field. Strings must be a channel Courier has or a provider key
    Tidings has (a key means that provider, on its channel)."""
    routing = _object(value, path)
    _no_unknown(routing, ("method", "channels"), path)
    if routing.get("method") not in ("single", "all"):
        raise ValueError(f"{path}.method must be 'single' or 'all'")
    entries = routing.get("channels")
    if not isinstance(entries, list):
        raise ValueError(f"{path}.channels must be a list of channels, provider keys or routings")
    if len(entries) > MAX_ROUTING_ENTRIES:
        raise ValueError(f"{path}.channels: at most {MAX_ROUTING_ENTRIES} entries")
    for i, entry in enumerate(entries):
        at = f"{path}.channels[{i}]"
        if isinstance(entry, dict):
            if depth >= MAX_ROUTING_DEPTH:
                raise ValueError(f"{at}: routing nests at most {MAX_ROUTING_DEPTH} levels deep")
            check_routing(entry, at, known, channels, depth + 1)
        elif isinstance(entry, str):
            if entry not in channels and entry not in known:
                raise ValueError(
                    f"{at}: '{entry}' is neither a channel ({', '.join(sorted(channels))}) "
                    f"nor a provider Tidings has ({', '.join(sorted(known))})"
                )
        else:
            raise ValueError(f"{at} must be a channel, a provider key or a routing object")
    return routing


_CHANNEL_FIELDS = (
    "brand_id",
    "if",
    "metadata",
    "override",
    "providers",
    "routing_method",
    "timeouts",
)
_PROVIDER_FIELDS = ("if", "metadata", "override", "timeouts")
_UTM_FIELDS = ("campaign", "content", "medium", "source", "term")


def _metadata(value: Any, path: str) -> None:
    if value is None:
        return
    metadata = _object(value, path)
    _no_unknown(metadata, ("utm",), path)
    utm = metadata.get("utm")
    if utm is None:
        return
    _no_unknown(_object(utm, f"{path}.utm"), _UTM_FIELDS, f"{path}.utm")
    for name, text in utm.items():
        if text is not None and not isinstance(text, str):
            raise ValueError(f"{path}.utm.{name} must be a string")


def check_channels(
    value: Any, path: str, known: frozenset[str], channels: frozenset[str]
) -> dict[str, Any]:
    """Courier's ``{channel: {providers?, routing_method?, override?, metadata?,
    timeouts?, brand_id?}}``. ``routing_method: all`` on email is refused: Tidings sends each
    email once."""
    spec_map = _object(value, path)
    if len(spec_map) > MAX_ROUTING_KEYS:
        raise ValueError(f"{path}: at most {MAX_ROUTING_KEYS} channels")
    for name, raw in spec_map.items():
        at = f"{path}.{name}"
        if name not in channels:
            raise ValueError(f"{path}: '{name}' is not a channel ({', '.join(sorted(channels))})")
        spec = _object(raw, at)
        _no_unknown(spec, _CHANNEL_FIELDS, at)
        _refuse_if(spec, at)
        providers = spec.get("providers")
        if providers is not None:
            if not isinstance(providers, list):
                raise ValueError(f"{at}.providers must be a list of provider keys")
            if len(providers) > MAX_ROUTING_ENTRIES:
                raise ValueError(f"{at}.providers: at most {MAX_ROUTING_ENTRIES} providers")
            for i, key in enumerate(providers):
                _key(key, f"{at}.providers[{i}]", known)
        method = spec.get("routing_method")
        if method not in (None, "single", "all"):
            raise ValueError(f"{at}.routing_method must be 'single' or 'all'")
        if method == "all" and name == "email":
            raise ValueError(
                f"{at}.routing_method: 'all' would send the same email through every "
                "provider at once; Tidings sends each email once (use 'single' to fail over "
                "in order)"
            )
        if spec.get("override") is not None:
            _object(spec["override"], f"{at}.override")
        if spec.get("brand_id") is not None and not isinstance(spec["brand_id"], str):
            raise ValueError(f"{at}.brand_id must be a string")
        _metadata(spec.get("metadata"), f"{at}.metadata")
        timeouts = spec.get("timeouts")
        if timeouts is not None:
            _no_unknown(
                _object(timeouts, f"{at}.timeouts"), ("channel", "provider"), f"{at}.timeouts"
            )
            for part, ms in timeouts.items():
                if ms is not None:
                    _duration(ms, f"{at}.timeouts.{part}")
    return spec_map


def check_providers(value: Any, path: str, known: frozenset[str]) -> dict[str, Any]:
    """Courier's ``{provider key: {override?, metadata?, timeouts?}}``."""
    spec_map = _object(value, path)
    if len(spec_map) > MAX_ROUTING_KEYS:
        raise ValueError(f"{path}: at most {MAX_ROUTING_KEYS} providers")
    for key, raw in spec_map.items():
        _key(key, path, known)
        at = f"{path}.{key}"
        spec = _object(raw, at)
        _no_unknown(spec, _PROVIDER_FIELDS, at)
        _refuse_if(spec, at)
        if spec.get("override") is not None:
            _object(spec["override"], f"{at}.override")
        _metadata(spec.get("metadata"), f"{at}.metadata")
        if spec.get("timeouts") is not None:
            _duration(spec["timeouts"], f"{at}.timeouts")
    return spec_map
