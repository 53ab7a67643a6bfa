"""Content to email: each element, the shorthand, escaping, layout, text part, overrides."""

from __future__ import annotations

import re
from typing import Any

import pytest

from tidings.domain.content import parse_content
from tidings.render.email import (
    RenderedEmail,
    apply_overrides,
    check_content,
    render_email,
)
from tidings.render.templating import RenderContext, RenderError

CONTEXT = RenderContext(
    data={
        "name": "Jane",
        "evil": "<script>alert('x')</script>",
        "url": "https://example.com/confirm?a=1&b=2",
        "vip": True,
    },
    profile={"email": "jane@example.com"},
)


def render(*elements: dict[str, Any], context: RenderContext = CONTEXT) -> RenderedEmail:
    content = parse_content({"version": "2022-01-01", "elements": list(elements)})
    return render_email(content, context)


def body_of(html: str) -> str:
    match = re.search(r'<td class="t-content"[^>]*>(.*?)</td></tr>\s*</tbody></table>', html, re.S)
    assert match, html
    return match.group(1)


# --- shorthand and layout -------------------------------------------------------------


def test_shorthand_title_and_body_paragraphs() -> None:
    content = parse_content({"title": "Hi {{name}}", "body": "Line one\nline two\n\nSecond"})
    email = render_email(content, CONTEXT)
    assert email.subject == "Hi Jane"
    body = body_of(email.html)
    assert "Line one<br>\nline two</p>" in body
    assert ">Second</p>" in body
    assert email.text == "Line one\nline two\n\nSecond\n"
    assert email.blocks == [{"type": "text", "text": "Line one\nline two\n\nSecond"}]


def test_layout_is_a_responsive_email_document() -> None:
    email = render({"type": "meta", "title": "Subject"}, {"type": "text", "content": "x"})
    html = email.html
    assert html.startswith("<!DOCTYPE html>")
    assert "<title>Subject</title>" in html
    assert '<meta name="viewport" content="width=device-width, initial-scale=1">' in html
    assert 'role="presentation"' in html
    assert "max-width: 600px" in html
    # Core styles are inline; only the media queries stay in a <style>.
    assert re.search(r'<td class="t-content" style="[^"]*font-family', html)
    styles = re.findall(r"<style>(.*?)</style>", html, re.S)
    assert all(s.strip().startswith("@media") for s in styles)
    assert "t-preheader" not in html


def test_preheader() -> None:
    content = parse_content({"title": "t", "body": "b"})
    html = render_email(content, CONTEXT, preheader="Seen in the inbox list").html
    assert re.search(r'class="t-preheader" style="display: none;[^"]*">Seen in the inbox', html)


def test_subject_is_one_line_and_not_escaped() -> None:
    email = render({"type": "meta", "title": "Hi {{evil}}\r\nBcc: x@example.com"})
    assert email.subject == "Hi <script>alert('x')</script> Bcc: x@example.com"
    assert "<title>Hi &lt;script&gt;" in email.html


# --- escaping -------------------------------------------------------------------------


def test_variables_are_escaped_in_html_not_in_text() -> None:
    email = render({"type": "text", "content": "Hello {{evil}} & <b>you</b>"})
    body = body_of(email.html)
    assert "<script>" not in body
    # (css-inline writes the quote back as ', which is the same text.)
    assert "Hello &lt;script&gt;alert('x')&lt;/script&gt; &amp; &lt;b&gt;you&lt;/b&gt;" in body
    assert email.text == "Hello <script>alert('x')</script> & <b>you</b>\n"
    assert "&lt;" not in email.text and "&amp;" not in email.text


def test_html_element_keeps_markup_but_escapes_variables() -> None:
    email = render({"type": "html", "content": "<p class='own'><b>{{name}}</b> {{evil}}</p>"})
    body = body_of(email.html)
    assert '<p class="own"><b>Jane</b> &lt;script&gt;' in body
    assert "Jane <script>alert('x')</script>" in email.text


# --- each element ---------------------------------------------------------------------


def test_text_styles_and_alignment() -> None:
    body = body_of(
        render(
            {"type": "text", "content": "Big", "text_style": "h1"},
            {"type": "text", "content": "Mid", "text_style": "h2", "align": "center"},
            {"type": "text", "content": "small", "text_style": "subtext", "color": "#999"},
            {"type": "text", "content": "b", "bold": True, "italic": True, "underline": True},
        ).html
    )
    assert re.search(r'<h1 class="t-h1" style="[^"]*font-size: 26px[^"]*">Big</h1>', body)
    assert re.search(r'<h2 class="t-h2" style="[^"]*text-align: center[^"]*">Mid</h2>', body)
    assert re.search(r'<p class="t-subtext" style="[^"]*color: ?#999[^"]*">small</p>', body)
    assert re.search(
        r'style="[^"]*font-weight: ?bold;font-style: ?italic;text-decoration: ?underline', body
    )


def test_markdown_text() -> None:
    email = render(
        {
            "type": "text",
            "format": "markdown",
            "content": "**Hi** {{evil}} [go]({{url}}) [bad](javascript:alert(1)) <i>raw</i>",
        }
    )
    body = body_of(email.html)
    assert "<strong>Hi</strong>" in body
    assert '<a href="https://example.com/confirm?a=1&amp;b=2"' in body
    assert "javascript:" not in body.split("[bad]")[0]
    assert 'href="javascript' not in body
    assert "<script>" not in body and "<i>" not in body
    assert "&lt;script&gt;" in body


def test_action_button_is_bulletproof() -> None:
    email = render(
        {
            "type": "action",
            "content": "Confirm {{name}}",
            "href": "{{url}}",
            "background_color": "#ff6600",
        }
    )
    body = body_of(email.html)
    button = re.search(
        r'<table class="t-button-wrap"([^>]*)><tbody><tr><td([^>]*)><a([^>]*)>', body
    )
    assert button, body
    table, cell, link = button.groups()
    assert 'role="presentation"' in table and 'align="center"' in table
    assert 'class="t-button"' in cell and 'bgcolor="#ff6600"' in cell
    assert "background-color: #ff6600" in cell
    assert 'href="https://example.com/confirm?a=1&amp;b=2"' in link
    assert "display: inline-block;padding: 12px 24px" in link
    assert "background-color: #ff6600" in link
    assert ">Confirm Jane</a>" in body
    assert email.text == "[Confirm Jane](https://example.com/confirm?a=1&b=2)\n"
    assert email.blocks == [
        {"type": "action", "text": "Confirm Jane", "href": "https://example.com/confirm?a=1&b=2"}
    ]


def test_action_link_style() -> None:
    body = body_of(
        render(
            {"type": "action", "content": "Read", "href": "https://x.example", "style": "link"}
        ).html
    )
    assert re.search(
        r'<p class="t-action" style="[^"]*text-align: center[^"]*"><a class="t-link"', body
    )
    assert "t-button" not in body


@pytest.mark.parametrize(
    "href",
    [
        "javascript:alert(1)",
        " java\tscript:alert(1)",
        "data:text/html,x",
        "/relative",
        "{{ nope }}",
    ],
)
def test_unsafe_or_relative_links_are_refused(href: str) -> None:
    with pytest.raises(RenderError) as caught:
        render({"type": "text", "content": "a"}, {"type": "action", "content": "x", "href": href})
    assert caught.value.path == "message.content.elements[1].href"
    assert "must be an absolute" in caught.value.message


def test_mailgun_variables_are_allowed_as_links() -> None:
    body = body_of(
        render({"type": "action", "content": "Unsubscribe", "href": "%unsubscribe_url%"}).html
    )
    assert 'href="%unsubscribe_url%"' in body


def test_image() -> None:
    email = render(
        {
            "type": "image",
            "src": "https://cdn.example/logo.png",
            "alt_text": "Logo of {{name}}",
            "width": "120px",
            "href": "https://example.com",
        },
        {"type": "image", "src": "https://cdn.example/wide.png", "width": "50%", "align": "left"},
    )
    body = body_of(email.html)
    assert re.search(
        r'<a href="https://example.com" target="_blank"><img class="t-image" style="[^"]*'
        r'max-width: 100%[^"]*width: 120px" src="https://cdn.example/logo.png"'
        r' alt="Logo of Jane" width="120"></a>',
        body,
    )
    assert re.search(r'style="[^"]*width: 50%" src="https://cdn.example/wide.png" alt=""', body)
    assert "[Logo of Jane](https://example.com)" in email.text


def test_divider_and_quote() -> None:
    email = render(
        {"type": "text", "content": "above"},
        {"type": "divider", "color": "#ff0000"},
        {"type": "quote", "content": "Wise {{name}}\n\nSecond"},
    )
    body = body_of(email.html)
    assert re.search(r'<hr class="t-divider" style="[^"]*border-top-color: ?#ff0000', body)
    assert re.search(r'<blockquote class="t-quote" style="[^"]*border-left: 4px solid', body)
    assert '<p style="margin: 0 0 8px;">Wise Jane</p>' in body
    assert email.text == "above\n\n---\n\n> Wise Jane\n>\n> Second\n"


# --- channels and conditions ----------------------------------------------------------


def test_only_email_elements_are_rendered() -> None:
    email = render(
        {"type": "text", "content": "for all"},
        {"type": "text", "content": "for push", "channels": ["push"]},
        {"type": "text", "content": "for email", "channels": ["email"]},
    )
    assert "for push" not in email.html and "for push" not in email.text
    assert email.text == "for all\n\nfor email\n"


def test_channel_element_for_email() -> None:
    email = render(
        {"type": "channel", "channel": "sms", "elements": [{"type": "text", "content": "sms"}]},
        {
            "type": "channel",
            "channel": "email",
            "elements": [{"type": "meta", "title": "E"}, {"type": "text", "content": "mail"}],
        },
    )
    assert email.subject == "E"
    assert email.text == "mail\n"


def test_raw_channel_is_sent_as_written() -> None:
    email = render(
        {
            "type": "channel",
            "channel": "email",
            "raw": {"subject": "Raw {{name}}", "html": "<div><b>{{evil}}</b></div>"},
        }
    )
    assert email.subject == "Raw Jane"
    assert email.html == "<div><b>&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;</b></div>"
    assert email.text == "<script>alert('x')</script>\n"


def test_if_conditions() -> None:
    email = render(
        {"type": "text", "content": "vip", "if": "data.vip"},
        {"type": "text", "content": "not vip", "if": "!data.vip"},
        {"type": "text", "content": "always"},
    )
    assert email.text == "vip\n\nalways\n"
    assert [b["text"] for b in email.blocks] == ["vip", "always"]


def test_errors_name_the_element() -> None:
    with pytest.raises(RenderError) as caught:
        render({"type": "text", "content": "ok"}, {"type": "text", "content": "{{#if x}}"})
    assert caught.value.path == "message.content.elements[1].content"


# --- text part quality ----------------------------------------------------------------


def test_text_part_keeps_long_urls_whole_and_has_no_markdown_escapes() -> None:
    long_url = "https://example.com/" + "a" * 150 + "?x=1&y=2"
    email = render(
        {"type": "text", "content": "- not a list\n1. not a number\n" + "word " * 40},
        {"type": "action", "content": "Open", "href": long_url},
    )
    assert f"[Open]({long_url})" in email.text
    assert "\\-" not in email.text and "1\\." not in email.text
    assert ("word " * 40).strip() in email.text  # no wrapping
    assert not any(line.endswith(" ") for line in email.text.splitlines())


# --- overrides and checks -------------------------------------------------------------


def test_apply_overrides_renders_through_the_sandbox() -> None:
    email = render({"type": "meta", "title": "orig"}, {"type": "text", "content": "orig body"})
    overridden = apply_overrides(email, CONTEXT, subject="New {{name}}", html="<p>{{evil}}</p>")
    assert overridden.subject == "New Jane"
    assert overridden.html == "<p>&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;</p>"
    # The text part follows the new HTML when no text override is given.
    assert overridden.text == "<script>alert('x')</script>\n"
    only_text = apply_overrides(email, CONTEXT, text="Plain {{evil}}")
    assert only_text.text == "Plain <script>alert('x')</script>"
    assert only_text.html == email.html
    with pytest.raises(RenderError) as caught:
        apply_overrides(email, CONTEXT, subject="{{ oops")
    assert caught.value.path == "message.channels.email.override.subject"


def test_rendered_email_round_trips_as_dict() -> None:
    email = render({"type": "action", "content": "x", "href": "https://x.example"})
    assert RenderedEmail(**email.as_dict()) == email


@pytest.mark.parametrize(
    ("elements", "path"),
    [
        ([{"type": "meta", "title": "{{ oops"}], "message.content.elements[0].title"),
        ([{"type": "text", "content": "{{#if x}}"}], "message.content.elements[0].content"),
        (
            [{"type": "action", "content": "x", "href": "{{ url }"}],
            "message.content.elements[0].href",
        ),
        ([{"type": "text", "content": "x", "if": "a === b"}], "message.content.elements[0].if"),
    ],
)
def test_check_content_finds_syntax_errors(elements: list[dict[str, Any]], path: str) -> None:
    content = parse_content({"version": "2022-01-01", "elements": elements})
    with pytest.raises(RenderError) as caught:
        check_content(content)
    assert caught.value.path == path


def test_check_content_accepts_good_content() -> None:
    check_content(parse_content({"title": "Hi {{name}}", "body": "{% if x %}y{% endif %}"}))


# --- Elemental control flow -------------------------------------------------------------


PRODUCTS = RenderContext(
    data={
        "plan": "pro",
        "products": [{"name": "Mouse", "price": 10}, {"name": "Keyboard", "price": 0}],
    },
    profile={"email": "jane@example.com"},
)


def test_loop_renders_once_per_item_with_item_and_index() -> None:
    email = render(
        {
            "type": "text",
            "content": "Item {{add $.index 1}}: {{$.item.name}}",
            "loop": "data.products",
        },
        context=PRODUCTS,
    )
    assert [b["text"] for b in email.blocks] == ["Item 1: Mouse", "Item 2: Keyboard"]


def test_if_is_evaluated_per_loop_item_and_refs_see_visibility() -> None:
    email = render(
        {
            "type": "group",
            "loop": "data.products",
            "if": "$.item.price > 0",
            "elements": [{"type": "text", "content": "{{$.item.name}} costs {{$.item.price}}"}],
        },
        {"type": "text", "content": "Pro!", "if": "data.plan === 'pro'", "ref": "pro"},
        {"type": "text", "content": "Seen pro", "if": "refs.pro.visible"},
        {"type": "text", "content": "Never", "if": "data.plan === 'free'", "ref": "free"},
        {"type": "text", "content": "No free", "if": "!refs.free.visible"},
        context=PRODUCTS,
    )
    assert [b["text"] for b in email.blocks] == ["Mouse costs 10", "Pro!", "Seen pro", "No free"]


def test_loop_over_a_missing_path_renders_nothing_and_a_scalar_is_an_error() -> None:
    assert (
        render({"type": "text", "content": "x", "loop": "data.nope"}, context=PRODUCTS).blocks == []
    )
    with pytest.raises(RenderError) as caught:
        render({"type": "text", "content": "x", "loop": "data.plan"}, context=PRODUCTS)
    assert caught.value.path == "message.content.elements[0].loop"
    assert "must name an array" in str(caught.value)


def test_first_visible_meta_is_the_subject() -> None:
    email = render(
        {"type": "meta", "title": "Free {{data.plan}}", "if": "data.plan === 'free'"},
        {"type": "meta", "title": "Hello {{profile.email}}"},
        {"type": "meta", "title": "Ignored"},
        {"type": "text", "content": "x"},
        context=PRODUCTS,
    )
    assert email.subject == "Hello jane@example.com"


def test_columns_sit_side_by_side_and_stack_on_small_screens() -> None:
    email = render(
        {
            "type": "columns",
            "elements": [
                {"type": "column", "elements": [{"type": "text", "content": "Left"}]},
                {"type": "column", "elements": [{"type": "text", "content": "Right"}]},
            ],
        }
    )
    assert [b["text"] for b in email.blocks] == ["Left", "Right"]
    assert email.html.count('class="t-column"') == 2 and 'width="50%"' in email.html
    assert ".t-column { display: block !important" in email.html
    assert "Left" in email.text and "Right" in email.text


def test_locale_picks_localized_fields() -> None:
    value = {
        "version": "2022-01-01",
        "elements": [
            {"type": "meta", "title": "Hello", "locales": {"fr": {"title": "Bonjour"}}},
            {"type": "text", "content": "Thanks", "locales": {"fr": {"content": "Merci"}}},
        ],
    }
    email = render_email(parse_content(value, locale="fr"), CONTEXT)
    assert email.subject == "Bonjour" and email.text.strip() == "Merci"


def test_action_styles_and_sizes() -> None:
    email = render(
        {
            "type": "action",
            "content": "Go",
            "href": "https://x.example",
            "style": "secondary",
            "background_color": "#ff0000",
            "border_radius": "12px",
            "padding": "4px 8px",
            "action_id": "go",
        }
    )
    assert "t-button-secondary" in email.html and 'data-action-id="go"' in email.html
    assert "border-radius: 12px" in email.html or "border-radius:12px" in email.html


def test_brand_snippets_are_partials() -> None:
    from tidings.render.branding import brand_look

    brand = brand_look(
        {
            "id": "acme",
            "name": "Acme",
            "settings": {"colors": {"primary": "#112233"}},
            "snippets": {"items": [{"name": "sig", "value": "Cheers, {{profile.email}}"}]},
        }
    )
    content = parse_content({"title": "Hi", "body": "Hello\n\n{{> sig}}"})
    assert "Cheers, jane@example.com" in render_email(content, CONTEXT, brand=brand).text
    with pytest.raises(RenderError, match="could not be found"):
        render_email(content, CONTEXT)
