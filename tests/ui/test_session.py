"""UI sessions: a random token in the cookie, its hash in the database; logout ends it for
every copy of the cookie, a restart does not."""

from __future__ import annotations

import asyncio
import contextlib
import re
import sqlite3
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path

import httpx

from tests.e2e.conftest import API_KEY, tidings_settings
from tests.support.servers import free_port, serve_asgi
from tidings.app import build_app
from tidings.runtime.sessions import SESSION_COOKIE, new_token, token_hash
from tidings.store import ui_sessions
from tidings.store.clock import utcnow
from tidings.store.database import Database


@contextlib.contextmanager
def serving(tmp_path: Path, port: int) -> Iterator[str]:
    """A Tidings server on the database in ``tmp_path`` (the same file each time)."""
    settings = tidings_settings(tmp_path, port)
    # In a thread: a browser test of this run may keep an event loop set on this one.
    with ThreadPoolExecutor(1) as pool:
        app = pool.submit(asyncio.run, build_app(settings)).result()
    with serve_asgi(app, port=port) as url:
        yield url


def log_in(url: str) -> str:
    answer = httpx.post(f"{url}/ui/login", data={"key": API_KEY}, follow_redirects=False)
    assert answer.status_code == 303, answer.text
    token = answer.cookies[SESSION_COOKIE]
    return token


def opens_ui(url: str, token: str) -> bool:
    page = httpx.get(f"{url}/ui/", cookies={SESSION_COOKIE: token}, follow_redirects=False)
    assert page.status_code in (200, 303), page.status_code
    return page.status_code == 200


def opens_api(url: str, token: str) -> bool:
    answer = httpx.get(f"{url}/messages", cookies={SESSION_COOKIE: token})
    assert answer.status_code in (200, 401), answer.status_code
    return answer.status_code == 200


def stored_hashes(tmp_path: Path) -> list[str]:
    with contextlib.closing(sqlite3.connect(tmp_path / "tidings.db")) as db:
        return [row[0] for row in db.execute("select token_hash from ui_sessions")]


def test_tokens_are_random_and_only_their_hash_is_kept() -> None:
    tokens = {new_token() for _ in range(100)}
    assert len(tokens) == 100
    token = tokens.pop()
    assert re.fullmatch(r"[A-Za-z0-9_-]{43}", token)  # 32 random bytes
    digest = token_hash(token)
    assert re.fullmatch(r"[0-9a-f]{64}", digest) and token not in digest
    assert token_hash(token) == digest


def test_a_copied_cookie_is_refused_after_logout(tmp_path: Path) -> None:
    with serving(tmp_path, free_port()) as url:
        token = log_in(url)
        assert stored_hashes(tmp_path) == [token_hash(token)]
        assert API_KEY not in token
        copy = str(token)
        assert opens_ui(url, copy) and opens_api(url, copy)
        other = log_in(url)  # another browser's session is not touched by this logout

        out = httpx.post(
            f"{url}/ui/logout", cookies={SESSION_COOKIE: token}, follow_redirects=False
        )
        assert out.status_code == 303
        assert 'tidings_session=""' in out.headers["set-cookie"]  # the browser forgets it

        # The copy kept elsewhere opens neither the pages nor the API any more.
        assert not opens_ui(url, copy)
        assert not opens_api(url, copy)
        assert stored_hashes(tmp_path) == [token_hash(other)]
        assert opens_ui(url, other)


def test_a_session_survives_a_restart(tmp_path: Path) -> None:
    port = free_port()
    with serving(tmp_path, port) as url:
        token = log_in(url)
        assert opens_ui(url, token)
    # A new process on the same database: the session is there, not in the old one's memory.
    with serving(tmp_path, port) as url:
        assert opens_ui(url, token)
        assert opens_api(url, token)
        # A cookie the server never issued opens nothing.
        assert not opens_ui(url, new_token())


def test_expired_sessions_open_nothing_and_are_swept(tmp_path: Path) -> None:
    async def run() -> None:
        db = Database(f"sqlite+aiosqlite:///{tmp_path / 's.db'}")
        await db.upgrade()
        now = utcnow()
        try:
            async with db.write() as conn:
                await ui_sessions.create(
                    conn, "old", now=now - timedelta(hours=13), ttl=timedelta(hours=12)
                )
                await ui_sessions.create(conn, "live", now=now, ttl=timedelta(hours=12))
            async with db.read() as conn:
                assert await ui_sessions.last_seen(conn, "old", now=now) is None
                assert await ui_sessions.last_seen(conn, "live", now=now) is not None
                # Its end is the end: one second past the expiry it opens nothing either.
                later = now + timedelta(hours=12, seconds=1)
                assert await ui_sessions.last_seen(conn, "live", now=later) is None
            async with db.write() as conn:
                assert await ui_sessions.sweep(conn, now=now) == 1
                assert await ui_sessions.count(conn) == 1
                assert await ui_sessions.revoke(conn, "live")
                assert not await ui_sessions.revoke(conn, "live")
                assert await ui_sessions.count(conn) == 0
        finally:
            await db.close()

    asyncio.run(run())


def test_login_sweeps_expired_rows(tmp_path: Path) -> None:
    with serving(tmp_path, free_port()) as url:
        log_in(url)
        with contextlib.closing(sqlite3.connect(tmp_path / "tidings.db")) as db:
            db.execute(
                "update ui_sessions set expires_at = '2000-01-01 00:00:00.000000', "
                "token_hash = 'expired'"
            )
            db.commit()
        fresh = log_in(url)
        assert stored_hashes(tmp_path) == [token_hash(fresh)]
