"""POST /predict: fares from the endpoint this version is bound to; GET /health: whether that
endpoint is up, asked of the control plane only."""

from __future__ import annotations

import os
from typing import Any

import boto3
from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.metrics import MetricUnit, single_metric
from aws_lambda_powertools.utilities.typing import LambdaContext
from pipeline_common.domain import BaselineDomains
from pipeline_common.observability import logger, metrics, tracer
from pipeline_common.release import production_reader
from pipeline_common.serving import (
    Answer,
    ApiRequest,
    EndpointStatuses,
    Release,
    health,
    predict,
)
from pipeline_common.settings import PredictSettings

SETTINGS = PredictSettings.from_env(os.environ)
RUNTIME = boto3.client("sagemaker-runtime")
SAGEMAKER = boto3.client("sagemaker")
S3 = boto3.client("s3")
app = APIGatewayRestResolver()


production_endpoint = production_reader(
    SETTINGS.production_endpoint_parameter, SETTINGS.production_cache_seconds
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


def respond(answer: Answer) -> Response[str]:
    if answer.unexpected is not None:
        logger.error("could not read the request", exc_info=answer.unexpected)
    elif answer.status >= 500:
        logger.error("prediction failed", extra={"status": answer.status, "body": answer.body})
    elif answer.status >= 400:
        logger.info("request refused", extra={"status": answer.status, "body": answer.body})
    return Response(
        status_code=answer.status,
        content_type=answer.content_type,
        body=answer.body,
        headers={"X-SageMaker-Endpoint": answer.endpoint},
    )


@app.post("/predict")
@tracer.capture_method(capture_response=False)
def predict_route() -> Response[str]:
    event = app.current_event
    request = ApiRequest(
        body=event.body,
        base64_encoded=bool(event.is_base64_encoded),
        content_type=event.headers.get("content-type"),  # event.headers ignore the case
        accept=event.headers.get("accept"),
        inference_id=f"api-{event.request_context.request_id}",
    )
    answer = predict(
        request,
        runtime=RUNTIME,
        own_endpoint=SETTINGS.endpoint_name,
        production_endpoint=production_endpoint,
        domains=domains,
        record=record,
        max_body_bytes=SETTINGS.max_body_bytes,
    )
    return respond(answer)


@app.get("/health")
def health_route() -> Response[str]:
    return respond(health(SETTINGS.endpoint_name, production_endpoint, endpoint_statuses))


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_REST)
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics(capture_cold_start_metric=True)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event, context)
