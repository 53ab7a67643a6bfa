"""Profiles, providers and suppressions through Courier's SDK and the CLI, on a real server."""

from __future__ import annotations

import os
import time
from collections.abc import Callable

import courier
import pytest
from typer.testing import CliRunner

from tests.e2e.conftest import RunningSandbox, RunningTidings
from tidings.cli import app as cli_app


def test_profiles_merge_replace_patch_delete(tidings_with_mailgun: RunningTidings) -> None:
    client = tidings_with_mailgun.courier()
    client.profiles.create("u1", profile={"email": "u1@example.test", "name": "Ann", "tz": "UTC"})
    client.profiles.create("u1", profile={"name": "Anna", "tz": None})  # merge; null removes
    assert client.profiles.retrieve("u1").profile == {"email": "u1@example.test", "name": "Anna"}
    client.profiles.update(
        "u1",
        patch=[
            {"op": "replace", "path": "/name", "value": "Annie"},
            {"op": "add", "path": "/plan", "value": "pro"},
        ],
    )
    assert client.profiles.retrieve("u1").profile["plan"] == "pro"
    client.profiles.replace("u1", profile={"email": "new@example.test"})
    assert client.profiles.retrieve("u1").profile == {"email": "new@example.test"}
    client.profiles.update("u2", patch=[{"op": "add", "path": "/email", "value": "u2@x.test"}])
    assert client.profiles.retrieve("u2").profile == {"email": "u2@x.test"}
    with pytest.raises(courier.BadRequestError):
        client.profiles.update("u1", patch=[{"op": "remove", "path": "/missing"}])
    client.profiles.delete("u1")
    with pytest.raises(courier.NotFoundError):
        client.profiles.retrieve("u1")


def test_providers_api_masks_secrets_and_validates(
    tidings_with_mailgun: RunningTidings, mailgun_sandbox: RunningSandbox
) -> None:
    client = tidings_with_mailgun.courier()
    listed = client.providers.list().results
    assert len(listed) == 1
    provider = listed[0]
    key = mailgun_sandbox.settings.api_key
    assert provider.settings["api_key"] != key and str(provider.settings["api_key"]).endswith(
        key[-4:]
    )
    assert "webhook_url" in provider.model_dump()
    catalog = client.providers.catalog.list().results
    assert catalog[0].provider == "mailgun" and catalog[0].settings["domain"].required
    with pytest.raises(courier.BadRequestError) as raised:
        client.providers.create(provider="mailgun", settings={"api_key": "k", "domain": "bad"})
    assert "settings.domain" in str(raised.value.body)
    with pytest.raises(courier.BadRequestError) as raised:
        client.providers.create(provider="mailgun", settings={"domain": "mg.example.test"})
    assert "settings.api_key is required" in str(raised.value.body)
    patched = client.providers.patch(provider.id, settings={"polling": "auto"})
    assert patched.settings["polling"] == "auto"
    eu = client.providers.create(
        provider="mailgun",
        alias="eu",
        settings={
            "api_key": "key-eu-0000000000",
            "domain": "mg.eu.test",
            "host": "api.eu.mailgun.net",
        },
    )
    assert eu.settings["host"] == "https://api.eu.mailgun.net"
    client.providers.delete(eu.id)
    with pytest.raises(courier.NotFoundError):
        client.providers.retrieve(eu.id)


def test_message_timeout_gives_up_as_failed(
    tidings_with_mailgun: RunningTidings, mailgun_sandbox: RunningSandbox
) -> None:
    mailgun_sandbox.set_faults({"status_rates": {"503": 1.0}})
    message_id = (
        tidings_with_mailgun.courier()
        .send.message(
            message={
                "to": {"email": "late@example.test"},
                "content": {"title": "t", "body": "b"},
                "timeout": {"message": 1500},
            }
        )
        .request_id
    )
    details = tidings_with_mailgun.wait_status(message_id, "UNDELIVERABLE")
    assert details["reason"] == "FAILED"
    assert "gave up" in details["error"] or "expired" in details["error"]
    assert mailgun_sandbox.messages() == []


def test_rate_limit_spaces_sends_without_dropping(
    start_tidings: Callable[..., RunningTidings], mailgun_sandbox: RunningSandbox
) -> None:
    server = start_tidings()
    server.add_provider(mailgun_sandbox, rate_limit={"rate": 5, "period": "second"})
    started = time.monotonic()
    answer = server.courier().send.message(
        message={
            "to": [{"email": f"rl{i}@example.test"} for i in range(10)],
            "content": {"title": "t", "body": "b"},
        }
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and len(mailgun_sandbox.messages()) < 10:
        time.sleep(0.05)
    elapsed = time.monotonic() - started
    assert len(mailgun_sandbox.messages()) == 10  # none dropped
    received = sorted(m["received_at"] for m in mailgun_sandbox.messages())
    assert received[-1] > received[0]  # spread out, not all at once
    assert elapsed > 0 and answer.request_id


def test_suppressions_cli(
    tidings_with_mailgun: RunningTidings, mailgun_sandbox: RunningSandbox
) -> None:
    server = tidings_with_mailgun
    server.connect_webhooks()
    message_id = (
        server.courier()
        .send.message(
            message={
                "to": {"email": "gone+bounce@example.test"},
                "content": {"title": "t", "body": "b"},
            }
        )
        .request_id
    )
    server.wait_status(message_id, "UNDELIVERABLE")
    runner = CliRunner()
    env = {"TIDINGS_URL": server.url, "TIDINGS_API_KEY": server.api_key}
    old = dict(os.environ)
    os.environ.update(env)
    try:
        listed = runner.invoke(cli_app, ["suppressions", "list"])
        assert listed.exit_code == 0, listed.output
        assert "gone+bounce@example.test" in listed.output and "bounce" in listed.output
        removed = runner.invoke(cli_app, ["suppressions", "delete", "gone+bounce@example.test"])
        assert removed.exit_code == 0, removed.output
        missing = runner.invoke(cli_app, ["suppressions", "show", "gone+bounce@example.test"])
        assert missing.exit_code == 1
    finally:
        os.environ.clear()
        os.environ.update(old)


def test_ui_login_refuses_cross_site_posts_and_logout_is_post_only(
    tidings_with_mailgun: RunningTidings,
) -> None:
    import httpx

    url = tidings_with_mailgun.url
    form = {"key": tidings_with_mailgun.api_key}
    cross = httpx.post(f"{url}/ui/login", data=form, headers={"Origin": "http://evil.test"})
    assert cross.status_code == 403 and "tidings_session" not in cross.cookies
    fetch = httpx.post(f"{url}/ui/login", data=form, headers={"Sec-Fetch-Site": "cross-site"})
    assert fetch.status_code == 403
    same = httpx.post(f"{url}/ui/login", data=form, headers={"Origin": url})
    assert same.status_code == 303 and "tidings_session" in same.cookies
    assert httpx.get(f"{url}/ui/logout").status_code == 405


def test_metrics_count_what_happened(
    tidings_with_mailgun: RunningTidings, mailgun_sandbox: RunningSandbox
) -> None:
    server = tidings_with_mailgun
    message_id = (
        server.courier()
        .send.message(
            message={"to": {"email": "m@example.test"}, "content": {"title": "t", "body": "b"}}
        )
        .request_id
    )
    server.wait_status(message_id, "SENT", "DELIVERED")
    with server.http() as http:
        assert http.get("/metrics", headers={"Authorization": "Bearer nope"}).status_code == 401
        text = http.get("/metrics").text
    assert "tidings_messages_accepted_total 1.0" in text
    assert 'tidings_send_attempts_total{outcome="sent"} 1.0' in text
    assert "tidings_send_attempt_seconds_count 1.0" in text
    assert 'tidings_messages{status="' in text
