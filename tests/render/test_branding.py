"""A brand's look in the rendered email: logo, primary colour, footer, social links,
template settings, inheritance from the default brand; and nothing changes without one."""

from __future__ import annotations

import re
from typing import Any

import pytest

from tidings.domain.brands import BrandError
from tidings.domain.content import parse_content
from tidings.render.branding import BrandLook, SocialLink, brand_look
from tidings.render.email import RenderedEmail, render_email
from tidings.render.templating import RenderContext

CONTEXT = RenderContext(data={"name": "Jane"}, profile={"email": "jane@example.test"})
PRIMARY = "#9D3789"

BRAND: dict[str, Any] = {
    "id": "acme",
    "name": "Acme & Co",
    "created": 1,
    "updated": 2,
    "published": 2,
    "version": "v1",
    "settings": {
        "colors": {"primary": PRIMARY, "secondary": "teal"},
        "email": {
            "header": {
                "barColor": "#112233",
                "logo": {"image": "https://cdn.acme.test/logo.png", "href": "https://acme.test"},
            },
            "footer": {
                "markdown": "**Acme** Inc, <b>1 Road</b> · [site](https://acme.test)",
                "social": {
                    "twitter": {"url": "https://twitter.com/acme"},
                    "facebook": {"url": "https://facebook.com/acme"},
                },
            },
        },
    },
    "snippets": {"items": [{"name": "tagline", "value": "Doing done well"}]},
}

ELEMENTS: list[dict[str, Any]] = [
    {"type": "text", "content": "See [the docs](https://docs.test)", "format": "markdown"},
    {"type": "action", "content": "Confirm", "href": "https://acme.test/c"},
    {"type": "action", "content": "Own", "href": "https://acme.test/o", "background_color": "red"},
    {"type": "action", "content": "Plain link", "href": "https://acme.test/l", "style": "link"},
]


def render(look: BrandLook | None, elements: list[dict[str, Any]] = ELEMENTS) -> RenderedEmail:
    content = parse_content({"version": "2022-01-01", "elements": elements})
    return render_email(content, CONTEXT, brand=look)


def tag(html: str, pattern: str) -> str:
    """The first start tag matching ``pattern`` (a regex over the whole tag)."""
    match = re.search(rf"<{pattern}[^>]*>", html)
    assert match, pattern
    return match.group(0)


def test_the_look_of_a_brand() -> None:
    look = brand_look(BRAND)
    assert look.brand_id == "acme" and look.name == "Acme & Co"
    assert look.primary_color == PRIMARY and look.colors == {
        "primary": PRIMARY,
        "secondary": "teal",
    }
    assert look.logo_image == "https://cdn.acme.test/logo.png"
    assert look.logo_href == "https://acme.test" and look.bar_color == "#112233"
    # Courier's order of networks, whatever order the brand lists them in.
    assert look.social == (
        SocialLink("facebook", "Facebook", "https://facebook.com/acme"),
        SocialLink("twitter", "Twitter", "https://twitter.com/acme"),
    )
    assert look.snippets == {"tagline": "Doing done well"}
    assert look.width == 600 and look.background_color is None and look.css is None


def test_without_a_brand_nothing_changes() -> None:
    plain = render(None)
    assert "t-footer" not in plain.html and "t-logo" not in plain.html
    assert (
        render_email(parse_content({"version": "2022-01-01", "elements": ELEMENTS}), CONTEXT)
        == plain
    )


def test_logo_colours_footer_and_social_links_in_the_email() -> None:
    html = render(brand_look(BRAND)).html
    logo = tag(html, r'img class="t-logo"')
    assert 'src="https://cdn.acme.test/logo.png"' in logo and 'width="140"' in logo
    assert re.search(r'<a href="https://acme.test" target="_blank"[^>]*><img class="t-logo"', html)
    assert "background-color: #112233" in tag(html, r'td class="t-bar"')
    # The primary colour, inlined on the button's cell and link, and on links.
    button = tag(html, r'td class="t-button"')
    assert f"background-color: {PRIMARY}" in button
    first_link = tag(html, r'a class="t-button-link"')
    assert f"background-color: {PRIMARY}" in first_link and "color: #ffffff" in first_link
    assert f"color: {PRIMARY}" in tag(html, r'a class="t-link"')
    assert f"color: {PRIMARY}" in tag(html, r'a href="https://docs.test"')
    # A block's own colour still wins over the brand's.
    own = re.findall(r'<a class="t-button-link"[^>]*>', html)[1]
    assert "background-color: red" in own and PRIMARY not in own
    # The footer: markdown rendered, its raw HTML shown as text; the social links.
    footer = html[html.index('<td class="t-footer"') :]
    assert "<strong>Acme</strong> Inc, &lt;b&gt;1 Road&lt;/b&gt;" in footer
    assert re.search(r'<a [^>]*href="https://facebook.com/acme"[^>]*>Facebook</a>', footer)
    assert re.search(r'<a [^>]*href="https://twitter.com/acme"[^>]*>Twitter</a>', footer)
    # Still responsive: the media queries are kept for the clients that honour them.
    assert "@media only screen and (max-width: 620px)" in html
    assert "<style>" in html and "class=" in html


def test_the_text_part_carries_the_footer() -> None:
    text = render(brand_look(BRAND)).text
    assert "[Confirm](https://acme.test/c)" in text
    assert "Acme Inc, <b>1 Road</b>" in text
    assert "[Facebook](https://facebook.com/acme)" in text


def test_footer_markdown_cannot_link_to_javascript() -> None:
    brand = {
        "name": "x",
        "settings": {"email": {"footer": {"markdown": "[x](javascript:alert(1)) <script>"}}},
    }
    html = render(brand_look(brand)).html
    # markdown-it refuses the link and escapes the tag: both are shown as text.
    assert "[x](javascript:alert(1)) &lt;script&gt;" in html
    assert 'href="javascript' not in html and "<script>" not in html


def test_template_override_sets_width_and_backgrounds_when_enabled() -> None:
    override = {
        "enabled": True,
        "backgroundColor": "#eeeeee",
        "blocksBackgroundColor": "#fffff0",
        "footerBackgroundColor": "#dddddd",
        "width": "640px",
        "header": '<p class="custom-header">Hello from Acme</p>',
        "footer": "<p>Custom footer</p>",
        "head": "<style>.custom-header { font-weight: 700; }</style>",
    }
    settings = {**BRAND["settings"], "email": {**BRAND["settings"]["email"]}}
    settings["email"]["templateOverride"] = override
    look = brand_look({**BRAND, "settings": settings})
    assert look.width == 640 and look.header_html and look.footer_html and look.head_html
    html = render(look).html
    assert "background-color: #eeeeee" in tag(html, r'body class="t-body"')
    assert "max-width: 640px" in tag(html, r'table class="t-container"')
    assert "background-color: #fffff0" in tag(html, r'table class="t-container"')
    assert "background-color: #dddddd" in tag(html, r'td class="t-footer"')
    assert '<table role="presentation" width="640"' in html  # Outlook's fixed width
    assert "@media only screen and (max-width: 660px)" in html
    assert "font-weight: 700" in tag(html, r'p class="custom-header"')  # head CSS inlined
    assert re.search(r"<p[^>]*>Custom footer</p>", html)
    # Disabled, the override is not applied (as Courier's toggle).
    override["enabled"] = False
    plain = render(brand_look({**BRAND, "settings": settings})).html
    assert "max-width: 600px" in plain and "Custom footer" not in plain


def test_full_width_footer_sits_outside_the_container() -> None:
    settings = {
        "email": {
            "footer": {"markdown": "Footer"},
            "templateOverride": {"enabled": True, "footerFullWidth": True},
        }
    }
    html = render(brand_look({"name": "x", "settings": settings})).html
    container_end = html.index("<!--[if mso]></td></tr></table><![endif]-->")
    assert html.index('<td class="t-footer"') > container_end


def test_the_brand_css_is_inlined_after_the_layout() -> None:
    brand = {
        "name": "x",
        "settings": {
            "email": {
                "head": {"inheritDefault": False, "content": (".t-text p { font-size: 18px; }")}
            }
        },
    }
    html = render(brand_look(brand)).html
    assert "font-size: 18px" in tag(html, r"p style=")


def test_sections_inherit_what_they_leave_unset_from_the_default_brand() -> None:
    default = {
        "id": "default",
        "name": "Default",
        "settings": {
            "email": {
                "header": {"logo": {"image": "https://cdn.default.test/logo.png"}},
                "footer": {
                    "markdown": "Default footer",
                    "social": {"medium": {"url": "https://medium.com/d"}},
                },
            }
        },
    }
    brand = {
        "id": "child",
        "name": "Child",
        "settings": {
            "email": {
                "header": {"inheritDefault": True, "logo": {}},
                "footer": {
                    "inheritDefault": True,
                    "social": {"twitter": {"url": "https://twitter.com/c"}},
                },
            }
        },
    }
    look = brand_look(brand, default=default)
    assert look.footer_markdown == "Default footer"
    assert [s.network for s in look.social] == ["medium", "twitter"]
    # The SDK makes a header name its logo: {} with inheritDefault takes the default's.
    assert look.logo_image == "https://cdn.default.test/logo.png"
    header: dict[str, Any] = {"inheritDefault": True, "barColor": "red", "logo": None}
    with pytest.raises(BrandError, match="logo is required"):
        brand_look({"name": "c", "settings": {"email": {"header": header}}}, default=default)
    # Without inheritDefault the default brand is not consulted.
    alone = brand_look(
        {"name": "x", "settings": {"email": {"footer": {"markdown": "Own"}}}}, default=default
    )
    assert alone.footer_markdown == "Own" and alone.social == ()


@pytest.mark.parametrize(
    ("settings", "path"),
    [
        ({"colors": {"primary": "red;background:url(x)"}}, "settings.colors.primary"),
        ({"email": {"header": {"logo": {"image": "javascript:alert(1)"}}}}, "logo.image"),
        (
            {"email": {"head": {"inheritDefault": False, "content": "</style><script>"}}},
            "head.content",
        ),
    ],
)
def test_a_look_is_only_made_of_checked_values(settings: dict[str, Any], path: str) -> None:
    with pytest.raises(BrandError, match=re.escape(path)):
        brand_look({"name": "x", "settings": settings})
