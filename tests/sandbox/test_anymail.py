"""django-anymail's Mailgun backend against the sandbox: stored templates with merge data,
and attachments (regular and inline) as Mailgun receives them."""

from __future__ import annotations

from typing import Any

import django  # type: ignore[import-untyped]
import requests
from anymail.message import AnymailMessage  # type: ignore[import-untyped]
from django.conf import settings  # type: ignore[import-untyped]
from django.core.mail import get_connection  # type: ignore[import-untyped]

from tests.sandbox.conftest import DOMAIN, KEY, Running, sdk, wait_until

if not settings.configured:
    # The sandbox's URL changes per test: each connection names it (api_url below).
    settings.configure(
        EMAIL_BACKEND="anymail.backends.mailgun.EmailBackend",
        ANYMAIL={"MAILGUN_API_KEY": KEY, "MAILGUN_API_URL": "http://127.0.0.1:9/v3"},
    )
    django.setup()

PDF = b"%PDF-1.4\n" + bytes(range(200))
PNG = b"\x89PNG\r\n\x1a\n" + b"\x01" * 80


def connection(running: Running) -> Any:
    return get_connection(
        "anymail.backends.mailgun.EmailBackend", api_key=KEY, api_url=f"{running.base}/v3"
    )


def stored(running: Running) -> list[dict[str, Any]]:
    result: list[dict[str, Any]] = requests.get(running.api("/messages")).json()
    return result


def test_a_stored_template_renders_with_merge_data_and_merge_global_data(
    running: Running,
) -> None:
    with sdk(running.base) as mailgun:
        created = mailgun.templates.create(
            domain=DOMAIN,
            data={"name": "order-shipped", "template": "<p>{{name}}, your {{item}} shipped</p>"},
        )
        assert created.status_code == 200
    message = AnymailMessage(
        subject="Shipped",
        from_email=f"Shop <shop@{DOMAIN}>",
        to=["ann@example.test", "Bob <bob@example.test>"],
        connection=connection(running),
    )
    message.template_id = "order-shipped"
    message.merge_data = {"ann@example.test": {"name": "Ann"}, "bob@example.test": {"name": "Bob"}}
    message.merge_global_data = {"item": "teapot"}
    assert message.send() == 1
    status = message.anymail_status
    assert status.status == {"queued"}
    assert status.message_id is not None

    html = {copy["recipient"]: copy["html"] for copy in stored(running)}
    assert html == {
        "ann@example.test": "<p>Ann, your teapot shipped</p>",
        "bob@example.test": "<p>Bob, your teapot shipped</p>",
    }


def test_an_unknown_stored_template_fails_the_send(running: Running) -> None:
    from anymail.exceptions import AnymailAPIError  # type: ignore[import-untyped]

    message = AnymailMessage(
        subject="x",
        from_email=f"shop@{DOMAIN}",
        to=["ann@example.test"],
        connection=connection(running),
    )
    message.template_id = "no-such-template"
    try:
        message.send()
    except AnymailAPIError as error:
        assert error.status_code == 400
        assert "template not found" in str(error)
    else:
        raise AssertionError("the send of an unknown template was accepted")


def test_attachments_and_inline_images_arrive_with_their_content_types(
    running: Running,
) -> None:
    message = AnymailMessage(
        subject="Invoice",
        body="See attached",
        from_email=f"billing@{DOMAIN}",
        to=["ann@example.test"],
        connection=connection(running),
    )
    cid = message.attach_inline_image(PNG, filename="logo.png")
    message.attach_alternative(f"<p>Invoice <img src='cid:{cid}'></p>", "text/html")
    message.attach("invoice.pdf", PDF, "application/pdf")
    message.attach("notes.txt", "ça va", "text/plain")
    assert message.send() == 1

    [copy] = stored(running)
    assert copy["text"] == "See attached"
    # The inspection API shows the part as received (anymail adds the charset) …
    assert [(a["filename"], a["content_type"], a["size"]) for a in copy["attachments"]] == [
        ("invoice.pdf", "application/pdf", len(PDF)),
        ("notes.txt", 'text/plain; charset="utf-8"', len("ça va".encode())),
    ]
    assert [(p["content_type"], p["size"]) for p in copy["inline"]] == [("image/png", len(PNG))]

    def accepted() -> list[dict[str, Any]]:
        with sdk(running.base) as mailgun:
            items: list[dict[str, Any]] = mailgun.events.get(
                domain=DOMAIN, filters={"event": "accepted"}
            ).json()["items"]
            return items

    [event] = wait_until(accepted)
    # … and events, as Mailgun's, report the content type without its parameters.
    assert [(a["filename"], a["content-type"]) for a in event["message"]["attachments"]] == [
        ("invoice.pdf", "application/pdf"),
        ("notes.txt", "text/plain"),
    ]
