"""``tidings bulk`` as a user runs it: a subprocess against a running Tidings server and the
Mailgun sandbox, on a CSV file with a stored template and on a JSONL file with inline
content; a bad file is refused by its line, a bad key and an unreachable server in one line."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from tests.e2e.conftest import RunningSandbox, RunningTidings
from tests.e2e.test_bulk import TEMPLATE, copies_to
from tests.support.servers import free_port

TIDINGS = [sys.executable, "-m", "tidings.cli"]


def run_cli(server_url: str, key: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "TIDINGS_URL": server_url, "TIDINGS_API_KEY": key}
    return subprocess.run(
        [*TIDINGS, "bulk", *args], env=env, capture_output=True, text=True, timeout=120
    )


def test_csv_with_a_template_is_delivered_and_summarised(
    tidings_with_mailgun: RunningTidings, mailgun_sandbox: RunningSandbox, tmp_path: Path
) -> None:
    server = tidings_with_mailgun
    server.connect_webhooks()
    client = server.courier()
    client.notifications.publish(client.notifications.create(notification=TEMPLATE).id)
    client.profiles.create("zoe", profile={"email": "zoe@cli.test", "name": "Zoe"})
    rows = ["email,user_id,profile.name,code"]
    rows += [f"c{i}@cli.test,,Cee {i},K{i}" for i in range(25)]
    rows.append(",zoe,,KZ")
    users = tmp_path / "users.csv"
    users.write_text("\n".join(rows) + "\n")

    done = run_cli(
        server.url,
        server.api_key,
        str(users),
        "--template",
        "spring-sale",
        "--data",
        "campaign=Spring sale",
        "--chunk",
        "10",
    )
    assert done.returncode == 0, done.stderr
    assert "DELIVERED" in done.stdout and "26" in done.stdout, done.stdout
    assert "API calls" in done.stdout and "all delivered after" in done.stdout

    copies = copies_to(mailgun_sandbox)
    assert copies["c3@cli.test"][0]["subject"] == "Spring sale for Cee 3"
    assert "Your code is K3." in copies["c3@cli.test"][0]["html"]
    assert copies["zoe@cli.test"][0]["subject"] == "Spring sale for Zoe"
    assert all(len(copies[f"c{i}@cli.test"]) == 1 for i in range(25))


def test_jsonl_with_inline_content_as_json(
    tidings_with_mailgun: RunningTidings, mailgun_sandbox: RunningSandbox, tmp_path: Path
) -> None:
    server = tidings_with_mailgun
    users = tmp_path / "users.jsonl"
    lines: list[Any] = [
        {"profile": {"email": f"j{i}@cli.test", "name": f"Jay {i}"}, "data": {"n": i}}
        for i in range(5)
    ]
    users.write_text("\n".join(json.dumps(line) for line in lines) + "\n\n")
    done = run_cli(
        server.url,
        server.api_key,
        str(users),
        "--title",
        "Hello {{profile.name}}",
        "--body",
        "Number {{data.n}}",
        "--until",
        "sent",
        "--json",
    )
    assert done.returncode == 0, done.stderr
    job = json.loads(done.stdout)
    assert (job["status"], job["received"], job["enqueued"], job["failures"]) == (
        "COMPLETED",
        5,
        5,
        0,
    )
    copies = copies_to(mailgun_sandbox)
    assert copies["j4@cli.test"][0]["subject"] == "Hello Jay 4"
    assert "Number 4" in copies["j4@cli.test"][0]["text"]


def test_bad_files_bad_key_and_no_server_fail_in_one_line(
    tidings_with_mailgun: RunningTidings, mailgun_sandbox: RunningSandbox, tmp_path: Path
) -> None:
    server = tidings_with_mailgun
    inline = ("--title", "t", "--body", "b")
    cases = {
        "bad.jsonl": (
            '{"profile": {"email": "a@b.test"}}\n{"profile": \n',
            "bad.jsonl:2: not valid JSON",
        ),
        "list.jsonl": ('{"profile": {"email": "a@b.test"}}\n\n[1]\n', "list.jsonl:3: each line"),
        "none.csv": ("email,name\na@b.test,A\n,B\n", "none.csv:3: the row has neither"),
        "wide.csv": ("email,name\na@b.test,A,extra\n", "wide.csv:2: more cells"),
        "header.csv": ("name,code\nA,1\n", "header.csv:1: the header needs"),
        # Refused by the server: said by its line in the file.
        "server.csv": ("email\nok@b.test\nnot-an-address\n", "server.csv:3: the server refused"),
        "prefs.jsonl": (
            '{"profile": {"email": "a@b.test"}}\n{"profile": {"email": "c@b.test"}, '
            '"preferences": {"x": 1}}\n',
            "prefs.jsonl:2: the server refused this user: user.preferences",
        ),
        "empty.csv": ("", "empty.csv: the file is empty"),
        "header-only.csv": ("email\n", "no users"),
        "users.txt": ("a@b.test\n", "give a .csv or a .jsonl file"),
    }
    for name, (text, expected) in cases.items():
        path = tmp_path / name
        path.write_text(text)
        done = run_cli(server.url, server.api_key, str(path), *inline)
        lines = done.stderr.strip().splitlines()
        assert done.returncode in (1, 2) and len(lines) == 1, (name, done.stderr)
        assert lines[0].startswith("error: ") and expected in lines[0], (name, lines[0])

    good = tmp_path / "good.csv"
    good.write_text("email\na@b.test\n")
    refused = run_cli(server.url, "tk_wrong_key_0000", str(good), *inline)
    assert (
        refused.returncode == 1 and "401" in refused.stderr and "TIDINGS_API_KEY" in refused.stderr
    )
    nobody = run_cli(f"http://127.0.0.1:{free_port()}", server.api_key, str(good), *inline)
    assert nobody.returncode == 1 and "cannot reach the Tidings server" in nobody.stderr
    unknown = run_cli(server.url, server.api_key, str(good), "--template", "no-such")
    assert unknown.returncode == 1 and "message.template" in unknown.stderr
    assert "a@b.test" not in copies_to(mailgun_sandbox)
