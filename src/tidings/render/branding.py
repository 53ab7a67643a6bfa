"""A Courier brand as the email layout uses it: :class:`BrandLook`, made by :func:`brand_look`.

The brand is the API's JSON (``store.brands.get_brand``); it is checked again here with the
API's own rules (:func:`tidings.domain.brands.parse_brand`), so a look never carries a value
that could break out of the layout's CSS or attributes, whoever built the mapping.

What becomes of each setting (the layout, ``templates/email.html``, draws it):

* ``colors.primary``: buttons and links, through the layout's stylesheet (css-inline puts
  it on each element; a block's own colour is written inline and still wins). All
  colours are kept in :attr:`BrandLook.colors` for templates.
* ``email.header``: the logo (140px wide, as Courier draws it; linked when ``href`` is
  given) at the top, under a bar of ``barColor``.
* ``email.footer``: ``markdown`` rendered with markdown-it, raw HTML disabled (as text
  elements are), and the ``social`` links, at the bottom; both go into the text part too.
* ``email.head.content``: the brand's CSS, in a ``<style>`` after the layout's (so it wins,
  and is inlined too).
* ``email.templateOverride`` (when ``enabled``): outer and content background colours, the
  footer's background and full width, the email's width, and its ``head``/``header``/
  ``footer`` HTML, placed as the operator wrote it (like an ``html`` element's markup)
  after the standard header and before the standard footer.
* ``inheritDefault`` (header, footer, head): what the brand's section leaves unset is taken
  from the default brand's section, when one is given.
* ``snippets``: kept in :attr:`BrandLook.snippets` (Courier's Handlebars partials) for the
  user-content renderer.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from markdown_it import MarkdownIt
from markupsafe import Markup, escape

from tidings.domain.brands import SOCIAL_NETWORKS, parse_brand, with_inherited

LOGO_WIDTH = 140  # Courier's email logo width, in pixels
DEFAULT_WIDTH = 600  # the layout's width without a brand

_SOCIAL_LABELS = {
    "facebook": "Facebook",
    "instagram": "Instagram",
    "linkedin": "LinkedIn",
    "medium": "Medium",
    "twitter": "Twitter",
}

# As text elements render markdown: raw HTML is escaped, unsafe link schemes refused.
_markdown = MarkdownIt("commonmark", {"html": False}).enable("strikethrough")


@dataclass(frozen=True, slots=True)
class SocialLink:
    network: str  # one of Courier's: facebook, instagram, linkedin, medium, twitter
    label: str  # what the link says ("LinkedIn")
    url: str


@dataclass(frozen=True, slots=True)
class BrandLook:
    """What the email layout needs from a brand. Every value is checked: colours are CSS
    colour values, URLs absolute http(s), ``css`` holds no ``<``."""

    brand_id: str | None = None
    name: str | None = None
    primary_color: str | None = None
    colors: dict[str, str] = field(default_factory=dict)
    logo_image: str | None = None
    logo_href: str | None = None
    bar_color: str | None = None
    footer_markdown: str | None = None
    social: tuple[SocialLink, ...] = ()
    css: str | None = None
    background_color: str | None = None
    blocks_background_color: str | None = None
    footer_background_color: str | None = None
    footer_full_width: bool = False
    width: int = DEFAULT_WIDTH
    head_html: str | None = None
    header_html: str | None = None
    footer_html: str | None = None
    snippets: dict[str, str] = field(default_factory=dict)

    @property
    def footer_markdown_html(self) -> Markup | None:
        """The footer markdown as HTML (escaped: raw HTML in it is shown as text)."""
        if not self.footer_markdown:
            return None
        return Markup(_markdown.render(self.footer_markdown))

    @property
    def social_html(self) -> Markup | None:
        """The social links, one line of text links."""
        if not self.social:
            return None
        return Markup(" &middot; ").join(
            Markup('<a class="t-social-link" href="{}" target="_blank">{}</a>').format(
                link.url, link.label
            )
            for link in self.social
        )

    def footer_for_text(self) -> str:
        """The footer's HTML for the text part: the operator's footer HTML, the markdown
        and the social links (the layout's tables are not needed there)."""
        parts = [
            self.footer_html or "",
            str(self.footer_markdown_html or ""),
            f"<p>{self.social_html}</p>" if self.social_html else "",
        ]
        return "".join(parts)


def _section(settings: Mapping[str, Any], name: str) -> dict[str, Any]:
    email = settings.get("email") or {}
    return dict(email.get(name) or {})


def _checked(brand: Mapping[str, Any], what: str) -> dict[str, Any]:
    """The brand's settings, checked with the API's rules (``BrandError`` names the field)."""
    fields = parse_brand(
        {
            "name": brand.get("name") or what,
            "settings": brand.get("settings"),
            "snippets": brand.get("snippets"),
        },
        creating=False,
    )
    return {"settings": fields.settings, "snippets": fields.snippets or {}}


def brand_look(brand: Mapping[str, Any], *, default: Mapping[str, Any] | None = None) -> BrandLook:
    """The look of ``brand`` (the brand as the API returns it). ``default`` is the
    workspace default brand, for the sections that say ``inheritDefault`` (see
    :func:`tidings.domain.brands.with_inherited`; a brand already resolved needs none)."""
    if default is not None:
        brand = with_inherited(brand, {**default, **_checked(default, "default brand")})
    checked = _checked(brand, "brand")
    settings = checked["settings"]
    colors = dict(settings.get("colors") or {})
    header = _section(settings, "header")
    footer = _section(settings, "footer")
    head = _section(settings, "head")
    logo = header.get("logo") or {}
    social = footer.get("social") or {}
    links = tuple(
        SocialLink(network, _SOCIAL_LABELS[network], social[network]["url"])
        for network in SOCIAL_NETWORKS
        if (social.get(network) or {}).get("url")
    )
    template = _section(settings, "templateOverride")
    if not template.get("enabled"):
        template = {}
    width = DEFAULT_WIDTH
    if template.get("width"):
        width = int(str(template["width"]).removesuffix("px"))  # checked: "640" or "640px"
    items = checked["snippets"].get("items") or []
    return BrandLook(
        brand_id=brand.get("id"),
        name=brand.get("name"),
        primary_color=colors.get("primary"),
        colors=colors,
        logo_image=logo.get("image"),
        logo_href=logo.get("href"),
        bar_color=header.get("barColor"),
        footer_markdown=footer.get("markdown") or None,
        social=links,
        css=head.get("content") or None,
        background_color=template.get("backgroundColor"),
        blocks_background_color=template.get("blocksBackgroundColor"),
        footer_background_color=template.get("footerBackgroundColor"),
        footer_full_width=bool(template.get("footerFullWidth")),
        width=width,
        head_html=template.get("head") or None,
        header_html=template.get("header") or None,
        footer_html=template.get("footer") or None,
        snippets={item["name"]: item["value"] for item in items},
    )


def layout_values(look: BrandLook) -> dict[str, Any]:
    """What the layout template is given for ``look`` (markup marked safe where it was
    made safe here or is the operator's own HTML)."""
    return {
        "brand": look,
        "brand_css": Markup(look.css) if look.css else None,  # checked: no "<"
        "brand_head": Markup(look.head_html) if look.head_html else None,
        "brand_header": Markup(look.header_html) if look.header_html else None,
        "brand_footer": Markup(look.footer_html) if look.footer_html else None,
        "footer_markdown": look.footer_markdown_html,
        "social": look.social_html,
        "logo_alt": escape(look.name or ""),
    }
