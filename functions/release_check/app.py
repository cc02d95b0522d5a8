"""Every 15 minutes: does the endpoint live serves agree with the production record, and is it up?
The ReleaseMismatch metric (1 or 0) drives the alarm that tells people."""

from __future__ import annotations

import os
from typing import Any

import boto3
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.data_classes import EventBridgeEvent, event_source
from aws_lambda_powertools.utilities.typing import LambdaContext
from pipeline_common.observability import logger, metrics, tracer
from pipeline_common.release import Verdict, release_check
from pipeline_common.settings import ReleaseCheckSettings

SETTINGS = ReleaseCheckSettings.from_env(os.environ)
CLOUDFORMATION = boto3.client("cloudformation")
LAMBDA = boto3.client("lambda")
SSM = boto3.client("ssm")
SAGEMAKER = boto3.client("sagemaker")


@logger.inject_lambda_context(correlation_id_path="id")
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics
@event_source(data_class=EventBridgeEvent)
def lambda_handler(event: EventBridgeEvent, context: LambdaContext) -> dict[str, Any]:
    result = release_check(
        SETTINGS.stack_name,
        cloudformation=CLOUDFORMATION,
        lambda_client=LAMBDA,
        ssm=SSM,
        sagemaker=SAGEMAKER,
    )
    metrics.add_metric(name="ReleaseMismatch", unit=MetricUnit.Count, value=int(result.mismatch))
    if result.mismatch:
        logger.error("release inconsistent: " + result.summary, extra=result.as_dict())
    elif result.verdict is Verdict.IN_PROGRESS:
        logger.info("release check skipped: " + result.summary, extra=result.as_dict())
    else:
        logger.info("release consistent: " + result.summary, extra=result.as_dict())
    return result.as_dict()
