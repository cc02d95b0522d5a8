"""The local cloud for end-to-end tests: one per test module, torn down at its end, and the demo's
story on it, told as far as each test needs."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import pytest

from safe_deploy.console import Stages
from safe_deploy.demo import CanaryRelease, CodeDeploy, Demo, DriftCheck, FirstPromotion, Rollback
from safe_deploy.localcloud.cloud import LocalCloud
from safe_deploy.localcloud.state import LocalSettings
from safe_deploy.target import Target

ROOT = Path(__file__).resolve().parents[2]
T = TypeVar("T")


def start_demo(workdir: Path, overrides: dict[str, str] | None = None) -> tuple[LocalCloud, Demo]:
    settings = LocalSettings(
        project_root=ROOT, workdir=workdir / "cloud", parameter_overrides=dict(overrides or {})
    )
    cloud = LocalCloud(settings).start()
    connection = workdir / "local.json"
    cloud.write_connection_file(connection)
    return cloud, Demo(cloud, Target.local_cloud(connection), Stages(), workdir)


@contextmanager
def running_demo(workdir: Path, overrides: dict[str, str] | None = None) -> Iterator[Demo]:
    """A demo on a local cloud of its own, stopped on the way out."""
    cloud, story = start_demo(workdir, overrides)
    try:
        yield story
    finally:
        cloud.stop()


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Demo]:
    with running_demo(tmp_path_factory.mktemp("e2e")) as story:
        yield story


@dataclass
class Story:
    """The demo's chapters on a module's local cloud. Each runs once, after the chapters it
    needs, and every later call gets what it found: a test passes alone as in its module's
    order. A chapter that failed is not run again on what it left behind: every later test that
    needs it fails with its error."""

    demo: Demo
    failed: dict[str, str] = field(default_factory=dict)  # the chapter, its error
    page: Path | None = None

    def first_model(self) -> FirstPromotion:
        return self.once("month 1", self.demo.results.first, self.demo.first_model)

    def canary(self) -> CanaryRelease:
        self.first_model()  # blue
        return self.once("the canary", self.demo.results.canary, self.demo.canary)

    def rollback(self) -> Rollback:
        self.canary()  # an earlier model to go back to
        return self.once("the rollback", self.demo.results.rollback, self.demo.rollback)

    def code_deploy(self) -> CodeDeploy:
        self.first_model()  # a model that serves, and must go on serving
        return self.once(
            "the code deploy", self.demo.results.code_deploy, lambda: self.demo.code_deploy(ROOT)
        )

    def drift(self) -> DriftCheck:
        self.first_model()  # a monitored production endpoint
        return self.once("drift", self.demo.results.drift, self.demo.drift)

    def report(self) -> Path:
        self.canary()  # the models' plots and the traffic split
        self.drift()
        self.page = self.once("the report", self.page, self.demo.write_report)
        return self.page

    def once(self, chapter: str, found: T | None, run: Callable[[], T | None]) -> T:
        """What ``chapter`` found: ``found`` once it ran, else what ``run`` returns."""
        if found is not None:
            return found
        if chapter in self.failed:
            pytest.fail(
                f"{chapter} failed in an earlier test: {self.failed[chapter]}", pytrace=False
            )
        try:
            result = run()
        except Exception as exc:
            self.failed[chapter] = f"{type(exc).__name__}: {exc}"
            raise
        if result is None:  # the demo skipped it, and said why
            self.failed[chapter] = "skipped"
            pytest.fail(f"{chapter} was skipped (see the demo's output)", pytrace=False)
        return result


@pytest.fixture(scope="module")
def story(demo: Demo) -> Story:
    return Story(demo)


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
