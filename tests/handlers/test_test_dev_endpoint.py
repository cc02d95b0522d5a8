"""test_dev_endpoint: RMSE of the dev endpoint on the held-out split, the plot and the report."""

from __future__ import annotations

import json
import math
import random

import pytest
from botocore.exceptions import ClientError
from pipeline_common.layout import ModelResources

from tests.handlers.support import (
    Cloud,
    Endpoints,
    FakeLambdaContext,
    Loader,
    emf_metrics,
    fare,
    load_event,
)

EVENT = load_event("test_dev_endpoint")
RESOURCES = ModelResources(EVENT["model_id"])


def write_test_split(
    cloud: Cloud, rows: int, name: str = "test.csv", seed: int = 3
) -> list[tuple[float, list[float]]]:
    """``test.csv`` as PrepareData writes it (header, label first): fares that are the stand-in
    model's answer plus noise, so the RMSE is known. ``name``: one host's ``test/<host>.csv``
    of a PrepareData job on several instances."""
    rng = random.Random(seed)
    trips = []
    for _ in range(rows):
        features = [
            round(rng.uniform(2, 60), 2),
            float(rng.randint(1, 4)),
            round(rng.uniform(0.3, 20), 2),
        ]
        trips.append((round(fare(features) + rng.gauss(0, 2.5), 2), features))
    text = "total_amount,duration_minutes,passenger_count,trip_distance\n" + "".join(
        f"{label},{features[0]},{int(features[1])},{features[2]}\n" for label, features in trips
    )
    cloud.s3.put_object(
        Bucket=cloud.ref("ArtifactBucket"),
        Key=f"{RESOURCES.prepared_prefix}{name}",
        Body=text.encode(),
    )
    return trips


def test_scores_the_test_split_in_batches_and_writes_plot_and_report(
    cloud: Cloud,
    endpoints: Endpoints,
    load_handler: Loader,
    context: FakeLambdaContext,
    capsys: pytest.CaptureFixture[str],
) -> None:
    trips = write_test_split(cloud, 1200)
    endpoints.serve(EVENT["endpoint_name"])
    app = load_handler("test_dev_endpoint", BATCH_ROWS="500")

    report = app.lambda_handler(EVENT, context)

    errors = [fare(features) - label for label, features in trips]
    expected_rmse = math.sqrt(sum(e * e for e in errors) / len(errors))
    assert report["rows"] == 1200
    assert report["rmse"] == pytest.approx(expected_rmse, rel=1e-6)
    assert report["mae"] == pytest.approx(sum(abs(e) for e in errors) / len(errors), rel=1e-6)
    assert report["endpoint"] == EVENT["endpoint_name"]
    calls = endpoints.to(EVENT["endpoint_name"])
    assert [len(c.rows) for c in calls] == [500, 500, 200]
    assert [c.inference_id for c in calls] == [
        f"devtest-{EVENT['model_id']}-{start}" for start in (0, 500, 1000)
    ]
    assert {c.content_type for c in calls} == {"text/csv"}

    bucket = cloud.ref("ArtifactBucket")
    plot = cloud.s3.get_object(Bucket=bucket, Key=report["plot_key"])
    assert report["plot_key"] == f"{RESOURCES.evaluation_prefix}actual_vs_predicted.png"
    assert plot["ContentType"] == "image/png"
    assert plot["Body"].read().startswith(b"\x89PNG\r\n\x1a\n")
    stored = json.loads(cloud.s3.get_object(Bucket=bucket, Key=report["report_key"])["Body"].read())
    assert stored == report
    (metric,) = [m for m in emf_metrics(capsys.readouterr().out) if m.name == "DevTestRmse"]
    assert metric.value == pytest.approx(expected_rmse)


def test_scores_at_most_the_configured_number_of_rows(
    cloud: Cloud, endpoints: Endpoints, load_handler: Loader, context: FakeLambdaContext
) -> None:
    trips = write_test_split(cloud, 300)
    endpoints.serve(EVENT["endpoint_name"])
    app = load_handler("test_dev_endpoint", MAX_TEST_ROWS="120")

    report = app.lambda_handler(EVENT, context)

    assert report["rows"] == 120
    scored = [row for call in endpoints.calls for row in call.rows]
    assert len(scored) == 120
    # Spread over the whole split (it keeps the month's order), not its first 120 rows.
    positions = {tuple(features): index for index, (_, features) in enumerate(trips)}
    taken = [positions[tuple(row)] for row in scored]
    assert taken == sorted(taken)
    assert taken[0] == 0
    assert taken[-1] >= 295


def test_scores_every_hosts_test_split_when_several_instances_prepared(
    cloud: Cloud, endpoints: Endpoints, load_handler: Loader, context: FakeLambdaContext
) -> None:
    hosts = [
        write_test_split(cloud, 100, f"test/algo-{index}.csv", seed=index) for index in (1, 2, 3)
    ]
    cloud.s3.put_object(  # another run's key that shares the prefix's letters: not the split
        Bucket=cloud.ref("ArtifactBucket"),
        Key=f"{RESOURCES.prepared_prefix}test-notes.txt",
        Body=b"x",
    )
    endpoints.serve(EVENT["endpoint_name"])
    app = load_handler("test_dev_endpoint", MAX_TEST_ROWS="120")

    report = app.lambda_handler(EVENT, context)

    assert report["rows"] == 120
    trips = [trip for host in hosts for trip in host]  # the hosts' files one after another
    positions = {tuple(features): index for index, (_, features) in enumerate(trips)}
    scored = [row for call in endpoints.calls for row in call.rows]
    taken = [positions[tuple(row)] for row in scored]
    assert taken == sorted(taken)
    assert taken[0] == 0
    assert taken[-1] >= 295  # evenly spaced over all three, not the first host's alone
    assert {index // 100 for index in taken} == {0, 1, 2}


def test_an_endpoint_that_answers_the_wrong_number_of_predictions_fails_the_run(
    cloud: Cloud, endpoints: Endpoints, load_handler: Loader, context: FakeLambdaContext
) -> None:
    write_test_split(cloud, 50)
    endpoints.answer(EVENT["endpoint_name"], lambda rows: "\n".join("10.0" for _ in rows[1:]))
    app = load_handler("test_dev_endpoint")

    with pytest.raises(ValueError, match=r"answered 49 predictions for 50 rows"):
        app.lambda_handler(EVENT, context)
    listed = cloud.s3.list_objects_v2(
        Bucket=cloud.ref("ArtifactBucket"), Prefix=RESOURCES.evaluation_prefix
    )
    assert listed["KeyCount"] == 0  # no report of a test that did not happen


def test_a_failing_endpoint_fails_the_run(
    cloud: Cloud, endpoints: Endpoints, load_handler: Loader, context: FakeLambdaContext
) -> None:
    write_test_split(cloud, 10)
    endpoints.fail(EVENT["endpoint_name"])
    app = load_handler("test_dev_endpoint")

    with pytest.raises(ClientError, match="ModelError"):
        app.lambda_handler(EVENT, context)


def test_a_missing_test_split_fails_the_run(
    cloud: Cloud, endpoints: Endpoints, load_handler: Loader, context: FakeLambdaContext
) -> None:
    endpoints.serve(EVENT["endpoint_name"])
    app = load_handler("test_dev_endpoint")

    with pytest.raises(ClientError, match="NoSuchKey"):
        app.lambda_handler(EVENT, context)
    assert endpoints.calls == []
