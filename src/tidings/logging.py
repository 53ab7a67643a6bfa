"""Structured logs (structlog), with secrets masked before anything is written."""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import MutableMapping
from typing import Any

import structlog

_SECRETS: set[str] = set()
_BASIC = re.compile(r"(?i)(authorization['\"]?\s*[:=]\s*['\"]?(?:basic|bearer)\s+)[^\s'\"]+")


def register_secret(secret: str | None) -> None:
    """Mask ``secret`` wherever it would appear in a log line (keeps the last 4 characters)."""
    if secret and len(secret) >= 8:
        _SECRETS.add(secret)


def register_provider_secrets(settings: dict[str, Any]) -> None:
    for name in ("api_key", "webhook_signing_key"):
        value = settings.get(name)
        if isinstance(value, str):
            register_secret(value)


def mask_text(text: str) -> str:
    for secret in _SECRETS:
        if secret in text:
            text = text.replace(secret, "****" + secret[-4:])
    return _BASIC.sub(r"\1****", text)


def _mask(_logger: Any, _name: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    for key, value in list(event.items()):
        if isinstance(value, str):
            event[key] = mask_text(value)
    return event


class _MaskingFilter(logging.Filter):
    """Masks secrets in log records of any library, not only Tidings' own."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        masked = mask_text(message)
        if masked != message:
            record.msg, record.args = masked, None
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
        handler.addFilter(_MaskingFilter())
    logging.getLogger("tidings").setLevel(numeric)
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            _mask,
            structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty()),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=True,
    )
