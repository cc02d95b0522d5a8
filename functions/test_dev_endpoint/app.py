"""RMSE of the dev endpoint on the held-out test split, and the plot reviewers will see."""

from __future__ import annotations

import os
from typing import Any

import boto3
from aws_lambda_powertools.utilities.parser import event_parser
from aws_lambda_powertools.utilities.typing import LambdaContext
from pipeline_common.evaluation import test_dev_endpoint
from pipeline_common.events import DevEndpointTestEvent
from pipeline_common.observability import logger, metrics, tracer
from pipeline_common.settings import TestDevSettings

SETTINGS = TestDevSettings.from_env(os.environ)
S3 = boto3.client("s3")
RUNTIME = boto3.client("sagemaker-runtime")


@logger.inject_lambda_context(correlation_id_path="model_id")
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics
@event_parser(model=DevEndpointTestEvent)
def lambda_handler(event: DevEndpointTestEvent, context: LambdaContext) -> dict[str, Any]:
    report = test_dev_endpoint(
        event.model_id,
        event.endpoint_name,
        s3=S3,
        runtime=RUNTIME,
        bucket=SETTINGS.artifact_bucket,
        max_rows=SETTINGS.max_test_rows,
        batch_rows=SETTINGS.batch_rows,
    )
    metrics.add_metric(name="DevTestRmse", unit="None", value=report.rmse)
    logger.info("dev endpoint tested", extra=report.to_dict())
    return report.to_dict()
