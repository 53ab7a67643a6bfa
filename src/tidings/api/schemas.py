"""Request and response schemas of the Courier-compatible API (pydantic).

Models accept the fields Courier's SDK sends and keep unknown ones (Courier's models are
lenient too); what Tidings acts on is validated here, with errors that name the field.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

MAX_TAGS = 3


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
    event: str | None = None
    tags: list[str] | None = None
    trace_id: str | None = None

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
    duration: int | None = Field(default=None, ge=0)
    until: str | None = None


class Expiry(Lenient):
    expires_in: int | str | None = None
    expires_at: str | None = None


class Timeout(Lenient):
    message: int | None = Field(default=None, gt=0)


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
    alias: str | None = None
    title: str | None = None
    settings: dict[str, Any] = Field(default_factory=dict)


class ProviderPatchIn(Lenient):
    alias: str | None = None
    title: str | None = None
    settings: dict[str, Any] | None = None
