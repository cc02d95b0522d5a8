"""The local cloud for end-to-end tests: one per test module, torn down at its end."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from safe_deploy.console import Stages
from safe_deploy.demo import Demo
from safe_deploy.localcloud.cloud import LocalCloud
from safe_deploy.localcloud.state import LocalSettings
from safe_deploy.target import Target

ROOT = Path(__file__).resolve().parents[2]


def start_demo(workdir: Path, overrides: dict[str, str] | None = None) -> tuple[LocalCloud, Demo]:
    settings = LocalSettings(
        project_root=ROOT, workdir=workdir / "cloud", parameter_overrides=dict(overrides or {})
    )
    cloud = LocalCloud(settings).start()
    connection = workdir / "local.json"
    cloud.write_connection_file(connection)
    return cloud, Demo(cloud, Target.local_cloud(connection), Stages(), workdir)


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Demo]:
    cloud, story = start_demo(tmp_path_factory.mktemp("e2e"))
    try:
        yield story
    finally:
        cloud.stop()


def outbox(cloud: LocalCloud) -> list[dict[str, Any]]:
    """Every notification the local cloud delivered, oldest first."""
    return [json.loads(p.read_text()) for p in sorted(cloud.outbox.rglob("*.json"))]


def subject_arrives(cloud: LocalCloud, *words: str) -> str:
    """The subject of the first message that holds every word, waiting for it: SNS messages
    reach the outbox through a queue."""

    def found() -> str | None:
        for message in outbox(cloud):
            subject = message.get("subject") or ""
            if all(word in subject for word in words):
                return str(subject)
        return None

    return str(cloud.wait_for(found, 30, what=f"a message about {' '.join(words)}"))


def sagemaker_resources(demo: Demo) -> dict[str, list[str]]:
    sagemaker = demo.target.client("sagemaker")
    schedules = sagemaker.list_monitoring_schedules()["MonitoringScheduleSummaries"]
    return {
        "endpoints": sorted(e["EndpointName"] for e in sagemaker.list_endpoints()["Endpoints"]),
        "configs": sorted(
            c["EndpointConfigName"] for c in sagemaker.list_endpoint_configs()["EndpointConfigs"]
        ),
        "models": sorted(m["ModelName"] for m in sagemaker.list_models()["Models"]),
        "schedules": sorted(s["MonitoringScheduleName"] for s in schedules),
    }


def live_version_endpoint(demo: Demo) -> tuple[str, str, dict[str, Any]]:
    """The version ``live`` points to, the endpoint it is bound to, and its routing config."""
    lam = demo.target.client("lambda")
    function = demo.target.output("PredictFunctionName")
    alias = lam.get_alias(FunctionName=function, Name="live")
    config = lam.get_function_configuration(
        FunctionName=function, Qualifier=alias["FunctionVersion"]
    )
    endpoint = config.get("Environment", {}).get("Variables", {}).get("ENDPOINT_NAME", "")
    return alias["FunctionVersion"], endpoint, alias.get("RoutingConfig") or {}
