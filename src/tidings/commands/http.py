"""The CLI's HTTP client: the server at TIDINGS_URL, authenticated with TIDINGS_API_KEY.

``with client() as http:`` turns every network failure inside the block into one line and
exit code 1 (see ``commands.errors``); ``fail_on_error`` does the same for 4xx and 5xx
answers. Commands use both, so none of them can end in a traceback for a server's fault.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
from collections.abc import Iterator
from typing import Any

import httpx
from rich.console import Console

from tidings.commands.errors import USAGE, answer_error, fail, http_errors

console = Console(stderr=True)

DEFAULT_URL = "http://127.0.0.1:8000"


def server_url() -> str:
    return os.environ.get("TIDINGS_URL", DEFAULT_URL).rstrip("/")


@contextlib.contextmanager
def client(timeout: float = 30.0) -> Iterator[httpx.Client]:
    """``timeout``: the command's own (longer for the slow checks); TIDINGS_CLIENT_TIMEOUT_S
    overrides it for every command."""
    url = server_url()
    if override := os.environ.get("TIDINGS_CLIENT_TIMEOUT_S"):
        try:
            timeout = float(override)
        except ValueError:
            fail(f"TIDINGS_CLIENT_TIMEOUT_S must be a number of seconds, not {override!r}", USAGE)
    key = os.environ.get("TIDINGS_API_KEY")
    if not key:
        fail(
            "set TIDINGS_API_KEY to an API key: the one `tidings serve` printed at first start, "
            "or a new one from `tidings keys create`",
            USAGE,
        )
    with (
        http_errors(url, timeout),
        httpx.Client(
            base_url=url, headers={"Authorization": f"Bearer {key}"}, timeout=timeout
        ) as http,
    ):
        yield http


def fail_on_error(response: httpx.Response) -> dict[str, Any]:
    """The JSON body of a successful answer; otherwise one line saying why, and exit 1."""
    if response.status_code >= 400:
        answer_error(response)
    try:
        body = response.json()
    except ValueError:
        body = None
    if not isinstance(body, dict):
        fail(
            f"{response.request.url} answered {response.status_code} with something that is "
            "not Tidings' JSON: is TIDINGS_URL the address of a Tidings server?"
        )
    return body


def print_json(value: Any) -> None:
    """``--json`` output: plain JSON on stdout, nothing else, for scripts."""
    text = json.dumps(value, indent=2, sort_keys=True, default=str, ensure_ascii=False)
    sys.stdout.write(text + "\n")
    sys.stdout.flush()
