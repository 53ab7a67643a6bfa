"""The template pages in real headless Chromium: the list, and a preview rendered for a
user, a locale and a version, with hostile data kept out of the page."""

from __future__ import annotations

import copy
import re
from typing import Any

import pytest

from tests.ui.conftest import UIServer

sync_api = pytest.importorskip("playwright.sync_api", reason="browser tests need playwright")
expect = sync_api.expect

CONTENT: Any = {
    "version": "2022-01-01",
    "elements": [
        {
            "type": "channel",
            "channel": "email",
            "elements": [
                {
                    "type": "meta",
                    "id": "s",
                    "title": "Welcome {{profile.name}}",
                    "locales": {"fr": {"title": "Bienvenue {{profile.name}}"}},
                },
                {"type": "text", "content": "Plan: {{plan}}"},
                {
                    "type": "text",
                    "content": "Step {{add $.index 1}}: {{$.item}}",
                    "loop": "data.steps",
                },
            ],
        }
    ],
}


def _template(server: UIServer) -> str:
    client = server.tidings.courier()
    made = client.notifications.create(
        notification={
            "name": "UI welcome",
            "tags": ["ui"],
            "brand": None,
            "routing": None,
            "subscription": None,
            "content": copy.deepcopy(CONTENT),
            "alias": "ui-welcome",
        }
    )
    client.notifications.publish(made.id)
    client.profiles.create("uiuser", profile={"email": "ui@example.test", "name": "Zoé"})
    return made.id


def test_template_list_and_preview(page: Any, ui_server: UIServer) -> None:
    template_id = _template(ui_server)
    page.goto(f"{ui_server.url}/ui/templates")
    row = page.locator(f'#templates tr[data-template-id="{template_id}"]')
    expect(row).to_contain_text("UI welcome")
    expect(row).to_contain_text("ui-welcome")
    expect(row).to_contain_text("v001")
    row.locator("a").click()
    page.wait_for_url(re.compile(rf"/ui/templates/{template_id}$"))
    expect(page.locator("h1")).to_have_text("UI welcome")

    page.fill("#user", "uiuser")
    page.fill("#locale", "fr")
    page.fill("#data", '{"plan": "<script>alert(1)</script>", "steps": ["sign up", "verify"]}')
    page.click("#preview-form button[type=submit]")
    expect(page.locator("#preview-subject")).to_have_text("Bienvenue Zoé")
    expect(page.locator("#preview-locale")).to_have_text("fr")
    expect(page.locator("#preview-version")).to_have_text("v001")
    text = page.locator("#preview-text")
    expect(text).to_contain_text("Step 1: sign up")
    expect(text).to_contain_text("Step 2: verify")
    frame = page.frame_locator("#preview-frame")
    expect(frame.locator("body")).to_contain_text("Plan: <script>alert(1)</script>")
    # The sender's value is text in the email, never markup in either document.
    assert page.locator("script:text('alert(1)')").count() == 0
    assert frame.locator("script").count() == 0

    page.fill("#data", "[1, 2]")
    page.click("#preview-form button[type=submit]")
    expect(page.locator(".error")).to_contain_text("not a JSON object")

    page.goto(f"{ui_server.url}/ui/templates/nt_missing")
    expect(page.locator("h1")).to_have_text("No such template")
