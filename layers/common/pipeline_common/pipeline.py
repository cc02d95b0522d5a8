"""Starting the training state machine: once per object version under raw/ (DESIGN.md §3)."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from pipeline_common.layout import RAW_PREFIX, model_id_for
from pipeline_common.window import Window, WindowFile, choose_window, includes, month_of

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.data_classes import (
        EventBridgeEvent,
        S3EventBridgeNotificationEvent,
    )
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_s3.type_defs import ObjectTypeDef
    from mypy_boto3_stepfunctions import SFNClient


@dataclass(frozen=True)
class RawObject:
    bucket: str
    key: str
    version_id: str | None
    size: int
    etag: str | None = None


@dataclass(frozen=True)
class RunData:
    """Where a run's data is and what it is: the processing job's input, and the window."""

    artifact_bucket: str
    window_months: int = 1


@dataclass(frozen=True)
class Started:
    model_id: str
    execution_arn: str | None
    duplicate: bool
    skipped: str | None = None


def object_from_event(event: S3EventBridgeNotificationEvent) -> RawObject:
    """An EventBridge *Object Created* event's object.

    The key is taken as delivered (``.key`` would URL-decode it: a ``+`` would become a space),
    and the version id read only if present (``.version_id`` raises for an unversioned bucket).
    """
    detail = event.detail
    obj = detail.object
    return RawObject(
        bucket=detail.bucket.name,
        key=obj["key"],
        version_id=obj.get("version-id"),
        size=obj.size or 0,
        etag=obj.etag or None,
    )


def newest_raw_object(s3: S3Client, bucket: str) -> RawObject:
    """The most recently written trip file (drift-triggered retraining uses it)."""
    newest: ObjectTypeDef | None = None
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=RAW_PREFIX):
        for item in page.get("Contents", []):
            if item["Key"].endswith("/") or item["Size"] == 0:
                continue
            if newest is None or item["LastModified"] > newest["LastModified"]:
                newest = item
    if newest is None:
        raise LookupError(f"no trip data under s3://{bucket}/{RAW_PREFIX}")
    head = s3.head_object(Bucket=bucket, Key=newest["Key"])
    return RawObject(bucket, newest["Key"], head.get("VersionId"), newest["Size"], head.get("ETag"))


def raw_files(s3: S3Client, bucket: str) -> list[WindowFile]:
    """Every trip file under raw/ (folder markers and empty objects left out), without versions."""
    files = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=RAW_PREFIX):
        for item in page.get("Contents", []):
            if item["Key"].endswith("/") or item["Size"] == 0:
                continue
            files.append(WindowFile(item["Key"], None, item["Size"], month_of(item["Key"])))
    return files


def window_for(s3: S3Client, obj: RawObject, months: int) -> Window:
    """The run's window, each file pinned to a version: the uploaded one's from the event, the
    others' the version each key has now (``HeadObject``)."""
    uploaded = WindowFile(obj.key, obj.version_id, obj.size, month_of(obj.key))
    present = raw_files(s3, obj.bucket) if months > 1 and uploaded.month else []
    window = choose_window(uploaded, present, months)
    pinned = []
    for file in window.files:
        if file.key != obj.key:
            head = s3.head_object(Bucket=obj.bucket, Key=file.key)
            file = WindowFile(file.key, head.get("VersionId"), head["ContentLength"], file.month)
        pinned.append(file)
    return Window(window.months, tuple(pinned), window.note)


# Files copied at once. Each copy is S3's managed copy (boto3's ``copy``): one CopyObject for a
# small file, parallel UploadPartCopy parts for a large one (CopyObject alone stops at 5 GB).
COPY_FILES_AT_ONCE = 4


def copy_window(s3: S3Client, obj: RawObject, window: Window, bucket: str, model_id: str) -> str:
    """Copy the window's files, each at its pinned version, under the run's own prefix (so a
    later upload cannot change what this run read); the processing job's input URI. The copies
    happen inside S3; a year of monthly files takes seconds to a minute or two, within the
    function's timeout."""
    prefix = f"runs/{model_id}/window/"

    def copy(file: WindowFile) -> None:
        source: dict[str, str] = {"Bucket": obj.bucket, "Key": file.key}
        if file.version_id:
            source["VersionId"] = file.version_id
        s3.copy(source, bucket, f"{prefix}{file.key}")  # type: ignore[arg-type]

    with ThreadPoolExecutor(COPY_FILES_AT_ONCE) as pool:
        list(pool.map(copy, window.files))  # the first failure is raised here
    return f"s3://{bucket}/{prefix}{RAW_PREFIX}"


def start_training(
    sfn: SFNClient,
    s3: S3Client,
    state_machine_arn: str,
    name_prefix: str,
    obj: RawObject,
    data: RunData,
    reason: str = "new data",
    salt: str | None = None,
    *,
    delivery_id: str,
) -> Started:
    """Start the training execution named after the object version; a duplicate starts nothing.

    Step Functions answers a StartExecution that repeats the name *and input* of a running
    execution with that execution (no error, no new run), and refuses a reused name with other
    input. The input carries ``delivery_id`` (the invocation's request id), so a second delivery of
    the same event differs in input and is refused: reported as a duplicate, not as a start.

    Only folder markers (``raw/2018/``, what the S3 console's "Create folder" writes) are skipped:
    they are not uploads. Any other object starts a run, an empty or unreadable one too, so it
    fails at PrepareData with its reason where ``status`` shows every run, never in silence. With
    a window of several months, an upload older than every month of the window starts no run:
    the window, and so the model, would be the last run's (docs/training-window.md).

    The run's data (``$.data``): the URI PrepareData reads, and the window, each file's key and
    version, which ``status`` shows. One month reads the uploaded object where it is; several
    are copied under the run's prefix first (:func:`copy_window`).
    """
    if obj.key.endswith("/"):
        return Started("", None, False, skipped=f"{obj.key} is a folder marker, not a trip file")
    window = window_for(s3, obj, data.window_months)
    if reason == "new data" and not includes(window, obj.key):
        newest = ", ".join(window.months_covered)
        return Started(
            "",
            None,
            False,
            skipped=f"{obj.key} is older than the {data.window_months}-month training window"
            f" ({newest}): no run would train on it",
        )
    version = obj.version_id if salt is None else f"{obj.version_id}#{salt}"
    model_id = model_id_for(name_prefix, obj.bucket, obj.key, version)
    if data.window_months == 1:
        uri = f"s3://{obj.bucket}/{obj.key}"
    else:
        uri = copy_window(s3, obj, window, data.artifact_bucket, model_id)
    execution_input = {
        "model_id": model_id,
        "source": {"bucket": obj.bucket, "key": obj.key, "version_id": obj.version_id},
        "data": {"uri": uri, **window.as_record()},
        "reason": reason,
        "delivery_id": delivery_id,
    }
    try:
        response = sfn.start_execution(
            stateMachineArn=state_machine_arn, name=model_id, input=json.dumps(execution_input)
        )
    except sfn.exceptions.ExecutionAlreadyExists:
        return Started(model_id, None, True)
    return Started(model_id, response["executionArn"], False)


# The drift alarm's EventBridge event (the retraining rule's pattern); the rest are S3's.
ALARM_STATE_CHANGE = "CloudWatch Alarm State Change"


def drift_salt(event: EventBridgeEvent) -> str:
    """Retraining on drift is a new run even on the same data: salt the name with the alarm."""
    when = event.get("time") or datetime.now().isoformat()
    return f"drift@{when}"
