"""Sandboxed Jinja2 for senders' templates: variables in, text out, Python internals never.

Template strings come from API requests, so they are untrusted code. They run in
Jinja2's :class:`~jinja2.sandbox.SandboxedEnvironment`, made stricter here:

* Reaching for an unsafe attribute (``''.__class__``, ``cycler.__init__``) *fails the
  render* with a :class:`RenderError`, instead of Jinja's default of quietly rendering
  nothing — a sender probing the sandbox should see a refusal, and a silent empty
  string would hide the mistake of an honest one.
* Growth is bounded where one expression can allocate without limit: ``*``, ``**``,
  ``+`` and ``~``, ``%``/``format`` widths, ``str.ljust`` and friends, and size
  arguments of filters such as ``center``, ``indent`` and ``batch``. ``lipsum`` is
  removed. Output is streamed and cut off at ``max_output`` characters.
* Loops are counted: every ``{% for %}`` of one template render (recursive ``loop(…)``
  calls included) shares a budget of ``max_loop_iterations``, so ``range(100000)``
  nested in itself fails in a fraction of a second instead of running for hours.

The two caps are :class:`SandboxLimits`, set once per process with :func:`set_limits`
(the render pool's workers set them from ``TIDINGS_RENDER_MAX_*``). They bound the
common runaways early and with a clear error; what they cannot see (a slow filter over
a large value, a recursive macro) is bounded by the render pool's time and memory
budgets (:mod:`tidings.render.pool`), which is why user content is rendered there.

Variables: every top-level key of ``data`` (``{{name}}``), and ``data``, ``profile`` and
``recipient`` themselves (``{{data.name}}``, ``{{profile.email}}``); those three names
win over keys of ``data`` with the same name. An undefined variable, or an attribute of
one, renders as an empty string (:class:`~jinja2.ChainableUndefined`) — Courier renders
missing variables as nothing too. Only Jinja's ``{{ … }}`` syntax is supported, not
Courier's single-brace ``{name}``.

HTML contexts (``html`` elements, raw HTML) autoescape variables; text contexts
(subject, text part) do not, so nothing is escaped twice. Compiled templates are kept
in an LRU cache keyed by source, as the dispatcher renders the same templates over and
over.
"""

from __future__ import annotations

import contextvars
import functools
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, NoReturn

from jinja2 import ChainableUndefined, TemplateSyntaxError, UndefinedError, nodes, pass_context
from jinja2.compiler import CodeGenerator, Frame
from jinja2.environment import Template
from jinja2.exceptions import SecurityError
from jinja2.runtime import Context, LoopContext, Undefined
from jinja2.sandbox import SandboxedEnvironment

from tidings.render.errors import RenderError

MAX_OUTPUT = 2_000_000
"""Characters one template may produce by default; a whole email is far smaller."""

MAX_LOOP_ITERATIONS = 100_000
"""Loop iterations one template render may run by default. An email whose loops ran this
often and wrote 20 characters each would already be over :data:`MAX_OUTPUT`."""

MAX_SIZE_ARGUMENT = 100_000
"""Largest width or count a template may pass to a growing operation."""

_MAX_INT_BITS = 100_000
_CACHEABLE_SOURCE = 64 * 1024  # larger templates are compiled each time, not kept
_CACHE_SIZE = 1024

_GROWING_STR_METHODS = frozenset({"ljust", "rjust", "center", "zfill", "expandtabs"})
_GROWING_FILTERS = ("batch", "center", "indent", "slice", "truncate", "wordwrap")
# A replacement field whose spec has a six-digit width, or takes its width from an argument.
_HUGE_BRACE_WIDTH = re.compile(r"\{[^{}]*:[^{}]*?(\d{6,}|\{)")
_HUGE_PERCENT_WIDTH = re.compile(r"%[-#0 +]*(\*|\d{6,})|%[-#0 +]*\d*\.(\*|\d{6,})")


@dataclass(frozen=True, slots=True)
class SandboxLimits:
    """The caps of one template render (settings ``TIDINGS_RENDER_MAX_*``)."""

    max_output: int = MAX_OUTPUT
    max_loop_iterations: int = MAX_LOOP_ITERATIONS


_limits = SandboxLimits()


def set_limits(limits: SandboxLimits) -> None:
    """Use ``limits`` for every render of this process from now on."""
    global _limits
    _limits = limits


def current_limits() -> SandboxLimits:
    return _limits


class _LoopBudget:
    """The loop iterations left to the template being rendered."""

    __slots__ = ("left",)

    def __init__(self, iterations: int) -> None:
        self.left = iterations

    def count(self, iterable: Iterable[Any]) -> Iterator[Any]:
        for item in iterable:
            self.left -= 1
            if self.left < 0:
                _refuse(
                    f"its loops ran more than {_limits.max_loop_iterations} times "
                    "(TIDINGS_RENDER_MAX_LOOP_ITERATIONS)"
                )
            yield item


# Set for the duration of one render_template call; a generator-based render runs in
# the caller's context, so every loop of the template sees the same budget.
_loop_budget: contextvars.ContextVar[_LoopBudget | None] = contextvars.ContextVar(
    "tidings_loop_budget", default=None
)
_LOOP_FILTER = "_tidings_counted_loop"


@pass_context  # a context filter is never folded at compile time (it returns a generator)
def _counted_loop(context: Context, iterable: Any) -> Any:
    budget = _loop_budget.get()
    return iterable if budget is None else budget.count(iterable)


def _checked_size(value: Any) -> Any:
    if isinstance(value, str | list | tuple) and len(value) > _limits.max_output:
        _refuse(f"values longer than {_limits.max_output} are not allowed")
    return value


class _CountingCodeGenerator(CodeGenerator):
    """Jinja's code generator, with every loop's iterable passed through the loop budget
    and every ``~`` concatenation checked for size."""

    def visit_Template(self, node: nodes.Template, frame: Frame | None = None) -> None:
        # Before generating: the generator gathers the filters a template uses up front.
        for loop in list(node.find_all(nodes.For)):
            loop.iter = nodes.Filter(
                loop.iter, _LOOP_FILTER, [], [], None, None, lineno=loop.lineno
            )
        super().visit_Template(node, frame)

    def visit_Concat(self, node: nodes.Concat, frame: Frame) -> None:
        self.write("environment.checked_size(")
        super().visit_Concat(node, frame)
        self.write(")")


@dataclass(frozen=True, slots=True)
class RenderContext:
    """What templates may refer to."""

    data: Mapping[str, Any] = field(default_factory=dict)
    profile: Mapping[str, Any] = field(default_factory=dict)
    recipient: Mapping[str, Any] = field(default_factory=dict)

    def variables(self) -> dict[str, Any]:
        """The template variables (see the module docstring for the precedence)."""
        variables = {k: v for k, v in self.data.items() if isinstance(k, str)}
        variables.update(data=self.data, profile=self.profile, recipient=self.recipient)
        return variables


def _refuse(what: str) -> NoReturn:
    raise SecurityError(what)


def _check_size(value: Any, what: str) -> None:
    if isinstance(value, int) and not isinstance(value, bool) and value > MAX_SIZE_ARGUMENT:
        _refuse(f"{what} of {value} is larger than {MAX_SIZE_ARGUMENT}")


def _check_format_string(value: str) -> None:
    if _HUGE_BRACE_WIDTH.search(value) or _HUGE_PERCENT_WIDTH.search(value):
        _refuse("format widths over 99999 are not allowed")


def _sized(name: str, filter_func: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(filter_func)  # keeps jinja's pass_context/pass_environment marks
    def checked(*args: Any, **kwargs: Any) -> Any:
        for value in (*args[1:], *kwargs.values()):
            _check_size(value, f"the {name} filter's argument")
        return filter_func(*args, **kwargs)

    return checked


class _Sandbox(SandboxedEnvironment):
    """The sandbox with the stricter rules described in the module docstring."""

    # Intercepting these also stops Jinja from folding them at compile time.
    intercepted_binops = frozenset({"*", "**", "%", "+"})
    code_generator_class = _CountingCodeGenerator

    def __init__(self, *, autoescape: bool) -> None:
        super().__init__(autoescape=autoescape, undefined=ChainableUndefined)
        self.globals.pop("lipsum", None)
        self.filters[_LOOP_FILTER] = _counted_loop
        self.checked_size = _checked_size
        for name in _GROWING_FILTERS:
            self.filters[name] = _sized(name, self.filters[name])
        format_filter = self.filters["format"]

        def checked_format(value: Any, *args: Any, **kwargs: Any) -> Any:
            if isinstance(value, str):
                _check_format_string(value)
            return format_filter(value, *args, **kwargs)

        self.filters["format"] = checked_format

    def unsafe_undefined(self, obj: Any, attribute: str) -> Undefined:
        _refuse(f"access to {attribute!r} of a {type(obj).__name__} is not allowed")

    def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
        if operator == "*":
            for seq, times in ((left, right), (right, left)):
                if (
                    isinstance(seq, str | list | tuple)
                    and isinstance(times, int)
                    and len(seq) * times > _limits.max_output
                ):
                    _refuse("repeating a sequence that many times is not allowed")
            if (
                isinstance(left, int)
                and isinstance(right, int)
                and left.bit_length() + right.bit_length() > _MAX_INT_BITS
            ):
                _refuse("integers that large are not allowed")
        elif operator == "**":
            if (
                isinstance(left, int)
                and isinstance(right, int)
                and max(left.bit_length(), 1) * abs(right) > _MAX_INT_BITS
            ):
                _refuse("integers that large are not allowed")
        elif operator == "%" and isinstance(left, str):
            _check_format_string(left)
        elif (
            operator == "+"
            and isinstance(left, str | list | tuple)
            and isinstance(right, str | list | tuple)
            and len(left) + len(right) > _limits.max_output
        ):
            _refuse(f"values longer than {_limits.max_output} are not allowed")
        return super().call_binop(context, operator, left, right)

    def wrap_str_format(self, value: Any) -> Callable[..., str] | None:
        wrapped = super().wrap_str_format(value)
        if wrapped is not None:
            _check_format_string(value.__self__)
        return wrapped

    def call(__self, __context: Context, __obj: Any, *args: Any, **kwargs: Any) -> Any:
        if isinstance(getattr(__obj, "__self__", None), str) and (
            getattr(__obj, "__name__", None) in _GROWING_STR_METHODS
        ):
            for value in (*args, *kwargs.values()):
                _check_size(value, f"str.{__obj.__name__}'s argument")
        if isinstance(__obj, LoopContext) and args:
            # A recursive loop's ``loop(children)`` iterates outside the loop statement.
            args = (_counted_loop(__context, args[0]), *args[1:])
        return super().call(__context, __obj, *args, **kwargs)


_HTML = _Sandbox(autoescape=True)
_TEXT = _Sandbox(autoescape=False)


@functools.lru_cache(maxsize=_CACHE_SIZE)
def _cached_template(source: str, html: bool) -> Template:
    return (_HTML if html else _TEXT).from_string(source)


def _template(source: str, html: bool) -> Template:
    if len(source) > _CACHEABLE_SOURCE:
        return (_HTML if html else _TEXT).from_string(source)
    return _cached_template(source, html)


@functools.lru_cache(maxsize=_CACHE_SIZE)
def _cached_expression(source: str) -> Callable[..., Any]:
    return _TEXT.compile_expression(source, undefined_to_none=False)


def _failure(error: Exception, path: str) -> RenderError:
    """The :class:`RenderError` a person can act on for ``error``."""
    if isinstance(error, TemplateSyntaxError):
        return RenderError(path, f"has a template error on line {error.lineno}: {error.message}")
    if isinstance(error, SecurityError):
        return RenderError(path, f"was refused by the template sandbox: {error}")
    if isinstance(error, UndefinedError):
        return RenderError(path, f"uses an undefined value: {error.message}")
    return RenderError(path, f"could not be rendered: {type(error).__name__}: {error}")


def check_template(source: str, *, html: bool, path: str) -> None:
    """Raise :class:`RenderError` if ``source`` is not a valid template (compiles only)."""
    try:
        _template(source, html)
    except MemoryError:
        raise
    except Exception as error:
        raise _failure(error, path) from None


def check_condition(source: str, *, path: str) -> None:
    """Raise :class:`RenderError` if ``source`` is not a valid Jinja expression."""
    try:
        _cached_expression(source)
    except MemoryError:
        raise
    except Exception as error:
        raise _failure(error, path) from None


def render_template(source: str, variables: Mapping[str, Any], *, html: bool, path: str) -> str:
    """Render ``source`` with ``variables``; ``html`` turns autoescaping on.

    ``variables`` usually comes from :meth:`RenderContext.variables`. Raises
    :class:`RenderError` (naming ``path``) for any failure, including sandbox refusals,
    loops over the loop budget and output over the output cap (:class:`SandboxLimits`).
    """
    if "{" not in source:
        # Most strings of a message have no template syntax, and Jinja leaves literal
        # text as it is (autoescape touches only variables): skip Jinja entirely.
        return source
    limits = _limits
    budget = _loop_budget.set(_LoopBudget(limits.max_loop_iterations))
    try:
        template = _template(source, html)
        parts: list[str] = []
        size = 0
        for part in template.generate(variables):
            size += len(part)
            if size > limits.max_output:
                raise RenderError(
                    path,
                    f"renders to more than {limits.max_output} characters "
                    "(TIDINGS_RENDER_MAX_OUTPUT_CHARS)",
                )
            parts.append(part)
        return "".join(parts)
    except (RenderError, MemoryError):
        # A MemoryError is the render pool's memory budget (render/pool.py) and is
        # reported as such there, not as a template error.
        raise
    except Exception as error:
        raise _failure(error, path) from None
    finally:
        _loop_budget.reset(budget)


def render_context_template(source: str, context: RenderContext, *, html: bool, path: str) -> str:
    """:func:`render_template` with the variables of ``context``."""
    return render_template(source, context.variables(), html=html, path=path)


def evaluate_condition(source: str, variables: Mapping[str, Any], *, path: str) -> bool:
    """Whether the Jinja expression ``source`` (an Elemental ``if``) is true."""
    try:
        return bool(_cached_expression(source)(**variables))
    except MemoryError:
        raise
    except Exception as error:
        raise _failure(error, path) from None


__all__ = [
    "MAX_LOOP_ITERATIONS",
    "MAX_OUTPUT",
    "RenderContext",
    "RenderError",
    "SandboxLimits",
    "check_condition",
    "check_template",
    "current_limits",
    "evaluate_condition",
    "render_context_template",
    "render_template",
    "set_limits",
]
