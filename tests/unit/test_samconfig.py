"""samconfig.toml: profiles that deploy the stack safely and carry nothing account- or
model-specific (DESIGN.md §2, §3)."""

from __future__ import annotations

import re
import tomllib
from typing import Any

import pytest

from tests.support import REPO

CONFIG: dict[str, Any] = tomllib.loads((REPO / "samconfig.toml").read_text())
PROFILES = {"default": "safe-deploy", "prod": "safe-deploy-prod"}


def test_config_version() -> None:
    assert CONFIG["version"] == 0.1


@pytest.mark.parametrize(("profile", "stack"), PROFILES.items())
def test_profile_builds_validates_and_deploys_safely(profile: str, stack: str) -> None:
    commands = CONFIG[profile]
    assert commands["global"]["parameters"]["stack_name"] == stack
    assert commands["build"]["parameters"] == {"cached": True, "parallel": True}
    assert commands["validate"]["parameters"]["lint"] is True
    deploy = commands["deploy"]["parameters"]
    assert deploy["capabilities"].split() == ["CAPABILITY_IAM"]
    assert deploy["confirm_changeset"] is True
    assert deploy["resolve_s3"] is True
    assert deploy["fail_on_empty_changeset"] is False
    assert f'environment="{"prod" if profile == "prod" else "dev"}"' in deploy["tags"]


def test_only_the_development_profile_syncs() -> None:
    assert CONFIG["default"]["sync"]["parameters"]["watch"] is True
    assert "sync" not in CONFIG["prod"]  # sync bypasses CloudFormation and the canary


def _settings(node: Any, path: str = "") -> list[tuple[str, Any]]:
    if isinstance(node, dict):
        return [item for k, v in node.items() for item in _settings(v, f"{path}.{k}".strip("."))]
    return [(path, node)]


def test_nothing_account_or_model_specific() -> None:
    settings = _settings(CONFIG)
    names = {path.rsplit(".", 1)[-1] for path, _ in settings}
    assert not names & {"parameter_overrides", "s3_bucket", "region", "profile", "image_repository"}
    for path, value in settings:
        assert not re.search(r"\b\d{12}\b", str(value)), f"{path} holds an account id"
        assert not re.search(r"arn:aws", str(value)), f"{path} holds an ARN"


def test_the_local_profile_deploys_into_the_running_local_cloud() -> None:
    """``sam deploy --config-env local`` after ``eval "$(safe-deploy local env)"``: the stack
    ``local up`` made, no prompt, the SAM CLI's own managed bucket; the region comes from the
    environment ``local env`` exports."""
    from safe_deploy.localcloud.state import LocalSettings

    local = CONFIG["local"]
    assert local["global"]["parameters"]["stack_name"] == LocalSettings.stack_name
    deploy = local["deploy"]["parameters"]
    assert deploy["capabilities"].split() == ["CAPABILITY_IAM"]
    assert deploy["confirm_changeset"] is False
    assert deploy["resolve_s3"] is True
