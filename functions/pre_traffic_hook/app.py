"""BeforeAllowTraffic: green is InService, captures input and output, and answers a known ride."""

from __future__ import annotations

import os
from typing import Any

import boto3
from aws_lambda_powertools.utilities.data_classes import CodeDeployLifecycleHookEvent, event_source
from aws_lambda_powertools.utilities.typing import LambdaContext
from pipeline_common.hooks import (
    Green,
    Verdict,
    pre_traffic_checks,
    promotion_in_flight,
    run_hook,
)
from pipeline_common.observability import logger, metrics, tracer
from pipeline_common.release import production_reader
from pipeline_common.settings import HookSettings

SETTINGS = HookSettings.from_env(os.environ)
CODEDEPLOY = boto3.client("codedeploy")
LAMBDA = boto3.client("lambda")
SAGEMAKER = boto3.client("sagemaker")
RUNTIME = boto3.client("sagemaker-runtime")
DYNAMODB = boto3.client("dynamodb")
production = production_reader(SETTINGS.production_endpoint_parameter)


@logger.inject_lambda_context(correlation_id_path="DeploymentId")
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics
@event_source(data_class=CodeDeployLifecycleHookEvent)
def lambda_handler(event: CodeDeployLifecycleHookEvent, context: LambdaContext) -> dict[str, Any]:
    def check(green: Green) -> Verdict:
        return pre_traffic_checks(green, SAGEMAKER, RUNTIME, f"hook-pre-{event.deployment_id}")

    result = run_hook(
        event,
        check,
        codedeploy=CODEDEPLOY,
        lambda_client=LAMBDA,
        production=production,
        in_flight=lambda: promotion_in_flight(DYNAMODB, SETTINGS.release_table),
    )
    logger.info("pre-traffic verdict", extra=result)
    return result
