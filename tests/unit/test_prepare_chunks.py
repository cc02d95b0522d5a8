"""PrepareData reads its sources a chunk at a time: the outputs do not depend on the chunks, and
each row's split depends on nothing but its own values and the seed."""

from __future__ import annotations

import math
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from model.errors import DataFileError
from model.prepare import OUTPUT_FILES, PrepareSummary, _chunks, _open_source, prepare, split_of
from model.schema import COLUMNS, LABEL, SPLIT_FRACTIONS
from tests.support import TRIP_HEADER, read_split, write_trip_csv
from tests.unit.test_prepare_golden import spoiled_month

OUTPUTS = tuple(OUTPUT_FILES.values())


class Prepared(NamedTuple):
    out: Path
    summary: PrepareSummary


def outputs(out: Path) -> dict[str, bytes]:
    return {name: (out / name).read_bytes() for name in OUTPUTS}


def same_summary(first: PrepareSummary, second: PrepareSummary) -> None:
    assert (first.rows_read, first.rows_kept) == (second.rows_read, second.rows_kept)
    assert first.dropped == second.dropped
    assert first.splits == second.splits
    assert first.sources == second.sources


@pytest.fixture(scope="module")
def spoiled(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return spoiled_month(tmp_path_factory.mktemp("spoiled") / "green_tripdata_2018-02.csv")


@pytest.fixture(scope="module")
def spoiled_whole(spoiled: Path, tmp_path_factory: pytest.TempPathFactory) -> Prepared:
    """The spoiled month prepared in one chunk: what every chunk size is held to."""
    out = tmp_path_factory.mktemp("spoiled-whole")
    return Prepared(out, prepare([spoiled], out))


@pytest.fixture(scope="module")
def small_whole(small_month_csv: Path, tmp_path_factory: pytest.TempPathFactory) -> Prepared:
    """The small month's CSV prepared in one chunk: what every Parquet batch size is held to."""
    out = tmp_path_factory.mktemp("small-whole")
    return Prepared(out, prepare([small_month_csv], out))


@pytest.fixture(scope="module")
def row_groups(small_month: pd.DataFrame, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The small synthetic month as Parquet in row groups of 700 rows."""
    path = tmp_path_factory.mktemp("groups") / "green_tripdata_2018-02.parquet"
    pq.write_table(pa.Table.from_pandas(small_month, preserve_index=False), path, 700)
    assert pq.ParquetFile(path).num_row_groups > 5
    return path


@pytest.mark.parametrize("chunk_rows", [3, 64, 1000])
def test_csv_outputs_do_not_depend_on_the_chunk_size(
    spoiled: Path, spoiled_whole: Prepared, tmp_path: Path, chunk_rows: int
) -> None:
    whole = spoiled_whole.summary
    chunked = prepare([spoiled], tmp_path / "chunked", chunk_rows=chunk_rows)

    assert outputs(tmp_path / "chunked") == outputs(spoiled_whole.out)
    same_summary(chunked, whole)
    assert whole.dropped["malformed_row"] == 2  # the faults really are in the file


@pytest.mark.parametrize("chunk_rows", [97, 700, 1500])
def test_parquet_outputs_do_not_depend_on_batches_or_row_groups(
    row_groups: Path, small_whole: Prepared, tmp_path: Path, chunk_rows: int
) -> None:
    whole = small_whole.summary
    chunked = prepare([row_groups], tmp_path / "parquet", chunk_rows=chunk_rows)

    assert outputs(tmp_path / "parquet") == outputs(small_whole.out)
    assert chunked.dropped == whole.dropped
    assert chunked.splits == whole.splits


def test_blank_lines_before_the_header_and_a_last_line_cut_short(tmp_path: Path) -> None:
    good = "2,2018-02-01 00:00:00,2018-02-01 00:10:00,1,2.0,12.5"
    rows = "\n".join(good.replace(":10:", f":{minute:02d}:") for minute in range(11, 40))
    source = tmp_path / "blank-lines.csv"
    source.write_text("\n\r\n\n" + TRIP_HEADER + "\n\n" + rows + "\n2,2018-02-01 00:00:00,2018")

    whole = prepare([source], tmp_path / "default")
    chunked = prepare([source], tmp_path / "chunked", chunk_rows=1)

    assert outputs(tmp_path / "chunked") == outputs(tmp_path / "default")
    same_summary(chunked, whole)
    assert (whole.rows_read, whole.rows_kept, whole.dropped["malformed_row"]) == (30, 29, 1)


def test_chunks_hold_about_chunk_rows_rows(spoiled: Path, row_groups: Path) -> None:
    # What keeps memory bounded: no chunk is much larger than asked, whatever the file's size.
    csv_sizes = [len(raw.pickup) + raw.malformed for raw in _chunks(_open_source(spoiled), 100)]
    parquet_sizes = [len(raw.pickup) for raw in _chunks(_open_source(row_groups), 100)]

    assert sum(csv_sizes) == 1501
    assert len(csv_sizes) > 10
    assert max(csv_sizes) < 150
    assert sum(parquet_sizes) == pq.ParquetFile(row_groups).metadata.num_rows
    assert max(parquet_sizes) <= 100


def test_a_row_lands_in_the_same_split_wherever_it_is_in_the_input(tmp_path: Path) -> None:
    rows = [
        f"2,2018-02-01 00:00:00,2018-02-01 00:{minutes:02d}:00,1,{distance / 10:.1f},{fare}.5"
        for minutes, distance, fare in zip(range(1, 60), range(1, 60), range(5, 64), strict=True)
    ]
    forward = write_trip_csv(tmp_path / "forward.csv", rows)
    backward = write_trip_csv(tmp_path / "backward.csv", rows[::-1])
    twice = write_trip_csv(tmp_path / "twice.csv", rows + rows)

    prepare([forward], tmp_path / "forward")
    prepare([backward], tmp_path / "backward")
    prepare([twice], tmp_path / "twice", chunk_rows=7)

    for name in ("train", "validation", "test"):
        first = read_split(tmp_path / "forward", name)
        reversed_ = first[::-1].reset_index(drop=True)
        pd.testing.assert_frame_equal(read_split(tmp_path / "backward", name), reversed_)
        # A repeated trip is never trained on and then tested on: both copies go to one split.
        pd.testing.assert_frame_equal(
            read_split(tmp_path / "twice", name), pd.concat([first, first], ignore_index=True)
        )
    assert len(read_split(tmp_path / "forward", "train")) > 0


def test_split_of_follows_the_fractions_and_the_seed() -> None:
    rng = np.random.default_rng(5)
    n = 200_000
    kept = {
        LABEL: np.round(rng.uniform(3, 80, n), 2),
        "duration_minutes": np.round(rng.uniform(1, 60, n), 5),
        "passenger_count": rng.integers(1, 7, n).astype("float64"),
        "trip_distance": np.round(rng.uniform(0.1, 20, n), 2),
    }
    assert list(kept) == list(COLUMNS)

    split = split_of(kept, seed=1337)

    counts = np.bincount(split, minlength=3)
    for count, fraction in zip(counts, SPLIT_FRACTIONS, strict=True):
        assert count / n == pytest.approx(
            fraction, abs=4 * math.sqrt(fraction * (1 - fraction) / n)
        )
    other = split_of(kept, seed=2)
    assert 0.25 < np.mean(other != split) < 0.40  # about 1 - (0.8² + 0.15² + 0.05²) = 0.335
    np.testing.assert_array_equal(split_of(kept, seed=1337), split)
    halves = [split_of({k: v[: n // 2] for k, v in kept.items()}, 1337), split[n // 2 :]]
    np.testing.assert_array_equal(halves[0], split[: n // 2])


def test_a_run_that_fails_leaves_no_outputs_behind(tmp_path: Path) -> None:
    dropped = write_trip_csv(
        tmp_path / "all-dropped.csv", ["2,2018-02-01 00:00:00,2018-02-01 00:10:00,0,2.0,12.5"]
    )

    with pytest.raises(DataFileError, match="all 1 rows were dropped"):
        prepare([dropped], tmp_path / "out")

    assert not (tmp_path / "out").exists()
