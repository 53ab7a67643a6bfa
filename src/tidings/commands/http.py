"""The CLI's HTTP client: the server at TIDINGS_URL, authenticated with TIDINGS_API_KEY."""

from __future__ import annotations

import os
from typing import Any

import httpx
import typer
from rich.console import Console

console = Console(stderr=True)


def client(timeout: float = 30.0) -> httpx.Client:
    url = os.environ.get("TIDINGS_URL", "http://127.0.0.1:8000")
    key = os.environ.get("TIDINGS_API_KEY")
    if not key:
        console.print("[red]Set TIDINGS_API_KEY to the key the server printed at first start.")
        raise typer.Exit(2)
    return httpx.Client(base_url=url, headers={"Authorization": f"Bearer {key}"}, timeout=timeout)


def fail_on_error(response: httpx.Response) -> dict[str, Any]:
    """The JSON body of a successful answer; otherwise print the server's message and exit 1."""
    if response.status_code >= 400:
        try:
            message = response.json().get("message", response.text)
        except ValueError:
            message = response.text
        console.print(f"[red]{response.status_code}: {message}")
        raise typer.Exit(1)
    body: dict[str, Any] = response.json()
    return body
