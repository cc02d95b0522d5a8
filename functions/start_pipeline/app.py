"""A new trip file under raw/ (or, if enabled, the drift alarm) starts the training pipeline."""

from __future__ import annotations

import os
from dataclasses import asdict
from typing import Any

import boto3
from aws_lambda_powertools.utilities.data_classes import (
    EventBridgeEvent,
    S3EventBridgeNotificationEvent,
    event_source,
)
from aws_lambda_powertools.utilities.typing import LambdaContext
from pipeline_common.observability import logger, metrics, tracer
from pipeline_common.pipeline import (
    ALARM_STATE_CHANGE,
    RunData,
    drift_salt,
    newest_raw_object,
    object_from_event,
    start_training,
)
from pipeline_common.settings import StartPipelineSettings

SETTINGS = StartPipelineSettings.from_env(os.environ)
SFN = boto3.client("stepfunctions")
S3 = boto3.client("s3")


@logger.inject_lambda_context(correlation_id_path="id")
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics
@event_source(data_class=EventBridgeEvent)
def lambda_handler(event: EventBridgeEvent, context: LambdaContext) -> dict[str, Any]:
    if event.detail_type == ALARM_STATE_CHANGE:
        obj, reason, salt = (
            newest_raw_object(S3, SETTINGS.data_bucket),
            "drift alarm",
            drift_salt(event),
        )
    else:
        s3_event = S3EventBridgeNotificationEvent(event.raw_event)
        obj, reason, salt = object_from_event(s3_event), "new data", None
    started = start_training(
        SFN,
        S3,
        SETTINGS.training_state_machine_arn,
        SETTINGS.name_prefix,
        obj,
        RunData(SETTINGS.artifact_bucket, SETTINGS.training_window_months),
        reason,
        salt,
        delivery_id=context.aws_request_id,
    )
    if started.skipped:
        logger.info("upload skipped", extra={"why": started.skipped, "key": obj.key})
    elif started.duplicate:
        logger.info("duplicate event: this object version already has a run", extra=asdict(started))
    else:
        metrics.add_metric(name="PipelineRunsStarted", unit="Count", value=1)
        logger.info(
            "training started",
            extra={"model_id": started.model_id, "key": obj.key, "size": obj.size},
        )
    return asdict(started)
