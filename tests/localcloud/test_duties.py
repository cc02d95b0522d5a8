"""The local cloud's background duties (alarm evaluation, the SNS outbox, SageMaker's clock) never
die silently: a rollback that waits on an alarm, or a hook that waits on a capture file, would
otherwise wait for something that can no longer happen. A duty ends quietly only when the cloud
stops; any other end is in the activity feed and fails what waits on the cloud."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from safe_deploy.demo import Demo
from safe_deploy.localcloud.cloud import LocalCloud, LocalCloudBroken
from safe_deploy.localcloud.state import LocalSettings

ROOT = Path(__file__).resolve().parents[2]


def _cloud(tmp_path: Path) -> LocalCloud:
    return LocalCloud(LocalSettings(ROOT, tmp_path / "cloud"))


def _fails() -> None:
    raise KeyError("no such queue")


def test_a_duty_that_fails_while_the_cloud_runs_breaks_it_loudly(tmp_path: Path) -> None:
    cloud = _cloud(tmp_path)

    cloud._keep("the SNS outbox", _fails)

    assert cloud.broken == ["the SNS outbox stopped: KeyError: 'no such queue'"]
    assert [a.message for a in cloud.feed.find("local")] == cloud.broken
    with pytest.raises(LocalCloudBroken, match="the SNS outbox stopped"):
        cloud.wait_for(lambda: False, 5, what="a rollback")


def test_a_duty_that_returns_while_the_cloud_runs_is_broken_too(tmp_path: Path) -> None:
    cloud = _cloud(tmp_path)

    cloud._keep("alarm evaluation", lambda: None)

    assert cloud.broken == ["alarm evaluation ended while the local cloud runs"]
    assert cloud.broken_event.is_set()


def test_a_duty_ends_quietly_when_the_cloud_stops(tmp_path: Path) -> None:
    cloud = _cloud(tmp_path)
    cloud._threads_stop.set()  # what stop() does first; the server going away fails the last call

    cloud._keep("alarm evaluation", _fails)

    assert cloud.broken == []
    assert cloud.wait_for(lambda: "answer", 1) == "answer"


def test_waiting_on_a_healthy_cloud_is_not_cut_short(tmp_path: Path) -> None:
    cloud = _cloud(tmp_path)
    later = threading.Timer(0.3, lambda: cloud.feed.emit("codedeploy", "100% of live"))
    later.start()

    assert cloud.wait_for(lambda: cloud.feed.find("codedeploy"), 5, interval=0.05)


class _SageMaker:
    def __init__(self, code: str) -> None:
        self.code = code

    def describe_endpoint(self, **_: Any) -> dict[str, Any]:
        error = {"Error": {"Code": self.code, "Message": "..."}}
        raise ClientError(error, "DescribeEndpoint")  # type: ignore[arg-type]


class _Target:
    def __init__(self, code: str) -> None:
        self.sagemaker = _SageMaker(code)

    def client(self, service: str) -> Any:
        assert service == "sagemaker"
        return self.sagemaker


def test_the_demo_reads_only_a_missing_endpoint_as_deleted() -> None:
    demo = Demo.__new__(Demo)

    demo.target = _Target("ValidationException")  # type: ignore[assignment]
    assert demo._endpoint_gone("fare-1-prod")

    demo.target = _Target("AccessDeniedException")  # type: ignore[assignment]
    with pytest.raises(ClientError, match="AccessDenied"):
        demo._endpoint_gone("fare-1-prod")
