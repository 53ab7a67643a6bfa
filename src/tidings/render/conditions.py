"""Elemental ``if`` expressions: a small, safe evaluator of Courier's JavaScript-like syntax.

Courier writes conditions as JavaScript (``"data.plan === 'pro'"``,
``"refs.el3.visible && !profile.vip"``). They come from senders, so they are never handed to
an interpreter: this module parses exactly this grammar and evaluates it over plain data.

    expression := or
    or         := and ( "||" and )*
    and        := unary ( "&&" unary )*        (comparisons bind tighter, see below)
    unary      := "!" unary | comparison
    comparison := primary ( ( "===" | "!==" | "==" | "!=" | "<" | "<=" | ">" | ">=" ) primary )?
    primary    := literal | path | "(" expression ")"
    literal    := number | 'string' | "string" | true | false | null | undefined
    path       := root ( "." name | "[" number | string "]" )*
    root       := data | profile | refs | recipient | $

Values follow JavaScript where it matters: ``&&``/``||`` give one of their operands,
truthiness is JavaScript's (``0``, ``""``, ``null``, ``NaN`` are false; empty lists and
objects are true), ``===`` compares type and value, ``==`` converts numbers and numeric
strings, a missing path is ``undefined``. Anything else (calls, assignment, arithmetic,
other names) is refused with a :class:`~tidings.render.errors.RenderError` naming the
field. Parsed expressions are cached.
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Callable, Mapping
from typing import Any

from tidings.render.errors import RenderError

MAX_EXPRESSION = 2000
_MAX_DEPTH = 64
_ROOTS = frozenset({"data", "profile", "refs", "recipient", "$"})


class _Undefined:
    """JavaScript's ``undefined``: a missing path, distinct from ``null``."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "undefined"


UNDEFINED: Any = _Undefined()

_TOKENS = re.compile(
    r"""\s*(?:
        (?P<number>\d+(?:\.\d+)?(?:[eE][-+]?\d+)?)
      | (?P<string>'(?:[^'\\\n]|\\.)*'|"(?:[^"\\\n]|\\.)*")
      | (?P<op>===|!==|==|!=|<=|>=|&&|\|\||[<>!().\[\]])
      | (?P<name>[A-Za-z_$][\w$]*)
    )""",
    re.VERBOSE,
)
_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "\\": "\\", "'": "'", '"': '"'}

Evaluate = Callable[[Mapping[str, Any]], Any]


class _Syntax(Exception):
    pass


def _tokenize(source: str) -> list[tuple[str, str]]:
    tokens: list[tuple[str, str]] = []
    position = 0
    while position < len(source):
        if not source[position:].strip():
            break
        match = _TOKENS.match(source, position)
        if match is None:
            raise _Syntax(f"cannot read {source[position:].strip()[:30]!r}")
        position = match.end()
        kind = match.lastgroup
        assert kind is not None
        tokens.append((kind, match.group(kind)))
    return tokens


def _unquote(literal: str) -> str:
    body = literal[1:-1]
    return re.sub(r"\\(.)", lambda m: _ESCAPES.get(m.group(1), m.group(1)), body)


class _Parser:
    def __init__(self, tokens: list[tuple[str, str]]) -> None:
        self.tokens = tokens
        self.at = 0
        self.depth = 0

    def peek(self) -> tuple[str, str] | None:
        return self.tokens[self.at] if self.at < len(self.tokens) else None

    def take(self, op: str) -> bool:
        token = self.peek()
        if token is not None and token[0] == "op" and token[1] == op:
            self.at += 1
            return True
        return False

    def expect(self, op: str) -> None:
        if not self.take(op):
            found = self.peek()
            raise _Syntax(f"expected {op!r}, found {found[1]!r}" if found else f"expected {op!r}")

    def parse(self) -> Evaluate:
        result = self.or_()
        if self.peek() is not None:
            raise _Syntax(f"unexpected {self.peek()[1]!r}")  # type: ignore[index]
        return result

    def nested(self) -> None:
        self.depth += 1
        if self.depth > _MAX_DEPTH:
            raise _Syntax("nests too deeply")

    def or_(self) -> Evaluate:
        left = self.and_()
        while self.take("||"):
            right = self.and_()
            left = _or(left, right)
        return left

    def and_(self) -> Evaluate:
        left = self.unary()
        while self.take("&&"):
            right = self.unary()
            left = _and(left, right)
        return left

    def unary(self) -> Evaluate:
        if self.take("!"):
            self.nested()
            operand = self.unary()
            self.depth -= 1
            return lambda scope: not truthy(operand(scope))
        return self.comparison()

    def comparison(self) -> Evaluate:
        left = self.primary()
        token = self.peek()
        if token is not None and token[0] == "op" and token[1] in _COMPARE:
            self.at += 1
            right = self.primary()
            compare = _COMPARE[token[1]]
            return lambda scope: compare(left(scope), right(scope))
        return left

    def primary(self) -> Evaluate:
        token = self.peek()
        if token is None:
            raise _Syntax("ends too early")
        kind, text = token
        self.at += 1
        if kind == "op" and text == "(":
            self.nested()
            inner = self.or_()
            self.depth -= 1
            self.expect(")")
            return inner
        if kind == "number":
            number = float(text)
            value: Any = int(number) if number.is_integer() and "." not in text else number
            return lambda scope: value
        if kind == "string":
            string = _unquote(text)
            return lambda scope: string
        if kind == "name":
            literal = {"true": True, "false": False, "null": None, "undefined": UNDEFINED}
            if text in literal:
                constant = literal[text]
                return lambda scope: constant
            if text not in _ROOTS:
                raise _Syntax(
                    f"{text!r} is not allowed; paths start at data, profile, refs, recipient or $"
                )
            return self.path(text)
        raise _Syntax(f"unexpected {text!r}")

    def path(self, root: str) -> Evaluate:
        segments: list[str | int] = []
        while True:
            if self.take("."):
                token = self.peek()
                if token is None or token[0] != "name":
                    raise _Syntax("expected a name after '.'")
                self.at += 1
                segments.append(token[1])
            elif self.take("["):
                token = self.peek()
                if token is None or token[0] not in ("number", "string"):
                    raise _Syntax("expected a number or a string inside [ ]")
                self.at += 1
                segments.append(
                    int(float(token[1])) if token[0] == "number" else _unquote(token[1])
                )
                self.expect("]")
            else:
                break
        if self.peek() == ("op", "("):
            raise _Syntax("calls are not allowed")
        keys = tuple(segments)
        return lambda scope: lookup(scope.get(root, UNDEFINED), keys)


def lookup(value: Any, keys: tuple[str | int, ...]) -> Any:
    """``value`` followed along ``keys`` through objects and arrays; UNDEFINED if missing."""
    for key in keys:
        if isinstance(value, Mapping):
            value = value.get(key, UNDEFINED) if isinstance(key, str) else UNDEFINED
        elif isinstance(value, list | tuple):
            if key == "length":
                value = len(value)
            elif isinstance(key, int) and 0 <= key < len(value):
                value = value[key]
            elif isinstance(key, str) and key.isdigit() and int(key) < len(value):
                value = value[int(key)]
            else:
                return UNDEFINED
        elif isinstance(value, str) and key == "length":
            value = len(value)
        else:
            return UNDEFINED
    return value


def truthy(value: Any) -> bool:
    """JavaScript's truthiness."""
    if value is None or value is UNDEFINED:
        return False
    if isinstance(value, float) and math.isnan(value):
        return False
    if isinstance(value, list | tuple | Mapping):
        return True
    return bool(value)


def _or(left: Evaluate, right: Evaluate) -> Evaluate:
    def evaluate(scope: Mapping[str, Any]) -> Any:
        value = left(scope)
        return value if truthy(value) else right(scope)

    return evaluate


def _and(left: Evaluate, right: Evaluate) -> Evaluate:
    def evaluate(scope: Mapping[str, Any]) -> Any:
        value = left(scope)
        return right(scope) if truthy(value) else value

    return evaluate


def _kind(value: Any) -> str:
    if value is UNDEFINED:
        return "undefined"
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    return "object"


def _strict_equal(a: Any, b: Any) -> bool:
    if _kind(a) != _kind(b):
        return False
    if _kind(a) == "object":
        return a is b
    return bool(a == b)


def _to_number(value: Any) -> float:
    kind = _kind(value)
    if kind == "number":
        return float(value)
    if kind == "boolean":
        return 1.0 if value else 0.0
    if kind == "null":
        return 0.0
    if kind == "string":
        text = value.strip()
        if not text:
            return 0.0
        try:
            return float(text)
        except ValueError:
            return math.nan
    return math.nan


def _loose_equal(a: Any, b: Any) -> bool:
    ka, kb = _kind(a), _kind(b)
    if ka == kb:
        return _strict_equal(a, b)
    if {ka, kb} == {"null", "undefined"}:
        return True
    if "null" in (ka, kb) or "undefined" in (ka, kb) or "object" in (ka, kb):
        return False
    return _to_number(a) == _to_number(b)


def _relation(test: Callable[[Any, Any], bool]) -> Callable[[Any, Any], bool]:
    def compare(a: Any, b: Any) -> bool:
        if _kind(a) == "string" and _kind(b) == "string":
            return test(a, b)
        x, y = _to_number(a), _to_number(b)
        if math.isnan(x) or math.isnan(y):
            return False
        return test(x, y)

    return compare


_COMPARE: dict[str, Callable[[Any, Any], bool]] = {
    "===": _strict_equal,
    "!==": lambda a, b: not _strict_equal(a, b),
    "==": _loose_equal,
    "!=": lambda a, b: not _loose_equal(a, b),
    "<": _relation(lambda a, b: a < b),
    "<=": _relation(lambda a, b: a <= b),
    ">": _relation(lambda a, b: a > b),
    ">=": _relation(lambda a, b: a >= b),
}


@functools.lru_cache(maxsize=1024)
def _compiled(source: str) -> Evaluate:
    if len(source) > MAX_EXPRESSION:
        raise _Syntax(f"is longer than {MAX_EXPRESSION} characters")
    tokens = _tokenize(source)
    if not tokens:
        raise _Syntax("is empty")
    return _Parser(tokens).parse()


def check_condition(source: str, *, path: str) -> None:
    """Raise :class:`RenderError` naming ``path`` if ``source`` is not a valid condition."""
    try:
        _compiled(source)
    except _Syntax as error:
        raise RenderError(path, f"is not a valid condition: {error}") from None


def evaluate_condition(source: str, scope: Mapping[str, Any], *, path: str) -> bool:
    """Whether the condition ``source`` holds over ``scope`` (``data``, ``profile``,
    ``refs``, ``recipient``, ``$``)."""
    try:
        evaluate = _compiled(source)
    except _Syntax as error:
        raise RenderError(path, f"is not a valid condition: {error}") from None
    return truthy(evaluate(scope))


__all__ = ["UNDEFINED", "check_condition", "evaluate_condition", "lookup", "truthy"]
