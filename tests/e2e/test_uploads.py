"""Every upload is accounted for, and `status` says where each run is and why it stopped.

In the local cloud: an empty CSV, a 0-byte Parquet, a CSV with only its header and a file that is
not trip data each become a failed run whose reason `status` shows; `upload-data` refuses an
empty file outright. A good month shows its numbers while it waits for approval, and when its
first promotion fails for want of client traffic, `status` shows the post-traffic hook's own
verdict first, not only CodeDeploy's "the hook reported Failed"."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from moto.core.exceptions import ServiceException
from moto.sagemaker.responses import SageMakerResponse

from model.synth import synth_trips, write_trips
from safe_deploy import ops
from safe_deploy.cli import main
from safe_deploy.demo import Demo
from tests.e2e.conftest import running_demo, subject_arrives
from tests.support import TRIP_HEADER

RUN_TIMEOUT = 120.0
BAD_UPLOADS = {
    "raw/empty.csv": (b"", "raw/empty.csv is empty (0 bytes)"),
    "raw/empty.parquet": (b"", "raw/empty.parquet is empty (0 bytes)"),
    "raw/header-only.csv": (
        (TRIP_HEADER + "\n\n").encode(),
        "raw/header-only.csv: no trips (a header and no rows): nothing to train on",
    ),
    "raw/scores.csv": (
        b"name,city,score\nann,paris,3\n",
        "raw/scores.csv: not TLC trip data: missing column(s)",
    ),
}


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Demo]:
    with running_demo(tmp_path_factory.mktemp("uploads")) as story:
        yield story


def command(demo: Demo, *args: str) -> Result:
    connection = str(demo.workdir / "local.json")
    return CliRunner().invoke(main, list(args), env={"SAFE_DEPLOY_LOCAL": connection})


def squeezed(text: str) -> str:
    """Without whitespace and panel borders: what wrapping a line cannot change."""
    return re.sub(r"[\s│╭╮╰╯─]", "", text)


def runs_by_key(demo: Demo) -> dict[str, ops.Run]:
    return {str(run.source.get("key")): run for run in ops.runs(demo.target, 20)}


def ended(demo: Demo, keys: list[str]) -> dict[str, ops.Run]:
    def all_ended() -> dict[str, ops.Run] | None:
        found = runs_by_key(demo)
        done = {k: found[k] for k in keys if k in found and found[k].status != "RUNNING"}
        return done if len(done) == len(keys) else None

    # Each look describes up to 20 runs, as `status` does: once a second is often enough.
    return dict(
        demo.cloud.wait_for(all_ended, RUN_TIMEOUT, interval=1.0, what=f"runs of {keys} to end")
    )


def test_upload_data_refuses_an_empty_file_and_uploads_nothing(demo: Demo, tmp_path: Path) -> None:
    empty = tmp_path / "refused.csv"
    empty.write_bytes(b"")

    result = command(demo, "upload-data", str(empty))

    assert result.exit_code != 0
    assert "refused.csv is empty (0 bytes): nothing to train on" in result.output
    s3 = demo.target.client("s3")
    listed = s3.list_objects_v2(Bucket=demo.target.output("DataBucketName"), Prefix="raw/")
    assert "raw/refused.csv" not in [o["Key"] for o in listed.get("Contents", [])]


def test_every_unusable_upload_ends_as_a_failed_run_that_status_explains(demo: Demo) -> None:
    # Uploaded as any other tool would (the console, `aws s3 cp`): no refusal before S3.
    s3, bucket = demo.target.client("s3"), demo.target.output("DataBucketName")
    versions = {
        key: s3.put_object(Bucket=bucket, Key=key, Body=body)["VersionId"]
        for key, (body, _) in BAD_UPLOADS.items()
    }

    runs = ended(demo, list(BAD_UPLOADS))
    result = command(demo, "status", "--runs", "10")

    assert result.exit_code == 0, result.output
    shown = squeezed(result.stdout)
    for key, (_, reason) in BAD_UPLOADS.items():
        run = runs[key]
        assert (run.status, run.error, run.failed_at) == (
            "FAILED",
            "PrepareDataFailed",
            "PrepareData",
        )
        assert run.failure is not None
        assert run.failure.reasons[0].startswith(reason), run.failure.reasons
        assert squeezed(f"{key}, version {versions[key]}") in shown
        assert squeezed(f"why it stopped {reason}") in shown


def test_a_failed_processing_job_says_why_only_where_sagemaker_does(demo: Demo) -> None:
    """As on SageMaker: the FailureReason of a job whose script failed is generic; the script's
    own reason is its ExitMessage (/opt/ml/output/message) and is in its CloudWatch log stream.
    The run's reason above comes from the ExitMessage, so it would hold on AWS too."""
    runs = ended(demo, list(BAD_UPLOADS))
    sagemaker, logs = demo.target.client("sagemaker"), demo.target.client("logs")
    for key, (_, reason) in BAD_UPLOADS.items():
        job_name = f"{runs[key].name}-prepare"
        job = sagemaker.describe_processing_job(ProcessingJobName=job_name)
        assert job["ProcessingJobStatus"] == "Failed"
        assert job["FailureReason"] == "AlgorithmError: See job logs for more information"
        assert job["ExitMessage"].startswith(reason.replace(key, f"/opt/ml/processing/input/{key}"))
        events = logs.filter_log_events(
            logGroupName="/aws/sagemaker/ProcessingJobs", logStreamNamePrefix=f"{job_name}/"
        )["events"]
        assert any(job["ExitMessage"][:40] in e["message"] for e in events), events


@pytest.fixture(scope="module")
def pending(demo: Demo) -> ops.Run:
    """A good month, uploaded with `upload-data`, waiting for approval."""
    month = demo.workdir / "data" / "good-month.csv"
    write_trips(synth_trips(5000, seed=3, month="2018-01"), month)
    uploaded = ops.upload_data(demo.target, month)

    def waiting() -> ops.Run | None:
        run = runs_by_key(demo).get(uploaded.key)
        if run is not None and run.status != "RUNNING":
            raise AssertionError(f"the good month's run ended: {run.failure}")
        return run if run is not None and run.step == "RequestApproval" else None

    run: ops.Run = demo.cloud.wait_for(
        waiting, RUN_TIMEOUT, interval=1.0, what="the good month's approval"
    )
    return run


def test_a_run_waiting_for_approval_shows_its_source_metrics_and_gate_verdict(
    demo: Demo, pending: ops.Run
) -> None:
    result = command(demo, "status")

    assert result.exit_code == 0, result.output
    block = squeezed(result.stdout[result.stdout.index(pending.name) :])
    assert squeezed(f"raw/good-month.csv, version {pending.source['version_id']}") in block
    assert squeezed("step RequestApproval") in block
    evaluation = pending.evaluation or {}
    assert squeezed(f"validation RMSE {float(evaluation['validation_rmse']):.3f}") in block
    assert squeezed("dev endpoint test RMSE") in block
    verdict = evaluation.get("summary") or evaluation["reason"]
    assert squeezed(f"gate passed: {verdict}") in block
    assert squeezed("approval pending") in block


def test_a_failed_promotion_shows_the_hook_verdict_first(demo: Demo, pending: ops.Run) -> None:
    ops.decide(demo.target, pending.name, approve=True, reason="numbers look right")
    # No client sends traffic: the post-traffic hook finds no API requests on green and says no.
    (run,) = ended(demo, ["raw/good-month.csv"]).values()

    result = command(demo, "status")

    assert (run.status, run.error) == ("FAILED", "DeploymentFailed")
    verdict = f"0 API requests captured on {run.name}-prod; at least 20 needed"
    assert run.failure is not None
    assert run.failure.reasons[0].startswith(verdict), run.failure.reasons
    assert squeezed(f"why it stopped {verdict}") in squeezed(result.stdout)
    assert "AfterAllowTraffic" in result.stdout  # who reported it, below the verdict

    logs = command(demo, "logs", run.name)
    assert logs.exit_code == 0, logs.output
    (line,) = [ln for ln in logs.stdout.splitlines() if "post-traffic verdict" in ln]
    assert " PostTrafficHookFunction INFO post-traffic verdict " in line
    assert verdict in line


class ResourceLimitExceeded(ServiceException):  # type: ignore[misc]
    code = "ResourceLimitExceeded"


QUOTA = (
    "The account-level service limit 'ml.m5.xlarge for processing job usage' is 0 Instances, "
    "with current utilization of 0 Instances and a request delta of 1 Instances. Please use AWS "
    "Service Quotas to request an increase for this quota."
)


def test_a_job_sagemaker_refuses_to_start_ends_the_run_with_sagemakers_reason(
    demo: Demo, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SageMaker refuses CreateProcessingJob itself (here a new account's instance quota of 0, a
    refusal the local cloud has no quota to make of itself). States.TaskFailed catches that
    error too, and its Cause is plain text, not a job's description: the run still stops as a
    failed run that says why and tells its people, rather than as a States.Runtime error that
    no Catch takes."""

    def refuse(response: SageMakerResponse) -> None:
        raise ResourceLimitExceeded(QUOTA)

    monkeypatch.setattr(SageMakerResponse, "create_processing_job", refuse)
    month = demo.workdir / "data" / "refused-month.csv"
    write_trips(synth_trips(2000, seed=4, month="2018-03"), month)
    uploaded = ops.upload_data(demo.target, month)

    (run,) = ended(demo, [uploaded.key]).values()

    assert (run.status, run.failed_at) == ("FAILED", "PrepareData")
    assert (run.error or "").startswith("SageMaker.ResourceLimitExceeded"), run.error
    assert run.failure is not None
    assert run.failure.reasons[0].startswith(QUOTA[:60]), run.failure.reasons
    assert "stopped" in subject_arrives(demo.cloud, run.name, "ResourceLimitExceeded")
    result = command(demo, "status", "--runs", "10")
    assert squeezed(f"why it stopped {QUOTA[:60]}") in squeezed(result.stdout)
