"""The projected AWS timeline of a release run through the local cloud: its stages in order, the
green endpoint's creation counted between the approval and the canary, and the goal of issue 15
(10% canary at most 2 minutes after the approval on AWS's timings) met when the tested endpoint
is promoted as green."""

from __future__ import annotations

import re
from dataclasses import dataclass

import pytest
from click.testing import CliRunner, Result

from safe_deploy import ops
from safe_deploy.cli import main
from safe_deploy.localcloud.timeline import RunTimeline, Stage, aws_seconds
from safe_deploy.localcloud.timeline.durations import (
    CANARY_BAKE,
    DEPLOYMENT_START,
    ENDPOINT,
    JOB_STARTUP,
    STACK_UPDATE_START,
)
from safe_deploy.localcloud.timeline.stages import BAKE, FULL, GATE, PERSON, TRAINING, to_canary
from safe_deploy.target import TargetError
from tests.e2e.conftest import running_demo

STAGES = [TRAINING, GATE, PERSON, to_canary(0.1), BAKE, FULL]
CANARY_GOAL_SECONDS = 120.0  # issue 15: 10% canary within 2 minutes of the approval


@dataclass(frozen=True)
class Released:
    """A first model released through a local cloud, and what its timeline looked like from the
    cloud itself, through its API, to ``safe-deploy status`` and for a run that does not exist.
    Read before the cloud stops: one local cloud runs in a process at a time."""

    model: str
    timeline: RunTimeline
    through_api: RunTimeline
    status: Result
    unknown_run: str


def _release(tmp_path_factory: pytest.TempPathFactory, overrides: dict[str, str]) -> Released:
    with running_demo(tmp_path_factory.mktemp("timeline"), overrides) as demo:
        model = demo.first_model().model
        status = CliRunner().invoke(
            main,
            ["status", "--runs", "1", "--timeline", model],
            env={"SAFE_DEPLOY_LOCAL": str(demo.workdir / "local.json")},
        )
        with pytest.raises(TargetError) as unknown:
            ops.run_timeline(demo.target, "fare-000000000000")
        return Released(
            model,
            demo.cloud.timeline_of(model),
            ops.run_timeline(demo.target, model),
            status,
            str(unknown.value),
        )


@pytest.fixture(scope="module")
def default_release(tmp_path_factory: pytest.TempPathFactory) -> Released:
    return _release(tmp_path_factory, {})


@pytest.fixture(scope="module")
def promoted_release(tmp_path_factory: pytest.TempPathFactory) -> Released:
    return _release(tmp_path_factory, {"PromoteTestedEndpoint": "true"})


def stage_of(timeline: RunTimeline, name: str) -> Stage:
    found = timeline.stage(name)
    assert found is not None, [s.name for s in timeline.stages]
    return found


def projected(timeline: RunTimeline, name: str) -> float:
    seconds = stage_of(timeline, name).projected
    assert seconds is not None
    return seconds


def parts(timeline: RunTimeline, name: str) -> dict[tuple[str, str], float]:
    return {(p.operation, p.subject): p.projected for p in stage_of(timeline, name).parts}


def test_a_release_has_every_stage_in_order(default_release: Released) -> None:
    timeline = default_release.timeline

    assert [stage.name for stage in timeline.stages] == STAGES
    assert not timeline.running
    for before, after in zip(timeline.stages, timeline.stages[1:], strict=False):
        assert before.end == after.start
        assert before.start <= before.end
    person = stage_of(timeline, PERSON)
    assert person.projected is None  # a person's wait is never projected
    assert all(s.projected is not None for s in timeline.stages if s is not person)


def test_each_stage_counts_the_aws_time_of_what_it_waited_for(default_release: Released) -> None:
    timeline, model = default_release.timeline, default_release.model

    training = parts(timeline, TRAINING)
    assert training[(JOB_STARTUP, f"{model}-prepare")] == pytest.approx(aws_seconds(JOB_STARTUP))
    assert parts(timeline, GATE)[(ENDPOINT, f"{model}-dev")] == pytest.approx(aws_seconds(ENDPOINT))
    assert projected(timeline, BAKE) == pytest.approx(300.0, abs=2.0)  # Canary10Percent5Minutes
    bake = {op: seconds for (op, _), seconds in parts(timeline, BAKE).items()}
    assert bake.pop(CANARY_BAKE) == pytest.approx(300.0, abs=1.0)
    assert sum(bake.values()) < 1.0  # the stack's own calls around it
    for stage in timeline.stages:  # the parts say where all of a stage's time went
        if stage.projected is not None:
            assert sum(p.projected for p in stage.parts) == pytest.approx(stage.projected)
            assert stage.projected >= stage.local


def test_approval_to_canary_includes_the_green_endpoint_s_creation(
    default_release: Released,
) -> None:
    timeline, model = default_release.timeline, default_release.model

    found = parts(timeline, to_canary(0.1))

    assert found[(ENDPOINT, f"{model}-prod")] == pytest.approx(aws_seconds(ENDPOINT))
    assert found[(STACK_UPDATE_START, "safe-deploy-local")] == aws_seconds(STACK_UPDATE_START)
    assert sum(v for (op, _), v in found.items() if op == DEPLOYMENT_START) == aws_seconds(
        DEPLOYMENT_START
    )
    seconds = projected(timeline, to_canary(0.1))
    assert seconds > aws_seconds(ENDPOINT) + aws_seconds(STACK_UPDATE_START)
    assert seconds > CANARY_GOAL_SECONDS  # why green must not be created after the approval


def test_status_shows_the_timeline_from_the_local_cloud(default_release: Released) -> None:
    model, shown = default_release.model, default_release.status

    assert shown.exit_code == 0, shown.output
    table = shown.output[shown.output.index(f"timeline of {model}") :]
    minutes = projected(default_release.timeline, to_canary(0.1)) / 60
    assert re.search(rf"approval → 10% canary .* {minutes:.1f} min", table)
    assert re.search(r"waiting for a person .* a person .* not projected", table)
    total = default_release.timeline.total_projected
    assert total is not None
    assert re.search(rf"total .* {total / 60:.1f} min .* without the person's wait", table)


def test_the_local_cloud_s_api_answers_the_same_timeline(default_release: Released) -> None:
    assert default_release.through_api.stages == default_release.timeline.stages
    assert default_release.unknown_run == "no pipeline run named fare-000000000000"


def test_with_the_tested_endpoint_promoted_the_canary_comes_within_two_minutes(
    promoted_release: Released,
) -> None:
    timeline, model = promoted_release.timeline, promoted_release.model

    assert [s.name for s in timeline.stages] == STAGES
    assert all(op != ENDPOINT for op, _ in parts(timeline, to_canary(0.1)))
    assert projected(timeline, to_canary(0.1)) <= CANARY_GOAL_SECONDS
    # the endpoint was created once, before the person was asked, as production's
    assert parts(timeline, GATE)[(ENDPOINT, f"{model}-prod")] == pytest.approx(
        aws_seconds(ENDPOINT)
    )
