"""Monitoring captured traffic against the baseline: drift found where it is, and only there."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import orjson
import pandas as pd
import pytest
from click.testing import CliRunner
from pipeline_common.capture import capture_record

from model.monitor import GROUND_TRUTH_FEATURE, MonitoringReport, monitor
from model.prepare import prepare
from model.schema import COLUMNS, FEATURES, LABEL
from model.serve import FareModel
from model.synth import DRIFT_KINDS, synth_trips, write_trips
from safe_deploy.cli import main
from safe_deploy.offline import serve_and_capture
from tests.support import Trained, read_json, read_split, validate

TRAFFIC_ROWS = 2_000
TRAFFIC_SEEDS: dict[str | None, int] = {
    None: 101,
    **{k: 102 + i for i, k in enumerate(DRIFT_KINDS)},
}

FLAGGED = {
    "longer-trips": {"trip_distance", "duration_minutes"},
    "more-passengers": {"passenger_count"},
    "fare-inflation": {GROUND_TRUTH_FEATURE},
}
UNCHANGED = {
    "longer-trips": {"passenger_count"},
    "more-passengers": {"trip_distance", "duration_minutes"},
    "fare-inflation": {"trip_distance", "duration_minutes", "passenger_count", LABEL},
}
DESCRIPTION = re.compile(r"^Baseline drift distance: (\S+) exceeds threshold: 0\.1$")
WHEN = datetime(2018, 3, 1, 12, 0, tzinfo=UTC)


@dataclass(frozen=True)
class Monitored:
    report: MonitoringReport
    out_dir: Path
    trips: int


Monitor = Callable[[str | None], Monitored]


@pytest.fixture(scope="module")
def monitored(
    fare_model: FareModel, baseline_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Monitor:
    """Traffic of one drift kind (None: undrifted), prepared, served, captured and monitored."""
    done: dict[str | None, Monitored] = {}

    def run(drift: str | None) -> Monitored:
        if drift in done:
            return done[drift]
        work = tmp_path_factory.mktemp(drift or "undrifted")
        raw = work / "trips.csv"
        trips = synth_trips(TRAFFIC_ROWS, seed=TRAFFIC_SEEDS[drift], drift=drift, month="2018-03")
        write_trips(trips, raw)
        prepare([raw], work / "prepared")
        frame = pd.concat(
            [read_split(work / "prepared", n) for n in ("train", "validation", "test")],
            ignore_index=True,
        )
        capture, truth = work / "capture" / "capture.jsonl", work / "truth" / "truth.jsonl"
        serve_and_capture(
            fare_model, frame[list(FEATURES)].to_numpy(), capture, frame[LABEL].to_numpy(), truth
        )
        report = monitor(baseline_dir, [capture], work / "out", [truth])
        done[drift] = Monitored(report, work / "out", len(frame))
        return done[drift]

    return run


@pytest.mark.parametrize("drift", list(DRIFT_KINDS))
def test_each_drift_kind_is_flagged_on_its_features(monitored: Monitor, drift: str) -> None:
    result = monitored(drift)

    flagged = set(result.report.drifted_features)
    assert FLAGGED[drift] <= flagged
    assert not (UNCHANGED[drift] & flagged)


@pytest.mark.parametrize("drift", list(DRIFT_KINDS))
def test_drift_violations_state_distance_and_threshold(monitored: Monitor, drift: str) -> None:
    result = monitored(drift)

    on_disk = read_json(result.out_dir / "constraint_violations.json")
    validate(on_disk, "constraint_violations")
    assert on_disk["violations"] == result.report.violations
    drift_checks = [
        v for v in on_disk["violations"] if v["constraint_check_type"] == "baseline_drift_check"
    ]
    assert drift_checks
    for violation in drift_checks:
        match = DESCRIPTION.match(violation["description"])
        assert match, violation["description"]
        distance = float(match.group(1))
        assert distance > 0.1
        assert distance == result.report.distances[violation["feature_name"]]
    # Only drift here: the traffic is complete and of the baseline's types.
    assert {v["constraint_check_type"] for v in on_disk["violations"]} == {"baseline_drift_check"}


def test_fresh_undrifted_sample_of_the_same_size_has_no_violations(
    monitored: Monitor, trained: Trained
) -> None:
    undrifted = monitored(None)
    drifted = monitored("longer-trips")

    assert undrifted.trips == pytest.approx(drifted.trips, rel=0.05)
    assert undrifted.report.rows == undrifted.trips
    assert undrifted.report.violations == []
    assert read_json(undrifted.out_dir / "constraint_violations.json") == {"violations": []}
    assert max(undrifted.report.distances.values()) < 0.1
    # Ground truth matched every request, and the model does as well as on validation.
    assert undrifted.report.ground_truth_rows == undrifted.trips
    validation_rmse = trained.report.final_metrics["validation:rmse"]
    assert undrifted.report.ground_truth_rmse == pytest.approx(validation_rmse, rel=0.25)


def test_fare_inflation_shows_in_model_quality(monitored: Monitor) -> None:
    undrifted = monitored(None).report
    inflated = monitored("fare-inflation").report

    assert undrifted.ground_truth_rmse is not None
    assert inflated.ground_truth_rmse is not None
    assert inflated.ground_truth_rmse > 1.5 * undrifted.ground_truth_rmse


@pytest.mark.parametrize("drift", [None, *DRIFT_KINDS])
def test_monitoring_statistics_validate_and_count_the_traffic(
    monitored: Monitor, drift: str | None
) -> None:
    result = monitored(drift)

    statistics = read_json(result.out_dir / "statistics.json")
    validate(statistics, "statistics")
    assert statistics["dataset"]["item_count"] == result.trips
    names = [f["name"] for f in statistics["features"]]
    assert names == [*COLUMNS, GROUND_TRUTH_FEATURE]
    report = read_json(result.out_dir / "monitoring_report.json")
    assert report["records"] == result.trips
    assert report["malformed"] == {}


# --- capture lines that are not what they should be ---------------------------------------


def _record(inputs: str, output: str, index: int) -> bytes:
    return orjson.dumps(
        capture_record(inputs, output, inference_time=WHEN, inference_id=f"r{index}")
    )


def test_malformed_capture_lines_are_counted_by_reason_and_never_fatal(
    baseline_dir: Path, tmp_path: Path
) -> None:
    good = [_record("12.0,1,2.5", "14.2", i) for i in range(3)]
    lines = [
        good[0],
        b"this is not JSON",
        b'{"captureData": {"endpointInput": {"data": "1,1,1"',  # cut mid-line
        b'{"hello": "world"}',
        b"[1, 2, 3]",
        good[1],
        _record("12.0,1", "14.2", 10),  # too few columns
        _record("12.0,1,2.5,7", "14.2", 11),  # too many columns
        _record("12.0,1,2.5\n8.0,2,1.5", "14.2", 12),  # two rows in, one answer out
        b"",
        good[2],
    ]
    capture = tmp_path / "capture.jsonl"
    capture.write_bytes(b"\n".join(lines) + b"\n")

    report = monitor(baseline_dir, [capture], tmp_path / "out")

    assert report.malformed == {
        "not_json": 2,
        "not_a_capture_record": 2,
        "too_few_columns": 1,
        "too_many_columns": 1,
        "input_output_row_mismatch": 1,
    }
    assert report.records == 10  # the empty line is not a record
    assert report.rows == 3
    assert read_json(tmp_path / "out" / "monitoring_report.json")["malformed"] == report.malformed
    validate(read_json(tmp_path / "out" / "constraint_violations.json"), "constraint_violations")

    result = CliRunner().invoke(
        main, ["monitor", "--baseline", str(baseline_dir), str(capture), "--out", str(tmp_path)]
    )
    assert result.exit_code == 0, result.output
    assert "skipped 2 malformed (not_json)" in result.stdout


def test_unparsable_values_in_capture_are_a_data_type_violation(
    baseline_dir: Path, tmp_path: Path
) -> None:
    capture = tmp_path / "capture.jsonl"
    capture.write_bytes(
        b"\n".join(
            [_record("12.0,1,2.5", "14.2", i) for i in range(5)]
            + [_record("12.0,one,2.5", "14.2", 9)]
        )
    )

    report = monitor(baseline_dir, [capture], tmp_path / "out")

    assert report.rows == 6
    checks = {(v["feature_name"], v["constraint_check_type"]) for v in report.violations}
    assert ("passenger_count", "data_type_check") in checks
    validate(read_json(tmp_path / "out" / "constraint_violations.json"), "constraint_violations")


def test_json_requests_in_capture_are_not_reported_as_wrong_types(
    baseline_dir: Path, fare_model: FareModel, tmp_path: Path
) -> None:
    # The endpoint accepts application/json (DESIGN.md §4) and captures it as it came.
    request = json.dumps({"instances": [[12.0, 1, 2.5]]})
    answer, content_type = fare_model.invoke(request, "application/json", "application/json")
    record = capture_record(
        request,
        answer.decode(),
        inference_time=WHEN,
        inference_id="json-1",
        input_content_type="application/json",
        output_content_type=content_type,
    )
    capture = tmp_path / "capture.jsonl"
    capture.write_bytes(orjson.dumps(record) + b"\n")

    report = monitor(baseline_dir, [capture], tmp_path / "out")

    # Either the JSON row is analysed, or the record is counted as one the monitor cannot read;
    # a well-formed request must never turn into "0% of data is Fractional".
    assert report.rows + sum(report.malformed.values()) == 1
    assert report.violations == [], report.violations


def test_unusual_capture_records_are_read_like_the_common_ones(
    baseline_dir: Path, tmp_path: Path
) -> None:
    # The common record (one CSV row in, one value out) takes a fast path; these take the other.
    def line(inputs: str, output: str, key: str | None, **options: str) -> bytes:
        event = None if key else "event-5"
        record = capture_record(
            inputs, output, inference_time=WHEN, inference_id=key, event_id=event, **options
        )
        return orjson.dumps(record)

    octets = {"input_content_type": "application/octet-stream"}  # captured BASE64-encoded
    broken = orjson.loads(line("12.0,1,2.5", "14.2", "r6", **octets))
    broken["captureData"]["endpointInput"]["data"] = "not base64!"
    lines = [
        line("12.0,1,2.5", "14.2", "r0"),
        line("12.0,1,2.5\n", "14.2\n", "r1"),
        line("12.0,1,2.5", "14.2", "r2", **octets),
        line("12.0,1,2.5\n8.0,2,1.5", "14.2,9.5", "r3"),  # two rows in one request
        line(
            json.dumps({"instances": [[12.0, 1, 2.5]]}),
            "14.2",
            "r4",
            input_content_type="application/json",
        ),
        line("12.0,1,2.5", "14.2", None),  # no inferenceId: ground truth names the eventId
        orjson.dumps(broken),
    ]
    capture, truth = tmp_path / "capture.jsonl", tmp_path / "truth.jsonl"
    capture.write_bytes(b"\n".join(lines) + b"\n")
    truth.write_bytes(
        b"\n".join(
            orjson.dumps({"groundTruthData": {"data": "15.0"}, "eventMetadata": {"eventId": key}})
            for key in ("r0", "r1", "r2", "r3", "r4", "event-5", "r6")
        )
    )

    report = monitor(baseline_dir, [capture], tmp_path / "out", [truth])

    assert report.records == 7
    assert report.malformed == {"not_a_capture_record": 1}
    assert report.rows == 7
    assert report.ground_truth_rows == 7
    statistics = {
        f["name"]: f["numerical_statistics"]
        for f in read_json(tmp_path / "out" / "statistics.json")["features"]
    }
    assert statistics[LABEL]["sum"] == pytest.approx(6 * 14.2 + 9.5)
    assert statistics["passenger_count"]["sum"] == pytest.approx(8.0)
    assert statistics["trip_distance"]["min"] == pytest.approx(1.5)


def test_a_quoted_value_hiding_a_comma_is_counted_not_fatal(
    tmp_path: Path, baseline_dir: Path
) -> None:
    from datetime import UTC, datetime

    import orjson
    from pipeline_common.capture import capture_record

    from model.monitor import monitor

    lines = [
        capture_record("10,1,2.5", "12.0", inference_time=datetime.now(UTC)),
        # three commas once merged with the answer, as a good row has; but a quoted field
        capture_record('"1,5",2', "9.0", inference_time=datetime.now(UTC)),
    ]
    capture = tmp_path / "capture.jsonl"
    capture.write_bytes(b"".join(orjson.dumps(line) + b"\n" for line in lines))
    report = monitor(baseline_dir, [capture], tmp_path / "out")
    assert report.records == 2
    assert report.rows == 2
    assert not report.malformed
    unparsable = [v for v in report.violations if v["constraint_check_type"] == "data_type_check"]
    assert {v["feature_name"] for v in unparsable} == {"duration_minutes", "passenger_count"}
