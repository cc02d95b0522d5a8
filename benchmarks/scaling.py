"""Prepare and train on 10 million rows with one worker and with N (docs/scaling.md).

    python benchmarks/scaling.py --write          # 10M rows, 1 and 2 workers, into results.md
    python benchmarks/scaling.py --rows 200000 --repeat 1     # a smoke run: prints the section
    python benchmarks/scaling.py --workers 4 --data-dir /tmp/scaling-data  # inputs kept there
    python benchmarks/scaling.py --input-files 12     # 12 input files dealt to the 2 hosts

Each configuration is what the pipeline runs with ``PrepareInstanceCount`` and
``TrainingInstanceCount`` both W:

- The input: ``benchmarks/prepare_memory.py``'s synthetic file (``make_inputs``: a million rows
  of ``model.synth`` per seed from 21 on; ``--format``, Parquet by default: TLC publishes
  Parquet), cut into ``--input-files`` files (default: the larger W) of consecutive rows,
  ``part-00000.parquet`` and on. Both configurations read these same files, so the same rows: one
  worker all of them in one folder, W workers each its share.
- PrepareData: W processes at once, hosts ``algo-1`` … ``algo-W``, laid out as the local cloud's
  processing job lays them out (``JobRunner._run_processing_hosts`` in
  ``safe_deploy/localcloud/sagemaker/jobs.py``): each a folder of its own with
  ``config/resourceconfig.json``, its share of the input files (file i to host i mod W in key
  order, as ``ShardedByS3Key`` deals them) and an output folder; each runs
  ``model.prepare.prepare`` with ``train_parts`` W and its ``Cluster``, as ``python -m
  model.prepare --train-parts W --resource-config PATH`` does, so with W > 1 its outputs are
  named after it (``train/part-algo-2-00000.csv``, ``validation/algo-2.csv``, …).
- Training: W processes, hosts ``algo-1`` … ``algo-W``, laid out as the local cloud's training
  job lays them out (``JobRunner._run_cluster``): each an ``/opt/ml``-style root of its own with
  ``input/config/hyperparameters.json`` (the pipeline's ``model.train.DEFAULT_HYPERPARAMETERS``),
  ``resourceconfig.json``, its shard of the train parts of every prepare host in
  ``input/data/train`` (W x W parts with W > 1, in key order under the shared ``prepared/train``
  prefix, part i to host i mod W, as ``ShardedByS3Key`` deals them) and every prepare host's
  validation file in ``input/data/validation``; the tracker's address in ``DMLC_TRACKER_URI`` /
  ``DMLC_TRACKER_PORT`` and ``OMP_NUM_THREADS`` = cores / W, as there. The files are hard links
  to prepare's outputs, not copies.

Every process is a new interpreter that runs its part once and reports its wall-clock time, its
CPU time (every thread's) and its peak resident set: ``VmHWM`` from ``/proc/self/status``, as
``benchmarks/prepare_memory.py`` measures it (``getrusage`` cannot tell one child's peak). A
training host runs ``model.train.run_container(root)``, what ``python -m model.train --root
ROOT`` runs. A stage's processes run at once; its time is its slowest process's own (the call,
not the interpreter's start and imports, which the parent's wall clock beside it includes). Of
``--repeat`` rounds, the configurations taking turns, the best time counts and the highest peak.
The per-row costs it derives (seconds, core-seconds and CPU seconds per million rows) are what
docs/scaling.md's AWS estimate scales from.
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
PREPARE_RESOURCE_CONFIG = "resourceconfig.json"
# What follows this line in the section is written by hand; --write keeps it.
NOTES_MARKER = "<!-- Notes below are written by hand: benchmarks/scaling.py --write keeps them. -->"


# --- children: one prepare, or one training host --------------------------------------------


def prepare_host(root: Path, parts: int) -> None:
    """Run one prepare host once: ``prepare`` on the files in ``<root>/input`` with
    ``train_parts`` and the ``Cluster`` of ``<root>/config/resourceconfig.json``, into
    ``<root>/output``; print what it took as one JSON line."""
    sys.path.insert(0, str(ROOT))
    from model.prepare import Cluster, prepare

    cluster = Cluster.read(root / "config" / PREPARE_RESOURCE_CONFIG)
    sources = sorted((root / "input").iterdir())
    imported = peak_rss_mb()
    started, cpu = time.perf_counter(), time.process_time()
    summary = prepare(sources, root / "output", train_parts=parts, cluster=cluster)
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


def hosts_of(workers: int) -> list[str]:
    return [f"algo-{index}" for index in range(1, workers + 1)]


def deal(keys: list[str], workers: int) -> list[list[str]]:
    """``ShardedByS3Key``: the keys in key order, key i to host i mod ``workers``."""
    ordered = sorted(keys)
    return [ordered[index::workers] for index in range(workers)]


def split_input(source: Path, folder: Path, files: int, rows: int) -> list[Path]:
    """``source``'s rows cut into ``files`` files of consecutive rows (sizes differing by at most
    one row), made once: Parquet a record batch at a time, CSV a line at a time, each file with
    the header."""
    suffix = source.suffix
    paths = [folder / f"part-{index:05d}{suffix}" for index in range(files)]
    if all(path.exists() for path in paths):
        return paths
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    bounds = [rows * index // files for index in range(files + 1)]
    say(f"cutting {source.name} into {files} files in {folder}")
    if suffix == ".parquet":
        import pyarrow.parquet as pq

        reader = pq.ParquetFile(source)
        writer = None
        index = position = 0
        try:
            for batch in reader.iter_batches(batch_size=1 << 18):
                offset = 0
                while offset < batch.num_rows:
                    if writer is None:
                        writer = pq.ParquetWriter(paths[index], reader.schema_arrow)
                    take = min(batch.num_rows - offset, bounds[index + 1] - position)
                    writer.write_batch(batch.slice(offset, take))
                    offset, position = offset + take, position + take
                    if position == bounds[index + 1]:
                        writer.close()
                        writer, index = None, index + 1
        finally:
            if writer is not None:
                writer.close()
    else:
        with source.open("rb") as handle:
            header = handle.readline()
            while (line := handle.readline()) and not line.strip():
                header += line  # write_trips puts an empty line after the header
            for index, path in enumerate(paths):
                with path.open("wb") as out:
                    out.write(header)
                    for _ in range(bounds[index + 1] - bounds[index]):
                        out.write(line)
                        line = handle.readline()
    return paths


def run_hosts(
    stage: str,
    commands: dict[str, list[str]],
    logs: dict[str, Path],
    environment: dict[str, str],
    failures: dict[str, Path] | None = None,
) -> float:
    """Every host of a job at once, each's stdout and stderr in its ``logs`` folder; returns the
    wall time from the first start to the last exit. A failed host stops the others (training
    hosts would wait for it); its ``failures`` file, if it wrote one, or its stderr says why."""
    exited: queue.Queue[tuple[str, int]] = queue.Queue()
    workers: dict[str, subprocess.Popen[bytes]] = {}
    started = time.perf_counter()
    try:
        for host, command in commands.items():
            with (
                (logs[host] / "stdout").open("wb") as out,
                (logs[host] / "stderr").open("wb") as err,
            ):
                workers[host] = subprocess.Popen(
                    command, cwd=ROOT, env=environment, stdout=out, stderr=err
                )
            threading.Thread(
                target=lambda h=host, w=workers[host]: exited.put((h, w.wait())), daemon=True
            ).start()
        for _ in workers:
            host, code = exited.get()
            if code != 0:
                failure = (failures or {}).get(host)
                reason = (
                    failure if failure and failure.exists() else logs[host] / "stderr"
                ).read_text()
                raise SystemExit(f"error: {stage} host {host} failed:\n{reason}")
    finally:
        for worker in workers.values():
            if worker.poll() is None:
                worker.kill()
                worker.wait()
    return time.perf_counter() - started


def measured(name: str, rows_held: int, found: dict[str, Any]) -> Process:
    return Process(
        name,
        rows_held,
        found["seconds"],
        found["cpu_seconds"],
        found["peak_rss_mb"],
        found["imported_rss_mb"],
    )


def run_prepare(config: Configuration, inputs: list[Path], folder: Path) -> dict[str, Path]:
    """The processing job: a folder per host (``config/resourceconfig.json``, ``input`` with its
    share of the input files, ``output``), every host at once. Returns each host's output."""
    if folder.exists():
        shutil.rmtree(folder)
    hosts = hosts_of(config.workers)
    by_name = {path.name: path for path in inputs}
    roots = {host: folder / host for host in hosts}
    for host, shard in zip(hosts, deal(list(by_name), config.workers), strict=True):
        settings = roots[host] / "config"
        settings.mkdir(parents=True)
        resources = {"current_host": host, "hosts": hosts}
        (settings / PREPARE_RESOURCE_CONFIG).write_text(json.dumps(resources))
        (roots[host] / "input").mkdir()  # never empty: --input-files is at least the hosts
        for name in shard:
            link(by_name[name], roots[host] / "input" / name)
    commands = {
        host: script("--prepare-host", str(root), str(config.workers))
        for host, root in roots.items()
    }
    wall = run_hosts("prepare", commands, roots, dict(os.environ))
    found = {host: last_json((root / "stdout").read_text()) for host, root in roots.items()}
    config.rows = sum(f["rows"] for f in found.values())
    config.train_rows = sum(f["splits"]["train"] for f in found.values())
    config.validation_rows = sum(f["splits"]["validation"] for f in found.values())
    processes = [measured(f"prepare {host}", f["rows"], f) for host, f in found.items()]
    config.prepare.append(Stage(wall, processes))
    return {host: root / "output" for host, root in roots.items()}


def host_roots(prepared: dict[str, Path], folder: Path, workers: int) -> dict[str, Path]:
    """Each training host's ``/opt/ml``: its config, its shard of every prepare host's train
    parts (the keys under the shared ``prepared/`` prefix, dealt as ``ShardedByS3Key`` deals
    them), every prepare host's validation file."""
    from model.train import DEFAULT_HYPERPARAMETERS, RESOURCE_CONFIG

    if folder.exists():
        shutil.rmtree(folder)
    hosts = hosts_of(workers)
    roots = {host: folder / host / "opt" / "ml" for host in hosts}
    # The prepare hosts upload their output folders to one prefix: a key is a file's path
    # under its output folder, unique since several hosts name their files after themselves.
    train: dict[str, Path] = {}
    validation: dict[str, Path] = {}
    for out in prepared.values():
        for path in [*out.glob("train/part-*.csv"), *out.glob("train.csv")]:
            train[path.relative_to(out).as_posix()] = path
        for path in [*out.glob("validation/*.csv"), *out.glob("validation.csv")]:
            validation[path.relative_to(out).as_posix()] = path
    for (host, root), shard in zip(roots.items(), deal(list(train), workers), strict=True):
        config = root / "input" / "config"
        config.mkdir(parents=True)
        (config / "hyperparameters.json").write_text(json.dumps(DEFAULT_HYPERPARAMETERS))
        resources = {"current_host": host, "hosts": hosts, "network_interface_name": "eth0"}
        (config / RESOURCE_CONFIG).write_text(json.dumps(resources))
        for key in shard:
            link(train[key], root / "input" / "data" / "train" / train[key].name)
        for path in validation.values():
            link(path, root / "input" / "data" / "validation" / path.name)
    return roots


def run_training(config: Configuration, roots: dict[str, Path]) -> None:
    """Every host at once, as one job."""
    environment = {
        **os.environ,
        "DMLC_TRACKER_URI": "127.0.0.1",
        "DMLC_TRACKER_PORT": str(free_port()),
        "OMP_NUM_THREADS": str(max(1, (os.cpu_count() or 1) // len(roots))),
        "OMP_WAIT_POLICY": os.environ.get("OMP_WAIT_POLICY", WAIT_POLICY),
    }
    # The logs go beside each host's /opt/ml, as the local cloud's training.log.
    logs = {host: root.parent for host, root in roots.items()}
    commands = {host: script("--train-host", str(root)) for host, root in roots.items()}
    failures = {host: root / "output" / "failure" for host, root in roots.items()}
    wall = run_hosts("training", commands, logs, environment, failures)
    processes = []
    for host, root in roots.items():
        found = last_json((logs[host] / "stdout").read_text())
        held = sum(count_lines(p) for p in (root / "input" / "data").rglob("*.csv"))
        processes.append(measured(f"train {host}", held, found))
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
        f" builds them) in {args.input_files} {args.format} files of consecutive rows; both"
        " configurations read these same files, 1 worker all of them, W workers each the files"
        " dealt to it (file i to host i mod W, as `ShardedByS3Key` deals them)",
        "- each configuration (`PrepareInstanceCount` = `TrainingInstanceCount` = workers):"
        " PrepareData on that many hosts at once (`prepare` with its `Cluster` and `train_parts`"
        " = workers, a process each, laid out as the local cloud's `_run_processing_hosts` lays"
        " them out: its own input files and output folder; with several hosts the outputs are"
        " named after the host), then one training job of that many hosts"
        " (`model.train.run_container`, a process each, laid out as the local cloud's"
        " `_run_cluster` lays them out: its shard of every prepare host's train parts, dealt in"
        " key order as `ShardedByS3Key` deals them, every prepare host's validation file,"
        " `OMP_NUM_THREADS` = cores / hosts"
        f" ({', '.join(f'{t} with {w} host' + 's' * (w > 1) for w, t in threads.items())}),"
        f" OMP_WAIT_POLICY {wait_policy}); the pipeline's hyperparameters"
        " (`model.train.DEFAULT_HYPERPARAMETERS`: 50 rounds, depth 9)",
        f"- of {args.repeat} round(s), the configurations taking turns: the best time and the"
        " highest peak. A stage's processes run at once, and its time is its slowest process's"
        " own, from the call to its exit"
        " (prepare's `prepare`, a host's `run_container`: the work a SageMaker job's billed time"
        " holds besides starting); `processes` is the parent's wall clock, from starting the first"
        " process to the last one's exit (interpreter start and imports included). CPU is every"
        " thread's, summed over the stage's processes; peak RSS is each process's `VmHWM`",
        "",
        "| workers | prepare (s) | prepare, processes (s) | prepare CPU (s) | training (s)"
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
        "Every process (best of the rounds; rows held: a prepare host's input rows, a training"
        " host's train shard and the whole validation set):",
        "",
        "| workers | process | rows held | seconds (in-process) | CPU (s) | peak RSS (MB)"
        " | of which imports (MB) | RSS above imports, MB per million rows held |",
        "|---:|---|---:|---:|---:|---:|---:|---:|",
    ]
    for c in configs:
        for stage in ("prepare", "train"):
            for p in c.best(stage).processes:
                above = (p.peak_rss_mb - p.imported_rss_mb) / millions(p.rows_held)
                per_million = "-" if stage == "prepare" else f"{above:,.0f}"  # chunked
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

        def faster(stage: str) -> float:
            return one.best(stage).work_seconds / many.best(stage).work_seconds

        def peak(config: Configuration, stage: str) -> str:
            return f"{max(p.peak_rss_mb for p in config.best(stage).processes):,.0f} MB"

        lines += [
            "",
            f"- {many.workers} workers against 1, on the same {cores} cores: prepare"
            f" {faster('prepare'):.2f}x as fast, training {faster('train'):.2f}x; validation RMSE"
            f" {many.rmse[0]:.4f} against {one.rmse[0]:.4f} ({many.rmse[0] - one.rmse[0]:+.4f});"
            f" largest prepare host peak {peak(many, 'prepare')} against {peak(one, 'prepare')},"
            f" largest training host peak {peak(many, 'train')} against {peak(one, 'train')}.",
        ]
    return "\n".join([*lines, "", NOTES_MARKER]) + "\n"


def write_section(text: str, path: Path = RESULTS) -> None:
    """Put the section in ``path`` in place of an earlier one, or at the end (as
    ``benchmarks/cold_start.py`` does with its own). What the earlier one held after
    ``NOTES_MARKER`` (``text`` ends with it) stays."""
    current = path.read_text() if path.exists() else "# Benchmark results\n"
    pattern = re.compile(rf"^{re.escape(SECTION_PREFIX)}.*?(?=^## |\Z)", re.MULTILINE | re.DOTALL)
    if found := pattern.search(current):
        _, marked, notes = found.group(0).partition(NOTES_MARKER)
        new = text + ("\n" + notes.strip("\n") + "\n" if marked and notes.strip() else "")
        updated = pattern.sub(lambda _: new + "\n", current, count=1).rstrip("\n") + "\n"
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
    parser.add_argument(
        "--input-files",
        type=int,
        help="files the input rows are cut into, dealt to the prepare hosts (default: --workers)",
    )
    parser.add_argument("--repeat", type=int, default=3, help="rounds; the best time counts")
    parser.add_argument("--data-dir", type=Path, help="keep the inputs here (made if missing)")
    parser.add_argument("--write", action="store_true", help=f"put the section in {RESULTS}")
    parser.add_argument("--prepare-host", nargs=2, help=argparse.SUPPRESS)
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
    if args.input_files is None:
        args.input_files = args.workers
    if not args.workers <= args.input_files <= args.rows:
        parser.error("--input-files must be at least --workers (a file for every prepare host)")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.prepare_host:
        root, parts = args.prepare_host
        prepare_host(Path(root), int(parts))
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
        folder = data / f"{source.stem}-{args.format.lower()}-in-{args.input_files}"
        inputs = split_input(source, folder, args.input_files, args.rows)
        work = Path(tmp)
        for attempt in range(args.repeat):
            for config in configs:  # taking turns: load changes hit both alike
                name = f"{config.workers} worker(s), round {attempt + 1} of {args.repeat}"
                prepare_folder = work / f"prepare-{config.workers}"
                say(f"{name}: prepare")
                prepared = run_prepare(config, inputs, prepare_folder)
                say(f"{name}: training")
                hosts = work / f"train-{config.workers}"
                run_training(config, host_roots(prepared, hosts, config.workers))
                shutil.rmtree(hosts)
                shutil.rmtree(prepare_folder)
    text = section(configs, args, command, load_before)
    print(text)
    if args.write:
        write_section(text)
        say(f"wrote {RESULTS}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
