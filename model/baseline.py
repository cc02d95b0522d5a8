"""Baseline: ``statistics.json`` and ``constraints.json`` for a header-first CSV dataset.

What the Model Monitor analyzer's baselining job writes for ``baseline.csv``; run as
``safe-deploy baseline`` and as the local cloud's baseline processing job. Like the analyzer,
which reads every file under its dataset prefix, it takes a dataset in several files (each with
the header): the ``baseline/<host>.csv`` of a PrepareData job on several instances.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv

from model.errors import DataFileError
from model.stats import DEFAULT_COMPARISON_THRESHOLD, dataset_statistics, suggest_constraints

STATISTICS_FILE = "statistics.json"
CONSTRAINTS_FILE = "constraints.json"


def read_dataset(path: Path) -> dict[str, np.ndarray]:
    """Columns of a CSV with a header; values that are not numbers become NaN."""
    columns = _read_columns(path)
    if not columns or len(next(iter(columns.values()))) == 0:
        raise DataFileError(f"{path}: no rows")
    return columns


def _read_columns(path: Path) -> dict[str, np.ndarray]:
    try:
        table = pacsv.read_csv(path)
    except (pa.ArrowInvalid, OSError) as exc:
        raise DataFileError(f"{path}: not a CSV dataset with a header ({exc})") from exc
    columns = {}
    for name in table.column_names:
        column = table.column(name)
        if pa.types.is_null(column.type):  # no values at all (a header alone): all missing
            column = column.cast(pa.float64())
        if not (pa.types.is_integer(column.type) or pa.types.is_floating(column.type)):
            raise DataFileError(f"{path}: column {name!r} is not numeric ({column.type})")
        columns[name] = column.to_numpy().astype(np.float64)
    return columns


def read_datasets(paths: Iterable[Path]) -> dict[str, np.ndarray]:
    """The rows of several files of one dataset, one after another; their headers must agree.
    A file may hold its header alone (a host none of whose train rows were sampled)."""
    parts = [(path, _read_columns(path)) for path in paths]
    if not parts:
        raise DataFileError("no dataset files given")
    first_path, first = parts[0]
    for path, columns in parts[1:]:
        if list(columns) != list(first):
            raise DataFileError(
                f"{path}: columns {', '.join(columns)} differ from {first_path}'s"
                f" ({', '.join(first)})"
            )
    joined = {name: np.concatenate([columns[name] for _, columns in parts]) for name in first}
    if not joined or len(next(iter(joined.values()))) == 0:
        raise DataFileError(f"{', '.join(str(path) for path, _ in parts)}: no rows")
    return joined


def baseline(
    dataset: Path | Sequence[Path],
    out_dir: Path,
    comparison_threshold: float = DEFAULT_COMPARISON_THRESHOLD,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Statistics and suggested constraints of the dataset: one file, or several in order."""
    files = [dataset] if isinstance(dataset, Path) else list(dataset)
    statistics = dataset_statistics(read_datasets(files))
    constraints = suggest_constraints(statistics, comparison_threshold)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / STATISTICS_FILE).write_text(json.dumps(statistics, indent=2))
    (out_dir / CONSTRAINTS_FILE).write_text(json.dumps(constraints, indent=2))
    return statistics, constraints


def main(argv: Sequence[str] | None = None) -> int:
    """Processing-job entry point (Model Monitor analyzer layout)."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--input", type=Path, default=Path("/opt/ml/processing/input/baseline"))
    parser.add_argument("--output", type=Path, default=Path("/opt/ml/processing/output"))
    parser.add_argument("--comparison-threshold", type=float, default=DEFAULT_COMPARISON_THRESHOLD)
    args = parser.parse_args(argv)
    files = [args.input]
    if args.input.is_dir():
        files = sorted(p for p in args.input.rglob("*.csv"))
        if not files:
            raise SystemExit(f"error: no CSV under {args.input}")
    baseline(files, args.output, args.comparison_threshold)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
