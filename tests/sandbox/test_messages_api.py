"""POST /v3/{domain}/messages through Mailgun's official SDK: success, copies, personalised
batches, attachments, and every error answer."""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any

import pytest
import requests

from tests.sandbox.conftest import DOMAIN, KEY, Running, basic_message, sdk, send, wait_until

ID = re.compile(r"^<\d{14}\.[0-9a-f]+@" + re.escape(DOMAIN) + ">$")


def messages(running: Running, **params: str) -> list[dict[str, Any]]:
    result: list[dict[str, Any]] = requests.get(running.api("/messages"), params=params).json()
    return result


def test_urlencoded_send_is_queued_with_a_mailgun_id(running: Running) -> None:
    response = send(running.base, basic_message())

    assert response.status_code == 200
    body = response.json()
    assert body["message"] == "Queued. Thank you."
    assert ID.match(body["id"])
    [stored] = messages(running)
    assert stored["id"] == body["id"].strip("<>")
    assert stored["to"] == ["ann@example.test"]
    assert stored["text"] == "Hi there"


def test_multipart_attachments_round_trip_byte_for_byte(running: Running) -> None:
    report = bytes(range(256)) * 40
    picture = b"\x89PNG\r\n\x1a\n" + b"\x00" * 100
    files = [
        ("attachment", ("report.bin", report)),
        ("attachment", ("résumé.txt", "ça va".encode())),
        ("inline", ("logo.png", picture)),
    ]
    response = send(running.base, basic_message(html="<img src='cid:logo.png'>"), files=files)
    assert response.status_code == 200
    message_id = response.json()["id"].strip("<>")

    [stored] = messages(running)
    assert [a["filename"] for a in stored["attachments"]] == ["report.bin", "résumé.txt"]
    assert stored["attachments"][0]["size"] == len(report)
    assert stored["attachments"][0]["sha256"] == hashlib.sha256(report).hexdigest()
    assert stored["inline"][0]["filename"] == "logo.png"
    for index, expected in enumerate([report, "ça va".encode()]):
        raw = requests.get(running.api(f"/messages/{message_id}/attachments/{index}"))
        assert raw.status_code == 200
        assert hashlib.sha256(raw.content).hexdigest() == hashlib.sha256(expected).hexdigest()
    inline = requests.get(running.api(f"/messages/<{message_id}>/inline/0"))
    assert inline.content == picture
    missing = requests.get(running.api(f"/messages/{message_id}/attachments/5"))
    assert missing.status_code == 404


def test_every_recipient_gets_its_own_copy_and_events(running: Running) -> None:
    data = basic_message(
        to=["Ann <ann@example.test>, bob@example.test"],
        cc="carl@example.test",
        bcc="dee@example.test",
    )
    data["o:tag"] = ["welcome", "onboarding"]
    data["v:tidings-id"] = "msg_123"
    data["h:Reply-To"] = "help@example.test"
    data["o:testmode"] = "yes"
    response = send(running.base, data)
    assert response.status_code == 200

    copies = messages(running)
    assert sorted(c["recipient"] for c in copies) == [
        "ann@example.test",
        "bob@example.test",
        "carl@example.test",
        "dee@example.test",
    ]
    first = copies[0]
    assert first["to"] == ["Ann <ann@example.test>", "bob@example.test"]
    assert first["cc"] == ["carl@example.test"]
    assert first["bcc"] == ["dee@example.test"]
    assert first["tags"] == ["welcome", "onboarding"]
    assert first["variables"] == {"tidings-id": "msg_123"}
    assert first["headers"] == {"Reply-To": "help@example.test"}
    assert first["options"] == {"testmode": "yes"}
    message_id = first["id"]
    events = wait_until(
        lambda: (
            [
                e
                for e in requests.get(running.api(f"/messages/{message_id}/events")).json()
                if e["event"] == "delivered"
            ]
            if len(requests.get(running.api(f"/messages/{message_id}/events")).json()) >= 8
            else None
        )
    )
    assert {e["recipient"] for e in events} == {c["recipient"] for c in copies}
    assert all(e["flags"]["is-test-mode"] for e in events)
    assert all(e["user-variables"] == {"tidings-id": "msg_123"} for e in events)


def test_recipient_variables_make_one_personalised_copy_per_address(running: Running) -> None:
    variables = {
        "ann@example.test": {"name": "Ann", "id": 1},
        "bob@example.test": {"name": "Bob", "id": 2},
    }
    data = basic_message(
        to=["ann@example.test", "bob@example.test"],
        subject="Hi %recipient.name%",
        text="Dear %recipient.name%, your id is %recipient.id%.",
        html="<p>Dear %recipient.name%</p>",
    )
    data["recipient-variables"] = json.dumps(variables)
    data["v:user-id"] = "%recipient.id%"
    assert send(running.base, data).status_code == 200

    by_recipient = {c["recipient"]: c for c in messages(running)}
    ann, bob = by_recipient["ann@example.test"], by_recipient["bob@example.test"]
    assert ann["subject"] == "Hi Ann"
    assert bob["text"] == "Dear Bob, your id is 2."
    assert bob["html"] == "<p>Dear Bob</p>"
    assert ann["to"] == ["ann@example.test"]  # a batch copy shows only its own recipient
    assert ann["variables"] == {"user-id": "1"}


def test_recipient_variables_fill_headers_too(running: Running) -> None:
    # An assumption about Mailgun (its documentation names the parts and v: variables):
    # Tidings' batch sends put each recipient's List-Unsubscribe URL in an h: header.
    variables = {
        "ann@example.test": {"u": "https://t.example/u/ann"},
        "bob@example.test": {"u": "https://t.example/u/bob"},
    }
    data = basic_message(to=["ann@example.test", "bob@example.test"])
    data["recipient-variables"] = json.dumps(variables)
    data["h:List-Unsubscribe"] = "<%recipient.u%>"
    assert send(running.base, data).status_code == 200
    headers = {c["recipient"]: c["headers"]["List-Unsubscribe"] for c in messages(running)}
    assert headers == {
        "ann@example.test": "<https://t.example/u/ann>",
        "bob@example.test": "<https://t.example/u/bob>",
    }


def _auth(key: str) -> tuple[str, str]:
    return ("api", key)


def test_wrong_key_is_401_forbidden_in_plain_text(running: Running) -> None:
    response = requests.post(
        f"{running.base}/v3/{DOMAIN}/messages", data=basic_message(), auth=_auth("wrong")
    )
    assert response.status_code == 401
    assert response.text == "Forbidden"
    assert (
        requests.post(f"{running.base}/v3/{DOMAIN}/messages", data=basic_message()).status_code
        == 401
    )


def test_unknown_domain_is_404(running: Running) -> None:
    response = send(running.base, basic_message(), domain="other.example.test")
    assert response.status_code == 404
    assert response.json() == {"message": "Domain not found: other.example.test"}


def _without(key: str) -> dict[str, Any]:
    data = basic_message()
    del data[key]
    return data


LONG = "x" * 17_000
ERRORS: list[tuple[str, dict[str, Any], str]] = [
    ("no from", _without("from"), "from parameter is missing"),
    ("no to", _without("to"), "to parameter is missing"),
    ("no subject", _without("subject"), "subject parameter is missing"),
    (
        "no body",
        _without("text"),
        "Need at least one of 'text', 'html', 'amp-html' or 'template' parameters specified",
    ),
    (
        "html and template",
        basic_message(html="<p>x</p>", template="welcome"),
        "Cannot specify both 'html' and 'template' parameters",
    ),
    ("four tags", basic_message(**{"o:tag": ["a", "b", "c", "d"]}), "Too many tags, max is 3"),
    (
        "options over 16 kB",
        basic_message(**{"v:big": LONG}),
        "Send options (parameters starting with o:, h:, or v:) are limited to 16 kB total",
    ),
    (
        "1001 recipients",
        basic_message(to=[f"u{n}@example.test" for n in range(1001)]),
        "Too many recipients, max is 1000",
    ),
    (
        "invalid to",
        basic_message(to="not-an-address"),
        "to parameter is not a valid address. please check documentation",
    ),
    (
        "invalid cc",
        basic_message(cc="Ann <ann@>"),
        "cc parameter is not a valid address. please check documentation",
    ),
    (
        "invalid from",
        basic_message(**{"from": "nobody"}),
        "from parameter is not a valid address. please check documentation",
    ),
    (
        "recipient-variables not JSON",
        basic_message(**{"recipient-variables": "{not json"}),
        "'recipient-variables' parameter is not a valid JSON",
    ),
]


@pytest.mark.parametrize(("case", "data", "message"), ERRORS, ids=[e[0] for e in ERRORS])
def test_form_rules_answer_mailgun_400s(
    running: Running, case: str, data: dict[str, Any], message: str
) -> None:
    response = send(running.base, data)
    assert response.status_code == 400, case
    assert response.json() == {"message": message}
    assert messages(running) == []


def test_template_replaces_body_from_and_subject(running: Running) -> None:
    # A stored template may stand in for from, subject and body (tests/sandbox/test_templates.py
    # covers rendering); an unknown one is refused there.
    with sdk(running.base) as mailgun:
        mailgun.templates.create(domain=DOMAIN, data={"name": "welcome", "template": "Hi"})
    response = send(running.base, {"to": "ann@example.test", "template": "welcome"})
    assert response.status_code == 200


def test_body_over_the_size_limit_is_413(make_running: Any) -> None:
    running = make_running(max_message_bytes=64 * 1024)
    big = b"\x00" * (65 * 1024)
    response = send(running.base, basic_message(), files=[("attachment", ("big.bin", big))])
    assert response.status_code == 413
    assert response.json() == {"message": "request size exceeds 0.1MiB limit"}

    default = make_running()
    huge = b"\x00" * (25 * 1024 * 1024 + 1)
    response = requests.post(
        f"{default.base}/v3/{DOMAIN}/messages",
        data=basic_message(),
        files=[("attachment", ("huge.bin", huge))],
        auth=("api", KEY),
    )
    assert response.status_code == 413
    assert response.json() == {"message": "request size exceeds 25.0MiB limit"}
