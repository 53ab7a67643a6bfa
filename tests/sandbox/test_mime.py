"""POST /v3/{domain}/messages.mime through Mailgun's official SDK: the MIME is read with the
standard library, stored like a form send, and lives the same events."""

from __future__ import annotations

import asyncio
from email.message import EmailMessage
from typing import Any, cast

import requests

from tests.sandbox.conftest import DOMAIN, KEY, Running, sdk, wait_until

PDF = b"%PDF-1.4 fake" + bytes(range(256))
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64


def mime_message() -> bytes:
    message = EmailMessage()
    message["From"] = f"Shop <shop@{DOMAIN}>"
    message["To"] = "Ann <ann@example.test>"
    message["Subject"] = "Your invoice ✓"
    message["Reply-To"] = "help@example.test"
    message.set_content("Plain words")
    message.add_alternative("<p>Rich <img src='cid:logo'></p>", subtype="html")
    html = cast(EmailMessage, message.get_body(("html",)))
    html.add_related(PNG, maintype="image", subtype="png", cid="<logo>", disposition="inline")
    message.add_attachment(PDF, maintype="application", subtype="pdf", filename="invoice.pdf")
    message.add_attachment(
        "ça va", subtype="plain", charset="utf-8", filename="note.txt"
    )  # a text/plain; charset=utf-8 part
    return message.as_bytes()


def send_mime(running: Running, data: dict[str, Any], files: Any) -> requests.Response:
    with sdk(running.base) as mailgun:
        response: requests.Response = mailgun.mimemessage.create(
            domain=DOMAIN, data=data, files=files
        )
        return response


def test_a_mime_send_is_stored_like_a_form_send(running: Running) -> None:
    raw = mime_message()
    response = send_mime(
        running,
        {"to": "ann+open@example.test", "o:tag": "invoice", "v:order": "42"},
        {"message": raw},
    )
    assert response.status_code == 200
    assert response.json()["message"] == "Queued. Thank you."
    message_id = response.json()["id"].strip("<>")

    [copy] = requests.get(running.api("/messages")).json()
    assert copy["id"] == message_id
    assert copy["from"] == f"Shop <shop@{DOMAIN}>"
    assert copy["subject"] == "Your invoice ✓"
    assert copy["text"].strip() == "Plain words"
    assert "Rich" in copy["html"]
    assert copy["headers"]["Reply-To"] == "help@example.test"
    assert copy["tags"] == ["invoice"] and copy["variables"] == {"order": "42"}
    assert [(a["filename"], a["content_type"], a["size"]) for a in copy["attachments"]] == [
        ("invoice.pdf", "application/pdf", len(PDF)),
        ("note.txt", "text/plain", len("ça va\n".encode())),
    ]
    assert [(p["content_type"], p["size"]) for p in copy["inline"]] == [("image/png", len(PNG))]

    events = wait_until(
        lambda: (
            found
            if len(found := requests.get(running.api(f"/messages/{message_id}/events")).json()) == 3
            else None
        )
    )
    assert [e["event"] for e in events] == ["accepted", "delivered", "opened"]
    assert [a["content-type"] for a in events[0]["message"]["attachments"]] == [
        "application/pdf",
        "text/plain",
    ]

    # The stored message gives back the MIME exactly as it was sent.
    url = events[0]["storage"]["url"]
    mime = requests.get(url, auth=("api", KEY), headers={"Accept": "message/rfc2822"})
    assert mime.status_code == 200
    assert mime.json()["body-mime"] == raw.decode()


def test_mime_send_rules(running: Running) -> None:
    raw = mime_message()
    cases: list[tuple[dict[str, Any], Any, str]] = [
        ({}, {"message": raw}, "to parameter is missing"),
        ({"to": "ann@example.test"}, None, "message parameter is missing"),
        (
            {"to": "ann@example.test", "message": "From: a@b.test"},
            None,
            "'message' parameter is not a file",
        ),
        (
            {"to": "ann@example.test", "subject": "x"},
            {"message": raw},
            "'subject' parameter is not supported by messages.mime (put it in the MIME)",
        ),
        (
            {"to": "not an address"},
            {"message": raw},
            "to parameter is not a valid address. please check documentation",
        ),
        (
            {"to": "ann@example.test"},
            {"message": b"Subject: no sender\n\nhi"},
            "'message' has no From header",
        ),
    ]
    for data, files, message in cases:
        if files is None:
            # A text-only form: the SDK would send it urlencoded, as a client without a file does.
            response = requests.post(
                f"{running.base}/v3/{DOMAIN}/messages.mime", data=data, auth=("api", KEY)
            )
        else:
            response = send_mime(running, data, files)
        assert response.status_code == 400, message
        assert response.json() == {"message": message}
    assert requests.get(running.api("/messages")).json() == []


async def test_the_async_client_sends_mime(running: Running) -> None:
    from mailgun.client import AsyncClient
    from mailgun.config import RetryPolicy

    async with AsyncClient(
        auth=("api", KEY), api_url=running.base, retry_policy=RetryPolicy(max_retries=0)
    ) as mailgun:
        response = await mailgun.mimemessage.create(
            domain=DOMAIN, data={"to": "bob@example.test"}, files={"message": mime_message()}
        )
    assert response.status_code == 200
    [copy] = await asyncio.to_thread(lambda: requests.get(running.api("/messages")).json())
    assert copy["recipient"] == "bob@example.test"
