"""baseline.csv, what Model Monitor's baselining job reads: every train row while there are at
most ``baseline_rows`` of them, else a sample of that many drawn by a hash of each row's values,
so the sample does not depend on how the sources are read, and is close to the train split in
every column by the DKW bound docs/preparation.md gives."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner, Result

from model.baseline import baseline
from model.prepare import (
    BASELINE_ROWS,
    _BaselineSample,
    baseline_key_of,
    main,
    prepare,
    split_of,
)
from model.schema import COLUMNS, SPLIT_FRACTIONS, SPLIT_SEED
from model.stats import drift_distances
from model.synth import synth_trips, write_trips
from safe_deploy.cli import main as cli
from tests.support import SPLIT_HEADER, read_split

CAP = 500
ALPHA = 0.001  # the bounds below hold with probability 1 - ALPHA: the monitor's own KS level


def dkw_bound(rows: int, alpha: float = ALPHA) -> float:
    """Dvoretzky-Kiefer-Wolfowitz: with probability 1 - alpha, the empirical CDF of ``rows``
    draws is within this of the distribution's everywhere."""
    return math.sqrt(math.log(2 / alpha) / (2 * rows))


def train_lines(out: Path) -> list[bytes]:
    return (out / "train.csv").read_bytes().splitlines()


def baseline_lines(out: Path) -> list[bytes]:
    header, *rows = (out / "baseline.csv").read_bytes().splitlines()
    assert header == SPLIT_HEADER.encode()
    return rows


def is_subsequence(rows: Sequence[bytes], of: Sequence[bytes]) -> bool:
    """Whether every one of ``rows`` is in ``of``, in the same order (repeats included)."""
    remaining = iter(of)
    return all(row in remaining for row in rows)


def cdf_distance(sample: np.ndarray, population: np.ndarray) -> float:
    """The largest gap between two empirical CDFs (both are step functions that change only at
    their values, so the gap is largest at one of them)."""
    sample, population = np.sort(sample), np.sort(population)
    at = np.union1d(sample, population)
    sample_cdf = np.searchsorted(sample, at, side="right") / sample.size
    population_cdf = np.searchsorted(population, at, side="right") / population.size
    return float(np.max(np.abs(sample_cdf - population_cdf)))


@pytest.fixture(scope="module")
def small_month_parquet(
    small_month: pd.DataFrame, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    """The small synthetic month as Parquet, in row groups of 700 rows."""
    path = tmp_path_factory.mktemp("parquet") / "green_tripdata_2018-02.parquet"
    pq.write_table(pa.Table.from_pandas(small_month, preserve_index=False), path, 700)
    return path


@pytest.fixture(scope="module")
def ordered(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """About 22,000 train rows sampled down to 2,000, from a month whose rows are in the order of
    their distance: a sample that leaned on where rows are (the first ones, one stretch of the
    file) would be far from the train split in distance and in everything that goes with it."""
    folder = tmp_path_factory.mktemp("ordered")
    month = synth_trips(28_000, seed=3).sort_values("trip_distance", kind="stable")
    write_trips(month, folder / "green_tripdata_2018-03.csv")
    summary = prepare([folder / "green_tripdata_2018-03.csv"], folder / "out", baseline_rows=2000)
    assert summary.splits["train"] >= 20_000
    assert summary.baseline_rows == 2000
    return folder / "out"


# --- every train row while they fit -------------------------------------------------------------


def test_under_the_cap_the_baseline_is_the_train_split_byte_for_byte(
    small_month_csv: Path, tmp_path: Path
) -> None:
    summary = prepare([small_month_csv], tmp_path)

    train = (tmp_path / "train.csv").read_bytes()
    assert (tmp_path / "baseline.csv").read_bytes() == SPLIT_HEADER.encode() + b"\n" + train
    assert summary.splits["train"] < BASELINE_ROWS
    assert summary.baseline_rows == summary.splits["train"]


def test_a_cap_of_exactly_the_train_rows_keeps_them_all_and_one_less_samples(
    small_month_csv: Path, tmp_path: Path
) -> None:
    train_rows = prepare([small_month_csv], tmp_path / "first").splits["train"]

    exact = prepare([small_month_csv], tmp_path / "exact", baseline_rows=train_rows)
    fewer = prepare([small_month_csv], tmp_path / "fewer", baseline_rows=train_rows - 1)

    assert baseline_lines(tmp_path / "exact") == train_lines(tmp_path / "exact")
    assert exact.baseline_rows == train_rows
    assert len(baseline_lines(tmp_path / "fewer")) == fewer.baseline_rows == train_rows - 1


# --- a sample over the cap ----------------------------------------------------------------------


def test_over_the_cap_the_baseline_is_cap_train_rows_in_input_order(
    small_month_csv: Path, tmp_path: Path
) -> None:
    summary = prepare([small_month_csv], tmp_path, baseline_rows=CAP)

    sample, train = baseline_lines(tmp_path), train_lines(tmp_path)
    assert summary.splits["train"] > 5 * CAP
    assert len(sample) == summary.baseline_rows == CAP
    assert is_subsequence(sample, train)
    # Drawn from the whole split, not its first rows (a split's rows follow the file).
    assert sample != train[:CAP]
    last = len(train) - 1 - train[::-1].index(sample[-1])
    assert last > 0.8 * len(train)


def test_the_sample_is_the_same_whatever_the_chunks_and_the_format(
    small_month_csv: Path, small_month_parquet: Path, tmp_path: Path
) -> None:
    prepare([small_month_csv], tmp_path / "csv", baseline_rows=CAP)
    prepare([small_month_csv], tmp_path / "csv-97", baseline_rows=CAP, chunk_rows=97)
    prepare([small_month_parquet], tmp_path / "parquet-97", baseline_rows=CAP, chunk_rows=97)
    prepare([small_month_parquet], tmp_path / "parquet", baseline_rows=CAP, chunk_rows=100_000)

    expected = (tmp_path / "csv" / "baseline.csv").read_bytes()
    for name in ("csv-97", "parquet-97", "parquet"):
        assert (tmp_path / name / "baseline.csv").read_bytes() == expected, name
    assert len(baseline_lines(tmp_path / "csv")) == CAP


def test_copies_of_a_trip_are_sampled_together_and_a_cut_takes_the_earliest(
    small_month: pd.DataFrame, tmp_path: Path
) -> None:
    # Part of the month three times over: every row has two copies far from it in the file. 500 is
    # not a multiple of 3, so the last trip that gets in gets in with some of its copies only. A
    # thousand trips are enough to sample 500 of their rows: chunks of 7 rows cost per chunk.
    source = tmp_path / "green_tripdata_2018-02.csv"
    write_trips(pd.concat([small_month.head(1_000)] * 3, ignore_index=True), source)

    for chunk_rows in (7, 1000, 100_000):
        prepare(
            [source], tmp_path / f"chunks-{chunk_rows}", chunk_rows=chunk_rows, baseline_rows=CAP
        )

    sample = baseline_lines(tmp_path / "chunks-100000")
    for chunk_rows in (7, 1000):
        assert baseline_lines(tmp_path / f"chunks-{chunk_rows}") == sample, chunk_rows
    assert len(sample) == CAP
    copies = pd.Series(sample).value_counts()
    assert (copies % 3 != 0).sum() == 1  # one trip cut at the cap; every other with its copies
    cut = copies[copies % 3 != 0].index[0]
    train = train_lines(tmp_path / "chunks-100000")
    once = train[: len(train) // 3]
    assert once * 3 == train
    assert len(set(once)) == len(once)
    # In input order the sample is the trips drawn as the first pass has them, then as the second
    # has them, then the third: the cut trip's copies are its earliest, so it is in the first.
    second_pass_starts = next(i for i, line in enumerate(sample) if line in sample[:i])
    assert sample.index(cut) < second_pass_starts


def test_the_draw_is_unrelated_to_the_split() -> None:
    # Were the sample drawn by the split's own hash, the rows with the smallest keys would all be
    # train rows (the split's lowest numbers are train's): among all kept rows, they are dealt to
    # the splits like any others.
    rng = np.random.default_rng(11)
    n = 100_000
    kept = {
        "total_amount": np.round(rng.uniform(3, 80, n), 2),
        "duration_minutes": np.round(rng.uniform(1, 60, n), 5),
        "passenger_count": rng.integers(1, 7, n).astype("float64"),
        "trip_distance": np.round(rng.uniform(0.1, 20, n), 2),
    }
    assert list(kept) == list(COLUMNS)

    smallest = np.argsort(baseline_key_of(kept, SPLIT_SEED))[: n // 10]
    shares = np.bincount(split_of(kept, SPLIT_SEED)[smallest], minlength=3) / smallest.size

    for share, fraction in zip(shares, SPLIT_FRACTIONS, strict=True):
        assert share == pytest.approx(
            fraction, abs=4 * math.sqrt(fraction * (1 - fraction) / smallest.size)
        )


def test_the_sample_holds_no_more_than_its_size_between_chunks() -> None:
    # What keeps memory bounded however large the train split: the sample's rows, and no others.
    rng = np.random.default_rng(3)
    sample, offered = _BaselineSample(300), []
    position = 0
    for size in rng.integers(0, 700, 60):
        rows = {name: rng.uniform(0, 100, size).round(2) for name in COLUMNS}
        keys = baseline_key_of(rows, SPLIT_SEED)
        sample.add(rows, keys, position)
        offered.append(keys)
        position += int(size)
        assert len(sample.keys) == len(sample.positions) == min(300, position)
        assert all(len(column) == len(sample.keys) for column in sample.columns.values())

    every_key = np.concatenate(offered)
    np.testing.assert_array_equal(
        np.sort(sample.positions), np.sort(np.argsort(every_key, kind="stable")[:300])
    )


# --- close to the train split -------------------------------------------------------------------


def test_the_sample_is_within_the_dkw_bound_of_the_train_split_in_every_column(
    ordered: Path,
) -> None:
    sample, train = read_split(ordered, "baseline"), read_split(ordered, "train")
    bound = dkw_bound(len(sample))
    assert bound < 0.05

    for name in COLUMNS:
        values, everything = sample[name].to_numpy(), train[name].to_numpy()
        assert cdf_distance(values, everything) <= bound, name
        # So each quantile of the sample lies between the train split's quantiles bound either
        # side of it, and (mean = min + the area above the CDF) the means differ by at most the
        # range times the bound.
        for p in (0.01, 0.1, 0.25, 0.5, 0.75, 0.9, 0.99):
            low, high = np.quantile(everything, [max(0, p - bound), min(1, p + bound)])
            assert low <= np.quantile(values, p, method="inverted_cdf") <= high, (name, p)
        spread = everything.max() - everything.min()
        assert abs(values.mean() - everything.mean()) <= spread * bound, name


def test_the_monitor_baseline_of_the_sample_is_within_the_bound_of_the_full_split(
    ordered: Path, tmp_path: Path
) -> None:
    whole = tmp_path / "whole-train.csv"
    whole.write_bytes(SPLIT_HEADER.encode() + b"\n" + (ordered / "train.csv").read_bytes())
    sampled, _ = baseline(ordered / "baseline.csv", tmp_path / "sampled")
    full, _ = baseline(whole, tmp_path / "full")
    train = read_split(ordered, "train")
    bound = dkw_bound(sampled["dataset"]["item_count"])

    # The distance the monitor measures between the sample's statistics and all the train rows.
    distances = drift_distances(sampled, {n: train[n].to_numpy() for n in COLUMNS}, COLUMNS)
    assert all(distance <= bound for distance in distances.values()), distances
    by_name = {feature["name"]: feature for feature in full["features"]}
    for feature in sampled["features"]:
        ours = feature["numerical_statistics"]
        theirs = by_name[feature["name"]]["numerical_statistics"]
        spread = theirs["max"] - theirs["min"]
        assert abs(ours["mean"] - theirs["mean"]) <= spread * bound, feature["name"]
        assert feature["inferred_type"] == by_name[feature["name"]]["inferred_type"]


# --- how many, recorded and asked for -----------------------------------------------------------


def test_summary_records_the_baseline_rows_and_the_cap(
    small_month_csv: Path, tmp_path: Path
) -> None:
    summary = prepare([small_month_csv], tmp_path, baseline_rows=CAP)

    on_disk = json.loads((tmp_path / "summary.json").read_text())
    assert (on_disk["baseline_rows"], on_disk["baseline_sample_cap"]) == (CAP, CAP)
    train = summary.splits["train"]
    assert f"baseline: {CAP:,} of {train:,} train rows (at most {CAP:,})" in summary.lines()

    prepare([small_month_csv], tmp_path / "default")
    on_disk = json.loads((tmp_path / "default" / "summary.json").read_text())
    assert (on_disk["baseline_rows"], on_disk["baseline_sample_cap"]) == (train, BASELINE_ROWS)


def prepare_cli(source: Path, out: Path, *options: str) -> Result:
    return CliRunner().invoke(cli, ["data", "prepare", str(source), "--out", str(out), *options])


def test_the_cap_is_an_option_of_the_processing_job_and_of_the_cli(
    small_month_csv: Path, tmp_path: Path
) -> None:
    job = ["--input", str(small_month_csv), "--output", str(tmp_path / "job")]

    assert main([*job, "--baseline-rows", "321"]) == 0
    result = prepare_cli(small_month_csv, tmp_path / "cli", "--baseline-rows", "321")

    assert result.exit_code == 0, result.output
    assert "baseline rows" in result.output
    for out in ("job", "cli"):
        assert len(baseline_lines(tmp_path / out)) == 321
    sampled = [(tmp_path / out / "baseline.csv").read_bytes() for out in ("job", "cli")]
    assert sampled[0] == sampled[1]


def test_a_cap_below_one_row_is_refused(small_month_csv: Path, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="baseline_rows must be at least 1"):
        prepare([small_month_csv], tmp_path / "out", baseline_rows=0)
    result = prepare_cli(small_month_csv, tmp_path / "cli", "--baseline-rows", "0")

    assert result.exit_code != 0
    assert not (tmp_path / "out").exists()
    assert not (tmp_path / "cli").exists()
