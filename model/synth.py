"""Synthetic NYC green-taxi trips in the TLC 2018 schema, shaped like real months.

Distances and speeds are log-normal (long right tails), most trips carry one passenger, fares
follow the 2018 meter (base, per mile, per minute, surcharges, card tips) with noise, and a small
share of rows is bad the way real files are: zero distances, zero passengers, refunds, clock
errors, missing values. Drift kinds shift one aspect for monitoring demos. Same seed, same rows.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv

DRIFT_KINDS: dict[str, str] = {
    "longer-trips": "trips 80% longer (distance and, through speed, duration)",
    "more-passengers": "far more shared rides: passenger counts shift from 1 towards 2-6",
    "fare-inflation": "the meter charges 35% more for the same trip (labels drift, not features)",
}

GREEN_2018_COLUMNS: tuple[str, ...] = (
    "VendorID",
    "lpep_pickup_datetime",
    "lpep_dropoff_datetime",
    "store_and_fwd_flag",
    "RatecodeID",
    "PULocationID",
    "DOLocationID",
    "passenger_count",
    "trip_distance",
    "fare_amount",
    "extra",
    "mta_tax",
    "tip_amount",
    "tolls_amount",
    "ehail_fee",
    "improvement_surcharge",
    "total_amount",
    "payment_type",
    "trip_type",
)

_PASSENGERS = np.array([1, 2, 3, 4, 5, 6])
_PASSENGER_P = np.array([0.835, 0.08, 0.02, 0.01, 0.035, 0.02])
_PASSENGER_P_DRIFTED = np.array([0.30, 0.26, 0.12, 0.08, 0.14, 0.10])


def synth_trips(
    rows: int, seed: int = 0, drift: str | None = None, month: str = "2018-02"
) -> pd.DataFrame:
    """``rows`` trips in the green 2018 column layout."""
    if rows < 1:
        raise ValueError("rows must be at least 1")
    if drift is not None and drift not in DRIFT_KINDS:
        raise ValueError(f"unknown drift kind {drift!r}; choose from {', '.join(DRIFT_KINDS)}")
    rng = np.random.default_rng(seed)

    distance = rng.lognormal(np.log(1.9), 0.85, rows)
    if drift == "longer-trips":
        distance *= 1.8
    distance = np.clip(distance, 0.01, 90.0)
    speed_mph = np.clip(rng.lognormal(np.log(11.0), 0.35, rows), 2.0, 45.0)
    minutes = distance / speed_mph * 60.0 + rng.gamma(1.5, 0.6, rows)

    start = np.datetime64(f"{month}-01T00:00:00")
    month_seconds = 28 * 24 * 3600
    pickup = start + rng.integers(0, month_seconds, rows).astype("timedelta64[s]")
    dropoff = pickup + np.round(minutes * 60.0).astype("int64").astype("timedelta64[s]")

    passenger_p = _PASSENGER_P_DRIFTED if drift == "more-passengers" else _PASSENGER_P
    passengers = rng.choice(_PASSENGERS, size=rows, p=passenger_p).astype("float64")

    rate = 1.35 if drift == "fare-inflation" else 1.0
    ratecode = rng.choice([1, 5, 2], size=rows, p=[0.975, 0.02, 0.005])
    metered = rate * (2.5 + 2.1 * distance + 0.32 * minutes) + rng.normal(0.0, 0.6, rows)
    fare = np.where(ratecode == 2, 52.0 * rate, np.maximum(2.5, np.round(metered * 2) / 2))
    hour = (pickup - pickup.astype("datetime64[D]")).astype("timedelta64[h]").astype(int)
    extra = np.where((hour >= 20) | (hour < 6), 0.5, np.where((hour >= 16), 1.0, 0.0))
    mta_tax = np.full(rows, 0.5)
    improvement = np.full(rows, 0.3)
    payment = rng.choice([1, 2, 3, 4], size=rows, p=[0.55, 0.43, 0.01, 0.01])
    tip = np.where(payment == 1, np.round(fare * rng.uniform(0.10, 0.25, rows), 2), 0.0)
    tolls = np.where(rng.random(rows) < 0.03, 5.76, 0.0)
    total = fare + extra + mta_tax + tip + tolls + improvement

    frame = pd.DataFrame(
        {
            "VendorID": rng.choice([1, 2], size=rows, p=[0.2, 0.8]),
            "lpep_pickup_datetime": pickup,
            "lpep_dropoff_datetime": dropoff,
            "store_and_fwd_flag": np.where(rng.random(rows) < 0.005, "Y", "N"),
            "RatecodeID": ratecode,
            "PULocationID": rng.integers(1, 266, rows),
            "DOLocationID": rng.integers(1, 266, rows),
            "passenger_count": passengers,
            "trip_distance": np.round(distance, 2),
            "fare_amount": fare,
            "extra": extra,
            "mta_tax": mta_tax,
            "tip_amount": tip,
            "tolls_amount": tolls,
            "ehail_fee": np.nan,
            "improvement_surcharge": improvement,
            "total_amount": np.round(total, 2),
            "payment_type": payment,
            "trip_type": np.where(ratecode == 5, 2, 1),
        }
    )
    _spoil(frame, rng)
    return frame


def _spoil(frame: pd.DataFrame, rng: np.random.Generator) -> None:
    """Make a small share of rows bad the way real TLC months are."""
    rows = len(frame)

    def pick(share: float) -> np.ndarray:
        return rng.random(rows) < share

    frame.loc[pick(0.012), "trip_distance"] = 0.0
    frame.loc[pick(0.004), "passenger_count"] = 0.0
    refunds = pick(0.002)
    for column in ("fare_amount", "extra", "mta_tax", "tip_amount", "improvement_surcharge"):
        frame.loc[refunds, column] = -frame.loc[refunds, column]
    frame.loc[refunds, "total_amount"] = -frame.loc[refunds, "total_amount"]
    backwards = pick(0.001)  # clock errors: dropoff before pickup
    frame.loc[backwards, "lpep_dropoff_datetime"] = frame.loc[
        backwards, "lpep_pickup_datetime"
    ] - pd.Timedelta(minutes=3)
    overnight = pick(0.002)  # meters left running
    frame.loc[overnight, "lpep_dropoff_datetime"] = frame.loc[
        overnight, "lpep_pickup_datetime"
    ] + pd.Timedelta(hours=23)
    frame.loc[pick(0.001), "passenger_count"] = np.nan
    frame["passenger_count"] = frame["passenger_count"].astype("Int64")


def write_trips(frame: pd.DataFrame, path: Path) -> None:
    """CSV as the TLC published 2018 (empty line after the header) or Parquet, by extension."""
    path.parent.mkdir(parents=True, exist_ok=True)
    suffix = path.suffix.lower()
    if suffix == ".parquet":
        frame.to_parquet(path, index=False)
    elif suffix == ".csv":
        table = pa.Table.from_pandas(frame, preserve_index=False)
        for index, name in enumerate(table.column_names):
            if pa.types.is_timestamp(table.schema.field(name).type):
                table = table.set_column(index, name, table.column(name).cast(pa.timestamp("s")))
        with path.open("wb") as handle:
            handle.write((",".join(frame.columns) + "\n\n").encode())
            pacsv.write_csv(
                table, handle, pacsv.WriteOptions(include_header=False, quoting_style="none")
            )
    else:
        raise ValueError(f"{path}: choose a .csv or .parquet file name")
