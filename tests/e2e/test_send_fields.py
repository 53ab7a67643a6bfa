"""Every /send field Courier documents is honoured or refused with a 400 naming it (through
the SDK): nothing is accepted with a 202 and then ignored."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import parse_qs, urlsplit

import courier
import pytest

from tests.e2e.conftest import RunningSandbox, RunningTidings

BASE: dict[str, Any] = {
    "to": {"email": "fields@example.test"},
    "content": {"title": "t", "body": "b"},
}


@pytest.mark.parametrize(
    ("extra", "needle"),
    [
        ({"context": {"tenant_id": "t1"}}, "message.context.tenant_id: tenants are not supported"),
        ({"delay": {"timezone": "America/New_York"}}, "message.delay.timezone"),
        (
            # Honoured now, so a topic that does not exist is refused by name.
            {"preferences": {"subscription_topic_id": "news"}},
            "message.preferences.subscription_topic_id: no subscription topic 'news'",
        ),
        ({"to": {"list_id": "every..one"}}, "message.to.list_id is not a list id"),
        (
            {"to": {"list_id": "x", "user_id": "u"}},
            "message.to.user_id is not a field of a list_id",
        ),
        ({"to": {"list_id": "x", "filters": [{"operator": "MEMBER_OF"}]}}, "message.to.filters"),
        ({"to": {"audience_id": "vips"}}, "message.to.audience_id: there is no audience 'vips'"),
        (
            {"to": [{"email": "a@example.test"}, {"list_pattern": "eng.**.x"}]},
            "message.to[1].list_pattern is not a list pattern",
        ),
        ({"to": {"list_id": "a", "list_pattern": "b.*"}}, "give one of list_id, list_pattern"),
        ({"to": {"email": "a@example.test", "context": {"x": 1}}}, "message.to.context.x"),
        ({"to": {"email": "a@example.test", "preferences": {"x": 1}}}, "message.to.preferences"),
        (
            {"to": {"phone_number": "+15555550100"}},
            "message.to.phone_number: Tidings sends email only",
        ),
        ({"to": {"slack": {"access_token": "x", "email": "a@b.c"}}}, "message.to.slack"),
        ({"timeout": {"escalation": 1000}}, "message.timeout.escalation"),
        ({"timeout": {"criteria": "delivered"}}, "message.timeout.criteria"),
        ({"channels": {"sms": {"brand_id": "acme"}}}, "message.channels.sms.brand_id"),
        ({"providers": {"sendgrid": {"override": {}}}}, "'sendgrid' is not a provider Tidings has"),
        (
            {"providers": {"mailgun": {"metadata": {"utm": {"source": "x"}}}}},
            "message.providers.mailgun.metadata.utm",
        ),
        ({"metadata": {"utm": {"source": "x", "channel": "y"}}}, "message.metadata.utm.channel"),
        ({"metadata": {"colour": "red"}}, "message.metadata.colour"),
        ({"surprise": True}, "message.surprise: not a field Courier defines"),
        ({"brand_id": "no-such-brand"}, "message.brand_id: there is no brand 'no-such-brand'"),
        ({"template": "welcome"}, "give either content or template, not both"),
    ],
)
def test_unhonoured_fields_are_refused_naming_them(
    tidings_with_mailgun: RunningTidings, extra: dict[str, Any], needle: str
) -> None:
    client = tidings_with_mailgun.courier()
    with pytest.raises(courier.BadRequestError) as raised:
        client.send.message(message={**BASE, **extra})
    body = raised.value.body
    assert isinstance(body, dict) and needle in body["message"], body
    assert client.messages.list().results == []


def test_brand_id_and_utm_are_honoured(
    tidings_with_mailgun: RunningTidings, mailgun_sandbox: RunningSandbox
) -> None:
    server = tidings_with_mailgun
    client = server.courier()
    client.brands.create(
        id="acme",
        name="Acme",
        settings={
            "colors": {"primary": "#0a7d3b"},
            "email": {"header": {"logo": {"image": "https://cdn.acme.test/l.png"}}},
        },
    )
    sent = client.send.message(
        message={
            "to": {"email": "utm@example.test"},
            "brand_id": "acme",
            "content": {
                "version": "2022-01-01",
                "elements": [
                    {"type": "meta", "title": "Offer"},
                    {"type": "action", "content": "Shop", "href": "https://shop.test/a?x=1"},
                    {
                        "type": "text",
                        "content": "[Mine](https://shop.test/b?utm_source=keep)",
                        "format": "markdown",
                    },
                ],
            },
            "metadata": {"utm": {"source": "newsletter", "campaign": "dec"}},
            "channels": {"email": {"metadata": {"utm": {"medium": "email"}}}},
        }
    ).request_id
    server.wait_status(sent, "SENT", "DELIVERED")
    (copy,) = {
        m["id"]: m for m in mailgun_sandbox.messages() if "utm@example.test" in m["to"]
    }.values()
    html = copy["html"]
    assert "https://cdn.acme.test/l.png" in html and "#0a7d3b" in html.lower()
    links = {
        urlsplit(href).path: parse_qs(urlsplit(href).query)
        for href in re.findall(r'href="(https://shop\.test[^"]+)"', html.replace("&amp;", "&"))
    }
    assert links["/a"] == {
        "x": ["1"],
        "utm_source": ["newsletter"],
        "utm_medium": ["email"],
        "utm_campaign": ["dec"],
    }
    assert links["/b"]["utm_source"] == ["keep"] and links["/b"]["utm_campaign"] == ["dec"]
    assert "utm_campaign=dec" in copy["text"]
