"""Brand bodies checked whole: Courier's shape kept, nulls left out, every field's path
named when it is wrong."""

from __future__ import annotations

from typing import Any

import pytest

from tidings.domain.brands import BrandError, parse_brand, with_inherited

FULL: dict[str, Any] = {
    "id": "acme",
    "name": "Acme",
    "settings": {
        "colors": {"primary": "#9D3789", "secondary": " teal ", "tertiary": None},
        "email": {
            "header": {
                "inheritDefault": False,
                "barColor": "rgb(10, 20, 30)",
                "logo": {"href": "https://acme.test", "image": "https://cdn.acme.test/l.png"},
            },
            "footer": {"markdown": None, "social": {"medium": {"url": "https://medium.com/a"}}},
            "head": {"inheritDefault": True, "content": None},
            "templateOverride": {
                "enabled": True,
                "width": "600",
                "mjml": {"enabled": False, "header": "<mj-text/>"},
                "footerFullWidth": True,
            },
        },
        "inapp": None,
    },
    "snippets": {"items": [{"name": "tagline", "value": "Doing done well"}]},
}


def test_a_full_brand_keeps_courier_shape_without_nulls() -> None:
    fields = parse_brand(FULL, creating=True)
    assert fields.id == "acme" and fields.name == "Acme"
    assert fields.settings == {
        "colors": {"primary": "#9D3789", "secondary": "teal"},
        "email": {
            "header": {
                "inheritDefault": False,
                "barColor": "rgb(10, 20, 30)",
                "logo": {"href": "https://acme.test", "image": "https://cdn.acme.test/l.png"},
            },
            "footer": {"social": {"medium": {"url": "https://medium.com/a"}}},
            "head": {"inheritDefault": True},
            "templateOverride": {
                "enabled": True,
                "width": "600",
                "mjml": {"enabled": False, "header": "<mj-text/>"},
                "footerFullWidth": True,
            },
        },
    }
    assert fields.snippets == FULL["snippets"]


def test_update_takes_no_id_and_clears_what_is_left_out() -> None:
    fields = parse_brand({"name": "Acme"}, creating=False)
    assert fields.settings == {} and fields.snippets is None and fields.id is None
    with pytest.raises(BrandError, match=r"^id is not a field"):
        parse_brand({"name": "Acme", "id": "x"}, creating=False)
    with pytest.raises(BrandError, match=r"^settings is required"):
        parse_brand({"name": "Acme"}, creating=True)


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"colors": {"primary": "#12"}}, "settings.colors.primary must be a CSS colour"),
        ({"colors": {"pri mary": "red"}}, "settings.colors.pri mary is not a colour name"),
        ({"email": {"header": {"logo": {"image": "//cdn.test/l.png"}}}}, "logo.image must be"),
        ({"email": {"footer": {"markdown": 3}}}, "settings.email.footer.markdown must be a string"),
        ({"email": {"footer": {"inheritDefault": "yes"}}}, "inheritDefault must be true or false"),
        ({"email": {"head": {"content": "a{}"}}}, "settings.email.head.inheritDefault is required"),
        (
            {"email": {"head": {"inheritDefault": False, "content": "@IMPORT url(x);"}}},
            "may not use @import",
        ),
        (
            {"email": {"templateOverride": {"width": "600px"}}},
            "templateOverride.enabled is required",
        ),
        (
            {"email": {"templateOverride": {"enabled": True, "width": "50%"}}},
            "templateOverride.width must be a width in pixels",
        ),
        (
            {"email": {"templateOverride": {"enabled": False, "mjml": {"enabled": True}}}},
            "templateOverride.mjml.enabled must be false: Tidings does not render MJML",
        ),
        ({"email": {"templateOverride": {"enabled": True, "css": ""}}}, "templateOverride.css"),
        (
            {"inapp": {"colors": {}, "icons": {}, "widgetBackground": {}, "placement": "middle"}},
            "placement must be one of",
        ),
        ({"email": [1]}, "settings.email must be an object"),
    ],
)
def test_a_wrong_field_is_named(settings: Any, message: str) -> None:
    with pytest.raises(BrandError) as raised:
        parse_brand({"name": "n", "settings": settings}, creating=True)
    assert message in str(raised.value)


def test_snippets_are_partials_named_once() -> None:
    twice = {"items": [{"name": "a", "value": "1"}, {"name": "a", "value": "2"}]}
    with pytest.raises(BrandError, match=r"snippets.items\[1\].name 'a' is given twice"):
        parse_brand({"name": "n", "settings": {}, "snippets": twice}, creating=True)
    with pytest.raises(BrandError, match=r"snippets.items\[0\].value is required"):
        parse_brand(
            {"name": "n", "settings": {}, "snippets": {"items": [{"name": "a"}]}}, creating=True
        )
    with pytest.raises(BrandError, match=r"snippets.items\[0\].format is not a field"):
        parse_brand(
            {
                "name": "n",
                "settings": {},
                "snippets": {"items": [{"name": "a", "value": "", "format": "handlebars"}]},
            },
            creating=True,
        )
    assert (
        parse_brand(
            {"name": "n", "settings": {}, "snippets": {"items": None}}, creating=True
        ).snippets
        == {}
    )


def test_with_inherited_completes_the_sections_that_ask() -> None:
    default: Any = {
        "id": "house",
        "settings": {
            "email": {
                "header": {
                    "logo": {"image": "https://cdn.house.test/l.png", "href": "https://h.test"}
                },
                "footer": {
                    "markdown": "House",
                    "social": {"medium": {"url": "https://medium.com/h"}},
                },
                "head": {"inheritDefault": False, "content": "a { color: red; }"},
            }
        },
    }
    brand: Any = {
        "id": "child",
        "settings": {
            "colors": {"primary": "teal"},
            "email": {
                "header": {"inheritDefault": True, "logo": {"href": "https://child.test"}},
                "footer": {"inheritDefault": False, "markdown": "Child"},
            },
        },
    }
    resolved = with_inherited(brand, default)
    email = resolved["settings"]["email"]
    assert email["header"] == {
        "inheritDefault": True,
        "logo": {"image": "https://cdn.house.test/l.png", "href": "https://child.test"},
    }
    assert email["footer"] == {"inheritDefault": False, "markdown": "Child"}
    assert "head" not in email  # the brand has no head section asking to inherit
    assert resolved["settings"]["colors"] == {"primary": "teal"} and resolved["id"] == "child"
    assert brand["settings"]["email"]["header"]["logo"] == {"href": "https://child.test"}
    assert with_inherited(brand, None) == brand
    assert with_inherited({"settings": {"email": [1]}}, default) == {"settings": {"email": [1]}}
