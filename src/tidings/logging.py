"""Structured logs (structlog), with secrets masked before anything is written.

Everything that reaches stderr passes the masker: structlog's events (their formatted
exceptions included) and the records of any library's stdlib logger (uvicorn, SQLAlchemy,
asyncio), their tracebacks included. Besides the keys this process knows (registered), it
masks what looks like a credential wherever it appears: an ``Authorization`` header's value,
the value of an ``apiKey``-like field in JSON or a form, and the row PostgreSQL quotes in a
constraint error ("Failing row contains (...)"), which holds whatever a message carried.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import MutableMapping
from typing import Any

import structlog

_SECRETS: set[str] = set()
_BASIC = re.compile(r"(?i)(authorization['\"]?\s*[:=]\s*['\"]?(?:basic|bearer)\s+)[^\s'\"]+")
# A field that names a credential, then its value: `"apiKey": "k"`, `api_key=k`, `'password': 'k'`
# (JSON, Python reprs, forms). Only the value goes; the name stays so the line still reads.
_FIELD = re.compile(
    r"(?i)(\\?['\"]?(?:api[_-]?key|apikey|signing[_-]?key|webhook_signing_key|password"
    r"|secret|access[_-]?token|auth[_-]?token|private[_-]?key)\\?['\"]?\s*[:=]\s*)"
    r"(\"(?:[^\"\\]|\\.)*\"|'(?:[^'\\]|\\.)*'|\\\"(?:[^\\]|\\[^\"])*\\\""
    r"|[^\s,;&)}\]\\'\"]+)"
)
# PostgreSQL quotes the whole row in NOT NULL and CHECK violations (its values may span lines:
# the row ends where the error's next part begins).
_FAILING_ROW = re.compile(
    r"(Failing row contains )\(.*?\)(?=\.?(?:\n\n|\n(?:\[SQL|HINT|CONTEXT|\(Background)|\Z))",
    re.DOTALL,
)


def register_secret(secret: str | None) -> None:
    """Mask ``secret`` wherever it would appear in a log line (keeps the last 4 characters)."""
    if secret and len(secret) >= 8:
        _SECRETS.add(secret)


def register_provider_secrets(settings: dict[str, Any]) -> None:
    for name in ("api_key", "webhook_signing_key"):
        value = settings.get(name)
        if isinstance(value, str):
            register_secret(value)


def _field_value(match: re.Match[str]) -> str:
    value = match.group(2)
    quote = '\\"' if value.startswith('\\"') else value[0] if value[:1] in ("'", '"') else ""
    inner = value[len(quote) : len(value) - len(quote)]
    return f"{match.group(1)}{quote}****{inner[-4:] if len(inner) >= 8 else ''}{quote}"


def mask_text(text: str) -> str:
    for secret in _SECRETS:
        if secret in text:
            text = text.replace(secret, "****" + secret[-4:])
    text = _BASIC.sub(r"\1****", text)
    text = _FIELD.sub(_field_value, text)
    return _FAILING_ROW.sub(r"\1(…hidden…)", text)


def _masked_value(value: Any) -> Any:
    if isinstance(value, str):
        return mask_text(value)
    if value is None or isinstance(value, bool | int | float):
        return value
    # Anything else (an exception, a dict, a request) would be rendered with its repr.
    return mask_text(repr(value))


def _mask(_logger: Any, _name: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    for key, value in list(event.items()):
        event[key] = _masked_value(value)
    return event


class _MaskingFilter(logging.Filter):
    """Masks secrets in log records of any library, not only Tidings' own: the message, the
    formatted traceback and the stack (a handler's formatter uses ``exc_text`` once set)."""

    _formatter = logging.Formatter()

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        masked = mask_text(message)
        if masked != message:
            record.msg, record.args = masked, None
        if record.exc_info and not record.exc_text:
            record.exc_text = self._formatter.formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = mask_text(record.exc_text)
        if record.stack_info:
            record.stack_info = mask_text(record.stack_info)
        return True


def configure_logging(level: str = "info") -> None:
    numeric = logging.getLevelName(level.upper())
    if not isinstance(numeric, int):
        numeric = logging.INFO
    # Libraries log at WARNING at most: their DEBUG output (SQL parameters, request bodies)
    # would carry message contents and settings.
    logging.basicConfig(
        stream=sys.stderr, level=max(numeric, logging.WARNING), format="%(message)s"
    )
    for handler in logging.getLogger().handlers:
        if not any(isinstance(f, _MaskingFilter) for f in handler.filters):
            handler.addFilter(_MaskingFilter())
    logging.getLogger("tidings").setLevel(numeric)
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            # Exceptions become text here, before the masker sees the event.
            structlog.processors.format_exc_info,
            _mask,
            structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty()),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=True,
    )
