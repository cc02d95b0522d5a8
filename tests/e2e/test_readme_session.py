"""The README's local session, run as written: its command block is read from README.md and run
by bash, in a fresh folder, with no terminal and no standard input, exactly as a person pasting it
would run it. Nothing here retypes the commands."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.support import as_a_person

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
SESSION_MARK = "<!-- tests/e2e/test_readme_session.py runs the next block as written -->"


def session_block(readme: str) -> str:
    """The bash block right after the README's mark for this test."""
    start = readme.index(SESSION_MARK) + len(SESSION_MARK)
    match = re.compile(r"\s*```bash\n(.*?)```", re.S).match(readme, start)
    assert match, f"README.md has no bash block right after {SESSION_MARK!r}"
    return match.group(1)


def test_the_session_block_is_found_and_uses_only_the_projects_own_tools() -> None:
    block = session_block(README.read_text())
    commands = [line.split("#")[0].strip() for line in block.splitlines()]
    commands = [c for c in commands if c]
    assert commands[0].startswith(".venv/bin/safe-deploy local up"), commands
    assert commands[-1] == ".venv/bin/safe-deploy local down", commands
    assert all(c.startswith(".venv/bin/safe-deploy ") for c in commands), commands


@pytest.fixture
def session_folder(tmp_path: Path) -> Path:
    """A folder like a fresh clone's as the session sees it: the project's environment, nothing
    else (the session writes its data file, its local cloud and its connection file here)."""
    (tmp_path / ".venv").symlink_to(ROOT / ".venv")
    return tmp_path


def test_the_readme_session_runs_as_written(session_folder: Path) -> None:
    block = session_block(README.read_text())
    try:
        done = as_a_person(["bash", "-euo", "pipefail", "-c", block], session_folder, 900)
    finally:  # whatever happened, nothing is left running
        as_a_person([".venv/bin/safe-deploy", "local", "down"], session_folder, 120)
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-6000:]
    # upload-data followed the run to its approval, with the candidate's numbers
    assert re.search(r"fare-[0-9a-f]{12} waits for approval", output), output[-6000:]
    assert "validation RMSE" in output
    # approve followed the promotion to the moment it needed client traffic, and said so
    assert "the post-traffic hook now checks its capture" in output, output[-6000:]
    # every request the session sent was answered, by the new production endpoint
    assert re.search(r"answered by\s+fare-[0-9a-f]{12}-prod 100 \(100", output), output[-6000:]
    # the promotion ended with the new model in production, and status agrees
    assert re.search(r"fare-[0-9a-f]{12} is in production", output), output[-6000:]
    assert re.search(r"live alias\s*│\s*version 2 \(100%\) serves fare-[0-9a-f]{12}-prod", output)
    assert "consistent" in output
    assert not (session_folder / ".safe-deploy" / "local.json").exists()
