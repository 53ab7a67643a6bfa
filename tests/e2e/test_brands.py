"""Courier's Brands API through Courier's SDK on a real server: every method, the workspace
default, validation by field, and the brand's look in an email rendered from what the API
returns."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import courier
import pytest

from tests.e2e.conftest import RunningTidings
from tidings.domain.content import parse_content
from tidings.render.branding import brand_look
from tidings.render.email import render_email
from tidings.render.templating import RenderContext

PRIMARY = "#9D3789"
SETTINGS: Any = {
    "colors": {"primary": PRIMARY, "secondary": "#ff5f39", "tertiary": "#000000"},
    "email": {
        "header": {
            "barColor": PRIMARY,
            "logo": {"href": "https://acme.test", "image": "https://cdn.acme.test/logo.png"},
        },
        "footer": {
            "markdown": "**Acme** Inc · [Unsubscribe](https://acme.test/u)",
            "social": {
                "facebook": {"url": "https://www.facebook.com/acme"},
                "linkedin": {"url": "https://www.linkedin.com/acme"},
            },
        },
        "head": {"inheritDefault": False, "content": ".t-h1 { letter-spacing: 1px; }"},
        "templateOverride": {
            "enabled": True,
            "backgroundColor": "#f0f0f0",
            "blocksBackgroundColor": "#ffffff",
            "width": "640px",
            "mjml": {"enabled": False},
            "footerBackgroundColor": "#eeeeee",
            "footerFullWidth": False,
        },
    },
}
SNIPPETS: Any = {"items": [{"name": "tagline", "value": "Doing done well"}]}


def test_create_retrieve_list_update_delete(start_tidings: Callable[..., RunningTidings]) -> None:
    client = start_tidings(run_workers=False).courier()
    made = client.brands.create(id="acme", name="Acme", settings=SETTINGS, snippets=SNIPPETS)
    assert made.id == "acme" and made.name == "Acme" and made.version == "v1"
    assert made.settings is not None and made.settings.email is not None
    override = made.settings.email.template_override
    assert override is not None and override.blocks_background_color == "#ffffff"
    assert made.settings.colors is not None and made.settings.colors.primary == PRIMARY
    assert made.model_dump(by_alias=True, exclude_none=True)["settings"] == SETTINGS
    assert made.snippets is not None and made.snippets.items
    assert made.snippets.items[0].name == "tagline"
    assert client.brands.retrieve("acme") == made
    generated = client.brands.create(name="Generated", settings={})
    assert generated.id and generated.id != "acme" and generated.settings is not None
    with pytest.raises(courier.ConflictError):
        client.brands.create(id="acme", name="Again", settings={})

    listed = client.brands.list()
    assert [b.id for b in listed.results] == ["acme", generated.id]
    assert listed.paging.more is False and listed.paging.cursor is None
    assert listed.results[0] == made  # listed whole, as Courier lists brands
    first = client.brands.list(extra_query={"limit": 1})
    assert first.paging.more and first.paging.cursor
    rest = client.brands.list(cursor=first.paging.cursor, extra_query={"limit": 1})
    assert [b.id for b in rest.results] == [generated.id] and rest.paging.more is False

    # Update is a full replacement: what is left out is cleared.
    updated = client.brands.update("acme", name="Acme 2", settings={"colors": {"primary": "teal"}})
    assert updated.name == "Acme 2" and updated.version == "v2" and updated.snippets is None
    assert updated.settings is not None and updated.settings.email is None
    assert updated.created == made.created
    assert client.brands.retrieve("acme") == updated
    bare = client.brands.update("acme", name="Bare")
    assert bare.settings is not None and bare.settings.model_dump(exclude_none=True) == {}
    with pytest.raises(courier.NotFoundError):
        client.brands.update("nothing", name="x")

    assert client.brands.with_raw_response.delete("acme").status_code == 204
    with pytest.raises(courier.NotFoundError):
        client.brands.retrieve("acme")
    with pytest.raises(courier.NotFoundError):
        client.brands.delete("acme")
    assert [b.id for b in client.brands.list().results] == [generated.id]


def test_idempotent_create(start_tidings: Callable[..., RunningTidings]) -> None:
    client = start_tidings(run_workers=False).courier()
    one = client.brands.create(name="A", settings={}, idempotency_key="k1")
    two = client.brands.create(name="A", settings={}, idempotency_key="k1")
    assert one == two
    with pytest.raises(courier.ConflictError):
        client.brands.create(name="B", settings={}, idempotency_key="k1")
    later = client.brands.create(
        name="C", settings={}, idempotency_key="k2", x_idempotency_expiration="4102444800000"
    )
    assert later.name == "C"
    with pytest.raises(courier.BadRequestError, match="x-idempotency-expiration"):
        client.brands.create(
            name="D", settings={}, idempotency_key="k3", x_idempotency_expiration="soon"
        )
    assert len(client.brands.list().results) == 2


def test_the_workspace_default_brand(start_tidings: Callable[..., RunningTidings]) -> None:
    client = start_tidings(run_workers=False).courier()
    brand = client.brands.create(id="house", name="House", settings=SETTINGS)

    def default() -> Any:
        return client.get("/tidings/brands/default", cast_to=object)

    assert default() == {"brand_id": None}
    answer = client.put("/tidings/brands/default", cast_to=object, body={"brand_id": brand.id})
    assert answer == {"brand_id": "house"} and default() == {"brand_id": "house"}
    with pytest.raises(courier.NotFoundError):
        client.put("/tidings/brands/default", cast_to=object, body={"brand_id": "nothing"})
    with pytest.raises(courier.BadRequestError, match="brand"):
        client.put("/tidings/brands/default", cast_to=object, body={"brand": "house"})
    # Courier refuses to delete its default brand; so does Tidings.
    with pytest.raises(courier.ConflictError, match="default brand"):
        client.brands.delete("house")
    client.delete("/tidings/brands/default", cast_to=type(None))
    assert default() == {"brand_id": None}
    client.brands.delete("house")


@pytest.mark.parametrize(
    ("body", "named"),
    [
        ({"settings": {"colors": {"primary": "red;x:y"}}}, "settings.colors.primary"),
        ({"settings": {"colour": {}}}, "settings.colour"),
        ({"settings": {}, "tagline": "x"}, "tagline"),
        (
            {"settings": {"email": {"header": {"logo": {"image": "ftp://x.test/l.png"}}}}},
            "settings.email.header.logo.image",
        ),
        (
            {"settings": {"email": {"header": {"logo": {"href": "javascript:alert(1)"}}}}},
            "settings.email.header.logo.href",
        ),
        ({"settings": {"email": {"header": {"barColor": "red"}}}}, "settings.email.header.logo"),
        (
            {"settings": {"email": {"footer": {"social": {"myspace": {"url": "https://m.test"}}}}}},
            "settings.email.footer.social.myspace",
        ),
        (
            {"settings": {"email": {"footer": {"social": {"twitter": {"url": "twitter.com/a"}}}}}},
            "settings.email.footer.social.twitter.url",
        ),
        (
            {
                "settings": {
                    "email": {"templateOverride": {"enabled": True, "mjml": {"enabled": True}}}
                }
            },
            "settings.email.templateOverride.mjml.enabled",
        ),
        (
            {"settings": {"email": {"templateOverride": {"enabled": True, "width": "5000px"}}}},
            "settings.email.templateOverride.width",
        ),
        (
            {"settings": {"email": {"head": {"inheritDefault": False, "content": "</style>"}}}},
            "settings.email.head.content",
        ),
        ({"settings": {"inapp": {"colors": {}}}}, "settings.inapp.icons"),
        ({"settings": {}, "snippets": {"items": [{"name": "a b", "value": "x"}]}}, "name"),
        ({"settings": None}, "settings is required"),
        ({"settings": {}, "id": "has/slash"}, "id"),
    ],
)
def test_every_field_is_checked(
    start_tidings: Callable[..., RunningTidings], body: dict[str, Any], named: str
) -> None:
    client = start_tidings(run_workers=False).courier()
    with pytest.raises(courier.BadRequestError) as raised:
        client.post("/brands", cast_to=object, body={"name": "n", **body})
    assert named in raised.value.response.json()["message"]
    assert client.brands.list().results == []


def test_inapp_settings_are_stored_for_round_trips(
    start_tidings: Callable[..., RunningTidings],
) -> None:
    client = start_tidings(run_workers=False).courier()
    inapp: Any = {
        "colors": {"primary": "#112233"},
        "icons": {"bell": "https://cdn.acme.test/bell.svg"},
        "widgetBackground": {"topColor": "#ffffff", "bottomColor": "#eeeeee"},
        "borderRadius": "24px",
        "placement": "bottom",
    }
    made = client.brands.create(name="In-app", settings={"inapp": inapp})
    assert made.model_dump(by_alias=True, exclude_none=True)["settings"] == {"inapp": inapp}


def test_the_brand_the_api_returns_renders_into_the_email(
    start_tidings: Callable[..., RunningTidings],
) -> None:
    client = start_tidings(run_workers=False).courier()
    client.brands.create(id="acme", name="Acme", settings=SETTINGS, snippets=SNIPPETS)
    brand = client.brands.retrieve("acme").model_dump(by_alias=True, exclude_none=True)
    look = brand_look(brand)
    assert look.snippets == {"tagline": "Doing done well"}
    content = parse_content(
        {
            "version": "2022-01-01",
            "elements": [
                {"type": "meta", "title": "Welcome {{name}}"},
                {"type": "text", "content": "Hello {{name}}", "text_style": "h1"},
                {
                    "type": "text",
                    "content": "Read [the guide](https://acme.test/g)",
                    "format": "markdown",
                },
                {"type": "action", "content": "Start", "href": "https://acme.test/start"},
            ],
        }
    )
    html = render_email(content, RenderContext(data={"name": "Ann"}, profile={}), brand=look).html
    assert re.search(r'<img class="t-logo"[^>]*src="https://cdn.acme.test/logo.png"', html)
    button = re.search(r'<a class="t-button-link"[^>]*>', html)
    assert button and f"background-color: {PRIMARY}" in button.group(0)
    link = re.search(r'<a href="https://acme.test/g"[^>]*>', html)
    assert link and f"color: {PRIMARY}" in link.group(0)
    assert "<strong>Acme</strong> Inc" in html
    assert re.search(r'href="https://www.facebook.com/acme"[^>]*>Facebook</a>', html)
    assert re.search(r'href="https://www.linkedin.com/acme"[^>]*>LinkedIn</a>', html)
    assert "@media only screen and (max-width: 660px)" in html
    heading = re.search(r'<h1 class="t-h1"[^>]*>Hello Ann</h1>', html)
    assert heading and "letter-spacing: 1px" in heading.group(0)  # the brand's head CSS
    assert "max-width: 640px" in html and "background-color: #f0f0f0" in html
