"""The template sandbox: variables, escaping, undefined values, and refusals."""

from __future__ import annotations

from typing import Any

import pytest

from tidings.render.templating import (
    MAX_LOOP_ITERATIONS,
    MAX_OUTPUT,
    RenderContext,
    RenderError,
    SandboxLimits,
    check_condition,
    check_template,
    current_limits,
    evaluate_condition,
    render_context_template,
    render_template,
    set_limits,
)

CONTEXT = RenderContext(
    data={"name": "Jane", "html": "<script>alert(1)</script>", "items": [1, 2, 3]},
    profile={"email": "jane@example.com"},
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
    assert text("{{ html }}") == "<script>alert(1)</script>"


def test_control_flow_and_filters() -> None:
    assert text("{% for i in items %}{{ i }}{% if not loop.last %},{% endif %}{% endfor %}") == (
        "1,2,3"
    )
    assert text("{{ name|upper }} {{ '{:,}'.format(1234567) }}") == "JANE 1,234,567"


def test_plain_strings_pass_through() -> None:
    assert render_template("no braces at all <b>", {}, html=True, path="p") == (
        "no braces at all <b>"
    )


SANDBOX_ESCAPES = [
    "{{ ''.__class__.__mro__[1].__subclasses__() }}",
    "{{ cycler.__init__.__globals__ }}",
    "{{ joiner.__init__.__globals__.os }}",
    "{{ namespace.__init__.__globals__ }}",
    "{{ self.__init__.__globals__ }}",
    "{{ ''.__class__ }}",
    "{{ items.__class__.__base__ }}",
    "{{ '{0.__class__.__mro__}'.format(name) }}",
    "{{ name|attr('__class__') }}",
    "{% set x = ''.__class__ %}{{ x }}",
]


@pytest.mark.parametrize("source", SANDBOX_ESCAPES)
@pytest.mark.parametrize("render", [text, html])
def test_reaching_python_internals_fails_safely(source: str, render: Any) -> None:
    with pytest.raises(RenderError) as caught:
        render(source)
    assert caught.value.path == "message.content.title"
    assert "refused by the template sandbox" in caught.value.message


RESOURCE_BOMBS = [
    "{{ 'a' * 100000000 }}",
    "{{ items * 10000000 }}",
    "{{ 10 ** 1000000 }}",
    "{{ '%0999999999d' % 1 }}",
    "{{ '{:>999999999}'.format(1) }}",
    "{{ '{:>{}}'.format(1, 999999999) }}",
    "{{ 'a'.ljust(1000000000) }}",
    "{{ 'a'|center(1000000000) }}",
    "{{ 'a'|indent(1000000000, true) }}",
    "{{ items|batch(1000000000, 'x')|list }}",
    "{{ '%999999999s'|format('a') }}",
]


@pytest.mark.parametrize("source", RESOURCE_BOMBS)
def test_growth_is_refused(source: str) -> None:
    with pytest.raises(RenderError, match="refused by the template sandbox"):
        text(source)


def test_output_is_capped() -> None:
    source = "{% for a in range(1000) %}{{ 'x' * 100000 }}{% endfor %}"
    with pytest.raises(RenderError, match=f"more than {MAX_OUTPUT} characters"):
        text(source)


LOOP_BOMBS = [
    "{% for a in range(100000) %}{% for b in range(100000) %}{% endfor %}{% endfor %}",
    # ``loop.index`` makes Jinja use its LoopContext; ``if`` a filtered loop.
    "{% for a in range(100000) %}{% for b in range(100000) if b %}{{ loop.index if 0 }}"
    "{% endfor %}{% endfor %}",
    # A recursive loop's inner iterations happen in ``loop(...)``, not in the for statement.
    "{% for x in [0] recursive %}{% if loop.depth < 3 %}{{ loop(range(1000)) }}{% endif %}"
    "{% endfor %}",
]


@pytest.mark.parametrize("source", LOOP_BOMBS)
def test_loops_are_counted(source: str) -> None:
    message = f"loops ran more than {MAX_LOOP_ITERATIONS} times"
    with pytest.raises(RenderError, match=message):
        text(source)


def test_loops_within_the_budget_work_as_before() -> None:
    source = (
        "{% for x in items %}{{ x }}/{{ loop.length }} {% endfor %}"
        "{% for x in items if x > 1 %}{{ x }}{% else %}none{% endfor %} "
        "{% for x in missing %}x{% else %}empty{% endfor %} "
        "{% for k, v in {'a': 1}.items() %}{{ k }}={{ v }}{% endfor %}"
    )
    assert text(source) == "1/3 2/3 3/3 23 empty a=1"
    assert text("{% for a in range(300) %}{% for b in range(300) %}{% endfor %}{% endfor %}ok")


def test_the_budget_is_per_render() -> None:
    loop = "{% for a in range(300) %}{% for b in range(300) %}{% endfor %}{% endfor %}ok"
    for _ in range(3):  # 90,300 iterations each: together over the budget
        assert text(loop) == "ok"


@pytest.mark.parametrize(
    "source",
    [
        "{% set ns = namespace(s='x') %}{% for i in range(40) %}{% set ns.s = ns.s ~ ns.s %}"
        "{% endfor %}",
        "{% set ns = namespace(s='x') %}{% for i in range(40) %}{% set ns.s = ns.s + ns.s %}"
        "{% endfor %}",
        "{% set ns = namespace(s=[1]) %}{% for i in range(40) %}{% set ns.s = ns.s + ns.s %}"
        "{% endfor %}",
    ],
)
def test_doubling_a_value_is_refused(source: str) -> None:
    with pytest.raises(RenderError, match=f"values longer than {MAX_OUTPUT} are not allowed"):
        text(source)


def test_concatenation_still_works() -> None:
    assert text("{{ name ~ '!' }} {{ name + '?' }} {{ [1] + [2] }} {{ 1 + 2 }}") == (
        "Jane! Jane? [1, 2] 3"
    )


def test_limits_can_be_set() -> None:
    before = current_limits()
    set_limits(SandboxLimits(max_output=1000, max_loop_iterations=10))
    try:
        assert text("{% for a in range(10) %}.{% endfor %}") == ".........."
        with pytest.raises(RenderError, match="loops ran more than 10 times"):
            text("{% for a in range(11) %}.{% endfor %}")
        with pytest.raises(RenderError, match="more than 1000 characters"):
            text("{{ 'x' * 600 }}{{ 'y' * 600 }}")
    finally:
        set_limits(before)


def test_lipsum_is_gone() -> None:
    with pytest.raises(RenderError, match="undefined"):
        text("{{ lipsum(1000) }}")


def test_syntax_error_names_line() -> None:
    with pytest.raises(RenderError) as caught:
        text("line one\n{% for x in %}")
    assert str(caught.value).startswith("message.content.title has a template error on line 2:")


def test_runtime_errors_become_render_errors() -> None:
    with pytest.raises(RenderError, match="ZeroDivisionError"):
        text("{{ 1 / 0 }}")
    with pytest.raises(RenderError, match="undefined"):
        text("{{ missing() }}")


def test_check_template_compiles_without_rendering() -> None:
    check_template("{{ 1 / 0 }}", html=False, path="p")  # fails only when rendered
    with pytest.raises(RenderError, match="template error"):
        check_template("{{ unclosed", html=True, path="p")


def test_conditions() -> None:
    variables = CONTEXT.variables()
    assert evaluate_condition("name == 'Jane'", variables, path="p")
    assert evaluate_condition("items|length > 2", variables, path="p")
    assert not evaluate_condition("data.vip", variables, path="p")
    assert evaluate_condition("not profile.vip", variables, path="p")
    with pytest.raises(RenderError, match="refused by the template sandbox"):
        evaluate_condition("name.__class__", variables, path="p")
    with pytest.raises(RenderError, match="template error"):
        check_condition("data.plan === 'pro'", path="p")
