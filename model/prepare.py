"""PrepareData: TLC trip files in, the training channels and the monitoring baseline out.

Runs as the pipeline's SageMaker Processing job (``python -m model.prepare``, paths under
``/opt/ml/processing``) and as ``safe-deploy data prepare``. Every row read is either kept or
counted under exactly one drop reason, so ``rows_read == rows_kept + sum(dropped)``.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from model.errors import EXIT_MESSAGE, DataFileError, write_exit_message
from model.schema import (
    COLUMNS,
    DROPOFF_COLUMNS,
    DURATION_RANGE,
    FEATURES,
    LABEL,
    PICKUP_COLUMNS,
    RAW_NUMERIC_COLUMNS,
    SPLIT_FRACTIONS,
    SPLIT_SEED,
    TOTAL_AMOUNT_RANGE,
    TRIP_DISTANCE_RANGE,
)

# Every way a row can be dropped, in the order the checks run: a row is counted under the first
# reason that applies to it.
DROP_REASONS: tuple[str, ...] = (
    "malformed_row",
    "unparsable_value",
    "missing_value",
    "total_amount_out_of_range",
    "duration_out_of_range",
    "trip_distance_out_of_range",
    "passenger_count_not_positive",
)

OUTPUT_FILES = {
    "train": "train.csv",
    "validation": "validation.csv",
    "test": "test.csv",
    "baseline": "baseline.csv",
}
SUMMARY_FILE = "summary.json"
US_TIMESTAMP = "%m/%d/%Y %I:%M:%S %p"

Progress = Callable[[str], None]


@dataclass
class SourceSummary:
    path: str
    format: str
    taxi: str
    rows_read: int
    malformed_rows: int


@dataclass
class PrepareSummary:
    sources: list[SourceSummary]
    rows_read: int
    rows_kept: int
    dropped: dict[str, int]
    splits: dict[str, int]
    seed: int
    outputs: dict[str, str] = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2)

    def lines(self) -> list[str]:
        """The summary as a person reads it."""
        out = [f"rows read: {self.rows_read:,}", f"rows kept: {self.rows_kept:,}"]
        dropped = sum(self.dropped.values())
        out.append(f"rows dropped: {dropped:,}")
        out.extend(f"  {reason}: {count:,}" for reason, count in self.dropped.items() if count)
        out.append(
            "split: " + ", ".join(f"{name} {count:,}" for name, count in self.splits.items())
        )
        return out


@dataclass
class _RawTrips:
    """One source's rows as columns, before filtering."""

    pickup: np.ndarray  # datetime64[us], NaT where missing
    dropoff: np.ndarray
    numbers: dict[str, np.ndarray]  # float64, NaN where missing
    unparsable: np.ndarray  # bool: some value was present but not a number/timestamp
    malformed: int


def _detect_format(path: Path) -> str:
    with path.open("rb") as handle:
        head = handle.read(65536)
    if head[:4] == b"PAR1":
        return "parquet"
    if b"\x00" in head:
        raise DataFileError(f"{path}: not a readable CSV or Parquet file (binary content)")
    return "csv"


def _pick_columns(path: Path, names: Sequence[str]) -> tuple[str, str, str]:
    present = set(names)
    pickup = next((c for c in PICKUP_COLUMNS if c in present), None)
    dropoff = next((c for c in DROPOFF_COLUMNS if c in present), None)
    missing = [c for c in RAW_NUMERIC_COLUMNS if c not in present]
    if pickup is None:
        missing.insert(0, "lpep_/tpep_pickup_datetime")
    if dropoff is None:
        missing.insert(1 if pickup is None else 0, "lpep_/tpep_dropoff_datetime")
    if missing or pickup is None or dropoff is None:
        raise DataFileError(f"{path}: not TLC trip data: missing column(s) {', '.join(missing)}")
    taxi = "green" if pickup.startswith("lpep") else "yellow"
    return pickup, dropoff, taxi


def _coerce_strings(
    pickup: pa.Array, dropoff: pa.Array, numbers: dict[str, pa.Array]
) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray], np.ndarray]:
    """Slow path for files holding values that are not numbers or timestamps."""

    def text(column: pa.Array) -> pd.Series:
        return pd.Series(column.cast(pa.string()).to_pandas(), dtype="object")

    unparsable = np.zeros(len(pickup), dtype=bool)

    def mark(raw: pd.Series, parsed: pd.Series) -> None:
        present = raw.notna().to_numpy() & (raw.astype(str).str.strip() != "").to_numpy()
        unparsable[present & parsed.isna().to_numpy()] = True

    times = []
    for column in (pickup, dropoff):
        raw = text(column)
        parsed = pd.to_datetime(raw, errors="coerce", format="ISO8601")
        retry = parsed.isna() & raw.notna()
        if retry.any():  # the TLC's other timestamp layout
            parsed[retry] = pd.to_datetime(raw[retry], errors="coerce", format=US_TIMESTAMP)
        mark(raw, parsed)
        times.append(parsed.to_numpy(dtype="datetime64[us]"))
    values = {}
    for name, column in numbers.items():
        raw = text(column)
        parsed = pd.to_numeric(raw, errors="coerce")
        mark(raw, parsed)
        values[name] = parsed.to_numpy(dtype="float64", na_value=np.nan)
    return times[0], times[1], values, unparsable


def _from_table(table: pa.Table, pickup: str, dropoff: str, malformed: int) -> _RawTrips:
    columns = {name: table.column(name).combine_chunks() for name in table.column_names}
    try:
        pickup_times = columns[pickup].cast(pa.timestamp("us"))
        dropoff_times = columns[dropoff].cast(pa.timestamp("us"))
        numbers = {name: columns[name].cast(pa.float64()) for name in RAW_NUMERIC_COLUMNS}
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        p, d, values, unparsable = _coerce_strings(
            columns[pickup], columns[dropoff], {n: columns[n] for n in RAW_NUMERIC_COLUMNS}
        )
        return _RawTrips(p, d, values, unparsable, malformed)
    return _RawTrips(
        pickup=pickup_times.to_numpy(zero_copy_only=False),
        dropoff=dropoff_times.to_numpy(zero_copy_only=False),
        numbers={
            n: a.to_numpy(zero_copy_only=False).astype("float64", copy=False)
            for n, a in numbers.items()
        },
        unparsable=np.zeros(len(table), dtype=bool),
        malformed=malformed,
    )


def _read_csv(path: Path) -> tuple[_RawTrips, str]:
    try:
        header = pacsv.open_csv(
            path,
            read_options=pacsv.ReadOptions(encoding="latin1"),  # any byte: names are ASCII
            parse_options=pacsv.ParseOptions(invalid_row_handler=lambda _row: "skip"),
        ).schema.names
    except (pa.ArrowInvalid, OSError) as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise DataFileError(f"{path}: not a readable CSV or Parquet file ({first})") from exc
    pickup, dropoff, taxi = _pick_columns(path, header)
    wanted = [pickup, dropoff, *RAW_NUMERIC_COLUMNS]
    malformed: list[int] = []

    def count_malformed(_row: object) -> str:
        malformed.append(1)
        return "skip"

    def read(types: dict[str, pa.DataType], encoding: str = "utf8") -> pa.Table:
        return pacsv.read_csv(
            path,
            read_options=pacsv.ReadOptions(encoding=encoding),
            parse_options=pacsv.ParseOptions(invalid_row_handler=count_malformed),
            convert_options=pacsv.ConvertOptions(
                include_columns=wanted,
                column_types=types,
                timestamp_parsers=[pacsv.ISO8601, US_TIMESTAMP],
            ),
        )

    typed = {pickup: pa.timestamp("us"), dropoff: pa.timestamp("us")}
    typed.update({name: pa.float64() for name in RAW_NUMERIC_COLUMNS})
    try:
        table = read(typed)
    except (pa.ArrowInvalid, UnicodeDecodeError):
        # Some value is not a number, a timestamp or even UTF-8: read everything as text (latin-1
        # decodes any byte) and count the rows that do not parse.
        malformed.clear()
        table = read({name: pa.string() for name in wanted}, encoding="latin1")
    return _from_table(table, pickup, dropoff, len(malformed)), taxi


def _read_parquet(path: Path) -> tuple[_RawTrips, str]:
    try:
        names = pq.read_schema(path).names
    except (pa.ArrowInvalid, OSError) as exc:
        raise DataFileError(f"{path}: not a readable Parquet file ({exc})") from exc
    pickup, dropoff, taxi = _pick_columns(path, names)
    table = pq.read_table(path, columns=[pickup, dropoff, *RAW_NUMERIC_COLUMNS])
    return _from_table(table, pickup, dropoff, 0), taxi


def read_source(path: Path) -> tuple[_RawTrips, SourceSummary]:
    if not path.is_file():
        raise DataFileError(f"{path}: no such file")
    if path.stat().st_size == 0:  # said plainly: a reader's own words ("Empty CSV file") hide it
        raise DataFileError(
            f"{path} is empty (0 bytes): not a readable CSV or Parquet file, nothing to train on"
        )
    fmt = _detect_format(path)
    raw, taxi = _read_parquet(path) if fmt == "parquet" else _read_csv(path)
    rows = len(raw.pickup) + raw.malformed
    return raw, SourceSummary(str(path), fmt, taxi, rows, raw.malformed)


def trips_table(path: Path) -> pd.DataFrame:
    """One file's parsable rows in file order, with ``duration_minutes`` derived, unfiltered."""
    raw, _ = read_source(Path(path))
    frame = pd.DataFrame({"duration_minutes": _duration_minutes(raw), **raw.numbers})
    return frame.loc[~raw.unparsable, list(COLUMNS)].reset_index(drop=True)


def _first_reason(raw: _RawTrips, duration: np.ndarray) -> np.ndarray:
    """For each row, the index into DROP_REASONS of the first check it fails, or -1 if kept."""
    n = len(duration)
    reason = np.full(n, -1, dtype=np.int8)
    total = raw.numbers["total_amount"]
    distance = raw.numbers["trip_distance"]
    passengers = raw.numbers["passenger_count"]
    missing = np.isnan(duration) | np.isnan(total) | np.isnan(distance) | np.isnan(passengers)

    def outside(values: np.ndarray, bounds: tuple[float, float]) -> np.ndarray:
        with np.errstate(invalid="ignore"):
            return ~((values > bounds[0]) & (values < bounds[1]))

    checks = (
        raw.unparsable,
        missing,
        outside(total, TOTAL_AMOUNT_RANGE),
        outside(duration, DURATION_RANGE),
        outside(distance, TRIP_DISTANCE_RANGE),
        ~(passengers > 0),
    )
    # Walk the checks last to first so that the first failing check wins.
    for index in range(len(checks) - 1, -1, -1):
        reason[checks[index]] = index + 1  # +1: "malformed_row" never reaches this point
    return reason


def _duration_minutes(raw: _RawTrips) -> np.ndarray:
    pickup = raw.pickup.astype("datetime64[us]")
    dropoff = raw.dropoff.astype("datetime64[us]")
    seconds = (dropoff - pickup).astype("timedelta64[us]").astype("float64") / 1e6
    seconds[np.isnat(pickup) | np.isnat(dropoff)] = np.nan
    minutes: np.ndarray = np.round(seconds / 60.0, 5)
    return minutes


def _split_sizes(n: int) -> tuple[int, int, int]:
    train = round(n * SPLIT_FRACTIONS[0])
    validation = round(n * SPLIT_FRACTIONS[1])
    return train, validation, n - train - validation


def _write_csv(path: Path, data: dict[str, np.ndarray], rows: np.ndarray, header: bool) -> None:
    table = pa.table({name: data[name][rows] for name in COLUMNS})
    with path.open("wb") as handle:
        if header:  # written by hand: pyarrow quotes header names
            handle.write((",".join(COLUMNS) + "\n").encode())
        pacsv.write_csv(table, handle, pacsv.WriteOptions(include_header=False))


def prepare(
    sources: Iterable[Path],
    out_dir: Path,
    seed: int = SPLIT_SEED,
    progress: Progress | None = None,
) -> PrepareSummary:
    """Read, derive, filter, split and write; returns the accounting of every row."""
    say = progress or (lambda _msg: None)
    sources = list(sources)
    if not sources:
        raise DataFileError("no source files given")
    reads = []
    for path in sources:
        say(f"reading {path}")
        reads.append(read_source(Path(path)))
        say(f"  {reads[-1][1].rows_read:,} rows ({reads[-1][1].taxi}, {reads[-1][1].format})")

    dropped = dict.fromkeys(DROP_REASONS, 0)
    kept_parts: dict[str, list[np.ndarray]] = {name: [] for name in COLUMNS}
    for raw, source in reads:
        dropped["malformed_row"] += source.malformed_rows
        duration = _duration_minutes(raw)
        reason = _first_reason(raw, duration)
        counts = np.bincount(reason + 1, minlength=len(DROP_REASONS) + 1)
        for index, name in enumerate(DROP_REASONS[1:], start=1):
            dropped[name] += int(counts[index + 1])
        keep = reason == -1
        kept_parts[LABEL].append(raw.numbers["total_amount"][keep])
        kept_parts["duration_minutes"].append(duration[keep])
        kept_parts["passenger_count"].append(raw.numbers["passenger_count"][keep])
        kept_parts["trip_distance"].append(raw.numbers["trip_distance"][keep])

    data = {name: np.concatenate(parts) for name, parts in kept_parts.items()}
    kept = len(data[LABEL])
    rows_read = sum(s.rows_read for _, s in reads)
    if rows_read == 0:  # "all 0 rows were dropped" would blame the filters for an empty file
        raise DataFileError(
            f"{', '.join(str(s) for s in sources)}: no trips (a header and no rows): "
            "nothing to train on"
        )
    if kept == 0:
        raise DataFileError(
            f"no usable trips in {', '.join(str(s) for s in sources)}: all {rows_read:,} rows"
            " were dropped"
        )

    order = np.random.default_rng(seed).permutation(kept)
    n_train, n_validation, n_test = _split_sizes(kept)
    parts = {
        "train": order[:n_train],
        "validation": order[n_train : n_train + n_validation],
        "test": order[n_train + n_validation :],
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    say(f"writing splits to {out_dir}")
    _write_csv(out_dir / OUTPUT_FILES["train"], data, parts["train"], header=False)
    _write_csv(out_dir / OUTPUT_FILES["validation"], data, parts["validation"], header=False)
    _write_csv(out_dir / OUTPUT_FILES["test"], data, parts["test"], header=True)
    _write_csv(out_dir / OUTPUT_FILES["baseline"], data, parts["train"], header=True)

    summary = PrepareSummary(
        sources=[s for _, s in reads],
        rows_read=rows_read,
        rows_kept=kept,
        dropped=dropped,
        splits={"train": n_train, "validation": n_validation, "test": n_test},
        seed=seed,
        outputs={name: str(out_dir / file) for name, file in OUTPUT_FILES.items()},
    )
    assert summary.rows_read == summary.rows_kept + sum(summary.dropped.values())
    (out_dir / SUMMARY_FILE).write_text(summary.to_json())
    return summary


def _expand(inputs: Sequence[str]) -> list[Path]:
    files: list[Path] = []
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            files.extend(sorted(p for p in path.rglob("*") if p.is_file()))
        else:
            files.append(path)
    return files


def main(argv: Sequence[str] | None = None) -> int:
    """SageMaker Processing entry point."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--input", nargs="+", default=["/opt/ml/processing/input/raw"])
    parser.add_argument("--output", default="/opt/ml/processing/output")
    parser.add_argument("--seed", type=int, default=SPLIT_SEED)
    parser.add_argument("--message-file", type=Path, default=EXIT_MESSAGE)
    args = parser.parse_args(argv)
    try:
        summary = prepare(_expand(args.input), Path(args.output), args.seed, progress=print)
    except DataFileError as exc:
        print(f"error: {exc}", file=sys.stderr)
        write_exit_message(str(exc), args.message_file)
        return 1
    print("\n".join(summary.lines()))
    return 0


__all__ = [
    "DROP_REASONS",
    "FEATURES",
    "SPLIT_SEED",
    "PrepareSummary",
    "prepare",
    "read_source",
    "trips_table",
]

if __name__ == "__main__":
    raise SystemExit(main())
