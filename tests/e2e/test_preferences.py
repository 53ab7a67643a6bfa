"""Subscription preferences through Courier's SDK against a running Tidings and the Mailgun
sandbox: topics and sections, users' choices (REQUIRED cannot be left), honoured at send
(an opted-out recipient is not sent to and the message says why, as Courier does), RFC 8058
one-click unsubscribe headers and links, and Mailgun's unsubscribe and complaint events."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import courier
import httpx
import pytest

from tests.e2e.conftest import RunningSandbox, RunningTidings

CONTENT: Any = {"title": "News {{data.n}}", "body": "Hello, here is issue {{data.n}}."}


def _topic(client: courier.Courier, status: str = "OPTED_IN", **extra: Any) -> tuple[str, str]:
    section = client.workspace_preferences.create(name="Marketing")
    topic = client.workspace_preferences.topics.create(
        section.id,
        default_status=status,
        name="Newsletter",
        **extra,  # type: ignore[arg-type]
    )
    return section.id, topic.id


def _copies(sandbox: RunningSandbox, to: str) -> list[dict[str, Any]]:
    return list({m["id"]: m for m in sandbox.messages() if to in m["to"]}.values())


def _send(client: courier.Courier, to: dict[str, Any], topic_id: str, n: int = 1) -> str:
    return client.send.message(
        message={
            "to": to,
            "content": CONTENT,
            "data": {"n": n},
            "preferences": {"subscription_topic_id": topic_id},
        }
    ).request_id


def _eventually(check: Callable[[], Any], timeout: float = 20) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(0.05)


def _unsubscribe_url(copy: dict[str, Any]) -> str:
    header = copy["headers"]["List-Unsubscribe"]
    return header.split(",")[0].strip().strip("<>")


def test_topics_and_user_preferences_through_the_sdk(
    tidings_with_mailgun: RunningTidings,
) -> None:
    client = tidings_with_mailgun.courier()
    section = client.workspace_preferences.create(
        name="Account",
        description="About your account",
        routing_options=["email"],
        idempotency_key="account-1",
    )
    again = client.workspace_preferences.create(
        name="Account",
        description="About your account",
        routing_options=["email"],
        idempotency_key="account-1",
    )
    assert again.id == section.id
    with pytest.raises(courier.ConflictError):
        client.workspace_preferences.create(name="Other", idempotency_key="account-1")
    assert section.topics == [] and section.routing_options == ["email"]
    news = client.workspace_preferences.topics.create(
        section.id,
        default_status="OPTED_IN",
        name="News",
        topic_data={"team": "growth"},
        allowed_preferences=["channel_preferences"],
    )
    security = client.workspace_preferences.topics.create(
        section.id, default_status="REQUIRED", name="Security", include_unsubscribe_header=False
    )
    assert news.include_unsubscribe_header is True and security.include_unsubscribe_header is False
    assert news.topic_data == {"team": "growth"} and news.digest is None
    got = client.workspace_preferences.retrieve(section.id)
    assert [t.id for t in got.topics] == [news.id, security.id]
    assert [s.id for s in client.workspace_preferences.list().results] == [section.id]
    listed = client.workspace_preferences.topics.list(section.id).results
    assert [t.name for t in listed] == ["News", "Security"]
    replaced = client.workspace_preferences.topics.replace(
        news.id, section_id=section.id, default_status="OPTED_OUT", name="News!"
    )
    # Full replacement: what was left out is cleared.
    assert replaced.default_status == "OPTED_OUT" and replaced.topic_data == {}
    assert replaced.allowed_preferences == []
    renamed = client.workspace_preferences.replace(section.id, name="Your account")
    assert renamed.name == "Your account" and renamed.description is None
    assert len(renamed.topics) == 2
    with pytest.raises(courier.ConflictError):
        client.workspace_preferences.archive(section.id)
    with pytest.raises(courier.BadRequestError) as refused:
        client.workspace_preferences.topics.create(
            section.id,
            default_status="OPTED_IN",
            name="Digest",
            digest={"template_id": "t", "schedules": []},  # type: ignore[typeddict-item]
        )
    assert "digest" in str(refused.value.body)
    with pytest.raises(courier.NotFoundError):
        client.workspace_preferences.topics.retrieve("tp_nothing", section_id=section.id)

    prefs = client.users.preferences
    # No choice yet: the topic's default.
    assert prefs.retrieve_topic(news.id, user_id="ann").topic.status == "OPTED_OUT"
    assert prefs.retrieve("ann").items == []
    prefs.update_or_create_topic(
        news.id,
        user_id="ann",
        topic={"status": "OPTED_IN", "has_custom_routing": True, "custom_routing": ["email"]},
    )
    one = prefs.retrieve_topic(news.id, user_id="ann").topic
    assert (one.status, one.default_status, one.custom_routing) == (
        "OPTED_IN",
        "OPTED_OUT",
        ["email"],
    )
    assert one.section_id == section.id and one.section_name == "Your account"
    # REQUIRED cannot be opted out of, one topic at a time or in bulk.
    with pytest.raises(courier.BadRequestError) as required:
        prefs.update_or_create_topic(security.id, user_id="ann", topic={"status": "OPTED_OUT"})
    assert security.id in str(required.value.body) and "REQUIRED" in str(required.value.body)
    with pytest.raises(courier.BadRequestError):
        prefs.update_or_create_topic(news.id, user_id="ann", topic={"status": "REQUIRED"})
    bulk = prefs.bulk_update(
        "ann",
        topics=[
            {"topic_id": news.id, "status": "OPTED_OUT"},
            {"topic_id": security.id, "status": "OPTED_OUT"},
        ],
    )
    assert [i.topic_id for i in bulk.items] == [news.id]
    assert [e.topic_id for e in bulk.errors] == [security.id]
    assert "REQUIRED" in bulk.errors[0].reason
    assert [(i.topic_id, i.status) for i in prefs.retrieve("ann").items] == [(news.id, "OPTED_OUT")]
    replaced_all = prefs.bulk_replace("ann", topics=[])
    assert replaced_all.deleted == [news.id] and replaced_all.items == []
    prefs.update_or_create_topic(news.id, user_id="ann", topic={"status": "OPTED_IN"})
    prefs.delete_topic(news.id, user_id="ann")
    assert prefs.retrieve_topic(news.id, user_id="ann").topic.status == "OPTED_OUT"
    with pytest.raises(courier.BadRequestError):
        prefs.retrieve("ann", tenant_id="acme")

    logs = client.workspace_preferences.list_logs(user_id="ann", limit=2)
    assert len(logs.items) == 2 and logs.paging.more and logs.paging.cursor
    newest = logs.items[0]
    assert newest.topic_id == news.id and newest.status == "OPTED_OUT"  # the reset
    assert newest.previous is not None and newest.previous.status == "OPTED_IN"
    rest = client.workspace_preferences.list_logs(user_id="ann", cursor=logs.paging.cursor)
    assert not rest.paging.more and len(logs.items) + len(rest.items) == 5
    with pytest.raises(courier.BadRequestError) as unsupported:
        client.workspace_preferences.publish()
    assert "hosted preferences page" in str(unsupported.value.body)

    client.workspace_preferences.topics.archive(news.id, section_id=section.id)
    client.workspace_preferences.topics.archive(security.id, section_id=section.id)
    client.workspace_preferences.archive(section.id)
    with pytest.raises(courier.NotFoundError):
        client.workspace_preferences.retrieve(section.id)


def test_opted_out_recipient_is_filtered_and_one_click_opts_out(
    tidings_with_mailgun: RunningTidings, mailgun_sandbox: RunningSandbox
) -> None:
    server = tidings_with_mailgun
    client = server.courier()
    _section, topic_id = _topic(client)
    client.profiles.create("ann", profile={"email": "ann@acme.test"})
    client.profiles.create("bob", profile={"email": "bob@acme.test"})
    client.users.preferences.update_or_create_topic(
        topic_id, user_id="ann", topic={"status": "OPTED_OUT"}
    )

    skipped = _send(client, {"user_id": "ann"}, topic_id)
    details = server.wait_status(skipped, "FILTERED")
    assert (details["status"], details["reason"]) == ("FILTERED", "UNSUBSCRIBED")
    message = client.messages.retrieve(skipped)
    assert message.status == "FILTERED" and message.reason == "UNSUBSCRIBED"
    filtered = [h for h in server.history(skipped) if h["type"] == "FILTERED"]
    assert len(filtered) == 1 and filtered[0]["topic_id"] == topic_id
    assert "OPTED_OUT" in filtered[0]["error_message"] and filtered[0]["source"] == "recipient"
    assert _copies(mailgun_sandbox, "ann@acme.test") == []

    # Bob has chosen nothing: the topic's default (OPTED_IN) sends, with RFC 8058 headers.
    sent = _send(client, {"user_id": "bob"}, topic_id)
    server.wait_status(sent, "DELIVERED")
    (copy,) = _copies(mailgun_sandbox, "bob@acme.test")
    assert copy["headers"]["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    url = _unsubscribe_url(copy)
    assert url.startswith(f"{server.url}/unsubscribe/")
    assert any(h["type"] == "PREFERENCES" for h in server.history(sent))

    # A forged or altered token is refused, saying no more than that.
    token = url.rsplit("/", 1)[1]
    version, body, mac = token.split(".")
    other = mac[:-1] + ("A" if mac[-1] != "A" else "B")
    for forged in (f"{version}.{body}.{other}", "u1.bm9wZQ.bm9wZQ", "garbage"):
        answer = httpx.post(
            f"{server.url}/unsubscribe/{forged}", data={"List-Unsubscribe": "One-Click"}
        )
        assert answer.status_code == 400 and "not valid" in answer.text
    assert client.users.preferences.retrieve("bob").items == []

    # What a mail client does: POST the body RFC 8058 gives, no key, no login. Twice.
    for _ in range(2):
        answer = httpx.post(url, data={"List-Unsubscribe": "One-Click"})
        assert answer.status_code == 200, answer.text
    (choice,) = client.users.preferences.retrieve("bob").items
    assert (choice.topic_id, choice.status) == (topic_id, "OPTED_OUT")
    logged = client.workspace_preferences.list_logs(user_id="bob").items
    assert len(logged) == 1  # idempotent: the second POST changed nothing

    after = _send(client, {"user_id": "bob"}, topic_id, n=2)
    assert server.wait_status(after, "FILTERED")["reason"] == "UNSUBSCRIBED"
    assert len(_copies(mailgun_sandbox, "bob@acme.test")) == 1


def test_mailto_and_no_public_url(
    start_tidings: Callable[..., RunningTidings], mailgun_sandbox: RunningSandbox
) -> None:
    server = start_tidings(public_url=None, unsubscribe_mailto="unsub@acme.test")
    server.add_provider(mailgun_sandbox, alias="main")
    client = server.courier()
    _section, topic_id = _topic(client)
    sent = _send(client, {"email": "cat@acme.test"}, topic_id)
    server.wait_status(sent, "DELIVERED")
    (copy,) = _copies(mailgun_sandbox, "cat@acme.test")
    # No address recipients could reach: the mailto alone, and no one-click POST.
    assert copy["headers"]["List-Unsubscribe"] == "<mailto:unsub@acme.test>"
    assert "List-Unsubscribe-Post" not in copy["headers"]
    (note,) = [h for h in server.history(sent) if h["type"] == "PREFERENCES"]
    assert "TIDINGS_PUBLIC_URL is not set" in note["unsubscribe"]


def test_template_topic_default_opted_out_and_required(
    tidings_with_mailgun: RunningTidings, mailgun_sandbox: RunningSandbox
) -> None:
    server = tidings_with_mailgun
    client = server.courier()
    section, offers = _topic(client, "OPTED_OUT")
    required = client.workspace_preferences.topics.create(
        section, default_status="REQUIRED", name="Receipts"
    ).id
    content: Any = {
        "version": "2022-01-01",
        "elements": [
            {
                "type": "channel",
                "channel": "email",
                "elements": [
                    {"type": "meta", "title": "Offer"},
                    {"type": "text", "content": "A deal"},
                ],
            }
        ],
    }

    def template(topic_id: str) -> str:
        made = client.notifications.create(
            notification={
                "name": f"t-{topic_id}",
                "tags": [],
                "brand": None,
                "routing": None,
                "subscription": {"topic_id": topic_id},
                "content": content,
            }
        )
        client.notifications.publish(made.id)
        return made.id

    offer_template, receipt_template = template(offers), template(required)
    client.users.preferences.update_or_create_topic(
        required, user_id="dan", topic={"status": "OPTED_IN"}
    )
    client.profiles.create("dan", profile={"email": "dan@acme.test"})
    # Nobody opted in to an opted-out-by-default topic: not sent, OPT_IN_REQUIRED.
    offer = client.send.message(
        message={"to": {"user_id": "dan"}, "template": offer_template}
    ).request_id
    assert server.wait_status(offer, "FILTERED")["reason"] == "OPT_IN_REQUIRED"
    # REQUIRED always sends, and offers no one-click opt-out it would have to refuse.
    receipt = client.send.message(
        message={"to": {"user_id": "dan"}, "template": receipt_template}
    ).request_id
    server.wait_status(receipt, "DELIVERED")
    (copy,) = _copies(mailgun_sandbox, "dan@acme.test")
    assert "List-Unsubscribe" not in copy["headers"]
    # message.preferences names a topic that must exist.
    with pytest.raises(courier.BadRequestError) as unknown:
        _send(client, {"user_id": "dan"}, "tp_nothing")
    assert "message.preferences.subscription_topic_id" in str(unknown.value.body)
    with pytest.raises(courier.BadRequestError) as extra:
        client.send.message(
            message={
                "to": {"user_id": "dan"},
                "content": CONTENT,
                "preferences": {"subscription_topic_id": offers, "x": 1},  # type: ignore[typeddict-unknown-key]
            }
        )
    assert "message.preferences.x" in str(extra.value.body)


@pytest.mark.parametrize("road", ["webhook", "poll"])
def test_mailgun_unsubscribe_and_complaint_opt_out(
    start_tidings: Callable[..., RunningTidings], mailgun_sandbox: RunningSandbox, road: str
) -> None:
    # By signed webhook (polling slower than the test), or by polling alone (no webhook).
    server = start_tidings(poll_interval_s=0.2 if road == "poll" else 3600)
    server.add_provider(mailgun_sandbox, alias="main")
    if road == "webhook":
        server.connect_webhooks()
    client = server.courier()
    section, news = _topic(client)
    other = client.workspace_preferences.topics.create(
        section, default_status="OPTED_IN", name="Tips"
    ).id
    required = client.workspace_preferences.topics.create(
        section, default_status="REQUIRED", name="Security"
    ).id
    client.profiles.create("eve", profile={"email": "eve+unsubscribe@acme.test"})
    client.profiles.create("fay", profile={"email": "fay+complain@acme.test"})
    _send(client, {"user_id": "eve"}, news)
    _send(client, {"user_id": "fay"}, news)

    def statuses(user: str) -> dict[str, str]:
        return {i.topic_id: i.status for i in client.users.preferences.retrieve(user).items}

    # Unsubscribed: out of the message's topic only.
    assert _eventually(lambda: statuses("eve")) == {news: "OPTED_OUT"}
    # Complained: out of every topic that can be left; REQUIRED stays.
    assert _eventually(lambda: len(statuses("fay")) == 2)
    assert statuses("fay") == {news: "OPTED_OUT", other: "OPTED_OUT"}
    assert required not in statuses("fay")
    (entry,) = client.workspace_preferences.list_logs(user_id="eve").items
    assert entry.topic_id == news
    (message,) = client.messages.list(recipient="eve").results
    notes = [h for h in server.history(message.id) if h["type"] == "PREFERENCES"]
    assert any("opted eve out of Newsletter" in (h.get("note") or "") for h in notes), notes


def test_sandbox_mode_links_to_the_local_server(
    start_tidings: Callable[..., RunningTidings],
) -> None:
    # `tidings serve` with no Mailgun and no TIDINGS_PUBLIC_URL: nothing leaves the machine,
    # so the one-click link is on the local address, and works from the sandbox's copy.
    server = start_tidings(sandbox=True, public_url=None)
    client = server.courier()
    _section, topic_id = _topic(client)
    sent = _send(client, {"email": "gus@acme.test"}, topic_id)
    server.wait_status(sent, "DELIVERED")
    copies = httpx.get(f"{server.url}/sandbox/api/messages", timeout=10).json()
    (copy,) = [m for m in copies if "gus@acme.test" in m["to"]]
    url = _unsubscribe_url(copy)
    assert url.startswith(f"{server.url}/unsubscribe/")
    assert httpx.post(url, data={"List-Unsubscribe": "One-Click"}).status_code == 200
    (choice,) = client.users.preferences.retrieve("gus@acme.test").items
    assert choice.status == "OPTED_OUT"
    again = _send(client, {"email": "GUS@acme.test"}, topic_id, n=2)
    assert server.wait_status(again, "FILTERED")["reason"] == "UNSUBSCRIBED"
