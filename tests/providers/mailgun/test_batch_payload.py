"""One Messages API call for many recipients (payload.build_batch_request), and what each
recipient's history shows of it (payload.redact_member)."""

from __future__ import annotations

import json

import pytest

from tidings.providers.base import BatchRecipient, OutgoingBatch, OutgoingEmail
from tidings.providers.mailgun.errors import PayloadError
from tidings.providers.mailgun.payload import build_batch_request, redact_member
from tidings.providers.mailgun.settings import MailgunConfig


def _batch(**changes: object) -> OutgoingBatch:
    shared: dict[str, object] = {
        "tidings_id": "msg_1",
        "from_address": "Acme <no-reply@mg.example.com>",
        "to": "ann@example.com",
        "subject": "Hi Ann",
        "html": "<p>Hi Ann</p>",
        "text": "Hi Ann",
        "tags": ("news",),
        "headers": {"List-Unsubscribe": "<https://u/ann>"},
    }
    shared.update(changes)
    return OutgoingBatch(
        email=OutgoingEmail(**shared),  # type: ignore[arg-type]
        subject=("Hi ", "s0", ""),
        html=("<p>Hi ", "h0", "</p>"),
        text=("Hi ", "t0", ""),
        headers={"List-Unsubscribe": ("<", "x0", ">")},
        recipients=(
            BatchRecipient(
                "msg_1",
                "ann@example.com",
                {"s0": "Ann", "h0": "Ann", "t0": "Ann", "x0": "https://u/ann"},
            ),
            BatchRecipient(
                "msg_2",
                "bob@example.com",
                {"s0": "Bob", "h0": "Bob", "t0": "Bob", "x0": "https://u/bob"},
            ),
        ),
    )


def test_every_recipient_in_to_with_its_variables_and_its_own_tidings_id(
    config: MailgunConfig,
) -> None:
    request = build_batch_request(_batch(), config)
    assert request.values("to") == ["ann@example.com", "bob@example.com"]
    assert request.values("subject") == ["Hi %recipient.s0%"]
    assert request.values("html") == ["<p>Hi %recipient.h0%</p>"]
    assert request.values("text") == ["Hi %recipient.t0%"]
    assert request.values("h:List-Unsubscribe") == ["<%recipient.x0%>"]
    assert request.values("v:tidings-id") == ["%recipient.tidings_id%"]
    assert request.values("o:tag") == ["news"]
    (variables,) = request.values("recipient-variables")
    assert json.loads(variables) == {
        "ann@example.com": {
            "tidings_id": "msg_1",
            "s0": "Ann",
            "h0": "Ann",
            "t0": "Ann",
            "x0": "https://u/ann",
        },
        "bob@example.com": {
            "tidings_id": "msg_2",
            "s0": "Bob",
            "h0": "Bob",
            "t0": "Bob",
            "x0": "https://u/bob",
        },
    }


def test_a_recipient_sees_only_itself_in_its_history(config: MailgunConfig) -> None:
    request = build_batch_request(_batch(), config)
    record = redact_member(request, "bob@example.com")
    fields = dict(record.fields)
    assert [v for k, v in record.fields if k == "to"] == ["bob@example.com"]
    assert list(json.loads(fields["recipient-variables"])) == ["bob@example.com"]


@pytest.mark.parametrize(
    ("changes", "why"),
    [
        ({"cc": ("boss@example.com",)}, "cc or bcc"),
        ({"provider_body": {"to": "x@example.com"}}, "names recipients"),
        ({"provider_body": {"recipient-variables": "{}"}}, "names recipients"),
    ],
)
def test_what_cannot_be_one_call_is_refused(
    config: MailgunConfig, changes: dict[str, object], why: str
) -> None:
    with pytest.raises(PayloadError, match=why):
        build_batch_request(_batch(**changes), config)


def test_an_address_twice_is_refused(config: MailgunConfig) -> None:
    batch = _batch()
    twice = OutgoingBatch(
        batch.email,
        batch.subject,
        batch.html,
        batch.text,
        batch.headers,
        (batch.recipients[0], BatchRecipient("msg_3", "ann@example.com", {})),
    )
    with pytest.raises(PayloadError, match="twice"):
        build_batch_request(twice, config)
