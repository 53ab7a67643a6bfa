"""The log masker: registered keys, credential-named fields, PostgreSQL's quoted rows, and the
tracebacks of any library's records."""

from __future__ import annotations

import io
import logging

from tidings.logging import _MaskingFilter, mask_text, register_secret

KEY = "key-overrideOnlyInTheMessage0123456789WXYZ"


def test_credential_fields_lose_their_values_but_keep_their_names() -> None:
    for text in (
        f'{{"config": {{"apiKey": "{KEY}"}}}}',  # JSON
        f"{{'api_key': '{KEY}'}}",  # a Python repr
        f"api_key={KEY}&domain=x",  # a form
        f'(\'{{"config": {{\\"apiKey\\": \\"{KEY}\\"}}}}\',)',  # JSON inside a repr, escaped
        f"webhook_signing_key: {KEY}",
        f"password={KEY}",
    ):
        masked = mask_text(text)
        assert KEY[:-4] not in masked, masked
        assert "****" in masked


def test_a_registered_secret_is_masked_anywhere_keeping_its_last_four() -> None:
    secret = "registered-secret-0123456789"
    register_secret(secret)
    assert mask_text(f"error near {secret}!") == "error near ****6789!"


def test_postgresql_failing_row_is_hidden_even_across_lines() -> None:
    text = (
        'asyncpg.exceptions.CheckViolationError: new row for relation "messages" violates '
        'check constraint "x"\nDETAIL:  Failing row contains (msg_1, ann@example.test, '
        '{"body": "line one\nline two", "token": "abc"}).\n[SQL: INSERT INTO messages ...]'
    )
    masked = mask_text(text)
    assert "ann@example.test" not in masked and "line two" not in masked
    assert "Failing row contains (…hidden…)" in masked
    assert masked.endswith("[SQL: INSERT INTO messages ...]")


def test_a_stdlib_traceback_passes_the_masker() -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(_MaskingFilter())
    logger = logging.getLogger("tests.masking")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        try:
            raise RuntimeError(f'statement failed: {{"apiKey": "{KEY}"}}')
        except RuntimeError:
            logger.exception("Exception in ASGI application")
    finally:
        logger.removeHandler(handler)
    out = stream.getvalue()
    assert "Traceback" in out and "RuntimeError" in out
    assert KEY[:-4] not in out


def test_structlog_exceptions_and_values_pass_the_masker() -> None:
    """As `tidings serve` logs (configured in a process of its own)."""
    import subprocess
    import sys

    program = f"""
import structlog
from tidings.logging import configure_logging
configure_logging("info")
log = structlog.get_logger("tidings")
try:
    raise ValueError({{"apiKey": "{KEY}"}})
except ValueError as exc:
    log.exception("send failed", error=exc, settings={{"api_key": "{KEY}"}})
"""
    done = subprocess.run(
        [sys.executable, "-c", program], capture_output=True, text=True, timeout=60
    )
    assert "send failed" in done.stderr and "ValueError" in done.stderr, done.stderr
    assert KEY[:-4] not in done.stderr + done.stdout
