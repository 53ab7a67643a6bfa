"""Webhooks by URL: the v4 domain API (``event_types``, several URLs per event) and the
account-level ``/v1/webhooks``, through the official SDK (sync and async) and plain HTTP
on the documented v4 path; the URLs share the v3 table and are posted to, signed, like v3
ones."""

from __future__ import annotations

from typing import Any

import requests
from mailgun.client import AsyncClient, Client
from mailgun.config import RetryPolicy
from mailgun.security import SecurityGuard

from tests.sandbox.conftest import (
    DOMAIN,
    KEY,
    SIGNING_KEY,
    Receiver,
    Running,
    basic_message,
    send,
    wait_until,
)

A = "https://a.example.test/hook"
B = "https://b.example.test/hook"


def v4(running: Running, method: str, **kwargs: Any) -> requests.Response:
    url = f"{running.base}/v4/domains/{DOMAIN}/webhooks"
    return requests.request(method, url, auth=("api", KEY), timeout=5, **kwargs)


def test_v4_create_update_delete_share_the_v3_table(running: Running, client: Client) -> None:
    created = v4(running, "POST", data={"url": A, "event_types": ["delivered", "opened"]})
    assert created.status_code == 200
    assert created.json() == {
        "webhooks": {"delivered": {"urls": [A]}, "opened": {"urls": [A]}},
    }
    v4(running, "POST", data={"url": B, "event_types": ["delivered"]})
    assert client.domains_webhooks.get(domain=DOMAIN).json() == {
        "webhooks": {"delivered": {"urls": [A, B]}, "opened": {"urls": [A]}},
    }
    assert client.domains_webhooks.get(domain=DOMAIN, webhook_name="delivered").json() == {
        "webhook": {"urls": [A, B]}
    }

    updated = v4(running, "PUT", data={"url": A, "event_types": ["clicked", "delivered"]})
    assert updated.json() == {
        "webhooks": {"delivered": {"urls": [A, B]}, "clicked": {"urls": [A]}},
    }
    deleted = v4(running, "DELETE", params=[("url", A), ("url", B)])
    assert deleted.json() == {"webhooks": {}}
    assert client.domains_webhooks.get(domain=DOMAIN).json() == {"webhooks": {}}


def test_v4_errors(running: Running) -> None:
    cases = [
        ({"event_types": "delivered"}, "url parameter is missing"),
        ({"url": A}, "event_types parameter is missing"),
        ({"url": A, "event_types": "bounced"}, "Invalid event_types 'bounced'"),
        ({"url": "ftp://x", "event_types": "opened"}, "url parameter is not a valid URL"),
        ({"url": A, "event_types": "opened", "id": "opened"}, "Unsupported parameter: id"),
    ]
    for data, message in cases:
        answer = v4(running, "POST", data=data)
        assert answer.status_code == 400, data
        assert answer.json()["message"].startswith(message), answer.json()
    for n in range(3):
        v4(running, "POST", data={"url": f"https://{n}.example.test/", "event_types": "opened"})
    fourth = v4(running, "POST", data={"url": A, "event_types": "opened"})
    assert (fourth.status_code, fourth.json()) == (
        400,
        {"message": "Too many urls for opened, max is 3"},
    )
    assert v4(running, "PUT", data={"url": B, "event_types": "opened"}).status_code == 404
    assert v4(running, "DELETE", params={"url": B}).status_code == 404
    other = requests.post(
        f"{running.base}/v4/domains/nope.example.test/webhooks",
        auth=("api", KEY),
        data={"url": A, "event_types": "opened"},
        timeout=5,
    )
    assert other.json() == {"message": "Domain not found: nope.example.test"}


def test_the_sdk_v4_calls(running: Running, client: Client) -> None:
    # mailgun 1.10 sends these to /v3/domains/{domain}/webhooks; they mean v4 there too.
    created = client.domains_webhooks.create(
        domain=DOMAIN, data={"url": A, "event_types": ["accepted", "delivered"]}
    )
    assert created.json() == {"webhooks": {"accepted": {"urls": [A]}, "delivered": {"urls": [A]}}}
    updated = client.domains_webhooks.put(
        domain=DOMAIN, data={"url": A, "event_types": ["delivered"]}
    )
    assert updated.json() == {"webhooks": {"delivered": {"urls": [A]}}}
    deleted = client.domains_webhooks.delete(domain=DOMAIN, filters={"url": A})
    assert deleted.json() == {"webhooks": {}}
    # v3 calls keep their v3 meaning.
    v3 = client.domains_webhooks.create(domain=DOMAIN, data={"id": "clicked", "url": B})
    assert v3.json() == {"message": "Webhook has been created", "webhook": {"urls": [B]}}


def verified_posts(receiver: Receiver, where: str) -> list[str]:
    events = []
    for post in receiver.of(where):
        sig = post["body"]["signature"]
        assert SecurityGuard.verify_webhook(
            SIGNING_KEY, sig["token"], sig["timestamp"], sig["signature"]
        )
        events.append(post["body"]["event-data"]["event"])
    return events


def test_a_v4_url_is_posted_to_like_a_v3_one(
    running: Running, client: Client, receiver: Receiver
) -> None:
    url = receiver.url("v4")
    v4(running, "POST", data={"url": url, "event_types": ["accepted", "delivered", "opened"]})
    send(running.base, basic_message(to="ann+open@example.test"))
    wait_until(lambda: len(receiver.of("v4")) == 3)
    assert sorted(verified_posts(receiver, "v4")) == ["accepted", "delivered", "opened"]


def test_account_webhooks(running: Running, client: Client, receiver: Receiver) -> None:
    assert client.account_webhooks.get().json() == {"webhooks": []}
    url = receiver.url("account")
    created = client.account_webhooks.create(
        data={"url": url, "event_types": ["delivered", "opened"], "description": "all domains"}
    )
    assert created.status_code == 200
    webhook_id = created.json()["webhook_id"]
    one = client.account_webhooks.get(webhook_id=webhook_id).json()
    assert one["webhook_id"] == webhook_id
    assert (one["url"], one["event_types"], one["description"]) == (
        url,
        ["delivered", "opened"],
        "all domains",
    )
    assert one["created_at"].endswith("Z")
    assert client.account_webhooks.get().json() == {"webhooks": [one]}
    filtered = client.account_webhooks.get(filters={"webhook_ids": "other"}).json()
    assert filtered == {"webhooks": []}

    twin = client.account_webhooks.create(data={"url": url, "event_types": "clicked"})
    assert twin.status_code == 409 and "Description" in twin.json()

    # The same URL on the domain too: posted once per event, not twice. A message's posts
    # to one URL go out in order, so a second `delivered` would come before `opened`.
    client.domains_webhooks.create(domain=DOMAIN, data={"id": "delivered", "url": url})
    send(running.base, basic_message(to="ann+open@example.test"))
    wait_until(
        lambda: any(p["body"]["event-data"]["event"] == "opened" for p in receiver.of("account"))
    )
    assert sorted(verified_posts(receiver, "account")) == ["delivered", "opened"]

    updated = client.account_webhooks.put(
        webhook_id=webhook_id, data={"url": url, "event_types": ["accepted"]}
    )
    assert updated.status_code == 204
    assert client.account_webhooks.get(webhook_id=webhook_id).json()["event_types"] == ["accepted"]
    assert client.account_webhooks.get(webhook_id=webhook_id).json()["description"] == ""

    deleted = client.account_webhooks.delete(webhook_id=webhook_id)
    assert deleted.status_code == 204
    missing = client.account_webhooks.get(webhook_id=webhook_id)
    assert missing.status_code == 404 and "Description" in missing.json()

    for n in range(2):
        client.account_webhooks.create(
            data={"url": f"https://{n}.example.test/", "event_types": "opened"}
        )
    refused = client.account_webhooks.delete()
    assert refused.status_code == 400
    assert client.account_webhooks.delete(filters={"all": "true"}).status_code == 204
    assert client.account_webhooks.get().json() == {"webhooks": []}


async def test_async_client(running: Running) -> None:
    async with AsyncClient(
        auth=("api", KEY), api_url=running.base, retry_policy=RetryPolicy(max_retries=0)
    ) as client:
        created = await client.domains_webhooks.create(
            domain=DOMAIN, data={"url": A, "event_types": ["opened", "clicked"]}
        )
        assert created.json() == {"webhooks": {"opened": {"urls": [A]}, "clicked": {"urls": [A]}}}
        account = await client.account_webhooks.create(
            data={"url": B, "event_types": ["delivered"]}
        )
        webhook_id = account.json()["webhook_id"]
        listed = await client.account_webhooks.get()
        assert [hook["webhook_id"] for hook in listed.json()["webhooks"]] == [webhook_id]
        assert (await client.account_webhooks.delete(webhook_id=webhook_id)).status_code == 204
