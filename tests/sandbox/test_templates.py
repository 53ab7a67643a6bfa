"""/v3/{domain}/templates and its versions through Mailgun's official SDK (sync and async
clients), and sends that render a stored template with Handlebars."""

from __future__ import annotations

import json
from typing import Any

import pytest
import requests
from mailgun.client import AsyncClient
from mailgun.config import RetryPolicy

from tests.sandbox.conftest import DOMAIN, KEY, Running, basic_message, sdk, send, wait_until

AUTH = ("api", KEY)


def stored(running: Running) -> list[dict[str, Any]]:
    result: list[dict[str, Any]] = requests.get(running.api("/messages")).json()
    return result


def create(running: Running, **data: str) -> requests.Response:
    with sdk(running.base) as mailgun:
        response: requests.Response = mailgun.templates.create(domain=DOMAIN, data=data)
        return response


def test_create_with_an_initial_version_then_get_list_update_delete(running: Running) -> None:
    with sdk(running.base) as mailgun:
        created = mailgun.templates.create(
            domain=DOMAIN,
            data={
                "name": "Welcome",
                "description": "first mail",
                "template": "<p>Hi {{name}}</p>",
                "comment": "v1",
            },
        )
        assert created.status_code == 200
        body = created.json()
        assert body["message"] == "template has been stored"
        assert body["template"]["name"] == "welcome"  # Mailgun lower-cases names
        assert body["template"]["description"] == "first mail"
        version = body["template"]["version"]
        assert version["tag"] == "initial"  # the default tag of the initial version
        assert version["engine"] == "handlebars"
        assert version["comment"] == "v1"
        assert version["active"] is True
        assert version["createdAt"].endswith(" UTC")

        plain = mailgun.templates.get(domain=DOMAIN, template_name="welcome")
        assert plain.status_code == 200
        assert "version" not in plain.json()["template"]
        active = mailgun.templates.get(
            domain=DOMAIN, template_name="welcome", filters={"active": "yes"}
        )
        assert active.json()["template"]["version"]["template"] == "<p>Hi {{name}}</p>"

        updated = mailgun.templates.put(
            domain=DOMAIN, template_name="welcome", data={"description": "new words"}
        )
        assert updated.json() == {
            "message": "template has been updated",
            "template": {"name": "welcome"},
        }
        listed = mailgun.templates.get(domain=DOMAIN)
        assert [t["description"] for t in listed.json()["items"]] == ["new words"]

        deleted = mailgun.templates.delete(domain=DOMAIN, template_name="welcome")
        assert deleted.json() == {
            "message": "template has been deleted",
            "template": {"name": "welcome"},
        }
        missing = mailgun.templates.get(domain=DOMAIN, template_name="welcome")
        assert missing.status_code == 404
        assert missing.json() == {"message": "template not found"}


def test_listing_pages_with_page_p_and_limit(running: Running) -> None:
    for name in ("e", "b", "d", "a", "c"):
        assert create(running, name=name).status_code == 200
    with sdk(running.base) as mailgun:
        first = mailgun.templates.get(domain=DOMAIN, filters={"limit": 2}).json()
        assert [t["name"] for t in first["items"]] == ["a", "b"]
        seen = [t["name"] for t in first["items"]]
        url = first["paging"]["next"]
        assert url.startswith(f"{running.base}/v3/{DOMAIN}/templates?")
        while True:
            page = requests.get(url, auth=AUTH).json()
            if not page["items"]:
                break
            seen += [t["name"] for t in page["items"]]
            url = page["paging"]["next"]
        assert seen == ["a", "b", "c", "d", "e"]
        last = mailgun.templates.get(domain=DOMAIN, filters={"page": "last", "limit": 2}).json()
        assert [t["name"] for t in last["items"]] == ["d", "e"]
        back = requests.get(last["paging"]["previous"], auth=AUTH).json()
        assert [t["name"] for t in back["items"]] == ["b", "c"]

        no_pivot = mailgun.templates.get(domain=DOMAIN, filters={"page": "next"})
        assert no_pivot.json() == {"message": "Invalid parameter: pivot "}
        bad = mailgun.templates.get(domain=DOMAIN, filters={"limit": 101})
        assert bad.status_code == 400
        assert "limit" in bad.json()["message"]

        cleared = mailgun.templates.delete(domain=DOMAIN)
        assert cleared.json() == {"message": "templates have been deleted"}
        assert mailgun.templates.get(domain=DOMAIN).json()["items"] == []


def test_versions_create_list_get_update_copy_delete(running: Running) -> None:
    create(running, name="order", template="v1 {{n}}", tag="v1")
    with sdk(running.base) as mailgun:

        def versions(**kw: Any) -> Any:
            return mailgun.templates.get(
                domain=DOMAIN, template_name="order", versions=True, **kw
            ).json()

        made = mailgun.templates.create(
            domain=DOMAIN,
            template_name="order",
            versions=True,
            data={"tag": "v2", "template": "v2 {{n}}", "comment": "second", "active": "yes"},
        )
        assert made.status_code == 200
        assert made.json()["message"] == "new version of the template has been stored"
        assert made.json()["template"]["version"]["tag"] == "v2"

        listed = versions()
        assert [(v["tag"], v["active"]) for v in listed["template"]["versions"]] == [
            ("v1", False),
            ("v2", True),
        ]
        assert "paging" in listed

        one = versions(tag="v1")["template"]["version"]
        assert one["template"] == "v1 {{n}}" and one["active"] is False

        changed = mailgun.templates.put(
            domain=DOMAIN,
            template_name="order",
            versions=True,
            tag="v1",
            data={"template": "v1b {{n}}", "active": "yes", "comment": "back"},
        )
        assert changed.json() == {
            "message": "version has been updated",
            "template": {"name": "order", "version": {"tag": "v1"}},
        }
        active = mailgun.templates.get(
            domain=DOMAIN, template_name="order", filters={"active": "yes"}
        ).json()["template"]["version"]
        assert (active["tag"], active["template"]) == ("v1", "v1b {{n}}")

        stuck = mailgun.templates.put(
            domain=DOMAIN, template_name="order", versions=True, tag="v1", data={"active": "no"}
        )
        assert stuck.status_code == 400
        assert "cannot be deactivated" in stuck.json()["message"]

        copied = mailgun.templates.put(
            domain=DOMAIN,
            template_name="order",
            versions=True,
            tag="v1",
            copy=True,
            new_tag="v3",
            filters={"comment": "copied"},
        )
        assert copied.status_code == 200
        assert copied.json()["message"] == "version has been copied"
        assert copied.json()["version"]["tag"] == "v3"
        assert versions(tag="v3")["template"]["version"]["template"] == "v1b {{n}}"
        assert versions(tag="v3")["template"]["version"]["comment"] == "copied"

        gone = mailgun.templates.delete(
            domain=DOMAIN, template_name="order", versions=True, tag="v2"
        )
        assert gone.json()["message"] == "version has been deleted"
        assert [v["tag"] for v in versions()["template"]["versions"]] == ["v1", "v3"]
        missing = mailgun.templates.get(
            domain=DOMAIN, template_name="order", versions=True, tag="v2"
        )
        assert missing.status_code == 404
        assert missing.json() == {"message": "template version not found"}


@pytest.mark.parametrize(
    ("data", "status", "needle"),
    [
        ({"description": "no name"}, 400, "Missing mandatory parameter: name"),
        ({"name": "two words"}, 400, "Invalid parameter: name is invalid"),
        ({"name": "x", "tag": "v1"}, 400, "Missing mandatory parameter: template"),
        ({"name": "x", "colour": "red"}, 400, "'colour'"),
        ({"name": "x", "template": "{{/if}}"}, 400, "not valid Handlebars"),
        ({"name": "x", "template": "hi", "engine": "go"}, 400, "engine go is not supported"),
        ({"name": "x", "template": "hi", "headers": '{"X-Foo": "1"}'}, 400, "'X-Foo'"),
        ({"name": "x", "template": "x" * (100 * 1024 + 1)}, 400, "larger than 100 kB"),
    ],
)
def test_bad_template_fields_are_refused_naming_them(
    running: Running, data: dict[str, str], status: int, needle: str
) -> None:
    response = create(running, **data)
    assert response.status_code == status
    assert needle in response.json()["message"]


def test_duplicates_unknown_domain_and_auth(running: Running) -> None:
    assert create(running, name="dup").status_code == 200
    again = create(running, name="DUP")
    assert again.status_code == 409
    assert again.json() == {"message": "template with name 'dup' already exists"}
    other = requests.get(f"{running.base}/v3/other.test/templates", auth=AUTH)
    assert other.status_code == 404
    assert other.json() == {"message": "Domain not found: other.test"}
    anonymous = requests.get(f"{running.base}/v3/{DOMAIN}/templates")
    assert anonymous.status_code == 401
    assert anonymous.text == "Forbidden"


async def test_the_async_client_manages_templates_and_versions(running: Running) -> None:
    async with AsyncClient(
        auth=AUTH, api_url=running.base, retry_policy=RetryPolicy(max_retries=0)
    ) as mailgun:
        made = await mailgun.templates.create(
            domain=DOMAIN, data={"name": "async", "template": "A {{x}}", "tag": "a"}
        )
        assert made.status_code == 200
        version = await mailgun.templates.create(
            domain=DOMAIN,
            template_name="async",
            versions=True,
            data={"tag": "b", "template": "B {{x}}", "active": "yes"},
        )
        assert version.status_code == 200
        got = await mailgun.templates.get(
            domain=DOMAIN, template_name="async", filters={"active": "yes"}
        )
        assert got.json()["template"]["version"]["tag"] == "b"
        listed = await mailgun.templates.get(domain=DOMAIN)
        assert [t["name"] for t in listed.json()["items"]] == ["async"]
        deleted = await mailgun.templates.delete(domain=DOMAIN, template_name="async")
        assert deleted.status_code == 200


# -- sends that render a stored template --------------------------------------------------


def test_a_send_renders_the_active_version_with_handlebars(running: Running) -> None:
    create(
        running,
        name="receipt",
        template="<p>Hi {{name}}</p><ul>{{#each items}}<li>{{this.title}}</li>{{/each}}</ul>"
        "{{#if vip}}<b>VIP</b>{{/if}}",
        headers=json.dumps({"Subject": "Receipt for {{name}}", "From": "Shop <shop@x.test>"}),
    )
    variables = {"name": "<Ann>", "items": [{"title": "Tea"}, {"title": "Cake"}], "vip": True}
    response = send(
        running.base,
        {"to": "ann@example.test", "template": "receipt", "t:variables": json.dumps(variables)},
    )
    assert response.status_code == 200
    [copy] = stored(running)
    # {{x}} is HTML-escaped, as Handlebars does; blocks and helpers work.
    assert copy["html"] == ("<p>Hi &lt;Ann&gt;</p><ul><li>Tea</li><li>Cake</li></ul><b>VIP</b>")
    assert copy["text"] is None  # no t:text: no text part
    assert copy["subject"] == "Receipt for &lt;Ann&gt;"
    assert copy["from"] == "Shop <shop@x.test>"
    assert copy["template"] == "receipt"


def test_t_version_t_text_and_x_mailgun_variables(running: Running) -> None:
    create(running, name="news", template="<h1>{{title}}</h1>", tag="one")
    with sdk(running.base) as mailgun:
        mailgun.templates.create(
            domain=DOMAIN,
            template_name="news",
            versions=True,
            data={"tag": "two", "template": "<h2>{{title}} &amp; {{tags.[0]}}</h2>"},
        )
    data = basic_message(template="news")
    del data["text"]
    data["t:version"] = "two"
    data["t:text"] = "yes"
    data["h:X-Mailgun-Variables"] = json.dumps({"title": "Hello", "tags": ["new"]})
    response = send(running.base, data)
    assert response.status_code == 200
    [copy] = stored(running)
    assert copy["html"] == "<h2>Hello &amp; new</h2>"
    assert copy["text"] == "Hello & new"
    assert copy["subject"] == "Hello"  # the send's own subject wins over the template's


def test_batch_sends_render_each_recipient_with_its_own_variables(running: Running) -> None:
    create(running, name="hi", template="Hi {{name}}")
    data = {
        "from": f"noreply@{DOMAIN}",
        "to": ["ann@example.test", "bob@example.test"],
        "subject": "Hi",
        "template": "hi",
        "v:name": "%recipient.name%",
        "recipient-variables": json.dumps(
            {"ann@example.test": {"name": "Ann"}, "bob@example.test": {"name": "Bob"}}
        ),
    }
    assert send(running.base, data).status_code == 200
    html = {c["recipient"]: c["html"] for c in stored(running)}
    assert html == {"ann@example.test": "Hi Ann", "bob@example.test": "Hi Bob"}


def test_an_unknown_template_or_version_is_a_400_and_a_rejected_event(running: Running) -> None:
    unknown = send(running.base, {"to": "ann@example.test", "template": "nope"})
    assert unknown.status_code == 400
    assert unknown.json() == {"message": "template not found"}
    create(running, name="known", template="x")
    version = send(
        running.base, {"to": "ann@example.test", "template": "known", "t:version": "zzz"}
    )
    assert version.status_code == 400
    assert version.json() == {"message": "template version not found"}
    assert stored(running) == []
    with sdk(running.base) as mailgun:
        items = wait_until(
            lambda: mailgun.events.get(
                domain=DOMAIN, filters={"event": "rejected", "ascending": "yes"}
            ).json()["items"]
        )
    assert [item["reject"]["reason"] for item in items] == [
        "template not found",
        "template version not found",
    ]
    assert all("recipient" not in item for item in items)


def test_t_options_without_a_template_and_unknown_t_options_are_refused(
    running: Running,
) -> None:
    alone = send(running.base, basic_message(**{"t:text": "yes"}))
    assert alone.status_code == 400
    assert alone.json() == {"message": "'t:text' parameter needs the 'template' parameter"}
    unknown = send(running.base, basic_message(**{"t:colour": "red"}))
    assert unknown.status_code == 400
    assert unknown.json() == {"message": "'t:colour' parameter is not supported"}


def test_rendering_is_bounded(running: Running) -> None:
    # Three nested loops over 100 items run a million blocks: refused, not a hang.
    create(
        running,
        name="bomb",
        template="{{#each a}}{{#each ../a}}{{#each ../../a}}x{{/each}}{{/each}}{{/each}}",
    )
    response = send(
        running.base,
        {
            "to": "ann@example.test",
            "template": "bomb",
            "t:variables": json.dumps({"a": list(range(100))}),
        },
    )
    assert response.status_code == 400
    assert response.json()["message"].startswith("template cannot be rendered:")
    create(running, name="partial", template="{{> secrets}}")
    partial = send(running.base, {"to": "ann@example.test", "template": "partial"})
    assert partial.status_code == 400
    assert stored(running) == []
