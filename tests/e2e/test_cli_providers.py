"""``tidings providers list|show|add|connect`` and ``tidings doctor`` (typer's CliRunner)
against a running server, a sandbox, and a DNS server on loopback."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator

import pytest
from typer.testing import CliRunner, Result

from tests.e2e.conftest import RunningSandbox, RunningTidings
from tests.support.dns_server import LoopbackDns, serve_dns, txt
from tidings.cli import app

DOMAIN = "mg.tidings.test"


@pytest.fixture
def dns() -> Iterator[LoopbackDns]:
    records = {
        (DOMAIN, "MX"): ["10 mxa.mailgun.org."],
        (DOMAIN, "TXT"): [txt("v=spf1 include:mailgun.org ~all")],
        (f"k1._domainkey.{DOMAIN}", "TXT"): [txt("k=rsa; p=MIGfMA0GCSqGSIb3DQEB")],
        ("eu.tidings.test", "TXT"): [txt("v=spf1 include:mailgun.org ~all")],
    }
    with serve_dns(records) as server:
        yield server


@pytest.fixture
def server(start_tidings: Callable[..., RunningTidings], dns: LoopbackDns) -> RunningTidings:
    # The proxy the tests configure (never called) is the operator's own.
    return start_tidings(dns_server=dns.address, provider_hosts="http://127.0.0.1:3128")


def run(server: RunningTidings, *args: str, input: str | None = None) -> Result:
    runner = CliRunner()
    env = {"TIDINGS_URL": server.url, "TIDINGS_API_KEY": server.api_key, "COLUMNS": "200"}
    return runner.invoke(app, list(args), env=env, input=input)


def _add(server: RunningTidings, sandbox: RunningSandbox, *extra: str) -> Result:
    return run(
        server,
        "providers",
        "add",
        "--domain",
        DOMAIN,
        "--api-key",
        sandbox.settings.api_key,
        "--host",
        sandbox.url,
        "--from",
        f"Acme <no-reply@{DOMAIN}>",
        "--signing-key",
        sandbox.settings.signing_key,
        "--alias",
        "cli",
        *extra,
    )


def test_add_list_show(server: RunningTidings, mailgun_sandbox: RunningSandbox) -> None:
    key, signing = mailgun_sandbox.settings.api_key, mailgun_sandbox.settings.signing_key
    added = _add(
        server,
        mailgun_sandbox,
        "--polling",
        "auto",
        "--proxy-url",
        "http://egress:hidden-pass@127.0.0.1:3128",
    )
    assert added.exit_code == 0, added.output
    with server.http() as http:
        stored = http.get("/providers/cli").json()
    assert stored["settings"]["polling"] == "auto"
    assert f"added {stored['id']}" in added.output
    assert stored["webhook_url"] in added.output

    listed = run(server, "providers", "list")
    assert listed.exit_code == 0, listed.output
    assert stored["id"] in listed.output and DOMAIN in listed.output and "auto" in listed.output

    shown = run(server, "providers", "show", "cli")
    assert shown.exit_code == 0, shown.output
    assert f"webhook URL  {stored['webhook_url']}" in shown.output
    assert f"/webhooks/mailgun/{stored['webhook_url'].rsplit('/', 1)[1]}" in shown.output
    assert "api key  ****" in shown.output and signing[-4:] in shown.output
    assert "http://egress:****@127.0.0.1:3128" in shown.output
    for output in (added.output, listed.output, shown.output):
        assert key not in output and signing not in output and "hidden-pass" not in output

    missing = run(server, "providers", "show", "prv_nope")
    assert missing.exit_code == 1 and "404" in missing.output


def test_add_prompts_for_the_key_and_checks_polling(
    server: RunningTidings, mailgun_sandbox: RunningSandbox
) -> None:
    key = mailgun_sandbox.settings.api_key
    result = run(
        server, "providers", "add", "--domain", DOMAIN, "--host", mailgun_sandbox.url, input=key
    )
    assert result.exit_code == 0, result.output
    assert key not in result.output
    bad = _add(server, mailgun_sandbox, "--polling", "sometimes")
    assert bad.exit_code == 2 and "on, off or auto" in bad.output
    refused = run(server, "providers", "add", "--domain", "nodots", "--api-key", "k", "--host", "x")
    assert refused.exit_code == 1 and "settings.domain" in refused.output


def test_connect_then_doctor(server: RunningTidings, mailgun_sandbox: RunningSandbox) -> None:
    assert _add(server, mailgun_sandbox, "--polling", "off").exit_code == 0

    before = run(server, "doctor", "cli")
    assert before.exit_code == 1, before.output  # polling off and no webhooks: a failure
    assert "webhooks_registered" in before.output
    assert "fix: Run `tidings providers connect" in before.output

    first = run(server, "providers", "connect", "cli")
    assert first.exit_code == 0, first.output
    assert "7 registered, 0 already there" in first.output
    assert "delivered" in first.output and "registered" in first.output
    second = run(server, "providers", "connect", "cli")
    assert "0 registered, 7 already there" in second.output

    # A message whose events come back by webhook: the doctor then sees them arriving.
    message_id = (
        server.courier()
        .send.message(
            message={"to": {"email": "cli@example.test"}, "content": {"title": "t", "body": "b"}}
        )
        .request_id
    )
    assert server.wait_status(message_id, "DELIVERED")["status"] == "DELIVERED"
    after = run(server, "doctor", "cli", "--json")
    assert after.exit_code == 0, after.output
    (report,) = json.loads(after.output)
    checks = {check["name"]: check["status"] for check in report["checks"]}
    assert checks == {
        "network_route": "ok",
        "mailgun_api": "ok",
        "dns_mx": "ok",
        "dns_spf": "ok",
        "dns_dkim": "ok",
        "webhooks_registered": "ok",
        "public_url": "ok",
        "signing_key": "ok",
        "polling": "ok",
        "webhooks_arriving": "ok",
    }
    text = run(server, "doctor", "cli")
    assert "✔ ok" in text.output and f"direct to {mailgun_sandbox.url}" in text.output
    assert "last signed webhook accepted" in text.output
    assert mailgun_sandbox.settings.api_key not in text.output + after.output


def test_connect_wrong_domain_and_doctor_all(
    server: RunningTidings, mailgun_sandbox: RunningSandbox
) -> None:
    assert _add(server, mailgun_sandbox).exit_code == 0
    wrong = run(
        server,
        "providers",
        "add",
        "--domain",
        "nope.tidings.test",
        "--api-key",
        mailgun_sandbox.settings.api_key,
        "--host",
        mailgun_sandbox.url,
        "--alias",
        "wrong",
    )
    assert wrong.exit_code == 0, wrong.output
    failed = run(server, "providers", "connect", "wrong")
    assert failed.exit_code == 1
    assert "wrong domain or region: domain nope.tidings.test not found" in failed.output

    every = run(server, "doctor")
    assert every.exit_code == 1
    assert "nope.tidings.test" in every.output and DOMAIN in every.output
    assert "✘ fail" in every.output and "fix:" in every.output
