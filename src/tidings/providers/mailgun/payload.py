"""An :class:`OutgoingEmail` and its override -> the form Mailgun's Messages API expects.

Fields are an ordered list of ``(key, value)`` pairs because Mailgun repeats keys (``to``,
``cc``, ``bcc``, ``o:tag``); files are separate because they force multipart.

The user's override (``providers.mailgun.override.body``) is merged last and wins: a key
given there replaces *every* value Tidings computed for that key, at the place the first one
stood. Values convert as a person would expect from JSON: a list repeats the key, ``true``/
``false`` become ``yes``/``no``, an object is sent as JSON text, ``null`` removes the key.
One exception: ``v:tidings-id`` always carries the Tidings message id — it is how an
in-doubt send is found again in Mailgun's event log — so an override of it is ignored.

A batch (:class:`OutgoingBatch`, :func:`build_batch_request`) is one call for up to 1,000
recipients: every address in ``to``, the parts with ``%recipient.NAME%`` placeholders, and
``recipient-variables`` with each recipient's values — given that, Mailgun sends one copy
per recipient, each showing only its own address in To, and fills the placeholders of the
subject, the parts, ``v:`` variables and (an assumption about Mailgun, made by the
sandbox too) ``h:`` headers. ``v:tidings-id`` is ``%recipient.tidings_id%``, so every
event of every copy still carries that recipient's own Tidings id.
"""

from __future__ import annotations

import functools
import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from tidings.providers.base import Attachment, OutgoingBatch, OutgoingEmail, RequestRecord
from tidings.providers.mailgun.errors import PayloadError
from tidings.providers.mailgun.settings import MailgunConfig

__all__ = [
    "MAX_BATCH",
    "MAX_TAGS",
    "TIDINGS_ID_VARIABLE",
    "MailgunRequest",
    "build_batch_request",
    "build_request",
    "form_value",
    "messages_url",
    "redact",
    "redact_member",
]

MAX_TAGS = 3
MAX_BATCH = 1000  # recipients per call: Mailgun's limit for batch sending
RECIPIENT_VARIABLES = "recipient-variables"
# Override keys that would change who a batch goes to: such a message is sent alone.
_RECIPIENT_FIELDS = frozenset({"to", "cc", "bcc", RECIPIENT_VARIABLES})
TIDINGS_ID_VARIABLE = "tidings-id"
_TIDINGS_ID_FIELD = f"v:{TIDINGS_ID_VARIABLE}"
# The recipient variable that carries each copy's Tidings id in a batch.
TIDINGS_ID_BATCH = "tidings_id"
_FILE_FIELDS = frozenset({"attachment", "inline"})
REDACTED = "[redacted]"


@dataclass(frozen=True, slots=True)
class MailgunRequest:
    """One Messages API call: where, the form fields in order, and the files."""

    url: str
    region: str
    fields: list[tuple[str, str]]
    files: list[tuple[str, Attachment]] = field(default_factory=list)
    method: str = "POST"

    def values(self, key: str) -> list[str]:
        """Every value of ``key``, in order (``to``, ``o:tag`` may repeat)."""
        return [value for name, value in self.fields if name == key]


def messages_url(config: MailgunConfig) -> str:
    return f"{config.base_url.rstrip('/')}/v3/{config.domain}/messages"


def form_value(value: Any) -> list[str]:
    """A JSON value from an override as the list of form values it stands for."""
    if value is None:
        return []
    if isinstance(value, list | tuple):
        return [_scalar(item) for item in value]
    return [_scalar(value)]


def _scalar(value: Any) -> str:
    if isinstance(value, bool):  # before int: bool is an int
        return "yes" if value else "no"
    if isinstance(value, str):
        return value
    if isinstance(value, dict | list | tuple):
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    if value is None:
        return ""
    return str(value)


def _yes_no(flag: bool) -> str:
    return "yes" if flag else "no"


def _computed_fields(email: OutgoingEmail, config: MailgunConfig) -> list[tuple[str, str]]:
    fields: list[tuple[str, str]] = []
    sender = email.from_address or config.from_address
    if sender:
        fields.append(("from", sender))
    fields.append(("to", email.to))
    fields.extend(("cc", address) for address in email.cc)
    fields.extend(("bcc", address) for address in email.bcc)
    fields.append(("subject", email.subject))
    if email.text is not None:
        fields.append(("text", email.text))
    if email.html is not None:
        fields.append(("html", email.html))
    fields.extend(("o:tag", tag) for tag in email.tags)
    if email.track_opens is not None:
        fields.append(("o:tracking-opens", _yes_no(email.track_opens)))
    if email.track_clicks is not None:
        fields.append(("o:tracking-clicks", _yes_no(email.track_clicks)))
    if email.reply_to:
        fields.append(("h:Reply-To", email.reply_to))
    for name, value in email.headers.items():
        key = name if name.startswith("h:") else f"h:{name}"
        fields.append((key, str(value)))
    for name, raw in email.variables.items():
        key = name if name.startswith("v:") else f"v:{name}"
        if key != _TIDINGS_ID_FIELD:
            fields.append((key, _scalar(raw)))
    fields.append((_TIDINGS_ID_FIELD, email.tidings_id))
    return fields


def _merge_override(
    fields: list[tuple[str, str]], override: dict[str, Any]
) -> list[tuple[str, str]]:
    merged = list(fields)
    for key, value in override.items():
        if key == _TIDINGS_ID_FIELD:
            continue  # see the module docstring: never removed, never replaced
        if key in _FILE_FIELDS:
            raise PayloadError(
                f"providers.mailgun.override.body.{key}: files cannot be given as form "
                "fields; use providers.mailgun.override.attachment instead"
            )
        positions = [i for i, (name, _) in enumerate(merged) if name == key]
        at = positions[0] if positions else len(merged)
        merged = [(name, val) for name, val in merged if name != key]
        merged[at:at] = [(key, item) for item in form_value(value)]
    return merged


def _check(fields: list[tuple[str, str]]) -> None:
    tags = [value for name, value in fields if name == "o:tag"]
    if len(tags) > MAX_TAGS:
        raise PayloadError(
            f"Mailgun accepts at most {MAX_TAGS} tags (o:tag) per message, got "
            f"{len(tags)}: {', '.join(tags)}"
        )


def build_request(email: OutgoingEmail, config: MailgunConfig) -> MailgunRequest:
    """The Messages API request for ``email``; raises :class:`PayloadError` when Mailgun
    would refuse it for a reason known in advance (more than 3 tags)."""
    fields = _merge_override(_computed_fields(email, config), email.provider_body)
    _check(fields)
    files = [("inline" if att.inline else "attachment", att) for att in email.attachments]
    return MailgunRequest(
        url=messages_url(config), region=config.region, fields=fields, files=files
    )


def _placeholders(segments: tuple[str, ...]) -> str:
    return "".join(f"%recipient.{part}%" if i % 2 else part for i, part in enumerate(segments))


def build_batch_request(batch: OutgoingBatch, config: MailgunConfig) -> MailgunRequest:
    """One Messages API call for every recipient of ``batch``; raises :class:`PayloadError`
    when it cannot be one (copies to cc/bcc, an override naming recipients, more than
    :data:`MAX_BATCH` recipients, an address twice)."""
    email = batch.email
    if email.cc or email.bcc:
        raise PayloadError("a batch cannot carry cc or bcc: each copy would be sent to them")
    named = sorted(_RECIPIENT_FIELDS & set(email.provider_body))
    if named:
        raise PayloadError(f"providers.mailgun.override.body names recipients ({', '.join(named)})")
    if not 0 < len(batch.recipients) <= MAX_BATCH:
        raise PayloadError(f"a batch has 1 to {MAX_BATCH} recipients, not {len(batch.recipients)}")
    variables: dict[str, dict[str, str]] = {}
    for recipient in batch.recipients:
        if recipient.to in variables or recipient.to.lower() in variables:
            raise PayloadError(f"{recipient.to} is twice in one batch")
        variables[recipient.to] = {TIDINGS_ID_BATCH: recipient.tidings_id, **recipient.values}
    shared = OutgoingEmail(
        tidings_id=f"%recipient.{TIDINGS_ID_BATCH}%",
        from_address=email.from_address,
        to=email.to,
        subject=_placeholders(batch.subject),
        html=_placeholders(batch.html) if batch.html is not None else None,
        text=_placeholders(batch.text) if batch.text is not None else None,
        reply_to=email.reply_to,
        tags=email.tags,
        headers={name: _placeholders(value) for name, value in batch.headers.items()},
        variables=email.variables,
        attachments=email.attachments,
        track_opens=email.track_opens,
        track_clicks=email.track_clicks,
        provider_body=email.provider_body,
    )
    computed = _computed_fields(shared, config)
    at = next(i for i, (name, _) in enumerate(computed) if name == "to")
    computed[at : at + 1] = [("to", recipient.to) for recipient in batch.recipients]
    computed.append((RECIPIENT_VARIABLES, json.dumps(variables, ensure_ascii=False)))
    fields = _merge_override(computed, email.provider_body)
    _check(fields)
    files = [("inline" if att.inline else "attachment", att) for att in email.attachments]
    return MailgunRequest(
        url=messages_url(config), region=config.region, fields=fields, files=files
    )


@functools.lru_cache(maxsize=8)
def _recipient_variables(value: str) -> dict[str, Any]:
    # Read once per batch, not once per recipient: a batch's record is made for each.
    parsed: dict[str, Any] = json.loads(value)
    return parsed


def redact_member(
    request: MailgunRequest, recipient: str, secrets: Iterable[str | None] = ()
) -> RequestRecord:
    """A batch request as ``recipient``'s history shows it: its own address in ``to`` and
    only its own entry of ``recipient-variables`` (another recipient's values are theirs)."""
    fields: list[tuple[str, str]] = []
    for name, value in request.fields:
        if name == "to" and value != recipient:
            continue
        if name == RECIPIENT_VARIABLES:
            mine = _recipient_variables(value).get(recipient, {})
            value = json.dumps({recipient: mine}, ensure_ascii=False)
        fields.append((name, value))
    return redact(
        MailgunRequest(request.url, request.region, fields, request.files, request.method),
        secrets,
    )


def redact(request: MailgunRequest, secrets: Iterable[str | None] = ()) -> RequestRecord:
    """What was sent, for the message history: fields as sent, files as name, type, size and
    sha256. The API key is never part of a request; ``secrets`` (the API key, the signing
    key) are masked anyway should a user have pasted one into an override field."""
    hidden = [secret for secret in secrets if secret]

    def mask(value: str) -> str:
        for secret in hidden:
            value = value.replace(secret, REDACTED)
        return value

    return RequestRecord(
        method=request.method,
        url=request.url,
        region=request.region,
        fields=[(name, mask(value)) for name, value in request.fields],
        files=[
            {
                "field": name,
                "filename": att.filename,
                "content_type": att.content_type,
                "size": len(att.data),
                "sha256": hashlib.sha256(att.data).hexdigest(),
            }
            for name, att in request.files
        ],
    )
