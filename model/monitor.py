"""Monitoring: captured traffic against the training baseline, in Model Monitor's formats.

Reads data-capture JSON Lines (DESIGN.md §4). Each captured row becomes
``prediction, duration_minutes, passenger_count, trip_distance``: the endpoint's output first,
then its input, the layout of the baseline's ``total_amount``-first columns, as Model Monitor
merges them. Writes ``statistics.json`` and ``constraint_violations.json``. Lines that are not
capture records, or rows with the wrong shape, are counted by reason and reported, never fatal.

Optional ground truth (SageMaker's ground-truth JSON Lines, ``eventMetadata.eventId`` matching a
capture's ``inferenceId``) adds the actual fares: their drift against the baseline's label shows
fare inflation, which the features alone cannot show.

It costs little more than reading the files: lines laid out as SageMaker writes them are read by
:mod:`model.capture_scan`, a file at a time; only the others are parsed as JSON. pandas and pyarrow
are imported only when such other lines need them, and large inputs can be read by several
processes (``workers``).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import orjson
from pipeline_common.capture import CapturedExchange, CaptureFormatError, csv_data, parse_record
from pipeline_common.payload import JSON, PayloadError, parse_rows, to_csv

from model.capture_scan import Rows, scan
from model.errors import DataFileError
from model.schema import LABEL
from model.stats import check_constraints, dataset_statistics, drift_distances

# Model Monitor's file names, as model.baseline writes them (not imported from there: it brings
# pyarrow, which reading well-formed capture does without).
STATISTICS_FILE = "statistics.json"
CONSTRAINTS_FILE = "constraints.json"
VIOLATIONS_FILE = "constraint_violations.json"
REPORT_FILE = "monitoring_report.json"
GROUND_TRUTH_FEATURE = f"ground_truth_{LABEL}"


@dataclass
class MonitoringReport:
    records: int
    rows: int
    malformed: dict[str, int]
    violations: list[dict[str, str]]
    distances: dict[str, float]
    ground_truth_rows: int = 0
    ground_truth_rmse: float | None = None
    files: list[str] = field(default_factory=list)

    @property
    def drifted_features(self) -> list[str]:
        return sorted(
            {
                v["feature_name"]
                for v in self.violations
                if v["constraint_check_type"] == "baseline_drift_check"
            }
        )


def _capture_files(paths: Iterable[Path]) -> list[Path]:
    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            files.extend(sorted(p for p in path.rglob("*.jsonl") if p.is_file()))
        elif path.is_file():
            files.append(path)
        else:
            raise DataFileError(f"{path}: no such capture file or folder")
    return files


def _lines(files: Sequence[Path]) -> Iterable[bytes]:
    for path in files:
        for line in path.read_bytes().splitlines():
            if line.strip():
                yield line


@dataclass
class Capture:
    """Captured rows as the baseline's numeric columns, and what was skipped and why."""

    columns: dict[str, np.ndarray]
    unparsable: dict[str, int]  # values that are not numbers, by column (NaN in ``columns``)
    records: int
    malformed: Counter[str]
    ids: list[Any] | None = None  # each row's request id, when asked for

    @property
    def rows(self) -> int:
        return len(next(iter(self.columns.values()))) if self.columns else 0


# Below this much capture, starting processes costs more than it saves.
PARALLEL_MIN_BYTES = 64 * 1024 * 1024


def read_capture(
    files: Sequence[Path], names: Sequence[str], with_ids: bool = False, workers: int = 1
) -> Capture:
    """The rows of capture files as ``output,input`` columns named ``names``.

    Reads what :func:`read_capture_full` reads, the same way, faster: runs of lines laid out as
    SageMaker writes them become numbers a file at a time (:func:`model.capture_scan.scan`), and
    only the other lines go through :func:`read_capture_full`'s line reader. Should any of those
    hold a value that is not a number, the whole capture is read again by
    :func:`read_capture_full`, whose columns then come from one parse of every row. With
    ``workers`` above one, a large capture's files are read by that many forked processes: for a
    process of its own, such as the command line's, not for a thread of a server's (the local
    cloud's monitoring schedules read with one).
    """
    width = len(names)
    read = partial(_read_file, width=width, with_ids=with_ids)
    results = _map_files(read, files, workers)
    malformed: Counter[str] = Counter()
    for result in results:
        malformed.update(result.malformed)
    blocks: list[np.ndarray | list[str]] = []
    ids: list[Any] | None = [] if with_ids else None
    other: list[str] = []  # every row of the full reader, width checked, in order
    for result in results:
        for index, block in enumerate(result.blocks):
            block_ids = result.ids[index] if result.ids is not None else None
            if isinstance(block, list):
                kept, block_ids = _of_width(block, block_ids, width, malformed)
                other.extend(kept)
                blocks.append(kept)
            else:
                blocks.append(block)
            if ids is not None and block_ids is not None:
                ids.extend(block_ids)
    other_values = np.empty((0, width))
    if other:
        parsed = _parse_numbers(other, names)
        if parsed is None:
            return read_capture_full(files, names, with_ids)
        other_values = np.column_stack([parsed[name] for name in names])
    pieces: list[np.ndarray] = []
    taken = 0
    for block in blocks:
        if isinstance(block, list):
            pieces.append(other_values[taken : taken + len(block)])
            taken += len(block)
        else:
            pieces.append(block)
    values = np.concatenate(pieces) if pieces else np.empty((0, width))
    columns = {name: np.ascontiguousarray(values[:, j]) for j, name in enumerate(names)}
    records = sum(result.records for result in results)
    return Capture(columns, {}, records, malformed, ids)


@dataclass
class _FileRows:
    """One capture file read: blocks of rows in order, numbers or the full reader's text rows."""

    records: int
    malformed: Counter[str]
    blocks: list[np.ndarray | list[str]]
    ids: list[list[Any]] | None  # each block's request ids, when asked for


def _read_file(path: Path, width: int, with_ids: bool) -> _FileRows:
    result = _FileRows(0, Counter(), [], [] if with_ids else None)
    for part in scan(path.read_bytes(), width, with_ids):
        if isinstance(part, Rows):
            result.records += len(part.values)
            result.blocks.append(part.values)
            if result.ids is not None:
                result.ids.append(part.ids or [])
        else:
            rows: list[str] = []
            row_ids: list[Any] | None = [] if with_ids else None
            result.records += _read_lines(part.lines, rows, row_ids, result.malformed)
            result.blocks.append(rows)
            if result.ids is not None and row_ids is not None:
                result.ids.append(row_ids)
    return result


def _map_files(
    read: Callable[[Path], _FileRows], files: Sequence[Path], workers: int
) -> list[_FileRows]:
    """``read`` of every file, in order: by ``workers`` forked processes if that pays."""
    workers = min(workers, len(files))
    if workers > 1 and sys.platform == "linux":
        if sum(path.stat().st_size for path in files) >= PARALLEL_MIN_BYTES:
            import multiprocessing

            with multiprocessing.get_context("fork").Pool(workers) as pool:
                return pool.map(read, files, chunksize=1)
    return [read(path) for path in files]


def read_capture_full(
    files: Sequence[Path], names: Sequence[str], with_ids: bool = False
) -> Capture:
    """The rows of capture files as ``output,input`` columns named ``names``: every line parsed.

    One pass of ``orjson`` over the lines, then one CSV read of all the rows. A record with one
    CSV row in and one value out, the common case, takes the fast path (:func:`csv_data`, nothing
    to split); anything else (several rows, JSON or BASE64 payloads, lines that are not capture
    records) goes through :func:`parse_record` and is split into rows. Request ids (for joining
    ground truth) are kept only ``with_ids``.
    """
    rows: list[str] = []
    ids: list[Any] | None = [] if with_ids else None
    malformed: Counter[str] = Counter()
    records = 0
    for path in files:
        records += _read_lines(path.read_bytes().splitlines(), rows, ids, malformed)
    rows, ids = _of_width(rows, ids, len(names), malformed)
    columns, unparsable = _parse_rows(rows, names)
    return Capture(columns, unparsable, records, malformed, ids)


def _read_lines(
    lines: Iterable[bytes], rows: list[str], ids: list[Any] | None, malformed: Counter[str]
) -> int:
    """Capture lines' ``output,input`` rows (and request ids) appended; how many were records."""
    records = 0
    for line in lines:
        try:
            record = orjson.loads(line)
        except orjson.JSONDecodeError:
            if line.strip():  # a blank line is not a record
                records += 1
                malformed["not_json"] += 1
            continue
        records += 1
        merged: list[str] | None
        data = csv_data(record)
        if data is not None:
            source, answer = data[0].strip(), data[1].strip()
            row = f"{answer},{source}"
            # One row in, one value out, no line breaks: the one row that splitting gives.
            if source and answer and "," not in answer and row.isprintable():
                rows.append(row)
                if ids is not None:
                    ids.append(_request_id(record))
                continue
            merged = _merged_rows(*_csv_rows(*data))
        else:
            try:
                exchange = parse_record(record)
            except CaptureFormatError:
                malformed["not_a_capture_record"] += 1
                continue
            try:
                merged = _merged_rows(*_exchange_rows(exchange))
            except (PayloadError, ValueError, KeyError, TypeError):
                malformed["unreadable_json_payload"] += 1
                continue
        if merged is None:
            malformed["input_output_row_mismatch"] += 1
            continue
        rows.extend(merged)
        if ids is not None:
            ids.extend([_request_id(record)] * len(merged))
    return records


def _of_width(
    rows: list[str], ids: list[Any] | None, width: int, malformed: Counter[str]
) -> tuple[list[str], list[Any] | None]:
    """The rows of ``width`` comma-separated values (and their ids); the others are counted."""
    commas = width - 1
    found = [row.count(",") for row in rows]
    if found.count(commas) == len(found):
        return rows, ids
    keep = []
    for index, count in enumerate(found):
        if count == commas:
            keep.append(index)
        else:
            malformed["too_few_columns" if count < commas else "too_many_columns"] += 1
    return [rows[i] for i in keep], None if ids is None else [ids[i] for i in keep]


def _request_id(record: Any) -> Any:
    """The id that ground truth names a captured request by: its inferenceId, else its eventId."""
    metadata = record["eventMetadata"]
    return metadata.get("inferenceId") or str(metadata["eventId"])


def _csv_rows(input_data: str, output_data: str) -> tuple[list[str], list[str]]:
    """Request rows, one a line, and answers, one a line or comma-separated."""
    return input_data.strip().splitlines(), output_data.strip().replace(",", "\n").splitlines()


def _merged_rows(inputs: list[str], outputs: list[str]) -> list[str] | None:
    """``output,input`` rows, as Model Monitor merges them; None if the counts differ."""
    if len(inputs) != len(outputs):
        return None
    return [f"{answer},{source}" for source, answer in zip(inputs, outputs, strict=True)]


def _exchange_rows(exchange: CapturedExchange) -> tuple[list[str], list[str]]:
    """An exchange's request rows and answers; a JSON request or answer (the serving container's
    formats) becomes CSV rows."""
    inputs, outputs = _csv_rows(exchange.input_data, exchange.output_data)
    if exchange.input_content_type.startswith(JSON):
        inputs = [to_csv([row]) for row in parse_rows(exchange.input_data, JSON)]
    if exchange.output_content_type.startswith(JSON):
        answer = json.loads(exchange.output_data)
        scores = answer["predictions"] if isinstance(answer, dict) else answer
        outputs = [repr(float(s["score"] if isinstance(s, dict) else s)) for s in scores]
    return inputs, outputs


def _parse_numbers(rows: list[str], names: Sequence[str]) -> dict[str, np.ndarray] | None:
    """Numbers from merged rows, one CSV read; None if a value is not a number."""
    import pyarrow as pa
    import pyarrow.csv as pacsv

    try:
        table = pacsv.read_csv(
            pa.py_buffer(("\n".join(rows) + "\n").encode()),
            read_options=pacsv.ReadOptions(column_names=list(names)),
            # Rows were counted by their commas: a quote is just a character (a quoted value is
            # not a number, and is counted as such), never a field that hides a comma.
            parse_options=pacsv.ParseOptions(quote_char=False),
            convert_options=pacsv.ConvertOptions(column_types=dict.fromkeys(names, pa.float64())),
        )
    except pa.ArrowInvalid:
        return None
    return {n: table.column(n).to_numpy().astype(np.float64) for n in names}


def _parse_rows(
    rows: list[str], names: Sequence[str]
) -> tuple[dict[str, np.ndarray], dict[str, int]]:
    """Numbers from merged rows; a value that is not a number becomes NaN and is counted."""
    if not rows:
        return {name: np.empty(0) for name in names}, {}
    numbers = _parse_numbers(rows, names)
    if numbers is not None:
        return numbers, {}
    import pandas as pd
    import pyarrow as pa
    import pyarrow.csv as pacsv

    table = pacsv.read_csv(
        pa.py_buffer(("\n".join(rows) + "\n").encode()),
        read_options=pacsv.ReadOptions(column_names=list(names)),
        parse_options=pacsv.ParseOptions(quote_char=False),
        convert_options=pacsv.ConvertOptions(column_types=dict.fromkeys(names, pa.string())),
    )
    columns, unparsable = {}, {}
    for name in names:
        raw = pd.Series(table.column(name).to_pandas(), dtype="object")
        parsed = pd.to_numeric(raw, errors="coerce")
        given = raw.notna() & (raw.str.strip() != "")
        unparsable[name] = int((given & parsed.isna()).sum())
        columns[name] = parsed.to_numpy(dtype=np.float64, na_value=np.nan)
    return columns, unparsable


def read_ground_truth(files: Sequence[Path]) -> tuple[dict[str, float], Counter[str]]:
    truth: dict[str, float] = {}
    malformed: Counter[str] = Counter()
    for line in _lines(files):
        try:
            record = orjson.loads(line)
            truth[str(record["eventMetadata"]["eventId"])] = float(
                record["groundTruthData"]["data"]
            )
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
            malformed["ground_truth_unreadable"] += 1
    return truth, malformed


@dataclass
class Baseline:
    """A baseline job's ``statistics.json`` and ``constraints.json``."""

    statistics: dict[str, Any]
    constraints: dict[str, Any]

    @property
    def names(self) -> list[str]:
        """The columns, label (the endpoint's output) first."""
        return [f["name"] for f in self.statistics["features"]]

    def label_as(self, name: str) -> Baseline:
        """The label's baseline alone, named ``name``: what ground truth is compared with."""
        label = self.names[0]

        def label_only(document: dict[str, Any]) -> dict[str, Any]:
            feature = next(f for f in document["features"] if f["name"] == label)
            return {**document, "features": [{**feature, "name": name}]}

        return Baseline(label_only(self.statistics), label_only(self.constraints))

    @classmethod
    def read(cls, baseline_dir: Path) -> Baseline:
        try:
            return cls(
                json.loads((baseline_dir / STATISTICS_FILE).read_text()),
                json.loads((baseline_dir / CONSTRAINTS_FILE).read_text()),
            )
        except (OSError, json.JSONDecodeError) as exc:
            raise DataFileError(f"{baseline_dir}: no readable baseline ({exc})") from exc


@dataclass
class Analysis:
    statistics: dict[str, Any]
    violations: list[dict[str, str]]
    distances: dict[str, float]


def analyse(
    baseline: Baseline, current: dict[str, np.ndarray], unparsable: dict[str, int] | None = None
) -> Analysis:
    """Statistics of the current columns, their violations and drift distances: the analysis."""
    return Analysis(
        statistics=dataset_statistics(current),
        violations=check_constraints(
            baseline.statistics, baseline.constraints, current, unparsable
        ),
        distances=drift_distances(baseline.statistics, current, baseline.names),
    )


def monitor(
    baseline_dir: Path,
    captures: Sequence[Path],
    out_dir: Path,
    ground_truth: Sequence[Path] = (),
    workers: int = 1,
) -> MonitoringReport:
    """Capture files (or folders of them) against a baseline; the result files in ``out_dir``.

    ``workers``: processes that may read a large capture (see :func:`read_capture`).
    """
    baseline = Baseline.read(baseline_dir)
    names = baseline.names
    files = _capture_files(captures)
    capture = read_capture(files, names, with_ids=bool(ground_truth), workers=workers)
    current = capture.columns
    analysis = analyse(baseline, current, capture.unparsable)
    statistics, violations, distances = analysis.statistics, analysis.violations, analysis.distances
    malformed = capture.malformed

    truth_rows, rmse = 0, None
    if capture.ids is not None:
        truth, bad = read_ground_truth(_capture_files(ground_truth))
        malformed.update(bad)
        ids = capture.ids
        matched = [i for i, key in enumerate(ids) if key in truth]
        if matched:
            actual = np.array([truth[ids[i]] for i in matched])
            predicted = current[names[0]][matched]
            truth_rows = len(matched)
            rmse = float(np.sqrt(np.nanmean((actual - predicted) ** 2)))
            truth_analysis = analyse(
                baseline.label_as(GROUND_TRUTH_FEATURE), {GROUND_TRUTH_FEATURE: actual}
            )
            violations += truth_analysis.violations
            distances.update(truth_analysis.distances)
            statistics["features"].append(truth_analysis.statistics["features"][0])
            statistics["model_quality"] = {"matched_rows": truth_rows, "rmse": rmse}

    report = MonitoringReport(
        records=capture.records,
        rows=capture.rows,
        malformed=dict(malformed),
        violations=violations,
        distances=distances,
        ground_truth_rows=truth_rows,
        ground_truth_rmse=rmse,
        files=[str(f) for f in files],
    )
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / STATISTICS_FILE).write_text(json.dumps(statistics, indent=2))
    (out_dir / VIOLATIONS_FILE).write_text(json.dumps({"violations": violations}, indent=2))
    (out_dir / REPORT_FILE).write_text(json.dumps(asdict(report), indent=2))
    return report


def main(argv: Sequence[str] | None = None) -> int:
    """Processing-job entry point (the monitoring schedule's analyzer)."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--baseline", type=Path, default=Path("/opt/ml/processing/baseline"))
    parser.add_argument("--input", type=Path, nargs="+", default=[Path("/opt/ml/processing/input")])
    parser.add_argument("--output", type=Path, default=Path("/opt/ml/processing/resultdata"))
    args = parser.parse_args(argv)
    report = monitor(args.baseline, args.input, args.output, workers=os.cpu_count() or 1)
    print(json.dumps({"records": report.records, "violations": len(report.violations)}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
