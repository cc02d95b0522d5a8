"""predict: the API's answers, which endpoint gave them, and what the rollback alarms see.

The API's 5xx count raises an alarm, so no request makes predict answer 5xx: only a failing
endpoint is a 502, and "no model yet" a 503. /health never invokes an endpoint (its rows would be
captured, read by drift monitoring and counted as client traffic by the post-traffic hook).
"""

from __future__ import annotations

import base64
import json
import math
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from moto.sagemaker.models import sagemaker_backends
from pipeline_common.serving import PredictSettings
from pipeline_common.settings import SettingsError

from model.stats import dataset_statistics
from tests.handlers.support import (
    ACCOUNT,
    REGION,
    REPO,
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
from tests.support import examples
from tests.support_code import analyse

PRODUCTION = "fare-2e71d0c94a5b-prod"
CANDIDATE = "fare-9b5c86e7fd15-prod"
HYPOTHESIS = settings(
    # the wiring, through moto; tests/unit/test_payload.py explores the parser
    max_examples=examples(50),
    deadline=None,
    # one function, one cloud for every example: predict keeps no state a request changes
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


def request(
    name: str = "predict",
    body: str | bytes | None = None,
    *,
    base64_encoded: bool = False,
    **headers: str,
) -> dict[str, Any]:
    """A sample API Gateway event, with another body or headers (``Content_Type="..."``). With
    ``base64_encoded`` the body arrives as the API's ``*/*`` binary media type delivers every body
    sent with a Content-Type: base64-encoded, ``isBase64Encoded: true``."""
    event = load_event(name)
    if body is not None:
        raw = body.encode() if isinstance(body, str) else body
        event["body"] = base64.b64encode(raw).decode() if base64_encoded else raw.decode()
        event["isBase64Encoded"] = base64_encoded
    for key, value in headers.items():
        header = key.replace("_", "-")
        event["headers"][header] = value
        event["multiValueHeaders"][header] = [value]
    return event


def with_headers(event: dict[str, Any], headers: dict[str, str] | None) -> dict[str, Any]:
    """The event with exactly these headers (None: API Gateway's null when there are none)."""
    event["headers"] = headers
    event["multiValueHeaders"] = {k: [v] for k, v in headers.items()} if headers else None
    return event


def baseline(cloud: Cloud, endpoint: str, **columns: list[float]) -> None:
    """The baseline statistics the training pipeline keeps for the endpoint's model."""
    training = {
        "total_amount": [3.3, 180.0],
        "duration_minutes": [0.3, 60.0],
        "passenger_count": [1.0, 6.0],
        "trip_distance": [0.04, 39.21],
    } | columns
    statistics = dataset_statistics({k: np.asarray(v, dtype=float) for k, v in training.items()})
    model_id = endpoint.removesuffix("-prod")
    cloud.s3.put_object(
        Bucket=cloud.ref("ArtifactBucket"),
        Key=f"runs/{model_id}/baseline/statistics.json",
        Body=json.dumps(statistics).encode(),
    )


def message_of(answer: dict[str, Any]) -> str:
    document = json.loads(api_body(answer))
    assert isinstance(document["message"], str)
    return document["message"]


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
    # known to answer 5xx once
    "5,000-digit JSON integer": (
        request(body=f"[{'9' * 5000}, 1, 3.2]", Content_Type="application/json"),
        400,
        "row 1: duration_minutes: '99999",
    ),
    "JSON nested 100,000 deep": (
        request(body="[" * 100_000 + "]" * 100_000, Content_Type="application/json"),
        400,
        "nested too deeply",
    ),
    "not UTF-8 (base64, as API Gateway sends it)": (
        request(body=b"14.5,1,\xff3.2", base64_encoded=True),
        400,
        "body is not UTF-8 text",
    ),
    "broken base64": (
        {**request(), "body": "MTQuNSwx%%LDMuMg", "isBase64Encoded": True},
        400,
        "not valid base64",
    ),
    "1e400 in JSON": (
        request(body="[14.5, 1, 1e400]", Content_Type="application/json"),
        400,
        "trip_distance: '1e400' is out of range",
    ),
    "NaN literal": (
        request(body='{"instances": [[NaN, 1, 3.2]]}', Content_Type="application/json"),
        400,
        "duration_minutes: NaN is not a finite number",
    ),
    "Infinity literal": (
        request(body="[14.5, 1, Infinity]", Content_Type="application/json"),
        400,
        "Infinity is not a finite number",
    ),
    "duplicate keys": (
        request(
            body='{"instances": [[14.5, 1, 3.2]], "instances": [[1, 1, 1]]}',
            Content_Type="application/json",
        ),
        400,
        "the key 'instances' more than once",
    ),
    "nested lists": (
        request(body='{"instances": [[[14.5, 1, 3.2]]]}', Content_Type="application/json"),
        400,
        "expected a list of 3 numbers",
    ),
    "oversized base64 body": (
        request(body=TOO_BIG, base64_encoded=True),
        413,
        "body over 1,000,000 bytes",
    ),
    "a charset the parser cannot read": (
        request(Content_Type="text/csv; charset=iso-8859-1"),
        415,
        "charset 'iso-8859-1' is not supported",
    ),
    "empty base64 body": (request(body="", base64_encoded=True), 400, "empty body"),
    "no body at all": ({**request(), "body": None}, 400, "empty body"),
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


# ---------------------------------------------------------------- headers as clients send them


@pytest.mark.parametrize(
    ("headers", "media"),
    [
        (None, "text/csv"),  # no headers at all: CSV in, CSV out
        ({}, "text/csv"),
        ({"content-type": "application/json", "accept": "application/json"}, "application/json"),
        ({"CONTENT-TYPE": "application/json", "ACCEPT": "application/json"}, "application/json"),
        ({"Content-Type": "application/json; charset=UTF-8"}, "text/csv"),
        ({"Content-Type": "application/json", "Accept": "text/html, */*;q=0.1"}, "text/csv"),
        (
            {"Content-Type": "application/json", "Accept": "application/xml, application/*"},
            "application/json",
        ),
    ],
)
def test_headers_are_read_in_any_case_and_defaults_fill_in_the_missing_ones(
    cloud: Cloud,
    endpoints: Endpoints,
    load_handler: Loader,
    context: FakeLambdaContext,
    headers: dict[str, str] | None,
    media: str,
) -> None:
    promoted(cloud)
    endpoints.serve(PRODUCTION)
    json_in = "json" in str(headers)
    body = '{"instances": [[14.5, 1, 3.2]]}' if json_in else "14.5,1,3.2"
    event = with_headers(request(body=body, base64_encoded=headers is not None), headers)
    app = load_handler("predict")

    answer = app.lambda_handler(event, context)

    assert answer["statusCode"] == 200, api_body(answer)
    assert answer["multiValueHeaders"]["Content-Type"] == [media]
    assert [call.rows for call in endpoints.calls] == [[[14.5, 1.0, 3.2]]]


# ---------------------------------------------------------------- no request is a 5xx

HEADER_NAMES = st.sampled_from(["Content-Type", "content-type", "CONTENT-TYPE", "Accept", "accept"])
HEADER_VALUES = st.sampled_from(
    [
        "text/csv",
        "application/json",
        "text/csv; charset=utf-8",
        "application/json;charset=latin-1",
        "*/*",
        "application/xml",
        "text/*;q=0.5, application/json;q=0.9",
        "",
        ";;,,",
    ]
) | st.text(max_size=30)
HEADERS = st.none() | st.dictionaries(HEADER_NAMES, HEADER_VALUES, max_size=4)
JSON_DOCUMENTS = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()  # NaN and Infinity too: json.dumps writes them as literals
    | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(st.sampled_from(["instances", "features", "x"]), inner, max_size=3)
    ),
    max_leaves=20,
)


def assert_answered_without_server_error(answer: dict[str, Any]) -> None:
    """A 2xx, or a 4xx with a JSON message; never an exception (Lambda's error is a 502)."""
    assert answer["statusCode"] < 500, api_body(answer)
    if answer["statusCode"] >= 400:
        assert message_of(answer)


@HYPOTHESIS
@given(body=st.binary(max_size=200), headers=HEADERS, base64_encoded=st.booleans())
def test_no_bytes_and_headers_make_predict_answer_5xx(
    cloud: Cloud,
    endpoints: Endpoints,
    load_handler: Loader,
    context: FakeLambdaContext,
    body: bytes,
    headers: dict[str, str] | None,
    base64_encoded: bool,
) -> None:
    promoted(cloud)
    endpoints.serve(PRODUCTION)
    app = load_handler("predict")
    event = with_headers(request(), headers)
    event["isBase64Encoded"] = base64_encoded
    event["body"] = base64.b64encode(body).decode() if base64_encoded else body.decode("latin-1")

    assert_answered_without_server_error(app.lambda_handler(event, context))


@HYPOTHESIS
@given(document=JSON_DOCUMENTS, accept=HEADER_VALUES)
def test_no_json_document_makes_predict_answer_5xx(
    cloud: Cloud,
    endpoints: Endpoints,
    load_handler: Loader,
    context: FakeLambdaContext,
    document: Any,
    accept: str,
) -> None:
    promoted(cloud)
    endpoints.serve(PRODUCTION)
    app = load_handler("predict")
    event = request(
        body=json.dumps(document),
        base64_encoded=True,
        Content_Type="application/json",
        Accept=accept,
    )

    assert_answered_without_server_error(app.lambda_handler(event, context))


@HYPOTHESIS
@given(
    rows=st.lists(
        st.lists(
            st.floats(0.5, 30.0) | st.floats(allow_nan=False, allow_infinity=False),
            min_size=3,
            max_size=3,
        ),
        min_size=1,
        max_size=5,
    )
)
def test_any_finite_rows_are_scored_or_refused_by_the_domain(
    cloud: Cloud,
    endpoints: Endpoints,
    load_handler: Loader,
    context: FakeLambdaContext,
    rows: list[list[float]],
) -> None:
    promoted(cloud)
    endpoints.serve(PRODUCTION)
    app = load_handler("predict")
    body = "\n".join(",".join(repr(v) for v in row) for row in rows)

    answer = app.lambda_handler(request(body=body, base64_encoded=True), context)

    assert answer["statusCode"] in (200, 422), api_body(answer)
    if answer["statusCode"] == 200:
        assert all(math.isfinite(float(line)) for line in api_body(answer).splitlines())


def test_a_request_no_reader_expected_is_a_logged_400_not_a_lambda_error(
    cloud: Cloud,
    endpoints: Endpoints,
    load_handler: Loader,
    context: FakeLambdaContext,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A direct invoke can carry a body API Gateway never would (an object, not a string)."""
    promoted(cloud)
    endpoints.serve(PRODUCTION)
    app = load_handler("predict")
    event = {**request(), "body": {"instances": [[14.5, 1, 3.2]]}}

    answer = app.lambda_handler(event, context)

    assert answer["statusCode"] == 400
    assert message_of(answer) == "could not read the request"
    logged = [
        json.loads(line) for line in capsys.readouterr().out.splitlines() if '"level"' in line
    ]
    (error,) = [line for line in logged if line["level"] == "ERROR"]
    assert error["message"] == "could not read the request"
    assert "AttributeError" in error["exception"]  # our bug, with its traceback, for us to fix
    assert endpoints.calls == []


# ---------------------------------------------------------------- rows the model cannot score


def test_rows_outside_the_models_training_domain_are_422_with_one_reason_a_row(
    cloud: Cloud,
    endpoints: Endpoints,
    load_handler: Loader,
    context: FakeLambdaContext,
    capsys: pytest.CaptureFixture[str],
) -> None:
    promoted(cloud)
    baseline(cloud, PRODUCTION)
    endpoints.serve(PRODUCTION)
    app = load_handler("predict")
    body = "14.5,1,-1.0\n14.5,1,3.2\n-2,0,3.2\n14.5,1e300,3.2\n"

    answer = app.lambda_handler(request(body=body, base64_encoded=True), context)

    assert answer["statusCode"] == 422
    assert answer["multiValueHeaders"]["X-SageMaker-Endpoint"] == [PRODUCTION]
    assert json.loads(api_body(answer)) == {
        "message": "3 rows are outside what the model can score",
        "rows_outside": 3,
        "errors": [
            {
                "row": 1,
                "reason": "trip_distance -1.0 is below 0.04, the smallest in the model's "
                "training data",
            },
            {
                "row": 3,
                "reason": "duration_minutes -2.0 is below 0.3, the smallest in the model's "
                "training data; passenger_count 0.0 is below 1.0, the smallest in the model's "
                "training data",
            },
            {
                "row": 4,
                "reason": "passenger_count 1e+300 is above 12.0, 2 times the largest in the "
                "model's training data (6.0)",
            },
        ],
    }
    assert endpoints.calls == []  # nothing reaches the model, its capture or drift monitoring
    assert [m for m in metrics(capsys) if m.name == "EndpointErrors"] == []


def test_a_large_request_outside_the_domain_lists_the_first_rows_and_counts_them_all(
    cloud: Cloud, endpoints: Endpoints, load_handler: Loader, context: FakeLambdaContext
) -> None:
    promoted(cloud)
    baseline(cloud, PRODUCTION)
    endpoints.serve(PRODUCTION)
    app = load_handler("predict")
    body = "1,1,1\n" + "1,0,1\n" * 99_999  # 100,000 rows, all but the first with nobody aboard

    answer = app.lambda_handler(request(body=body, base64_encoded=True), context)

    assert answer["statusCode"] == 422
    document = json.loads(api_body(answer))
    assert document["message"] == (
        "99,999 rows are outside what the model can score (the first 20 are listed)"
    )
    assert document["rows_outside"] == 99_999
    assert [e["row"] for e in document["errors"]] == list(range(2, 22))


def test_the_domain_is_the_one_of_the_endpoint_that_answers(
    cloud: Cloud, endpoints: Endpoints, load_handler: Loader, context: FakeLambdaContext
) -> None:
    promoted(cloud)
    baseline(cloud, PRODUCTION, trip_distance=[0.04, 10.0])
    baseline(cloud, CANDIDATE, trip_distance=[0.04, 60.0])
    endpoints.serve(PRODUCTION, CANDIDATE)
    long_ride = request(body="95,1,45.0", base64_encoded=True)

    on_production = load_handler("predict").lambda_handler(long_ride, context)
    on_candidate = load_handler("predict", ENDPOINT_NAME=CANDIDATE).lambda_handler(
        long_ride, context
    )

    assert on_production["statusCode"] == 422
    assert "above 20.0" in api_body(on_production)
    assert on_candidate["statusCode"] == 200
    assert [c.endpoint for c in endpoints.calls] == [CANDIDATE]


def test_the_baseline_is_read_once_per_endpoint(
    cloud: Cloud, endpoints: Endpoints, load_handler: Loader, context: FakeLambdaContext
) -> None:
    promoted(cloud)
    baseline(cloud, PRODUCTION, trip_distance=[0.04, 10.0])
    endpoints.serve(PRODUCTION)
    app = load_handler("predict")
    long_ride = request(body="95,1,45.0", base64_encoded=True)

    assert app.lambda_handler(long_ride, context)["statusCode"] == 422
    baseline(cloud, PRODUCTION, trip_distance=[0.04, 60.0])  # never happens: shows the cache
    assert app.lambda_handler(long_ride, context)["statusCode"] == 422


def test_without_readable_statistics_only_what_no_ride_can_be_is_refused(
    cloud: Cloud,
    endpoints: Endpoints,
    load_handler: Loader,
    context: FakeLambdaContext,
    capsys: pytest.CaptureFixture[str],
) -> None:
    promoted(cloud)  # no baseline stored for it
    endpoints.serve(PRODUCTION)
    app = load_handler("predict")

    nobody = app.lambda_handler(request(body="14.5,0,3.2", base64_encoded=True), context)
    unusual = app.lambda_handler(request(body="500,40,900", base64_encoded=True), context)

    assert nobody["statusCode"] == 422
    assert json.loads(api_body(nobody))["errors"] == [
        {"row": 1, "reason": "passenger_count 0.0 is below 1.0, a ride carries someone"}
    ]
    assert unusual["statusCode"] == 200
    logged = [
        json.loads(line) for line in capsys.readouterr().out.splitlines() if '"level"' in line
    ]
    warnings = [line["message"] for line in logged if line["level"] == "WARNING"]
    assert len(warnings) == 1  # not one a request
    assert warnings[0].startswith(
        f"input domain of {PRODUCTION}: s3://{cloud.ref('ArtifactBucket')}/runs/"
        "fare-2e71d0c94a5b/baseline/statistics.json cannot be read"
    )


# ---------------------------------------------------------------- /health


def set_status(endpoint: str, status: str) -> None:
    sagemaker_backends[ACCOUNT][REGION].endpoints[endpoint].endpoint_status = status


def test_health_reports_the_production_endpoint_without_invoking_it(
    cloud: Cloud,
    endpoints: Endpoints,
    load_handler: Loader,
    context: FakeLambdaContext,
    capsys: pytest.CaptureFixture[str],
) -> None:
    promoted(cloud)
    cloud.endpoint(PRODUCTION)
    endpoints.serve(PRODUCTION)
    app = load_handler("predict")

    answers = [app.lambda_handler(load_event("predict_health"), context) for _ in range(25)]

    assert {a["statusCode"] for a in answers} == {200}
    assert json.loads(api_body(answers[0])) == {
        "status": "ok",
        "endpoint": PRODUCTION,
        "endpoint_status": "InService",
        "release": "production",
    }
    assert answers[0]["multiValueHeaders"]["X-SageMaker-Endpoint"] == [PRODUCTION]
    # nothing reached the endpoint, so nothing reached its capture, drift monitoring or the
    # post-traffic hook's count of client requests
    assert endpoints.calls == []
    assert metrics(capsys) == []


def test_health_reports_a_candidate_version_s_own_endpoint(
    cloud: Cloud, endpoints: Endpoints, load_handler: Loader, context: FakeLambdaContext
) -> None:
    promoted(cloud)
    cloud.endpoint(CANDIDATE)
    app = load_handler("predict", ENDPOINT_NAME=CANDIDATE)

    answer = app.lambda_handler(load_event("predict_health"), context)

    assert answer["statusCode"] == 200
    assert json.loads(api_body(answer))["release"] == "candidate"
    assert answer["multiValueHeaders"]["X-SageMaker-Endpoint"] == [CANDIDATE]
    assert endpoints.calls == []


@pytest.mark.parametrize(
    ("status", "reason"),
    [
        ("Creating", f"endpoint {PRODUCTION} is Creating, not InService"),
        ("Failed", f"endpoint {PRODUCTION} is Failed, not InService"),
        (None, f"endpoint {PRODUCTION} does not exist"),
    ],
)
def test_health_is_503_with_the_reason_when_the_endpoint_cannot_answer(
    cloud: Cloud,
    endpoints: Endpoints,
    load_handler: Loader,
    context: FakeLambdaContext,
    status: str | None,
    reason: str,
) -> None:
    promoted(cloud)
    if status is not None:
        cloud.endpoint(PRODUCTION, status=status)
    app = load_handler("predict")

    answer = app.lambda_handler(load_event("predict_health"), context)

    assert answer["statusCode"] == 503
    assert json.loads(api_body(answer)) == {
        "status": "unavailable",
        "endpoint": PRODUCTION,
        "endpoint_status": status,
        "release": "production",
        "message": reason,
    }
    assert endpoints.calls == []


def test_health_remembers_the_endpoint_status_for_a_while(
    cloud: Cloud, endpoints: Endpoints, load_handler: Loader, context: FakeLambdaContext
) -> None:
    promoted(cloud)
    cloud.endpoint(PRODUCTION)
    cached = load_handler("predict")  # the template's 15 s
    uncached = load_handler("predict", HEALTH_CACHE_SECONDS="0")
    for app in (cached, uncached):
        assert app.lambda_handler(load_event("predict_health"), context)["statusCode"] == 200

    set_status(PRODUCTION, "Failed")

    assert cached.lambda_handler(load_event("predict_health"), context)["statusCode"] == 200
    assert uncached.lambda_handler(load_event("predict_health"), context)["statusCode"] == 503


def test_health_before_the_first_promotion_is_503(
    cloud: Cloud, endpoints: Endpoints, load_handler: Loader, context: FakeLambdaContext
) -> None:
    app = load_handler("predict")

    answer = app.lambda_handler(load_event("predict_health"), context)

    assert answer["statusCode"] == 503
    assert answer["multiValueHeaders"]["X-SageMaker-Endpoint"] == ["none"]
    assert message_of(answer).startswith("no model is in production yet")
    assert endpoints.calls == []


# ---------------------------------------------------------------- the production record


def test_a_promotion_reaches_a_version_serving_production_once_its_record_is_stale(
    cloud: Cloud, endpoints: Endpoints, load_handler: Loader, context: FakeLambdaContext
) -> None:
    promoted(cloud)
    endpoints.serve(PRODUCTION, CANDIDATE)
    cached = load_handler("predict")  # the template's 15 s
    uncached = load_handler("predict", PRODUCTION_CACHE_SECONDS="0")
    for app in (cached, uncached):
        assert app.lambda_handler(load_event("predict"), context)["statusCode"] == 200

    promoted(cloud, CANDIDATE)
    still = cached.lambda_handler(load_event("predict"), context)
    moved = uncached.lambda_handler(load_event("predict"), context)

    assert still["multiValueHeaders"]["X-SageMaker-Endpoint"] == [PRODUCTION]
    assert moved["multiValueHeaders"]["X-SageMaker-Endpoint"] == [CANDIDATE]


# ---------------------------------------------------------------- routes and settings


@pytest.mark.parametrize(
    "change",
    [{"httpMethod": "GET"}, {"path": "/predictions"}, {"httpMethod": "DELETE", "path": "/health"}],
    ids=["GET /predict", "another path", "DELETE /health"],
)
def test_a_route_the_function_does_not_serve_is_404_and_reaches_no_endpoint(
    cloud: Cloud,
    endpoints: Endpoints,
    load_handler: Loader,
    context: FakeLambdaContext,
    change: dict[str, str],
) -> None:
    """API Gateway sends only the template's routes; a direct invoke can send any event."""
    promoted(cloud)
    endpoints.serve(PRODUCTION)
    app = load_handler("predict")

    answer = app.lambda_handler({**load_event("predict"), **change}, context)

    assert answer["statusCode"] == 404
    assert answer["multiValueHeaders"]["Content-Type"] == ["application/json"]
    assert message_of(answer) == "Not found"
    assert endpoints.calls == []


def test_a_trailing_slash_names_the_same_route(
    cloud: Cloud, endpoints: Endpoints, load_handler: Loader, context: FakeLambdaContext
) -> None:
    promoted(cloud)
    endpoints.serve(PRODUCTION)
    app = load_handler("predict")

    answer = app.lambda_handler({**load_event("predict"), "path": "/predict/"}, context)

    assert answer["statusCode"] == 200
    assert [call.endpoint for call in endpoints.calls] == [PRODUCTION]


def test_the_body_limit_is_the_functions_setting(
    cloud: Cloud, endpoints: Endpoints, load_handler: Loader, context: FakeLambdaContext
) -> None:
    promoted(cloud)
    endpoints.serve(PRODUCTION)
    app = load_handler("predict", MAX_BODY_BYTES="100")

    answer = app.lambda_handler(request(body="14.5,1,3.2\n" * 10), context)  # 110 bytes

    assert answer["statusCode"] == 413
    assert message_of(answer) == "body over 100 bytes"
    assert endpoints.calls == []


def test_a_function_deployed_with_a_setting_it_cannot_use_fails_at_its_import(
    cloud: Cloud, load_handler: Loader
) -> None:
    with pytest.raises(SettingsError) as raised:
        load_handler("predict", MAX_BODY_BYTES="1 MB", PRODUCTION_CACHE_SECONDS="-1")

    assert str(raised.value) == (
        "PredictSettings: MAX_BODY_BYTES: '1 MB' is not an integer; "
        "PRODUCTION_CACHE_SECONDS: '-1' is not a finite number of at least 0"
    )


REQUIRED = {"PRODUCTION_ENDPOINT_PARAMETER": "/fare/production", "ARTIFACT_BUCKET": "artifacts"}


@pytest.mark.parametrize(
    ("environment", "problem"),
    [
        ({}, "PRODUCTION_ENDPOINT_PARAMETER: required; ARTIFACT_BUCKET: required"),
        ({"ARTIFACT_BUCKET": "b"}, "PRODUCTION_ENDPOINT_PARAMETER: required$"),
        (REQUIRED | {"HEALTH_CACHE_SECONDS": "nan"}, "'nan' is not a finite number"),
        (REQUIRED | {"HEALTH_CACHE_SECONDS": "inf"}, "'inf' is not a finite number"),
        (REQUIRED | {"MAX_BODY_BYTES": "1e6"}, "MAX_BODY_BYTES: '1e6' is not an integer"),
    ],
)
def test_every_setting_a_function_cannot_use_is_named(
    environment: dict[str, str], problem: str
) -> None:
    with pytest.raises(SettingsError, match=problem):
        PredictSettings.from_env(environment)


def test_settings_come_from_the_environment_in_any_case_with_defaults_for_the_rest() -> None:
    settings = PredictSettings.from_env(
        {
            "production_endpoint_parameter": "/fare/production",  # any case, as before
            "ARTIFACT_BUCKET": "artifacts",
            "MAX_BODY_BYTES": " 2000 ",
            "PRODUCTION_CACHE_SECONDS": "2.5",
            "PATH": "/usr/bin",
        }
    )

    assert settings == PredictSettings(
        production_endpoint_parameter="/fare/production",
        artifact_bucket="artifacts",
        endpoint_name="",
        max_body_bytes=2000,
        production_cache_seconds=2.5,
        health_cache_seconds=15.0,
    )


def test_the_iam_check_sees_every_call_predict_makes_clients_made_on_first_use_included() -> None:
    """The role is checked against the calls the code analysis finds (tests/iam): a client it
    cannot follow would leave that client's calls unchecked."""
    report = analyse(REPO / "functions" / "predict" / "app.py", [REPO / "layers" / "common"], REPO)

    assert {(c.service, c.operation) for c in report.calls} == {
        ("sagemaker-runtime", "InvokeEndpoint"),
        ("ssm", "GetParameter"),
        ("s3", "GetObject"),
        ("sagemaker", "DescribeEndpoint"),
    }
    assert report.unmapped == []
