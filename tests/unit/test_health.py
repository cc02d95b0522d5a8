"""/health: the status of the endpoint this version serves, from DescribeEndpoint, remembered for a
while per endpoint (the route is open to anyone; DescribeEndpoint's rate is the account's); and
what every route reads first, the production record, remembered for a while too."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any, cast

import pytest
from botocore.exceptions import ClientError, EndpointConnectionError
from pipeline_common.layout import NO_ENDPOINT
from pipeline_common.serving import (
    HEALTH_CACHE_SECONDS,
    EndpointStatuses,
    Release,
    health,
    lazy_client,
    production_record,
)

if TYPE_CHECKING:
    from mypy_boto3_sagemaker import SageMakerClient
    from mypy_boto3_ssm import SSMClient

PRODUCTION = "fare-2e71d0c94a5b-prod"
CANDIDATE = "fare-9b5c86e7fd15-prod"


class SageMaker:
    """DescribeEndpoint's answers, by endpoint; every call counted."""

    def __init__(self, **statuses: str | Exception) -> None:
        self.statuses = statuses
        self.calls: list[str] = []

    def describe_endpoint(self, EndpointName: str) -> dict[str, Any]:
        self.calls.append(EndpointName)
        status = self.statuses.get(EndpointName)
        if isinstance(status, Exception):
            raise status
        if status is None:
            raise ClientError(
                {
                    "Error": {
                        "Code": "ValidationException",
                        "Message": f'Could not find endpoint "{EndpointName}".',
                    }
                },
                "DescribeEndpoint",
            )
        return {"EndpointName": EndpointName, "EndpointStatus": status}


class Clock:
    def __init__(self) -> None:
        self.now = 500.0

    def __call__(self) -> float:
        return self.now


def statuses(sagemaker: SageMaker, clock: Clock | None = None) -> EndpointStatuses:
    return EndpointStatuses(
        cast("SageMakerClient", sagemaker), HEALTH_CACHE_SECONDS, clock or Clock()
    )


def test_describe_endpoint_is_asked_once_per_endpoint_while_its_answer_is_fresh() -> None:
    sagemaker, clock = SageMaker(**{PRODUCTION: "InService", CANDIDATE: "Creating"}), Clock()
    described = statuses(sagemaker, clock)

    for _ in range(1000):
        assert described.status_of(PRODUCTION).status == "InService"
    assert described.status_of(CANDIDATE).status == "Creating"
    sagemaker.statuses[PRODUCTION] = "Failed"
    clock.now += HEALTH_CACHE_SECONDS - 0.1
    assert described.status_of(PRODUCTION).status == "InService"
    clock.now += 0.1
    assert described.status_of(PRODUCTION).status == "Failed"

    assert sagemaker.calls == [PRODUCTION, CANDIDATE, PRODUCTION]


def test_a_failing_describe_endpoint_is_remembered_too() -> None:
    throttled = ClientError(
        {"Error": {"Code": "ThrottlingException", "Message": "Rate exceeded"}}, "DescribeEndpoint"
    )
    sagemaker = SageMaker(**{PRODUCTION: throttled})
    described = statuses(sagemaker)

    first = described.status_of(PRODUCTION)
    assert described.status_of(PRODUCTION) == first
    assert first.status is None
    assert first.problem is not None
    assert "ThrottlingException" in first.problem
    assert len(sagemaker.calls) == 1


def test_an_unreachable_sagemaker_is_a_problem_not_an_exception() -> None:
    unreachable = EndpointConnectionError(endpoint_url="https://api.sagemaker.us-east-1")

    found = statuses(SageMaker(**{PRODUCTION: unreachable})).status_of(PRODUCTION)

    assert found.status is None
    assert found.problem is not None
    assert "could not describe endpoint" in found.problem


def answer_of(
    production: str, status: str | Exception = "InService", own: str = ""
) -> tuple[int, dict[str, Any], str, Release | None]:
    """/health's answer for a version serving ``own`` (or production) whose endpoint is
    ``status``, as its status and JSON body, the endpoint it names and the release."""
    served = own or production
    answer = health(own, lambda: production, statuses(SageMaker(**{served: status})))
    return answer.status, json.loads(answer.body), answer.endpoint, answer.release


def test_healthy_when_the_endpoint_served_answers_requests() -> None:
    assert answer_of(PRODUCTION) == (
        200,
        {
            "status": "ok",
            "endpoint": PRODUCTION,
            "endpoint_status": "InService",
            "release": "production",
        },
        PRODUCTION,
        Release.PRODUCTION,
    )


def test_a_version_bound_to_a_candidate_reports_the_candidate() -> None:
    status, body, endpoint, _ = answer_of(PRODUCTION, own=CANDIDATE)

    assert (status, endpoint, body["endpoint"], body["release"]) == (
        200,
        CANDIDATE,
        CANDIDATE,
        "candidate",
    )


@pytest.mark.parametrize("serving", ["Updating", "SystemUpdating"])
def test_an_endpoint_that_scales_still_answers_and_is_healthy(serving: str) -> None:
    status, body, _, _ = answer_of(PRODUCTION, serving)

    assert (status, body["endpoint_status"]) == (200, serving)


DENIED = ClientError(
    {"Error": {"Code": "AccessDeniedException", "Message": "not authorized"}}, "DescribeEndpoint"
)


@pytest.mark.parametrize(
    ("described", "endpoint_status", "reason"),
    [
        ("Creating", "Creating", f"endpoint {PRODUCTION} is Creating, not InService"),
        ("Failed", "Failed", f"endpoint {PRODUCTION} is Failed, not InService"),
        ("OutOfService", "OutOfService", f"endpoint {PRODUCTION} is OutOfService, not InService"),
        (None, None, f"endpoint {PRODUCTION} does not exist"),
        (DENIED, None, f"could not describe endpoint {PRODUCTION}: An error occurred"),
    ],
)
def test_503_with_the_reason_when_the_endpoint_cannot_answer(
    described: str | Exception | None, endpoint_status: str | None, reason: str
) -> None:
    sagemaker = SageMaker() if described is None else SageMaker(**{PRODUCTION: described})
    answer = health("", lambda: PRODUCTION, statuses(sagemaker))
    body = json.loads(answer.body)

    assert (answer.status, answer.endpoint) == (503, PRODUCTION)
    assert body["status"] == "unavailable"
    assert body["message"].startswith(reason)
    assert body["endpoint_status"] == endpoint_status


def test_503_before_the_first_promotion() -> None:
    sagemaker = SageMaker()
    answer = health("", lambda: NO_ENDPOINT, statuses(sagemaker))
    body = json.loads(answer.body)

    assert (answer.status, answer.endpoint, body["status"]) == (503, NO_ENDPOINT, "unavailable")
    assert body["message"].startswith("no model is in production yet")
    assert sagemaker.calls == []  # nothing to describe


# ---------------------------------------------------------------- the production record


class SSM:
    """The production record in Parameter Store; every read counted."""

    def __init__(self, value: str | Exception) -> None:
        self.value = value
        self.reads = 0

    def get_parameter(self, Name: str) -> dict[str, Any]:
        self.reads += 1
        if isinstance(self.value, Exception):
            raise self.value
        return {"Parameter": {"Name": Name, "Type": "String", "Value": self.value}}


def test_a_promotion_reaches_an_instance_once_its_record_is_max_age_old() -> None:
    ssm, clock = SSM(PRODUCTION), Clock()
    production = production_record(cast("SSMClient", ssm), "production", 15.0, clock)

    assert [production() for _ in range(100)] == [PRODUCTION] * 100
    ssm.value = CANDIDATE  # the deploy state machine records a promotion
    clock.now += 14.9
    assert production() == PRODUCTION
    clock.now += 0.1
    assert production() == CANDIDATE

    assert ssm.reads == 2


def test_without_a_max_age_every_call_reads_the_record() -> None:
    ssm = SSM(PRODUCTION)
    production = production_record(cast("SSMClient", ssm), "production")

    for _ in range(3):
        assert production() == PRODUCTION

    assert ssm.reads == 3


def test_a_record_that_cannot_be_read_fails_the_request_and_is_read_again_next_time() -> None:
    denied = ClientError(
        {"Error": {"Code": "AccessDeniedException", "Message": "not authorized"}}, "GetParameter"
    )
    ssm = SSM(denied)
    production = production_record(cast("SSMClient", ssm), "production", 15.0, Clock())

    with pytest.raises(ClientError):
        production()
    ssm.value = PRODUCTION

    assert production() == PRODUCTION
    assert ssm.reads == 2


# ---------------------------------------------------------------- clients made on first use


def test_a_lazy_client_is_made_once_on_its_first_use(monkeypatch: pytest.MonkeyPatch) -> None:
    made: list[str] = []

    def client(service: str) -> SageMaker:
        made.append(service)
        return SageMaker(**{PRODUCTION: "InService"})

    monkeypatch.setattr("boto3.client", client)
    sagemaker = lazy_client("sagemaker")
    described = statuses(sagemaker)
    assert made == []  # nothing made by building what holds it

    assert described.status_of(PRODUCTION).status == "InService"
    assert described.status_of(CANDIDATE).status is None
    assert made == ["sagemaker"]
