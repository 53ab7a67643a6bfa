"""Every call to Mailgun through a configuration's ``proxy_url``: a real forward proxy on
loopback (tests/support/proxy.py) that requires credentials and records what it forwarded.

The proxy refuses requests without its credentials (407) and requests not addressed to a
proxy (400), so a call seen in its record went through it, authenticated.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator

import pytest

from tests.e2e.conftest import RunningSandbox, RunningTidings
from tests.support.proxy import RunningProxy, serve_proxy
from tidings.providers.base import OutcomeKind, OutgoingEmail
from tidings.providers.mailgun.client import MailgunClient
from tidings.providers.mailgun.errors import MailgunAPIError
from tidings.providers.mailgun.settings import MailgunConfig

DOMAIN = "mg.tidings.test"
PROXY_PASSWORD = "pr0xy-s3cret-pass"


@pytest.fixture
def proxy() -> Iterator[RunningProxy]:
    with serve_proxy(username="egress", password=PROXY_PASSWORD) as running:
        yield running


def _config(sandbox: RunningSandbox, proxy_url: str) -> MailgunConfig:
    return MailgunConfig(
        api_key=sandbox.settings.api_key,
        domain=DOMAIN,
        base_url=sandbox.url,
        from_address=f"Acme <no-reply@{DOMAIN}>",
        proxy_url=proxy_url,
    )


async def test_every_client_call_goes_through_the_proxy(
    mailgun_sandbox: RunningSandbox, proxy: RunningProxy
) -> None:
    config = _config(mailgun_sandbox, proxy.url)
    async with MailgunClient() as client:
        assert (await client.get_domain(config)).state == "active"
        await client.create_webhook(config, "delivered", ["https://a.example.test/h"])
        await client.update_webhook(
            config, "delivered", ["https://a.example.test/h", "https://b.example.test/h"]
        )
        assert [h.name for h in await client.list_webhooks(config)] == ["delivered"]
        await client.delete_webhook(config, "delivered")
        outcome = await client.send(
            OutgoingEmail(
                tidings_id="msg_proxy_1",
                from_address=f"no-reply@{DOMAIN}",
                to="someone@example.test",
                subject="through the proxy",
                text="hello",
            ),
            config,
        )
        assert outcome.kind is OutcomeKind.SENT, outcome
        page = None
        for _ in range(100):  # the sandbox shows events after a short delay
            page = await client.events_page(config, begin=time.time() - 60)
            if page.items:
                break
            await asyncio.sleep(0.02)
        assert page is not None and page.items and page.next_url
        await client.events_next(config, page.next_url)
    assert proxy.calls() == [
        f"GET /v3/domains/{DOMAIN}",
        f"POST /v3/domains/{DOMAIN}/webhooks",
        f"PUT /v3/domains/{DOMAIN}/webhooks/delivered",
        f"GET /v3/domains/{DOMAIN}/webhooks",
        f"DELETE /v3/domains/{DOMAIN}/webhooks/delivered",
        f"POST /v3/{DOMAIN}/messages",
        *[f"GET /v3/{DOMAIN}/events"] * (len(proxy.calls()) - 7),
        proxy.calls()[-1],
    ]
    assert proxy.calls()[-1].startswith(f"GET /v3/{DOMAIN}/events/")
    assert all(f.status == 200 for f in proxy.forwarded)
    assert proxy.refused == []
    assert mailgun_sandbox.messages()[0]["subject"] == "through the proxy"


async def test_without_the_proxy_credentials_nothing_reaches_mailgun(
    mailgun_sandbox: RunningSandbox, proxy: RunningProxy
) -> None:
    config = _config(mailgun_sandbox, f"http://{proxy.host_port}")
    async with MailgunClient() as client:
        with pytest.raises(MailgunAPIError) as raised:
            await client.get_domain(config)
    assert raised.value.status_code == 407
    assert proxy.forwarded == [] and len(proxy.refused) == 1


def test_server_sends_polls_connects_and_doctors_through_the_proxy(
    start_tidings: Callable[..., RunningTidings],
    mailgun_sandbox: RunningSandbox,
    proxy: RunningProxy,
) -> None:
    server = start_tidings(poll_interval_s=0.1, poll_overlap_s=5, provider_hosts=proxy.url)
    with server.http() as http:
        created = http.post(
            "/providers",
            json={
                "provider": "mailgun",
                "settings": {
                    "api_key": mailgun_sandbox.settings.api_key,
                    "domain": DOMAIN,
                    "host": mailgun_sandbox.url,
                    "from_address": f"Acme <no-reply@{DOMAIN}>",
                    "polling": "on",
                    "proxy_url": proxy.url,
                },
            },
        )
        assert created.status_code == 200, created.text
        provider_id = created.json()["id"]

        # Send; no webhooks are registered yet, so DELIVERED can only come from polling.
        message_id = (
            server.courier()
            .send.message(
                message={"to": {"email": "p@example.test"}, "content": {"title": "t", "body": "b"}}
            )
            .request_id
        )
        details = server.wait_status(message_id, "DELIVERED")
        assert details["status"] == "DELIVERED", details
        calls = proxy.calls()
        assert f"POST /v3/{DOMAIN}/messages" in calls
        assert f"GET /v3/{DOMAIN}/events" in calls

        connected = http.post(f"/providers/{provider_id}/connect")
        assert connected.status_code == 200, connected.text
        route = f"via proxy http://{proxy.host_port} (credentials hidden) to {mailgun_sandbox.url}"
        assert connected.json()["route"] == route
        assert f"POST /v3/domains/{DOMAIN}/webhooks" in proxy.calls()

        doctor = http.get(f"/providers/{provider_id}/doctor", timeout=30)
        assert doctor.status_code == 200, doctor.text
        body = doctor.json()
        checks = {check["name"]: check for check in body["checks"]}
        assert body["route"] == route
        assert checks["network_route"]["status"] == "ok"
        assert checks["network_route"]["detail"].startswith(route)
        assert checks["mailgun_api"]["status"] == "ok"
        assert checks["webhooks_registered"]["status"] == "ok"
        assert PROXY_PASSWORD not in doctor.text and PROXY_PASSWORD not in connected.text
    # Every call the server made to Mailgun went through the proxy, none around it: the
    # sandbox counted no more requests than the proxy forwarded.
    assert proxy.refused == []
    sandbox_total = sum(
        sum(by_status.values()) if isinstance(by_status, dict) else by_status
        for by_status in mailgun_sandbox.stats()["requests"].values()
    )
    assert sandbox_total == len(proxy.forwarded)
