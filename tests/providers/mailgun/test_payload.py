"""The Messages API form built from an OutgoingEmail and the user's override."""

from __future__ import annotations

import hashlib
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.providers.mailgun.fixtures import API_KEY, make_config
from tidings.providers.base import Attachment, OutgoingEmail
from tidings.providers.mailgun.errors import PayloadError
from tidings.providers.mailgun.payload import build_request, form_value, redact
from tidings.providers.mailgun.settings import MailgunConfig


def email(**changes: object) -> OutgoingEmail:
    values: dict[str, object] = {
        "tidings_id": "1-abc",
        "from_address": "Acme <no-reply@mg.example.com>",
        "to": "alice@example.com",
        "subject": "Your invoice",
        "html": "<p>Hi</p>",
        "text": "Hi",
    }
    values.update(changes)
    return OutgoingEmail(**values)  # type: ignore[arg-type]


def test_url_and_basic_fields(config: MailgunConfig) -> None:
    request = build_request(email(), config)
    assert request.url == "https://api.mailgun.net/v3/mg.example.com/messages"
    assert request.region == "us"
    assert request.fields == [
        ("from", "Acme <no-reply@mg.example.com>"),
        ("to", "alice@example.com"),
        ("subject", "Your invoice"),
        ("text", "Hi"),
        ("html", "<p>Hi</p>"),
        ("v:tidings-id", "1-abc"),
    ]
    assert request.files == []


def test_eu_region_and_trailing_slash() -> None:
    config = make_config("https://api.eu.mailgun.net/")
    request = build_request(email(), config)
    assert request.url == "https://api.eu.mailgun.net/v3/mg.example.com/messages"
    assert request.region == "eu"


def test_repeated_keys_and_options(config: MailgunConfig) -> None:
    request = build_request(
        email(
            cc=("c1@example.com", "c2@example.com"),
            bcc=("b@example.com",),
            reply_to="help@example.com",
            tags=("invoice", "billing"),
            track_opens=True,
            track_clicks=False,
            headers={"X-Campaign": "spring", "h:X-Already": "prefixed"},
            variables={"user": "42", "tidings-id": "spoofed"},
        ),
        config,
    )
    assert request.values("cc") == ["c1@example.com", "c2@example.com"]
    assert request.values("bcc") == ["b@example.com"]
    assert request.values("o:tag") == ["invoice", "billing"]
    assert request.values("o:tracking-opens") == ["yes"]
    assert request.values("o:tracking-clicks") == ["no"]
    assert request.values("h:Reply-To") == ["help@example.com"]
    assert request.values("h:X-Campaign") == ["spring"]
    assert request.values("h:X-Already") == ["prefixed"]
    assert request.values("v:user") == ["42"]
    assert request.values("v:tidings-id") == ["1-abc"]


def test_tracking_absent_when_unset(config: MailgunConfig) -> None:
    keys = {key for key, _ in build_request(email(), config).fields}
    assert not keys & {"o:tracking-opens", "o:tracking-clicks", "h:Reply-To", "o:tag"}


def test_variables_that_are_objects_are_json(config: MailgunConfig) -> None:
    variables = {"order": {"id": 7, "items": ["a"]}, "ids": [1, 2]}
    request = build_request(email(variables=variables), config)
    assert json.loads(request.values("v:order")[0]) == {"id": 7, "items": ["a"]}
    assert json.loads(request.values("v:ids")[0]) == [1, 2]


def test_more_than_three_tags_is_refused(config: MailgunConfig) -> None:
    with pytest.raises(PayloadError, match=r"at most 3 tags .* got 4: a, b, c, d"):
        build_request(email(tags=("a", "b", "c", "d")), config)


def test_override_tags_are_counted_too(config: MailgunConfig) -> None:
    with pytest.raises(ValueError, match="at most 3 tags"):
        build_request(email(provider_body={"o:tag": ["a", "b", "c", "d"]}), config)


def test_override_replaces_every_computed_value_in_place(config: MailgunConfig) -> None:
    request = build_request(
        email(tags=("one", "two"), cc=("x@example.com",), provider_body={"o:tag": "only"}),
        config,
    )
    assert request.values("o:tag") == ["only"]
    keys = [key for key, _ in request.fields]
    assert keys.index("o:tag") > keys.index("html")  # where the computed tags stood
    assert request.values("cc") == ["x@example.com"]


def test_override_value_conversions(config: MailgunConfig) -> None:
    body = {
        "to": ["a@example.com", "b@example.com"],
        "o:testmode": True,
        "o:tracking": False,
        "o:deliverytime": "Mon, 25 Aug 2025 07:00:31 +0000",
        "recipient-variables": {"a@example.com": {"name": "A"}},
        "v:count": 3,
        "text": None,
    }
    request = build_request(email(provider_body=body), config)
    assert request.values("to") == ["a@example.com", "b@example.com"]
    assert request.values("o:testmode") == ["yes"]
    assert request.values("o:tracking") == ["no"]
    assert request.values("o:deliverytime") == ["Mon, 25 Aug 2025 07:00:31 +0000"]
    assert json.loads(request.values("recipient-variables")[0]) == {"a@example.com": {"name": "A"}}
    assert request.values("v:count") == ["3"]
    assert request.values("text") == []


def test_tidings_id_survives_the_override(config: MailgunConfig) -> None:
    for value in (None, "other", ["x", "y"]):
        request = build_request(email(provider_body={"v:tidings-id": value}), config)
        assert request.values("v:tidings-id") == ["1-abc"]


def test_files_in_override_body_are_refused(config: MailgunConfig) -> None:
    with pytest.raises(PayloadError, match=r"override\.attachment"):
        build_request(email(provider_body={"attachment": "x"}), config)


def test_from_falls_back_to_configuration() -> None:
    config = make_config(from_address="Config <cfg@mg.example.com>")
    request = build_request(email(from_address=""), config)
    assert request.values("from") == ["Config <cfg@mg.example.com>"]


def test_attachments_and_redaction(config: MailgunConfig) -> None:
    pdf = Attachment("billing.pdf", "application/pdf", b"%PDF-1.4\x00\xff")
    logo = Attachment("logo.png", "image/png", b"\x89PNG", inline=True)
    request = build_request(
        email(attachments=(pdf, logo), provider_body={"v:note": f"key {API_KEY}"}), config
    )
    assert request.files == [("attachment", pdf), ("inline", logo)]
    record = redact(request, [config.api_key, config.webhook_signing_key])
    assert record.method == "POST"
    assert record.region == "us"
    assert record.files[0] == {
        "field": "attachment",
        "filename": "billing.pdf",
        "content_type": "application/pdf",
        "size": len(pdf.data),
        "sha256": hashlib.sha256(pdf.data).hexdigest(),
    }
    assert record.files[1]["field"] == "inline"
    assert API_KEY not in repr(record)
    assert ("v:note", "key [redacted]") in record.fields


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner),
    max_leaves=5,
)


@settings(deadline=None)
@given(st.dictionaries(st.sampled_from(["cc", "bcc", "h:X-A", "v:a", "o:tracking"]), json_values))
def test_override_keys_always_win(body: dict[str, object]) -> None:
    request = build_request(email(cc=("c@example.com",), provider_body=body), make_config())
    for key, value in body.items():
        assert request.values(key) == form_value(value)
    assert request.values("v:tidings-id") == ["1-abc"]
