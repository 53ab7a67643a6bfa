"""The MIME builder as a pure function: structure, headers, refusals."""

from __future__ import annotations

import email
from email.message import EmailMessage
from email.policy import default

import pytest

from tidings.providers.base import Attachment, OutgoingEmail, RequestError
from tidings.providers.smtp.message import build_message
from tidings.providers.smtp.settings import SmtpSettings

CONFIG = SmtpSettings(host="smtp.example.test", from_address="a@acme.test").to_config()


def _mail(**kwargs: object) -> OutgoingEmail:
    values: dict[str, object] = {
        "tidings_id": "m1",
        "from_address": "Acme <a@acme.test>",
        "to": "b@example.test",
        "subject": "Héllo",
        "text": "plain",
        "html": "<p>html</p>",
    }
    values.update(kwargs)
    return OutgoingEmail(**values)  # type: ignore[arg-type]


def _parse(data: bytes) -> EmailMessage:
    msg = email.message_from_bytes(data, policy=default)
    assert isinstance(msg, EmailMessage)
    return msg


def test_alternative_with_attachment() -> None:
    data = bytes(range(256))
    request = build_message(
        _mail(attachments=(Attachment("x.pdf", "application/pdf", data),)), CONFIG
    )
    msg = _parse(request.data)
    assert msg.get_content_type() == "multipart/mixed"
    assert msg["Subject"] == "Héllo"
    assert msg["X-Tidings-Id"] == "m1"
    assert request.message_id.endswith("@acme.test>") and msg["Message-ID"] == request.message_id
    alternative = msg.get_payload()[0]  # type: ignore[index]
    assert isinstance(alternative, EmailMessage)
    assert alternative.get_content_type() == "multipart/alternative"
    (part,) = [p for p in msg.iter_attachments()]
    assert part.get_payload(decode=True) == data
    assert part["Content-Transfer-Encoding"] == "base64"
    assert request.sender == "a@acme.test" and request.recipients == ("b@example.test",)


def test_html_only_and_text_only() -> None:
    assert _parse(build_message(_mail(text=None), CONFIG).data).get_content_type() == "text/html"
    assert _parse(build_message(_mail(html=None), CONFIG).data).get_content_type() == ("text/plain")


@pytest.mark.parametrize(
    ("kwargs", "named"),
    [
        ({"provider_body": {"x": 1}}, "providers.smtp.override.body"),
        ({"track_opens": True}, "tracking.open"),
        ({"track_clicks": True}, "tracking.click"),
        ({"headers": {"Bcc": "x@y.test"}}, "Bcc"),
        ({"headers": {"X-Tidings-Id": "other"}}, "X-Tidings-Id"),
        ({"headers": {"X-Evil": "a\r\nBcc: x@y.test"}}, "header"),
        ({"to": "not an address"}, "to"),
    ],
)
def test_refusals_name_the_field(kwargs: dict[str, object], named: str) -> None:
    with pytest.raises(RequestError, match=named.replace(".", r"\.")):
        build_message(_mail(**kwargs), CONFIG)
