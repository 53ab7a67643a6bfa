"""The doctor against a real sandbox and a DNS server on loopback (never the internet).

Two sending domains: ``mg.healthy.test`` has MX, SPF and a DKIM key; ``nomx.broken.test`` has
only SPF, the classic "550 sender domain has no MX record" case.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from tests.support.dns_server import LoopbackDns, serve_dns, txt
from tests.support.servers import free_port, serve_asgi
from tidings.app import build_app
from tidings.config import Settings
from tidings.providers.mailgun.client import MailgunClient
from tidings.providers.mailgun.connect import connect
from tidings.providers.mailgun.doctor import (
    DoctorOptions,
    WebhookActivity,
    describe_route,
    run_doctor,
)
from tidings.providers.mailgun.doctor.dns_checks import (
    ExpectedRecords,
    dns_checks,
    parse_dns_server,
)
from tidings.providers.mailgun.settings import MailgunConfig
from tidings.sandbox import Sandbox, SandboxSettings

HEALTHY = "mg.healthy.test"
BROKEN = "nomx.broken.test"
DKIM = "k=rsa; p=MIGfMA0GCSqGSIb3DQEBAQUAA4GNADCBiQKBgQC1TaNgLlSyQMNWVLNLvyY"
RECORDS = {
    (HEALTHY, "MX"): ["10 mxa.mailgun.org.", "10 mxb.mailgun.org."],
    (HEALTHY, "TXT"): [txt("v=spf1 include:mailgun.org ~all"), txt("google-site=abc")],
    (f"pic._domainkey.{HEALTHY}", "TXT"): [txt(DKIM)],
    (BROKEN, "TXT"): [txt("v=spf1 include:mailgun.org ~all")],
    ("twospf.test", "TXT"): [txt("v=spf1 include:mailgun.org ~all"), txt("v=spf1 -all")],
    ("nomailgun.test", "TXT"): [txt("v=spf1 include:_spf.google.com ~all")],
    ("nomailgun.test", "MX"): ["10 mx.nomailgun.test."],
}
URL = "https://tidings.example.com/webhooks/mailgun/tok_0123456789"


@dataclass
class World:
    sandbox_url: str
    api_key: str
    dns: LoopbackDns

    def config(self, domain: str = HEALTHY, **changes: str | None) -> MailgunConfig:
        config = MailgunConfig(
            api_key=self.api_key,
            domain=domain,
            base_url=self.sandbox_url,
            webhook_signing_key="signing-key-0123456789abcd",
        )
        return replace(config, **changes)  # type: ignore[arg-type]

    def options(self, **changes: object) -> DoctorOptions:
        options = DoctorOptions("prv_test", webhook_url=URL, dns_server=self.dns.address)
        return replace(options, **changes)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def world() -> Iterator[World]:
    settings = SandboxSettings(domains=[HEALTHY, BROKEN], event_delay=0.02, seed=1)
    sandbox = Sandbox(settings)
    with serve_asgi(sandbox.asgi()) as url, serve_dns(RECORDS) as dns:
        yield World(url, settings.api_key, dns)


@pytest.fixture
async def client() -> AsyncIterator[MailgunClient]:
    async with MailgunClient() as mailgun:
        yield mailgun


async def _clear_webhooks(client: MailgunClient, config: MailgunConfig) -> None:
    for hook in await client.list_webhooks(config):
        await client.delete_webhook(config, hook.name)


async def test_healthy_domain_without_webhooks(world: World, client: MailgunClient) -> None:
    config = world.config()
    await _clear_webhooks(client, config)
    report = await run_doctor(client, config, world.options())
    statuses = {check.name: check.status for check in report.checks}
    assert statuses == {
        "network_route": "ok",
        "mailgun_api": "ok",
        "dns_mx": "ok",
        "dns_spf": "ok",
        "dns_dkim": "ok",
        "webhooks_registered": "warn",  # polling is on: statuses still arrive
        "public_url": "ok",
        "signing_key": "ok",
        "polling": "ok",
        "webhooks_arriving": "warn",
    }
    assert report.status == "warn"
    assert "state: active" in report.check("mailgun_api").detail
    assert "mxa.mailgun.org" in report.check("dns_mx").detail
    assert f"pic._domainkey.{HEALTHY}" in report.check("dns_dkim").detail
    hooks = report.check("webhooks_registered")
    assert "delivered" in hooks.detail and hooks.fix is not None
    assert "tidings providers connect prv_test" in hooks.fix
    assert report.check("network_route").detail.startswith(f"direct to {world.sandbox_url}")
    assert "****abcd" in report.check("signing_key").detail
    assert "signing-key-0123456789" not in str(report.as_dict())
    # The DNS questions went to the loopback server.
    assert (HEALTHY, "MX") in world.dns.questions


async def test_after_connect_webhooks_are_registered(world: World, client: MailgunClient) -> None:
    config = world.config()
    await _clear_webhooks(client, config)
    await connect(client, config, URL)
    report = await run_doctor(client, config, world.options())
    check = report.check("webhooks_registered")
    assert check.status == "ok", check
    assert "all 7 event kinds" in check.detail
    # Another URL of this server (an old token) is pointed out.
    await client.update_webhook(config, "delivered", [URL, URL.replace("tok_", "old_")])
    check = (await run_doctor(client, config, world.options())).check("webhooks_registered")
    assert check.status == "warn" and "unknown token" in check.detail


async def test_missing_mx_fails_with_the_550_fix(world: World, client: MailgunClient) -> None:
    report = await run_doctor(client, world.config(BROKEN), world.options())
    mx = report.check("dns_mx")
    assert mx.status == "fail"
    assert "550" in mx.detail and BROKEN in mx.detail
    assert mx.fix is not None
    assert "Add an MX record" in mx.fix and "2 hours" in mx.fix
    assert report.check("dns_spf").status == "ok"
    assert report.check("dns_dkim").status == "warn"
    assert report.status == "fail"


async def test_polling_off_without_webhooks_fails(world: World, client: MailgunClient) -> None:
    config = world.config(BROKEN)
    await _clear_webhooks(client, config)
    report = await run_doctor(client, config, world.options(polling="off"))
    assert report.check("webhooks_registered").status == "fail"
    assert report.check("webhooks_arriving").status == "fail"
    assert report.check("polling").status == "warn"


async def test_webhook_activity_and_auto_polling(world: World, client: MailgunClient) -> None:
    now = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
    flowing = WebhookActivity(
        last_webhook_at=now - timedelta(seconds=30), webhooks_since=now - timedelta(hours=2)
    )
    report = await run_doctor(
        client, world.config(), world.options(polling="auto", activity=flowing, now=now)
    )
    assert report.check("webhooks_arriving").status == "ok"
    assert "30 s ago" in report.check("webhooks_arriving").detail
    assert "paused" in report.check("polling").detail
    stale = WebhookActivity(last_webhook_at=now - timedelta(days=2))
    report = await run_doctor(
        client, world.config(), world.options(polling="auto", activity=stale, now=now)
    )
    assert report.check("webhooks_arriving").status == "warn"
    assert "active" in report.check("polling").detail


async def test_wrong_key_and_unknown_domain(world: World, client: MailgunClient) -> None:
    report = await run_doctor(client, world.config(api_key="key-wrong"), world.options())
    api = report.check("mailgun_api")
    assert api.status == "fail" and "wrong API key or wrong region" in api.detail
    assert report.check("webhooks_registered").detail.startswith("not checked")

    report = await run_doctor(client, world.config("unknown.tidings.test"), world.options())
    api = report.check("mailgun_api")
    assert api.status == "fail" and api.detail.startswith("wrong domain or region")
    assert "NXDOMAIN" in report.check("dns_mx").detail


async def test_public_url_on_loopback_with_real_mailgun_warns(
    world: World, client: MailgunClient
) -> None:
    # A real Mailgun host (never called: the route check refuses the SOCKS proxy first,
    # aiohttp-socks not being installed in the test environment, or the host is unreachable).
    options = world.options(webhook_url="http://127.0.0.1:8000/webhooks/mailgun/x")
    config = world.config(base_url="https://api.mailgun.net", proxy_url="socks5://127.0.0.1:9")
    report = await run_doctor(client, config, options)
    assert report.check("public_url").status == "warn"
    assert "TIDINGS_PUBLIC_URL" in (report.check("public_url").fix or "")


async def test_dns_server_unreachable_is_a_warning_not_a_verdict() -> None:
    checks = await dns_checks(
        HEALTHY, ExpectedRecords(), server=f"127.0.0.1:{free_port()}", query_timeout_s=0.3
    )
    assert [c.status for c in checks] == ["warn", "warn", "warn"]
    assert all("could not check" in c.detail for c in checks)


async def test_spf_variants_and_expected_dkim(world: World) -> None:
    two = await dns_checks("twospf.test", ExpectedRecords(), server=world.dns.address)
    assert two[1].status == "fail" and "permerror" in two[1].detail
    other = await dns_checks("nomailgun.test", ExpectedRecords(), server=world.dns.address)
    assert other[1].status == "warn" and "include:mailgun.org" in (other[1].fix or "")
    # Mailgun says which selector and key it signs with: a different key there fails.
    expected = ExpectedRecords(dkim=((f"pic._domainkey.{HEALTHY}", "k=rsa; p=OTHERKEY"),))
    checks = await dns_checks(HEALTHY, expected, server=world.dns.address)
    assert checks[2].status == "fail" and "not the one Mailgun signs with" in checks[2].detail
    expected = ExpectedRecords(dkim=((f"pic._domainkey.{HEALTHY}", DKIM),))
    assert (await dns_checks(HEALTHY, expected, server=world.dns.address))[2].status == "ok"
    missing = ExpectedRecords(dkim=((f"k1._domainkey.{HEALTHY}", DKIM),))
    assert (await dns_checks(HEALTHY, missing, server=world.dns.address))[2].status == "fail"


def test_expected_records_from_mailgun_domain_answer() -> None:
    raw = {
        "receiving_dns_records": [
            {"record_type": "MX", "name": HEALTHY, "value": "mxa.eu.mailgun.org"}
        ],
        "sending_dns_records": [
            {"record_type": "TXT", "name": HEALTHY, "value": "v=spf1 include:mailgun.org ~all"},
            {"record_type": "TXT", "name": f"s1._domainkey.{HEALTHY}", "value": DKIM},
            {"record_type": "CNAME", "name": f"email.{HEALTHY}", "value": "eu.mailgun.org"},
        ],
    }
    expected = ExpectedRecords.from_domain_answer(raw)
    assert expected.mx == ("mxa.eu.mailgun.org",)
    assert expected.spf == "v=spf1 include:mailgun.org ~all"
    assert expected.dkim == ((f"s1._domainkey.{HEALTHY}", DKIM),)


def test_parse_dns_server_and_route() -> None:
    assert parse_dns_server("127.0.0.1:5353") == ("127.0.0.1", 5353)
    assert parse_dns_server("10.0.0.2") == ("10.0.0.2", 53)
    assert parse_dns_server("[::1]:5353") == ("::1", 5353)
    assert parse_dns_server("::1") == ("::1", 53)
    config = MailgunConfig(
        api_key="k",
        domain=HEALTHY,
        base_url="https://api.eu.mailgun.net",
        proxy_url="http://egress:s3cret-pass@proxy.internal:3128",
    )
    route = describe_route(config)
    assert route == (
        "via proxy http://proxy.internal:3128 (credentials hidden) to https://api.eu.mailgun.net"
    )
    assert "s3cret" not in route and "egress" not in route


def test_doctor_route_on_a_running_server(world: World, tmp_path: Path) -> None:
    """``GET /providers/{id}/doctor`` uses TIDINGS_DNS_SERVER and the stored configuration."""
    port = free_port()
    settings = Settings(
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'doctor.db'}",
        api_key="tk_doctor_0123456789",
        public_url=f"http://127.0.0.1:{port}",
        port=port,
        sandbox=False,
        dns_server=world.dns.address,
        provider_hosts=world.sandbox_url,  # the operator's own Mailgun stand-in
    )
    app = asyncio.run(build_app(settings))
    headers = {"Authorization": "Bearer tk_doctor_0123456789"}
    with serve_asgi(app, port=port) as url, httpx.Client(base_url=url, headers=headers) as http:
        created = http.post(
            "/providers",
            json={
                "provider": "mailgun",
                "settings": {"api_key": world.api_key, "domain": BROKEN, "host": world.sandbox_url},
            },
        ).json()
        answer = http.get(f"/providers/{created['id']}/doctor", timeout=30)
        assert answer.status_code == 200, answer.text
        body = answer.json()
        checks = {check["name"]: check for check in body["checks"]}
        assert body["status"] == "fail"
        assert body["route"] == f"direct to {world.sandbox_url}"
        assert checks["dns_mx"]["status"] == "fail" and "2 hours" in checks["dns_mx"]["fix"]
        assert checks["signing_key"]["status"] == "warn"
        assert world.api_key not in answer.text
        assert http.get("/providers/prv_missing/doctor").status_code == 404
        assert httpx.get(f"{url}/providers/{created['id']}/doctor").status_code == 401
