"""Request data that every store can keep: no NUL, no lone surrogate, bounded nesting.

PostgreSQL cannot store U+0000 in ``text`` or ``jsonb``, and no database can encode a lone
surrogate (``"\\ud800"``) as UTF-8; JSON allows both. A body nested thousands of levels deep
makes any recursive code (a parser, a validator, a template) fail with ``RecursionError``.
:func:`check_json` refuses all three with the field path, the same on both backends, before
anything else looks at the data.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from tidings.domain.errors import ValidationError, index_path, key_path

MAX_DEPTH = 64


def text_problem(text: str) -> str | None:
    """Why ``text`` cannot be stored, or ``None``."""
    if "\x00" in text:
        return "contains a NUL character (\\u0000), which cannot be stored"
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            return "contains a lone surrogate (an unpaired \\ud800-\\udfff), which is not text"
    return None


def _children(value: Any, path: str) -> Iterator[tuple[str, Any]]:
    if isinstance(value, dict):
        for key, item in value.items():
            yield key_path(path, key) if path else str(key), item
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield index_path(path, index), item


def check_json(value: Any, path: str = "", max_depth: int = MAX_DEPTH) -> None:
    """Raise :class:`ValidationError` naming the first string (value or key) that cannot be
    stored, or the first container nested deeper than ``max_depth``. Iterative, so a deep
    value cannot exhaust the stack here."""
    stack: list[tuple[str, Any, int]] = [(path, value, 1)]
    while stack:
        where, item, depth = stack.pop()
        if isinstance(item, str):
            problem = text_problem(item)
            if problem:
                raise ValidationError(where or "body", problem)
            continue
        if not isinstance(item, dict | list):
            continue
        if depth > max_depth:
            raise ValidationError(where or "body", f"is nested deeper than {max_depth} levels")
        if isinstance(item, dict):
            for key in item:
                problem = text_problem(key)
                if problem:
                    raise ValidationError(where or "body", f"has a key that {problem}")
        children = list(_children(item, where))
        stack.extend((p, v, depth + 1) for p, v in reversed(children))
