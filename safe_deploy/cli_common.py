"""What the operator commands share: where they act, and how times read."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import click

F = TypeVar("F", bound=Callable[..., Any])


def target_options(command: F) -> F:
    command = click.option(
        "--region", envvar="AWS_REGION", help="Region of the stack (default: your AWS config)."
    )(command)
    return click.option(
        "--stack",
        envvar="SAFE_DEPLOY_STACK",
        help="A deployed stack's name; without it, the local cloud `safe-deploy local up` runs.",
    )(command)


def when(value: Any) -> str:
    if value is None or value == "":
        return "-"
    if isinstance(value, int | float):
        value = datetime.fromtimestamp(float(value), UTC)
    if isinstance(value, datetime):
        return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    return str(value)


def project_root() -> Path:
    """The folder holding template.yaml: the current one, or the project this package is in."""
    for candidate in (Path.cwd(), Path(__file__).resolve().parents[1]):
        if (candidate / "template.yaml").exists():
            return candidate
    raise click.ClickException("run this from the project folder (template.yaml not found)")
