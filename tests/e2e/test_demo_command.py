"""``safe-deploy demo``, the command ``make demo`` runs, as a person runs it: the installed entry
point, in a process of its own, with no terminal and no standard input. The story's chapters are
tested one by one in test_story.py; here the command itself must start its own local cloud, tell
a scenario through to its end, say so, exit 0 and leave nothing running."""

from __future__ import annotations

import sys
from pathlib import Path

from click.testing import CliRunner

from safe_deploy.cli import main
from safe_deploy.localcloud.workdir import probe
from tests.support import as_a_person

SAFE_DEPLOY = Path(sys.executable).parent / "safe-deploy"


def test_a_scenario_runs_to_its_end_and_the_command_says_so(tmp_path: Path) -> None:
    workdir = tmp_path / "demo-output"
    command = [str(SAFE_DEPLOY), "demo", "--scenario", "training-fails", "--workdir", str(workdir)]
    done = as_a_person(command, tmp_path, 600)
    said = done.stdout + done.stderr
    assert done.returncode == 0, said
    assert "scenario training-fails behaved as it should:" in said
    assert "TrainingJobFailed" in said
    assert "start the local cloud" in said
    assert probe(workdir / "cloud") is None, "a process of the local cloud outlived the command"


def test_a_data_file_that_is_not_there_is_refused_before_anything_starts(tmp_path: Path) -> None:
    missing = tmp_path / "green_tripdata_2024-02.csv"
    result = CliRunner().invoke(
        main, ["demo", "--data", str(missing), "--workdir", str(tmp_path / "out")]
    )
    assert result.exit_code == 2
    assert "does not exist" in result.output
    assert not (tmp_path / "out").exists(), "nothing is made for a command that was refused"
