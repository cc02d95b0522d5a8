"""The projected AWS timeline: its table of AWS durations (every entry with a source, mirrored in
docs/timeline.md), the stages derived from what a run did, the projection of each stage, and
reading the stages' boundaries from execution histories and CodeDeploy."""

from __future__ import annotations

import io
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError
from rich.console import Console

from safe_deploy.cli_status import timeline_table
from safe_deploy.localcloud.timeline import (
    AWS_DURATIONS,
    Boundaries,
    Kind,
    Recorder,
    Rule,
    RunNotFound,
    RunTimeline,
    Shift,
    Span,
)
from safe_deploy.localcloud.timeline.durations import (
    CANARY_BAKE,
    DEPLOYMENT_START,
    ENDPOINT,
    JOB_RUN,
    JOB_STARTUP,
    LOCAL_WORK,
    NOT_DOCUMENTED,
    STACK_UPDATE,
    STACK_UPDATE_START,
    WAIT_STATE,
)
from safe_deploy.localcloud.timeline.history import (
    deployment_shifts,
    first_shift_weight,
    run_boundaries,
)
from safe_deploy.localcloud.timeline.stages import (
    AFTER_DECISION,
    AWS,
    BAKE,
    FULL,
    GATE,
    PERSON,
    ROLLED_BACK,
    TO_FULL,
    TO_TRAFFIC,
    TRAINING,
    derive,
    project,
    to_canary,
)

ROOT = Path(__file__).resolve().parents[2]
RUN = "fare-60b804017852"
OTHER = "fare-111111111111"
T0 = 1_000_000.0


# ---------------------------------------------------------------------------- the table
def test_every_aws_duration_has_a_source() -> None:
    operations = [d.operation for d in AWS_DURATIONS]
    assert len(operations) == len(set(operations))
    for duration in AWS_DURATIONS:
        assert duration.source.strip(), duration.operation
        assert (duration.seconds is not None) == (duration.rule is Rule.FIXED), duration
        if duration.rule is Rule.FIXED:
            assert duration.seconds is not None
            assert duration.seconds > 0
            # a number from a document, or a typical value that says it is one, and why
            assert "https://" in duration.source or duration.source.startswith(NOT_DOCUMENTED)
        if not duration.documented:
            assert len(duration.source) > len(NOT_DOCUMENTED) + 40, "give the basis"
    declared = {d.operation: d for d in AWS_DURATIONS if d.rule is Rule.DECLARED}
    assert all("docs.aws.amazon.com" in d.source for d in declared.values())


def test_the_documentation_shows_the_same_table() -> None:
    page = (ROOT / "docs" / "timeline.md").read_text()
    rows = {
        match.group(1): match.group(2).strip()
        for match in re.finditer(r"^\| `([a-z.-]+)` \|[^|]*\|([^|]*)\|", page, re.MULTILINE)
    }
    assert set(rows) == {d.operation for d in AWS_DURATIONS}
    for duration in AWS_DURATIONS:
        shown = rows[duration.operation]
        if duration.seconds is not None:
            assert shown == f"{duration.seconds:g} s", duration.operation
        else:
            assert shown == duration.rule.value, duration.operation


# ---------------------------------------------------------------------------- projection
def span(
    operation: str,
    subject: str,
    kind: Kind,
    start: float,
    end: float | None,
    projected: float | None = None,
    *,
    run: str | None = None,
    stack: bool = False,
    expected: float | None = None,
) -> Span:
    return Span(operation, subject, kind, T0 + start, None if end is None else T0 + end,
                projected, expected, run, stack)  # fmt: skip


def endpoint(start: float, end: float | None, name: str = f"{RUN}-prod") -> Span:
    return span(ENDPOINT, name, Kind.WAIT, start, end, 600.0, expected=2.4)


def poll(start: float, end: float, state: str = "WaitForGreen", run: str = RUN) -> Span:
    return span(WAIT_STATE, state, Kind.POLL, start, end, 30.0, run=run, expected=0.6)


def test_an_endpoint_counts_its_aws_minutes_and_the_polls_only_their_tail() -> None:
    spans = [endpoint(0.1, 2.6)] + [poll(0.1 + 0.6 * i, 0.7 + 0.6 * i) for i in range(5)]

    seconds, parts = project(spans, T0, T0 + 2.9, T0 + 10)

    by_part = {(p.operation, p.subject): p.projected for p in parts}
    assert by_part[(ENDPOINT, f"{RUN}-prod")] == pytest.approx(600.0)
    # the last poll goes on for 0.3 s after InService: 15 s of its 30 on AWS
    assert by_part[(WAIT_STATE, "WaitForGreen")] == pytest.approx(15.0)
    assert by_part[(LOCAL_WORK, "")] == pytest.approx(0.1)  # the calls before: real work
    assert seconds == pytest.approx(615.1)


def test_waits_side_by_side_take_the_longer_not_the_sum() -> None:
    spans = [
        span(JOB_STARTUP, f"{RUN}-train", Kind.WAIT, 0.0, 1.2, 240.0),
        span(JOB_STARTUP, f"{RUN}-baseline", Kind.WAIT, 0.0, 1.2, 240.0),
        span(JOB_RUN, f"{RUN}-train", Kind.WORK, 1.2, 4.2),
        span(JOB_RUN, f"{RUN}-baseline", Kind.WORK, 1.2, 2.2),
    ]

    seconds, _ = project(spans, T0, T0 + 4.2, T0 + 10)

    assert seconds == pytest.approx(240.0 + 3.0)  # the longer job: start-up, then its run


def test_a_poll_under_real_work_counts_as_the_work_does() -> None:
    """The deploy machine polls the stack every 30 s while CloudFormation runs a hook for 2 real
    seconds: that is 2 s on AWS too, not 100."""
    spans = [
        span(STACK_UPDATE, "stack", Kind.WORK, 0.0, 2.0, stack=True),
        poll(0.0, 0.6, "WaitForUpdate"),
        poll(0.6, 1.2, "WaitForUpdate"),
        poll(1.2, 1.8, "WaitForUpdate"),
        poll(1.8, 2.4, "WaitForUpdate"),
    ]

    seconds, parts = project(spans, T0, T0 + 2.4, T0 + 10)

    assert seconds == pytest.approx(2.0 + 0.4 * 50)  # the work, then the last poll's tail
    assert {p.operation for p in parts} == {STACK_UPDATE, WAIT_STATE}


def test_a_wait_the_local_cloud_does_not_sleep_adds_its_seconds_where_it_happens() -> None:
    spans = [
        span(STACK_UPDATE_START, "stack", Kind.INSTANT, 1.0, 1.0, 60.0, stack=True),
        span(DEPLOYMENT_START, "d-1", Kind.INSTANT, 2.0, 2.0, 15.0, stack=True),
    ]

    assert project(spans, T0, T0 + 1.5, T0 + 10)[0] == pytest.approx(1.5 + 60.0)
    assert project(spans, T0 + 1.5, T0 + 3.0, T0 + 10)[0] == pytest.approx(1.5 + 15.0)


def test_a_wait_under_way_counts_at_the_pace_it_is_meant_to_go() -> None:
    """Half-way through its local 2.4 s, an endpoint has had half its AWS minutes, not all."""
    spans = [endpoint(0.0, None)]

    seconds, _ = project(spans, T0, T0 + 1.2, T0 + 1.2)

    assert seconds == pytest.approx(300.0)


# ---------------------------------------------------------------------------- stages
RELEASED = Boundaries(
    started=T0,
    gate=T0 + 10,
    approval_requested=T0 + 15,
    decided=T0 + 20,
    promotion_started=T0 + 21,
    promotion_ended=T0 + 40,
    ended=T0 + 41,
)


def release_spans() -> list[Span]:
    return [
        span(JOB_STARTUP, f"{RUN}-prepare", Kind.WAIT, 0.5, 1.7, 240.0),
        endpoint(11.0, 13.5, f"{RUN}-dev"),
        endpoint(21.5, 24.0),
        poll(22.0, 22.6),
        span(STACK_UPDATE, "stack", Kind.WORK, 25.0, 39.0, stack=True),
        span(STACK_UPDATE_START, "stack", Kind.INSTANT, 25.0, 25.0, 60.0, stack=True),
        span(DEPLOYMENT_START, "d-1", Kind.INSTANT, 26.0, 26.0, 15.0, stack=True),
        span(CANARY_BAKE, "d-1", Kind.WAIT, 27.0, 33.0, 300.0, stack=True),
        # not this run's: another run's endpoint and Wait state, a stack update before its promotion
        endpoint(22.0, 24.5, f"{OTHER}-prod"),
        poll(30.0, 30.6, run=OTHER),
        span(STACK_UPDATE_START, "stack", Kind.INSTANT, 5.0, 5.0, 60.0, stack=True),
    ]


SHIFTS = [Shift(T0 + 27.0, "d-1", 0.1), Shift(T0 + 33.0, "d-1", 1.0)]


def test_a_release_is_divided_where_its_run_moved_on() -> None:
    timeline = derive(RUN, RELEASED, release_spans(), SHIFTS, T0 + 50, time_scale=0.02)

    assert [(s.name, s.start - T0, s.end - T0) for s in timeline.stages] == [
        (TRAINING, 0, 10),
        (GATE, 10, 15),
        (PERSON, 15, 20),
        (to_canary(0.1), 20, 27),
        (BAKE, 27, 33),
        (FULL, 33, 41),
    ]
    assert not timeline.running
    assert timeline.total_local == 41


def test_each_stage_counts_what_it_waited_for_and_a_person_is_not_projected() -> None:
    timeline = derive(RUN, RELEASED, release_spans(), SHIFTS, T0 + 50)

    def parts(name: str) -> dict[str, float]:
        stage = timeline.stage(name)
        assert stage is not None
        return {p.operation: p.projected for p in stage.parts}

    assert parts(TRAINING)[JOB_STARTUP] == pytest.approx(240.0)
    assert STACK_UPDATE_START not in parts(TRAINING)  # before its promotion: not its stack's
    assert parts(GATE)[ENDPOINT] == pytest.approx(600.0)
    to_canary_parts = parts(to_canary(0.1))
    assert to_canary_parts[ENDPOINT] == pytest.approx(600.0)  # its own green, not the other's
    assert to_canary_parts[STACK_UPDATE_START] == 60.0
    assert to_canary_parts[DEPLOYMENT_START] == 15.0
    assert parts(BAKE)[CANARY_BAKE] == pytest.approx(300.0)
    person = timeline.stage(PERSON)
    assert person is not None
    assert person.projected is None
    assert person.parts == ()
    projected = [s.projected for s in timeline.stages if s.projected is not None]
    assert timeline.total_projected == pytest.approx(sum(projected))


def test_a_rolled_back_canary_ends_in_the_rollback() -> None:
    shifts = [Shift(T0 + 27.0, "d-1", 0.1), Shift(T0 + 30.0, "d-1", 0.0)]

    timeline = derive(RUN, RELEASED, [], shifts, T0 + 50)

    assert [s.name for s in timeline.stages][-2:] == [BAKE, ROLLED_BACK]


def test_a_rollback_after_100_percent_is_noted_on_the_last_stage() -> None:
    """The post-traffic hook said no: the alias went back after all traffic had moved."""
    shifts = [*SHIFTS, Shift(T0 + 35.0, "d-1", 0.0)]

    last = derive(RUN, RELEASED, [], shifts, T0 + 50).stages[-1]

    assert (last.name, last.note) == (FULL, "rolled back after 100%")


def test_all_at_once_has_no_canary_stage() -> None:
    timeline = derive(RUN, RELEASED, [], [Shift(T0 + 27.0, "d-1", 1.0)], T0 + 50)

    assert [s.name for s in timeline.stages][-2:] == [TO_FULL, FULL]


def test_a_rejected_candidate_ends_after_the_decision() -> None:
    rejected = Boundaries(T0, T0 + 21, T0 + 10, T0 + 15, T0 + 20)

    timeline = derive(RUN, rejected, [], [], T0 + 50)

    assert [s.name for s in timeline.stages] == [TRAINING, GATE, PERSON, AFTER_DECISION]
    assert timeline.stages[-1].note == ""


def test_a_failed_promotion_says_no_traffic_moved() -> None:
    failed = Boundaries(T0, T0 + 41, T0 + 10, T0 + 15, T0 + 20, T0 + 21, T0 + 40)

    timeline = derive(RUN, failed, [], [], T0 + 50)

    assert timeline.stages[-1].name == AFTER_DECISION
    assert timeline.stages[-1].note == "no traffic shifted"


def test_a_run_under_way_ends_now() -> None:
    waiting = Boundaries(T0, None, T0 + 10, T0 + 15, T0 + 20, T0 + 21)

    timeline = derive(RUN, waiting, [endpoint(21.5, None)], [], T0 + 22.7)

    assert timeline.running
    last = timeline.stages[-1]
    assert (last.name, last.note) == (TO_TRAFFIC, "under way")
    assert last.end == T0 + 22.7
    assert last.projected == pytest.approx(1.5 + 300.0)  # half the endpoint's creation so far


def test_aws_times_are_not_projected() -> None:
    timeline = derive(RUN, RELEASED, [], SHIFTS, T0 + 50, source=AWS)

    assert all(s.projected is None for s in timeline.stages)
    assert timeline.total_projected is None


def test_a_timeline_survives_json() -> None:
    timeline = derive(RUN, RELEASED, release_spans(), SHIFTS, T0 + 50, time_scale=0.02)

    assert RunTimeline.from_json(timeline.as_json()) == timeline


# ---------------------------------------------------------------------------- the recorder
def test_a_span_ends_even_when_its_wait_fails() -> None:
    ticks = iter([5.0, 7.5])
    recorder = Recorder(clock=lambda: next(ticks))

    with (
        pytest.raises(RuntimeError),
        recorder.span(ENDPOINT, f"{RUN}-prod", Kind.WAIT, projected=600.0),
    ):
        raise RuntimeError("the model could not be loaded")

    spans, _ = recorder.snapshot()
    assert [(s.start, s.end, s.projected) for s in spans] == [(5.0, 7.5, 600.0)]


# ---------------------------------------------------------------------------- reading AWS
def at(seconds: float) -> datetime:
    return datetime.fromtimestamp(T0 + seconds, UTC)


class FakeStepFunctions:
    """describe_execution and a paged get_execution_history, as Step Functions answers them."""

    def __init__(self, executions: dict[str, dict[str, Any]], events: list[dict[str, Any]]):
        self.executions = executions
        self.events = events

    def describe_execution(self, executionArn: str) -> dict[str, Any]:
        if executionArn not in self.executions:
            raise ClientError(
                {"Error": {"Code": "ExecutionDoesNotExist", "Message": "no"}}, "DescribeExecution"
            )
        return {"executionArn": executionArn, **self.executions[executionArn]}

    def get_execution_history(self, **request: Any) -> dict[str, Any]:
        start = int(request.get("nextToken") or 0)
        page = self.events[start : start + 2]  # small pages: the reader must follow nextToken
        more = start + 2 < len(self.events)
        return {"events": page, **({"nextToken": str(start + 2)} if more else {})}


TRAINING_MACHINE = "arn:aws:states:us-east-1:123456789012:stateMachine:training"
DEPLOY_MACHINE = "arn:aws:states:us-east-1:123456789012:stateMachine:deploy"


def entered(name: str, seconds: float) -> dict[str, Any]:
    return {"timestamp": at(seconds), "stateEnteredEventDetails": {"name": name}}


def test_boundaries_come_from_the_run_s_histories() -> None:
    training = TRAINING_MACHINE.replace(":stateMachine:", ":execution:") + f":{RUN}"
    deploy = DEPLOY_MACHINE.replace(":stateMachine:", ":execution:") + f":{RUN}"
    sfn = FakeStepFunctions(
        {
            training: {"startDate": at(0), "stopDate": at(41)},
            deploy: {"startDate": at(21), "stopDate": at(40)},
        },
        [
            {"timestamp": at(0), "executionStartedEventDetails": {}},
            entered("PrepareData", 0.1),
            entered("Evaluate", 10),
            entered("RequestApproval", 15),
            {"timestamp": at(19), "taskSucceededEventDetails": {}},
            entered("ApprovalNote", 20),
            entered("DeployToProduction", 20.5),
        ],
    )

    bounds = run_boundaries(sfn, TRAINING_MACHINE, DEPLOY_MACHINE, RUN)

    assert bounds == RELEASED


def test_a_run_that_does_not_exist_has_no_boundaries() -> None:
    with pytest.raises(RunNotFound, match=f"no pipeline run named {RUN}"):
        run_boundaries(FakeStepFunctions({}, []), TRAINING_MACHINE, DEPLOY_MACHINE, RUN)


class FakeCodeDeploy:
    def __init__(self, config: str, events: list[dict[str, Any]]) -> None:
        self.config = config
        self.events = events

    def get_deployment(self, deploymentId: str) -> dict[str, Any]:
        return {
            "deploymentInfo": {"deploymentId": deploymentId, "deploymentConfigName": self.config}
        }

    def list_deployment_targets(self, deploymentId: str) -> dict[str, Any]:
        return {"targetIds": ["predict:live"]}

    def get_deployment_target(self, deploymentId: str, targetId: str) -> dict[str, Any]:
        return {"deploymentTarget": {"lambdaTarget": {"lifecycleEvents": self.events}}}


def test_a_deployment_s_traffic_shifts_come_from_its_allow_traffic_event() -> None:
    codedeploy = FakeCodeDeploy(
        "CodeDeployDefault.LambdaCanary10Percent5Minutes",
        [
            {"lifecycleEventName": "BeforeAllowTraffic", "startTime": at(25), "endTime": at(27)},
            {
                "lifecycleEventName": "AllowTraffic",
                "startTime": at(27),
                "endTime": at(33),
                "status": "Succeeded",
            },
        ],
    )

    assert deployment_shifts(codedeploy, "d-1") == SHIFTS


def test_the_first_shift_is_the_configuration_s() -> None:
    assert first_shift_weight("CodeDeployDefault.LambdaCanary10Percent5Minutes") == 0.1
    assert first_shift_weight("CodeDeployDefault.LambdaLinear10PercentEvery1Minute") == 0.1
    assert first_shift_weight("CodeDeployDefault.LambdaAllAtOnce") == 1.0


# ---------------------------------------------------------------------------- the table shown
def test_the_table_shows_local_and_projected_time_and_the_total() -> None:
    timeline = derive(RUN, RELEASED, release_spans(), SHIFTS, T0 + 50, time_scale=0.02)
    out = io.StringIO()

    Console(file=out, width=200, highlight=False).print(timeline_table(timeline))

    text = out.getvalue()
    stage = timeline.stage(to_canary(0.1))
    assert stage is not None
    assert stage.projected is not None
    assert re.search(rf"approval → 10% canary +│ +7\.0 s │ +{stage.projected / 60:.1f} min", text)
    assert re.search(r"endpoint creation fare-60b804017852-prod 10\.0 min", text)
    assert re.search(r"waiting for a person +│ +5\.0 s │ +a person │ not projected", text)
    assert timeline.total_projected is not None
    assert re.search(rf"total +│ +41\.0 s │ +{timeline.total_projected / 60:.1f} min", text)
    assert "time scale 0.02" in text
