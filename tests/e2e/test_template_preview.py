"""Previews: ``POST /tidings/templates/{id}/render`` and ``tidings templates render`` render
a template version for a user without sending; draft and published versions differ."""

from __future__ import annotations

import copy
from typing import Any

from typer.testing import CliRunner, Result

from tests.e2e.conftest import RunningSandbox, RunningTidings
from tidings.cli import app

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
                    "title": "Hi {{profile.name}}",
                    "locales": {"de": {"title": "Hallo {{profile.name}}"}},
                },
                {"type": "text", "content": "Order {{order}}: {{add count 1}} items"},
                {"type": "text", "content": "VIP", "if": "profile.vip === true"},
            ],
        }
    ],
}


def _template(server: RunningTidings) -> str:
    client = server.courier()
    made = client.notifications.create(
        notification={
            "name": "Preview me",
            "tags": [],
            "brand": None,
            "routing": None,
            "subscription": None,
            "content": copy.deepcopy(CONTENT),
        }
    )
    client.notifications.publish(made.id)
    edited = copy.deepcopy(CONTENT)
    edited["elements"][0]["elements"][1]["content"] = "Draft {{order}}"
    client.notifications.put_content(made.id, content=edited)
    client.profiles.create("ann", profile={"email": "ann@example.test", "name": "Ann", "vip": True})
    return made.id


def run(server: RunningTidings, *args: str) -> Result:
    env = {"TIDINGS_URL": server.url, "TIDINGS_API_KEY": server.api_key, "COLUMNS": "200"}
    return CliRunner().invoke(app, list(args), env=env)


def test_preview_route_renders_without_sending(
    tidings_with_mailgun: RunningTidings, mailgun_sandbox: RunningSandbox
) -> None:
    server = tidings_with_mailgun
    template_id = _template(server)
    with server.http() as http:
        answer = http.post(
            f"/tidings/templates/{template_id}/render",
            json={"data": {"order": "A1", "count": 2}, "user_id": "ann"},
        )
        assert answer.status_code == 200, answer.text
        body = answer.json()
        assert body["subject"] == "Hi Ann" and body["version"] == "v001"
        assert "Order A1: 3 items" in body["text"] and "VIP" in body["text"]
        assert body["locale"] == "default" and "<html" in body["html"]

        german = http.post(
            f"/tidings/templates/{template_id}/render",
            json={"user_id": "ann", "locale": "de-AT", "version": "draft", "data": {"order": 7}},
        ).json()
        assert german["subject"] == "Hallo Ann" and german["locale"] == "de"
        assert german["version"] == "draft" and "Draft 7" in german["text"]

        for body_, status, needle in [
            ({"user_id": "nobody"}, 400, "user_id"),
            ({"version": "v009"}, 404, "v009"),
            ({"surprise": 1}, 400, "surprise"),
        ]:
            bad = http.post(f"/tidings/templates/{template_id}/render", json=body_)
            assert bad.status_code == status and needle in bad.text, bad.text
        assert http.post("/tidings/templates/nt_nope/render", json={}).status_code == 404
    assert mailgun_sandbox.messages() == []
    assert server.courier().messages.list().results == []


def test_cli_renders_a_template_for_a_user(tidings_with_mailgun: RunningTidings) -> None:
    server = tidings_with_mailgun
    template_id = _template(server)
    result = run(
        server,
        "templates",
        "render",
        template_id,
        "--data",
        "order=B2",
        "--data",
        "count=4",
        "--user",
        "ann",
    )
    assert result.exit_code == 0, result.output
    assert "Hi Ann" in result.output and "Order B2: 5 items" in result.output
    as_html = run(server, "templates", "render", template_id, "--user", "ann", "--html")
    assert as_html.exit_code == 0 and "<html" in as_html.output
    listed = run(server, "templates", "list")
    assert listed.exit_code == 0 and template_id in listed.output
    bad = run(server, "templates", "render", template_id, "--data", "novalue")
    assert bad.exit_code != 0 and "key=value" in bad.output
