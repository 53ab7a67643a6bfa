"""The UI in real headless Chromium: login, the message list and its filters, a message's
timeline with requests, answers and hints, the sandboxed email, live status, the provider
page, and a screenshot that must show something."""

from __future__ import annotations

import base64
import os
import re
import shutil
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.conftest import API_KEY
from tests.ui.conftest import ATTACHMENT, HOSTILE_TITLE, WRONG_KEY, UIServer, login
from tidings.ui.views import fmt_size

sync_api = pytest.importorskip("playwright.sync_api", reason="browser tests need playwright")
expect = sync_api.expect


def _ids_in_list(page: Any) -> list[str]:
    ids: list[str] = page.eval_on_selector_all(
        "#messages tbody tr[data-message-id]",
        "rows => rows.map(r => r.getAttribute('data-message-id'))",
    )
    return ids


def _no_secret_in(page: Any, server: UIServer) -> None:
    html = page.content()
    for secret in (API_KEY, server.sandbox.settings.api_key, WRONG_KEY):
        assert secret not in html


# -- sessions ----------------------------------------------------------------------------


def test_pages_redirect_to_login_without_a_session(context: Any, ui_server: UIServer) -> None:
    page = context.new_page()
    page.goto(f"{ui_server.url}/")
    assert re.search(r"/ui/login\?next=%2Fui%2F$", page.url), page.url
    page.goto(f"{ui_server.url}/ui/messages/{ui_server.sent.refused}")
    assert "/ui/login?next=" in page.url
    expect(page.locator("h1")).to_have_text("Log in")
    # Logging in from there goes back to the page that was asked for.
    page.fill("#key", API_KEY)
    page.click("button[type=submit]")
    page.wait_for_url(re.compile(rf"/ui/messages/{ui_server.sent.refused}$"))


def test_wrong_key_is_refused_and_right_key_opens_a_server_side_session(
    context: Any, ui_server: UIServer
) -> None:
    page = context.new_page()
    login(page, ui_server.url, key="tk_wrong_key")
    expect(page.locator("#login-error")).to_contain_text("does not open this server")
    assert "/ui/login" in page.url
    assert not context.cookies()

    login(page, ui_server.url)
    assert page.url.endswith("/ui/")
    expect(page.locator("h1")).to_have_text("Messages")
    (cookie,) = context.cookies()
    assert cookie["name"] == "tidings_session"
    assert cookie["httpOnly"] is True and cookie["sameSite"] == "Lax"
    assert API_KEY not in cookie["value"]
    # A random token (only its hash is stored), not anything derived from a key.
    assert re.fullmatch(r"[A-Za-z0-9_-]{43}", cookie["value"])
    # HttpOnly: the page's scripts cannot read it.
    assert page.evaluate("document.cookie") == ""

    # The session opens the API for the pages' own calls (the SSE streams use this)...
    status = page.evaluate(
        "id => fetch('/messages/' + id).then(r => r.status)", ui_server.sent.delivered
    )
    assert status == 200
    # ...but a change needs the UI's header, which another site cannot send.
    refused = page.evaluate(
        """id => fetch('/providers/' + id, {method: 'PATCH',
             headers: {'Content-Type': 'application/json'},
             body: JSON.stringify({settings: {polling: 'on'}})}).then(r => r.status)""",
        ui_server.provider_id,
    )
    assert refused == 401
    # A forged cookie opens nothing.
    forged = httpx.get(
        f"{ui_server.url}/ui/",
        cookies={"tidings_session": "9999999999." + "0" * 64},
        follow_redirects=False,
    )
    assert forged.status_code == 303

    page.click("text=Log out")
    page.wait_for_url(re.compile(r"/ui/login$"))
    page.goto(f"{ui_server.url}/ui/")
    assert "/ui/login" in page.url


# -- the message list --------------------------------------------------------------------


def test_list_shows_messages_with_badges_and_filters(page: Any, ui_server: UIServer) -> None:
    sent = ui_server.sent
    ids = _ids_in_list(page)
    for message_id in (sent.delivered, sent.bounced, sent.refused, sent.hostile):
        assert message_id in ids
    row = page.locator(f'tr[data-message-id="{sent.bounced}"]')
    expect(row.locator("[data-badge]")).to_have_text("UNDELIVERABLE")
    expect(row.locator("[data-badge]")).to_have_class(re.compile("badge-bad"))
    expect(row).to_contain_text("x+bounce@example.test")
    expect(row).to_contain_text("billing")
    expect(page.locator(f'tr[data-message-id="{sent.refused}"] .hint-flag')).to_be_visible()

    page.select_option("select[name=status]", "UNDELIVERABLE")
    page.click("form.filters button[type=submit]")
    page.wait_for_url(re.compile(r"status=UNDELIVERABLE"))
    ids = _ids_in_list(page)
    assert sent.bounced in ids and sent.refused in ids and sent.delivered not in ids

    page.goto(f"{ui_server.url}/ui/?recipient=ann@example.test")
    assert _ids_in_list(page) == [sent.delivered]
    page.goto(f"{ui_server.url}/ui/?tag=security")
    assert _ids_in_list(page) == [sent.refused]
    page.goto(f"{ui_server.url}/ui/?since=1h")
    assert set(_ids_in_list(page)) >= {sent.delivered, sent.bounced, sent.refused}
    page.goto(f"{ui_server.url}/ui/?since=2999-01-01T00:00")
    assert _ids_in_list(page) == []
    expect(page.locator("#messages")).to_contain_text("No messages match")
    page.goto(f"{ui_server.url}/ui/?since=yesterdayish")
    expect(page.locator("p.error")).to_contain_text("since: 'yesterdayish' is not a time")


def test_list_pages_with_a_cursor(page: Any, ui_server: UIServer) -> None:
    from tidings.ui import routes

    original = routes.PAGE_SIZE
    routes.PAGE_SIZE = 2
    try:
        page.goto(f"{ui_server.url}/ui/?since=1h")
        first = _ids_in_list(page)
        assert len(first) == 2
        page.click("a[rel=next]")
        second = _ids_in_list(page)
        assert second and not set(first) & set(second)
        assert "since=1h" in page.url and "cursor=" in page.url
        expect(page.locator("text=← Newest")).to_be_visible()
    finally:
        routes.PAGE_SIZE = original


def test_user_content_is_shown_as_text_never_run(page: Any, ui_server: UIServer) -> None:
    row = page.locator(f'tr[data-message-id="{ui_server.sent.hostile}"]')
    expect(row).to_contain_text(HOSTILE_TITLE)
    expect(row).to_contain_text("<b>tag</b>")
    page.goto(f"{ui_server.url}/ui/messages/{ui_server.sent.hostile}")
    expect(page.locator("#subject")).to_have_text(HOSTILE_TITLE)
    assert page.evaluate("window.__xss") is None
    # The email's own markup stays inside the sandboxed frame, where no script runs.
    frame = page.frame_locator("#email-frame")
    expect(frame.locator("body")).to_contain_text("<script>window.__xss = 2</script>")
    assert page.evaluate("window.__xss") is None
    headers = httpx.get(f"{ui_server.url}/ui/login", follow_redirects=False, timeout=10).headers
    assert "script-src 'self'" in headers["content-security-policy"]
    assert headers["x-content-type-options"] == "nosniff"


# -- one message -------------------------------------------------------------------------


def test_message_page_shows_timeline_request_and_answer(page: Any, ui_server: UIServer) -> None:
    page.goto(f"{ui_server.url}/ui/messages/{ui_server.sent.delivered}")
    expect(page.locator("#status")).to_have_text("DELIVERED")
    types = page.eval_on_selector_all(
        "#timeline > li.entry", "items => items.map(i => i.getAttribute('data-type'))"
    )
    assert types[0] == "ENQUEUED"
    assert {"RENDERED", "SENT", "DELIVERED"} <= set(types)

    sent = page.locator('#timeline > li.entry[data-type="SENT"]')
    expect(sent.locator(".request-line")).to_contain_text(
        f"POST {ui_server.sandbox.url}/v3/mg.tidings.test/messages"
    )
    fields = sent.locator("table.fields")
    expect(fields).to_contain_text("to")
    expect(fields).to_contain_text("ann@example.test")
    expect(fields).to_contain_text("v:tidings-id")
    files = sent.locator("table.files")
    expect(files).to_contain_text("terms.pdf")
    expect(files).to_contain_text("application/pdf")
    expect(files).to_contain_text(fmt_size(len(ATTACHMENT)))
    expect(sent.locator(".status-code")).to_have_text("200")
    expect(sent.locator("pre.body")).to_contain_text("Queued. Thank you.")
    expect(sent.locator(".answer-line")).to_contain_text(" ms")

    delivered = page.locator('#timeline > li.entry[data-type="DELIVERED"]')
    raw = delivered.locator("details.raw")
    assert raw.get_attribute("open") is None  # collapsed until asked for
    expect(raw.locator("pre")).to_be_hidden()
    raw.locator("summary").click()
    expect(raw.locator("pre")).to_be_visible()
    expect(raw.locator("pre")).to_contain_text('"event": "delivered"')
    _no_secret_in(page, ui_server)


def test_message_page_shows_hint_and_sandboxed_email(page: Any, ui_server: UIServer) -> None:
    page.goto(f"{ui_server.url}/ui/messages/{ui_server.sent.refused}")
    expect(page.locator("#status")).to_have_text("UNDELIVERABLE")
    hint = page.locator("#hint")
    expect(hint.locator("h2")).to_have_text("Mailgun refused the API key (401 Forbidden)")
    expect(hint).to_contain_text("the domain lives in the other region")
    expect(hint.locator(".fix")).to_contain_text("Fix: Check the API key")
    failed = page.locator('#timeline > li.entry[data-type="UNDELIVERABLE"]')
    expect(failed.locator(".status-code")).to_have_text("401")
    expect(failed.locator(".hint")).to_contain_text("401 Forbidden")

    frame_el = page.locator("#email-frame")
    assert frame_el.get_attribute("sandbox") == ""  # present, and grants nothing
    assert "allow-scripts" not in (frame_el.get_attribute("sandbox") or "")
    frame = page.frame_locator("#email-frame")
    assert "<title>Password reset</title>" in (frame_el.get_attribute("srcdoc") or "")
    assert frame.locator("title").text_content() == "Password reset"
    expect(frame.locator("body")).to_contain_text("Click the link.")
    expect(page.locator("#text-part")).to_contain_text("Click the link.")
    _no_secret_in(page, ui_server)


def test_bounce_shows_the_provider_event_and_its_reason(page: Any, ui_server: UIServer) -> None:
    page.goto(f"{ui_server.url}/ui/messages/{ui_server.sent.bounced}")
    failed = page.locator('#timeline > li.entry[data-type="UNDELIVERABLE"]').last
    expect(failed).to_contain_text("550")
    failed.locator("details.raw summary").click()
    expect(failed.locator("details.raw pre")).to_contain_text('"severity": "permanent"')
    # The bounce's hint, from Mailgun's words in the event, on the entry and at the top.
    expect(failed.locator(".hint")).to_contain_text("The recipient's mailbox does not exist")
    expect(page.locator("#hint h2")).to_have_text("The recipient's mailbox does not exist")
    expect(page.locator("#hint .fix")).to_contain_text("Correct or remove the address")


# -- live status -------------------------------------------------------------------------


def _delayed(ui_server: UIServer, email: str, ms: int) -> str:
    return ui_server.send(
        {
            "to": {"email": email},
            "content": {"title": "Later", "body": "Soon."},
            "delay": {"duration": ms},
        }
    )


def test_message_page_status_changes_without_reload(page: Any, ui_server: UIServer) -> None:
    message_id = _delayed(ui_server, "live-one@example.test", 3000)
    page.goto(f"{ui_server.url}/ui/messages/{message_id}")
    expect(page.locator("#status")).to_have_text("ENQUEUED")
    expect(page.locator("[data-live-state]")).to_have_text("live updates: on")
    page.evaluate("window.__sameDocument = true")
    expect(page.locator("#status")).to_have_text(re.compile("DELIVERED"), timeout=20_000)
    # The timeline came along, and the page was never reloaded.
    expect(page.locator('#timeline > li.entry[data-type="SENT"]')).to_have_count(1)
    expect(page.locator('#timeline > li.entry[data-type="DELIVERED"]')).to_have_count(1)
    assert page.evaluate("window.__sameDocument") is True


def test_list_badge_changes_without_reload(page: Any, ui_server: UIServer) -> None:
    message_id = _delayed(ui_server, "live-two@example.test", 3000)
    page.goto(f"{ui_server.url}/ui/")
    badge = page.locator(f'tr[data-message-id="{message_id}"] [data-badge]')
    expect(badge).to_have_text("ENQUEUED")
    expect(page.locator("[data-live-state]")).to_have_text("live updates: on")
    page.evaluate("window.__sameDocument = true")
    expect(badge).to_have_text("DELIVERED", timeout=20_000)
    expect(badge).to_have_class(re.compile("badge-good"))
    assert page.evaluate("window.__sameDocument") is True

    # A message sent while the newest page is open appears at the top by itself.
    newer = ui_server.send({"to": {"email": "live-three@example.test"}, "content": {"body": "x"}})
    expect(page.locator(f'tr[data-message-id="{newer}"]')).to_have_count(1, timeout=20_000)
    assert page.evaluate("window.__sameDocument") is True


# -- providers ---------------------------------------------------------------------------


def test_provider_list(page: Any, ui_server: UIServer) -> None:
    page.click("nav >> text=Providers")
    rows = page.locator("#providers tbody tr")
    expect(rows).to_have_count(2)
    expect(page.locator(f'tr[data-provider-id="{ui_server.provider_id}"]')).to_contain_text(
        "mg.tidings.test"
    )
    expect(page.locator(f'tr[data-provider-id="{ui_server.provider_id}"]')).to_contain_text(
        "default"
    )
    _no_secret_in(page, ui_server)


def test_provider_page_webhook_url_copy_polling_and_doctor(
    context: Any, page: Any, ui_server: UIServer
) -> None:
    context.grant_permissions(["clipboard-read", "clipboard-write"], origin=ui_server.url)
    with ui_server.tidings.http() as http:
        expected = http.get(f"/providers/{ui_server.provider_id}").json()["webhook_url"]
    page.goto(f"{ui_server.url}/ui/providers/{ui_server.provider_id}")
    expect(page.locator("#webhook-url")).to_have_value(expected)
    page.click("#copy-webhook")
    expect(page.locator("#copy-state")).to_have_text("Copied")
    assert page.evaluate("navigator.clipboard.readText()") == expected

    settings = page.locator("#settings")
    expect(settings).to_contain_text("api_key")
    expect(settings).to_contain_text("****")
    _no_secret_in(page, ui_server)

    # The polling switch saves through PATCH /providers/{id} with the session.
    expect(page.locator('#polling input[value="on"]')).to_be_checked()
    page.check('#polling input[value="auto"]')
    expect(page.locator("#polling-state")).to_have_text("saved: auto")
    with ui_server.tidings.http() as http:
        stored = http.get(f"/providers/{ui_server.provider_id}").json()
        assert stored["settings"]["polling"] == "auto"
    page.reload()
    expect(page.locator('#polling input[value="auto"]')).to_be_checked()
    page.check('#polling input[value="on"]')
    expect(page.locator("#polling-state")).to_have_text("saved: on")

    # The doctor's checks, each with its result (or a plain "unavailable").
    doctor = page.locator("#doctor")
    expect(doctor.locator("tbody tr").first).to_be_visible(timeout=30_000)
    expect(doctor).to_contain_text("mailgun_api")
    expect(doctor.locator("[data-doctor-summary]")).to_contain_text("route: direct to")


def test_provider_page_with_a_refused_key_says_so(page: Any, ui_server: UIServer) -> None:
    page.goto(f"{ui_server.url}/ui/providers/{ui_server.wrong_provider_id}")
    doctor = page.locator("#doctor")
    # Either the doctor lists a failed API check, or it answers why it could not run.
    expect(
        doctor.locator(".badge-bad").first.or_(doctor.locator("text=unavailable"))
    ).to_be_visible(timeout=30_000)
    _no_secret_in(page, ui_server)


# -- what it looks like ------------------------------------------------------------------


_COLOURS_JS = """async ([dataUrl, box]) => {
  const img = new Image();
  img.src = dataUrl;
  await img.decode();
  const canvas = document.createElement('canvas');
  canvas.width = img.width; canvas.height = img.height;
  const ctx = canvas.getContext('2d');
  ctx.drawImage(img, 0, 0);
  const r = box || {x: 0, y: 0, width: img.width, height: img.height};
  const data = ctx.getImageData(r.x, r.y, r.width, r.height).data;
  const seen = new Set();
  let notWhite = 0, total = 0;
  for (let i = 0; i < data.length; i += 4 * 7) {
    total++;
    if (data[i] < 252 || data[i + 1] < 252 || data[i + 2] < 252) notWhite++;
    seen.add((data[i] >> 3) << 10 | (data[i + 1] >> 3) << 5 | (data[i + 2] >> 3));
  }
  return {width: img.width, height: img.height, colours: seen.size, notWhite: notWhite / total};
}"""


def test_screenshot_of_a_message_page_is_not_blank(
    context: Any, page: Any, ui_server: UIServer, tmp_path: Path
) -> None:
    page.goto(f"{ui_server.url}/ui/messages/{ui_server.sent.refused}")
    expect(page.locator("#hint")).to_be_visible()
    page.frame_locator("#email-frame").locator("body").wait_for()
    # The sandboxed frame is painted in its own process, which a full-page screenshot does
    # not stitch in below the fold: make the viewport as tall as the page instead.
    height = page.evaluate("document.documentElement.scrollHeight")
    page.set_viewport_size({"width": 1280, "height": height})
    page.wait_for_timeout(300)
    shot = tmp_path / "message.png"
    page.screenshot(path=str(shot))
    png = shot.read_bytes()
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    # Chromium decodes the PNG on a blank page (no dependency on an imaging library).
    blank = context.new_page()
    data_url = "data:image/png;base64," + base64.b64encode(png).decode()
    stats = blank.evaluate(_COLOURS_JS, [data_url, None])
    assert stats["width"] == 1280 and stats["height"] > 900
    assert stats["colours"] >= 20, stats
    # Most of the page is the grey background, the header bar, badges and the hint box.
    assert stats["notWhite"] > 0.3, stats
    # And the email itself was painted in its frame: its grey, its white card, its text.
    box = page.locator("#email-frame").bounding_box()
    assert box is not None
    region = {k: int(box[k]) for k in ("x", "y", "width", "height")}
    email = blank.evaluate(_COLOURS_JS, [data_url, region])
    assert email["colours"] >= 3 and email["notWhite"] > 0.3, email
    keep = os.environ.get("TIDINGS_UI_SCREENSHOTS")
    if keep:
        Path(keep).mkdir(parents=True, exist_ok=True)
        shutil.copy(shot, Path(keep) / "message.png")
        page.goto(f"{ui_server.url}/ui/")
        page.screenshot(path=str(Path(keep) / "list.png"), full_page=True)
        page.goto(f"{ui_server.url}/ui/providers/{ui_server.provider_id}")
        page.locator("#doctor tbody tr").first.wait_for(timeout=30_000)
        page.screenshot(path=str(Path(keep) / "provider.png"), full_page=True)
