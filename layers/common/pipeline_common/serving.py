"""Serving through the predict function: which endpoint answers, and what happens when it fails.

A version the pipeline published for a new model carries that model's endpoint (the candidate);
any other version serves the production endpoint recorded in SSM. A candidate's failure is
counted (the rollback alarm watches it) and the request is answered by production, so clients see
no error while CodeDeploy rolls back. A production failure is answered 502 and counted.

Only the endpoint fails a request with 5xx (and "no model yet" is 503, the state of the release):
every way a request can be wrong is a 4xx, since the API's 5xx count raises an alarm. Rows outside
what the answering endpoint's model can score (:mod:`pipeline_common.domain`) are 422.

``GET /health`` asks the control plane only (DescribeEndpoint): an InvokeEndpoint would be
captured, read by drift monitoring and counted by the post-traffic hook as client traffic.

Every canary starts new predict instances, and each pays for what its import loads: this module
and what it imports stay light (no pydantic, no event-handler router; the proxy event is read and
answered here), and the clients only some requests need are made when first used
(``benchmarks/cold_start.py`` measures it, ``tests/handlers/test_cold_start.py`` keeps it so).
"""

from __future__ import annotations

import json
import math
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Protocol

from botocore.exceptions import BotoCoreError, ClientError

from pipeline_common.domain import BaselineDomains, Domain
from pipeline_common.environment import Settings
from pipeline_common.layout import NO_ENDPOINT
from pipeline_common.payload import (
    CSV,
    JSON,
    PayloadError,
    answer_type,
    format_predictions,
    parse_predictions,
    parse_rows,
    read_body,
    to_csv,
)

if TYPE_CHECKING:
    from mypy_boto3_sagemaker import SageMakerClient
    from mypy_boto3_sagemaker_runtime import SageMakerRuntimeClient
    from mypy_boto3_ssm import SSMClient


HEALTH_ROW = [[12.0, 1.0, 2.5]]  # a 12-minute, 2.5-mile ride for one: a fare of a few dollars
PLAUSIBLE_FARE = (0.0, 500.0)
HEALTH_CACHE_SECONDS = 15.0  # /health is open to anyone: DescribeEndpoint's rate is the account's


# ---------------------------------------------------------------------------- settings, clients
@dataclass(frozen=True)
class PredictSettings(Settings):
    """The predict function's environment (field names are the variables' in lower case)."""

    production_endpoint_parameter: str
    artifact_bucket: str  # each model's baseline statistics: the rows its endpoint can score
    endpoint_name: str = ""  # set on the versions the pipeline publishes for a new model
    max_body_bytes: int = 1_000_000
    production_cache_seconds: float = 15.0  # how stale the production endpoint may be
    health_cache_seconds: float = HEALTH_CACHE_SECONDS  # how stale /health's answer may be


# The local cloud runs handlers in threads, and boto3's default session is not meant for threads
# that make clients at the same time.
_CLIENTS_LOCK = threading.Lock()


class _LazyClient:
    """A boto3 client made on its first use (see :func:`lazy_client`)."""

    def __init__(self, service: str) -> None:
        self._service = service
        self._client: Any = None

    def __getattr__(self, name: str) -> Any:
        if self._client is None:
            import boto3  # loaded by every function already; the library itself needs it here only

            with _CLIENTS_LOCK:
                if self._client is None:
                    self._client = boto3.client(self._service)  # type: ignore[call-overload]
        return getattr(self._client, name)


def lazy_client(service: str) -> Any:
    """A stand-in for ``boto3.client(service)`` that makes the client when first used. Making a
    client loads its service's model (tens of milliseconds); a client that only some requests
    need (``/health``'s SageMaker, a model's first statistics from S3) costs nothing until then.
    Annotate the name with the client's type, so type checks and the IAM tests see the client."""
    return _LazyClient(service)


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


def production_record(
    ssm: SSMClient,
    parameter_name: str,
    max_age_seconds: float = 0.0,
    clock: Callable[[], float] = time.monotonic,
) -> Callable[[], str]:
    """A function that answers the endpoint the production record (an SSM parameter) names, read
    again once its answer is ``max_age_seconds`` old: a promotion reaches every instance within
    that time. Each instance keeps its own answer, read through the client it is given
    (Powertools' parameter providers make a boto3 session of their own, which loads the SDK's data
    files again on the first request of every instance)."""
    value, read_at = "", -math.inf

    def production_endpoint() -> str:
        nonlocal value, read_at
        now = clock()
        if now - read_at >= max_age_seconds:
            value = str(ssm.get_parameter(Name=parameter_name)["Parameter"]["Value"])
            read_at = now
        return value

    return production_endpoint


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
    """What the API answers: status, body, media type, and which endpoint answered; ``unexpected``
    is an exception reading the request raised that is not a :class:`PayloadError` (our bug,
    answered 400 and to be logged as an error)."""

    status: int
    body: str
    content_type: str
    endpoint: str
    release: Release | None = None
    predictions: tuple[float, ...] = ()
    fell_back: bool = False
    unexpected: BaseException | None = field(default=None, compare=False)

    def proxy_response(self) -> dict[str, Any]:
        """The answer as API Gateway's REST proxy integration takes it (the shape Powertools'
        REST resolver gives, which clients and the local cloud's API already read)."""
        return {
            "statusCode": self.status,
            "body": self.body,
            "isBase64Encoded": False,
            "multiValueHeaders": {
                "X-SageMaker-Endpoint": [self.endpoint],
                "Content-Type": [self.content_type],
            },
        }


@dataclass(frozen=True)
class ApiRequest:
    """A ``POST /predict`` as the proxy event carries it (headers looked up in any case)."""

    body: str | None
    base64_encoded: bool
    content_type: str | None
    accept: str | None
    inference_id: str

    @classmethod
    def from_proxy_event(cls, event: Mapping[str, Any]) -> ApiRequest:
        """The request an API Gateway REST proxy event carries; where a header comes in several
        cases, the last one counts (as in Powertools' event classes)."""
        headers = {str(name).lower(): value for name, value in (event.get("headers") or {}).items()}
        return cls(
            body=event.get("body"),
            base64_encoded=bool(event.get("isBase64Encoded")),
            content_type=headers.get("content-type"),
            accept=headers.get("accept"),
            inference_id=f"api-{event['requestContext']['requestId']}",
        )


def route_key(event: Mapping[str, Any]) -> tuple[str, str]:
    """Method and path of a proxy event, as routes are named (``("POST", "/predict")``); trailing
    slashes do not count."""
    method = str(event.get("httpMethod") or "").upper()
    return method, str(event.get("path") or "").rstrip("/") or "/"


def not_found() -> dict[str, Any]:
    """A request for a route the function does not serve (only a direct invoke can send one)."""
    return {
        "statusCode": 404,
        "body": json.dumps({"statusCode": 404, "message": "Not found"}),
        "isBase64Encoded": False,
        "multiValueHeaders": {"Content-Type": [JSON]},
    }


@dataclass(frozen=True)
class Scorable:
    """A request read: its rows and the media type to answer in."""

    rows: list[list[float]]
    answer_type: str


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


def _json(status: int, document: dict[str, Any], endpoint: str, **more: Any) -> Answer:
    return Answer(status, json.dumps(document), JSON, endpoint, **more)


def _error(status: int, message: str, endpoint: str) -> Answer:
    return _json(status, {"message": message}, endpoint)


def read_request(request: ApiRequest, max_body_bytes: int) -> Scorable:
    """The rows and the answer's media type; :class:`PayloadError` for anything wrong."""
    body = read_body(request.body, request.base64_encoded, max_body_bytes)
    rows = parse_rows(body, request.content_type)
    return Scorable(rows, answer_type(request.accept))  # Accept is refused before the model runs


def outside_the_domain(rows: list[list[float]], domain: Domain, endpoint: str) -> Answer | None:
    """422, one reason a row, when rows are outside what the model can score."""
    outside = domain.outside(rows)
    if not outside.count:
        return None
    rows_word = "row is" if outside.count == 1 else "rows are"
    message = f"{outside.count:,} {rows_word} outside what the model can score"
    if outside.count > len(outside.listed):
        message += f" (the first {len(outside.listed)} are listed)"
    document = {
        "message": message,
        "rows_outside": outside.count,
        "errors": [{"row": row, "reason": reason} for row, reason in outside.listed],
    }
    return _json(422, document, endpoint)


def predict(
    request: ApiRequest,
    *,
    runtime: SageMakerRuntimeClient,
    own_endpoint: str,
    production_endpoint: Callable[[], str],
    domains: BaselineDomains,
    record: Recorder,
    max_body_bytes: int,
) -> Answer:
    """Route, read, check the domain, invoke (falling back from a failing candidate), format;
    never raises for a bad request or a failing endpoint: those are answers too."""
    try:
        chosen = route(own_endpoint, production_endpoint())
    except NoModelYet as exc:
        return _error(503, str(exc), NO_ENDPOINT)
    try:
        scorable = read_request(request, max_body_bytes)
    except PayloadError as exc:
        return _error(exc.status, str(exc), chosen.endpoint)
    except Exception as exc:  # reading is meant to be total: this is a bug, but not a 5xx
        return replace(_error(400, "could not read the request", chosen.endpoint), unexpected=exc)
    rows = scorable.rows
    refused = outside_the_domain(rows, domains.domain_of(chosen.endpoint), chosen.endpoint)
    if refused is not None:
        return refused
    inference_id = request.inference_id
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
    text, media = format_predictions(predictions, scorable.answer_type)
    return Answer(200, text, media, answered, release, tuple(predictions), fell_back)


def plausible(prediction: float) -> bool:
    low, high = PLAUSIBLE_FARE
    return low < prediction < high


# ---------------------------------------------------------------------------- /health
@dataclass(frozen=True)
class EndpointStatus:
    """What DescribeEndpoint said of an endpoint: its status, or why it could not say."""

    endpoint: str
    status: str | None
    problem: str | None = None


class EndpointStatuses:
    """DescribeEndpoint, remembered ``max_age_seconds`` per endpoint (failures too), so that
    callers of the open ``/health`` route cannot spend the account's DescribeEndpoint rate."""

    def __init__(
        self,
        sagemaker: SageMakerClient,
        max_age_seconds: float = HEALTH_CACHE_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.sagemaker = sagemaker
        self.max_age_seconds = max_age_seconds
        self.clock = clock
        self._seen: dict[str, tuple[float, EndpointStatus]] = {}

    def status_of(self, endpoint: str) -> EndpointStatus:
        now = self.clock()
        seen = self._seen.get(endpoint)
        if seen is not None and now - seen[0] < self.max_age_seconds:
            return seen[1]
        status = self._describe(endpoint)
        self._seen[endpoint] = (now, status)
        return status

    def _describe(self, endpoint: str) -> EndpointStatus:
        try:
            described = self.sagemaker.describe_endpoint(EndpointName=endpoint)
        except ClientError as exc:
            error = exc.response.get("Error", {})
            if error.get("Code") == "ValidationException" and "not find" in error.get(
                "Message", ""
            ):
                return EndpointStatus(endpoint, None, f"endpoint {endpoint} does not exist")
            return EndpointStatus(endpoint, None, f"could not describe endpoint {endpoint}: {exc}")
        except BotoCoreError as exc:
            return EndpointStatus(endpoint, None, f"could not describe endpoint {endpoint}: {exc}")
        return EndpointStatus(endpoint, str(described["EndpointStatus"]))


def health(
    own_endpoint: str,
    production_endpoint: Callable[[], str],
    statuses: EndpointStatuses,
) -> Answer:
    """200 when the endpoint this version serves answers requests, 503 (with the reason) when it
    cannot: the verdict of a health check, not an error of the request. No InvokeEndpoint."""
    # release imports this module (for route); its SERVING_STATUSES say which statuses answer
    from pipeline_common.release import SERVING_STATUSES

    try:
        chosen = route(own_endpoint, production_endpoint())
    except NoModelYet as exc:
        return _json(503, {"status": "unavailable", "message": str(exc)}, NO_ENDPOINT)
    described = statuses.status_of(chosen.endpoint)
    document: dict[str, Any] = {
        "status": "ok",
        "endpoint": chosen.endpoint,
        "endpoint_status": described.status,
        "release": chosen.release.value,
    }
    if described.status in SERVING_STATUSES:
        return _json(200, document, chosen.endpoint, release=chosen.release)
    reason = described.problem or (
        f"endpoint {chosen.endpoint} is {described.status}, not InService"
    )
    document.update(status="unavailable", message=reason)
    return _json(503, document, chosen.endpoint, release=chosen.release)
