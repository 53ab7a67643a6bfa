"""``POST /send`` end to end: Courier's SDK → Tidings → the Mailgun sandbox."""

from __future__ import annotations

import base64
import hashlib
from typing import Any

import courier
import pytest

from tests.e2e.conftest import RunningSandbox, RunningTidings


def _sandbox_copy(sandbox: RunningSandbox, to: str) -> dict[str, Any]:
    matches = [m for m in sandbox.messages() if m.get("recipient", to) == to and to in m["to"]]
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
    assert types[:4] == ["ENQUEUED", "ROUTED", "RENDERED", "SENT"]
    listed = client.messages.list(trace_id="trace-1")
    assert [m.id for m in listed.results] == [message_id]


def test_bad_input_is_400_and_creates_nothing(tidings_with_mailgun: RunningTidings) -> None:
    client = tidings_with_mailgun.courier()
    bad: list[tuple[dict[str, Any], str]] = [
        (
            {"to": {"email": "not-an-address"}, "content": {"title": "t", "body": "b"}},
            "message.to.email",
        ),
        (
            {
                "to": {"email": "a@example.test"},
                "content": {"title": "t", "body": "b"},
                "metadata": {"tags": ["a", "b", "c", "d"]},
            },
            "message.metadata.tags",
        ),
        (
            {
                "to": {"email": "a@example.test"},
                "content": {"title": "t", "body": "b"},
                "providers": {
                    "mailgun": {
                        "override": {
                            "attachment": [
                                {"filename": "a.txt", "data": "aGVsbG8="},
                                {"filename": "b.txt", "data": "not base64!!"},
                            ]
                        }
                    }
                },
            },
            "message.providers.mailgun.override.attachment[1].data",
        ),
        ({"to": {"email": "a@example.test"}, "template": "welcome"}, "no template"),
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


def test_send_to_user_id_uses_profile_and_inline_fields_win(
    tidings_with_mailgun: RunningTidings, mailgun_sandbox: RunningSandbox
) -> None:
    client = tidings_with_mailgun.courier()
    client.profiles.create("user-1", profile={"email": "stored@example.test", "name": "Stored"})
    first = client.send.message(
        message={
            "to": {"user_id": "user-1"},
            "content": {"title": "Hi {{profile.name}}", "body": "to {{profile.email}}"},
        }
    )
    second = client.send.message(
        message={
            "to": {"user_id": "user-1", "email": "inline@example.test"},
            "content": {"title": "Hi {{profile.name}}", "body": "to {{profile.email}}"},
        }
    )
    tidings_with_mailgun.wait_status(first.request_id, "SENT", "DELIVERED")
    tidings_with_mailgun.wait_status(second.request_id, "SENT", "DELIVERED")
    stored = _sandbox_copy(mailgun_sandbox, "stored@example.test")
    assert stored["subject"] == "Hi Stored"
    inline = _sandbox_copy(mailgun_sandbox, "inline@example.test")
    assert "inline@example.test" in inline["text"]
    assert "PROFILE_LOADED" in [h["type"] for h in tidings_with_mailgun.history(first.request_id)]


def test_user_without_email_is_unroutable(tidings_with_mailgun: RunningTidings) -> None:
    client = tidings_with_mailgun.courier()
    answer = client.send.message(
        message={"to": {"user_id": "nobody"}, "content": {"title": "t", "body": "b"}}
    )
    details = tidings_with_mailgun.wait_status(answer.request_id, "UNROUTABLE")
    assert details["status"] == "UNROUTABLE"
    entry = [
        h for h in tidings_with_mailgun.history(answer.request_id) if h["type"] == "UNROUTABLE"
    ]
    assert "no email address" in entry[0]["error_message"]


def test_several_recipients_get_one_message_each(
    tidings_with_mailgun: RunningTidings, mailgun_sandbox: RunningSandbox
) -> None:
    client = tidings_with_mailgun.courier()
    answer = client.send.message(
        message={
            "to": [{"email": f"r{i}@example.test"} for i in range(3)],
            "content": {"title": "All", "body": "of you"},
        }
    )
    with tidings_with_mailgun.http() as http:
        deadline_rows: list[dict[str, Any]] = []
        for _ in range(200):
            rows = http.get("/messages").json()["results"]
            deadline_rows = [r for r in rows if r["requestId"] == answer.request_id]
            if len(deadline_rows) == 3 and all(r["status"] != "ENQUEUED" for r in deadline_rows):
                break
            import time

            time.sleep(0.05)
    assert len(deadline_rows) == 3
    assert answer.request_id not in [r["id"] for r in deadline_rows]
    for i in range(3):
        _sandbox_copy(mailgun_sandbox, f"r{i}@example.test")


def test_override_body_headers_variables_and_from(
    tidings_with_mailgun: RunningTidings, mailgun_sandbox: RunningSandbox
) -> None:
    client = tidings_with_mailgun.courier()
    answer = client.send.message(
        message={
            "to": {"email": "over@example.test"},
            "content": {"title": "t", "body": "b"},
            "channels": {
                "email": {"override": {"cc": ["cc@example.test"], "reply_to": "r@example.test"}}
            },
            "providers": {
                "mailgun": {
                    "override": {
                        "body": {"h:X-Campaign": "spring", "v:account": "42", "o:tag": "custom"},
                        "config": {"fromAddress": "Billing <billing@mg.tidings.test>"},
                    }
                }
            },
        }
    )
    tidings_with_mailgun.wait_status(answer.request_id, "SENT", "DELIVERED")
    copy = _sandbox_copy(mailgun_sandbox, "over@example.test")
    assert copy["from"] == "Billing <billing@mg.tidings.test>"
    assert copy["headers"]["X-Campaign"] == "spring"
    assert copy["headers"]["Reply-To"] == "r@example.test"
    assert copy["variables"]["account"] == "42"
    assert copy["variables"]["tidings-id"] == answer.request_id
    assert copy["tags"] == ["custom"]
    assert "cc@example.test" in copy["cc"]


def test_eu_host_override_goes_to_that_host_only(
    tidings_with_mailgun: RunningTidings,
    mailgun_sandbox: RunningSandbox,
    eu_sandbox: RunningSandbox,
) -> None:
    client = tidings_with_mailgun.courier()
    answer = client.send.message(
        message={
            "to": {"email": "eu@example.test"},
            "content": {"title": "EU", "body": "region"},
            "providers": {
                "mailgun": {
                    # Another host than the stored one: it must bring its own key.
                    "override": {
                        "config": {
                            "host": eu_sandbox.url,
                            "domain": "eu.tidings.test",
                            "apiKey": eu_sandbox.settings.api_key,
                        }
                    }
                }
            },
        }
    )
    details = tidings_with_mailgun.wait_status(answer.request_id, "SENT", "DELIVERED")
    assert details["status"] in ("SENT", "DELIVERED")
    assert [m["domain"] for m in eu_sandbox.messages()] == ["eu.tidings.test"]
    assert mailgun_sandbox.messages() == []


def test_idempotent_replay_creates_nothing_new(
    tidings_with_mailgun: RunningTidings, mailgun_sandbox: RunningSandbox
) -> None:
    client = tidings_with_mailgun.courier()
    message = {"to": {"email": "once@example.test"}, "content": {"title": "t", "body": "b"}}
    first = client.send.message(message=message, idempotency_key="key-1")  # type: ignore[arg-type]
    second = client.send.message(message=message, idempotency_key="key-1")  # type: ignore[arg-type]
    assert first.request_id == second.request_id
    tidings_with_mailgun.wait_status(first.request_id, "SENT", "DELIVERED")
    assert len(client.messages.list().results) == 1
    assert len([m for m in mailgun_sandbox.messages() if "once@example.test" in m["to"]]) == 1
    with pytest.raises(courier.ConflictError):
        client.send.message(
            message={**message, "data": {"x": 1}},  # type: ignore[arg-type]
            idempotency_key="key-1",
        )


def test_cancel_delayed_message_and_resend(
    tidings_with_mailgun: RunningTidings, mailgun_sandbox: RunningSandbox
) -> None:
    client = tidings_with_mailgun.courier()
    answer = client.send.message(
        message={
            "to": {"email": "later@example.test"},
            "content": {"title": "t", "body": "b"},
            "delay": {"duration": 60_000},
        }
    )
    with tidings_with_mailgun.http() as http:
        canceled = http.post(f"/messages/{answer.request_id}/cancel")
        assert canceled.status_code == 200, canceled.text
        assert canceled.json()["status"] == "CANCELED"
        again = http.post(f"/messages/{answer.request_id}/cancel")
        assert again.status_code == 409
        resent = http.post(f"/messages/{answer.request_id}/resend").json()["messageId"]
    tidings_with_mailgun.wait_status(resent, "SENT", "DELIVERED")
    assert len([m for m in mailgun_sandbox.messages() if "later@example.test" in m["to"]]) == 1
    with tidings_with_mailgun.http() as http:
        assert http.get("/messages/nope").status_code == 404
        assert http.get("/messages/nope").json() == {
            "message": "Not Found",
            "type": "invalid_request_error",
        }
        output = http.get(f"/messages/{resent}/output").json()["results"][0]["content"]
        assert output["subject"] == "t" and "b" in output["text"]


def test_a_template_that_renders_too_long_fails_that_message_only(
    start_tidings: Any, mailgun_sandbox: RunningSandbox
) -> None:
    server = start_tidings(render_timeout_s=0.2)
    server.add_provider(mailgun_sandbox)
    client = server.courier()
    slow = client.send.message(
        message={
            "to": {"email": "slow@example.test"},
            "content": {
                "title": "t",
                # Slow (50k comparisons of two distinct 300 kB strings), but within the
                # sandbox's loop and output caps.
                "body": "{{#each xs}}{{#if (eq ../big ../twin)}}{{/if}}{{/each}}done",
            },
            "data": {
                "xs": list(range(50_000)),
                "big": "x" * 300_000,
                "twin": "x" * 299_999 + "y",
            },
        }
    ).request_id
    fine = client.send.message(
        message={"to": {"email": "fine@example.test"}, "content": {"title": "t", "body": "b"}}
    ).request_id
    assert server.wait_status(fine, "SENT", "DELIVERED")["status"] in ("SENT", "DELIVERED")
    details = server.wait_status(slow, "UNDELIVERABLE", timeout=60)
    assert details["reason"] == "FAILED" and "took longer" in details["error"]
