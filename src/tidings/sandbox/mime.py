"""MIME in and out: reading a ``messages.mime`` upload, and writing a stored copy as MIME.

Both with the standard library's ``email`` package (``policy=default``). A MIME send becomes
the same :class:`SendRequest` a form send does, so every rule and every event is the same:
the message's From, Subject, text and HTML parts and attachments (with their content
types) are taken from the MIME; recipients and ``o:``/``h:``/``v:`` options from the form.
"""

from __future__ import annotations

import email
import email.policy
from email.message import EmailMessage
from email.utils import formatdate

from tidings.sandbox.errors import MailgunError
from tidings.sandbox.forms import SendRequest, validate
from tidings.sandbox.state import MessageCopy, Part

# The form fields messages.mime takes besides its prefixed options.
MIME_FIELDS = ("to",)
MIME_PREFIXES = ("o:", "h:", "v:")
# Headers of the uploaded message that stay headers of the stored copy.
_KEPT_HEADERS = ("reply-to", "in-reply-to", "references", "list-unsubscribe")


def parse_mime_send(
    fields: list[tuple[str, str]], files: list[tuple[str, Part]], domain: str
) -> SendRequest:
    """A valid send request from a ``messages.mime`` form, or Mailgun's 400."""
    for name, _ in fields:
        if name == "message":
            raise MailgunError(400, "'message' parameter is not a file")
        if name not in MIME_FIELDS and not name.startswith(MIME_PREFIXES):
            raise MailgunError(
                400, f"'{name}' parameter is not supported by messages.mime (put it in the MIME)"
            )
    uploads = [part for name, part in files if name == "message"]
    others = [name for name, _ in files if name != "message"]
    if others:
        raise MailgunError(400, f"'{others[0]}' parameter is not supported by messages.mime")
    if not any(name == "to" and value.strip() for name, value in fields):
        raise MailgunError(400, "to parameter is missing")
    if not uploads:
        raise MailgunError(400, "message parameter is missing")
    raw = uploads[0].data
    message = email.message_from_bytes(raw, policy=email.policy.default)
    if not isinstance(message, EmailMessage):  # pragma: no cover - policy.default gives one
        raise MailgunError(400, "'message' parameter is not a MIME message")
    sender = str(message.get("From", "")).strip()
    if not sender:
        raise MailgunError(400, "'message' has no From header")
    text_part = message.get_body(("plain",))
    html_part = message.get_body(("html",))
    text = str(text_part.get_content()) if text_part is not None else None
    html = str(html_part.get_content()) if html_part is not None else None
    synthesised = [
        *fields,
        ("from", sender),
        ("subject", str(message.get("Subject", ""))),
    ]
    for name in _KEPT_HEADERS:
        value = message.get(name)
        if value is not None and not any(f.lower() == f"h:{name}" for f, _ in fields):
            synthesised.append((f"h:{name.title()}", str(value)))
    if text is not None or html is None:
        synthesised.append(("text", text or ""))
    if html is not None:
        synthesised.append(("html", html))
    parts: list[tuple[str, Part]] = []
    # Every leaf but the two body parts, however deeply nested (inline images sit in a
    # multipart/related next to the HTML part).
    leaves = [
        part
        for part in message.walk()
        if not part.is_multipart() and part is not text_part and part is not html_part
    ]
    for index, part in enumerate(leaves):
        payload = part.get_payload(decode=True)
        data = payload if isinstance(payload, bytes) else b""
        filename = part.get_filename() or f"attachment-{index + 1}"
        kind = "inline" if part.get_content_disposition() == "inline" else "attachment"
        parts.append((kind, Part(filename, part.get_content_type(), data)))
    request = validate(synthesised, parts, domain)
    request.mime = raw
    return request


def build_mime(copy: MessageCopy) -> EmailMessage:
    """The copy as the MIME message Mailgun would have built from the form."""
    if copy.mime is not None:
        parsed = email.message_from_bytes(copy.mime, policy=email.policy.default)
        assert isinstance(parsed, EmailMessage)
        return parsed
    message = EmailMessage(policy=email.policy.default)
    message["From"] = copy.sender
    message["To"] = ", ".join(copy.to)
    if copy.cc:
        message["Cc"] = ", ".join(copy.cc)
    message["Subject"] = copy.subject
    message["Message-Id"] = f"<{copy.message_id}>"
    message["Date"] = formatdate(copy.received_at, usegmt=True)
    if copy.tags:
        message["X-Mailgun-Tag"] = ", ".join(copy.tags)
    for name, value in copy.headers.items():
        try:
            message[name] = value
        except (ValueError, TypeError):
            continue  # a header the email package cannot write is left out of the copy
    if copy.text is not None:
        message.set_content(copy.text)
        if copy.html is not None:
            message.add_alternative(copy.html, subtype="html")
    elif copy.html is not None:
        message.set_content(copy.html, subtype="html")
    else:
        message.set_content("")
    for disposition, group in (("inline", copy.inline), ("attachment", copy.attachments)):
        for part in group:
            maintype, _, subtype = part.content_type.partition(";")[0].strip().partition("/")
            message.add_attachment(
                part.data,
                maintype=maintype or "application",
                subtype=subtype or "octet-stream",
                filename=part.filename,
                disposition=disposition,
            )
    return message
