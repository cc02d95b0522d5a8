"""Prepare and train on 10 million rows with one worker and with N (docs/scaling.md).

    python benchmarks/scaling.py --write          # 10M rows, 1 and 2 workers, into results.md
    python benchmarks/scaling.py --rows 200000 --repeat 1     # a smoke run: prints the section
    python benchmarks/scaling.py --workers 4 --data-dir /tmp/scaling-data  # inputs kept there

Each configuration is what the pipeline runs with ``TrainingInstanceCount`` = W:

- PrepareData: ``model.prepare.prepare`` with ``train_parts`` W, one process, on one synthetic
  file (``--format``, Parquet by default: TLC publishes Parquet). The inputs are
  ``benchmarks/prepare_memory.py``'s (``make_inputs``): a million rows of ``model.synth`` per
  seed from 21 on.
- Training: W processes, hosts ``algo-1`` … ``algo-W``, laid out as the local cloud's training
  job lays them out (``JobRunner._run_cluster`` in ``safe_deploy/localcloud/sagemaker/jobs.py``):
  each an ``/opt/ml``-style root of its own with ``input/config/hyperparameters.json`` (the
  pipeline's ``model.train.DEFAULT_HYPERPARAMETERS``), ``resourceconfig.json``, its shard of the
  train parts in ``input/data/train`` (part i to host i mod W, as ``ShardedByS3Key`` deals them)
  and all of ``validation.csv`` in ``input/data/validation``; the tracker's address in
  ``DMLC_TRACKER_URI`` / ``DMLC_TRACKER_PORT`` and ``OMP_NUM_THREADS`` = cores / W, as there. The
  files are hard links to prepare's outputs, not copies.

Every process is a new interpreter that runs its part once and reports its wall-clock time, its
CPU time (every thread's) and its peak resident set: ``VmHWM`` from ``/proc/self/status``, as
``benchmarks/prepare_memory.py`` measures it (``getrusage`` cannot tell one child's peak). A
training host runs ``model.train.run_container(root)``, what ``python -m model.train --root
ROOT`` runs. A stage's time is its slowest process's own (the call, not the interpreter's start
and imports, which the parent's wall clock beside it includes). Of ``--repeat`` rounds, the
configurations taking turns, the best time counts and the highest peak. The per-row costs it
derives (seconds, core-seconds and CPU seconds per million rows) are what docs/scaling.md's AWS
estimate scales from.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import queue
import re
import shlex
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

from benchmarks.prepare_memory import (
    cpu_model,
    input_path,
    load_average,
    make_inputs,
    peak_rss_mb,
    say,
)

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results.md"
SECTION_PREFIX = "## Scaling: prepare and train on "
DEFAULT_ROWS = 10_000_000
FORMATS = ("Parquet", "CSV")
# XGBoost's idle OpenMP threads sleep instead of spinning (benchmarks/run.py does the same): on a
# machine other work shares, a spinning thread takes a core that another host needs. On SageMaker
# each host has its instance to itself.
WAIT_POLICY = "PASSIVE"


# --- children: one prepare, or one training host --------------------------------------------


def prepare_once(source: Path, out: Path, parts: int) -> None:
    """Run ``prepare`` once with ``train_parts`` and print what it took as one JSON line."""
    sys.path.insert(0, str(ROOT))
    from model.prepare import prepare

    imported = peak_rss_mb()
    started, cpu = time.perf_counter(), time.process_time()
    summary = prepare([source], out, train_parts=parts)
    result = {
        "seconds": time.perf_counter() - started,
        "cpu_seconds": time.process_time() - cpu,
        "rows": summary.rows_read,
        "kept": summary.rows_kept,
        "splits": summary.splits,
        "peak_rss_mb": peak_rss_mb(),
        "imported_rss_mb": imported,
    }
    print(json.dumps(result))


def train_host(root: Path) -> int:
    """Run one training host (``model.train.run_container``) and print what it took."""
    sys.path.insert(0, str(ROOT))
    from model.train import run_container

    imported = peak_rss_mb()
    started, cpu = time.perf_counter(), time.process_time()
    code = run_container(root, progress=None)
    result = {
        "seconds": time.perf_counter() - started,
        "cpu_seconds": time.process_time() - cpu,
        "peak_rss_mb": peak_rss_mb(),
        "imported_rss_mb": imported,
    }
    print(json.dumps(result))
    return code


# --- the parent -------------------------------------------------------------------------------


@dataclass
class Process:
    """One worker process of a stage: the best of its rounds."""

    name: str
    rows_held: int  # prepare: input rows; a training host: its train shard + validation
    seconds: float
    cpu_seconds: float
    peak_rss_mb: float
    imported_rss_mb: float


@dataclass
class Stage:
    wall_seconds: float
    processes: list[Process]

    @property
    def cpu_seconds(self) -> float:
        return sum(p.cpu_seconds for p in self.processes)

    @property
    def work_seconds(self) -> float:
        """The slowest process's own time: the stage's work, without interpreter starts."""
        return max(p.seconds for p in self.processes)


@dataclass
class Configuration:
    workers: int
    rows: int = 0
    train_rows: int = 0
    validation_rows: int = 0
    prepare: list[Stage] = field(default_factory=list)
    train: list[Stage] = field(default_factory=list)
    rmse: list[float] = field(default_factory=list)
    rounds_run: int = 0

    def best(self, stage: str) -> Stage:
        """The rounds of a stage as one: the best times and the highest peaks."""
        rounds: list[Stage] = getattr(self, stage)
        processes = [
            Process(
                same[0].name,
                same[0].rows_held,
                min(p.seconds for p in same),
                min(p.cpu_seconds for p in same),
                max(p.peak_rss_mb for p in same),
                max(p.imported_rss_mb for p in same),
            )
            for same in zip(*(r.processes for r in rounds), strict=True)
        ]
        return Stage(min(r.wall_seconds for r in rounds), processes)


def script(*arguments: str) -> list[str]:
    return [sys.executable, str(Path(__file__).resolve()), *arguments]


def last_json(text: str) -> dict[str, Any]:
    result: dict[str, Any] = json.loads(text.strip().splitlines()[-1])
    return result


def free_port() -> int:
    """A TCP port on the loopback interface that nothing listens on now (as the local cloud's)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


def link(source: Path, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(source, target)
    except OSError:  # another file system
        shutil.copyfile(source, target)


def count_lines(path: Path) -> int:
    lines = 0
    with path.open("rb") as handle:
        while block := handle.read(1 << 24):
            lines += block.count(b"\n")
    return lines


def run_prepare(config: Configuration, source: Path, out: Path) -> None:
    if out.exists():
        shutil.rmtree(out)
    command = script("--prepare-once", str(source), str(out), str(config.workers))
    started = time.perf_counter()
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"error: {shlex.join(command)} failed:\n{done.stderr}")
    found = last_json(done.stdout)
    config.rows = found["rows"]
    config.train_rows = found["splits"]["train"]
    config.validation_rows = found["splits"]["validation"]
    process = Process(
        "prepare",
        found["rows"],
        found["seconds"],
        found["cpu_seconds"],
        found["peak_rss_mb"],
        found["imported_rss_mb"],
    )
    config.prepare.append(Stage(wall, [process]))


def host_roots(prepared: Path, folder: Path, workers: int) -> dict[str, Path]:
    """Each host's ``/opt/ml``: its config, its shard of the train parts, all of validation."""
    from model.train import DEFAULT_HYPERPARAMETERS, RESOURCE_CONFIG

    if folder.exists():
        shutil.rmtree(folder)
    hosts = [f"algo-{index}" for index in range(1, workers + 1)]
    roots = {host: folder / host / "opt" / "ml" for host in hosts}
    parts = sorted((prepared / "train").glob("part-*.csv")) or [prepared / "train.csv"]
    for index, (host, root) in enumerate(roots.items()):
        config = root / "input" / "config"
        config.mkdir(parents=True)
        (config / "hyperparameters.json").write_text(json.dumps(DEFAULT_HYPERPARAMETERS))
        resources = {"current_host": host, "hosts": hosts, "network_interface_name": "eth0"}
        (config / RESOURCE_CONFIG).write_text(json.dumps(resources))
        for part in parts[index::workers]:
            link(part, root / "input" / "data" / "train" / part.name)
        validation = prepared / "validation.csv"
        link(validation, root / "input" / "data" / "validation" / validation.name)
    return roots


def run_training(config: Configuration, roots: dict[str, Path]) -> None:
    """Every host at once, as one job; the stage's wall time is the first start to the last
    exit. A failed host stops the others: they would wait for it."""
    environment = {
        **os.environ,
        "DMLC_TRACKER_URI": "127.0.0.1",
        "DMLC_TRACKER_PORT": str(free_port()),
        "OMP_NUM_THREADS": str(max(1, (os.cpu_count() or 1) // len(roots))),
        "OMP_WAIT_POLICY": os.environ.get("OMP_WAIT_POLICY", WAIT_POLICY),
    }
    exited: queue.Queue[tuple[str, int]] = queue.Queue()
    workers: dict[str, subprocess.Popen[bytes]] = {}
    started = time.perf_counter()
    try:
        for host, root in roots.items():
            logs = root.parent  # beside the host's /opt/ml, as the local cloud's training.log
            with (logs / "stdout").open("wb") as out, (logs / "stderr").open("wb") as err:
                workers[host] = subprocess.Popen(
                    script("--train-host", str(root)),
                    cwd=ROOT,
                    env=environment,
                    stdout=out,
                    stderr=err,
                )
            threading.Thread(
                target=lambda h=host, w=workers[host]: exited.put((h, w.wait())), daemon=True
            ).start()
        for _ in workers:
            host, code = exited.get()
            if code != 0:
                failure = roots[host] / "output" / "failure"
                reason = (
                    failure if failure.exists() else roots[host].parent / "stderr"
                ).read_text()
                raise SystemExit(f"error: training host {host} failed:\n{reason}")
    finally:
        for worker in workers.values():
            if worker.poll() is None:
                worker.kill()
                worker.wait()
    wall = time.perf_counter() - started
    processes = []
    for host, root in roots.items():
        found = last_json((root.parent / "stdout").read_text())
        held = sum(count_lines(p) for p in (root / "input" / "data").rglob("*.csv"))
        processes.append(
            Process(
                host,
                held,
                found["seconds"],
                found["cpu_seconds"],
                found["peak_rss_mb"],
                found["imported_rss_mb"],
            )
        )
    report = json.loads((roots["algo-1"] / "output" / "metrics.json").read_text())
    config.rmse.append(report["final_metrics"]["validation:rmse"])
    config.rounds_run = report["rounds_run"]
    config.train.append(Stage(wall, processes))


def millions(rows: int) -> float:
    return rows / 1e6


def rows_label(rows: int) -> str:
    return f"{rows // 1_000_000}M" if rows % 1_000_000 == 0 else f"{rows:,}"


def section(
    configs: list[Configuration], args: argparse.Namespace, command: str, load_before: str
) -> str:
    """The scaling section of benchmarks/results.md."""
    cores = os.cpu_count() or 1
    import xgboost  # its distribution is xgboost-cpu here, xgboost elsewhere

    packages = f"xgboost {xgboost.__version__}, " + ", ".join(
        f"{name} {metadata.version(name)}" for name in ("numpy", "pandas", "pyarrow")
    )
    threads = {c.workers: max(1, cores // c.workers) for c in configs}
    wait_policy = os.environ.get("OMP_WAIT_POLICY", WAIT_POLICY)
    lines = [
        f"{SECTION_PREFIX}{rows_label(args.rows)} rows",
        "",
        f"- command: `{command}`",
        f"- date: {datetime.now(UTC).strftime('%Y-%m-%d %H:%M UTC')}",
        f"- machine: {cores} cores (`os.cpu_count()`), {cpu_model()}; Python"
        f" {platform.python_version()}; {packages}; niceness {os.nice(0)}",
        f"- load average (1, 5, 15 min): {load_before} at the start, {load_average()} at the end",
        f"- input: {args.rows:,} synthetic rows (`model.synth`, as `benchmarks/prepare_memory.py`"
        f" builds them), one {args.format} file",
        "- each configuration: PrepareData (`prepare`, one process, `train_parts` = workers), then"
        " one training job of that many hosts (`model.train.run_container`, a process each, laid"
        " out as the local cloud's `_run_cluster` lays them out: its own shard of the train parts,"
        " all of validation, `OMP_NUM_THREADS` = cores / hosts"
        f" ({', '.join(f'{t} with {w} host' + 's' * (w > 1) for w, t in threads.items())}),"
        f" OMP_WAIT_POLICY {wait_policy}); the pipeline's hyperparameters"
        " (`model.train.DEFAULT_HYPERPARAMETERS`: 50 rounds, depth 9)",
        f"- of {args.repeat} round(s), the configurations taking turns: the best time and the"
        " highest peak. A stage's time is its slowest process's own, from the call to its exit"
        " (prepare's `prepare`, a host's `run_container`: the work a SageMaker job's billed time"
        " holds besides starting); `process` is the parent's wall clock, from starting the first"
        " process to the last one's exit (interpreter start and imports included). CPU is every"
        " thread's, summed over the stage's processes; peak RSS is each process's `VmHWM`",
        "",
        "| workers | prepare (s) | prepare, process (s) | prepare CPU (s) | training (s)"
        " | training, processes (s) | training CPU (s) | validation RMSE | rounds | train rows"
        " | validation rows |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for c in configs:
        prepare, train = c.best("prepare"), c.best("train")
        spread = max(c.rmse) - min(c.rmse)
        rmse = f"{c.rmse[0]:.4f}" + (f" (±{spread:.4f})" if spread > 5e-5 else "")
        lines.append(
            f"| {c.workers} | {prepare.work_seconds:.1f} | {prepare.wall_seconds:.1f}"
            f" | {prepare.cpu_seconds:.1f} | {train.work_seconds:.1f} | {train.wall_seconds:.1f}"
            f" | {train.cpu_seconds:.1f} | {rmse} | {c.rounds_run}"
            f" | {c.train_rows:,} | {c.validation_rows:,} |"
        )
    lines += [
        "",
        "Every process (best of the rounds; rows held: prepare's input rows, a host's train shard"
        " and the whole validation set):",
        "",
        "| workers | process | rows held | seconds (in-process) | CPU (s) | peak RSS (MB)"
        " | of which imports (MB) | RSS above imports, MB per million rows held |",
        "|---:|---|---:|---:|---:|---:|---:|---:|",
    ]
    for c in configs:
        for stage in ("prepare", "train"):
            for p in c.best(stage).processes:
                above = (p.peak_rss_mb - p.imported_rss_mb) / millions(p.rows_held)
                per_million = "-" if stage == "prepare" else f"{above:,.0f}"  # bounded
                lines.append(
                    f"| {c.workers} | {p.name} | {p.rows_held:,} | {p.seconds:.1f}"
                    f" | {p.cpu_seconds:.1f} | {p.peak_rss_mb:,.0f} | {p.imported_rss_mb:,.0f}"
                    f" | {per_million} |"
                )
    lines += [
        "",
        f"Per-row costs (what docs/scaling.md's AWS estimate scales from): the stage's time per"
        f" million rows, that time x the {cores} cores the stage had (core-seconds), and CPU"
        " seconds; prepare per million input rows, training per million train rows:",
        "",
        "| stage | workers | s / M rows | core-s / M rows (s x cores) | CPU s / M rows |",
        "|---|---:|---:|---:|---:|",
    ]
    for c in configs:
        for name, best, rows in (
            ("prepare", c.best("prepare"), c.rows),
            ("training", c.best("train"), c.train_rows),
        ):
            wall = best.work_seconds / millions(rows)
            lines.append(
                f"| {name} | {c.workers} | {wall:.2f} | {wall * cores:.2f}"
                f" | {best.cpu_seconds / millions(rows):.2f} |"
            )
    if len(configs) > 1:
        one, many = configs[0], configs[-1]
        speedup = one.best("train").work_seconds / many.best("train").work_seconds
        lines += [
            "",
            f"- {many.workers} workers against 1: training {speedup:.2f}x as fast on the same"
            f" {cores} cores; validation RMSE {many.rmse[0]:.4f} against {one.rmse[0]:.4f}"
            f" ({many.rmse[0] - one.rmse[0]:+.4f}); largest training host peak"
            f" {max(p.peak_rss_mb for p in many.best('train').processes):,.0f} MB against"
            f" {max(p.peak_rss_mb for p in one.best('train').processes):,.0f} MB.",
        ]
    return "\n".join(lines) + "\n"


def write_section(text: str, path: Path = RESULTS) -> None:
    """Put the section in ``path`` in place of an earlier one, or at the end (as
    ``benchmarks/cold_start.py`` does with its own)."""
    current = path.read_text() if path.exists() else "# Benchmark results\n"
    pattern = re.compile(rf"^{re.escape(SECTION_PREFIX)}.*?(?=^## |\Z)", re.MULTILINE | re.DOTALL)
    if pattern.search(current):
        updated = pattern.sub(lambda _: text + "\n", current, count=1).rstrip("\n") + "\n"
    else:
        updated = current.rstrip("\n") + "\n\n" + text
    path.write_text(updated)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=(__doc__ or "").split("\n", 1)[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--rows", type=int, default=DEFAULT_ROWS, help="input rows")
    parser.add_argument("--workers", type=int, default=2, help="the workers compared with 1")
    parser.add_argument("--format", choices=FORMATS, default=FORMATS[0], help="input file format")
    parser.add_argument("--repeat", type=int, default=3, help="rounds; the best time counts")
    parser.add_argument("--data-dir", type=Path, help="keep the inputs here (made if missing)")
    parser.add_argument("--write", action="store_true", help=f"put the section in {RESULTS}")
    parser.add_argument("--prepare-once", nargs=3, help=argparse.SUPPRESS)
    parser.add_argument("--train-host", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.rows < 1000:
        parser.error("--rows must be at least 1,000")
    if args.rows > 1_000_000 and args.rows % 1_000_000:
        parser.error("--rows above a million must be whole millions (prepare_memory's inputs)")
    if args.workers < 2:
        parser.error("--workers must be at least 2")
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.prepare_once:
        source, out, parts = args.prepare_once
        prepare_once(Path(source), Path(out), int(parts))
        return 0
    if args.train_host:
        return train_host(args.train_host)

    sys.path.insert(0, str(ROOT))
    command = shlex.join(["python", "benchmarks/scaling.py", *sys.argv[1:]])
    load_before = load_average()
    configs = [Configuration(1), Configuration(args.workers)]
    with tempfile.TemporaryDirectory(prefix="scaling-") as tmp:
        data = (args.data_dir or Path(tmp)) / f"rows-{args.rows}"
        source = input_path(data, args.format, args.rows)
        if not source.exists():
            say(f"writing {args.rows:,} synthetic rows to {data}")
            make_inputs([args.rows], data)
        work = Path(tmp)
        for attempt in range(args.repeat):
            for config in configs:  # taking turns: load changes hit both alike
                name = f"{config.workers} worker(s), round {attempt + 1} of {args.repeat}"
                prepared = work / f"prepared-{config.workers}"
                say(f"{name}: prepare")
                run_prepare(config, source, prepared)
                say(f"{name}: training")
                hosts = work / f"train-{config.workers}"
                run_training(config, host_roots(prepared, hosts, config.workers))
                shutil.rmtree(hosts)
                shutil.rmtree(prepared)
    text = section(configs, args, command, load_before)
    print(text)
    if args.write:
        write_section(text)
        say(f"wrote {RESULTS}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
