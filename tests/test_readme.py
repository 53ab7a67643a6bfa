"""The README's quick start, run as written: its shell commands and its Python snippet, in a
clean shell, against the server its own command starts.

Each fenced block of the quick start is marked with a comment saying what it is:

* ``<!-- readme-test: install -->``: makes the environment (``python3 -m venv .venv``,
  ``. .venv/bin/activate``, ``pip install …``). Not run: nothing may be downloaded here.
  Instead the test checks that the block does nothing else, that what it installs is installed
  in the environment running the tests, and gives the shells that environment the way the
  block would have: ``.venv`` in the working directory links to it, so the README's own
  ``. .venv/bin/activate`` lines work literally.
* ``<!-- readme-test: server -->``: the first shell's command; started (after activating, as
  the install block left that shell) and left running.
* ``<!-- readme-test: client -->``: the second shell's commands, run in order with ``set -e``;
  ``<the key it printed>`` is replaced by the key the server printed, as a reader does.
* ``<!-- readme-test: python -->``: run with ``python`` in that second shell, after the client
  block; what it prints must be what its last line's comment says.

The shells start from an empty environment (``env -i``) with only a system PATH, HOME, and
TIDINGS_PORT / TIDINGS_URL: the documented settings that put the server on a free port
instead of 8000, which another program may hold.
"""

from __future__ import annotations

import importlib.metadata
import os
import re
import shlex
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.support.servers import free_port

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
KEY_PLACEHOLDER = "<the key it printed>"
_BLOCK = re.compile(r"<!-- readme-test: (\w+) -->\n```(\w*)\n(.*?)```", re.DOTALL)


@dataclass(frozen=True)
class Block:
    kind: str
    language: str
    text: str


def quick_start_blocks() -> list[Block]:
    text = README.read_text()
    section = text[text.index("## Quick start") :]
    section = section[: section.index("\n## ", 1)]
    return [Block(m.group(1), m.group(2), m.group(3)) for m in _BLOCK.finditer(section)]


def _install_commands(block: Block) -> list[list[str]]:
    commands = []
    for line in block.text.strip().splitlines():
        for part in line.split("&&"):
            commands.append(shlex.split(part))
    return commands


def check_install_block(block: Block) -> None:
    """An install block only makes the venv and pip-installs what this environment has."""
    for words in _install_commands(block):
        if words == ["python3", "-m", "venv", ".venv"] or words == [".", ".venv/bin/activate"]:
            continue
        assert words[:2] == ["pip", "install"], f"not an install step: {words}"
        for requirement in (w for w in words[2:] if not w.startswith("-")):
            name = "tidings" if requirement == "." else requirement
            importlib.metadata.distribution(name)  # raises when it is not installed


def test_blocks_are_marked() -> None:
    kinds = [b.kind for b in quick_start_blocks()]
    assert kinds == ["install", "server", "client", "install", "python"], kinds
    section = README.read_text().split("## Quick start", 1)[1].split("\n## ", 1)[0]
    # Every fenced block of the quick start is marked (and so run or checked).
    assert section.count("```") == 2 * len(kinds)


def _shell_env(home: Path, port: int) -> dict[str, str]:
    return {
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "HOME": str(home),
        "LANG": "C.UTF-8",
        "TIDINGS_PORT": str(port),
        "TIDINGS_URL": f"http://127.0.0.1:{port}",
    }


def test_quick_start_runs_as_written(tmp_path: Path) -> None:
    activate = Path(sys.prefix) / "bin" / "activate"
    if sys.prefix == sys.base_prefix or not activate.exists():
        pytest.skip("the README test runs inside a virtual environment (.ci/run makes one)")
    blocks = quick_start_blocks()
    for block in blocks:
        if block.kind == "install":
            check_install_block(block)
    (server,) = [b for b in blocks if b.kind == "server"]
    (client,) = [b for b in blocks if b.kind == "client"]
    (snippet,) = [b for b in blocks if b.kind == "python"]
    assert KEY_PLACEHOLDER in client.text

    workdir = tmp_path / "clone"
    workdir.mkdir()
    (workdir / ".venv").symlink_to(sys.prefix)
    port = free_port()
    env = _shell_env(tmp_path, port)
    log = tmp_path / "server.log"
    first_shell = subprocess.Popen(
        ["bash", "--noprofile", "--norc", "-c", f". .venv/bin/activate\n{server.text}"],
        cwd=workdir,
        env=env,
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert first_shell.poll() is None, log.read_text()
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.1)
        keys = re.findall(r"\btk_[A-Za-z0-9_-]{20,}", log.read_text())
        assert len(keys) == 1, log.read_text()

        (workdir / "snippet.py").write_text(snippet.text)
        script = "set -e\n" + client.text.replace(KEY_PLACEHOLDER, keys[0]) + "python snippet.py\n"
        second_shell = subprocess.run(
            ["bash", "--noprofile", "--norc", "-c", script],
            cwd=workdir,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert second_shell.returncode == 0, second_shell.stdout + second_shell.stderr
        lines = second_shell.stdout.strip().splitlines()
        assert lines[0].startswith("requestId  ")
        assert "status     DELIVERED" in lines
        expected = snippet.text.strip().splitlines()[-1].split("#", 1)[1].strip()
        assert lines[-1] == expected == "DELIVERED"
        assert (workdir / "tidings.db").exists()  # the embedded default, in that directory
    finally:
        os.killpg(first_shell.pid, signal.SIGTERM)
        first_shell.wait(timeout=60)
