"""The real SAM CLI (``.tools/sam``, its own environment: DESIGN.md §10) as tests run it: one
``sam build`` per test session, and commands pointed at a local cloud the way
``eval "$(safe-deploy local env)"`` points a person's shell at it."""

from __future__ import annotations

import functools
import os
import subprocess
import tempfile
from pathlib import Path

import pytest

from safe_deploy.localcloud.api import LOCAL_SECRET
from safe_deploy.localcloud.cloud import LOCAL_ACCESS_KEY, LocalCloud

REPO = Path(__file__).resolve().parents[1]
SAM = REPO / ".tools" / "sam" / "bin" / "sam"
PYTHON312_DIR = REPO / "scripts" / "python312-dir"


def sam() -> Path:
    if not SAM.exists():
        pytest.skip(f"{SAM.relative_to(REPO)} is missing: run `make tools`")
    return SAM


def _python312() -> str:
    found = subprocess.run(
        [str(PYTHON312_DIR)], capture_output=True, text=True, check=True, timeout=60
    )
    return found.stdout.strip()


def run(
    arguments: list[str],
    cwd: Path = REPO,
    cloud: LocalCloud | None = None,
    stdin: str | None = None,
    timeout: int = 600,
) -> subprocess.CompletedProcess[str]:
    """``sam ARGUMENTS`` with telemetry off, pointed at ``cloud`` when one is given."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_") or k == "AWS_CA_BUNDLE"}
    env.update(SAM_CLI_TELEMETRY="0", PATH=f"{_python312()}{os.pathsep}{env.get('PATH', '')}")
    if cloud is not None:
        env.update(
            AWS_ENDPOINT_URL=cloud.aws_url,
            AWS_ACCESS_KEY_ID=LOCAL_ACCESS_KEY,
            AWS_SECRET_ACCESS_KEY=LOCAL_SECRET,
            AWS_DEFAULT_REGION=cloud.settings.region,
            AWS_REGION=cloud.settings.region,
        )
    return subprocess.run(
        [str(sam()), *arguments],
        cwd=cwd,
        env=env,
        input=stdin,
        stdin=None if stdin is not None else subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


@functools.cache
def _cache() -> Path:
    """One build cache per test session: the layer's dependencies are installed once."""
    return Path(tempfile.mkdtemp(prefix="sam-cache-"))


def built(project: Path) -> Path:
    """``sam build`` of this repository into ``project/.aws-sam/build``, where ``sam deploy``
    run in ``project`` finds it (as ``make build`` leaves it in the repository)."""
    sam()
    build = project / ".aws-sam" / "build"
    result = run(
        [
            "build",
            "--template",
            "template.yaml",
            "--build-dir",
            str(build),
            "--cache-dir",
            str(_cache()),
            "--cached",
        ],
        timeout=900,
    )
    if result.returncode != 0:
        raise RuntimeError(f"sam build failed:\n{result.stdout[-4000:]}\n{result.stderr[-4000:]}")
    return build
