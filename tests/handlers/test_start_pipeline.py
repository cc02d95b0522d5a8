"""start_pipeline: one training run per object version under raw/, and retraining on drift."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pipeline_common.layout import model_id_for
from pipeline_common.settings import SettingsError

from tests.handlers.support import Cloud, FakeLambdaContext, Loader, emf_metrics, load_event

TRIPS = b"VendorID,lpep_pickup_datetime,lpep_dropoff_datetime,passenger_count,trip_distance\n"


def upload(cloud: Cloud, key: str, body: bytes = TRIPS) -> dict[str, Any]:
    """Put an object in the data bucket; the EventBridge event S3 sends for it."""
    bucket = cloud.ref("DataBucket")
    put = cloud.s3.put_object(Bucket=bucket, Key=key, Body=body)
    event = load_event("start_pipeline")
    event["resources"] = [f"arn:aws:s3:::{bucket}"]
    event["detail"]["bucket"]["name"] = bucket
    event["detail"]["object"].update(
        {
            "key": key,
            "size": len(body),
            "etag": put["ETag"].strip('"'),
            "version-id": put["VersionId"],
        }
    )
    return event


def executions(cloud: Cloud) -> list[dict[str, Any]]:
    arn = cloud.ref("TrainingStateMachine")
    listed = cloud.sfn.list_executions(stateMachineArn=arn)["executions"]
    return [
        {
            "name": e["name"],
            "input": json.loads(
                cloud.sfn.describe_execution(executionArn=e["executionArn"])["input"]
            ),
        }
        for e in listed
    ]


def test_new_trip_file_starts_one_run_named_after_its_version(
    cloud: Cloud,
    load_handler: Loader,
    context: FakeLambdaContext,
    capsys: pytest.CaptureFixture[str],
) -> None:
    app = load_handler("start_pipeline")
    event = upload(cloud, "raw/green_tripdata_2018-02.csv")
    detail = event["detail"]

    started = app.lambda_handler(event, context)

    expected = model_id_for(
        "fare", detail["bucket"]["name"], detail["object"]["key"], detail["object"]["version-id"]
    )
    assert started["model_id"] == expected
    assert started["duplicate"] is False
    assert started["execution_arn"].endswith(f":{expected}")
    (run,) = executions(cloud)
    assert run["name"] == expected
    assert run["input"]["source"] == {
        "bucket": detail["bucket"]["name"],
        "key": "raw/green_tripdata_2018-02.csv",
        "version_id": detail["object"]["version-id"],
    }
    assert run["input"]["reason"] == "new data"
    runs = [m for m in emf_metrics(capsys.readouterr().out) if m.name == "PipelineRunsStarted"]
    assert [m.value for m in runs] == [1.0]


def test_a_second_delivery_of_the_same_event_starts_nothing(
    cloud: Cloud,
    load_handler: Loader,
    context: FakeLambdaContext,
    capsys: pytest.CaptureFixture[str],
) -> None:
    app = load_handler("start_pipeline")
    event = upload(cloud, "raw/green_tripdata_2018-02.csv")
    first = app.lambda_handler(event, context)
    capsys.readouterr()

    # EventBridge and Lambda deliver at least once: the same event, another invocation.
    again = app.lambda_handler(event, replace(context, aws_request_id="second-delivery"))

    assert again == {
        "model_id": first["model_id"],
        "execution_arn": None,
        "duplicate": True,
        "skipped": None,
    }
    assert len(executions(cloud)) == 1
    runs = [m for m in emf_metrics(capsys.readouterr().out) if m.name == "PipelineRunsStarted"]
    assert runs == []


def test_a_new_version_of_the_same_key_is_a_new_run(
    cloud: Cloud, load_handler: Loader, context: FakeLambdaContext
) -> None:
    app = load_handler("start_pipeline")
    first = app.lambda_handler(upload(cloud, "raw/trips.csv"), context)
    second = app.lambda_handler(
        upload(
            cloud, "raw/trips.csv", TRIPS + b"2,2018-02-01 00:00:00,2018-02-01 00:12:00,1,2.5\n"
        ),
        replace(context, aws_request_id="another-invocation"),
    )

    assert second["duplicate"] is False
    assert second["model_id"] != first["model_id"]
    assert {r["name"] for r in executions(cloud)} == {first["model_id"], second["model_id"]}


def test_a_folder_marker_is_skipped_and_says_so_in_the_log(
    cloud: Cloud,
    load_handler: Loader,
    context: FakeLambdaContext,
    capsys: pytest.CaptureFixture[str],
) -> None:
    app = load_handler("start_pipeline")

    started = app.lambda_handler(upload(cloud, "raw/2018/", b""), context)

    assert started["skipped"] == "raw/2018/ is a folder marker, not a trip file"
    assert started["execution_arn"] is None
    assert executions(cloud) == []
    logged = [json.loads(line) for line in capsys.readouterr().out.splitlines() if "level" in line]
    assert any(
        line["message"] == "upload skipped" and line["key"] == "raw/2018/" for line in logged
    )


@pytest.mark.parametrize(
    "key", ["raw/empty.csv", "raw/empty.parquet"], ids=["empty-csv", "empty-parquet"]
)
def test_an_empty_upload_starts_a_run_so_its_failure_is_seen(
    cloud: Cloud, load_handler: Loader, context: FakeLambdaContext, key: str
) -> None:
    # Skipped, an empty file would vanish: uploaded, and then no run ever appears. As a run it
    # fails at PrepareData with "... is empty (0 bytes)", which `status` shows.
    app = load_handler("start_pipeline")

    started = app.lambda_handler(upload(cloud, key, b""), context)

    assert started["skipped"] is None
    assert started["execution_arn"] is not None
    (run,) = executions(cloud)
    assert run["name"] == started["model_id"]
    assert run["input"]["source"]["key"] == key


def test_drift_alarm_retrains_on_the_newest_trip_file_under_a_salted_name(
    cloud: Cloud, load_handler: Loader, context: FakeLambdaContext
) -> None:
    app = load_handler("start_pipeline")
    bucket = cloud.ref("DataBucket")
    upload(cloud, "raw/green_tripdata_2018-01.csv")
    newest = upload(cloud, "raw/green_tripdata_2018-02.csv")["detail"]["object"]
    upload(cloud, "raw/2018/", b"")  # newer, but a folder marker
    now = datetime.now(UTC)
    cloud.backdate(bucket, "raw/green_tripdata_2018-01.csv", now - timedelta(days=31))
    cloud.backdate(bucket, "raw/green_tripdata_2018-02.csv", now - timedelta(days=1))
    alarm = load_event("start_pipeline_drift_alarm")

    started = app.lambda_handler(alarm, context)

    salted = model_id_for(
        "fare",
        bucket,
        "raw/green_tripdata_2018-02.csv",
        f"{newest['version-id']}#drift@{alarm['time']}",
    )
    assert started["model_id"] == salted
    # the same file's new-data run has another name: retraining on drift is a run of its own
    assert salted != model_id_for("fare", bucket, newest["key"], newest["version-id"])
    (run,) = executions(cloud)
    assert run["input"]["source"]["key"] == "raw/green_tripdata_2018-02.csv"
    assert run["input"]["source"]["version_id"] == newest["version-id"]
    assert run["input"]["reason"] == "drift alarm"

    # the same alarm delivered twice is one retraining
    again = app.lambda_handler(alarm, replace(context, aws_request_id="alarm-again"))
    assert again["duplicate"] is True
    assert len(executions(cloud)) == 1


def test_drift_alarm_without_any_trip_data_fails_loudly(
    cloud: Cloud, load_handler: Loader, context: FakeLambdaContext
) -> None:
    app = load_handler("start_pipeline")
    upload(cloud, "raw/2018/", b"")

    with pytest.raises(LookupError, match=r"no trip data under s3://.*/raw/"):
        app.lambda_handler(load_event("start_pipeline_drift_alarm"), context)
    assert executions(cloud) == []


def _month(number: int) -> bytes:
    return TRIPS + f"2,2018-{number:02d}-01 00:00:00,2018-{number:02d}-01 00:12:00,1,2.5\n".encode()


def test_a_window_of_months_is_copied_at_its_versions_and_recorded_in_the_run(
    cloud: Cloud, load_handler: Loader, context: FakeLambdaContext
) -> None:
    app = load_handler("start_pipeline", TRAINING_WINDOW_MONTHS="2")
    artifacts = cloud.ref("ArtifactBucket")
    for number in (1, 3):  # out of order: March before February
        upload(cloud, f"raw/yellow_tripdata_2018-{number:02d}.csv", _month(number))
    event = upload(cloud, "raw/yellow_tripdata_2018-02.csv", _month(2))
    march = cloud.s3.head_object(
        Bucket=cloud.ref("DataBucket"), Key="raw/yellow_tripdata_2018-03.csv"
    )

    started = app.lambda_handler(event, context)

    (run,) = executions(cloud)
    data = run["input"]["data"]
    assert data["uri"] == f"s3://{artifacts}/runs/{started['model_id']}/window/raw/"
    assert data["months_covered"] == ["2018-03", "2018-02"]
    assert [(f["key"], f["version_id"]) for f in data["files"]] == [
        ("raw/yellow_tripdata_2018-02.csv", event["detail"]["object"]["version-id"]),
        ("raw/yellow_tripdata_2018-03.csv", march["VersionId"]),
    ]
    copies = cloud.s3.list_objects_v2(Bucket=artifacts, Prefix=f"runs/{started['model_id']}/")
    assert sorted(o["Key"].rsplit("/", 1)[1] for o in copies["Contents"]) == [
        "yellow_tripdata_2018-02.csv",
        "yellow_tripdata_2018-03.csv",
    ]
    # a later upload of March does not change what this run reads
    upload(cloud, "raw/yellow_tripdata_2018-03.csv", _month(3) + b"9,9,9,9,9\n")
    copied = cloud.s3.get_object(
        Bucket=artifacts, Key=f"runs/{started['model_id']}/window/raw/yellow_tripdata_2018-03.csv"
    )
    assert copied["Body"].read() == _month(3)


def test_one_month_reads_the_upload_where_it_is(
    cloud: Cloud, load_handler: Loader, context: FakeLambdaContext
) -> None:
    app = load_handler("start_pipeline")
    upload(cloud, "raw/yellow_tripdata_2018-01.csv", _month(1))
    event = upload(cloud, "raw/yellow_tripdata_2018-02.csv", _month(2))

    app.lambda_handler(event, context)

    (run,) = executions(cloud)
    bucket = cloud.ref("DataBucket")
    assert run["input"]["data"]["uri"] == f"s3://{bucket}/raw/yellow_tripdata_2018-02.csv"
    assert [f["key"] for f in run["input"]["data"]["files"]] == ["raw/yellow_tripdata_2018-02.csv"]
    listed = cloud.s3.list_objects_v2(Bucket=cloud.ref("ArtifactBucket"), Prefix="runs/")
    assert listed.get("KeyCount", 0) == 0  # nothing copied


def test_a_month_older_than_the_window_starts_no_run_and_says_why(
    cloud: Cloud,
    load_handler: Loader,
    context: FakeLambdaContext,
    capsys: pytest.CaptureFixture[str],
) -> None:
    app = load_handler("start_pipeline", TRAINING_WINDOW_MONTHS="2")
    for number in (2, 3):
        upload(cloud, f"raw/yellow_tripdata_2018-{number:02d}.csv", _month(number))
    late = upload(cloud, "raw/yellow_tripdata_2018-01.csv", _month(1))

    started = app.lambda_handler(late, context)

    assert started["execution_arn"] is None
    assert started["skipped"] == (
        "raw/yellow_tripdata_2018-01.csv is older than the 2-month training window"
        " (2018-03, 2018-02): no run would train on it"
    )
    assert executions(cloud) == []
    logged = [json.loads(line) for line in capsys.readouterr().out.splitlines() if "level" in line]
    assert any(line["message"] == "upload skipped" for line in logged)


def test_a_window_outside_one_to_36_months_stops_the_function_at_start(
    load_handler: Loader,
) -> None:
    with pytest.raises(SettingsError, match="TRAINING_WINDOW_MONTHS is 1 to 36, not 0"):
        load_handler("start_pipeline", TRAINING_WINDOW_MONTHS="0")


def test_a_file_larger_than_one_copy_part_is_copied_whole(
    cloud: Cloud, load_handler: Loader, context: FakeLambdaContext
) -> None:
    # boto3's managed copy copies in parts above 8 MB (and CopyObject alone stops at 5 GB)
    row = b"2,2018-01-01 00:00:00,2018-01-01 00:12:00,1,2.5\n"
    big = TRIPS + row * (9 * 1024 * 1024 // len(row))
    app = load_handler("start_pipeline", TRAINING_WINDOW_MONTHS="2")
    upload(cloud, "raw/yellow_tripdata_2018-01.csv", big)
    event = upload(cloud, "raw/yellow_tripdata_2018-02.csv", _month(2))

    started = app.lambda_handler(event, context)

    copied = cloud.s3.get_object(
        Bucket=cloud.ref("ArtifactBucket"),
        Key=f"runs/{started['model_id']}/window/raw/yellow_tripdata_2018-01.csv",
    )
    assert copied["Body"].read() == big
