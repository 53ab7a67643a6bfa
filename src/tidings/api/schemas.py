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


class Metadata(Lenient):
    event: str | None = Field(default=None, max_length=200)
    tags: list[str] | None = None
    trace_id: str | None = Field(default=None, max_length=200)

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
    provider: Duration | None = None
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
