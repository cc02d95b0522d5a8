"""The real SAM CLI (``.tools/sam``, its own environment: DESIGN.md §10) as tests run it: one
``sam build`` per test session, and commands pointed at a local cloud the way
``eval "$(safe-deploy local env)"`` points a person's shell at it."""

from __future__ import annotations

import functools
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from safe_deploy import samcli

if TYPE_CHECKING:
    from safe_deploy.localcloud.cloud import LocalCloud

REPO = Path(__file__).resolve().parents[1]


def sam() -> Path:
    found = samcli.find(REPO)
    if found is None:
        pytest.skip(f"{samcli.SAM} is missing: run `make tools`")
    return found


def run(
    arguments: list[str],
    cwd: Path = REPO,
    cloud: LocalCloud | None = None,
    stdin: str | None = None,
    timeout: int = 600,
) -> subprocess.CompletedProcess[str]:
    """``sam ARGUMENTS`` with telemetry off, pointed at ``cloud`` when one is given."""
    sam()
    return samcli.run(
        REPO, arguments, cwd, cloud.client_environment() if cloud else None, stdin, timeout
    )


@functools.cache
def _cache() -> Path:
    """One build cache per test session: the layer's dependencies are installed once."""
    return Path(tempfile.mkdtemp(prefix="sam-cache-"))


def built(project: Path) -> Path:
    """``sam build`` of this repository into ``project/.aws-sam/build``, where ``sam deploy``
    run in ``project`` finds it (as ``make build`` leaves it in the repository). It runs in
    ``project``: a cached build keeps dependencies in ``.aws-sam/deps`` under its working folder
    and deletes the ones its own build does not name, so two builds in one folder at once (two
    test workers) delete each other's."""
    sam()
    build = project / ".aws-sam" / "build"
    result = run(
        [
            "build",
            "--template",
            str(REPO / "template.yaml"),
            "--build-dir",
            str(build),
            "--cache-dir",
            str(_cache()),
            "--cached",
            "--parallel",  # samconfig.toml's build settings, which sam reads from its folder
        ],
        cwd=project,
        timeout=900,
    )
    if result.returncode != 0:
        raise RuntimeError(f"sam build failed:\n{result.stdout[-4000:]}\n{result.stderr[-4000:]}")
    return build


def built_project(folder: Path) -> Path:
    """A project folder as ``make build`` leaves one: the build, and samconfig.toml."""
    built(folder)
    shutil.copy(REPO / "samconfig.toml", folder / "samconfig.toml")
    return folder
