"""Silence rejects: the approval window closes, the dev endpoint goes, production is unchanged."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from safe_deploy import ops
from safe_deploy.demo import SCENARIO_PARAMETERS, Demo
from tests.e2e.conftest import sagemaker_resources, start_demo, subject_arrives


@pytest.fixture(scope="module")
def impatient(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Demo]:
    cloud, demo = start_demo(
        tmp_path_factory.mktemp("timeout"), SCENARIO_PARAMETERS["approval-times-out"]
    )
    try:
        yield demo
    finally:
        cloud.stop()


def test_nobody_answers_and_the_candidate_is_rejected(impatient: Demo) -> None:
    blue = f"{impatient.first_model()}-prod"
    impatient.failing_month("approval-times-out", blue)
    run = impatient.notes["scenario"]["run"]

    assert (run.status, run.error) == ("FAILED", "ApprovalTimedOut")
    assert "no decision within 600 seconds" in (run.cause or "")
    assert ops.release(impatient.target).production_endpoint == blue
    assert sagemaker_resources(impatient)["endpoints"] == [blue]
    model = run.name
    assert subject_arrives(impatient.cloud, model, "stopped")
