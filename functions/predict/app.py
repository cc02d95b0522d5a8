"""POST /predict: fares from the endpoint this version is bound to; GET /health: whether that
endpoint is up, asked of the control plane only.

Every canary starts new instances of this function, and every one pays for its import: it reads
its settings without pydantic, answers the proxy event itself (``pipeline_common.serving``) and
makes the clients only some requests need on their first use. Its import stays within 1.3 times
what ``import boto3`` and the runtime client cost (``benchmarks/cold_start.py``), and
``tests/handlers/test_cold_start.py`` keeps what it adds to Powertools' own import that small.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import boto3
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.metrics import MetricUnit, single_metric
from pipeline_common.domain import BaselineDomains
from pipeline_common.observability import logger, metrics, tracer
from pipeline_common.serving import (
    Answer,
    ApiRequest,
    EndpointStatuses,
    PredictSettings,
    Release,
    health,
    lazy_client,
    not_found,
    predict,
    production_record,
    route_key,
)

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.typing import LambdaContext
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_sagemaker import SageMakerClient
    from mypy_boto3_ssm import SSMClient

SETTINGS = PredictSettings.from_env(os.environ)
RUNTIME = boto3.client("sagemaker-runtime")
# Made by the first request that needs each, not by the import: an instance's first /predict
# makes the first two (benchmarks/results.md has what that costs); SageMaker's, /health alone.
SSM: SSMClient = lazy_client("ssm")
S3: S3Client = lazy_client("s3")
SAGEMAKER: SageMakerClient = lazy_client("sagemaker")

production_endpoint = production_record(
    SSM, SETTINGS.production_endpoint_parameter, SETTINGS.production_cache_seconds
)
endpoint_statuses = EndpointStatuses(SAGEMAKER, SETTINGS.health_cache_seconds)
domains = BaselineDomains(S3, SETTINGS.artifact_bucket, warn=logger.warning)


def record(name: str, value: float, unit: str, release: Release) -> None:
    with single_metric(
        name=name,
        unit=MetricUnit(unit),
        value=value,
        default_dimensions=metrics.default_dimensions,
    ) as metric:
        metric.add_dimension("Release", release.value)


def respond(answer: Answer) -> dict[str, Any]:
    if answer.unexpected is not None:
        logger.error("could not read the request", exc_info=answer.unexpected)
    elif answer.status >= 500:
        logger.error("prediction failed", extra={"status": answer.status, "body": answer.body})
    elif answer.status >= 400:
        logger.info("request refused", extra={"status": answer.status, "body": answer.body})
    return answer.proxy_response()


@tracer.capture_method(capture_response=False)
def predict_route(event: dict[str, Any]) -> dict[str, Any]:
    answer = predict(
        ApiRequest.from_proxy_event(event),
        runtime=RUNTIME,
        own_endpoint=SETTINGS.endpoint_name,
        production_endpoint=production_endpoint,
        domains=domains,
        record=record,
        max_body_bytes=SETTINGS.max_body_bytes,
    )
    return respond(answer)


def health_route(event: dict[str, Any]) -> dict[str, Any]:
    return respond(health(SETTINGS.endpoint_name, production_endpoint, endpoint_statuses))


ROUTES: dict[tuple[str, str], Callable[[dict[str, Any]], dict[str, Any]]] = {
    ("POST", "/predict"): predict_route,
    ("GET", "/health"): health_route,
}


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_REST)
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics(capture_cold_start_metric=True)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    route = ROUTES.get(route_key(event))
    return route(event) if route is not None else not_found()
