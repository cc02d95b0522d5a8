"""The local cloud's processing jobs on several instances: PrepareData as the state machine defines
it, on hosts ``algo-1`` … ``algo-N``, each dealt its share of a ShardedByS3Key input, all uploading
to one prefix; a host that fails fails the job as SageMaker says it."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import boto3
import pytest
from moto import mock_aws

from model.synth import synth_trips, write_trips
from safe_deploy.localcloud.logs import PROCESSING_JOBS
from safe_deploy.localcloud.sagemaker.jobs import JobRunner
from safe_deploy.localcloud.state import ActivityFeed, LocalSettings
from tests.support import REPO, offline_aws

BUCKET = "data"
JOB = "fare-1-prepare"


@pytest.fixture
def s3(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    offline_aws(monkeypatch, "us-east-1")
    with mock_aws():
        client = boto3.client("s3")
        client.create_bucket(Bucket=BUCKET)
        yield client


def _prepare_job(instances: int) -> SimpleNamespace:
    """PrepareData's job as the training state machine asks for it, its placeholders filled."""
    definition = json.loads((REPO / "statemachines" / "training.asl.json").read_text())
    text = json.dumps(definition["States"]["PrepareData"]["Parameters"])
    for name, value in {
        "TrainingInstanceCount": "1",
        "PrepareInstanceCount": str(instances),
        "SKLearnImage": "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-scikit-learn:1.2-1",
        "ModelCodeS3Uri": f"s3://{BUCKET}/code",
        "ArtifactBucket": BUCKET,
    }.items():
        text = text.replace(f"${{{name}}}", value)
    parameters = json.loads(text)
    inputs = parameters["ProcessingInputs"]
    inputs[0]["S3Input"]["S3Uri"] = f"s3://{BUCKET}/window/"
    inputs[1]["S3Input"]["S3Uri"] = f"s3://{BUCKET}/code"
    output = parameters["ProcessingOutputConfig"]["Outputs"][0]["S3Output"]
    output["S3Uri"] = f"s3://{BUCKET}/prepared"
    cluster = parameters["ProcessingResources"]["ClusterConfig"]
    cluster["InstanceCount"] = json.loads(cluster.pop("InstanceCount.$").split("'")[1])
    return SimpleNamespace(
        processing_job_name=JOB,
        app_specification=parameters["AppSpecification"],
        environment={},  # the ASL's PYTHONPATH is the code input's: this process's path here
        processing_inputs=inputs,
        processing_output_config=parameters["ProcessingOutputConfig"],
        processing_resources=parameters["ProcessingResources"],
        processing_job_status="InProgress",
    )


def _months(s3: Any, tmp_path: Path, count: int) -> None:
    for number in range(1, count + 1):
        path = tmp_path / f"green_tripdata_2018-{number:02d}.csv"
        write_trips(synth_trips(600, seed=number, month=f"2018-{number:02d}"), path)
        s3.upload_file(str(path), BUCKET, f"window/{path.name}")


def _run(job: SimpleNamespace, tmp_path: Path) -> JobRunner:
    runner = JobRunner(LocalSettings(REPO, tmp_path / "work", time_scale=0), ActivityFeed())
    (tmp_path / "work" / "logs").mkdir(parents=True)
    runner.run_processing_job(job)
    return runner


def _prepared(s3: Any) -> list[str]:
    listed = s3.list_objects_v2(Bucket=BUCKET, Prefix="prepared/").get("Contents", [])
    return sorted(o["Key"].removeprefix("prepared/") for o in listed)


def _streams() -> list[str]:
    logs = boto3.client("logs")
    found = logs.describe_log_streams(logGroupName=PROCESSING_JOBS, logStreamNamePrefix=f"{JOB}/")
    return sorted(s["logStreamName"].split("/")[1].rsplit("-", 1)[0] for s in found["logStreams"])


def test_each_host_prepares_its_share_and_uploads_beside_the_others(
    s3: Any, tmp_path: Path
) -> None:
    _months(s3, tmp_path, 4)  # algo-1 is dealt two months, the others one
    job = _prepare_job(3)

    _run(job, tmp_path)

    assert job.processing_job_status == "Completed", getattr(job, "failure_reason", None)
    hosts = ("algo-1", "algo-2", "algo-3")
    names = [f"{folder}/{{}}.csv" for folder in ("baseline", "test", "validation")]
    names += ["summary/{}.json", "train/part-{}-00000.csv"]
    assert _prepared(s3) == sorted(name.format(host) for host in hosts for name in names)
    read = {
        host: json.loads(
            s3.get_object(Bucket=BUCKET, Key=f"prepared/summary/{host}.json")["Body"].read()
        )
        for host in hosts
    }
    assert {host: len(summary["sources"]) for host, summary in read.items()} == {
        "algo-1": 2,
        "algo-2": 1,
        "algo-3": 1,
    }
    assert _streams() == list(hosts)


def test_a_host_dealt_nothing_writes_nothing(s3: Any, tmp_path: Path) -> None:
    _months(s3, tmp_path, 1)
    job = _prepare_job(2)

    _run(job, tmp_path)

    assert job.processing_job_status == "Completed", getattr(job, "failure_reason", None)
    assert all("algo-1" in key for key in _prepared(s3))
    assert _streams() == ["algo-1", "algo-2"]  # algo-2 said it had nothing to prepare


def test_a_failing_host_fails_the_job_with_its_exit_message(s3: Any, tmp_path: Path) -> None:
    # Two hosts, one that succeeds and one that fails, are all the property needs; each host is
    # a Python process that imports pandas, most of what this test costs.
    _months(s3, tmp_path, 1)
    s3.put_object(Bucket=BUCKET, Key="window/green_tripdata_2018-02.csv", Body=b"")  # algo-2's
    job = _prepare_job(2)

    _run(job, tmp_path)

    assert job.processing_job_status == "Failed"
    assert job.failure_reason == "AlgorithmError: See job logs for more information"
    assert "/opt/ml/processing/input/raw/green_tripdata_2018-02.csv is empty" in job.exit_message
    assert str(tmp_path) not in job.exit_message


def test_only_preparation_is_emulated_on_several_instances(s3: Any, tmp_path: Path) -> None:
    _months(s3, tmp_path, 2)
    job = _prepare_job(2)
    job.app_specification["ContainerEntrypoint"][-1] = "python3 -m model.compare"

    _run(job, tmp_path)

    assert job.processing_job_status == "Failed"
    assert "InstanceCount 2 is emulated for model.prepare only" in job.failure_reason
