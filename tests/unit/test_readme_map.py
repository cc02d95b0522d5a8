"""The README's map (pipeline step -> state -> code -> tests) names only things that exist: every
state in the state machine it names, every file and folder in the project. A state renamed or a
file moved without the map fails here."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
HEADING = "## Map: from a pipeline step to its code and tests"
NO_STATE = "\N{EN DASH}"  # a step no state machine runs
MACHINES = {"training": "training.asl.json", "deploy": "deploy.asl.json"}


def map_rows() -> list[list[str]]:
    lines = (ROOT / "README.md").read_text().splitlines()
    start = lines.index(HEADING)
    table = []
    for line in lines[start + 1 :]:
        if line.startswith("## "):
            break
        if line.startswith("| ") and not line.startswith("| step |"):
            table.append([cell.strip() for cell in line.strip("|").split("|")])
    return table


def state_names(machine: str) -> set[str]:
    found: set[str] = set()

    def walk(states: dict[str, Any]) -> None:
        for name, state in states.items():
            found.add(name)
            for branch in state.get("Branches", []):
                walk(branch["States"])

    walk(json.loads((ROOT / "statemachines" / MACHINES[machine]).read_text())["States"])
    return found


ROWS = map_rows()


def test_the_map_covers_every_function_and_both_state_machines() -> None:
    named = " ".join(" ".join(row) for row in ROWS)
    for function in sorted(p.name for p in (ROOT / "functions").iterdir() if p.is_dir()):
        assert f"functions/{function}/" in named, f"{function} is not on the map"
    for machine in MACHINES:
        assert any(row[1].startswith(machine) for row in ROWS), machine


@pytest.mark.parametrize("row", ROWS, ids=lambda r: r[0])
def test_each_state_on_the_map_exists(row: list[str]) -> None:
    machine, _, rest = row[1].partition(" ")
    if machine not in MACHINES:
        assert row[1].startswith(NO_STATE), f"{row[1]!r}: neither a state machine nor a dash"
        return
    for state in re.findall(r"`([A-Za-z]+)`", rest):
        assert state in state_names(machine), f"{machine} has no state {state}"


@pytest.mark.parametrize("row", ROWS, ids=lambda r: r[0])
def test_each_file_on_the_map_exists(row: list[str]) -> None:
    for cell in row[2:]:
        for path in re.findall(r"`([^`]+)`", cell):
            assert (ROOT / path).exists(), f"{path} does not exist"
