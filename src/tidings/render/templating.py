"""Senders' templates, rendered as Courier renders them: Handlebars, sandboxed and bounded.

Template strings come from API requests and stored templates, so they are untrusted code.
They are rendered with pybars3 (Handlebars for Python; not pybars4, which ships with the
HTML escaping of ``{{value}}`` switched off), made safe in three layers:

* **Checked source.** Before pybars sees a template, every ``{{…}}`` tag is tokenised
  and must consist only of Handlebars' own pieces: paths (``name``, ``data.items.[0]``,
  ``$.item.name``, ``../x``, ``@index``), string literals without backslashes, numbers,
  ``true``/``false``/``null``, ``key=value`` hash arguments and ``( … )`` sub-expressions,
  behind the sigils ``#``, ``/``, ``^``, ``&``, ``!`` (comments) and ``>`` (a partial, by
  bare name only). pybars compiles templates to Python source; this check keeps anything
  that is not Handlebars from reaching its code generator.
* **No attribute access.** Paths resolve through objects' *items* only (JSON objects and
  arrays, plus ``length``), never through Python attributes: pybars' own lookup falls
  back to ``getattr``, which would reach ``''.__class__`` and call what it finds. The
  lookup is replaced once, at import, by :func:`_safe_pick`.
* **Bounded work.** ``#each`` iterations of one render share a budget of
  ``max_loop_iterations``; output over ``max_output`` characters fails the render. What
  the caps cannot see is bounded by the render pool's time and memory budgets
  (:mod:`tidings.render.pool`), which is why user content is rendered there.

Variables, as in Courier: every top-level key of ``data`` (``{{name}}``), and ``data``,
``profile``, ``recipient`` and ``refs`` themselves (``{{profile.email}}``); those names win
over keys of ``data`` with the same name. Inside an element's ``loop``, ``$.item`` and
``$.index`` name the current item (``{{add $.index 1}}``). Helpers: Courier's math helpers
(``add``, ``subtract``, ``multiply``, ``divide``, ``mod``, ``abs``, ``ceil``, ``floor``,
``round``), comparisons for sub-expressions (``eq``, ``ne``, ``gt``, ``gte``, ``lt``,
``lte``, ``and``, ``or``, ``not``) and Handlebars' built-ins (``if``, ``unless``, ``each``,
``with``, ``lookup``). A missing variable renders as nothing, as in Courier.

HTML contexts (``html`` elements, raw HTML) escape variables (``{{x}}``; ``{{{x}}}`` does
not); text contexts (subject, text, labels) do not escape, because the text is escaped as a
whole when it is placed in HTML — so nothing is escaped twice. Compiled templates are kept
in an LRU cache keyed by source.
"""

from __future__ import annotations

import contextvars
import functools
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

import pybars
import pybars._compiler as _pybars_compiler

from tidings.render.errors import RenderError

MAX_OUTPUT = 2_000_000
"""Characters one template may produce by default; a whole email is far smaller."""

MAX_LOOP_ITERATIONS = 100_000
"""Loop iterations (``#each`` items, Elemental ``loop`` items) one render may run."""

MAX_SOURCE = 256 * 1024
"""Characters of one template string; larger ones are refused before compiling."""

_CACHEABLE_SOURCE = 64 * 1024
_CACHE_SIZE = 1024


@dataclass(frozen=True, slots=True)
class SandboxLimits:
    """The caps of one template render (settings ``TIDINGS_RENDER_MAX_*``)."""

    max_output: int = MAX_OUTPUT
    max_loop_iterations: int = MAX_LOOP_ITERATIONS


_limits = SandboxLimits()


def set_limits(limits: SandboxLimits) -> None:
    """Set this process's caps (the render pool's workers call it once at start)."""
    global _limits
    _limits = limits


def current_limits() -> SandboxLimits:
    return _limits


# --- the safe lookup -------------------------------------------------------------------


def _safe_pick(context: Any, name: Any, default: Any = None) -> Any:
    """pybars' ``pick`` without its ``getattr`` fallback: items of mappings only."""
    if isinstance(context, Mapping | _pybars_compiler.Scope):
        try:
            value = context[name]
        except (KeyError, TypeError):
            return default
        return default if value is None else value
    if isinstance(context, str) and name == "length":
        return len(context)
    return default


def _safe_resolve(context: Any, *segments: str) -> Any:
    """pybars' ``resolve`` with JavaScript's answers for arrays: ``items.length``, an index,
    and nothing (rather than a Python ValueError) for any other name or a missing index."""
    if segments == ("",) and isinstance(context, _pybars_compiler.Scope):
        return context.get("this")
    carry = False
    for segment in segments:
        if carry:
            carry = False
            segment = f"@{segment}"
        if len(segment) > 1 and segment[:2] == "@@":
            segment = segment[1:]
            carry = True
        if context is None:
            return None
        if segment in (None, ""):
            continue
        if isinstance(context, list | tuple):
            if segment == "length":
                return len(context)
            if not segment.isdigit() or int(segment) >= len(context):
                return None
            context = context[int(segment)]
        else:
            context = _safe_pick(context, segment)
    return context


_pybars_compiler.pick = _safe_pick
_pybars_compiler.resolve = _safe_resolve


# --- loop budget -----------------------------------------------------------------------


class LoopBudget:
    """Iterations left for one render; shared by ``#each`` and Elemental ``loop``."""

    __slots__ = ("left", "limit")

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.left = limit

    def spend(self, count: int, path: str) -> None:
        self.left -= count
        if self.left < 0:
            raise RenderError(
                path,
                f"its loops ran more than {self.limit} times (TIDINGS_RENDER_MAX_LOOP_ITERATIONS)",
            )


_budget: contextvars.ContextVar[LoopBudget | None] = contextvars.ContextVar(
    "tidings_loop_budget", default=None
)
_path: contextvars.ContextVar[str] = contextvars.ContextVar("tidings_render_path", default="")
_NO_PARTIALS: Mapping[str, str] = MappingProxyType({})
_partials: contextvars.ContextVar[Mapping[str, str]] = contextvars.ContextVar(
    "tidings_render_partials", default=_NO_PARTIALS
)


def use_partials(partials: Mapping[str, str]) -> contextvars.Token[Mapping[str, str]]:
    """Make ``partials`` (a brand's snippets) what ``{{> name}}`` includes in this render."""
    return _partials.set(partials)


def reset_partials(token: contextvars.Token[Mapping[str, str]]) -> None:
    _partials.reset(token)


def new_budget() -> contextvars.Token[LoopBudget | None]:
    """Start a render's shared loop budget (an Elemental document is one render)."""
    return _budget.set(LoopBudget(_limits.max_loop_iterations))


def reset_budget(token: contextvars.Token[LoopBudget | None]) -> None:
    _budget.reset(token)


def spend_loop(count: int, path: str) -> None:
    """Count ``count`` iterations against the current render's budget."""
    budget = _budget.get()
    if budget is None:
        budget = LoopBudget(_limits.max_loop_iterations)
        _budget.set(budget)
    budget.spend(count, path)


# --- helpers ---------------------------------------------------------------------------


def _number(value: Any) -> float | int:
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int | float):
        return value
    if isinstance(value, str):
        try:
            as_float = float(value)
        except ValueError:
            return math.nan
        return int(as_float) if as_float.is_integer() and "." not in value else as_float
    return math.nan


def _shown(value: float | int) -> float | int | str:
    if isinstance(value, float):
        if math.isnan(value):
            return "NaN"
        if math.isinf(value):
            return "Infinity" if value > 0 else "-Infinity"
        if value.is_integer() and abs(value) < 2**53:
            return int(value)
    return value


def _math(operation: Callable[..., float | int]) -> Callable[..., Any]:
    def helper(this: Any, *args: Any) -> Any:
        try:
            return _shown(operation(*(_number(a) for a in args)))
        except (ArithmeticError, ValueError, TypeError):
            return "NaN"

    return helper


def _divide(a: float, b: float) -> float:
    if b == 0:
        return math.nan if a == 0 else math.copysign(math.inf, a)
    return a / b


def _mod(a: float, b: float) -> float:
    return math.nan if b == 0 else math.fmod(a, b)


def _round(a: float) -> float:
    # JavaScript's Math.round: halves go up.
    return math.floor(a + 0.5)


def _checked_size(value: float | int) -> float | int:
    if abs(value) > 10**15:
        raise ValueError("too large")
    return value


def _truthy(value: Any) -> bool:
    if isinstance(value, float) and math.isnan(value):
        return False
    if isinstance(value, list | Mapping):
        return True
    return bool(value)


def _counted_each(this: Any, options: Any, context: Any) -> Any:
    if context is not None and hasattr(context, "__len__"):
        spend_loop(len(context), _path.get())
    return _pybars_compiler._each(this, options, context)


_HELPERS: dict[str, Callable[..., Any]] = {
    "add": _math(lambda a, b: _checked_size(a + b)),
    "subtract": _math(lambda a, b: _checked_size(a - b)),
    "multiply": _math(lambda a, b: _checked_size(a * b)),
    "divide": _math(_divide),
    "mod": _math(_mod),
    "abs": _math(abs),
    "ceil": _math(math.ceil),
    "floor": _math(math.floor),
    "round": _math(_round),
    "eq": lambda this, a, b: a == b,
    "ne": lambda this, a, b: a != b,
    "gt": lambda this, a, b: _number(a) > _number(b),
    "gte": lambda this, a, b: _number(a) >= _number(b),
    "lt": lambda this, a, b: _number(a) < _number(b),
    "lte": lambda this, a, b: _number(a) <= _number(b),
    "and": lambda this, *args: all(_truthy(a) for a in args),
    "or": lambda this, *args: any(_truthy(a) for a in args),
    "not": lambda this, a: not _truthy(a),
    "each": _counted_each,
    # Handlebars' log writes to the server's stdout; a sender has no business there.
    "log": lambda this, *args: "",
}


# --- checking the source ---------------------------------------------------------------

_SEGMENT = r"(?:@?[A-Za-z_$][\w$-]*|\[[^\]\\\"'\n{}]*\]|\d+)"
_PATH = rf"(?:\.\./)*(?:this|\.|{_SEGMENT})(?:[./]{_SEGMENT})*"
_TOKEN = re.compile(
    rf"""\s*(?:
        (?P<string>"[^"\\\n]*"|'[^'\\\n]*')
      | (?P<number>-?\d+(?:\.\d+)?)(?![\w.])
      | (?P<hash>[A-Za-z_][\w-]*)=
      | (?P<open>\()
      | (?P<close>\))
      | (?P<path>{_PATH})
    )""",
    re.VERBOSE,
)
_TAG = re.compile(r"\{\{(\{)?(~)?(.*?)(~)?(\})?\}\}", re.DOTALL)
_COMMENT = re.compile(r"\{\{!--.*?--\}\}|\{\{![^}]*\}\}", re.DOTALL)
_PARTIAL_NAME = re.compile(r"[A-Za-z_][\w-]*")


class _Refused(Exception):
    pass


def _check_expression(body: str) -> str:
    """``body`` (the inside of a tag, after its sigil) rewritten for pybars, or raise."""
    out: list[str] = []
    depth = 0
    position = 0
    while position < len(body):
        if body[position:].strip() == "":
            break
        match = _TOKEN.match(body, position)
        if match is None:
            shown = body[position:].strip()[:40]
            raise _Refused(f"{shown!r} is not a Handlebars path, literal or helper call")
        position = match.end()
        if match.group("open"):
            depth += 1
            out.append(" (")
        elif match.group("close"):
            depth -= 1
            if depth < 0:
                raise _Refused("has an unmatched ')'")
            out.append(")")
        elif (text := match.group("path")) is not None:
            # Courier's loop variables: ``$.item`` is not a Handlebars identifier, but the
            # segment literal ``[$]`` is.
            if text == "$" or text.startswith("$."):
                text = "[$]" + text[1:]
            out.append(" " + text)
        elif (text := match.group("hash")) is not None:
            out.append(f" {text}=")
            # the value follows as its own token; no space between
            nxt = _TOKEN.match(body, position)
            if nxt is None or nxt.group("hash") or nxt.group("close"):
                raise _Refused(f"hash argument {text}= needs a value")
            position = nxt.end()
            value = nxt.group(0).strip()
            if value.startswith("$"):
                value = "[$]" + value[1:]
            out.append(value)
        elif (text := match.group("number")) is not None:
            # pybars knows integers only; the math helpers read numeric strings alike.
            out.append(f' "{text}"' if "." in text else f" {text}")
        else:
            out.append(" " + match.group(0).strip())
    if depth != 0:
        raise _Refused("has an unmatched '('")
    return "".join(out).strip()


def _checked_source(source: str, *, html: bool) -> str:
    """``source`` with every tag checked, ``$.`` paths rewritten and, in text contexts,
    ``{{x}}`` made unescaped (``{{&x}}``)."""
    pieces: list[str] = []
    blocks: list[str] = []
    last = 0
    source = _COMMENT.sub("", source)
    for tag in _TAG.finditer(source):
        _check_literal(source[last : tag.start()])
        pieces.append(source[last : tag.start()])
        last = tag.end()
        triple, left_tilde, body, right_tilde, closing = tag.groups()
        if (triple is None) != (closing is None):
            raise _Refused("has unbalanced braces in a {{{…}}} tag")
        lt, rt = left_tilde or "", right_tilde or ""
        body = body.strip()
        if triple:
            pieces.append("{{{" + lt + _check_expression(body) + rt + "}}}")
            continue
        sigil = body[:1]
        if sigil in ("#", "^", "&"):
            expression = _check_expression(body[1:])
            if sigil != "&":
                blocks.append(expression.split(" ", 1)[0])
            pieces.append("{{" + lt + sigil + expression + rt + "}}")
        elif sigil == "/":
            expression = _check_expression(body[1:])
            if not blocks or blocks[-1] != expression:
                opened = f"{{{{#{blocks[-1]}}}}}" if blocks else "no block"
                raise _Refused(f"{{{{/{expression}}}}} closes {opened}")
            blocks.pop()
            pieces.append("{{" + lt + "/" + expression + rt + "}}")
        elif sigil == ">":
            name = body[1:].strip()
            if not _PARTIAL_NAME.fullmatch(name):
                raise _Refused("partials are used by bare name only, as {{> name}}")
            pieces.append("{{" + lt + "> " + name + rt + "}}")
        elif body == "else":
            pieces.append("{{" + lt + "else" + rt + "}}")
        elif sigil == "!":
            continue
        elif body.startswith("else "):
            pieces.append("{{" + lt + "else " + _check_expression(body[5:]) + rt + "}}")
        else:
            expression = _check_expression(body)
            if not expression:
                raise _Refused("has an empty {{ }} tag")
            pieces.append("{{" + lt + ("" if html else "&") + expression + rt + "}}")
    _check_literal(source[last:])
    if blocks:
        raise _Refused(f"{{{{#{blocks[-1]}}}}} is never closed")
    pieces.append(source[last:])
    return "".join(pieces)


def _check_literal(text: str) -> None:
    if "{{" in text:
        raise _Refused("has a '{{' that is never closed with '}}'")


# --- compiling and rendering -----------------------------------------------------------

_compiler = pybars.Compiler()
_Template = Callable[..., Any]


def _compile(source: str, html: bool) -> _Template:
    if len(source) > MAX_SOURCE:
        raise _Refused(f"is longer than {MAX_SOURCE} characters")
    checked = _checked_source(source, html=html)
    compiled: _Template = _compiler.compile(checked)
    return compiled


@functools.lru_cache(maxsize=_CACHE_SIZE)
def _cached(source: str, html: bool) -> _Template:
    return _compile(source, html)


def _template(source: str, html: bool) -> _Template:
    if len(source) > _CACHEABLE_SOURCE:
        return _compile(source, html)
    return _cached(source, html)


def _failure(error: Exception, path: str) -> RenderError:
    """The :class:`RenderError` a person can act on for ``error``."""
    if isinstance(error, _Refused):
        return RenderError(path, f"was refused by the template sandbox: {error}")
    if isinstance(error, pybars.PybarsError):
        return RenderError(path, f"has a template error: {error}")
    return RenderError(path, f"could not be rendered: {type(error).__name__}: {error}")


@dataclass(frozen=True, slots=True)
class RenderContext:
    """What templates may refer to."""

    data: Mapping[str, Any] = field(default_factory=dict)
    profile: Mapping[str, Any] = field(default_factory=dict)
    recipient: Mapping[str, Any] = field(default_factory=dict)

    def variables(self) -> dict[str, Any]:
        """The template variables (see the module docstring for the precedence)."""
        variables = {k: v for k, v in self.data.items() if isinstance(k, str)}
        variables.update(data=self.data, profile=self.profile, recipient=self.recipient, refs={})
        return variables


def check_template(source: str, *, html: bool, path: str) -> None:
    """Raise :class:`RenderError` if ``source`` is not a valid template (compiles only)."""
    if "{{" not in source:
        return
    try:
        _template(source, html)
    except MemoryError:
        raise
    except Exception as error:
        raise _failure(error, path) from None


def render_template(
    source: str,
    variables: Mapping[str, Any],
    *,
    html: bool,
    path: str,
    partials: Mapping[str, str] | None = None,
) -> str:
    """Render ``source`` with ``variables``; ``html`` escapes variables.

    ``variables`` usually comes from :meth:`RenderContext.variables`. ``partials`` are
    named templates ``{{> name}}`` may include (a brand's snippets). Raises
    :class:`RenderError` (naming ``path``) for any failure, including sandbox refusals,
    loops over the loop budget and output over the output cap (:class:`SandboxLimits`).
    """
    if "{{" not in source:
        # Most strings of a message have no template syntax: skip the engine entirely.
        return source
    limits = _limits
    path_token = _path.set(path)
    budget_token = None
    if _budget.get() is None:
        budget_token = new_budget()
    try:
        template = _template(source, html)
        named = partials if partials is not None else _partials.get()
        compiled_partials = {name: _template(text, html) for name, text in named.items()}
        result = str(template(dict(variables), helpers=_HELPERS, partials=compiled_partials))
        if len(result) > limits.max_output:
            raise RenderError(
                path,
                f"renders to more than {limits.max_output} characters "
                "(TIDINGS_RENDER_MAX_OUTPUT_CHARS)",
            )
        return result
    except (RenderError, MemoryError):
        # A MemoryError is the render pool's memory budget (render/pool.py) and is
        # reported as such there, not as a template error.
        raise
    except RecursionError:
        raise RenderError(path, "nests too deeply (a partial that includes itself?)") from None
    except Exception as error:
        raise _failure(error, path) from None
    finally:
        _path.reset(path_token)
        if budget_token is not None:
            reset_budget(budget_token)


def render_context_template(source: str, context: RenderContext, *, html: bool, path: str) -> str:
    """:func:`render_template` with the variables of ``context``."""
    return render_template(source, context.variables(), html=html, path=path)


__all__ = [
    "MAX_LOOP_ITERATIONS",
    "MAX_OUTPUT",
    "LoopBudget",
    "RenderContext",
    "RenderError",
    "SandboxLimits",
    "check_template",
    "current_limits",
    "new_budget",
    "render_context_template",
    "render_template",
    "reset_budget",
    "reset_partials",
    "set_limits",
    "spend_loop",
    "use_partials",
]
