"""Synthetic trips: realistic shapes, deterministic, and drift kinds that change what they say."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from model.synth import DRIFT_KINDS, GREEN_2018_COLUMNS, synth_trips, write_trips

ROWS = 20_000


@pytest.fixture(scope="module")
def undrifted() -> pd.DataFrame:
    return synth_trips(ROWS, seed=11)


def _drifted(kind: str) -> pd.DataFrame:
    return synth_trips(ROWS, seed=11, drift=kind)  # same seed: the same trips, drifted


def _share_of_one_passenger(frame: pd.DataFrame) -> float:
    return float((frame["passenger_count"] == 1).mean())


def test_same_seed_same_rows_other_seed_other_rows() -> None:
    first = synth_trips(500, seed=3)
    pd.testing.assert_frame_equal(first, synth_trips(500, seed=3))
    assert not first["trip_distance"].equals(synth_trips(500, seed=4)["trip_distance"])


def test_rows_are_in_the_green_2018_layout(undrifted: pd.DataFrame) -> None:
    assert tuple(undrifted.columns) == GREEN_2018_COLUMNS
    assert len(undrifted) == ROWS
    pickup = undrifted["lpep_pickup_datetime"]
    assert pickup.min() >= pd.Timestamp("2018-02-01")
    assert pickup.max() < pd.Timestamp("2018-03-01")


def test_shapes_are_like_real_months(undrifted: pd.DataFrame) -> None:
    # Mostly one passenger.
    assert 0.75 < _share_of_one_passenger(undrifted) < 0.9
    # Distances right-skewed, with a long tail.
    distance = undrifted["trip_distance"]
    assert distance.mean() > 1.2 * distance.median()
    assert distance.quantile(0.99) > 5 * distance.median()
    # A few zero distances and zero passengers, as real files have; not many.
    assert 0.005 < (distance == 0).mean() < 0.03
    assert 0 < (undrifted["passenger_count"] == 0).sum() < 0.01 * ROWS
    # Durations mostly a few minutes to half an hour.
    minutes = (
        undrifted["lpep_dropoff_datetime"] - undrifted["lpep_pickup_datetime"]
    ).dt.total_seconds() / 60
    assert 5 < minutes.median() < 30
    # Fares grow with distance.
    fares = undrifted["total_amount"]
    assert np.corrcoef(distance, fares)[0, 1] > 0.8


def test_longer_trips_drift_lengthens_distances(undrifted: pd.DataFrame) -> None:
    drifted = _drifted("longer-trips")
    ratio = drifted["trip_distance"].mean() / undrifted["trip_distance"].mean()
    assert ratio > 1.5
    assert _share_of_one_passenger(drifted) == pytest.approx(
        _share_of_one_passenger(undrifted), abs=0.01
    )


def test_more_passengers_drift_shifts_riders_away_from_one(undrifted: pd.DataFrame) -> None:
    drifted = _drifted("more-passengers")
    assert _share_of_one_passenger(undrifted) - _share_of_one_passenger(drifted) > 0.3
    assert drifted["trip_distance"].median() == pytest.approx(
        undrifted["trip_distance"].median(), rel=0.05
    )


def test_fare_inflation_drift_raises_fares_for_similar_distances(
    undrifted: pd.DataFrame,
) -> None:
    drifted = _drifted("fare-inflation")

    def median_fare_for_2_to_3_miles(frame: pd.DataFrame) -> float:
        similar = frame["trip_distance"].between(2.0, 3.0)
        return float(frame.loc[similar, "total_amount"].median())

    assert median_fare_for_2_to_3_miles(drifted) > 1.2 * median_fare_for_2_to_3_miles(undrifted)
    assert drifted["trip_distance"].median() == pytest.approx(
        undrifted["trip_distance"].median(), rel=0.05
    )


def test_unknown_drift_kind_raises_and_names_the_choices() -> None:
    with pytest.raises(ValueError, match="unknown drift kind") as caught:
        synth_trips(10, drift="shorter-trips")
    for kind in DRIFT_KINDS:
        assert kind in str(caught.value)


def test_csv_has_the_empty_line_after_the_header_like_tlc_2018(tmp_path: Path) -> None:
    path = tmp_path / "trips.csv"
    write_trips(synth_trips(20, seed=0), path)

    lines = path.read_text().split("\n")
    assert lines[0] == ",".join(GREEN_2018_COLUMNS)
    assert lines[1] == ""
    assert len(lines[2].split(",")) == len(GREEN_2018_COLUMNS)
    assert len([line for line in lines[2:] if line]) == 20


def test_parquet_round_trips_the_rows(tmp_path: Path) -> None:
    frame = synth_trips(50, seed=0)
    path = tmp_path / "trips.parquet"
    write_trips(frame, path)

    back = pd.read_parquet(path)
    assert list(back.columns) == list(GREEN_2018_COLUMNS)
    np.testing.assert_array_equal(back["total_amount"], frame["total_amount"])
    assert (back["lpep_pickup_datetime"] == frame["lpep_pickup_datetime"]).all()


def test_other_extensions_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"\.csv or \.parquet"):
        write_trips(synth_trips(5), tmp_path / "trips.json")
