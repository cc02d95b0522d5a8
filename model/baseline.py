"""Baseline: ``statistics.json`` and ``constraints.json`` for a header-first CSV dataset.

What the Model Monitor analyzer's baselining job writes for ``baseline.csv``; run as
``safe-deploy baseline`` and as the local cloud's baseline processing job.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
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
    try:
        table = pacsv.read_csv(path)
    except (pa.ArrowInvalid, OSError) as exc:
        raise DataFileError(f"{path}: not a CSV dataset with a header ({exc})") from exc
    columns = {}
    for name in table.column_names:
        column = table.column(name)
        if not (pa.types.is_integer(column.type) or pa.types.is_floating(column.type)):
            raise DataFileError(f"{path}: column {name!r} is not numeric ({column.type})")
        columns[name] = column.to_numpy().astype(np.float64)
    if not columns or table.num_rows == 0:
        raise DataFileError(f"{path}: no rows")
    return columns


def baseline(
    dataset: Path, out_dir: Path, comparison_threshold: float = DEFAULT_COMPARISON_THRESHOLD
) -> tuple[dict[str, Any], dict[str, Any]]:
    statistics = dataset_statistics(read_dataset(dataset))
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
    source = args.input
    if source.is_dir():
        files = sorted(p for p in source.rglob("*.csv"))
        if not files:
            raise SystemExit(f"error: no CSV under {source}")
        source = files[0]
    baseline(source, args.output, args.comparison_threshold)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
