"""A page asked for without a session answers a bare redirect to the login form: a status
and a Location, no JSON error body."""

from __future__ import annotations

from collections.abc import Callable
from urllib.parse import parse_qs, urlsplit

import httpx

from tests.e2e.conftest import RunningTidings


def test_pages_redirect_to_login_without_a_body(
    start_tidings: Callable[..., RunningTidings],
) -> None:
    server = start_tidings(run_workers=False)
    for path in ("/ui/", "/ui/?status=SENT", "/ui/messages/01abc", "/ui/providers"):
        for cookies in ({}, {"tidings_session": "not-a-session"}):
            answer = httpx.get(server.url + path, cookies=cookies, follow_redirects=False)
            assert answer.status_code == 303, (path, answer.status_code)
            location = urlsplit(answer.headers["location"])
            assert location.path == "/ui/login"
            assert parse_qs(location.query)["next"] == [path]
            assert answer.content == b"", (path, answer.text)
            assert "json" not in answer.headers.get("content-type", "")
            assert answer.headers["content-security-policy"]  # the pages' headers are kept
    login = httpx.get(server.url + "/ui/login")
    assert login.status_code == 200 and "text/html" in login.headers["content-type"]
