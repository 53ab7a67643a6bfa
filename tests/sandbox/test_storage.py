"""Stored messages: the storage.url events hand out answers GET (Mailgun's JSON shape, or the
MIME with Accept: message/rfc2822) and POST (resend), for Mailgun's retention."""

from __future__ import annotations

import email
import email.policy
from typing import Any

import requests
from mailgun.client import AsyncClient
from mailgun.config import RetryPolicy

from tests.sandbox.conftest import DOMAIN, KEY, Running, basic_message, sdk, send, wait_until

AUTH = ("api", KEY)
REPORT = bytes(range(256)) * 4


def events_of(running: Running, message_id: str, count: int) -> list[dict[str, Any]]:
    def enough() -> list[dict[str, Any]] | None:
        found: list[dict[str, Any]] = requests.get(
            running.api(f"/messages/{message_id}/events")
        ).json()
        return found if len(found) >= count else None

    result: list[dict[str, Any]] = wait_until(enough)
    return result


def sent(running: Running) -> tuple[str, str]:
    data = basic_message(
        to="Ann <ann@example.test>",
        cc="carl@example.test",
        html="<p>Hi there</p>",
    )
    data["o:tag"] = "welcome"
    response = send(
        running.base,
        data,
        files=[("attachment", ("report.csv", REPORT, "text/csv; charset=utf-8"))],
    )
    assert response.status_code == 200
    message_id = response.json()["id"].strip("<>")
    url: str = events_of(running, message_id, 1)[0]["storage"]["url"]
    return message_id, url


def test_get_answers_the_stored_message_in_mailguns_shape(running: Running) -> None:
    message_id, url = sent(running)
    assert url == f"{running.base}/v3/domains/{DOMAIN}/messages/{message_id.partition('@')[0]}"
    answer = requests.get(url, auth=AUTH)
    assert answer.status_code == 200
    body = answer.json()
    assert body["subject"] == body["Subject"] == "Hello"
    assert body["from"] == body["From"] == f"Tidings <noreply@{DOMAIN}>"
    assert body["sender"] == f"noreply@{DOMAIN}"
    assert body["To"] == "Ann <ann@example.test>"
    assert body["recipients"] == "ann@example.test, carl@example.test"
    assert body["Message-Id"] == f"<{message_id}>"
    assert body["X-Mailgun-Tag"] == "welcome"
    assert body["body-plain"] == body["stripped-text"] == "Hi there"
    assert body["body-html"] == body["stripped-html"] == "<p>Hi there</p>"
    assert body["Content-Type"].startswith("multipart/mixed")
    assert ["Subject", "Hello"] in body["message-headers"]
    assert body["message-url"] == url
    assert body["content-id-map"] == {}
    [attachment] = body["attachments"]
    assert attachment == {
        "url": f"{url}/attachments/0",
        "content-type": "text/csv",
        "name": "report.csv",
        "size": len(REPORT),
    }
    raw = requests.get(attachment["url"], auth=AUTH)
    assert raw.status_code == 200 and raw.content == REPORT
    assert raw.headers["content-type"].startswith("text/csv")
    assert requests.get(f"{url}/attachments/1", auth=AUTH).status_code == 404

    mime = requests.get(url, auth=AUTH, headers={"Accept": "message/rfc2822"}).json()
    assert "body-html" not in mime
    parsed = email.message_from_string(mime["body-mime"], policy=email.policy.default)
    assert parsed["Subject"] == "Hello"
    assert parsed["Message-Id"] == f"<{message_id}>"
    [part] = list(parsed.iter_attachments())
    assert part.get_payload(decode=True) == REPORT


def test_post_resends_it_with_a_new_id_and_new_events(running: Running) -> None:
    message_id, url = sent(running)
    with sdk(running.base) as mailgun:
        again = mailgun.resend_message.create(
            domain=DOMAIN, storage_url=url, data={"to": "dee+open@example.test"}
        )
    assert again.status_code == 200
    assert again.json()["message"] == "Queued. Thank you."
    new_id = again.json()["id"].strip("<>")
    assert new_id != message_id
    events = events_of(running, new_id, 3)
    assert [e["event"] for e in events] == ["accepted", "delivered", "opened"]
    assert {e["recipient"] for e in events} == {"dee+open@example.test"}
    copies = requests.get(running.api("/messages"), params={"id": new_id}).json()
    [copy] = copies
    assert copy["subject"] == "Hello" and copy["html"] == "<p>Hi there</p>"
    assert [a["filename"] for a in copy["attachments"]] == ["report.csv"]

    refused = requests.post(url, data={"to": "x@example.test", "subject": "no"}, auth=AUTH)
    assert refused.status_code == 400
    assert refused.json() == {"message": "'subject' parameter is not supported by a resend"}
    missing = requests.post(url, data={}, auth=AUTH)
    assert missing.status_code == 400
    assert missing.json() == {"message": "to parameter is missing"}


async def test_the_async_client_resends(running: Running) -> None:
    _, url = sent(running)
    async with AsyncClient(
        auth=AUTH, api_url=running.base, retry_policy=RetryPolicy(max_retries=0)
    ) as mailgun:
        again = await mailgun.resend_message.create(
            domain=DOMAIN, storage_url=url, data={"to": "eve@example.test"}
        )
    assert again.status_code == 200


def test_expired_unknown_and_unauthenticated_are_refused(running: Running) -> None:
    _, url = sent(running)
    assert requests.get(url).status_code == 401
    unknown = requests.get(f"{running.base}/v3/domains/{DOMAIN}/messages/nope", auth=AUTH)
    assert unknown.status_code == 404
    assert unknown.json() == {"message": "Message not found"}
    # Past the retention (3 days at Mailgun; none here) the message is gone for GET and POST.
    running.sandbox.retention_seconds = 0
    expired = requests.get(url, auth=AUTH)
    assert expired.status_code == 404
    assert expired.json() == {"message": "Message not found"}
    assert requests.post(url, data={"to": "a@example.test"}, auth=AUTH).status_code == 404
