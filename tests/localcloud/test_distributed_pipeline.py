"""The pipeline with TrainingInstanceCount 2 through the local cloud: PrepareData writes the train
split in two parts, and the Train state's job runs on two hosts that train one model together."""

from __future__ import annotations

from typing import Any

from tests.e2e.conftest import running_demo


def test_two_training_instances_train_one_candidate(tmp_path: Any) -> None:
    with running_demo(tmp_path, {"TrainingInstanceCount": "2"}) as demo:
        run = demo.upload(demo.month(1))
        sagemaker = demo.target.client("sagemaker")

        def finished() -> dict[str, Any] | None:
            jobs = sagemaker.list_training_jobs(NameContains=run)["TrainingJobSummaries"]
            if not jobs or jobs[0]["TrainingJobStatus"] == "InProgress":
                return None
            return dict(sagemaker.describe_training_job(TrainingJobName=f"{run}-train"))

        job = demo.cloud.wait_for(finished, 300, what="the training job")

        assert job["TrainingJobStatus"] == "Completed", job.get("FailureReason")
        assert job["ResourceConfig"]["InstanceCount"] == 2
        train = next(c for c in job["InputDataConfig"] if c["ChannelName"] == "train")
        assert train["DataSource"]["S3DataSource"]["S3DataDistributionType"] == "ShardedByS3Key"
        metrics = {m["MetricName"]: m["Value"] for m in job["FinalMetricDataList"]}
        assert 0 < metrics["validation:rmse"] < 8  # under the gate's ceiling: a usable model
        listed = demo.target.client("s3").list_objects_v2(
            Bucket=demo.target.output("ArtifactBucketName"), Prefix=f"runs/{run}/prepared/train"
        )
        assert sorted(o["Key"].split("/prepared/")[1] for o in listed["Contents"]) == [
            "train/part-00000.csv",
            "train/part-00001.csv",
        ]
        logs = demo.cloud.settings.workdir.rglob(f"{run}-train-*/algo-*/opt/training.log")
        assert sorted(p.parents[1].name for p in logs) == ["algo-1", "algo-2"]  # two hosts
