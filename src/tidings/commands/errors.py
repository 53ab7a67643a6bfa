"""How every command fails: one clear line on stderr and a non-zero exit code, never a
traceback, for what goes wrong outside the program (a server that is down or slow, an answer
that is an error, a database that cannot be opened).

Commands that talk to a server get this from ``commands.http.client``; commands that open
the database wrap their work in ``database_errors``. A bug still shows its traceback.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterator
from typing import Any, NoReturn

import httpx
import sqlalchemy as sa
import typer
from rich.console import Console
from rich.markup import escape

# Exit codes: 1 the operation failed (the server said no, or could not be reached); 2 the
# command was called wrongly (click's own code for usage errors).
FAILED = 1
USAGE = 2

_err = Console(stderr=True, soft_wrap=True, highlight=False)


def one_line(text: str, limit: int = 300) -> str:
    flat = " ".join(str(text).split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def fail(message: str, code: int = FAILED) -> NoReturn:
    _err.print(f"[red]error:[/red] {escape(one_line(message, 1000))}")
    raise typer.Exit(code)


def warn(message: str) -> None:
    _err.print(f"[yellow]warning:[/yellow] {escape(one_line(message, 1000))}")


def note(message: str) -> None:
    _err.print(escape(message))


@contextlib.contextmanager
def http_errors(url: str, timeout: float) -> Iterator[None]:
    """Network failures while talking to the Tidings server at ``url``."""
    try:
        yield
    except httpx.ConnectError as exc:
        fail(
            f"cannot reach the Tidings server at {url} ({_reason(exc)}): is `tidings serve` "
            "running there? Set TIDINGS_URL if it runs elsewhere."
        )
    except httpx.TimeoutException:
        fail(f"the Tidings server at {url} did not answer within {timeout:g} s")
    except httpx.HTTPError as exc:
        fail(f"talking to the Tidings server at {url} failed: {_reason(exc)}")


def _reason(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    # httpx says "[Errno 111] Connection refused"; the number helps nobody.
    return text.split("] ", 1)[-1] if text.startswith("[Errno") else text


def answer_error(response: httpx.Response) -> NoReturn:
    """A 4xx or 5xx answer as one line: the status and the server's own message."""
    message: Any = None
    try:
        body = response.json()
        if isinstance(body, dict):
            message = body.get("message") or body.get("detail")
    except ValueError:
        pass
    if not message:
        message = response.text.strip() or response.reason_phrase
    status = f"{response.status_code} {response.reason_phrase}".strip()
    hint = ""
    if response.status_code == 401:
        hint = " (check TIDINGS_API_KEY; `tidings keys create` makes a new key)"
    elif response.status_code >= 500:
        hint = " (the server's log says more)"
    fail(f"{status}: {one_line(str(message))}{hint}")


def safe_url(url: str) -> str:
    """A database URL with its password hidden."""
    try:
        return sa.make_url(url).render_as_string(hide_password=True)
    except Exception:
        return "the configured database"


@contextlib.contextmanager
def database_errors(url: str) -> Iterator[None]:
    """Failures to reach or open the database at ``url`` (TIDINGS_DATABASE_URL)."""
    where = safe_url(url)
    try:
        yield
    except (sa.exc.DBAPIError, sqlite3.OperationalError) as exc:
        fail(f"cannot use the database {where}: {_db_reason(exc)}")
    except (sa.exc.ArgumentError, sa.exc.NoSuchModuleError) as exc:
        fail(f"TIDINGS_DATABASE_URL is not a database URL Tidings can use ({where}): {exc}")
    except (OSError, TimeoutError) as exc:
        # asyncpg raises the socket's own error when PostgreSQL is down or unreachable.
        fail(f"cannot reach the database {where}: {_reason(exc)}")


def _db_reason(exc: BaseException) -> str:
    orig = getattr(exc, "orig", None)
    return _reason(orig if orig is not None else exc)
