"""The domains API (v3 and v4), tracking settings and sending queues, through the official
SDK (sync and async clients), plus the DNS records Tidings' doctor reads."""

from __future__ import annotations

from typing import Any

import requests
from mailgun.client import AsyncClient, Client
from mailgun.config import RetryPolicy

from tests.sandbox.conftest import DOMAIN, KEY, Running, basic_message, send
from tidings.providers.mailgun.doctor.dns_checks import ExpectedRecords

NEW = "mg.new.example.test"


def async_sdk(base: str) -> AsyncClient:
    return AsyncClient(auth=("api", KEY), api_url=base, retry_policy=RetryPolicy(max_retries=0))


def test_configured_domains_exist_from_the_start(make_running: Any) -> None:
    running = make_running(domains=[DOMAIN, "b.example.test", "a.example.test"])
    with Client(auth=("api", KEY), api_url=running.base) as client:
        listed = client.domainlist.get().json()  # GET /v4/domains
        assert listed["total_count"] == 3
        assert {item["name"] for item in listed["items"]} == {
            DOMAIN,
            "a.example.test",
            "b.example.test",
        }
        assert all(item["state"] == "active" for item in listed["items"])
        page = client.domainlist.get(filters={"limit": 1, "skip": 1, "sort": "name"}).json()
        assert page == {"total_count": 3, "items": [page["items"][0]]}
        assert page["items"][0]["name"] == "b.example.test"
        v3 = client.domains.get(filters={"sort": "name:desc", "limit": 2}).json()  # /v3/domains
        assert [item["name"] for item in v3["items"]] == [DOMAIN, "b.example.test"]
        assert "smtp_password" not in str(listed)


def test_create_get_verify_delete(running: Running, client: Client) -> None:
    created = client.domains.create(
        data={"name": NEW, "spam_action": "tag", "wildcard": "true", "smtp_password": "s3cret!"}
    )
    assert created.status_code == 200
    body = created.json()
    assert body["message"] == "Domain has been created"
    assert body["domain"]["name"] == NEW
    assert body["domain"]["state"] == "unverified"
    assert body["domain"]["spam_action"] == "tag" and body["domain"]["wildcard"] is True
    assert "s3cret!" not in created.text
    assert {r["valid"] for r in body["sending_dns_records"]} == {"unknown"}

    again = client.domains.create(data={"name": NEW})
    assert (again.status_code, again.json()) == (
        400,
        {"message": "This domain name is already taken"},
    )

    # An unverified domain may not send.
    refused = send(running.base, basic_message(), domain=NEW)
    assert refused.status_code == 400
    assert refused.json()["message"].startswith(f"Domain {NEW} is not allowed to send:")

    verified = client.domains.put(domain=NEW, verify=True)  # PUT /v3/domains/{name}/verify
    assert verified.status_code == 200
    assert verified.json()["domain"]["state"] == "active"
    assert {r["valid"] for r in verified.json()["sending_dns_records"]} == {"valid"}
    v4 = requests.put(f"{running.base}/v4/domains/{NEW}/verify", auth=("api", KEY))
    assert v4.json()["domain"]["state"] == "active"
    assert send(running.base, basic_message(), domain=NEW).status_code == 200

    updated = client.domains.put(domain=NEW, data={"web_scheme": "https"})
    assert updated.json()["domain"]["web_scheme"] == "https"
    got = requests.get(f"{running.base}/v4/domains/{NEW}", auth=("api", KEY)).json()
    assert got["domain"]["web_scheme"] == "https"

    deleted = client.domains.delete(domain=NEW)
    assert deleted.json() == {"message": "Domain has been deleted"}
    gone = client.domains.get(domain=NEW)
    assert (gone.status_code, gone.json()) == (404, {"message": f"Domain not found: {NEW}"})
    # A send to a domain the account does not have: Mailgun's 404.
    unknown = send(running.base, basic_message(), domain=NEW)
    assert (unknown.status_code, unknown.json()) == (404, {"message": f"Domain not found: {NEW}"})


def test_create_refuses_what_it_does_not_model(client: Client) -> None:
    cases = [
        ({}, "name parameter is missing"),
        ({"name": "not a domain"}, "'not a domain' is not a valid domain name"),
        (
            {"name": NEW, "spam_action": "drop"},
            "Invalid spam_action: 'drop' (disabled, block, tag)",
        ),
        ({"name": NEW, "dkim_key_size": "512"}, "Invalid dkim_key_size: '512' (1024 or 2048)"),
        ({"name": NEW, "wildcard": "maybe"}, "Invalid wildcard: 'maybe' is not a boolean"),
        ({"name": NEW, "ips": "192.0.2.1"}, "ips '192.0.2.1' is not assigned to this account"),
        ({"name": NEW, "archive_to": "x"}, "Unsupported parameter: archive_to"),
    ]
    for data, message in cases:
        answer = client.domains.create(data=data)
        assert answer.status_code == 400, data
        assert answer.json()["message"].startswith(message), answer.json()
    bad_limit = client.domainlist.get(filters={"limit": 0})
    assert bad_limit.status_code == 400 and "limit" in bad_limit.json()["message"]


def test_dns_records_are_the_ones_the_doctor_reads(make_running: Any) -> None:
    running = make_running(dkim_public_key="MIGfMA0GCSqGSIb3DQEBAQUAA4GNADCBiQKBgQC1")
    with Client(auth=("api", KEY), api_url=running.base) as client:
        answer = client.domains.get(domain=DOMAIN).json()
        created = client.domains.create(data={"name": NEW, "dkim_selector": "s1"}).json()
    expected = ExpectedRecords.from_domain_answer(answer)
    assert expected.mx == ("mxa.mailgun.org", "mxb.mailgun.org")
    assert expected.spf == "v=spf1 include:mailgun.org ~all"
    assert expected.dkim == (
        (f"k1._domainkey.{DOMAIN}", "k=rsa; p=MIGfMA0GCSqGSIb3DQEBAQUAA4GNADCBiQKBgQC1"),
    )
    cname = [r for r in answer["sending_dns_records"] if r["record_type"] == "CNAME"]
    assert cname == [
        {
            "record_type": "CNAME",
            "name": f"email.{DOMAIN}",
            "value": "mailgun.org",
            "valid": "valid",
            "cached": [],
            "is_active": True,
        }
    ]
    new = ExpectedRecords.from_domain_answer(created)
    ((name, value),) = new.dkim
    assert name == f"s1._domainkey.{NEW}" and value.startswith("k=rsa; p=MIGfMA0GCSqGSIb3DQEB")


def test_without_a_dkim_key_the_doctor_tries_the_usual_selectors(client: Client) -> None:
    answer = client.domains.get(domain=DOMAIN).json()
    assert ExpectedRecords.from_domain_answer(answer).dkim == ()


def test_tracking_settings(running: Running, client: Client) -> None:
    assert client.domains_tracking.get(domain=DOMAIN).json() == {
        "tracking": {
            "open": {"active": True, "place_at_the_top": False},
            "click": {"active": True},
            "unsubscribe": {
                "active": False,
                "html_footer": '\n<br>\n<p><a href="%unsubscribe_url%">unsubscribe</a></p>\n',
                "text_footer": "\n\nTo unsubscribe click: <%unsubscribe_url%>\n\n",
            },
            "web_scheme": "http",
        }
    }
    opened = client.domains_tracking_open.put(domain=DOMAIN, data={"active": "no"})
    assert opened.json() == {
        "message": "Domain tracking settings have been updated",
        "open": {"active": False, "place_at_the_top": False},
    }
    click = client.domains_tracking_click.put(domain=DOMAIN, data={"active": "htmlonly"})
    assert click.json()["click"] == {"active": True}  # htmlonly counts as active
    unsub = client.domains_tracking_unsubscribe.put(
        domain=DOMAIN, data={"active": "true", "text_footer": "\nBye: %unsubscribe_url%\n"}
    )
    assert unsub.json()["unsubscribe"]["active"] is True
    assert unsub.json()["unsubscribe"]["text_footer"] == "\nBye: %unsubscribe_url%\n"
    settings = client.domains_tracking.get(domain=DOMAIN).json()["tracking"]
    assert (settings["open"]["active"], settings["click"]["active"]) == (False, True)

    bad = client.domains_tracking_click.put(domain=DOMAIN, data={"active": "sometimes"})
    assert (bad.status_code, bad.json()) == (
        400,
        {"message": "Invalid active: 'sometimes' (true, false, htmlonly)"},
    )
    extra = client.domains_tracking_open.put(domain=DOMAIN, data={"pixel": "big"})
    assert (extra.status_code, extra.json()) == (400, {"message": "Unsupported parameter: pixel"})
    missing = client.domains_tracking.get(domain="nope.example.test")
    assert missing.status_code == 404


def test_sending_queues(running: Running, client: Client) -> None:
    open_queue = {"is_disabled": False, "disabled": {"until": "", "reason": ""}}
    assert client.domains_sendingqueues.get(domain=DOMAIN).json() == {
        "regular": open_queue,
        "scheduled": open_queue,
    }
    requests.post(running.api("/faults"), json={"account_disabled": True}, timeout=5)
    queues = client.domains_sendingqueues.get(domain=DOMAIN).json()
    assert queues["regular"]["is_disabled"] is True
    client.domains.create(data={"name": NEW})
    requests.post(running.api("/faults"), json={}, timeout=5)
    unverified = client.domains_sendingqueues.get(domain=NEW).json()
    assert unverified["scheduled"]["is_disabled"] is True


def test_requests_are_counted_and_need_the_key(running: Running, client: Client) -> None:
    client.domainlist.get()
    anonymous = requests.get(f"{running.base}/v4/domains")
    assert (anonymous.status_code, anonymous.text) == (401, "Forbidden")
    stats = requests.get(running.api("/stats"), timeout=5).json()["requests"]
    assert stats["GET /v4/domains"] == {"200": 1, "401": 1}


async def test_async_client(running: Running) -> None:
    async with async_sdk(running.base) as client:
        listed = await client.domainlist.get()
        assert listed.json()["items"][0]["name"] == DOMAIN
        created = await client.domains.create(data={"name": NEW})
        assert created.json()["domain"]["state"] == "unverified"
        verified = await client.domains.put(domain=NEW, verify=True)
        assert verified.json()["domain"]["state"] == "active"
        tracking = await client.domains_tracking_open.put(domain=NEW, data={"active": "false"})
        assert tracking.json()["open"]["active"] is False
        queues = await client.domains_sendingqueues.get(domain=NEW)
        assert queues.json()["regular"]["is_disabled"] is False
        deleted = await client.domains.delete(domain=NEW)
        assert deleted.json() == {"message": "Domain has been deleted"}
