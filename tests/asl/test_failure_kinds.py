"""How the training run reads a failed job or child run (the ``*FailureKind`` states and the states
after them), run in moto's interpreter with the local cloud's fixes: a job that ran and failed is
reported in its own words; a call that failed, and a ``States.TaskFailed`` whose Cause is not a
job's description, go on with the error as it came. No failure may end the run in
``States.Runtime``, which would put its own error in place of the job's."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import boto3
import pytest

from tests.support import offline_aws
from tests.support_template import REPO

TRAINING = json.loads((REPO / "statemachines" / "training.asl.json").read_text())
ROLE = "arn:aws:iam::123456789012:role/states"
EXIT_MESSAGE = "raw/ holds no trips for 2024-02"
FAILURE_REASON = "AlgorithmError: See job logs for more information"
JOB = json.dumps(
    {
        "ProcessingJobName": "fare-9b5c86e7fd15-prepare",
        "ProcessingJobStatus": "Failed",
        "FailureReason": FAILURE_REASON,
        "ExitMessage": EXIT_MESSAGE,
    }
)
ROLLED_BACK = "green's errors alarm went off"
CHILD = json.dumps({"Status": "FAILED", "Error": "CanaryRolledBack", "Cause": ROLLED_BACK})
NOT_JSON = "Internal error while polling the job"  # a TaskFailed that carries no description
CALL_FAILED = {"Error": "SageMaker.ResourceLimitExceededException", "Cause": "limit (Service: …)"}


def _states(states: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    for name, state in states.items():
        yield name, state
        for branch in state.get("Branches", []):
            yield from _states(branch["States"])


ALL_STATES = dict(_states(TRAINING["States"]))


def _machine(kind: str) -> dict[str, Any]:
    """The Choice and Pass states reachable from ``kind``, as the definition has them; each state
    they lead to that does work (a Task, a Fail) is a Pass that records its name and ends."""
    states: dict[str, Any] = {}
    todo = [kind]
    while todo:
        name = todo.pop()
        state = ALL_STATES[name]
        if name in states:
            continue
        if state["Type"] not in ("Choice", "Pass"):
            states[name] = {"Type": "Pass", "Result": name, "ResultPath": "$.reached", "End": True}
            continue
        states[name] = state
        rules = [*state.get("Choices", []), state]
        todo += [rule[key] for rule in rules for key in ("Next", "Default") if key in rule]
    return {"StartAt": kind, "States": states}


@pytest.fixture(scope="module")
def sfn() -> Iterator[Any]:
    """moto's Step Functions in this process, running what it is given. Imported here: its
    interpreter takes 2 s to import, which every worker would pay while collecting."""
    from moto import mock_aws

    from safe_deploy.localcloud import fixes, patching

    with pytest.MonkeyPatch.context() as monkeypatch:
        offline_aws(monkeypatch)
        with mock_aws(config={"stepfunctions": {"execute_state_machine": True}}):
            fixes.install()
            try:
                yield boto3.client("stepfunctions", region_name="us-east-1")
            finally:
                patching.restore_all()


def _run(sfn: Any, kind: str, failure: dict[str, str]) -> dict[str, Any]:
    machine = sfn.create_state_machine(
        name=f"{kind}-{time.monotonic_ns()}", definition=json.dumps(_machine(kind)), roleArn=ROLE
    )["stateMachineArn"]
    arn = sfn.start_execution(
        stateMachineArn=machine,
        input=json.dumps({"failure": failure, "config": {"promote_tested": False}}),
    )["executionArn"]
    deadline = time.monotonic() + 30
    while (described := sfn.describe_execution(executionArn=arn))["status"] == "RUNNING":
        assert time.monotonic() < deadline, f"{kind} did not finish in 30 s"
        time.sleep(0.02)
    failed = (described.get("error"), described.get("cause"))
    assert described["status"] == "SUCCEEDED", (kind, *failed)
    output = json.loads(described["output"])
    return {"reached": output["reached"], **output["failure"]}


# kind, the state a failure ends in, the failure a job that ran reports there
JOB_FAILURES = [
    ("PrepareDataFailureKind", "NotifyFailure", "PrepareDataFailed", JOB, EXIT_MESSAGE),
    ("TrainFailureKind", "TrainingFailedFail", "TrainingJobFailed", JOB, FAILURE_REASON),
    ("BaselineFailureKind", "BaselineFailedFail", "BaselineJobFailed", JOB, FAILURE_REASON),
    ("CompareFailureKind", "CandidateFailedFail", "CompareFailed", JOB, EXIT_MESSAGE),
    ("DeployToProductionFailureKind", "NotifyFailure", "CanaryRolledBack", CHILD, ROLLED_BACK),
]
KINDS = [kind for kind, *_ in JOB_FAILURES]
# A Fail state's Error may not start with "States."; these kinds name it without the prefix.
UNPREFIXED = {"TrainFailureKind", "BaselineFailureKind", "CompareFailureKind"}


def test_every_failure_kind_of_the_definition_is_here() -> None:
    assert sorted(name for name in ALL_STATES if name.endswith("FailureKind")) == sorted(KINDS)


@pytest.mark.parametrize(("kind", "end", "error", "cause", "said"), JOB_FAILURES)
def test_a_job_that_ran_and_failed_is_reported_in_its_own_words(
    sfn: Any, kind: str, end: str, error: str, cause: str, said: str
) -> None:
    reported = _run(sfn, kind, {"Error": "States.TaskFailed", "Cause": cause})
    assert reported == {"reached": end, "Error": error, "Cause": said}


@pytest.mark.parametrize(("kind", "end"), [(kind, end) for kind, end, *_ in JOB_FAILURES])
@pytest.mark.parametrize(
    "failure",
    [{"Error": "States.TaskFailed", "Cause": NOT_JSON}, CALL_FAILED],
    ids=["task-failed-without-a-description", "the-call-failed"],
)
def test_any_other_failure_goes_on_as_it_came(
    sfn: Any, kind: str, end: str, failure: dict[str, str]
) -> None:
    reported = _run(sfn, kind, failure)
    error = failure["Error"]
    if kind in UNPREFIXED and error.startswith("States."):
        error = error.removeprefix("States.")
    assert reported == {"reached": end, "Error": error, "Cause": failure["Cause"]}
