"""``safe-deploy status``, run by run: where each run came from, the step it is on, the candidate's
numbers before anyone approves, and why a run stopped, root cause first and in full."""

from __future__ import annotations

import io
import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws
from rich.console import Console

from safe_deploy import ops
from safe_deploy.cli_status import production_model, run_block
from safe_deploy.target import Target, TargetError

STARTED = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
SOURCE = {"bucket": "fares-data", "key": "raw/green_tripdata_2018-02.csv", "version_id": "v3.a"}
EVALUATION = {
    "passed": True,
    "reason": "validation RMSE 6.258 is under the ceiling 8.000; no model in production yet",
    "validation_rmse": 6.2577839651971665,
    "train_rmse": 4.734880432228987,
    "champion_rmse": None,
    "summary": "No model in production yet, so only the ceiling applies: 6.26 is under 8.00.",
    "rule": "no-champion",
}
TEST_REPORT = {"rows": 243, "rmse": 5.6426311400397084, "mae": 2.5079223473474332}
HOOK_VERDICT = "0 API requests captured on fare-60b804017852-prod; at least 20 needed"


def rendered(run: ops.Run, width: int = 80) -> str:
    out = io.StringIO()
    Console(file=out, width=width, highlight=False, emoji=False).print(run_block(run))
    return out.getvalue()


def squeezed(text: str) -> str:
    """The text without whitespace and panel borders: what wrapping cannot change."""
    return re.sub(r"[\s│╭╮╰╯─]", "", text)


def a_run(**values: Any) -> ops.Run:
    defaults: dict[str, Any] = {
        "name": "fare-60b804017852",
        "arn": "arn:aws:states:us-east-1:123456789012:execution:training:fare-60b804017852",
        "status": "RUNNING",
        "started": STARTED,
        "stopped": None,
        "step": "RequestApproval",
        "source": dict(SOURCE),
        "trigger": "new data",
    }
    return ops.Run(**{**defaults, **values})


# ---------------------------------------------------------------------------- what status shows
def test_a_long_nested_failure_shows_the_root_cause_first_and_in_full() -> None:
    cause = (
        "PredictFunctionAliaslive: CodeDeploy deployment f4f56182-a839-4e57-a738-abec0a4d1ef4 "
        "failed: The deployment failed because the AfterAllowTraffic lifecycle hook "
        "(safe-deploy-local-PostTrafficHookFunction-BMKRIAFX2ZGM) reported Failed"
    )
    run = a_run(
        status="FAILED",
        stopped=STARTED + timedelta(minutes=9),
        error="DeploymentFailed",
        cause=cause,
        failed_at="DeployToProduction",
        failure=ops.Failure(
            "DeploymentFailed",
            (
                f"{HOOK_VERDICT} (the AfterAllowTraffic hook, "
                "safe-deploy-local-PostTrafficHookFunction-BMKRIAFX2ZGM)",
                cause,
                "reported as DeploymentFailed at DeployToProduction",
            ),
        ),
    )

    text = rendered(run, width=80)

    assert "…" not in text
    why = text[text.index("why it stopped") :]
    assert why.index("0 API requests captured") < why.index("CodeDeploy deployment")
    assert why.index("CodeDeploy deployment") < why.index("reported as DeploymentFailed")
    for reason in run.failure.reasons if run.failure else ():
        assert squeezed(reason) in squeezed(text), f"cut: {reason}"
    assert squeezed("failed at DeployToProduction") in squeezed(text)


def test_the_source_object_key_and_version_are_shown() -> None:
    text = rendered(a_run(), width=100)

    assert squeezed("s3://fares-data/raw/green_tripdata_2018-02.csv, version v3.a") in squeezed(
        text
    )
    assert "new data" in text


def test_a_run_pending_approval_shows_the_candidate_metrics_and_the_gate_verdict() -> None:
    run = a_run(
        evaluation=dict(EVALUATION),
        test=dict(TEST_REPORT),
        approval={"status": "PENDING", "model_id": "fare-60b804017852"},
    )

    text = squeezed(rendered(run, width=100))

    assert squeezed("validation RMSE 6.258 (train 4.735)") in text
    assert squeezed("dev endpoint test RMSE 5.643, MAE 2.508 on 243 rows") in text
    assert squeezed(f"passed: {EVALUATION['summary']}") in text
    assert squeezed("step RequestApproval") in text
    assert "pending" in text


def test_the_gate_verdict_is_read_defensively() -> None:
    """A rejected candidate without ``summary`` shows its reason; an evaluation with keys this
    version does not know, or without some it does, still shows what it has."""
    rejected = {
        "passed": False,
        "reason": "validation RMSE 9.100 is above the ceiling 8.000",
        "validation_rmse": "9.1",
        "future_key": {"nested": [1, 2]},
    }
    text = squeezed(rendered(a_run(evaluation=rejected), width=100))
    assert squeezed("rejected: validation RMSE 9.100 is above the ceiling 8.000") in text
    assert squeezed("validation RMSE 9.100") in text

    unsure = squeezed(rendered(a_run(evaluation={"passed": "maybe"}), width=100))
    assert "noverdict" in unsure


def test_names_from_aws_are_printed_as_written_never_as_markup() -> None:
    source = {**SOURCE, "key": "raw/[bold]jan[/bold] :smile:.csv"}
    run = a_run(
        source=source,
        status="FAILED",
        failure=ops.Failure("PrepareDataFailed", ("[red]raw/[/red] is empty", "reported as X")),
    )

    text = rendered(run, width=120)

    assert "raw/[bold]jan[/bold] :smile:.csv" in text
    assert "[red]raw/[/red] is empty" in text


# ---------------------------------------------------------------------------- the plain cause
def test_a_container_path_in_a_cause_becomes_the_uploaded_key() -> None:
    cause = (
        "AlgorithmError: /tmp/x/cloud/sagemaker/processing/fare-1-prepare-1a2b3c/opt/ml/"
        "processing/input/raw/green_tripdata_2018-02.csv is empty (0 bytes): not a readable CSV "
        "or Parquet file, nothing to train on"
    )

    plain, kind = ops.plain_cause(cause, SOURCE)

    assert plain == (
        "raw/green_tripdata_2018-02.csv is empty (0 bytes): not a readable CSV or Parquet file, "
        "nothing to train on"
    )
    assert kind == "AlgorithmError"


def test_a_lambda_error_cause_is_its_message_not_its_stack_trace() -> None:
    cause = json.dumps(
        {
            "errorType": "ValueError",
            "errorMessage": "the champion record is not JSON: fix the parameter",
            "stackTrace": ['  File "/var/task/app.py", line 30, in lambda_handler\n'],
        }
    )

    assert ops.plain_cause(cause, SOURCE) == (
        "the champion record is not JSON: fix the parameter",
        "ValueError",
    )


# ---------------------------------------------------------------------------- reading histories
class PagedHistory:
    """Step Functions' GetExecutionHistory as AWS answers it: pages of ``maxResults``, newest
    first with ``reverseOrder``, a ``nextToken`` while more remain; counts the pages read."""

    def __init__(self, events: list[dict[str, Any]]) -> None:
        self.events = events
        self.pages = 0

    def get_execution_history(
        self,
        executionArn: str,  # boto3's parameter names
        reverseOrder: bool = False,
        maxResults: int = 1000,
        nextToken: str | None = None,
    ) -> dict[str, Any]:
        self.pages += 1
        ordered = list(reversed(self.events)) if reverseOrder else list(self.events)
        start = int(nextToken or 0)
        page: dict[str, Any] = {"events": ordered[start : start + maxResults]}
        if start + maxResults < len(ordered):
            page["nextToken"] = str(start + maxResults)
        return page


class History:
    """Builds an execution's events with the ids and ``previousEventId`` links AWS gives."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = [
            {"id": 1, "previousEventId": 0, "type": "ExecutionStarted"}
        ]
        self.document: dict[str, Any] = {"model_id": "fare-1", "source": SOURCE}

    def add(self, kind: str, previous: int | None = None, **details: Any) -> int:
        event = {
            "id": len(self.events) + 1,
            "previousEventId": self.events[-1]["id"] if previous is None else previous,
            "type": kind,
            **details,
        }
        self.events.append(event)
        return int(event["id"])

    def task(self, name: str, previous: int | None = None, fails: bool = False) -> int:
        entered = self.add("TaskStateEntered", previous, stateEnteredEventDetails=self._io(name))
        self.add("TaskScheduled", entered)
        started = self.add("TaskStarted")
        if fails:
            return self.add("TaskFailed", started)
        self.add("TaskSucceeded", started)
        return self.add("TaskStateExited", stateExitedEventDetails=self._io(name, "output"))

    def state(self, name: str, kind: str = "Pass", previous: int | None = None) -> int:
        return self.add(f"{kind}StateEntered", previous, stateEnteredEventDetails=self._io(name))

    def _io(self, name: str, key: str = "input") -> dict[str, Any]:
        return {"name": name, key: json.dumps(self.document)}


def test_a_pending_run_costs_one_page_of_a_long_history() -> None:
    built = History()
    for name in ("ReadHyperparameters", "PrepareData", "Evaluate"):
        built.task(name)
    built.document["gate"] = {"evaluation": EVALUATION}
    for _ in range(120):  # a slow dev endpoint: the wait loop's events
        built.state("WaitForDevEndpoint", "Wait")
        built.task("DescribeDevEndpoint")
    built.task("TestDevEndpoint")
    built.document["test"] = {"report": TEST_REPORT}
    built.task("RequestApproval")  # entered, waiting: its input carries everything
    built.events = built.events[:-2]
    sfn = PagedHistory(built.events)
    assert len(built.events) > 5 * ops.HISTORY_PAGE

    history = ops.ExecutionHistory(sfn, "arn")
    step = ops.current_step(history)
    evaluation, test = ops.candidate_from_history(history)

    assert step == "RequestApproval"
    assert evaluation == EVALUATION
    assert test == TEST_REPORT
    assert sfn.pages == 1


def test_the_failed_step_is_the_one_that_failed_not_the_cleanup_after_it() -> None:
    built = History()
    built.task("PrepareData")
    parallel = built.state("TrainAndBaseline", "Parallel")
    branch_start = built.add("ParallelStateStarted", parallel)
    train_failed = built.task("Train", previous=branch_start, fails=True)
    built.task("Baseline", previous=branch_start)  # entered after Train: newer, and fine
    built.state("TrainingJobFailed", previous=train_failed)
    built.state("TrainingJobFailedReason")
    built.state("TrainingFailedFail", "Fail")
    parallel_failed = built.add("ParallelStateFailed")
    built.task("NotifyFailure", previous=parallel_failed)
    built.state("PipelineFailed", "Choice")
    built.state("PipelineFailedFail", "Fail")
    built.add("ExecutionFailed")

    history = ops.ExecutionHistory(PagedHistory(built.events), "arn")

    assert ops.failed_state(history) == "Train"
    assert ops.current_step(history) == "PipelineFailedFail"


# ---------------------------------------------------------------------------- AWS-backed pieces
@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[boto3.Session]:
    for name in ("AWS_ENDPOINT_URL", "AWS_PROFILE", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    with mock_aws():
        yield boto3.Session(region_name="us-east-1")


def test_the_hook_verdict_is_read_from_its_log(aws: boto3.Session) -> None:
    logs = aws.client("logs")
    group, since = "/aws/lambda/fares-PostTrafficHook", datetime.now(UTC) - timedelta(minutes=1)
    logs.create_log_group(logGroupName=group)
    logs.create_log_stream(logGroupName=group, logStreamName="2026/12/01/[$LATEST]0a")
    now = int(datetime.now(UTC).timestamp() * 1000)

    def verdict(deployment: str, status: str, summary: str) -> str:
        return json.dumps(
            {
                "level": "INFO",
                "message": "post-traffic verdict",
                "deployment_id": deployment,
                "status": status,
                "summary": summary,
            }
        )

    lines = [
        verdict("d-OTHER0001", "Failed", "another deployment's problem"),
        "START RequestId: 1 Version: $LATEST",
        verdict("d-THIS00001", "Failed", HOOK_VERDICT),
    ]
    logs.put_log_events(
        logGroupName=group,
        logStreamName="2026/12/01/[$LATEST]0a",
        logEvents=[{"timestamp": now, "message": line} for line in lines],
    )
    target = Target("aws", "us-east-1", {}, aws)

    assert ops.hook_verdict(target, "fares-PostTrafficHook", "d-THIS00001", since) == HOOK_VERDICT
    assert ops.hook_verdict(target, "fares-PostTrafficHook", "d-PASSED001", since) is None
    assert ops.hook_verdict(target, "fares-NeverRan", "d-THIS00001", since) is None


def test_upload_data_refuses_an_empty_file_before_uploading(
    aws: boto3.Session, tmp_path: Path
) -> None:
    s3 = aws.client("s3")
    s3.create_bucket(Bucket="fares-data")
    target = Target("aws", "us-east-1", {"DataBucketName": "fares-data"}, aws)
    empty = tmp_path / "jan.csv"
    empty.write_bytes(b"")

    with pytest.raises(TargetError, match=r"jan\.csv is empty \(0 bytes\): nothing to train on"):
        ops.upload_data(target, empty)

    assert "Contents" not in s3.list_objects_v2(Bucket="fares-data")


def test_the_production_model_names_its_registry_version() -> None:
    champion = {"model_id": "fare-1", "validation_rmse": 3.7204, "model_package_version": 2}

    assert production_model(champion) == "fare-1 (registry version 2, validation RMSE 3.720)"


def test_a_record_from_before_the_registry_shows_its_metrics_alone() -> None:
    assert production_model({"model_id": "fare-0", "validation_rmse": 4.0}) == (
        "fare-0 (validation RMSE 4.000)"
    )
