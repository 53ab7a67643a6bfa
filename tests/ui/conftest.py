"""Browser fixtures: a real Tidings server sending to a real Mailgun sandbox, real messages
in it, and Debian's headless Chromium driven by Playwright.

The server and its messages are made once per module (sending and waiting for webhooks is the
slow part); each test gets a fresh browser context, so cookies never leak between tests. The
end-to-end fixtures are re-exported for tests that want a server of their own.
"""

from __future__ import annotations

import asyncio
import base64
import os
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import (
    API_KEY,
    RunningSandbox,
    RunningTidings,
    mailgun_sandbox,
    sandbox_settings,
    start_tidings,
    tidings_settings,
    tidings_with_mailgun,
)
from tests.support.servers import free_port, serve_asgi
from tidings.app import build_app
from tidings.sandbox import Sandbox

__all__ = ["mailgun_sandbox", "start_tidings", "tidings_with_mailgun"]

CHROMIUM = os.environ.get("TIDINGS_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
# The key a second configuration is given: Mailgun (the sandbox) refuses it with 401.
WRONG_KEY = "key-not-the-right-one-0000"
HOSTILE_TITLE = '<img src=x onerror="window.__xss=1">Hi'
ATTACHMENT = b"%PDF-1.4 tidings test attachment\n" * 40


@dataclass
class Sent:
    """The messages every UI test looks at, by what they show."""

    delivered: str
    bounced: str
    refused: str
    hostile: str


@dataclass
class UIServer:
    tidings: RunningTidings
    sandbox: RunningSandbox
    provider_id: str
    wrong_provider_id: str
    sent: Sent

    @property
    def url(self) -> str:
        return self.tidings.url

    def send(self, message: dict[str, Any]) -> str:
        with self.tidings.http() as http:
            answer = http.post("/send", json={"message": message})
            assert answer.status_code == 202, answer.text
            request_id: str = answer.json()["requestId"]
            return request_id


def _add_provider(
    server: RunningTidings, alias: str, title: str, api_key: str, host: str, signing_key: str
) -> str:
    with server.http() as http:
        answer = http.post(
            "/providers",
            json={
                "provider": "mailgun",
                "alias": alias,
                "title": title,
                "settings": {
                    "api_key": api_key,
                    "domain": "mg.tidings.test",
                    "host": host,
                    "from_address": "Acme <no-reply@mg.tidings.test>",
                    "webhook_signing_key": signing_key,
                },
            },
        )
        assert answer.status_code == 200, answer.text
        provider_id: str = answer.json()["id"]
        return provider_id


@pytest.fixture(scope="module")
def ui_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[UIServer]:
    # Events a little apart, so that a page can be looking while a status moves.
    sandbox = Sandbox(sandbox_settings(event_delay=0.2))
    with serve_asgi(sandbox.asgi()) as sandbox_url:
        running_sandbox = RunningSandbox(sandbox_url, sandbox, sandbox.settings)
        port = free_port()
        settings = tidings_settings(tmp_path_factory.mktemp("ui"), port, provider_hosts=sandbox_url)
        # In a thread of its own: Playwright's sync API keeps an event loop running in this
        # one, and asyncio.run refuses to nest.
        with ThreadPoolExecutor(1) as pool:
            app = pool.submit(asyncio.run, build_app(settings)).result()
        with serve_asgi(app, port=port) as url:
            tidings = RunningTidings(url, API_KEY, settings)
            main = _add_provider(
                tidings,
                "main",
                "Acme main",
                sandbox.settings.api_key,
                sandbox_url,
                sandbox.settings.signing_key,
            )
            with tidings.http() as http:
                # Webhooks bring DELIVERED and the bounce back at once (polling is slower).
                connected = http.post(f"/providers/{main}/connect")
                assert connected.status_code == 200, connected.text
            wrong = _add_provider(
                tidings, "wrong-key", "Wrong key", WRONG_KEY, sandbox_url, "not-the-signing-key"
            )
            server = UIServer(tidings, running_sandbox, main, wrong, Sent("", "", "", ""))
            server.sent = _send_all(server)
            yield server


def _send_all(server: UIServer) -> Sent:
    delivered = server.send(
        {
            "to": {"email": "ann@example.test"},
            "content": {"title": "Welcome, {{name}} <3", "body": "Your code is {{code}}."},
            "data": {"name": "Ann", "code": "1234"},
            "metadata": {"tags": ["welcome"]},
            "providers": {
                "mailgun": {
                    "override": {
                        "attachment": [
                            {
                                "filename": "terms.pdf",
                                "contentType": "application/pdf",
                                "data": base64.b64encode(ATTACHMENT).decode(),
                            }
                        ]
                    }
                }
            },
        }
    )
    bounced = server.send(
        {
            "to": {"email": "x+bounce@example.test"},
            "content": {"title": "Your invoice", "body": "Attached."},
            "metadata": {"tags": ["billing"]},
        }
    )
    # The message names the wrong-key configuration's key in its override: what Mailgun
    # answers to a wrong key or region (401), with Tidings' hint for it.
    refused = server.send(
        {
            "to": {"email": "carol@example.test"},
            "content": {"title": "Password reset", "body": "Click the link."},
            "metadata": {"tags": ["security"]},
            "providers": {"mailgun": {"override": {"config": {"apiKey": WRONG_KEY}}}},
        }
    )
    # Markup in user content must show as text, never run.
    hostile = server.send(
        {
            "to": {"email": "dave@example.test"},
            "content": {"title": HOSTILE_TITLE, "body": "<script>window.__xss = 2</script>"},
            "metadata": {"tags": ["<b>tag</b>"]},
        }
    )
    t = server.tidings
    assert t.wait_status(delivered, "DELIVERED", "OPENED")["status"] == "DELIVERED"
    assert t.wait_status(bounced, "UNDELIVERABLE")["status"] == "UNDELIVERABLE"
    details = t.wait_status(refused, "UNDELIVERABLE")
    assert details["status"] == "UNDELIVERABLE" and details["hint"], details
    t.wait_status(hostile, "DELIVERED", "OPENED")
    return Sent(delivered=delivered, bounced=bounced, refused=refused, hostile=hostile)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Debian's Chromium (never a downloaded one), headless, offline but for loopback.

    Per module, not per session: Playwright's sync API keeps an event loop set on this
    thread while it lives, which would break asyncio tests that run after these."""
    if not Path(CHROMIUM).exists():
        pytest.skip(f"browser tests need Chromium at {CHROMIUM} (Debian: apt-get install chromium)")
    sync_api = pytest.importorskip("playwright.sync_api", reason="browser tests need playwright")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True
        )
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture
def context(browser: Any) -> Iterator[Any]:
    ctx = browser.new_context(viewport={"width": 1280, "height": 900})
    ctx.set_default_timeout(15_000)
    try:
        yield ctx
    finally:
        ctx.close()


def login(page: Any, base_url: str, key: str = API_KEY) -> None:
    page.goto(f"{base_url}/ui/login")
    page.fill("#key", key)
    page.click("button[type=submit]")
    page.wait_for_load_state()


@pytest.fixture
def page(context: Any, ui_server: UIServer) -> Any:
    """A browser tab, logged in to the module's server."""
    tab = context.new_page()
    login(tab, ui_server.url)
    assert tab.url.endswith("/ui/"), tab.url
    return tab
