"""The status endpoints API: validation with field names, secrets shown once then masked."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from tidings.app import create_app
from tidings.config import Settings

API_KEY = "tk_test_status_endpoints"


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    settings = Settings(
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'tidings.db'}",
        api_key=API_KEY,
        sandbox=False,
    )
    app = create_app(settings, run_workers=False)
    with TestClient(app, headers={"Authorization": f"Bearer {API_KEY}"}) as test_client:
        yield test_client


def test_create_generates_a_secret_shown_once(client: TestClient) -> None:
    created = client.post("/webhooks/endpoints", json={"url": "https://example.test/hook"})
    assert created.status_code == 200, created.text
    body = created.json()
    assert body["url"] == "https://example.test/hook"
    assert body["enabled"] is True
    assert isinstance(body["created"], int)
    secret = body["secret"]
    assert secret.startswith("whsec_") and len(secret) > 30

    shown = client.get(f"/webhooks/endpoints/{body['id']}").json()
    assert shown["secret"] == "********" + secret[-4:]
    listed = client.get("/webhooks/endpoints").json()["results"]
    assert [e["id"] for e in listed] == [body["id"]]
    assert listed[0]["secret"] == "********" + secret[-4:]
    assert secret not in client.get("/webhooks/endpoints").text


def test_given_secret_is_kept(client: TestClient) -> None:
    created = client.post(
        "/webhooks/endpoints",
        json={"url": "https://hooks.example.test/x", "secret": "my-own-secret", "enabled": False},
    ).json()
    assert created["secret"] == "my-own-secret"
    assert created["enabled"] is False
    assert client.get(f"/webhooks/endpoints/{created['id']}").json()["secret"] == "********cret"


@pytest.mark.parametrize(
    ("payload", "needle"),
    [
        ({"url": "ftp://example.test/hook"}, "url"),
        ({"url": "not a url"}, "url"),
        ({"url": "https://"}, "url"),
        ({}, "url is required"),
        ({"url": "https://example.test", "enabled": "maybe"}, "enabled"),
        ({"url": "https://example.test", "secret": ""}, "secret"),
        ({"url": "https://example.test", "colour": "red"}, "colour"),
    ],
)
def test_invalid_input_is_400_naming_the_field(
    client: TestClient, payload: dict[str, object], needle: str
) -> None:
    answer = client.post("/webhooks/endpoints", json=payload)
    assert answer.status_code == 400, answer.text
    body = answer.json()
    assert body["type"] == "invalid_request_error"
    assert needle in body["message"]
    assert client.get("/webhooks/endpoints").json()["results"] == []


def test_patch_and_delete(client: TestClient) -> None:
    created = client.post("/webhooks/endpoints", json={"url": "https://a.example.test"}).json()
    path = f"/webhooks/endpoints/{created['id']}"

    patched = client.patch(path, json={"enabled": False, "url": "https://b.example.test/h"})
    assert patched.status_code == 200, patched.text
    assert patched.json()["enabled"] is False
    assert patched.json()["url"] == "https://b.example.test/h"
    assert patched.json()["secret"] == "********" + created["secret"][-4:]

    rotated = client.patch(path, json={"secret": "rotated-secret"}).json()
    assert rotated["secret"] == "********cret"
    assert rotated["enabled"] is False  # left out: unchanged

    bad = client.patch(path, json={"url": "mailto:x@example.test"})
    assert bad.status_code == 400 and "url" in bad.json()["message"]
    null = client.patch(path, json={"enabled": None})
    assert null.status_code == 400 and "enabled" in null.json()["message"]

    assert client.get(f"{path}/deliveries").json() == {"results": []}
    assert client.delete(path).status_code == 204
    assert client.get(path).status_code == 404
    assert client.delete(path).status_code == 404
    assert client.patch(path, json={"enabled": True}).status_code == 404
    assert client.get(f"{path}/deliveries").status_code == 404


def test_needs_the_api_key(client: TestClient) -> None:
    answer = client.get("/webhooks/endpoints", headers={"Authorization": "Bearer wrong"})
    assert answer.status_code == 401
    assert answer.json()["type"] == "authentication_error"
