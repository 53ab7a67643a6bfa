"""Tracking decides which events a send produces: the domain's settings, overridden per
message by ``o:tracking*``, and the unsubscribe footer of unsubscribe tracking.

No sleeps: to prove an event never comes, a later message that does get it is the
condition. Every message's steps are ``event_delay`` apart on one scheduler, so once the
later message shows its ``clicked``, the earlier one's ``opened``/``clicked`` would be
there too.
"""

from __future__ import annotations

from typing import Any

import requests
from mailgun.client import Client

from tests.sandbox.conftest import DOMAIN, Running, basic_message, send, wait_until
from tidings.sandbox.domains import Tracking, send_tracking

HTML = '<p>Hi</p><a href="https://shop.example.test/x">shop</a>'


def events_of(running: Running, message_id: str) -> list[str]:
    answer = requests.get(running.api(f"/messages/{message_id.strip('<>')}/events"), timeout=5)
    return [item["event"] for item in answer.json()]


def send_id(running: Running, **fields: Any) -> str:
    answer = send(running.base, basic_message(**fields))
    assert answer.status_code == 200, answer.text
    return str(answer.json()["id"])


def wait_for_clicked_of_a_later_message(running: Running) -> None:
    later = send_id(running, to="later+click@example.test", html=HTML, **{"o:tracking": "yes"})
    wait_until(lambda: "clicked" in events_of(running, later))


def test_domain_open_and_click_tracking_off(running: Running, client: Client) -> None:
    client.domains_tracking_open.put(domain=DOMAIN, data={"active": "no"})
    client.domains_tracking_click.put(domain=DOMAIN, data={"active": "false"})
    quiet = send_id(running, to="ann+click@example.test", html=HTML)
    wait_until(lambda: "delivered" in events_of(running, quiet))
    wait_for_clicked_of_a_later_message(running)
    assert events_of(running, quiet) == ["accepted", "delivered"]


def test_open_off_click_on(running: Running, client: Client) -> None:
    client.domains_tracking_open.put(domain=DOMAIN, data={"active": "no"})
    message = send_id(running, to="ann+click@example.test", html=HTML)
    wait_until(lambda: "clicked" in events_of(running, message))
    assert events_of(running, message) == ["accepted", "delivered", "clicked"]


def test_per_message_options_override_the_domain(running: Running, client: Client) -> None:
    client.domains_tracking_open.put(domain=DOMAIN, data={"active": "no"})
    client.domains_tracking_click.put(domain=DOMAIN, data={"active": "false"})
    tracked = send_id(
        running,
        to="ann+click@example.test",
        html=HTML,
        **{"o:tracking-opens": "yes", "o:tracking-clicks": "yes"},
    )
    wait_until(lambda: "clicked" in events_of(running, tracked))
    assert events_of(running, tracked) == ["accepted", "delivered", "opened", "clicked"]

    client.domains_tracking_open.put(domain=DOMAIN, data={"active": "yes"})
    client.domains_tracking_click.put(domain=DOMAIN, data={"active": "true"})
    untracked = send_id(running, to="bob+click@example.test", html=HTML, **{"o:tracking": "no"})
    wait_until(lambda: "delivered" in events_of(running, untracked))
    wait_for_clicked_of_a_later_message(running)
    assert events_of(running, untracked) == ["accepted", "delivered"]


def test_html_only_click_tracking_ignores_text_messages(running: Running, client: Client) -> None:
    client.domains_tracking_click.put(domain=DOMAIN, data={"active": "htmlonly"})
    text_only = send_id(running, to="ann+click@example.test", text="See https://x.example.test/")
    wait_until(lambda: "opened" in events_of(running, text_only))
    wait_for_clicked_of_a_later_message(running)
    assert events_of(running, text_only) == ["accepted", "delivered", "opened"]


def test_unsubscribe_tracking_adds_the_footer(running: Running, client: Client) -> None:
    plain = send_id(running, text="Hi %unsubscribe_url%")
    client.domains_tracking_unsubscribe.put(
        domain=DOMAIN,
        data={"active": "yes", "html_footer": '<p><a href="%unsubscribe_url%">stop</a></p>'},
    )
    footed = send_id(running, text="Hi", html="<p>Hi</p>")
    stored = requests.get(running.api("/messages"), timeout=5).json()
    by_id = {copy["message_id"]: copy for copy in stored}
    assert by_id[plain]["text"] == "Hi %unsubscribe_url%"  # off: left as written
    text, html = by_id[footed]["text"], by_id[footed]["html"]
    assert text.startswith("Hi\n\nTo unsubscribe click: <http://email.sandbox.tidings.test/u/")
    assert "%unsubscribe_url%" not in text + html
    assert html.startswith('<p>Hi</p><p><a href="http://email.sandbox.tidings.test/u/')

    client.domains_tracking_unsubscribe.put(
        domain=DOMAIN, data={"html_footer": "", "text_footer": ""}
    )
    placed = send_id(running, text="Leave: %unsubscribe_url% or %tag_unsubscribe_url%")
    copy = next(
        c
        for c in requests.get(running.api("/messages"), timeout=5).json()
        if c["message_id"] == placed
    )
    assert copy["text"].startswith("Leave: http://email.sandbox.tidings.test/u/")
    assert "?tags=1" in copy["text"]


def test_send_tracking_rules() -> None:
    domain_off = Tracking(open=False, click="false")
    assert send_tracking(domain_off, {}, True).opens is False
    assert send_tracking(domain_off, {"tracking": "yes"}, True).clicks is True
    both = send_tracking(Tracking(), {"tracking": "no", "tracking-opens": "yes"}, True)
    assert (both.opens, both.clicks) == (True, False)
    html_only = send_tracking(Tracking(), {"tracking-clicks": "htmlonly"}, False)
    assert html_only.clicks is False
