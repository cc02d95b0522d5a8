"""The SAM CLI that ``make tools`` installs (``.tools/sam``, its own environment: it pins an older
boto3 than moto wants), run as a person runs it, pointed at a local cloud the way
``eval "$(safe-deploy local env)"`` points a shell at it."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

SAM = Path(".tools") / "sam" / "bin" / "sam"


def find(project_root: Path) -> Path | None:
    sam = project_root / SAM
    return sam if sam.exists() else None


def python312_dir(project_root: Path) -> str:
    """Where ``sam build`` finds python3.12 (the functions' runtime)."""
    found = subprocess.run(
        [str(project_root / "scripts" / "python312-dir")],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    return found.stdout.strip()


def environment(cloud: dict[str, str] | None = None) -> dict[str, str]:
    """This process's environment without its AWS settings, telemetry off, and ``cloud``'s
    endpoint, region and credentials (``AWS_*`` names) when one is given."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_") or k == "AWS_CA_BUNDLE"}
    env["SAM_CLI_TELEMETRY"] = "0"
    env.update(cloud or {})
    return env


def run(
    project_root: Path,
    arguments: list[str],
    cwd: Path,
    cloud: dict[str, str] | None = None,
    stdin: str | None = None,
    timeout: float = 600,
) -> subprocess.CompletedProcess[str]:
    sam = find(project_root)
    if sam is None:
        raise FileNotFoundError(f"{project_root / SAM} is missing: run `make tools`")
    env = environment(cloud)
    env["PATH"] = f"{python312_dir(project_root)}{os.pathsep}{env.get('PATH', '')}"
    return subprocess.run(
        [str(sam), *arguments],
        cwd=cwd,
        env=env,
        input=stdin,
        stdin=None if stdin is not None else subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
