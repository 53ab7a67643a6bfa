"""Reading a `POST /v3/{domain}/messages` form and checking it the way Mailgun does.

Urlencoded bodies (the common, hot case) are split with ``parse_qsl`` on the raw body;
multipart bodies go through Starlette's python-multipart parser. Every rule that fails
raises a :class:`MailgunError` carrying Mailgun's exact answer.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from email.utils import formataddr, getaddresses
from typing import Any
from urllib.parse import parse_qsl

from starlette.datastructures import UploadFile
from starlette.requests import Request

from tidings.sandbox.errors import MailgunError
from tidings.sandbox.state import Part

MAX_RECIPIENTS = 1000
MAX_TAGS = 3
MAX_TAG_LENGTH = 128
MAX_OPTIONS_BYTES = 16 * 1024
OPTION_PREFIXES = ("o:", "h:", "v:", "t:")
TEMPLATE_OPTIONS = ("t:version", "t:text", "t:variables")
NEED_BODY = "Need at least one of 'text', 'html', 'amp-html' or 'template' parameters specified"

# A bare address: no spaces or specials in the local part, dotted domain of word labels.
_ADDRESS = re.compile(
    r"[^@\s<>(),;:\"\[\]\\]+@(?:[^\W_](?:[\w-]*[^\W_])?\.)+[^\W\d_][\w-]*[^\W_]\Z"
)
_NEEDS_PARSER = re.compile(r"[<>\",]")
# ``Name <address>`` without quotes or commas: common enough to skip the full parser.
_NAME_ADDR = re.compile(r"([^<>\",]*?)\s*<([^<>\",\s]+)>\Z")


@dataclass(slots=True)
class Address:
    """A recipient as written (``Ann <ann@x.test>``) and its bare address."""

    display: str
    address: str


@dataclass
class SendRequest:
    """A valid send request, fields sorted by meaning."""

    sender: str
    sender_address: str
    to: list[Address]
    cc: list[Address]
    bcc: list[Address]
    subject: str
    text: str | None
    html: str | None
    amp_html: str | None
    template: str | None
    tags: list[str]
    headers: dict[str, str]
    variables: dict[str, str]
    options: dict[str, str]
    recipient_variables: dict[str, dict[str, Any]] | None
    attachments: list[Part] = field(default_factory=list)
    inline: list[Part] = field(default_factory=list)
    # Stored template rendering (t:version, t:text, t:variables; X-Mailgun-Variables as JSON).
    template_version: str | None = None
    template_text: bool = False
    template_variables: dict[str, Any] = field(default_factory=dict)
    # Whether from / subject were given (a stored template's headers fill them in if not).
    sender_given: bool = True
    subject_given: bool = True
    mime: bytes | None = None  # the raw message of a messages.mime send


async def read_form(
    request: Request, max_bytes: int
) -> tuple[list[tuple[str, str]], list[tuple[str, Part]]]:
    """Return the form's text fields and its file parts, refusing bodies over ``max_bytes``."""
    length = request.headers.get("content-length")
    if length is not None and length.isdigit() and int(length) > max_bytes:
        raise too_large(max_bytes)
    content_type = request.headers.get("content-type", "")
    if content_type.startswith("multipart/form-data"):
        return await _read_multipart(request, max_bytes)
    body = await _read_body(request, max_bytes)
    return parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True), []


def too_large(max_bytes: int) -> MailgunError:
    return MailgunError(413, f"request size exceeds {max_bytes / 2**20:.1f}MiB limit")


async def _read_body(request: Request, max_bytes: int) -> bytes:
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > max_bytes:
            raise too_large(max_bytes)
        chunks.append(chunk)
    return b"".join(chunks)


async def _read_multipart(
    request: Request, max_bytes: int
) -> tuple[list[tuple[str, str]], list[tuple[str, Part]]]:
    if request.headers.get("content-length") is None:
        # No declared length: read it all first so the limit still holds.
        body = await _read_body(request, max_bytes)
        request._body = body  # Starlette reads a cached body back for form parsing
    form = await request.form(max_files=10_000, max_fields=10_000, max_part_size=max_bytes)
    fields: list[tuple[str, str]] = []
    files: list[tuple[str, Part]] = []
    try:
        for name, value in form.multi_items():
            if isinstance(value, UploadFile):
                data = await value.read()
                # Mailgun drops a file part that has no filename.
                if value.filename:
                    content_type = value.content_type or "application/octet-stream"
                    files.append((name, Part(value.filename, content_type, data)))
            else:
                fields.append((name, value))
    finally:
        await form.close()
    return fields, files


def parse_addresses(values: list[str], field_name: str) -> list[Address]:
    """Split each value on commas into addresses; refuse any that is not valid."""
    result: list[Address] = []
    for value in values:
        value = value.strip()
        if not value:
            continue
        if _NEEDS_PARSER.search(value) is None:
            if _ADDRESS.match(value) is None:
                raise invalid_address(field_name)
            result.append(Address(value, value))
            continue
        simple = _NAME_ADDR.match(value)
        if simple is not None:
            if _ADDRESS.match(simple.group(2)) is None:
                raise invalid_address(field_name)
            result.append(Address(value, simple.group(2)))
            continue
        pairs = getaddresses([value])
        if not pairs:
            raise invalid_address(field_name)
        for name, address in pairs:
            if _ADDRESS.match(address) is None:
                raise invalid_address(field_name)
            display = formataddr((name, address)) if name else address
            result.append(Address(display, address))
    return result


def invalid_address(field_name: str) -> MailgunError:
    return MailgunError(
        400, f"{field_name} parameter is not a valid address. please check documentation"
    )


def validate(
    fields: list[tuple[str, str]], files: list[tuple[str, Part]], domain: str
) -> SendRequest:
    """Apply Mailgun's rules to a form, in the order Mailgun reports them."""
    single: dict[str, str] = {}
    multi: dict[str, list[str]] = {"to": [], "cc": [], "bcc": [], "o:tag": []}
    headers: dict[str, str] = {}
    variables: dict[str, str] = {}
    options: dict[str, str] = {}
    options_size = 0
    for name, value in fields:
        if name in multi:
            multi[name].append(value)
        else:
            single[name] = value
        if name.startswith(OPTION_PREFIXES):
            options_size += len(name) + len(value)
            prefix, rest = name[:2], name[2:]
            if prefix == "h:":
                headers[rest] = value
            elif prefix == "v:":
                variables[rest] = value
            elif prefix == "o:" and name != "o:tag":
                options[rest] = value
            elif prefix == "t:" and name not in TEMPLATE_OPTIONS:
                raise MailgunError(400, f"'{name}' parameter is not supported")

    template = single.get("template")
    sender = single.get("from")
    if not sender:
        if template is None:
            raise MailgunError(400, "from parameter is missing")
        sender = f"postmaster@{domain}"
    if not any(value.strip() for value in multi["to"]):
        raise MailgunError(400, "to parameter is missing")
    subject = single.get("subject")
    if subject is None:
        if template is None:
            raise MailgunError(400, "subject parameter is missing")
        subject = ""
    text, html, amp_html = single.get("text"), single.get("html"), single.get("amp-html")
    if text is None and html is None and amp_html is None and template is None:
        raise MailgunError(400, NEED_BODY)
    if html is not None and template is not None:
        raise MailgunError(400, "Cannot specify both 'html' and 'template' parameters")

    senders = parse_addresses([sender], "from")
    if len(senders) != 1:
        raise invalid_address("from")
    to = parse_addresses(multi["to"], "to")
    cc = parse_addresses(multi["cc"], "cc")
    bcc = parse_addresses(multi["bcc"], "bcc")
    if len(to) + len(cc) + len(bcc) > MAX_RECIPIENTS:
        raise MailgunError(400, f"Too many recipients, max is {MAX_RECIPIENTS}")

    tags = multi["o:tag"]
    if len(tags) > MAX_TAGS:
        raise MailgunError(400, f"Too many tags, max is {MAX_TAGS}")
    for tag in tags:
        if not tag.isascii() or len(tag) > MAX_TAG_LENGTH:
            raise MailgunError(
                400,
                f"Tag '{tag[:MAX_TAG_LENGTH]}' is invalid: "
                f"tags must be ASCII and at most {MAX_TAG_LENGTH} characters",
            )
    if options_size > MAX_OPTIONS_BYTES:
        raise MailgunError(
            400, "Send options (parameters starting with o:, h:, or v:) are limited to 16 kB total"
        )

    recipient_variables = _json_object(single.get("recipient-variables"), "recipient-variables")
    template_variables = _json_object(single.get("t:variables"), "t:variables") or {}
    template_text = single.get("t:text", "no").lower() in ("yes", "true", "1")
    if template is None and any(name in single for name in TEMPLATE_OPTIONS):
        used = next(name for name in TEMPLATE_OPTIONS if name in single)
        raise MailgunError(400, f"'{used}' parameter needs the 'template' parameter")
    # X-Mailgun-Variables is the header form of v: fields.
    header_variables = _json_object(headers.get("X-Mailgun-Variables"), "h:X-Mailgun-Variables")
    if header_variables:
        variables = {**{k: _as_text(v) for k, v in header_variables.items()}, **variables}
        # A template sees X-Mailgun-Variables as the JSON it was (lists, objects).
        template_variables = {**header_variables, **template_variables}

    attachments = [part for name, part in files if name == "attachment"]
    inline = [part for name, part in files if name == "inline"]
    return SendRequest(
        sender=sender,
        sender_address=senders[0].address,
        to=to,
        cc=cc,
        bcc=bcc,
        subject=subject,
        text=text,
        html=html,
        amp_html=amp_html,
        template=template,
        tags=tags,
        headers=headers,
        variables=variables,
        options=options,
        recipient_variables=recipient_variables,
        attachments=attachments,
        inline=inline,
        template_version=single.get("t:version"),
        template_text=template_text,
        template_variables=template_variables,
        sender_given=bool(single.get("from")),
        subject_given=single.get("subject") is not None,
    )


def _json_object(raw: str | None, name: str) -> dict[str, Any] | None:
    if raw is None:
        return None
    try:
        value = json.loads(raw)
    except ValueError:
        value = None
    if not isinstance(value, dict):
        raise MailgunError(400, f"'{name}' parameter is not a valid JSON")
    return value


def _as_text(value: object) -> str:
    return value if isinstance(value, str) else json.dumps(value)
