"""`tidings keys`: made, listed and revoked straight in the database, with no server."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from contextlib import closing
from pathlib import Path

TIDINGS = [sys.executable, "-m", "tidings.cli"]


def _run(workdir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TIDINGS_", "MAILGUN_"))}
    return subprocess.run(
        [*TIDINGS, *args], cwd=workdir, env=env, capture_output=True, text=True, timeout=120
    )


def test_create_list_revoke_without_a_server(tmp_path: Path) -> None:
    made = _run(tmp_path, "keys", "create", "--name", "deploy bot")
    assert made.returncode == 0, made.stderr
    key = made.stdout.strip()
    assert key.startswith("tk_") and len(key) > 40 and "\n" not in key  # alone on stdout
    assert "shown this once" in made.stderr
    assert (tmp_path / "tidings.db").exists()  # the default database, made on first use
    assert key not in (tmp_path / "tidings.db").read_bytes().decode("latin-1")
    other = _run(tmp_path, "keys", "create").stdout.strip()

    listed = json.loads(_run(tmp_path, "keys", "list", "--json").stdout)
    assert [(k["id"], k["name"], k["key"]) for k in listed] == [
        (1, "deploy bot", f"tk_…{key[-4:]}"),
        (2, None, f"tk_…{other[-4:]}"),
    ]
    assert all(k["created"] and k["last_used"] is None for k in listed)
    table = _run(tmp_path, "keys", "list").stdout
    assert "deploy bot" in table and f"tk_…{key[-4:]}" in table and key not in table

    unknown = _run(tmp_path, "keys", "revoke", "nope")
    assert unknown.returncode == 1 and unknown.stderr.count("\n") == 1
    revoked = _run(tmp_path, "keys", "revoke", f"tk_…{key[-4:]}")
    assert revoked.returncode == 0, revoked.stderr
    assert "revoked key 1 (deploy bot)" in revoked.stdout
    assert [k["id"] for k in json.loads(_run(tmp_path, "keys", "list", "--json").stdout)] == [2]
    last = _run(tmp_path, "keys", "revoke", "2")
    assert last.returncode == 0 and "no stored key is left" in last.stderr
    assert json.loads(_run(tmp_path, "keys", "list", "--json").stdout) == []


def test_an_unreachable_database_is_one_line(tmp_path: Path) -> None:
    env_url = "sqlite:///" + str(tmp_path / "no" / "such" / "dir" / "t.db")
    result = subprocess.run(
        [*TIDINGS, "keys", "list"],
        env={**os.environ, "TIDINGS_DATABASE_URL": env_url},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 1
    assert result.stderr.startswith("error: cannot use the database")
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr


def test_revoking_a_key_ends_the_web_ui_sessions(tmp_path: Path) -> None:
    # A session does not say which key opened it, so a revoked (perhaps leaked) key takes
    # every session with it.
    key = _run(tmp_path, "keys", "create").stdout.strip()
    _run(tmp_path, "keys", "create")
    with closing(sqlite3.connect(tmp_path / "tidings.db")) as db, db:
        db.execute(
            "insert into ui_sessions (token_hash, created_at, expires_at) "
            "values ('a', '2026-01-01 00:00:00', '2099-01-01 00:00:00')"
        )
    revoked = _run(tmp_path, "keys", "revoke", f"tk_…{key[-4:]}")
    assert revoked.returncode == 0, revoked.stderr
    assert "ended 1 web UI session(s)" in revoked.stderr
    with closing(sqlite3.connect(tmp_path / "tidings.db")) as db:
        assert db.execute("select count(*) from ui_sessions").fetchone() == (0,)
