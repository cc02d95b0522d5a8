"""The functions' layer ships what the project is tested with: every requirement of
``layers/common/requirements.txt`` (what ``sam build`` installs into the layer) is a dependency
the project declares in ``pyproject.toml``, pinned to the version ``uv.lock`` holds, with the
extras the project asks for. A lock update that moves Powertools without the layer, or a layer pin
nobody tests, fails here."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
REQUIREMENT = re.compile(
    r"^(?P<name>[A-Za-z0-9._-]+)(?:\[(?P<extras>[^\]]*)\])?==(?P<version>\S+)$"
)


def _normal(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def layer_requirements(
    path: Path = ROOT / "layers" / "common" / "requirements.txt",
) -> list[dict[str, str]]:
    found = []
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        match = REQUIREMENT.match(line)
        assert match, f"{path.name}: {line!r} is not pinned as name[extras]==version"
        found.append(match.groupdict(default=""))
    return found


def locked_versions() -> dict[str, str]:
    lock = tomllib.loads((ROOT / "uv.lock").read_text())
    return {_normal(p["name"]): p["version"] for p in lock["package"] if "version" in p}


def declared() -> dict[str, set[str]]:
    """The project's runtime dependencies: name -> extras."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    out: dict[str, set[str]] = {}
    for spec in project["dependencies"]:
        match = re.match(r"^([A-Za-z0-9._-]+)(?:\[([^\]]*)\])?", spec)
        assert match, spec
        out[_normal(match[1])] = {e.strip() for e in (match[2] or "").split(",") if e.strip()}
    return out


REQUIREMENTS = layer_requirements()


def test_the_layer_has_requirements() -> None:
    assert {_normal(r["name"]) for r in REQUIREMENTS} >= {"aws-lambda-powertools", "pyyaml"}


@pytest.mark.parametrize("requirement", REQUIREMENTS, ids=lambda r: r["name"])
def test_each_layer_requirement_is_declared_and_pinned_as_locked(
    requirement: dict[str, str],
) -> None:
    name = _normal(requirement["name"])
    extras = {e.strip() for e in requirement["extras"].split(",") if e.strip()}

    assert name in declared(), f"{name} is in the layer but not a dependency in pyproject.toml"
    assert extras <= declared()[name], f"{name}: the layer's extras {extras} are not declared"
    assert requirement["version"] == locked_versions()[name], (
        f"{name}: the layer pins {requirement['version']}, uv.lock holds {locked_versions()[name]}"
    )


def test_a_pin_that_differs_from_the_lock_is_seen(tmp_path: Path) -> None:
    stale = tmp_path / "requirements.txt"
    stale.write_text("aws-lambda-powertools[tracer,parser]==3.0.0\n")

    (requirement,) = layer_requirements(stale)

    assert requirement["version"] != locked_versions()["aws-lambda-powertools"]
