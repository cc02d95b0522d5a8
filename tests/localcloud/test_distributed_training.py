"""The local cloud runs a training job on as many hosts as its ResourceConfig asks for: each
host a worker process of XGBoost's collective with its shard of a ShardedByS3Key channel, and
refuses a sharded channel that would leave a host without data.

moto runs in-process and records the job; ``JobRunner`` runs it as the local cloud does.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws
from moto.sagemaker.models import sagemaker_backends

from model.prepare import prepare
from safe_deploy.localcloud.sagemaker.jobs import JobRunner
from safe_deploy.localcloud.state import ActivityFeed, LocalSettings
from tests.support import REPO, offline_aws

REGION = "us-east-1"
ACCOUNT = "123456789012"
BUCKET = "artifacts"
RUN = "runs/fare-1"
# Small, quick trees: the test is about hosts and channels, not the model's quality.
HYPERPARAMETERS = {"num_round": "5", "min_child_weight": "10", "max_depth": "4"}


@pytest.fixture
def s3(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    offline_aws(monkeypatch, REGION)
    with mock_aws():
        client = boto3.client("s3")
        client.create_bucket(Bucket=BUCKET)
        yield client


def _upload_prepared(s3: Any, small_month_csv: Path, folder: Path, train_parts: int) -> None:
    """PrepareData's outputs under ``runs/fare-1/prepared/``, as its processing job uploads them."""
    prepare([small_month_csv], folder, train_parts=train_parts)
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        s3.upload_file(str(path), BUCKET, f"{RUN}/prepared/{path.relative_to(folder)}")


def _training_job(name: str, instances: int, distribution: str) -> Any:
    """The Train state's job: train on the prefix ``prepared/train`` (train.csv or train/ parts),
    validation replicated."""

    def channel(channel_name: str, key: str, distribution: str) -> Any:  # a boto3 ChannelTypeDef
        source = {
            "S3DataType": "S3Prefix",
            "S3Uri": f"s3://{BUCKET}/{RUN}/prepared/{key}",
            "S3DataDistributionType": distribution,
        }
        return {
            "ChannelName": channel_name,
            "ContentType": "text/csv",
            "DataSource": {"S3DataSource": source},
        }

    boto3.client("sagemaker").create_training_job(
        TrainingJobName=name,
        AlgorithmSpecification={"TrainingImage": "xgboost:1.7-1", "TrainingInputMode": "File"},
        RoleArn=f"arn:aws:iam::{ACCOUNT}:role/sagemaker",
        HyperParameters=HYPERPARAMETERS,
        InputDataConfig=[
            channel("train", "train", distribution),
            channel("validation", "validation.csv", "FullyReplicated"),
        ],
        OutputDataConfig={"S3OutputPath": f"s3://{BUCKET}/{RUN}/model"},
        ResourceConfig={
            "InstanceType": "ml.m5.xlarge",
            "InstanceCount": instances,
            "VolumeSizeInGB": 10,
        },
        StoppingCondition={"MaxRuntimeInSeconds": 3600},
    )
    return sagemaker_backends[ACCOUNT][REGION].training_jobs[name]


def _runner(tmp_path: Path) -> JobRunner:
    return JobRunner(LocalSettings(REPO, tmp_path, time_scale=0.0), ActivityFeed())


def _host_files(tmp_path: Path, job: str, host: str, channel: str) -> list[str]:
    (folder,) = (tmp_path / "sagemaker" / "training").glob(f"{job}-*")
    data = folder / host / "opt" / "ml" / "input" / "data" / channel
    return sorted(p.name for p in data.iterdir())


def test_two_instances_train_one_model_on_the_shards(
    s3: Any, small_month_csv: Path, tmp_path: Path
) -> None:
    _upload_prepared(s3, small_month_csv, tmp_path / "prepared", train_parts=2)
    job = _training_job("fare-1-train", instances=2, distribution="ShardedByS3Key")

    _runner(tmp_path).run_training_job(job)

    assert job.training_job_status == "Completed", job.failure_reason
    metrics = {m["MetricName"]: m["Value"] for m in job.final_metric_data_list}
    assert set(metrics) == {"train:rmse", "validation:rmse"}
    key = job.model_artifacts["S3ModelArtifacts"].split(f"s3://{BUCKET}/", 1)[1]
    assert s3.head_object(Bucket=BUCKET, Key=key)["ContentLength"] > 0
    # Each host got its own part (objects dealt round-robin in key order), and all of validation.
    assert _host_files(tmp_path, "fare-1-train", "algo-1", "train") == ["part-00000.csv"]
    assert _host_files(tmp_path, "fare-1-train", "algo-2", "train") == ["part-00001.csv"]
    for host in ("algo-1", "algo-2"):
        assert _host_files(tmp_path, "fare-1-train", host, "validation") == ["validation.csv"]


def test_a_sharded_channel_with_fewer_objects_than_instances_fails_the_job(
    s3: Any, small_month_csv: Path, tmp_path: Path
) -> None:
    _upload_prepared(s3, small_month_csv, tmp_path / "prepared", train_parts=1)
    job = _training_job("fare-1-train", instances=2, distribution="ShardedByS3Key")

    _runner(tmp_path).run_training_job(job)

    assert job.training_job_status == "Failed"
    assert job.failure_reason.startswith("ClientError: channel train: ShardedByS3Key")
    assert "algo-2 would get no data" in job.failure_reason


def test_one_instance_trains_on_the_train_prefix_as_before(
    s3: Any, small_month_csv: Path, tmp_path: Path
) -> None:
    """The prefix ``prepared/train`` that matches train.csv gives the one host train.csv."""
    _upload_prepared(s3, small_month_csv, tmp_path / "prepared", train_parts=1)
    job = _training_job("fare-1-train", instances=1, distribution="FullyReplicated")

    _runner(tmp_path).run_training_job(job)

    assert job.training_job_status == "Completed", job.failure_reason
    (folder,) = (tmp_path / "sagemaker" / "training").glob("fare-1-train-*")
    assert sorted(p.name for p in (folder / "opt/ml/input/data/train").iterdir()) == ["train.csv"]


def test_a_failing_host_fails_the_job_with_its_reason(
    s3: Any, small_month_csv: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _upload_prepared(s3, small_month_csv, tmp_path / "prepared", train_parts=2)
    monkeypatch.setitem(HYPERPARAMETERS, "max_depth", "deep")
    job = _training_job("fare-1-train", instances=2, distribution="ShardedByS3Key")

    _runner(tmp_path).run_training_job(job)

    assert job.training_job_status == "Failed"
    assert job.failure_reason.startswith("ClientError: hyperparameter max_depth='deep'")
    assert job.failure_reason.endswith(("(on algo-1)", "(on algo-2)"))
