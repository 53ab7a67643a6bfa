"""The domain webhooks API through the official SDK, plus domain info and the signing key."""

from __future__ import annotations

import requests
from mailgun.client import Client

from tests.sandbox.conftest import DOMAIN, KEY, SIGNING_KEY, Running


def test_create_list_get_update_delete(client: Client) -> None:
    assert client.domains_webhooks.get(domain=DOMAIN).json() == {"webhooks": {}}

    created = client.domains_webhooks.create(
        domain=DOMAIN,
        data={
            "id": "clicked",
            "url": ["https://a.example.test/hook", "https://b.example.test/hook"],
        },
    )
    assert created.status_code == 200
    assert created.json() == {
        "message": "Webhook has been created",
        "webhook": {"urls": ["https://a.example.test/hook", "https://b.example.test/hook"]},
    }
    client.domains_webhooks.create(
        domain=DOMAIN, data={"id": "delivered", "url": "https://c.example.test/"}
    )

    listed = client.domains_webhooks.get(domain=DOMAIN).json()
    assert listed == {
        "webhooks": {
            "clicked": {"urls": ["https://a.example.test/hook", "https://b.example.test/hook"]},
            "delivered": {"urls": ["https://c.example.test/"]},
        }
    }
    one = client.domains_webhooks.get(domain=DOMAIN, webhook_name="delivered")
    assert one.json() == {"webhook": {"urls": ["https://c.example.test/"]}}

    updated = client.domains_webhooks.put(
        domain=DOMAIN, webhook_name="delivered", data={"url": "https://d.example.test/"}
    )
    assert updated.json() == {
        "message": "Webhook has been updated",
        "webhook": {"urls": ["https://d.example.test/"]},
    }
    deleted = client.domains_webhooks.delete(domain=DOMAIN, webhook_name="clicked")
    assert deleted.json()["message"] == "Webhook has been deleted"
    assert set(client.domains_webhooks.get(domain=DOMAIN).json()["webhooks"]) == {"delivered"}


def test_webhook_errors(running: Running, client: Client) -> None:
    client.domains_webhooks.create(
        domain=DOMAIN, data={"id": "opened", "url": "https://a.example.test/"}
    )
    again = client.domains_webhooks.create(
        domain=DOMAIN, data={"id": "opened", "url": "https://b.example.test/"}
    )
    assert (again.status_code, again.json()) == (400, {"message": "Webhook already exists"})

    missing = client.domains_webhooks.get(domain=DOMAIN, webhook_name="complained")
    assert (missing.status_code, missing.json()) == (404, {"message": "Webhook not found"})
    assert (
        client.domains_webhooks.delete(domain=DOMAIN, webhook_name="complained").status_code == 404
    )

    bad_name = client.domains_webhooks.create(
        domain=DOMAIN, data={"id": "bounce", "url": "https://a.example.test/"}
    )
    assert bad_name.status_code == 400
    no_url = client.domains_webhooks.create(domain=DOMAIN, data={"id": "clicked"})
    assert (no_url.status_code, no_url.json()) == (400, {"message": "url parameter is missing"})
    no_id = client.domains_webhooks.create(domain=DOMAIN, data={"url": "https://a.example.test/"})
    assert (no_id.status_code, no_id.json()) == (400, {"message": "id parameter is missing"})
    four = client.domains_webhooks.create(
        domain=DOMAIN,
        data={"id": "clicked", "url": [f"https://{n}.example.test/" for n in range(4)]},
    )
    assert (four.status_code, four.json()) == (400, {"message": "Too many urls, max is 3"})
    not_url = client.domains_webhooks.create(
        domain=DOMAIN, data={"id": "clicked", "url": "ftp://x"}
    )
    assert not_url.status_code == 400

    unknown = client.domains_webhooks.get(domain="nope.example.test")
    assert (unknown.status_code, unknown.json()) == (
        404,
        {"message": "Domain not found: nope.example.test"},
    )
    anonymous = requests.get(f"{running.base}/v3/domains/{DOMAIN}/webhooks")
    assert (anonymous.status_code, anonymous.text) == (401, "Forbidden")


def test_domain_info_and_signing_key(running: Running, client: Client) -> None:
    info = client.domains.get(domain=DOMAIN)
    assert info.status_code == 200
    assert info.json()["domain"]["name"] == DOMAIN
    assert info.json()["domain"]["state"] == "active"
    assert client.domains.get(domain="nope.example.test").status_code == 404

    key = requests.get(f"{running.base}/v5/accounts/http_signing_key", auth=("api", KEY))
    assert key.json() == {"http_signing_key": SIGNING_KEY}
    assert requests.get(f"{running.base}/v5/accounts/http_signing_key").status_code == 401
