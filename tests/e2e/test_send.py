"""``POST /send`` end to end: Courier's SDK → Tidings → the Mailgun sandbox."""

from __future__ import annotations

import base64
import hashlib
from typing import Any

import courier
import pytest

from tests.e2e.conftest import RunningSandbox, RunningTidings


def _sandbox_copy(sandbox: RunningSandbox, to: str) -> dict[str, Any]:
    matches = [m for m in sandbox.messages() if to in m["to"]]
    assert len(matches) == 1, f"expected one copy for {to}, got {len(matches)}"
    return matches[0]


def test_send_to_email_reaches_sandbox(
    tidings_with_mailgun: RunningTidings, mailgun_sandbox: RunningSandbox
) -> None:
    client = tidings_with_mailgun.courier()
    answer = client.send.message(
        message={
            "to": {"email": "ann@example.test"},
            "content": {"title": "Hello {{name}}", "body": "Your code is {{data.code}}."},
            "data": {"name": "Ann", "code": "1234"},
            "metadata": {"tags": ["welcome", "onboarding"], "trace_id": "trace-1"},
        }
    )
    message_id = answer.request_id
    details = tidings_with_mailgun.wait_status(message_id, "SENT", "DELIVERED")
    assert details["status"] in ("SENT", "DELIVERED"), details
    copy = _sandbox_copy(mailgun_sandbox, "ann@example.test")
    assert copy["subject"] == "Hello Ann"
    assert "1234" in copy["text"]
    assert "1234" in copy["html"]
    assert sorted(copy["tags"]) == ["onboarding", "welcome"]
    assert copy["variables"]["tidings-id"] == message_id
    assert copy["from"] == "Acme <no-reply@mg.tidings.test>"

    full = client.messages.retrieve(message_id)
    assert full.providers and full.providers[0]["reference"]
    assert full.providers[0]["reference"].strip("<>") == copy["id"].strip("<>")
    types = [h["type"] for h in tidings_with_mailgun.history(message_id)]
    assert types[:3] == ["ENQUEUED", "RENDERED", "SENT"]
    listed = client.messages.list(trace_id="trace-1")
    assert [m.id for m in listed.results] == [message_id]


def test_bad_input_is_400_and_creates_nothing(tidings_with_mailgun: RunningTidings) -> None:
    client = tidings_with_mailgun.courier()
    bad: list[tuple[dict[str, Any], str]] = [
        ({"to": {"email": "not-an-address"}, "content": {"title": "t", "body": "b"}},
         "message.to.email"),
        ({"to": {"email": "a@example.test"}, "content": {"title": "t", "body": "b"},
          "metadata": {"tags": ["a", "b", "c", "d"]}}, "message.metadata.tags"),
        ({"to": {"email": "a@example.test"}, "content": {"title": "t", "body": "b"},
          "providers": {"mailgun": {"override": {"attachment": [
              {"filename": "a.txt", "data": "aGVsbG8="},
              {"filename": "b.txt", "data": "not base64!!"}]}}}},
         "message.providers.mailgun.override.attachment[1].data"),
        ({"to": {"email": "a@example.test"}, "template": "welcome"}, "not supported yet"),
        ({"content": {"title": "t", "body": "b"}}, "message.to"),
    ]
    for message, needle in bad:
        with pytest.raises(courier.BadRequestError) as raised:
            client.send.message(message=message)  # type: ignore[arg-type]
        body = raised.value.body
        assert isinstance(body, dict) and body["type"] == "invalid_request_error"
        assert needle in body["message"], body
    assert client.messages.list().results == []


def test_attachments_arrive_byte_exact(
    tidings_with_mailgun: RunningTidings, mailgun_sandbox: RunningSandbox
) -> None:
    blob = bytes(range(256)) * 40
    client = tidings_with_mailgun.courier()
    answer = client.send.message(
        message={
            "to": {"email": "files@example.test"},
            "content": {"title": "Invoice", "body": "Attached."},
            "providers": {
                "mailgun": {
                    "override": {
                        "attachment": [
                            {
                                "filename": "invoice.pdf",
                                "contentType": "application/pdf",
                                "data": base64.b64encode(blob).decode(),
                            }
                        ]
                    }
                }
            },
        }
    )
    tidings_with_mailgun.wait_status(answer.request_id, "SENT", "DELIVERED")
    copy = _sandbox_copy(mailgun_sandbox, "files@example.test")
    assert [a["filename"] for a in copy["attachments"]] == ["invoice.pdf"]
    assert copy["attachments"][0]["sha256"] == hashlib.sha256(blob).hexdigest()
