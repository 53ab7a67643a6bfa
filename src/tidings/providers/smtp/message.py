"""An :class:`OutgoingEmail` -> one SMTP transaction: the envelope and a MIME message built
with the standard library's ``email`` package (``EmailMessage``, policy ``SMTP``).

The structure is the one mail clients produce: ``text/plain`` and ``text/html`` as a
``multipart/alternative``, inline images beside the HTML in a ``multipart/related`` (each
with ``Content-ID: <filename>``, so the ``cid:filename`` references written for Mailgun work
unchanged), the whole inside ``multipart/mixed`` when there are attachments. Attachments are
base64, byte-exact.

What Tidings adds, and why:

* ``X-Tidings-Id``: the Tidings message id, on every message (the contract asks every
  request to carry it; SMTP keeps no log to look it up in, but a recipient's copy can be
  traced back).
* ``Message-ID``: generated on the From address's domain; it is the provider message id.
* ``X-Tidings-Tag``: one header per tag (a tag may contain a comma, so not one list).
* ``X-Tidings-Variables``: the email's variables as one JSON object, as Mailgun puts its
  ``v:`` variables in ``X-Mailgun-Variables``.
* Bcc recipients are envelope recipients only; no ``Bcc`` header is written.

What is refused (a :class:`RequestError` naming it), never dropped: a raw provider body
override (SMTP has no request body other than the message), open/click tracking (a relay
cannot track), custom headers that would replace the structure Tidings builds (From, To,
Cc, Bcc, Subject, Date, Message-ID, MIME-Version, Content-*, X-Tidings-*), and header values
with line breaks.
"""

from __future__ import annotations

import hashlib
import json
import secrets as _secrets
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime, getaddresses, parseaddr

from tidings.providers.base import Attachment, OutgoingEmail, RequestError, RequestRecord
from tidings.providers.smtp.settings import SmtpConfig, address_domain

__all__ = [
    "REDACTED",
    "RESERVED_HEADERS",
    "TAG_HEADER",
    "TIDINGS_ID_HEADER",
    "VARIABLES_HEADER",
    "SmtpRequest",
    "build_message",
    "masker",
    "record",
]

TIDINGS_ID_HEADER = "X-Tidings-Id"
TAG_HEADER = "X-Tidings-Tag"
VARIABLES_HEADER = "X-Tidings-Variables"
REDACTED = "[redacted]"
RESERVED_HEADERS = frozenset(
    {
        "from",
        "to",
        "cc",
        "bcc",
        "subject",
        "date",
        "message-id",
        "mime-version",
        "content-type",
        "content-transfer-encoding",
        "content-disposition",
        "content-id",
    }
)


@dataclass(frozen=True, slots=True)
class SmtpRequest:
    """One SMTP transaction: where, the envelope, the message bytes as sent, and (for the
    history) its top-level headers and attachments."""

    target: str
    sender: str
    recipients: tuple[str, ...]
    message_id: str
    data: bytes
    headers: list[tuple[str, str]]
    attachments: tuple[Attachment, ...] = ()
    # Which recipients are the message's own (To): if one of these is refused, nothing is
    # sent; a refused Cc or Bcc is left out and noted.
    primary: tuple[str, ...] = field(default_factory=tuple)


def _spec(address: str, where: str) -> str:
    if "\r" in address or "\n" in address:
        raise RequestError(f"{where} contains a line break")
    _name, spec = parseaddr(address)
    local, at, domain = spec.rpartition("@")
    if not at or not local or not domain:
        raise RequestError(f"{where} is not an email address: {address!r}")
    return spec


def _specs(addresses: Iterable[str], where: str) -> list[str]:
    found: list[str] = []
    for raw in addresses:
        for name, spec in getaddresses([raw]):
            found.append(_spec(f"{name} <{spec}>" if name else spec, where))
    return found


def _mime_type(content_type: str) -> tuple[str, str]:
    kind = content_type.split(";", 1)[0].strip().lower()
    maintype, slash, subtype = kind.partition("/")
    if not slash or not maintype or not subtype:
        return "application", "octet-stream"
    return maintype, subtype


def _message_id(domain: str, tidings_id: str) -> str:
    # The Tidings id keeps it traceable; the random part keeps two attempts distinct.
    safe = "".join(c for c in tidings_id if c.isalnum() or c in "-_.")[:64] or "message"
    return f"<{safe}.{_secrets.token_hex(8)}@{domain}>"


def _refuse_unsupported(email: OutgoingEmail) -> None:
    if email.provider_body:
        names = ", ".join(sorted(email.provider_body))
        raise RequestError(
            f"providers.smtp.override.body is not supported by SMTP (got {names}): an SMTP "
            "message has no request body to merge it into; use email headers instead"
        )
    if email.track_opens:
        raise RequestError("tracking.open is not supported by SMTP: a relay cannot track opens")
    if email.track_clicks:
        raise RequestError("tracking.click is not supported by SMTP: a relay cannot track clicks")
    for name in email.headers:
        lower = name.strip().lower()
        if lower in RESERVED_HEADERS or lower.startswith("x-tidings-"):
            raise RequestError(
                f"header {name!r} cannot be set for SMTP: Tidings writes it from the "
                "email's own fields"
            )


def build_message(
    email: OutgoingEmail, config: SmtpConfig, *, now: datetime | None = None
) -> SmtpRequest:
    """The transaction for ``email``; raises :class:`RequestError` for what SMTP refuses."""
    _refuse_unsupported(email)
    from_address = email.from_address or config.from_address
    sender = _spec(from_address, "from")
    domain = address_domain(from_address) or config.domain or "localhost"
    to = _specs([email.to], "to")
    cc = _specs(email.cc, "cc")
    bcc = _specs(email.bcc, "bcc")
    message_id = _message_id(domain, email.tidings_id)

    msg = EmailMessage(policy=SMTP)
    try:
        msg["From"] = from_address
        msg["To"] = email.to
        if email.cc:
            msg["Cc"] = ", ".join(email.cc)
        if email.reply_to:
            msg["Reply-To"] = email.reply_to
        msg["Subject"] = email.subject
        msg["Date"] = format_datetime(now or datetime.now(UTC))
        msg["Message-ID"] = message_id
        msg[TIDINGS_ID_HEADER] = email.tidings_id
        for tag in email.tags:
            msg[TAG_HEADER] = tag
        if email.variables:
            msg[VARIABLES_HEADER] = json.dumps(
                email.variables, ensure_ascii=False, separators=(",", ":")
            )
        for name, value in email.headers.items():
            if name in msg:
                del msg[name]  # a custom header replaces Tidings' own (Reply-To)
            msg[name] = value
    except (ValueError, TypeError) as exc:  # line breaks, malformed addresses
        raise RequestError(f"a header cannot be written: {exc}") from None

    _set_body(msg, email)
    data = msg.as_bytes(policy=SMTP)
    headers = [(name, str(value)) for name, value in msg.items()]
    recipients = tuple(dict.fromkeys([*to, *cc, *bcc]))  # each address once
    return SmtpRequest(
        target=config.target,
        sender=sender,
        recipients=recipients,
        message_id=message_id,
        data=data,
        headers=headers,
        attachments=email.attachments,
        primary=tuple(to),
    )


def _set_body(msg: EmailMessage, email: OutgoingEmail) -> None:
    inline = [a for a in email.attachments if a.inline]
    files = [a for a in email.attachments if not a.inline]
    html_part: EmailMessage | None = None
    if email.text is not None or email.html is None:
        msg.set_content(email.text or "", subtype="plain", charset="utf-8")
        if email.html is not None:
            msg.add_alternative(email.html, subtype="html", charset="utf-8")
            payload = msg.get_payload()
            assert isinstance(payload, list)
            last = payload[-1]
            assert isinstance(last, EmailMessage)
            html_part = last
    else:
        msg.set_content(email.html, subtype="html", charset="utf-8")
        html_part = msg
    for item in inline:
        maintype, subtype = _mime_type(item.content_type)
        target = html_part if html_part is not None else msg
        target.add_related(
            item.data,
            maintype=maintype,
            subtype=subtype,
            cid=f"<{item.filename}>",
            filename=item.filename,
            disposition="inline",
        )
    for item in files:
        maintype, subtype = _mime_type(item.content_type)
        msg.add_attachment(item.data, maintype=maintype, subtype=subtype, filename=item.filename)


def masker(secrets: Sequence[str | None]) -> Callable[[str], str]:
    """A function that replaces every secret in a text (headers, server replies, errors)."""
    hidden = [secret for secret in secrets if secret]

    def mask(value: str) -> str:
        for secret in hidden:
            value = value.replace(secret, REDACTED)
        return value

    return mask


def record(request: SmtpRequest, secrets: Sequence[str | None] = ()) -> RequestRecord:
    """The transaction as the history shows it: the envelope, the top-level headers, and
    files as name, type, size and sha256. The password is never part of a message; every
    secret is masked anyway, should one have been pasted into a header."""
    mask = masker(secrets)
    fields: list[tuple[str, str]] = [("MAIL FROM", mask(request.sender))]
    fields += [("RCPT TO", mask(rcpt)) for rcpt in request.recipients]
    fields += [(name, mask(value)) for name, value in request.headers]
    return RequestRecord(
        method="SMTP",
        url=request.target,
        region=request.target,
        fields=fields,
        files=[
            {
                "field": "inline" if att.inline else "attachment",
                "filename": att.filename,
                "content_type": att.content_type,
                "size": len(att.data),
                "sha256": hashlib.sha256(att.data).hexdigest(),
            }
            for att in request.attachments
        ],
    )
