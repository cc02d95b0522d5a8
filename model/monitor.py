"""Monitoring: captured traffic against the training baseline, in Model Monitor's formats.

Reads data-capture JSON Lines (DESIGN.md §4). Each captured row becomes
``prediction, duration_minutes, passenger_count, trip_distance``: the endpoint's output first,
then its input, the layout of the baseline's ``total_amount``-first columns, as Model Monitor
merges them. Writes ``statistics.json`` and ``constraint_violations.json``. Lines that are not
capture records, or rows with the wrong shape, are counted by reason and reported, never fatal.

Optional ground truth (SageMaker's ground-truth JSON Lines, ``eventMetadata.eventId`` matching a
capture's ``inferenceId``) adds the actual fares: their drift against the baseline's label shows
fare inflation, which the features alone cannot show.
"""

from __future__ import annotations

import argparse
import json
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import orjson
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv
from pipeline_common.capture import CapturedExchange, CaptureFormatError, parse_record
from pipeline_common.payload import JSON, PayloadError, parse_rows, to_csv

from model.baseline import CONSTRAINTS_FILE, STATISTICS_FILE
from model.errors import DataFileError
from model.schema import LABEL
from model.stats import check_constraints, dataset_statistics, drift_distances

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


def read_capture(
    files: Sequence[Path], width: int
) -> tuple[list[str], list[str | None], int, Counter[str]]:
    """Merged ``output,input`` rows, their inference ids, the record count, malformed counts."""
    rows: list[str] = []
    ids: list[str | None] = []
    malformed: Counter[str] = Counter()
    records = 0
    commas = width - 1
    for line in _lines(files):
        records += 1
        try:
            exchange = parse_record(orjson.loads(line))
        except orjson.JSONDecodeError:
            malformed["not_json"] += 1
            continue
        except CaptureFormatError:
            malformed["not_a_capture_record"] += 1
            continue
        if exchange.input_content_type.startswith(JSON) or exchange.output_content_type.startswith(
            JSON
        ):
            try:
                inputs, outputs = _json_rows(exchange)
            except (PayloadError, ValueError, KeyError, TypeError):
                malformed["unreadable_json_payload"] += 1
                continue
        else:
            inputs = exchange.input_data.strip().splitlines()
            outputs = exchange.output_data.strip().replace(",", "\n").splitlines()
        if len(inputs) != len(outputs):
            malformed["input_output_row_mismatch"] += 1
            continue
        for source, answer in zip(inputs, outputs, strict=True):
            merged = f"{answer},{source}"
            found = merged.count(",")
            if found != commas:
                malformed["too_few_columns" if found < commas else "too_many_columns"] += 1
                continue
            rows.append(merged)
            ids.append(exchange.inference_id or exchange.event_id)
    return rows, ids, records, malformed


def _json_rows(exchange: CapturedExchange) -> tuple[list[str], list[str]]:
    """A JSON request or answer (the serving container's formats) as CSV rows."""
    if exchange.input_content_type.startswith(JSON):
        inputs = [to_csv([row]) for row in parse_rows(exchange.input_data, JSON)]
    else:
        inputs = exchange.input_data.strip().splitlines()
    if exchange.output_content_type.startswith(JSON):
        answer = json.loads(exchange.output_data)
        scores = answer["predictions"] if isinstance(answer, dict) else answer
        outputs = [repr(float(s["score"] if isinstance(s, dict) else s)) for s in scores]
    else:
        outputs = exchange.output_data.strip().replace(",", "\n").splitlines()
    return inputs, outputs


def _parse_rows(
    rows: list[str], names: Sequence[str]
) -> tuple[dict[str, np.ndarray], dict[str, int]]:
    """Numbers from merged rows; a value that is not a number becomes NaN and is counted."""
    if not rows:
        return {name: np.empty(0) for name in names}, {}
    data = ("\n".join(rows) + "\n").encode()
    read = pacsv.ReadOptions(column_names=list(names))
    try:
        table = pacsv.read_csv(
            pa.py_buffer(data),
            read_options=read,
            convert_options=pacsv.ConvertOptions(column_types=dict.fromkeys(names, pa.float64())),
        )
        return {n: table.column(n).to_numpy().astype(np.float64) for n in names}, {}
    except pa.ArrowInvalid:
        pass
    table = pacsv.read_csv(
        pa.py_buffer(data),
        read_options=read,
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


def monitor(
    baseline_dir: Path,
    captures: Sequence[Path],
    out_dir: Path,
    ground_truth: Sequence[Path] = (),
) -> MonitoringReport:
    try:
        baseline_statistics = json.loads((baseline_dir / STATISTICS_FILE).read_text())
        constraints = json.loads((baseline_dir / CONSTRAINTS_FILE).read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise DataFileError(f"{baseline_dir}: no readable baseline ({exc})") from exc
    names = [f["name"] for f in baseline_statistics["features"]]
    files = _capture_files(captures)
    rows, ids, records, malformed = read_capture(files, len(names))
    current, unparsable = _parse_rows(rows, names)
    statistics = dataset_statistics(current)
    violations = check_constraints(baseline_statistics, constraints, current, unparsable)
    distances = drift_distances(baseline_statistics, current, names)

    truth_rows, rmse = 0, None
    if ground_truth:
        truth, bad = read_ground_truth(_capture_files(ground_truth))
        malformed.update(bad)
        matched = [i for i, key in enumerate(ids) if key in truth]
        if matched:
            actual = np.array([truth[ids[i]] for i in matched])  # type: ignore[index]
            predicted = current[names[0]][matched]
            truth_rows = len(matched)
            rmse = float(np.sqrt(np.nanmean((actual - predicted) ** 2)))
            label_constraint = next(c for c in constraints["features"] if c["name"] == names[0])
            label_stats = next(f for f in baseline_statistics["features"] if f["name"] == names[0])
            renamed_stats = {
                **baseline_statistics,
                "features": [{**label_stats, "name": GROUND_TRUTH_FEATURE}],
            }
            renamed_constraints = {
                **constraints,
                "features": [{**label_constraint, "name": GROUND_TRUTH_FEATURE}],
            }
            truth_columns = {GROUND_TRUTH_FEATURE: actual}
            violations += check_constraints(renamed_stats, renamed_constraints, truth_columns)
            distances.update(drift_distances(renamed_stats, truth_columns, [GROUND_TRUTH_FEATURE]))
            statistics["features"].append(dataset_statistics(truth_columns)["features"][0])
            statistics["model_quality"] = {"matched_rows": truth_rows, "rmse": rmse}

    report = MonitoringReport(
        records=records,
        rows=len(rows),
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
    report = monitor(args.baseline, args.input, args.output)
    print(json.dumps({"records": report.records, "violations": len(report.violations)}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
