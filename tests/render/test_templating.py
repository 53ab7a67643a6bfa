"""The Handlebars sandbox: variables, Courier's helpers, escaping, refusals and limits."""

from __future__ import annotations

import pytest

from tidings.render.templating import (
    MAX_LOOP_ITERATIONS,
    MAX_OUTPUT,
    RenderContext,
    RenderError,
    SandboxLimits,
    check_template,
    current_limits,
    render_context_template,
    render_template,
    set_limits,
)

CONTEXT = RenderContext(
    data={
        "name": "Jane",
        "html": "<script>alert(1)</script>",
        "items": [{"name": "Mouse", "price": 10}, {"name": "Keyboard", "price": 20}],
        "plan": "pro",
    },
    profile={"email": "jane@example.com", "locale": "fr"},
    recipient={"user_id": "u1"},
)


def text(source: str, context: RenderContext = CONTEXT) -> str:
    return render_context_template(source, context, html=False, path="message.content.title")


def html(source: str, context: RenderContext = CONTEXT) -> str:
    return render_context_template(source, context, html=True, path="message.content.title")


def test_variables() -> None:
    assert text("{{name}} {{ data.name }} {{profile.email}} {{recipient.user_id}}") == (
        "Jane Jane jane@example.com u1"
    )


def test_named_contexts_win_over_data_keys() -> None:
    context = RenderContext(data={"profile": "shadow", "x": 1}, profile={"email": "e"})
    assert text("{{ profile.email }} {{ data.profile }}", context) == "e shadow"


def test_undefined_renders_empty() -> None:
    assert text("[{{ missing }}|{{ missing.deeper.still }}|{{ data.nope }}]") == "[||]"


def test_escaping_in_html_only() -> None:
    assert html("<p>{{ html }}</p>") == "<p>&lt;script&gt;alert(1)&lt;/script&gt;</p>"
    assert html("{{{ html }}}") == "<script>alert(1)</script>"
    assert text("{{ html }}") == "<script>alert(1)</script>"


def test_blocks_each_and_if() -> None:
    assert text(
        "{{#each items}}{{@index}}:{{this.name}}{{#unless @last}}, {{/unless}}{{/each}}"
    ) == ("0:Mouse, 1:Keyboard")
    assert text("{{#if plan}}paid{{else}}free{{/if}} {{#if nope}}x{{else}}none{{/if}}") == (
        "paid none"
    )
    assert text('{{#if (eq plan "pro")}}P{{/if}}{{#with profile}}{{email}}{{/with}}') == (
        "Pjane@example.com"
    )
    assert text("{{items.length}} {{items.1.name}} {{lookup profile 'email'}}") == (
        "2 Keyboard jane@example.com"
    )


def test_courier_math_helpers() -> None:
    variables = CONTEXT.variables() | {"$": {"item": {"name": "Mouse"}, "index": 0}}
    assert render_template(
        "Item {{add $.index 1}}: {{$.item.name}}", variables, html=False, path="p"
    ) == ("Item 1: Mouse")
    assert (
        text(
            "{{add 1 2}} {{subtract 1 2}} {{multiply 3 4}} {{divide 1 4}} {{abs -3}} "
            "{{ceil 1.1}} {{floor 1.9}} {{round 2.5}} {{mod 7 3}} {{divide 1 0}} {{add 'x' 1}}"
        )
        == "3 -1 12 0.25 3 2 1 3 1 Infinity NaN"
    )


def test_plain_strings_pass_through() -> None:
    assert text("no tags {here} or {name}") == "no tags {here} or {name}"


def test_comments_and_whitespace_control() -> None:
    assert text("a{{! one }}b{{!-- two }} --}}c {{~name~}} d") == "abcJaned"


@pytest.mark.parametrize(
    "source",
    [
        "{{name.__class__}}",
        "{{name.__class__.__mro__}}",
        "{{items.__len__}}",
        "{{data.keys}}{{profile.items}}",
        "{{profile.get}}",
        "{{name.upper}}",
    ],
)
def test_python_attributes_are_unreachable(source: str) -> None:
    # Items only: no attribute of a Python object is ever looked up, let alone called.
    assert text(source) == ""


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ('{{x "a\\"b"}}', "not a Handlebars path"),
        ("{{> header x=1}}", "partials are used by bare name only"),
        ("{{name}", "never closed"),
        ("{{#if plan}}open", "{{#if}} is never closed"),
        ("{{#if plan}}x{{/each}}", "{{/each}} closes {{#if}}"),
        ("{{ }}", "empty"),
        ("{{name; import os}}", "not a Handlebars path"),
    ],
)
def test_refusals_name_the_field(source: str, message: str) -> None:
    with pytest.raises(RenderError) as caught:
        text(source)
    assert str(caught.value).startswith("message.content.title ")
    assert message in str(caught.value)


def test_unknown_helpers_and_partials_fail_clearly() -> None:
    with pytest.raises(RenderError, match=r"^message\.content\.title "):
        text("{{> nowhere}}")


def test_output_is_capped() -> None:
    previous = current_limits()
    set_limits(SandboxLimits(max_output=50, max_loop_iterations=MAX_LOOP_ITERATIONS))
    try:
        with pytest.raises(RenderError, match="more than 50 characters"):
            text("{{#each items}}" + "x" * 40 + "{{/each}}")
        assert text("{{#each items}}x{{/each}}") == "xx"
    finally:
        set_limits(previous)
    assert current_limits() == previous
    assert previous.max_output == MAX_OUTPUT


def test_loops_are_counted_across_nesting() -> None:
    previous = current_limits()
    set_limits(SandboxLimits(max_output=MAX_OUTPUT, max_loop_iterations=5))
    try:
        wide = RenderContext(data={"xs": list(range(3))})
        assert text("{{#each xs}}{{this}}{{/each}}", wide) == "012"
        with pytest.raises(RenderError, match="loops ran more than 5 times"):
            text("{{#each xs}}{{#each ../xs}}.{{/each}}{{/each}}", wide)
        # the budget is per render: the same template works again
        assert text("{{#each xs}}{{this}}{{/each}}", wide) == "012"
    finally:
        set_limits(previous)


def test_check_template_compiles_without_rendering() -> None:
    check_template("{{#each items}}{{this}}{{/each}}", html=False, path="p")
    with pytest.raises(RenderError, match=r"^p "):
        check_template("{{#each items}}", html=False, path="p")
