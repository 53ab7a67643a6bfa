"""The one-click unsubscribe confirmation page in real headless Chromium: opened from a
topic email's List-Unsubscribe link without logging in, it changes nothing until its
button is pressed, then opts the recipient out; a forged link shows a plain refusal."""

from __future__ import annotations

from typing import Any

import pytest

from tests.ui.conftest import UIServer

sync_api = pytest.importorskip("playwright.sync_api", reason="browser tests need playwright")
expect = sync_api.expect


def test_unsubscribe_page_confirms_before_opting_out(context: Any, ui_server: UIServer) -> None:
    client = ui_server.tidings.courier()
    section = client.workspace_preferences.create(name="Letters")
    topic = client.workspace_preferences.topics.create(
        section.id, default_status="OPTED_IN", name='Weekly <b>"digest"</b>'
    )
    client.profiles.create("reader", profile={"email": "reader@acme.test"})
    message_id = client.send.message(
        message={
            "to": {"user_id": "reader"},
            "content": {"title": "Weekly", "body": "Hello"},
            "preferences": {"subscription_topic_id": topic.id},
        }
    ).request_id
    ui_server.tidings.wait_status(message_id, "DELIVERED", "OPENED", "CLICKED")
    (copy,) = [m for m in ui_server.sandbox.messages() if "reader@acme.test" in m["to"]]
    url = copy["headers"]["List-Unsubscribe"].split(",")[0].strip().strip("<>")

    page = context.new_page()  # not logged in: the link is all a recipient has
    page.goto(url)
    expect(page.locator("h1")).to_have_text("Unsubscribe")
    # The topic's name is shown as text, never as markup.
    expect(page.locator("strong")).to_have_text('Weekly <b>"digest"</b>')
    assert page.locator("strong b").count() == 0
    page.reload()  # a GET again (a link scanner, a prefetch): still nothing changed
    assert client.users.preferences.retrieve("reader").items == []

    page.click("button[type=submit]")
    expect(page.locator("h1")).to_have_text("Unsubscribed")
    (choice,) = client.users.preferences.retrieve("reader").items
    assert (choice.topic_id, choice.status) == (topic.id, "OPTED_OUT")

    forged = url[:-3] + ("AAA" if not url.endswith("AAA") else "BBB")
    answer = page.goto(forged)
    assert answer is not None and answer.status == 400
    expect(page.locator("h1")).to_have_text("Link not valid")
    assert page.locator("form").count() == 0
