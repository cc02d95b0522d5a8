"""GetMetricStatistics as CloudWatch answers it: each combination of dimensions is a metric of
its own, so a query gets the points published with exactly the dimensions it names (API
Reference, GetMetricStatistics, ``Dimensions``). moto summed every metric that had the ones
asked for, and every metric of the name when none were: a dashboard or a script that asked for
too few dimensions read numbers locally and nothing on AWS.

moto runs in-process with the local cloud's fixes, as the local cloud runs it.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws

from safe_deploy.localcloud import fixes, patching
from tests.support import metric_sum, offline_aws

FUNCTION = "fares-Predict"
ALIAS = {"FunctionName": FUNCTION, "Resource": f"{FUNCTION}:live"}
VERSION = {**ALIAS, "ExecutedVersion": "7"}
# What Lambda publishes for 5 invocations through an alias (the local cloud's own sets).
PUBLISHED = [({}, 5.0), ({"FunctionName": FUNCTION}, 5.0), (ALIAS, 5.0), (VERSION, 5.0)]


@pytest.fixture(scope="module")
def cloudwatch() -> Iterator[Any]:
    with pytest.MonkeyPatch.context() as monkeypatch:
        offline_aws(monkeypatch)
        with mock_aws():
            fixes.install()
            try:
                client = boto3.client("cloudwatch", region_name="us-east-1")
                for dimensions, value in PUBLISHED:
                    client.put_metric_data(
                        Namespace="AWS/Lambda",
                        MetricData=[
                            {
                                "MetricName": "Invocations",
                                "Dimensions": [
                                    {"Name": n, "Value": v} for n, v in dimensions.items()
                                ],
                                "Value": value,
                                "Unit": "Count",
                            }
                        ],
                    )
                yield client
            finally:
                patching.restore_all()


def total(cloudwatch: Any, **dimensions: str) -> float:
    return metric_sum(cloudwatch, "AWS/Lambda", "Invocations", list(dimensions.items()))


def test_each_published_combination_reads_its_own_points(cloudwatch: Any) -> None:
    for dimensions, value in PUBLISHED:
        assert total(cloudwatch, **dimensions) == value, dimensions


def test_a_combination_never_published_has_no_points(cloudwatch: Any) -> None:
    assert total(cloudwatch, ExecutedVersion="7") == 0  # a part of VERSION's set
    assert total(cloudwatch, Resource=f"{FUNCTION}:live") == 0
    assert total(cloudwatch, **VERSION, Extra="x") == 0
    assert total(cloudwatch, **{**VERSION, "ExecutedVersion": "8"}) == 0


def test_the_order_of_the_dimensions_asked_for_does_not_matter(cloudwatch: Any) -> None:
    asked = list(reversed(VERSION.items()))
    assert metric_sum(cloudwatch, "AWS/Lambda", "Invocations", asked) == 5.0
