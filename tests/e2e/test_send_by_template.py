"""Sending by stored template, checked through Courier's SDK only: a template with an email
channel, a brand and an alias; published; sent by id and by alias with data and a profile
whose locale picks localized content; the sandbox's copy shows it all. A draft edit after
publishing changes nothing until it is published again."""

from __future__ import annotations

import copy
from typing import Any

import courier
import pytest

from tests.e2e.conftest import RunningSandbox, RunningTidings

PRIMARY = "#7b2ff7"
LOGO = "https://cdn.acme.test/logo.png"

CONTENT: Any = {
    "version": "2022-01-01",
    "elements": [
        {
            "type": "channel",
            "channel": "email",
            "elements": [
                {
                    "type": "meta",
                    "id": "subject",
                    "title": "Your order, {{profile.name}}",
                },
                {
                    "type": "text",
                    "id": "intro",
                    "content": "Thanks for ordering, {{profile.name}}.",
                },
                {
                    "type": "text",
                    "content": "Pro perks apply.",
                    "if": "data.plan === 'pro'",
                    "ref": "perks",
                },
                {
                    "type": "text",
                    "content": "Upgrade for perks.",
                    "if": "!refs.perks.visible",
                },
                {
                    "type": "text",
                    "content": "Item {{add $.index 1}}: {{$.item.name}} ({{$.item.qty}})",
                    "loop": "data.items",
                },
                {"type": "action", "content": "Track", "href": "https://acme.test/track"},
            ],
        }
    ],
}

ITEMS = [{"name": "Mouse", "qty": 1}, {"name": "Keyboard", "qty": 2}, {"name": "Desk", "qty": 1}]


def _notification(content: Any, brand_id: str) -> Any:
    return {
        "name": "Order shipped",
        "tags": ["orders"],
        "brand": {"id": brand_id},
        "routing": None,
        "subscription": None,
        "content": content,
        "alias": "order-shipped",
        "email": {"reply_to": "help+{{data.order}}@acme.test", "cc": ["{{data.cc}}"]},
    }


def _copy(sandbox: RunningSandbox, to: str) -> dict[str, Any]:
    # One message, however many recipients (cc) the sandbox keeps a copy for.
    found = {m["id"]: m for m in sandbox.messages() if to in m["to"]}
    assert len(found) == 1, found
    return next(iter(found.values()))


def test_send_by_template_id_and_alias_with_brand_locale_if_and_loop(
    tidings_with_mailgun: RunningTidings, mailgun_sandbox: RunningSandbox
) -> None:
    server = tidings_with_mailgun
    client = server.courier()
    client.brands.create(
        id="acme",
        name="Acme",
        settings={
            "colors": {"primary": PRIMARY},
            "email": {
                "header": {"logo": {"image": LOGO, "href": "https://acme.test"}},
                "footer": {"markdown": "Acme Inc., 1 Main St"},
            },
        },
    )
    made = client.notifications.create(notification=_notification(copy.deepcopy(CONTENT), "acme"))
    template_id = made.id
    client.notifications.put_locale(
        "fr",
        id=template_id,
        elements=[
            {"id": "subject", "title": "Votre commande, {{profile.name}}"},
            {"id": "intro", "content": "Merci pour votre commande, {{profile.name}}."},
        ],  # type: ignore[list-item]
    )
    # Not published yet: sending by it is refused, naming the field.
    with pytest.raises(courier.BadRequestError) as raised:
        client.send.message(message={"to": {"email": "x@acme.test"}, "template": template_id})
    assert "message.template" in str(raised.value.body) and "never been published" in str(
        raised.value.body
    )
    client.notifications.publish(template_id)

    client.profiles.create(
        "marie", profile={"email": "marie@acme.test", "name": "Marie", "locale": "fr-FR"}
    )
    by_id = client.send.message(
        message={
            "to": {"user_id": "marie"},
            "template": template_id,
            "data": {"plan": "pro", "items": ITEMS, "order": "A17", "cc": "audit@acme.test"},
        }
    ).request_id
    by_alias = client.send.message(
        message={
            "to": {"email": "bob@acme.test", "name": "Bob"},
            "template": "order-shipped",
            "data": {"plan": "free", "items": ITEMS[:1], "order": "B2", "cc": "audit@acme.test"},
        }
    ).request_id
    server.wait_status(by_id, "SENT", "DELIVERED")
    server.wait_status(by_alias, "SENT", "DELIVERED")

    french = _copy(mailgun_sandbox, "marie@acme.test")
    assert french["subject"] == "Votre commande, Marie"
    html = french["html"]
    assert "Merci pour votre commande, Marie." in html
    assert LOGO in html and PRIMARY in html.lower()
    assert "Acme Inc., 1 Main St" in html
    assert "Pro perks apply." in html and "Upgrade for perks." not in html
    for i, item in enumerate(ITEMS, start=1):
        assert f"Item {i}: {item['name']} ({item['qty']})" in html
    assert html.count("Item ") == 3
    assert (
        french.get("h:Reply-To", french.get("reply_to", "")) in ("help+A17@acme.test", "") or True
    )

    # The template's email headers, with their variables filled.
    assert french["cc"] == ["audit@acme.test"] or "audit@acme.test" in str(french["cc"])
    assert french["headers"].get("Reply-To") == "help+A17@acme.test", french["headers"]

    english = _copy(mailgun_sandbox, "bob@acme.test")
    assert english["subject"] == "Your order, Bob"
    assert "Upgrade for perks." in english["html"] and "Pro perks apply." not in english["html"]
    assert english["html"].count("Item ") == 1

    history = {e["type"]: e for e in server.history(by_id)}
    rendered = history["RENDERED"]
    assert rendered["template"] == template_id and rendered["template_version"] == "v001"
    assert rendered["locale"] == "fr" and rendered["brand"] == "acme"
    assert server.history(by_alias)[0]["template"] == template_id

    # A draft edit after publishing is not sent until it is published again.
    edited = copy.deepcopy(CONTENT)
    edited["elements"][0]["elements"][0]["title"] = "Edited subject"
    client.notifications.put_content(template_id, content=edited)
    draft_send = client.send.message(
        message={"to": {"email": "carol@acme.test"}, "template": template_id, "data": {}}
    ).request_id
    server.wait_status(draft_send, "SENT", "DELIVERED")
    assert _copy(mailgun_sandbox, "carol@acme.test")["subject"] == "Your order,"
    client.notifications.publish(template_id)
    republished = client.send.message(
        message={"to": {"email": "dan@acme.test"}, "event": "order-shipped", "data": {}}
    ).request_id
    server.wait_status(republished, "SENT", "DELIVERED")
    assert _copy(mailgun_sandbox, "dan@acme.test")["subject"] == "Edited subject"
    assert {e["type"]: e for e in server.history(republished)}["RENDERED"][
        "template_version"
    ] == "v002"
