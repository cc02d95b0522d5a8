"""drift_check: each Model Monitor result becomes the drift alarm's metric, and a message when
something drifted."""

from __future__ import annotations

import json
from typing import Any

import pytest
from botocore.exceptions import ClientError

from tests.handlers.support import (
    Cloud,
    FakeLambdaContext,
    Loader,
    alarm_metric,
    emf_metrics,
    load_event,
)
from tests.support import validate

ENDPOINT = "fare-9b5c86e7fd15-prod"

# constraint_violations.json as Model Monitor writes it after an hourly run on drifted traffic
DRIFTED = {
    "violations": [
        {
            "feature_name": "trip_distance",
            "constraint_check_type": "baseline_drift_check",
            "description": "Baseline drift distance: 0.3127 exceeds threshold: 0.1",
        },
        {
            "feature_name": "duration_minutes",
            "constraint_check_type": "baseline_drift_check",
            "description": "Baseline drift distance: 0.1841 exceeds threshold: 0.1",
        },
        {
            "feature_name": "passenger_count",
            "constraint_check_type": "data_type_check",
            "description": (
                "Data type match requirement is not met. Expected data type: Integral, "
                "Expected match: 100.0%. Observed: Only 97.50% of data is Integral."
            ),
        },
    ]
}


def monitoring_result(cloud: Cloud, document: dict[str, Any]) -> dict[str, Any]:
    """Write the result where the schedule writes it; the event S3 sends for it."""
    validate(document, "constraint_violations")
    event = load_event("drift_check")
    bucket = cloud.ref("ArtifactBucket")
    event["resources"] = [f"arn:aws:s3:::{bucket}"]
    event["detail"]["bucket"]["name"] = bucket
    cloud.s3.put_object(
        Bucket=bucket, Key=event["detail"]["object"]["key"], Body=json.dumps(document).encode()
    )
    return event


def test_drift_is_counted_for_the_alarm_and_told_to_people(
    cloud: Cloud,
    load_handler: Loader,
    context: FakeLambdaContext,
    capsys: pytest.CaptureFixture[str],
) -> None:
    inbox = cloud.subscribe_queue(cloud.ref("NotificationTopic"))
    event = monitoring_result(cloud, DRIFTED)
    app = load_handler("drift_check")

    result = app.lambda_handler(event, context)

    assert result == {
        "endpoint": ENDPOINT,
        "violations": 3,
        "drifted": ["duration_minutes", "trip_distance"],
    }
    (notification,) = cloud.published(inbox)
    assert notification["Subject"] == f"Drift on {ENDPOINT}"
    message = notification["Message"]
    assert message.startswith(
        f"3 violation(s) for {ENDPOINT} ({event['detail']['object']['key']}):"
    )
    assert "- trip_distance: baseline_drift_check: Baseline drift distance: 0.3127" in message
    assert "- passenger_count: data_type_check: Data type match requirement is not met." in message

    namespace, name, dimensions = alarm_metric("DriftAlarm")
    (metric,) = [m for m in emf_metrics(capsys.readouterr().out) if m.name == name]
    assert (metric.namespace, metric.dimensions, metric.value) == (namespace, dimensions, 3.0)
    assert metric.metadata["distance_trip_distance"] == pytest.approx(0.3127)
    assert metric.metadata["distance_duration_minutes"] == pytest.approx(0.1841)


def test_a_clean_result_is_a_zero_for_the_alarm_and_no_message(
    cloud: Cloud,
    load_handler: Loader,
    context: FakeLambdaContext,
    capsys: pytest.CaptureFixture[str],
) -> None:
    inbox = cloud.subscribe_queue(cloud.ref("NotificationTopic"))
    app = load_handler("drift_check")

    result = app.lambda_handler(monitoring_result(cloud, {"violations": []}), context)

    assert result == {"endpoint": ENDPOINT, "violations": 0, "drifted": []}
    assert cloud.published(inbox) == []
    namespace, name, dimensions = alarm_metric("DriftAlarm")
    (metric,) = [m for m in emf_metrics(capsys.readouterr().out) if m.name == name]
    assert (metric.namespace, metric.dimensions, metric.value) == (namespace, dimensions, 0.0)


def test_a_result_that_is_gone_fails_the_invocation(
    cloud: Cloud, load_handler: Loader, context: FakeLambdaContext
) -> None:
    inbox = cloud.subscribe_queue(cloud.ref("NotificationTopic"))
    event = monitoring_result(cloud, {"violations": []})
    cloud.s3.delete_object(Bucket=cloud.ref("ArtifactBucket"), Key=event["detail"]["object"]["key"])
    app = load_handler("drift_check")

    with pytest.raises(ClientError, match="NoSuchKey"):
        app.lambda_handler(event, context)
    assert cloud.published(inbox) == []
