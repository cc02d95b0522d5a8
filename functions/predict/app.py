"""POST /predict and GET /health: fares from the endpoint this version is bound to."""

from __future__ import annotations

import json
import os
from typing import Any

import boto3
from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.metrics import MetricUnit, single_metric
from aws_lambda_powertools.utilities.typing import LambdaContext
from pipeline_common.observability import logger, metrics, tracer
from pipeline_common.payload import CSV, to_csv
from pipeline_common.release import production_reader
from pipeline_common.serving import HEALTH_ROW, Answer, Release, plausible, predict
from pipeline_common.settings import PredictSettings

SETTINGS = PredictSettings.from_env(os.environ)
RUNTIME = boto3.client("sagemaker-runtime")
app = APIGatewayRestResolver()


production_endpoint = production_reader(
    SETTINGS.production_endpoint_parameter, SETTINGS.production_cache_seconds
)


def record(name: str, value: float, unit: str, release: Release) -> None:
    with single_metric(
        name=name,
        unit=MetricUnit(unit),
        value=value,
        default_dimensions=metrics.default_dimensions,
    ) as metric:
        metric.add_dimension("Release", release.value)


def respond(answer: Answer) -> Response[str]:
    if answer.status >= 500:
        logger.error("prediction failed", extra={"status": answer.status, "body": answer.body})
    elif answer.status >= 400:
        logger.info("request refused", extra={"status": answer.status, "body": answer.body})
    return Response(
        status_code=answer.status,
        content_type=answer.content_type,
        body=answer.body,
        headers={"X-SageMaker-Endpoint": answer.endpoint},
    )


def _request_id() -> str:
    return str(app.current_event.request_context.request_id)


@app.post("/predict")
@tracer.capture_method(capture_response=False)
def predict_route() -> Response[str]:
    event = app.current_event
    raw = event.decoded_body or ""
    if len(raw.encode()) > SETTINGS.max_body_bytes:
        body = json.dumps({"message": f"body over {SETTINGS.max_body_bytes:,} bytes"})
        return Response(413, "application/json", body, {"X-SageMaker-Endpoint": "none"})
    answer = predict(
        raw,
        event.headers.get("content-type") or event.headers.get("Content-Type"),
        event.headers.get("accept") or event.headers.get("Accept"),
        inference_id=f"api-{_request_id()}",
        runtime=RUNTIME,
        own_endpoint=SETTINGS.endpoint_name,
        production_endpoint=production_endpoint,
        record=record,
    )
    return respond(answer)


@app.get("/health")
def health_route() -> Response[str]:
    answer = predict(
        to_csv(HEALTH_ROW),
        CSV,
        "application/json",
        inference_id=f"health-{_request_id()}",
        runtime=RUNTIME,
        own_endpoint=SETTINGS.endpoint_name,
        production_endpoint=production_endpoint,
        record=record,
    )
    if answer.status == 200 and not all(plausible(p) for p in answer.predictions):
        answer = Answer(
            502, json.dumps({"message": "implausible fare"}), "application/json", answer.endpoint
        )
    if answer.status == 200:
        body = {"status": "ok", "endpoint": answer.endpoint, "fare": answer.predictions[0]}
        answer = Answer(200, json.dumps(body), "application/json", answer.endpoint)
    return respond(answer)


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_REST)
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics(capture_cold_start_metric=True)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event, context)
