"""Serving through the predict function: which endpoint answers, and what happens when it fails.

A version the pipeline published for a new model carries that model's endpoint (the candidate);
any other version serves the production endpoint recorded in SSM. A candidate's failure is
counted (the rollback alarm watches it) and the request is answered by production, so clients see
no error while CodeDeploy rolls back. A production failure is answered 502 and counted.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, Protocol

from botocore.exceptions import BotoCoreError, ClientError

from pipeline_common.layout import NO_ENDPOINT
from pipeline_common.payload import (
    CSV,
    JSON,
    PayloadError,
    format_predictions,
    parse_predictions,
    parse_rows,
    to_csv,
)

if TYPE_CHECKING:
    from mypy_boto3_sagemaker_runtime import SageMakerRuntimeClient


HEALTH_ROW = [[12.0, 1.0, 2.5]]  # a 12-minute, 2.5-mile ride for one: a fare of a few dollars
PLAUSIBLE_FARE = (0.0, 500.0)


class Release(StrEnum):
    PRODUCTION = "production"
    CANDIDATE = "candidate"


class NoModelYet(RuntimeError):
    """Nothing has been promoted to production yet."""


class EndpointFailed(RuntimeError):
    """The endpoint that had to answer did not."""

    def __init__(self, endpoint: str, reason: str) -> None:
        self.endpoint = endpoint
        super().__init__(f"endpoint {endpoint} failed: {reason}")


class Recorder(Protocol):
    """Where serving metrics go (Powertools Metrics in Lambda)."""

    def __call__(self, name: str, value: float, unit: str, release: Release) -> None: ...


@dataclass(frozen=True)
class Route:
    endpoint: str
    release: Release
    fallback: str | None  # production, when a candidate answers


def route(own_endpoint: str, production_endpoint: str) -> Route:
    production = production_endpoint if production_endpoint != NO_ENDPOINT else ""
    if own_endpoint and own_endpoint != production:
        return Route(own_endpoint, Release.CANDIDATE, production or None)
    if not production:
        raise NoModelYet(
            "no model is in production yet: upload trip data under raw/ in the data bucket and "
            "approve the candidate"
        )
    return Route(production, Release.PRODUCTION, None)


@dataclass(frozen=True)
class Answer:
    """What the API answers: status, body, media type, and which endpoint answered."""

    status: int
    body: str
    content_type: str
    endpoint: str
    release: Release | None = None
    predictions: tuple[float, ...] = ()
    fell_back: bool = False


def _invoke(
    runtime: SageMakerRuntimeClient, endpoint: str, payload: str, inference_id: str
) -> list[float]:
    try:
        response = runtime.invoke_endpoint(
            EndpointName=endpoint,
            ContentType=CSV,
            Accept=CSV,
            Body=payload.encode(),
            InferenceId=inference_id,
        )
        predictions = parse_predictions(response["Body"].read())
    except (ClientError, BotoCoreError, ValueError) as exc:
        raise EndpointFailed(endpoint, str(exc)) from exc
    return predictions


def _error(status: int, message: str, endpoint: str) -> Answer:
    return Answer(status, json.dumps({"message": message}), JSON, endpoint)


def predict(
    body: bytes | str,
    content_type: str | None,
    accept: str | None,
    *,
    inference_id: str,
    runtime: SageMakerRuntimeClient,
    own_endpoint: str,
    production_endpoint: Callable[[], str],
    record: Recorder,
) -> Answer:
    """Route, validate, invoke (falling back from a failing candidate), format; never raises for
    a bad request or a failing endpoint: those are answers too."""
    try:
        chosen = route(own_endpoint, production_endpoint())
    except NoModelYet as exc:
        return _error(503, str(exc), NO_ENDPOINT)
    try:
        rows = parse_rows(body, content_type)
        format_predictions([], accept)  # an unacceptable Accept is refused before the model runs
    except PayloadError as exc:
        return _error(exc.status, str(exc), chosen.endpoint)
    payload = to_csv(rows)
    started = time.perf_counter()
    answered, release, fell_back = chosen.endpoint, chosen.release, False
    try:
        try:
            predictions = _invoke(runtime, chosen.endpoint, payload, inference_id)
        except EndpointFailed:
            record("EndpointErrors", 1, "Count", chosen.release)
            if chosen.fallback is None:
                raise
            record("Fallbacks", 1, "Count", Release.CANDIDATE)
            answered, release, fell_back = chosen.fallback, Release.PRODUCTION, True
            started = time.perf_counter()
            predictions = _invoke(runtime, answered, payload, f"{inference_id}-fallback")
        if len(predictions) != len(rows):
            raise EndpointFailed(answered, f"{len(predictions)} predictions for {len(rows)} rows")
    except EndpointFailed as exc:
        if fell_back:
            record("EndpointErrors", 1, "Count", Release.PRODUCTION)
        return _error(502, str(exc), exc.endpoint)
    record("ModelLatency", (time.perf_counter() - started) * 1000.0, "Milliseconds", release)
    record("Invocations", 1, "Count", release)
    text, media = format_predictions(predictions, accept)
    return Answer(200, text, media, answered, release, tuple(predictions), fell_back)


def plausible(prediction: float) -> bool:
    low, high = PLAUSIBLE_FARE
    return low < prediction < high
