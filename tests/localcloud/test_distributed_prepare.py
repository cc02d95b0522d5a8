"""The pipeline with PrepareInstanceCount 3 through the local cloud: PrepareData runs on three
hosts, each on the month ShardedByS3Key deals it, and Train, Baseline and the dev endpoint's test
read what the three wrote as one split."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from model.prepare import prepare
from model.synth import synth_trips, write_trips
from model.train import METRICS_FILE, run_container
from safe_deploy.localcloud.logs import PROCESSING_JOBS
from tests.e2e.conftest import running_demo

ROWS = 4000
HOSTS = ["algo-1", "algo-2", "algo-3"]
# Steps a run reaches only after Train, Baseline and the gate have passed it.
PAST_THE_GATE = {"RequestApproval", "ApprovalNote", "ApproveCandidate", "Approved"}
PREPARING = {None, "Configure", "ReadHyperparameters", "PrepareData"}


def _month(folder: Path, number: int) -> Path:
    path = folder / f"green_tripdata_2018-{number:02d}.csv"
    write_trips(synth_trips(ROWS, seed=number, month=f"2018-{number:02d}"), path)
    return path


def _one_instance_rmse(months: list[Path], hyperparameters: dict[str, str], folder: Path) -> float:
    """The validation RMSE of the same months prepared by one instance and trained on one."""
    prepared = folder / "prepared"
    prepare(months, prepared)
    root = folder / "opt" / "ml"
    (root / "input" / "config").mkdir(parents=True)
    (root / "input" / "config" / "hyperparameters.json").write_text(json.dumps(hyperparameters))
    for channel in ("train", "validation"):
        data = root / "input" / "data" / channel
        data.mkdir(parents=True)
        (data / f"{channel}.csv").write_bytes((prepared / f"{channel}.csv").read_bytes())
    assert run_container(root, progress=None) == 0
    report = json.loads((root / "output" / METRICS_FILE).read_text())
    return float(report["final_metrics"]["validation:rmse"])


def test_three_preparation_instances_prepare_one_window(tmp_path: Path) -> None:
    overrides = {"PrepareInstanceCount": "3", "TrainingWindowMonths": "3"}
    with running_demo(tmp_path, overrides) as demo:
        target = demo.target
        months = [_month(tmp_path / "data", number) for number in (1, 2, 3)]
        runs = [demo.upload(month) for month in months]
        run = runs[-1]  # the window of all three months: a month for each host
        reached = demo.follow(run, lambda r: r.step in PAST_THE_GATE, 240)
        assert reached.step in PAST_THE_GATE, (reached.status, reached.error, reached.cause)

        sagemaker = target.client("sagemaker")
        job = sagemaker.describe_processing_job(ProcessingJobName=f"{run}-prepare")
        assert job["ProcessingResources"]["ClusterConfig"]["InstanceCount"] == 3
        raw = next(i for i in job["ProcessingInputs"] if i["InputName"] == "raw")
        assert raw["S3Input"]["S3DataDistributionType"] == "ShardedByS3Key"

        s3 = target.client("s3")
        bucket = target.output("ArtifactBucketName")
        listed = s3.list_objects_v2(Bucket=bucket, Prefix=f"runs/{run}/prepared/")
        written = sorted(o["Key"].split("/prepared/")[1] for o in listed["Contents"])
        assert written == sorted(
            name
            for host in HOSTS
            for name in (
                f"baseline/{host}.csv",
                f"summary/{host}.json",
                f"test/{host}.csv",
                f"train/part-{host}-00000.csv",
                f"validation/{host}.csv",
            )
        )
        summaries = [
            json.loads(
                s3.get_object(Bucket=bucket, Key=f"runs/{run}/prepared/summary/{host}.json")[
                    "Body"
                ].read()
            )
            for host in HOSTS
        ]
        assert [s["rows_read"] for s in summaries] == [ROWS] * 3  # a month each
        assert sorted(Path(s["sources"][0]["path"]).name for s in summaries) == sorted(
            m.name for m in months
        )
        streams = target.client("logs").describe_log_streams(
            logGroupName=PROCESSING_JOBS, logStreamNamePrefix=f"{run}-prepare/"
        )["logStreams"]
        assert sorted(s["logStreamName"].split("/")[1].rsplit("-", 1)[0] for s in streams) == HOSTS

        # The dev endpoint's test scored every host's test rows (fewer than its 5,000 at most).
        key = f"runs/{run}/evaluation/dev_test.json"
        report = json.loads(s3.get_object(Bucket=bucket, Key=key)["Body"].read())
        assert report["rows"] == sum(s["splits"]["test"] for s in summaries)

        training = sagemaker.describe_training_job(TrainingJobName=f"{run}-train")
        metrics = {m["MetricName"]: m["Value"] for m in training["FinalMetricDataList"]}
        expected = _one_instance_rmse(months, training["HyperParameters"], tmp_path / "one")
        assert metrics["validation:rmse"] == pytest.approx(expected, rel=0.02)

        # The first upload's window is one month: two hosts were dealt nothing and wrote nothing.
        first = runs[0]
        demo.follow(first, lambda r: r.step not in PREPARING, 120)
        job = sagemaker.describe_processing_job(ProcessingJobName=f"{first}-prepare")
        assert job["ProcessingJobStatus"] == "Completed", job.get("FailureReason")
        listed = s3.list_objects_v2(Bucket=bucket, Prefix=f"runs/{first}/prepared/")
        assert sorted(o["Key"].split("/prepared/")[1] for o in listed["Contents"]) == [
            "baseline/algo-1.csv",
            "summary/algo-1.json",
            "test/algo-1.csv",
            "train/part-algo-1-00000.csv",
            "validation/algo-1.csv",
        ]
