"""The settings tables (README and docs/operations.md) name every setting `config.py` has,
with its default, and nothing it does not have; the paperwork people look for is there."""

from __future__ import annotations

import re
from pathlib import Path

from pydantic_core import PydanticUndefined

from tidings.config import Settings

ROOT = Path(__file__).resolve().parent.parent
_CODE = re.compile(r"`([^`]+)`")


def env_name(field: str) -> str:
    info = Settings.model_fields[field]
    alias = info.validation_alias
    return alias if isinstance(alias, str) else f"TIDINGS_{field.upper()}"


def settings_rows(markdown: str) -> list[tuple[list[str], list[str]]]:
    """(names, defaults) of each row of the table under "## Configuration"."""
    section = markdown.split("## Configuration", 1)[1].split("\n## ", 1)[0]
    rows = []
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split(" | ")]
        if not line.startswith("| `") or len(cells) < 3:
            continue
        rows.append((_CODE.findall(cells[0]), _CODE.findall(cells[1])))
    return rows


def _same(documented: str, default: object) -> bool:
    if isinstance(default, bool) or default is None:
        return True  # shown in words ("auto", "generated on first start")
    if isinstance(default, int | float):
        try:
            return float(documented) == float(default)
        except ValueError:
            return False
    return documented == str(default)


def check_table(path: Path) -> None:
    rows = settings_rows(path.read_text())
    documented = [name for names, _ in rows for name in names]
    fields = {env_name(f): f for f in Settings.model_fields}
    missing = sorted(set(fields) - set(documented))
    unknown = sorted(set(documented) - set(fields))
    assert not missing, f"{path.name}: settings without a row in the table: {missing}"
    assert not unknown, f"{path.name}: rows for settings config.py does not have: {unknown}"
    assert len(documented) == len(set(documented)), f"{path.name}: a setting has two rows"
    for names, defaults in rows:
        if len(defaults) != len(names):
            continue  # a default shown in words
        for name, shown in zip(names, defaults, strict=True):
            default = Settings.model_fields[fields[name]].default
            if default is PydanticUndefined:
                continue
            assert _same(shown, default), f"{path.name}: {name} default {shown} != {default!r}"


def test_the_readme_table_has_every_setting() -> None:
    check_table(ROOT / "README.md")


def test_the_operations_table_has_every_setting() -> None:
    check_table(ROOT / "docs" / "operations.md")


def test_the_paperwork_is_there() -> None:
    license_text = (ROOT / "LICENSE").read_text()
    assert license_text.startswith("MIT License") and "The Tidings authors" in license_text
    assert 'license = "MIT"' in (ROOT / "pyproject.toml").read_text()
    changelog = (ROOT / "CHANGELOG.md").read_text()
    assert "keepachangelog.com" in changelog and "## [Unreleased]" in changelog
    contributing = (ROOT / "CONTRIBUTING.md").read_text()
    for topic in ("pytest", "import-linter", "providers/"):
        assert topic in contributing, topic
    architecture = (ROOT / "docs" / "architecture.md").read_text()
    assert "```mermaid" in architecture
    operations = (ROOT / "docs" / "operations.md").read_text()
    for topic in ("PostgreSQL", "tidings worker", "Backups", "/metrics", "tidings db upgrade"):
        assert topic in operations, topic
    # Every relative link in these documents leads to a file that exists.
    for doc in ("README.md", "CONTRIBUTING.md", "docs/architecture.md", "docs/operations.md"):
        path = ROOT / doc
        for target in re.findall(r"\]\(([^)#:]+)(?:#[^)]*)?\)", path.read_text()):
            assert (path.parent / target).exists(), f"{doc} links to missing {target}"
