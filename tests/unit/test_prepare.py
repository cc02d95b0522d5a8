"""PrepareData: TLC files in, label-first splits and an accounting of every row out."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from model.errors import DataFileError
from model.prepare import DROP_REASONS, prepare, trips_table
from model.schema import COLUMNS, SPLIT_FRACTIONS
from model.synth import write_trips
from safe_deploy.cli import main
from tests.support import (
    FEBRUARY_HEAD,
    JANUARY_SAMPLE,
    SPLIT_HEADER,
    TRIP_HEADER,
    all_kept_rows,
    canonical,
    read_split,
    write_trip_csv,
)

SPLIT_FILES = ("train.csv", "validation.csv", "test.csv", "baseline.csv")
NO_DROPS = dict.fromkeys(DROP_REASONS, 0)

# The table of the original walkthrough: total_amount, duration_minutes, passenger_count,
# trip_distance for the first five rows of February 2018.
WALKTHROUGH = [
    (23.0, 0.05, 1.0, 0.0),
    (9.68, 7.11667, 5.0, 1.6),
    (35.76, 22.81667, 1.0, 9.6),
    (5.8, 3.16667, 1.0, 0.73),
    (9.3, 6.63333, 2.0, 1.87),
]


def expected_accounting(frame: pd.DataFrame) -> tuple[pd.DataFrame, dict[str, int]]:
    """DESIGN.md §3's rules applied to an in-memory trip frame, independently of model.prepare."""
    pickup = frame["lpep_pickup_datetime"].to_numpy(dtype="datetime64[us]")
    dropoff = frame["lpep_dropoff_datetime"].to_numpy(dtype="datetime64[us]")
    seconds = (dropoff - pickup).astype("timedelta64[us]").astype("float64") / 1e6
    columns = {
        "total_amount": frame["total_amount"].to_numpy(dtype="float64", na_value=np.nan),
        "duration_minutes": np.round(seconds / 60.0, 5),
        "passenger_count": frame["passenger_count"].to_numpy(dtype="float64", na_value=np.nan),
        "trip_distance": frame["trip_distance"].to_numpy(dtype="float64", na_value=np.nan),
    }
    total, duration = columns["total_amount"], columns["duration_minutes"]
    passengers, distance = columns["passenger_count"], columns["trip_distance"]
    with np.errstate(invalid="ignore"):
        failures = {
            "missing_value": np.isnan(np.column_stack(list(columns.values()))).any(axis=1),
            "total_amount_out_of_range": ~((total > 0) & (total < 200)),
            "duration_out_of_range": ~((duration > 0) & (duration < 120)),
            "trip_distance_out_of_range": ~((distance > 0) & (distance < 121)),
            "passenger_count_not_positive": ~(passengers > 0),
        }
    remaining = np.ones(len(frame), dtype=bool)
    dropped = dict(NO_DROPS)
    for reason, failed in failures.items():
        dropped[reason] = int((remaining & failed).sum())
        remaining &= ~failed
    kept = pd.DataFrame({name: values[remaining] for name, values in columns.items()})
    return canonical(kept), dropped


# --- golden rows of the real February 2018 head --------------------------------------------


def test_first_five_february_rows_give_the_walkthrough_table() -> None:
    table = trips_table(FEBRUARY_HEAD)

    assert list(table.columns) == list(COLUMNS)
    rows = [tuple(row) for row in table.head(5).itertuples(index=False)]
    assert rows == [pytest.approx(expected, abs=1e-9) for expected in WALKTHROUGH]


def test_cut_last_row_is_counted_as_malformed_and_every_row_accounted(tmp_path: Path) -> None:
    summary = prepare([FEBRUARY_HEAD], tmp_path)

    # 9 data lines: 8 complete (the first has distance 0) and the one cut mid-row.
    expected = {**NO_DROPS, "malformed_row": 1, "trip_distance_out_of_range": 1}
    assert summary.dropped == expected
    assert (summary.rows_read, summary.rows_kept) == (9, 7)
    assert summary.rows_read == summary.rows_kept + sum(summary.dropped.values())
    on_disk = json.loads((tmp_path / "summary.json").read_text())
    assert on_disk["rows_read"] == 9
    assert on_disk["rows_kept"] == 7
    assert on_disk["dropped"] == expected
    assert sum(on_disk["splits"].values()) == 7
    assert on_disk["sources"][0]["malformed_rows"] == 1


def test_february_kept_rows_are_the_parsed_rows_that_pass_the_filters(tmp_path: Path) -> None:
    prepare([FEBRUARY_HEAD], tmp_path)

    table = trips_table(FEBRUARY_HEAD)
    assert len(table) == 8  # the cut row is not a trip
    expected = canonical(table[table["trip_distance"] > 0])
    pd.testing.assert_frame_equal(all_kept_rows(tmp_path), expected)


def test_several_sources_are_accounted_together(tmp_path: Path) -> None:
    january = prepare([JANUARY_SAMPLE], tmp_path / "january")
    february = prepare([FEBRUARY_HEAD], tmp_path / "february")

    both = prepare([JANUARY_SAMPLE, FEBRUARY_HEAD], tmp_path / "both")

    assert both.rows_read == january.rows_read + february.rows_read
    assert both.rows_kept == january.rows_kept + february.rows_kept
    assert both.dropped == {
        reason: january.dropped[reason] + february.dropped[reason] for reason in DROP_REASONS
    }
    assert [s.path for s in both.sources] == [str(JANUARY_SAMPLE), str(FEBRUARY_HEAD)]


# --- synthetic months: formats, prefixes, split ---------------------------------------------


def test_kept_rows_and_drop_counts_follow_the_design_rules(
    small_month: pd.DataFrame, small_month_csv: Path, tmp_path: Path
) -> None:
    summary = prepare([small_month_csv], tmp_path)

    expected_rows, expected_dropped = expected_accounting(small_month)
    assert summary.dropped == expected_dropped
    assert summary.rows_read == len(small_month)
    assert sum(expected_dropped.values()) > 0  # the generator's bad rows are really exercised
    pd.testing.assert_frame_equal(all_kept_rows(tmp_path), expected_rows)


def test_csv_and_parquet_of_the_same_rows_give_identical_files(
    small_month: pd.DataFrame, small_month_csv: Path, tmp_path: Path
) -> None:
    parquet = tmp_path / "green_tripdata_2018-02.parquet"
    write_trips(small_month, parquet)

    from_csv = prepare([small_month_csv], tmp_path / "csv")
    from_parquet = prepare([parquet], tmp_path / "parquet")

    assert from_parquet.sources[0].format == "parquet"
    assert from_csv.sources[0].format == "csv"
    assert from_csv.dropped == from_parquet.dropped
    for name in SPLIT_FILES:
        assert (tmp_path / "csv" / name).read_bytes() == (tmp_path / "parquet" / name).read_bytes()


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_yellow_columns_give_the_same_splits_as_green(
    small_month: pd.DataFrame, small_month_csv: Path, tmp_path: Path, suffix: str
) -> None:
    yellow = small_month.rename(
        columns={
            "lpep_pickup_datetime": "tpep_pickup_datetime",
            "lpep_dropoff_datetime": "tpep_dropoff_datetime",
        }
    )
    yellow_file = tmp_path / f"yellow_tripdata_2018-02{suffix}"
    write_trips(yellow, yellow_file)

    green = prepare([small_month_csv], tmp_path / "green")
    from_yellow = prepare([yellow_file], tmp_path / "yellow")

    assert green.sources[0].taxi == "green"
    assert from_yellow.sources[0].taxi == "yellow"
    assert from_yellow.dropped == green.dropped
    for name in SPLIT_FILES:
        assert (tmp_path / "yellow" / name).read_bytes() == (tmp_path / "green" / name).read_bytes()


def test_split_is_deterministic_and_follows_the_seed(small_month_csv: Path, tmp_path: Path) -> None:
    prepare([small_month_csv], tmp_path / "first")
    prepare([small_month_csv], tmp_path / "second")
    prepare([small_month_csv], tmp_path / "other-seed", seed=2)

    for name in SPLIT_FILES:
        assert (tmp_path / "first" / name).read_bytes() == (tmp_path / "second" / name).read_bytes()
    first_train = (tmp_path / "first" / "train.csv").read_bytes()
    assert (tmp_path / "other-seed" / "train.csv").read_bytes() != first_train
    # Another seed deals the same trips differently; it does not change which trips are kept.
    pd.testing.assert_frame_equal(
        all_kept_rows(tmp_path / "other-seed"), all_kept_rows(tmp_path / "first")
    )


def test_split_is_about_80_15_5_and_matches_the_summary(
    small_month_csv: Path, tmp_path: Path
) -> None:
    summary = prepare([small_month_csv], tmp_path)

    sizes = {name: len(read_split(tmp_path, name)) for name in ("train", "validation", "test")}
    assert sizes == summary.splits
    assert sum(sizes.values()) == summary.rows_kept
    kept = summary.rows_kept
    # Each row's split is drawn from a hash of its values, so each size is a binomial draw: within
    # four standard deviations of its fraction (about 2.3, 2.0 and 1.2 points on these rows).
    for name, fraction in zip(("train", "validation", "test"), SPLIT_FRACTIONS, strict=True):
        spread = 4 * math.sqrt(fraction * (1 - fraction) / kept)
        assert sizes[name] / kept == pytest.approx(fraction, abs=spread), name


def test_channels_are_headerless_label_first_and_test_baseline_have_the_header(
    small_month_csv: Path, tmp_path: Path
) -> None:
    prepare([small_month_csv], tmp_path)

    for name in ("train.csv", "validation.csv"):
        first = (tmp_path / name).read_text().splitlines()[0].split(",")
        assert len(first) == 4
        assert all(np.isfinite(float(value)) for value in first), f"{name} has a header"
    for name in ("test.csv", "baseline.csv"):
        assert (tmp_path / name).read_text().splitlines()[0] == SPLIT_HEADER
    # The baseline describes what the model was trained on: the train rows, in order.
    pd.testing.assert_frame_equal(read_split(tmp_path, "baseline"), read_split(tmp_path, "train"))


# --- drop reasons -----------------------------------------------------------------------------

GOOD = "2,2018-02-01 00:00:00,2018-02-01 00:10:00,1,2.0,12.5"


def test_each_drop_reason_is_counted_exactly(tmp_path: Path) -> None:
    rows = [
        GOOD,
        # kept: just inside every exclusive bound
        "2,2018-02-01 00:00:00,2018-02-01 01:59:59,1,120.99,199.99",
        "2,2018-02-01 00:00:00,2018-02-01 00:00:01,1,0.01,0.01",
        # missing_value: passenger_count, then pickup time
        "2,2018-02-01 00:00:00,2018-02-01 00:10:00,,2.0,12.5",
        "2,,2018-02-01 00:10:00,1,2.0,12.5",
        # unparsable_value
        "2,2018-02-01 00:00:00,2018-02-01 00:10:00,1,abc,12.5",
        # total_amount_out_of_range: 0 and 200 are outside (0, 200)
        "2,2018-02-01 00:00:00,2018-02-01 00:10:00,1,2.0,0",
        "2,2018-02-01 00:00:00,2018-02-01 00:10:00,1,2.0,200",
        "2,2018-02-01 00:00:00,2018-02-01 00:10:00,1,2.0,-12.5",
        # duration_out_of_range: 0 min, exactly 120 min, backwards
        "2,2018-02-01 00:00:00,2018-02-01 00:00:00,1,2.0,12.5",
        "2,2018-02-01 00:00:00,2018-02-01 02:00:00,1,2.0,12.5",
        "2,2018-02-01 00:10:00,2018-02-01 00:00:00,1,2.0,12.5",
        # trip_distance_out_of_range: 0 and 121
        "2,2018-02-01 00:00:00,2018-02-01 00:10:00,1,0,12.5",
        "2,2018-02-01 00:00:00,2018-02-01 00:10:00,1,121,12.5",
        # passenger_count_not_positive
        "2,2018-02-01 00:00:00,2018-02-01 00:10:00,0,2.0,12.5",
        # malformed_row: too few fields (a download cut mid-row)
        "2,2018-02-01 00:00:00,2018-02",
    ]
    source = write_trip_csv(tmp_path / "reasons.csv", rows)

    summary = prepare([source], tmp_path / "out")

    assert summary.dropped == {
        "malformed_row": 1,
        "unparsable_value": 1,
        "missing_value": 2,
        "total_amount_out_of_range": 3,
        "duration_out_of_range": 3,
        "trip_distance_out_of_range": 2,
        "passenger_count_not_positive": 1,
    }
    assert summary.rows_read == len(rows)
    assert summary.rows_kept == 3


@pytest.mark.parametrize(
    "timestamp",
    ["2018-02-01 00:39:38", "02/01/2018 12:39:38 AM"],
    ids=["iso", "us-12-hour"],
)
def test_one_unparsable_value_drops_only_its_own_row(tmp_path: Path, timestamp: str) -> None:
    # Both timestamp layouts are read (the second is how TLC's older exports write them); one
    # bad number elsewhere in the file must not change how every other row's times are read.
    dropoff = timestamp.replace(":39:", ":49:")
    good = [f"2,{timestamp},{dropoff},1,2.0,12.5"] * 3
    clean = write_trip_csv(tmp_path / "clean.csv", good)
    spoiled = write_trip_csv(tmp_path / "spoiled.csv", [*good, f"2,{timestamp},{dropoff},1,abc,5"])

    assert prepare([clean], tmp_path / "clean-out").rows_kept == 3
    summary = prepare([spoiled], tmp_path / "spoiled-out")

    assert summary.dropped == {**NO_DROPS, "unparsable_value": 1}
    assert summary.rows_kept == 3


def test_a_byte_that_is_not_utf8_in_one_row_is_a_bad_row_not_a_crash(tmp_path: Path) -> None:
    source = tmp_path / "latin1.csv"
    good = (GOOD + "\n").encode() * 3
    bad = b"2,2018-02-01 00:00:00,2018-02-01 00:10:00,1,2\xe9,12.5\n"
    source.write_bytes((TRIP_HEADER + "\n\n").encode() + good + bad)

    summary = prepare([source], tmp_path / "out")

    assert summary.dropped == {**NO_DROPS, "unparsable_value": 1}
    assert summary.rows_kept == 3


# --- files that are not trip data -------------------------------------------------------------


def _one_line_naming(message: str, path: Path) -> None:
    assert "\n" not in message
    assert message.isprintable(), f"control characters in {message!r}"
    assert str(path) in message


@pytest.mark.parametrize(
    ("header", "missing"),
    [
        (
            "name,city,score",
            [
                "pickup_datetime",
                "dropoff_datetime",
                "passenger_count",
                "trip_distance",
                "total_amount",
            ],
        ),
        (
            "VendorID,lpep_pickup_datetime,passenger_count,fare_amount",
            ["dropoff_datetime", "trip_distance", "total_amount"],
        ),
    ],
    ids=["other-columns", "some-columns"],
)
def test_csv_without_trip_columns_names_the_file_and_what_is_missing(
    tmp_path: Path, header: str, missing: list[str]
) -> None:
    source = tmp_path / "not-trips.csv"
    source.write_text(header + "\n" + ",".join(["1"] * len(header.split(","))) + "\n")

    with pytest.raises(DataFileError) as caught:
        prepare([source], tmp_path / "out")

    message = str(caught.value)
    _one_line_naming(message, source)
    for column in missing:
        assert column in message
    present = [c for c in header.split(",") if c in ("passenger_count", "lpep_pickup_datetime")]
    for column in present:
        assert column not in message
    assert not (tmp_path / "out" / "train.csv").exists()


def test_parquet_without_trip_columns_names_the_file_and_what_is_missing(tmp_path: Path) -> None:
    source = tmp_path / "scores.parquet"
    pd.DataFrame({"name": ["a"], "score": [1.0]}).to_parquet(source)

    with pytest.raises(DataFileError) as caught:
        prepare([source], tmp_path / "out")

    message = str(caught.value)
    _one_line_naming(message, source)
    assert "pickup_datetime" in message
    assert "total_amount" in message


@pytest.mark.parametrize(
    "content",
    [
        np.random.default_rng(0).bytes(4096),
        b"PAR1" + bytes(100),
        b"",
    ],
    ids=["random-bytes", "broken-parquet", "empty"],
)
def test_unreadable_file_gives_a_one_line_data_file_error(tmp_path: Path, content: bytes) -> None:
    source = tmp_path / "download.bin"
    source.write_bytes(content)

    with pytest.raises(DataFileError) as caught:
        prepare([source], tmp_path / "out")

    message = str(caught.value)
    _one_line_naming(message, source)
    assert "not a readable" in message


def test_cli_reports_a_file_that_is_not_trip_data_in_one_line(tmp_path: Path) -> None:
    source = tmp_path / "scores.csv"
    source.write_text("name,city,score\nann,paris,3\n")

    result = CliRunner().invoke(main, ["data", "prepare", str(source), "--out", str(tmp_path)])

    assert result.exit_code == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"error: {source}: ")
    assert "missing column(s)" in lines[0]
    assert "total_amount" in lines[0]
    assert "Traceback" not in result.output


def test_cli_reports_a_binary_file_in_one_line_without_traceback(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Outside pytest, exceptions Python cannot raise (here: inside pyarrow's row callback) are
    # printed to stderr; put the interpreter's own hook back so the test sees what a user sees.
    monkeypatch.setattr(sys, "unraisablehook", sys.__unraisablehook__)
    source = tmp_path / "download.bin"
    source.write_bytes(np.random.default_rng(0).bytes(4096))

    result = CliRunner().invoke(main, ["data", "prepare", str(source), "--out", str(tmp_path)])

    assert result.exit_code == 1
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"error: {source}: ")
