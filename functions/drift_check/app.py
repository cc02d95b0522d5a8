"""Each Model Monitor result: drift metrics for the alarm, and a message when features drifted."""

from __future__ import annotations

import os
from typing import Any

import boto3
from aws_lambda_powertools.utilities.data_classes import (
    S3EventBridgeNotificationEvent,
    event_source,
)
from aws_lambda_powertools.utilities.typing import LambdaContext
from pipeline_common.drift import read_violations
from pipeline_common.observability import logger, metrics, tracer
from pipeline_common.settings import DriftSettings

SETTINGS = DriftSettings.from_env(os.environ)
S3 = boto3.client("s3")
SNS = boto3.client("sns")


@logger.inject_lambda_context(correlation_id_path="id")
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics
@event_source(data_class=S3EventBridgeNotificationEvent)
def lambda_handler(event: S3EventBridgeNotificationEvent, context: LambdaContext) -> dict[str, Any]:
    key = event.detail.object["key"]  # as delivered, like start_pipeline's (not URL-decoded)
    bucket = event.detail.bucket.name
    document = S3.get_object(Bucket=bucket, Key=key)["Body"].read().decode()
    result = read_violations(key, document)
    metrics.add_metric(name="DriftViolations", unit="Count", value=len(result.violations))
    for feature, distance in result.distances.items():
        metrics.add_metadata(f"distance_{feature}", distance)
    if result.violations:
        SNS.publish(
            TopicArn=SETTINGS.topic_arn,
            Subject=f"Drift on {result.endpoint}"[:100],
            Message=result.message(),
        )
    logger.info("monitoring result", extra={"endpoint": result.endpoint, "drifted": result.drifted})
    return {
        "endpoint": result.endpoint,
        "violations": len(result.violations),
        "drifted": result.drifted,
    }
