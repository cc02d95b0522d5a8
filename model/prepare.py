"""PrepareData: TLC trip files in, the training channels and the monitoring baseline out.

Runs as the pipeline's SageMaker Processing job (``python -m model.prepare``, paths under
``/opt/ml/processing``) and as ``safe-deploy data prepare``. Every row read is either kept or
counted under exactly one drop reason, so ``rows_read == rows_kept + sum(dropped)``.

The files are read a chunk at a time (Parquet by record batches, CSV in pieces cut at line ends)
and the outputs appended to as each chunk is done, so a year of trips needs no more memory than a
month. Each kept row goes to train, validation or test by a hash of its own values
(``split_of``), which no chunking can change. The monitoring baseline is a sample of at most
``BASELINE_ROWS`` train rows, drawn by another hash of each row's values (``baseline_key_of``).

On a processing job with several instances (``/opt/ml/config/resourceconfig.json`` lists more
than one host) each host prepares the files dealt to it and names its outputs after itself
(``HOST_OUTPUT_FILES``), so that every host's upload to the one S3 prefix lands beside the
others'; docs/preparation.md, "Several processing instances", says more.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Generator, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import BinaryIO

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
# With --train-parts K > 1 the train split is these K files instead of train.csv, so that a
# ShardedByS3Key channel on the prefix ``train`` gives each of up to K training instances a part.
TRAIN_PART_FILE = "train/part-{:05d}.csv"
SPLIT_NAMES = ("train", "validation", "test")
SUMMARY_FILE = "summary.json"
# One of several hosts (``Cluster``) writes these instead, each named after the host: the outputs
# of N hosts share the job's S3 output prefix. Train is always parts here, ``--train-parts`` of
# them per host; the consumers read the prefixes ``prepared/train``, ``prepared/validation``,
# ``prepared/test`` and ``prepared/baseline``, which match either layout.
HOST_TRAIN_PART_FILE = "train/part-{host}-{part:05d}.csv"
HOST_OUTPUT_FILES = {
    "validation": "validation/{host}.csv",
    "test": "test/{host}.csv",
    "baseline": "baseline/{host}.csv",
}
HOST_SUMMARY_FILE = "summary/{host}.json"
# Where a SageMaker processing container finds its hosts (``current_host``, ``hosts``).
RESOURCE_CONFIG = Path("/opt/ml/config/resourceconfig.json")
US_TIMESTAMP = "%m/%d/%Y %I:%M:%S %p"
# Rows read, derived, filtered and written at a time: what bounds preparation's memory.
CHUNK_ROWS = 500_000
HEAD_BYTES = 65536
WRITE_BATCH_ROWS = 65536  # rows pyarrow formats at once (its default, 1,024, costs more per row)
# The most train rows baseline.csv holds. Of n sampled rows, each column's empirical CDF is within
# sqrt(ln(2 / 0.001) / 2n) of the train split's everywhere with probability 0.999 (the DKW
# inequality): 0.0062 at n = 100,000, a sixteenth of the monitor's drift threshold of 0.1.
# docs/preparation.md, "The monitoring baseline", says more.
BASELINE_ROWS = 100_000

Progress = Callable[[str], None]


@dataclass(frozen=True)
class Cluster:
    """The processing job's hosts, as ``resourceconfig.json`` lists them, and which this is."""

    current_host: str
    hosts: tuple[str, ...]

    @classmethod
    def read(cls, path: Path) -> Cluster | None:
        """The hosts in ``path``, or None if there is no such file (not a processing job)."""
        if not path.is_file():
            return None
        config = json.loads(path.read_text())
        cluster = cls(str(config["current_host"]), tuple(str(h) for h in config["hosts"]))
        if cluster.current_host not in cluster.hosts:
            raise ValueError(f"{path}: current_host {cluster.current_host} is not in hosts")
        return cluster

    @property
    def shared(self) -> bool:
        """Whether other hosts write to the same output prefix: then outputs carry host names."""
        return len(self.hosts) > 1

    def baseline_share(self, baseline_rows: int) -> int:
        """This host's part of the baseline's cap, at most ``baseline_rows`` / hosts rounded up:
        the first ``baseline_rows`` mod hosts hosts take the remainder's extra rows, so the
        shares add up to ``baseline_rows`` exactly (ceil for every host would exceed it)."""
        share, extra = divmod(baseline_rows, len(self.hosts))
        return share + (self.hosts.index(self.current_host) < extra)


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
    baseline_rows: int  # rows in baseline.csv: every train row, or a sample of baseline_sample_cap
    baseline_sample_cap: int
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
        train, cap = self.splits.get("train", 0), self.baseline_sample_cap
        out.append(f"baseline: {self.baseline_rows:,} of {train:,} train rows (at most {cap:,})")
        return out


@dataclass
class _RawTrips:
    """Rows of one source as columns, before filtering: a whole file or a chunk of one."""

    pickup: np.ndarray  # datetime64[us], NaT where missing
    dropoff: np.ndarray
    numbers: dict[str, np.ndarray]  # float64, NaN where missing
    unparsable: np.ndarray  # bool: some value was present but not a number/timestamp
    malformed: int


@dataclass(frozen=True)
class _Source:
    """A file whose format and trip columns have been checked, not yet read."""

    path: Path
    format: str
    taxi: str
    pickup: str
    dropoff: str
    names: tuple[str, ...]  # every column, as the header or the schema names them
    bytes_per_line: float  # CSV: the average line length of the file's first 64 KiB

    @property
    def wanted(self) -> list[str]:
        return [self.pickup, self.dropoff, *RAW_NUMERIC_COLUMNS]


def _head(path: Path) -> bytes:
    with path.open("rb") as handle:
        return handle.read(HEAD_BYTES)


def _detect_format(path: Path, head: bytes) -> str:
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


def _csv_names(path: Path) -> list[str]:
    try:
        names: list[str] = pacsv.open_csv(
            path,
            read_options=pacsv.ReadOptions(encoding="latin1"),  # any byte: names are ASCII
            parse_options=pacsv.ParseOptions(invalid_row_handler=lambda _row: "skip"),
        ).schema.names
    except (pa.ArrowInvalid, OSError) as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise DataFileError(f"{path}: not a readable CSV or Parquet file ({first})") from exc
    return names


def _parquet_names(path: Path) -> list[str]:
    try:
        names: list[str] = pq.read_schema(path).names
    except (pa.ArrowInvalid, OSError) as exc:
        raise DataFileError(f"{path}: not a readable Parquet file ({exc})") from exc
    return names


def _open_source(path: Path) -> _Source:
    """Check that ``path`` is a trip file and find its columns, reading no more than its head."""
    if not path.is_file():
        raise DataFileError(f"{path}: no such file")
    if path.stat().st_size == 0:  # said plainly: a reader's own words ("Empty CSV file") hide it
        raise DataFileError(
            f"{path} is empty (0 bytes): not a readable CSV or Parquet file, nothing to train on"
        )
    head = _head(path)
    fmt = _detect_format(path, head)
    names = _parquet_names(path) if fmt == "parquet" else _csv_names(path)
    pickup, dropoff, taxi = _pick_columns(path, names)
    bytes_per_line = len(head) / max(1, head.count(b"\n"))
    return _Source(path, fmt, taxi, pickup, dropoff, tuple(names), bytes_per_line)


def _coerce_strings(
    pickup: pa.Array, dropoff: pa.Array, numbers: dict[str, pa.Array]
) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray], np.ndarray]:
    """Slow path for chunks holding values that are not numbers or timestamps."""

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


def _blank_head(data: bytes) -> int:
    """How many line ends ``data`` starts with."""
    return len(data) - len(data.lstrip(b"\r\n"))  # lstrip copies only when there are some


def _line_blocks(path: Path, block_bytes: int) -> Iterator[memoryview]:
    """The file in pieces of about ``block_bytes`` that end at a line end (the last piece where
    the file ends); the first piece reaches past the blank lines a reader skips to the header."""
    start, size, header_seen = 0, block_bytes, False
    with path.open("rb") as handle:
        while True:
            handle.seek(start)  # the line the last piece cut is read again, not copied over
            data = handle.read(size)
            if not data:
                return
            last = len(data) < size
            end = len(data) if last else data.rfind(b"\n") + 1
            if end == 0 or not (header_seen or last or _blank_head(data) < end):
                size *= 2  # no whole line yet, or nothing but the blank lines before the header
                continue
            header_seen = True
            yield memoryview(data)[:end]
            start, size = start + end, block_bytes


def _read_csv_block(source: _Source, block: memoryview, first: bool) -> _RawTrips:
    """One piece of a CSV file; the first holds the header, the others are read by its names."""
    malformed = 0

    def count_malformed(_row: object) -> str:
        nonlocal malformed
        malformed += 1
        return "skip"

    def read(types: dict[str, pa.DataType], encoding: str = "utf8") -> pa.Table:
        return pacsv.read_csv(
            pa.BufferReader(pa.py_buffer(block)),
            read_options=pacsv.ReadOptions(
                encoding=encoding, column_names=[] if first else list(source.names)
            ),
            parse_options=pacsv.ParseOptions(invalid_row_handler=count_malformed),
            convert_options=pacsv.ConvertOptions(
                include_columns=source.wanted,
                column_types=types,
                timestamp_parsers=[pacsv.ISO8601, US_TIMESTAMP],
            ),
        )

    typed = {source.pickup: pa.timestamp("us"), source.dropoff: pa.timestamp("us")}
    typed.update({name: pa.float64() for name in RAW_NUMERIC_COLUMNS})
    try:
        table = read(typed)
    except (pa.ArrowInvalid, UnicodeDecodeError):
        # Some value is not a number, a timestamp or even UTF-8: read this piece as text (latin-1
        # decodes any byte) and count the rows that do not parse. A row parses to the same
        # values on either path, so which pieces take this one does not change the outputs.
        malformed = 0
        table = read({name: pa.string() for name in source.wanted}, encoding="latin1")
    return _from_table(table, source.pickup, source.dropoff, malformed)


def _chunks(source: _Source, chunk_rows: int) -> Generator[_RawTrips, None, None]:
    """The source's rows in file order, about ``chunk_rows`` at a time: Parquet by record batches
    within each row group, CSV in pieces cut at line ends near ``chunk_rows`` lines of the file's
    average length."""
    if source.format == "parquet":
        with pq.ParquetFile(source.path) as parquet:
            # A row group at a time: asked for all of them at once, the reader buffers every
            # group's column chunks ahead, and its memory grows with the file.
            for group in range(parquet.num_row_groups):
                batches = parquet.iter_batches(
                    batch_size=chunk_rows, row_groups=[group], columns=source.wanted
                )
                for batch in batches:
                    table = pa.Table.from_batches([batch])
                    yield _from_table(table, source.pickup, source.dropoff, 0)
        return
    block_bytes = max(1, round(chunk_rows * source.bytes_per_line))
    for index, block in enumerate(_line_blocks(source.path, block_bytes)):
        yield _read_csv_block(source, block, first=index == 0)


def _no_trips() -> _RawTrips:
    never = np.array([], dtype="datetime64[us]")
    numbers = {name: np.array([], dtype="float64") for name in RAW_NUMERIC_COLUMNS}
    return _RawTrips(never, never, numbers, np.zeros(0, dtype=bool), 0)


def _read_ahead(chunks: Generator[_RawTrips, None, None]) -> Generator[_RawTrips, None, None]:
    """The chunks, each next one read on another thread while the caller works on this one:
    parsing (pyarrow's threads) and writing (one thread) then share the cores."""
    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="prepare-read")
    try:
        upcoming = pool.submit(next, chunks, None)
        while (chunk := upcoming.result()) is not None:
            upcoming = pool.submit(next, chunks, None)
            yield chunk
    finally:
        pool.shutdown(wait=True, cancel_futures=True)  # the reader is idle before it is closed
        chunks.close()


def _concatenate(parts: list[_RawTrips]) -> _RawTrips:
    return _RawTrips(
        pickup=np.concatenate([p.pickup for p in parts]),
        dropoff=np.concatenate([p.dropoff for p in parts]),
        numbers={n: np.concatenate([p.numbers[n] for p in parts]) for n in RAW_NUMERIC_COLUMNS},
        unparsable=np.concatenate([p.unparsable for p in parts]),
        malformed=sum(p.malformed for p in parts),
    )


def read_source(path: Path, chunk_rows: int = CHUNK_ROWS) -> tuple[_RawTrips, SourceSummary]:
    """One file's rows, all of them in memory (``prepare`` reads a chunk at a time instead)."""
    source = _open_source(path)
    parts = list(_chunks(source, chunk_rows))
    raw = _concatenate(parts or [_no_trips()])
    rows = len(raw.pickup) + raw.malformed
    return raw, SourceSummary(str(path), source.format, source.taxi, rows, raw.malformed)


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


# --- the split ----------------------------------------------------------------------------------

_MASK64 = (1 << 64) - 1
_GAMMA = 0x9E3779B97F4A7C15  # splitmix64's increment and multipliers
_MIX1 = 0xBF58476D1CE4E5B9
_MIX2 = 0x94D049BB133111EB
# Where each split's share of [0, 1) ends: train below 0.80, validation below 0.95, test above.
_SPLIT_BOUNDS = np.cumsum(SPLIT_FRACTIONS)[:-1]
# Mixed into the seed for the baseline sample's hash (sqrt(2)'s first 64 fraction bits, any
# constant would do), so which train rows are sampled has nothing to do with the bits that put
# them in train.
_BASELINE_SALT = 0x6A09E667F3BCC908
# The same for the train parts' hash (sqrt(3)'s first 64 fraction bits): a row's part is
# unrelated to the bits that chose its split and its baseline key.
_PART_SALT = 0xBB67AE8584CAA73B


def _splitmix64(values: np.ndarray) -> np.ndarray:
    """splitmix64's finaliser, in place on uint64 (numpy wraps arrays' overflow silently)."""
    values += np.uint64(_GAMMA)
    values ^= values >> np.uint64(30)
    values *= np.uint64(_MIX1)
    values ^= values >> np.uint64(27)
    values *= np.uint64(_MIX2)
    values ^= values >> np.uint64(31)
    return values


def _seed_state(seed: int) -> np.uint64:
    state = (seed + _GAMMA) & _MASK64
    state = ((state ^ (state >> 30)) * _MIX1) & _MASK64
    state = ((state ^ (state >> 27)) * _MIX2) & _MASK64
    return np.uint64(state ^ (state >> 31))


def _row_hash(kept: dict[str, np.ndarray], seed: int) -> np.ndarray:
    """The float64 bits of the four output columns mixed in turn (splitmix64, starting from the
    seed's state) into one uint64 per row."""
    state = np.full(len(kept[LABEL]), _seed_state(seed), dtype=np.uint64)
    for name in COLUMNS:
        state ^= np.ascontiguousarray(kept[name], dtype=np.float64).view(np.uint64)
        _splitmix64(state)
    return state


def split_of(kept: dict[str, np.ndarray], seed: int) -> np.ndarray:
    """Each kept row's split, 0 train, 1 validation, 2 test, from a hash of the row's values.

    The float64 bits of the four output columns are mixed in turn (splitmix64, starting from the
    seed's state) into a number in [0, 1), which falls in train's, validation's or test's share
    of SPLIT_FRACTIONS. A row's split depends on nothing but its values and the seed: not on its
    place in the file, how the file is read or what other rows there are, so a file read in any
    chunks splits the same. Identical rows land in the same split, which keeps a trip repeated in
    the data from being trained on and then tested on. The split sizes are the fractions only
    approximately (a binomial draw per row); the summary counts them.
    """
    state = _row_hash(kept, seed)
    unit = (state >> np.uint64(11)).astype(np.float64) * 2.0**-53  # the top 53 bits
    split: np.ndarray = np.searchsorted(_SPLIT_BOUNDS, unit, side="right").astype(np.int8)
    return split


# --- the monitoring baseline --------------------------------------------------------------------


def baseline_key_of(rows: dict[str, np.ndarray], seed: int) -> np.ndarray:
    """Each row's key in the baseline sample's draw: the rows with the smallest keys are sampled.

    The same mixing as ``split_of`` from another starting state, so a row's key depends on its
    values and the seed alone, like its split, and is unrelated to the bits that chose its split.
    """
    return _row_hash(rows, seed ^ _BASELINE_SALT)


def part_of(rows: dict[str, np.ndarray], seed: int, parts: int) -> np.ndarray:
    """Each train row's part, 0 to ``parts - 1``, for ``--train-parts``: the same mixing as
    ``split_of`` from another starting state, modulo ``parts``. Like a row's split it depends on
    its values and the seed alone, so no chunking changes which part a row is in."""
    part: np.ndarray = (_row_hash(rows, seed ^ _PART_SALT) % np.uint64(parts)).astype(np.int64)
    return part


class _BaselineSample:
    """The ``size`` train rows with the smallest ``baseline_key_of`` seen so far (ties, which only
    copies of one trip or a 64-bit collision make, to the earlier row), and where each was among
    the train rows. Bottom-k sampling: the result is the same whatever chunks the rows came in,
    and memory holds at most ``size`` rows between chunks, not the train split.
    """

    def __init__(self, size: int) -> None:
        self.size = size
        self.keys = np.empty(0, dtype=np.uint64)
        self.positions = np.empty(0, dtype=np.int64)
        self.columns = {name: np.empty(0, dtype=np.float64) for name in COLUMNS}

    def add(self, rows: dict[str, np.ndarray], keys: np.ndarray, first_position: int) -> None:
        """Offer train rows whose positions run on from ``first_position``."""
        offered = np.arange(len(keys), dtype=np.int64)
        if len(self.keys) == self.size:  # full: only a key up to the largest held can get in
            offered = np.flatnonzero(keys <= self.keys.max())
        # Only the chunk's own smallest can be among the smallest of all: no other row is copied.
        offered = offered[self._smallest(keys[offered], offered)]
        if len(offered) == 0:
            return
        keys = np.concatenate([self.keys, keys[offered]])
        positions = np.concatenate([self.positions, first_position + offered])
        columns = {
            name: np.concatenate([self.columns[name], rows[name][offered]]) for name in COLUMNS
        }
        chosen = self._smallest(keys, positions)
        self.keys, self.positions = keys[chosen], positions[chosen]
        self.columns = {name: column[chosen] for name, column in columns.items()}

    def _smallest(self, keys: np.ndarray, positions: np.ndarray) -> np.ndarray | slice:
        if len(keys) <= self.size:
            return slice(None)
        kth = np.partition(keys, self.size - 1)[self.size - 1]
        below = np.flatnonzero(keys < kth)
        tied = np.flatnonzero(keys == kth)
        tied = tied[np.argsort(positions[tied], kind="stable")][: self.size - len(below)]
        return np.concatenate([below, tied])

    def csv_bytes(self) -> bytes:
        """The sampled rows in input order, as the train split writes them."""
        if len(self.keys) == 0:
            return b""
        order = np.argsort(self.positions)
        return _csv_bytes({name: column[order] for name, column in self.columns.items()})


# --- writing ------------------------------------------------------------------------------------


def _csv_bytes(columns: dict[str, np.ndarray]) -> bytes:
    table = pa.table({name: columns[name] for name in COLUMNS})
    sink = pa.BufferOutputStream()
    options = pacsv.WriteOptions(include_header=False, batch_size=WRITE_BATCH_ROWS)
    pacsv.write_csv(table, sink, options)
    written: bytes = sink.getvalue().to_pybytes()
    return written


class _SplitFiles:
    """The four output files, appended to a chunk at a time under temporary names and moved
    into place only when every source has been read: a failed run leaves no partial outputs.
    The baseline's rows are known only once every train row has been offered to the sample, and
    are written by ``write_baseline``."""

    def __init__(
        self,
        out_dir: Path,
        seed: int,
        baseline_rows: int,
        train_parts: int = 1,
        host: str | None = None,
    ) -> None:
        self.seed = seed
        self.baseline = _BaselineSample(baseline_rows)
        self.made_dir = not out_dir.exists()
        out_dir.mkdir(parents=True, exist_ok=True)
        self.out_dir = out_dir
        self.host = host
        # One host's one train part is train.csv; more are TRAIN_PART_FILE's, each its own
        # output. One of several hosts always writes parts, named after it.
        self.parted = train_parts > 1 or host is not None
        if host is not None:
            self.train_parts = [
                HOST_TRAIN_PART_FILE.format(host=host, part=i) for i in range(train_parts)
            ]
            named = {name: file.format(host=host) for name, file in HOST_OUTPUT_FILES.items()}
            files = {**{part: part for part in self.train_parts}, **named}
        else:
            self.train_parts = [TRAIN_PART_FILE.format(i) for i in range(train_parts)]
            files = dict(OUTPUT_FILES)
            if train_parts > 1:
                del files["train"]
                files = {**{part: part for part in self.train_parts}, **files}
        self.train_dir = out_dir / Path(TRAIN_PART_FILE).parent
        self.final = {name: out_dir / file for name, file in files.items()}
        self.made_dirs: list[Path] = []
        for folder in sorted({path.parent for path in self.final.values()} - {out_dir}):
            if not folder.exists():
                folder.mkdir()
                self.made_dirs.append(folder)
        self.partial = {
            name: path.with_name(f".{path.name}.partial") for name, path in self.final.items()
        }
        self.handles: dict[str, BinaryIO] = {}
        self.counts = dict.fromkeys(SPLIT_NAMES, 0)
        try:
            for name, path in self.partial.items():
                self.handles[name] = path.open("wb")
            for name in ("test", "baseline"):  # written by hand: pyarrow quotes header names
                self.handles[name].write((",".join(COLUMNS) + "\n").encode())
        except BaseException:
            self.discard()
            raise

    def append(self, kept: dict[str, np.ndarray], split: np.ndarray) -> None:
        for index, name in enumerate(SPLIT_NAMES):
            rows = split == index
            count = int(np.count_nonzero(rows))
            if count == 0:
                continue
            part = {column: kept[column][rows] for column in COLUMNS}
            if name == "train" and self.parted:
                self._append_train_parts(part)
            else:
                self.handles[name].write(_csv_bytes(part))
            if name == "train":  # the baseline describes what the model was trained on
                keys = baseline_key_of(part, self.seed)
                self.baseline.add(part, keys, first_position=self.counts["train"])
            self.counts[name] += count

    def _append_train_parts(self, rows: dict[str, np.ndarray]) -> None:
        parts = part_of(rows, self.seed, len(self.train_parts))
        for index, name in enumerate(self.train_parts):
            chosen = parts == index
            if chosen.any():
                self.handles[name].write(_csv_bytes({c: rows[c][chosen] for c in COLUMNS}))

    def write_baseline(self) -> int:
        """Write the sampled train rows; how many there are."""
        self.handles["baseline"].write(self.baseline.csv_bytes())
        return len(self.baseline.keys)

    def close(self) -> None:
        for handle in self.handles.values():
            handle.close()

    def commit(self) -> None:
        self.close()
        for name, path in self.partial.items():
            path.replace(self.final[name])
        # train.csv and train/ share the train channel's prefix (``prepared/train``), and so do
        # validation.csv and validation/, test and baseline alike: outputs an earlier run left in
        # the other layout (or more parts, or another host's name) would be read too.
        written = set(self.final.values())
        for path in self.earlier_outputs():
            if path not in written:
                path.unlink(missing_ok=True)

    def earlier_outputs(self) -> list[Path]:
        """Every file either layout writes for the outputs: what the consumers' prefixes match."""
        earlier = [self.out_dir / OUTPUT_FILES["train"], *self.train_dir.glob("part-*.csv")]
        for name in HOST_OUTPUT_FILES:
            earlier.append(self.out_dir / OUTPUT_FILES[name])
            earlier.extend((self.out_dir / name).glob("*.csv"))
        return earlier

    @property
    def summary_path(self) -> Path:
        if self.host is None:
            return self.out_dir / SUMMARY_FILE
        return self.out_dir / HOST_SUMMARY_FILE.format(host=self.host)

    def write_summary(self, summary: PrepareSummary) -> None:
        """The summary, in place of whichever an earlier run left in the other layout."""
        path = self.summary_path
        path.parent.mkdir(exist_ok=True)
        path.write_text(summary.to_json())
        earlier = [self.out_dir / SUMMARY_FILE, *(self.out_dir / "summary").glob("*.json")]
        for other in earlier:
            if other != path:
                other.unlink(missing_ok=True)

    def outputs(self) -> dict[str, str]:
        """Where each output is, for the summary: train is the folder of its parts, if parts."""
        outputs = {name: str(self.out_dir / file) for name, file in OUTPUT_FILES.items()}
        if self.host is not None:
            outputs.update({name: str(self.final[name]) for name in HOST_OUTPUT_FILES})
        if self.parted:
            outputs["train"] = str(self.train_dir)
        return outputs

    def discard(self) -> None:
        self.close()
        for path in self.partial.values():
            path.unlink(missing_ok=True)
        for folder in self.made_dirs:
            if not any(folder.iterdir()):
                folder.rmdir()
        if self.made_dir and not any(self.out_dir.iterdir()):
            self.out_dir.rmdir()


def _kept_columns(raw: _RawTrips, dropped: dict[str, int]) -> dict[str, np.ndarray]:
    """The chunk's kept rows as the output columns; every other row counted in ``dropped``."""
    duration = _duration_minutes(raw)
    reason = _first_reason(raw, duration)
    counts = np.bincount(reason + 1, minlength=len(DROP_REASONS) + 1)
    dropped["malformed_row"] += raw.malformed
    for index, name in enumerate(DROP_REASONS[1:], start=1):
        dropped[name] += int(counts[index + 1])
    keep = reason == -1
    return {
        LABEL: raw.numbers["total_amount"][keep],
        "duration_minutes": duration[keep],
        "passenger_count": raw.numbers["passenger_count"][keep],
        "trip_distance": raw.numbers["trip_distance"][keep],
    }


def prepare(
    sources: Iterable[Path],
    out_dir: Path,
    seed: int = SPLIT_SEED,
    progress: Progress | None = None,
    chunk_rows: int = CHUNK_ROWS,
    baseline_rows: int = BASELINE_ROWS,
    train_parts: int = 1,
    cluster: Cluster | None = None,
) -> PrepareSummary:
    """Read, derive, filter, split and write; returns the accounting of every row.

    The sources are read a chunk of about ``chunk_rows`` rows at a time, and each chunk's kept
    rows are appended to the outputs before the next is read, so memory depends on the chunk
    size, not on the size of the input. Within each output the rows keep their input order;
    which output a row goes to is ``split_of`` its values. ``baseline.csv`` holds the train rows
    if there are at most ``baseline_rows`` of them, else the ``baseline_rows`` with the smallest
    ``baseline_key_of``, in input order. With ``train_parts`` K > 1 the train rows go to K files,
    ``train/part-00000.csv`` and on, each row to the one ``part_of`` its values, in place of
    ``train.csv``.

    With a ``cluster`` of several hosts, ``sources`` are this host's share of the input and the
    outputs are named after the host (``HOST_OUTPUT_FILES``, ``HOST_TRAIN_PART_FILE``,
    ``HOST_SUMMARY_FILE``); its baseline sample holds at most its share of ``baseline_rows``
    (``Cluster.baseline_share``), so the hosts' samples together hold at most ``baseline_rows``.
    """
    say = progress or (lambda _msg: None)
    paths = [Path(path) for path in sources]
    if not paths:
        raise DataFileError("no source files given")
    if chunk_rows < 1:
        raise ValueError("chunk_rows must be at least 1")
    if baseline_rows < 1:
        raise ValueError("baseline_rows must be at least 1")
    if train_parts < 1:
        raise ValueError("train_parts must be at least 1")
    opened = [_open_source(path) for path in paths]  # every file checked before any is read

    dropped = dict.fromkeys(DROP_REASONS, 0)
    summaries: list[SourceSummary] = []
    host = None
    if cluster is not None and cluster.shared:
        host, baseline_rows = cluster.current_host, cluster.baseline_share(baseline_rows)
    say(f"writing splits to {out_dir}" + (f" as {host}" if host else ""))
    files = _SplitFiles(out_dir, seed, baseline_rows, train_parts, host)
    try:
        for source in opened:
            say(f"reading {source.path}")
            source_rows = malformed = 0
            with closing(_read_ahead(_chunks(source, chunk_rows))) as chunks:
                for raw in chunks:
                    source_rows += len(raw.pickup) + raw.malformed
                    malformed += raw.malformed
                    kept = _kept_columns(raw, dropped)
                    del raw  # the chunk's raw columns go before its outputs are formatted
                    files.append(kept, split_of(kept, seed))
            summaries.append(
                SourceSummary(str(source.path), source.format, source.taxi, source_rows, malformed)
            )
            say(f"  {source_rows:,} rows ({source.taxi}, {source.format})")
        rows_read = sum(s.rows_read for s in summaries)
        kept_rows = sum(files.counts.values())
        if rows_read == 0:  # "all 0 rows were dropped" would blame the filters for an empty file
            raise DataFileError(
                f"{', '.join(str(p) for p in paths)}: no trips (a header and no rows): "
                "nothing to train on"
            )
        if kept_rows == 0:
            raise DataFileError(
                f"no usable trips in {', '.join(str(p) for p in paths)}: all {rows_read:,} rows"
                " were dropped"
            )
        sampled = files.write_baseline()
    except BaseException:
        files.discard()
        raise
    files.commit()

    summary = PrepareSummary(
        sources=summaries,
        rows_read=rows_read,
        rows_kept=kept_rows,
        dropped=dropped,
        splits=dict(files.counts),
        baseline_rows=sampled,
        baseline_sample_cap=baseline_rows,
        seed=seed,
        outputs=files.outputs(),
    )
    assert summary.rows_read == summary.rows_kept + sum(summary.dropped.values())
    files.write_summary(summary)
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
    parser.add_argument(
        "--baseline-rows",
        type=int,
        default=BASELINE_ROWS,
        help="most train rows in baseline.csv (default: %(default)s)",
    )
    parser.add_argument(
        "--train-parts",
        type=int,
        default=1,
        help="write train as this many train/part-NNNNN.csv files instead of train.csv, one per"
        " training instance or more (ShardedByS3Key; default: %(default)s)",
    )
    parser.add_argument(
        "--resource-config",
        type=Path,
        default=RESOURCE_CONFIG,
        help="the processing job's hosts (read if it exists; with more than one, this host's"
        " outputs are named after it; default: %(default)s)",
    )
    parser.add_argument("--message-file", type=Path, default=EXIT_MESSAGE)
    args = parser.parse_args(argv)
    if args.baseline_rows < 1:
        parser.error("--baseline-rows must be at least 1")
    if args.train_parts < 1:
        parser.error("--train-parts must be at least 1")
    cluster = Cluster.read(args.resource_config)
    sources = _expand(args.input)
    if cluster is not None and cluster.shared and not sources:
        # ShardedByS3Key dealt this host none of the input's objects (fewer than the instances):
        # an empty input folder. The other hosts' outputs are the job's.
        print(
            f"{cluster.current_host}: no input files in this host's share of"
            f" {', '.join(args.input)} ({len(cluster.hosts)} hosts): nothing to prepare"
        )
        return 0
    try:
        summary = prepare(
            sources,
            Path(args.output),
            args.seed,
            progress=print,
            baseline_rows=args.baseline_rows,
            train_parts=args.train_parts,
            cluster=cluster,
        )
    except DataFileError as exc:
        print(f"error: {exc}", file=sys.stderr)
        write_exit_message(str(exc), args.message_file)
        return 1
    print("\n".join(summary.lines()))
    return 0


__all__ = [
    "BASELINE_ROWS",
    "DROP_REASONS",
    "FEATURES",
    "SPLIT_SEED",
    "Cluster",
    "PrepareSummary",
    "baseline_key_of",
    "part_of",
    "prepare",
    "read_source",
    "split_of",
    "trips_table",
]

if __name__ == "__main__":
    raise SystemExit(main())
