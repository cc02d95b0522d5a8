"""predict: the API's answers, which endpoint gave them, and what the rollback alarms see."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.handlers.conftest import (
    Cloud,
    Endpoints,
    FakeLambdaContext,
    Loader,
    Metric,
    alarm_metric,
    api_body,
    emf_metrics,
    fare,
    load_event,
)

PRODUCTION = "fare-2e71d0c94a5b-prod"
CANDIDATE = "fare-9b5c86e7fd15-prod"


def request(name: str = "predict", body: str | None = None, **headers: str) -> dict[str, Any]:
    """A sample API Gateway event, with another body or headers (``Content_Type="..."``)."""
    event = load_event(name)
    if body is not None:
        event["body"] = body
    for key, value in headers.items():
        header = key.replace("_", "-")
        event["headers"][header] = value
        event["multiValueHeaders"][header] = [value]
    return event


def promoted(cloud: Cloud, endpoint: str = PRODUCTION) -> None:
    """What the deploy state machine records after a promotion."""
    cloud.set_parameter("ProductionEndpointParameter", endpoint)


def metrics(capsys: pytest.CaptureFixture[str]) -> list[Metric]:
    return [m for m in emf_metrics(capsys.readouterr().out) if m.name != "ColdStart"]


def watched_by(alarm: str, found: list[Metric]) -> list[float]:
    """Values of the metric an alarm of the template watches, with its exact dimensions."""
    namespace, name, dimensions = alarm_metric(alarm)
    return [
        m.value
        for m in found
        if (m.namespace, m.name, m.dimensions) == (namespace, name, dimensions)
    ]


# ---------------------------------------------------------------- answers


def test_one_csv_row(
    cloud: Cloud,
    endpoints: Endpoints,
    load_handler: Loader,
    context: FakeLambdaContext,
    capsys: pytest.CaptureFixture[str],
) -> None:
    promoted(cloud)
    endpoints.serve(PRODUCTION)
    event = load_event("predict")
    app = load_handler("predict")

    answer = app.lambda_handler(event, context)

    assert answer["statusCode"] == 200
    assert answer["multiValueHeaders"]["Content-Type"] == ["text/csv"]
    assert answer["multiValueHeaders"]["X-SageMaker-Endpoint"] == [PRODUCTION]
    assert api_body(answer) == f"{fare([14.5, 1.0, 3.2])!r}\n"
    (call,) = endpoints.calls
    assert call.endpoint == PRODUCTION
    assert call.inference_id == f"api-{event['requestContext']['requestId']}"
    assert call.rows == [[14.5, 1.0, 3.2]]
    found = metrics(capsys)
    assert [(m.name, m.dimensions["Release"]) for m in found] == [
        ("ModelLatency", "production"),
        ("Invocations", "production"),
    ]


def test_several_csv_rows_in_one_endpoint_call(
    cloud: Cloud, endpoints: Endpoints, load_handler: Loader, context: FakeLambdaContext
) -> None:
    promoted(cloud)
    endpoints.serve(PRODUCTION)
    app = load_handler("predict")

    answer = app.lambda_handler(load_event("predict_csv_rows"), context)

    rows = [[14.5, 1.0, 3.2], [6.25, 2.0, 1.1], [31.0, 1.0, 12.8]]
    assert answer["statusCode"] == 200
    assert api_body(answer).splitlines() == [repr(fare(r)) for r in rows]
    (call,) = endpoints.calls
    assert call.rows == rows


def test_json_instances_answer_json(
    cloud: Cloud, endpoints: Endpoints, load_handler: Loader, context: FakeLambdaContext
) -> None:
    promoted(cloud)
    endpoints.serve(PRODUCTION)
    app = load_handler("predict")

    answer = app.lambda_handler(load_event("predict_json"), context)

    assert answer["statusCode"] == 200
    assert answer["multiValueHeaders"]["Content-Type"] == ["application/json"]
    assert json.loads(api_body(answer)) == {
        "predictions": [{"score": fare([14.5, 1, 3.2])}, {"score": fare([6.25, 2, 1.1])}]
    }


# ---------------------------------------------------------------- requests the model cannot score

TOO_BIG = "14.5,1,3.2\n" * (1_000_000 // 11 + 1)

REFUSED = {
    "empty body": (request(body=""), 400, "empty body"),
    "wrong column count": (load_event("predict_bad_csv"), 400, "row 1: expected 3 values"),
    "not a number": (request(body="14.5,one,3.2"), 400, "passenger_count: 'one' is not a number"),
    "NaN": (request(body="14.5,1,nan"), 400, "not a finite number"),
    "infinity": (request(body="14.5,1,3.2\n12,1,inf"), 400, "row 2: trip_distance: inf"),
    "bad JSON": (
        request(body="{", Content_Type="application/json"),
        400,
        "body is not valid JSON",
    ),
    "JSON row too short": (
        request(body='{"instances": [[14.5, 1]]}', Content_Type="application/json"),
        400,
        "expected a list of 3 numbers",
    ),
    "oversized body": (request(body=TOO_BIG), 413, "body over 1,000,000 bytes"),
    "wrong content type": (
        request(Content_Type="application/xml"),
        415,
        "content type 'application/xml' is not supported",
    ),
    "unacceptable Accept": (
        request(Accept="application/xml"),
        406,
        "accept type 'application/xml' is not supported",
    ),
}


@pytest.mark.parametrize(("event", "status", "message"), REFUSED.values(), ids=REFUSED.keys())
def test_a_request_the_model_cannot_score_is_refused_with_a_reason(
    cloud: Cloud,
    endpoints: Endpoints,
    load_handler: Loader,
    context: FakeLambdaContext,
    capsys: pytest.CaptureFixture[str],
    event: dict[str, Any],
    status: int,
    message: str,
) -> None:
    promoted(cloud)
    endpoints.serve(PRODUCTION)
    app = load_handler("predict")

    answer = app.lambda_handler(event, context)

    assert answer["statusCode"] == status
    assert message in json.loads(api_body(answer))["message"]
    assert "X-SageMaker-Endpoint" in answer["multiValueHeaders"]
    assert endpoints.calls == []  # refused before the model runs
    assert [m for m in metrics(capsys) if m.name == "EndpointErrors"] == []


def test_before_the_first_promotion_the_api_says_so(
    cloud: Cloud, endpoints: Endpoints, load_handler: Loader, context: FakeLambdaContext
) -> None:
    app = load_handler("predict")  # the template's parameter value: "none"

    answer = app.lambda_handler(load_event("predict"), context)

    assert answer["statusCode"] == 503
    assert answer["multiValueHeaders"]["X-SageMaker-Endpoint"] == ["none"]
    assert json.loads(api_body(answer))["message"].startswith("no model is in production yet")
    assert endpoints.calls == []


# ---------------------------------------------------------------- candidate and production


def test_a_version_bound_to_a_candidate_serves_from_it(
    cloud: Cloud,
    endpoints: Endpoints,
    load_handler: Loader,
    context: FakeLambdaContext,
    capsys: pytest.CaptureFixture[str],
) -> None:
    promoted(cloud)
    endpoints.serve(PRODUCTION, CANDIDATE)
    app = load_handler("predict", ENDPOINT_NAME=CANDIDATE)

    answer = app.lambda_handler(load_event("predict"), context)

    assert answer["statusCode"] == 200
    assert answer["multiValueHeaders"]["X-SageMaker-Endpoint"] == [CANDIDATE]
    assert [c.endpoint for c in endpoints.calls] == [CANDIDATE]
    found = metrics(capsys)
    assert len(watched_by("CandidateLatencyAlarm", found)) == 1
    assert watched_by("CandidateEndpointErrorsAlarm", found) == []


def test_a_failing_candidate_is_answered_by_production_and_seen_by_the_rollback_alarm(
    cloud: Cloud,
    endpoints: Endpoints,
    load_handler: Loader,
    context: FakeLambdaContext,
    capsys: pytest.CaptureFixture[str],
) -> None:
    promoted(cloud)
    endpoints.serve(PRODUCTION)
    endpoints.fail(CANDIDATE)
    event = load_event("predict")
    app = load_handler("predict", ENDPOINT_NAME=CANDIDATE)

    answer = app.lambda_handler(event, context)

    assert answer["statusCode"] == 200  # the client sees no error
    assert answer["multiValueHeaders"]["X-SageMaker-Endpoint"] == [PRODUCTION]
    request_id = event["requestContext"]["requestId"]
    assert [(c.endpoint, c.inference_id) for c in endpoints.calls] == [
        (CANDIDATE, f"api-{request_id}"),
        (PRODUCTION, f"api-{request_id}-fallback"),
    ]
    found = metrics(capsys)
    assert watched_by("CandidateEndpointErrorsAlarm", found) == [1.0]
    fallbacks = [m for m in found if m.name == "Fallbacks"]
    assert [(m.value, m.dimensions["Release"]) for m in fallbacks] == [(1.0, "candidate")]
    assert [m.dimensions["Release"] for m in found if m.name == "Invocations"] == ["production"]


def test_a_failing_production_endpoint_answers_502(
    cloud: Cloud,
    endpoints: Endpoints,
    load_handler: Loader,
    context: FakeLambdaContext,
    capsys: pytest.CaptureFixture[str],
) -> None:
    promoted(cloud)
    endpoints.fail(PRODUCTION)
    app = load_handler("predict")

    answer = app.lambda_handler(load_event("predict"), context)

    assert answer["statusCode"] == 502
    assert answer["multiValueHeaders"]["X-SageMaker-Endpoint"] == [PRODUCTION]
    assert f"endpoint {PRODUCTION} failed" in json.loads(api_body(answer))["message"]
    errors = [m for m in metrics(capsys) if m.name == "EndpointErrors"]
    assert [(m.value, m.dimensions["Release"]) for m in errors] == [(1.0, "production")]


def test_when_candidate_and_production_both_fail_the_answer_is_502(
    cloud: Cloud,
    endpoints: Endpoints,
    load_handler: Loader,
    context: FakeLambdaContext,
    capsys: pytest.CaptureFixture[str],
) -> None:
    promoted(cloud)
    endpoints.fail(PRODUCTION, CANDIDATE)
    app = load_handler("predict", ENDPOINT_NAME=CANDIDATE)

    answer = app.lambda_handler(load_event("predict"), context)

    assert answer["statusCode"] == 502
    assert answer["multiValueHeaders"]["X-SageMaker-Endpoint"] == [PRODUCTION]
    errors = [m for m in metrics(capsys) if m.name == "EndpointErrors"]
    assert sorted(m.dimensions["Release"] for m in errors) == ["candidate", "production"]


def test_an_endpoint_answering_too_few_predictions_is_a_502(
    cloud: Cloud, endpoints: Endpoints, load_handler: Loader, context: FakeLambdaContext
) -> None:
    promoted(cloud)
    endpoints.answer(PRODUCTION, lambda rows: "12.5")
    app = load_handler("predict")

    answer = app.lambda_handler(load_event("predict_csv_rows"), context)

    assert answer["statusCode"] == 502
    assert "1 predictions for 3 rows" in json.loads(api_body(answer))["message"]


# ---------------------------------------------------------------- /health


def test_health_answers_a_known_ride_from_production(
    cloud: Cloud, endpoints: Endpoints, load_handler: Loader, context: FakeLambdaContext
) -> None:
    promoted(cloud)
    endpoints.serve(PRODUCTION)
    event = load_event("predict_health")
    app = load_handler("predict")

    answer = app.lambda_handler(event, context)

    assert answer["statusCode"] == 200
    assert answer["multiValueHeaders"]["X-SageMaker-Endpoint"] == [PRODUCTION]
    assert json.loads(api_body(answer)) == {
        "status": "ok",
        "endpoint": PRODUCTION,
        "fare": fare([12.0, 1.0, 2.5]),
    }
    (call,) = endpoints.calls
    assert call.inference_id == f"health-{event['requestContext']['requestId']}"


def test_health_fails_on_an_implausible_fare(
    cloud: Cloud, endpoints: Endpoints, load_handler: Loader, context: FakeLambdaContext
) -> None:
    promoted(cloud)
    endpoints.answer(PRODUCTION, lambda rows: "-3.5")
    app = load_handler("predict")

    answer = app.lambda_handler(load_event("predict_health"), context)

    assert answer["statusCode"] == 502
    assert json.loads(api_body(answer)) == {"message": "implausible fare"}
    assert answer["multiValueHeaders"]["X-SageMaker-Endpoint"] == [PRODUCTION]


def test_health_before_the_first_promotion_is_503(
    cloud: Cloud, endpoints: Endpoints, load_handler: Loader, context: FakeLambdaContext
) -> None:
    app = load_handler("predict")

    answer = app.lambda_handler(load_event("predict_health"), context)

    assert answer["statusCode"] == 503
    assert answer["multiValueHeaders"]["X-SageMaker-Endpoint"] == ["none"]
