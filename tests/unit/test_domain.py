"""The input domain: a model's baseline statistics bound the rows its endpoint scores; what no ride
can be is refused whatever they say, and all that is checked when they cannot be read."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import boto3
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from moto import mock_aws
from pipeline_common.domain import (
    LISTED_ROWS,
    PHYSICAL,
    BaselineDomains,
    StatisticsError,
    domain_from_statistics,
)

from model.stats import dataset_statistics

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

ENDPOINT = "fare-2e71d0c94a5b-prod"
KEY = "runs/fare-2e71d0c94a5b/baseline/statistics.json"
BUCKET = "artifacts"


def statistics(**columns: list[float]) -> dict[str, Any]:
    """A baseline job's ``statistics.json`` (model/stats.py computes it as Model Monitor does)."""
    training = {
        "total_amount": [3.3, 180.0],  # the label: not a feature, never a bound
        "duration_minutes": [0.3, 60.0],
        "passenger_count": [1.0, 6.0],
        "trip_distance": [0.04, 39.21],
    } | columns
    return dataset_statistics(
        {name: np.asarray(v, dtype=np.float64) for name, v in training.items()}
    )


TRAINED = domain_from_statistics(statistics(), "test")


@pytest.mark.parametrize(
    "row",
    [
        [0.3, 1.0, 0.04],  # every training minimum
        [120.0, 12.0, 78.42],  # twice every training maximum
        [14.5, 2.0, 3.2],
    ],
)
def test_rows_from_the_training_minimum_to_twice_its_maximum_are_inside(row: list[float]) -> None:
    assert TRAINED.reason(row) is None
    assert TRAINED.outside([row]).count == 0


@pytest.mark.parametrize(
    ("row", "reason"),
    [
        (
            [14.5, 1.0, -1.0],
            "trip_distance -1.0 is below 0.04, the smallest in the model's training data",
        ),
        (
            [14.5, 1.0, 78.43],
            "trip_distance 78.43 is above 78.42, 2 times the largest in the model's training "
            "data (39.21)",
        ),
        ([14.5, 0.0, 3.2], "passenger_count 0.0 is below 1.0, the smallest in the model's"),
        ([-5.0, 1.0, 3.2], "duration_minutes -5.0 is below 0.3"),
        ([14.5, 1e300, 3.2], "passenger_count 1e+300 is above 12.0"),
        (
            [-5.0, 1.0, -1.0],
            "duration_minutes -5.0 is below 0.3, the smallest in the model's training data; "
            "trip_distance -1.0 is below 0.04",
        ),
    ],
)
def test_a_row_outside_says_which_value_and_which_bound(row: list[float], reason: str) -> None:
    found = TRAINED.reason(row)

    assert found is not None
    assert found.startswith(reason)
    assert TRAINED.outside([[14.5, 1.0, 3.2], row]).listed == ((2, found),)


def test_what_no_ride_can_be_is_outside_whatever_the_baseline_says() -> None:
    careless = domain_from_statistics(
        statistics(passenger_count=[0.0, 6.0], trip_distance=[-2.0, 39.21]), "test"
    )

    assert careless.reason([14.5, 0.0, 3.2]) == (
        "passenger_count 0.0 is below 1.0, a ride carries someone"
    )
    assert careless.reason([14.5, 1.0, 0.0]) == (
        "trip_distance 0.0 is not above 0.0, a ride goes somewhere"
    )
    assert careless.reason([14.5, 1.0, 3.2]) is None


@pytest.mark.parametrize(
    ("row", "reason"),
    [
        ([0.0, 1.0, 3.2], "duration_minutes 0.0 is not above 0.0, a ride takes some time"),
        ([14.5, 1.0, -1.0], "trip_distance -1.0 is not above 0.0, a ride goes somewhere"),
        ([14.5, 0.0, 3.2], "passenger_count 0.0 is below 1.0, a ride carries someone"),
        (
            [14.5, 1.0, 1e300],
            "trip_distance 1e+300 is above 1000000.0, beyond any ride (1,000,000)",
        ),
    ],
)
def test_the_physical_domain(row: list[float], reason: str) -> None:
    assert PHYSICAL.reason(row) == reason
    assert PHYSICAL.reason([500.0, 40.0, 900.0]) is None  # far outside training, but possible


def test_many_rows_outside_are_all_counted_and_the_first_few_named() -> None:
    rows = [[14.5, 1.0, 3.2], *([[14.5, 0.0, 3.2]] * 10_000)]  # far more than are named

    outside = TRAINED.outside(rows)

    assert outside.count == 10_000
    assert [row for row, _ in outside.listed] == list(range(2, 2 + LISTED_ROWS))


MALFORMED = {
    "not an object": [],
    "no features": {"version": 0},
    "a feature missing": {
        "features": [f for f in statistics()["features"] if f["name"] != "trip_distance"]
    },
    "no values": statistics(trip_distance=[float("nan")]),  # min and max are 0.0 then
    "min not a number": {
        "features": [
            {"name": n, "numerical_statistics": {"min": "0", "max": 1.0}}
            for n in ("duration_minutes", "passenger_count", "trip_distance")
        ]
    },
    "common not an object": {
        "features": [
            {"name": n, "numerical_statistics": {"common": [1], "min": 1.0, "max": 2.0}}
            for n in ("duration_minutes", "passenger_count", "trip_distance")
        ]
    },
    "max too large for a float": {
        "features": [
            {"name": n, "numerical_statistics": {"min": 1, "max": 10**400}}
            for n in ("duration_minutes", "passenger_count", "trip_distance")
        ]
    },
    "max not finite": {
        "features": [
            {"name": n, "numerical_statistics": {"min": 1.0, "max": float("inf")}}
            for n in ("duration_minutes", "passenger_count", "trip_distance")
        ]
    },
    "min above max": {
        "features": [
            {"name": n, "numerical_statistics": {"min": 2.0, "max": 1.0}}
            for n in ("duration_minutes", "passenger_count", "trip_distance")
        ]
    },
}


@pytest.mark.parametrize("document", MALFORMED.values(), ids=MALFORMED.keys())
def test_statistics_that_do_not_bound_every_feature_are_refused(document: Any) -> None:
    with pytest.raises(StatisticsError):
        domain_from_statistics(document, "test")


NAMES = st.sampled_from(["duration_minutes", "passenger_count", "trip_distance", "x"])
NUMBERS = (
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=4) | st.just(10**400)
)
JSON_LIKE = st.recursive(
    NUMBERS,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3)
    ),
    max_leaves=10,
)
FEATURE_ENTRIES = st.fixed_dictionaries(
    {"name": NAMES | JSON_LIKE},
    optional={
        "numerical_statistics": st.fixed_dictionaries(
            {},
            optional={
                "min": NUMBERS,
                "max": NUMBERS,
                "common": st.fixed_dictionaries({}, optional={"num_present": NUMBERS}) | JSON_LIKE,
            },
        )
        | JSON_LIKE
    },
)


@given(
    document=st.fixed_dictionaries({"features": st.lists(FEATURE_ENTRIES | JSON_LIKE, max_size=5)})
    | JSON_LIKE
)
def test_any_statistics_document_is_a_domain_or_a_statistics_error(document: Any) -> None:
    try:
        domain = domain_from_statistics(document, "test")
    except StatisticsError:
        return
    assert all(limit.low <= limit.high for limits in domain.limits for limit in limits)


# ---------------------------------------------------------------- read from S3, kept per endpoint


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def offline(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)


@pytest.fixture(scope="module")
def s3_client() -> Iterator[S3Client]:
    """One client for the module: making an S3 client takes longer than a test here. moto mocks
    every client made after it is imported, and each test's ``mock_aws`` starts from no buckets."""
    with pytest.MonkeyPatch.context() as monkeypatch:
        offline(monkeypatch)
        yield boto3.client("s3", region_name="us-east-1")


@pytest.fixture
def s3(s3_client: S3Client, monkeypatch: pytest.MonkeyPatch) -> Iterator[S3Client]:
    offline(monkeypatch)
    with mock_aws():
        s3_client.create_bucket(Bucket=BUCKET)
        yield s3_client


def put(s3: S3Client, document: Any, key: str = KEY) -> None:
    body = document if isinstance(document, bytes) else json.dumps(document).encode()
    s3.put_object(Bucket=BUCKET, Key=key, Body=body)


def test_an_endpoints_domain_is_its_models_baseline_read_once(s3: S3Client) -> None:
    put(s3, statistics())
    warnings: list[str] = []
    domains = BaselineDomains(s3, BUCKET, warn=warnings.append)

    first = domains.domain_of(ENDPOINT)
    s3.delete_object(Bucket=BUCKET, Key=KEY)  # a model's baseline never changes: no second read

    assert domains.domain_of(ENDPOINT) is first
    assert first.source == f"s3://{BUCKET}/{KEY}"
    assert first.reason([14.5, 1.0, 78.43]) is not None
    assert warnings == []


@pytest.mark.parametrize(
    "stored",
    [None, b"{not json", b"\xff\xfe", json.dumps(MALFORMED["a feature missing"]).encode()],
    ids=["missing", "not JSON", "not UTF-8", "malformed"],
)
def test_unreadable_statistics_fall_back_to_the_physical_domain_with_a_warning(
    s3: S3Client, stored: bytes | None
) -> None:
    if stored is not None:
        put(s3, stored)
    warnings: list[str] = []
    domains = BaselineDomains(s3, BUCKET, warn=warnings.append)

    assert domains.domain_of(ENDPOINT) is PHYSICAL
    (warning,) = warnings
    assert warning.startswith(f"input domain of {ENDPOINT}: s3://{BUCKET}/{KEY}")


def test_an_endpoint_this_pipeline_did_not_name_has_the_physical_domain(s3: S3Client) -> None:
    warnings: list[str] = []

    assert BaselineDomains(s3, BUCKET, warn=warnings.append).domain_of("someone-elses") is PHYSICAL
    assert "is not an endpoint this pipeline named" in warnings[0]


def test_access_denied_falls_back_too(s3: S3Client) -> None:
    warnings: list[str] = []

    assert (
        BaselineDomains(s3, "no-such-bucket", warn=warnings.append).domain_of(ENDPOINT) is PHYSICAL
    )
    assert "NoSuchBucket" in warnings[0]


def test_unreadable_statistics_are_read_again_after_a_while(s3: S3Client) -> None:
    clock, warnings = Clock(), list[str]()
    domains = BaselineDomains(s3, BUCKET, warn=warnings.append, retry_seconds=60, clock=clock)

    assert domains.domain_of(ENDPOINT) is PHYSICAL
    put(s3, statistics())
    clock.now += 59
    assert (
        domains.domain_of(ENDPOINT) is PHYSICAL
    )  # not asked again yet: one warning, not one a request
    clock.now += 1
    assert domains.domain_of(ENDPOINT) is not PHYSICAL
    assert len(warnings) == 1
