"""Peak memory and time of data preparation by input size (issue 13, "Preparation in bounded
memory").

    python benchmarks/prepare_memory.py                    # 1M, 5M and 10M rows, CSV and Parquet
    python benchmarks/prepare_memory.py --rows 1000000 --repeat 3
    python benchmarks/prepare_memory.py --before /tmp/prepare-before/prepare_before.py

The inputs are synthetic months from ``model.synth``, as ``benchmarks/run.py`` builds its prepare
input: the first million rows are ``synth_trips(1_000_000, seed=21)``, the same file run.py times,
and every further million is the next seed, appended (a Parquet row group per million rows). They
are written once, by a child process, into a temporary folder (``--data-dir`` keeps them).

Every run of ``prepare`` is a new interpreter that imports the module, notes its resident set,
runs ``prepare`` once on one file and reports the wall-clock time and its peak resident set:
``VmHWM`` from ``/proc/self/status``, the high-water mark of the process's own memory, which the
interpreter, numpy, pandas and pyarrow are part of. ``getrusage`` is no use here: a child's
``ru_maxrss`` starts from its parent's, and ``RUSAGE_CHILDREN`` keeps the largest child so far.
Of ``--repeat`` runs the best time counts, and the highest peak, so that neither flatters.
``--before`` runs another copy of ``model/prepare.py`` (kept outside the repository) the same way,
taking turns with the current one.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import shlex
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
CURRENT = ROOT / "model" / "prepare.py"
PART_ROWS = 1_000_000
FIRST_SEED = 21  # benchmarks/run.py's prepare month
SIZES = (1_000_000, 5_000_000, 10_000_000)
FORMATS = ("CSV", "Parquet")
MEMORY_TARGET_MB = 1000.0  # at most 1 GB at 10M rows


def say(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def load_average() -> str:
    return ", ".join(f"{value:.2f}" for value in os.getloadavg())


def peak_rss_mb() -> float:
    """The process's peak resident set so far (VmHWM), in MB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024 / 1e6
    raise RuntimeError("no VmHWM in /proc/self/status")


# --- children: one writes the inputs, one runs prepare once ----------------------------------


def make_inputs(sizes: list[int], data: Path) -> None:
    """CSV and Parquet files of each size, built from the same one-million-row parts."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from model.synth import synth_trips, write_trips

    largest = max(sizes)
    data.mkdir(parents=True, exist_ok=True)
    csv_handles = {size: input_path(data, "CSV", size).open("wb") for size in sizes}
    parquet_writers: dict[int, Any] = {}
    part_csv = data / "part.csv"
    try:
        for index, start in enumerate(range(0, largest, PART_ROWS)):
            rows = min(PART_ROWS, largest - start)
            say(f"synthetic rows {start:,} to {start + rows:,}")
            frame = synth_trips(rows, seed=FIRST_SEED + index)
            write_trips(frame, part_csv)
            text = part_csv.read_bytes()
            body = text[
                text.index(b"\n\n") + 2 :
            ]  # write_trips puts an empty line after the header
            table = pa.Table.from_pandas(frame, preserve_index=False)
            for size in sizes:
                if start >= size:
                    continue
                if len(body) == 0 or start + rows > size:
                    raise SystemExit(f"error: {size:,} is not a whole number of {PART_ROWS:,} rows")
                csv_handles[size].write(text if start == 0 else body)
                if size not in parquet_writers:
                    path = input_path(data, "Parquet", size)
                    parquet_writers[size] = pq.ParquetWriter(path, table.schema)
                parquet_writers[size].write_table(table, row_group_size=PART_ROWS)
    finally:
        for handle in csv_handles.values():
            handle.close()
        for writer in parquet_writers.values():
            writer.close()
        part_csv.unlink(missing_ok=True)


def run_once(module_path: Path, source: Path, out: Path, chunk_rows: int | None) -> None:
    """Import the module, run ``prepare`` once and print what it took as one JSON line."""
    sys.path.insert(0, str(ROOT))
    if module_path.resolve() == CURRENT:
        import model.prepare as module
    else:
        spec = importlib.util.spec_from_file_location("prepare_under_test", module_path)
        assert spec is not None
        assert spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module  # dataclasses look their module up while it loads
        spec.loader.exec_module(module)
    options: dict[str, Any] = {} if chunk_rows is None else {"chunk_rows": chunk_rows}
    imported = peak_rss_mb()
    started = time.perf_counter()
    summary = module.prepare([source], out, **options)
    seconds = time.perf_counter() - started
    result = {
        "seconds": seconds,
        "rows": summary.rows_read,
        "kept": summary.rows_kept,
        "peak_rss_mb": peak_rss_mb(),
        "imported_rss_mb": imported,
    }
    print(json.dumps(result))


# --- the parent: inputs, turns, table ---------------------------------------------------------


def input_path(data: Path, kind: str, size: int) -> Path:
    return data / f"month-{size // 1_000_000}m.{'csv' if kind == 'CSV' else 'parquet'}"


def child(*arguments: str) -> str:
    command = [sys.executable, str(Path(__file__).resolve()), *arguments]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"error: {shlex.join(command)} failed:\n{done.stderr}")
    return done.stdout


@dataclass
class Measurement:
    variant: str
    kind: str
    size: int
    seconds: float
    rows: int
    peak_rss_mb: float
    imported_rss_mb: float


def measure(
    variants: dict[str, Path], kind: str, size: int, data: Path, args: argparse.Namespace
) -> list[Measurement]:
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in variants}
    for attempt in range(args.repeat):
        for name, module in variants.items():  # taking turns: load changes hit both alike
            say(f"{kind} {size:,} rows, {name}, run {attempt + 1} of {args.repeat}")
            with tempfile.TemporaryDirectory(prefix="prepared-", dir=data) as out:
                chunked = args.chunk_rows and name == "now"  # a parameter the old code lacks
                extra = ["--chunk-rows", str(args.chunk_rows)] if chunked else []
                line = child(
                    "--run-once", str(module), str(input_path(data, kind, size)), out, *extra
                )
            runs[name].append(json.loads(line.strip().splitlines()[-1]))
    return [
        Measurement(
            name,
            kind,
            size,
            min(run["seconds"] for run in found),
            found[0]["rows"],
            max(run["peak_rss_mb"] for run in found),
            max(run["imported_rss_mb"] for run in found),
        )
        for name, found in runs.items()
    ]


def cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def section(
    measurements: list[Measurement], args: argparse.Namespace, command: str, load_before: str
) -> str:
    """The "Preparation memory" section of benchmarks/results.md."""
    packages = ", ".join(
        f"{name} {metadata.version(name)}" for name in ("numpy", "pandas", "pyarrow")
    )
    lines = [
        "## Preparation memory",
        "",
        f"- command: `{command}`",
        f"- date: {datetime.now(UTC).strftime('%Y-%m-%d %H:%M UTC')}",
        f"- machine: {os.cpu_count()} cores, {cpu_model()}; Python {platform.python_version()};"
        f" {packages}",
        f"- load average (1, 5, 15 min): {load_before} at the start, {load_average()} at the end",
        f"- each run a new interpreter running `prepare` once; the best time and the highest peak"
        f" of {args.repeat} runs; peak RSS is the process's `VmHWM` (interpreter, numpy, pandas"
        f" and pyarrow included; their import alone is the last column)",
        "- inputs: synthetic months from `model.synth`, a million rows per seed from 21 on (the"
        " first million is `benchmarks/run.py`'s prepare month); Parquet in row groups of a"
        " million rows",
    ]
    if args.before:
        lines.append(f"- before: the whole-file `model/prepare.py`, run from `{args.before}`")
    lines += [
        "",
        "| variant | format | rows | seconds | rows/s | peak RSS (MB) | of which imports (MB) |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for m in measurements:
        lines.append(
            f"| {m.variant} | {m.kind} | {m.size:,} | {m.seconds:.3f} | {m.rows / m.seconds:,.0f}"
            f" | {m.peak_rss_mb:,.0f} | {m.imported_rss_mb:,.0f} |"
        )
    lines += ["", "| target | measured | wanted | met |", "|---|---|---|---|"]
    now = {(m.kind, m.size): m for m in measurements if m.variant == "now"}
    before = {(m.kind, m.size): m for m in measurements if m.variant == "before"}
    for kind in args.format:
        largest = now[kind, max(args.rows)]
        met = largest.peak_rss_mb <= MEMORY_TARGET_MB
        lines.append(
            f"| peak RSS, {kind}, {largest.size:,} rows | {largest.peak_rss_mb:,.0f} MB"
            f" | <= {MEMORY_TARGET_MB:,.0f} MB | {'yes' if met else '**no**'} |"
        )
        for size in args.rows if before else []:
            ratio = before[kind, size].seconds / now[kind, size].seconds
            lines.append(
                f"| throughput, {kind}, {size:,} rows | {ratio:.2f}x before's"
                f" | >= 1x | {'yes' if ratio >= 1 else '**no**'} |"
            )
    return "\n".join(lines) + "\n"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=(__doc__ or "").split("\n", 1)[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument(
        "--rows",
        type=int,
        action="append",
        help=f"input sizes, whole millions (repeatable; default {', '.join(map(str, SIZES))})",
    )
    parser.add_argument("--format", choices=FORMATS, action="append", help="(repeatable)")
    parser.add_argument("--repeat", type=int, default=3, help="runs of each; the best time counts")
    parser.add_argument("--before", type=Path, help="another copy of model/prepare.py to compare")
    parser.add_argument("--chunk-rows", type=int, help="prepare's chunk_rows (default: its own)")
    parser.add_argument("--data-dir", type=Path, help="keep the inputs here (made if missing)")
    parser.add_argument("--make-inputs", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--run-once", nargs=3, type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    args.rows = sorted(set(args.rows or SIZES))
    args.format = args.format or list(FORMATS)
    if any(size < PART_ROWS or size % PART_ROWS for size in args.rows):
        parser.error(f"--rows must be whole multiples of {PART_ROWS:,}")
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.make_inputs:
        sys.path.insert(0, str(ROOT))
        make_inputs(args.rows, args.make_inputs)
        return 0
    if args.run_once:
        module, source, out = args.run_once
        run_once(module, source, out, args.chunk_rows)
        return 0

    command = shlex.join(["python", "benchmarks/prepare_memory.py", *sys.argv[1:]])
    load_before = load_average()
    variants = {"now": CURRENT}
    if args.before:
        variants = {"before": args.before.resolve(), **variants}
    measurements: list[Measurement] = []
    with tempfile.TemporaryDirectory(prefix="prepare-memory-") as tmp:
        data = args.data_dir or Path(tmp)
        data.mkdir(parents=True, exist_ok=True)
        missing = [size for size in args.rows if not input_path(data, "CSV", size).exists()]
        missing += [size for size in args.rows if not input_path(data, "Parquet", size).exists()]
        if missing:  # all sizes are written together, from the same parts
            child("--make-inputs", str(data), *(f"--rows={size}" for size in args.rows))
        for kind in args.format:
            for size in args.rows:
                measurements += measure(variants, kind, size, data, args)
    print(section(measurements, args, command, load_before))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
