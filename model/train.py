"""Training with the built-in SageMaker XGBoost algorithm's contract.

Channels ``train`` and ``validation`` hold label-first, headerless CSV; hyperparameters arrive as
the strings SageMaker passes; the model is ``xgboost-model`` inside ``model.tar.gz``. The same code
runs as ``safe-deploy train`` and as the local cloud's training job (``python -m model.train``
under an ``/opt/ml``-style root).

Distributed training. When ``<root>/input/config/resourceconfig.json`` lists more than one host
(``{"current_host": "algo-2", "hosts": ["algo-1", "algo-2"]}``, a job with ``InstanceCount`` > 1),
each host is one worker of an XGBoost collective (``xgboost.collective``), ranked by its place in
``hosts``. Each reads what its own channels hold: its shard of a ``ShardedByS3Key`` train channel,
all of a ``FullyReplicated`` validation channel. XGBoost allreduces the gradient histograms, so
the hosts grow one model together, and its evaluation, so every host sees the global metrics
(a replicated validation set counts each row once per host: the RMSE is the one row set's). Only
the first host writes the model and ``metrics.json``, as the SageMaker XGBoost container saves
the model on its master host only.

The tracker (``xgboost.tracker.RabitTracker``) runs where the SageMaker XGBoost container runs
it: in the first host's worker process, listening on the first host. Its address is
``DMLC_TRACKER_URI`` / ``DMLC_TRACKER_PORT`` (XGBoost's own variable names) when the environment
sets them, otherwise the first host's name and port 9099, the container's. The local cloud runs
every host on one machine, so it sets ``DMLC_TRACKER_URI=127.0.0.1`` and a free port per job;
nothing else about the collective differs from SageMaker's.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import tarfile
import tempfile
import time
import traceback
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager, nullcontext
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import xgboost as xgb
from xgboost import collective
from xgboost.tracker import RabitTracker

from model.errors import TrainingError

MODEL_FILE = "xgboost-model"
MODEL_ARCHIVE = "model.tar.gz"
METRICS_FILE = "metrics.json"
RESOURCE_CONFIG = "resourceconfig.json"
# Where the SageMaker XGBoost container's tracker listens on the first host.
TRACKER_PORT = 9099
# How long the tracker waits for every host to join (data loading included) and to leave.
TRACKER_TIMEOUT_SECONDS = 600
# Connection attempts to the tracker, which the first host may not have started yet (XGBoost
# waits a little longer before each).
TRACKER_CONNECT_RETRIES = 10

# The original pipeline's settings, as strings, the way SageMaker passes hyperparameters.
DEFAULT_HYPERPARAMETERS: dict[str, str] = {
    "max_depth": "9",
    "eta": "0.2",
    "gamma": "4",
    "min_child_weight": "300",
    "subsample": "0.8",
    "objective": "reg:squarederror",
    "num_round": "50",
    "early_stopping_rounds": "10",
}
_NOT_BOOSTER_PARAMS = {"num_round", "early_stopping_rounds", "_tuning_objective_metric"}

Progress = Callable[[str], None]


@dataclass
class TrainingReport:
    """What a training job reports: final metrics, per-round curves, and how it stopped."""

    final_metrics: dict[str, float]
    rounds: dict[str, list[float]]
    best_iteration: int
    rounds_run: int
    num_round: int
    train_rows: int
    validation_rows: int
    hyperparameters: dict[str, str]
    seconds: float

    def final_metric_data_list(self) -> list[dict[str, Any]]:
        """The ``FinalMetricDataList`` entries of ``DescribeTrainingJob``."""
        return [{"MetricName": name, "Value": value} for name, value in self.final_metrics.items()]

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2)


def _channel_files(channel: Path) -> list[Path]:
    if channel.is_file():
        return [channel]
    if channel.is_dir():
        files = sorted(p for p in channel.rglob("*") if p.is_file() and not p.name.startswith("."))
        if files:
            return files
    raise TrainingError(f"channel {channel} holds no data")


def read_channel(channel: Path) -> tuple[np.ndarray, np.ndarray]:
    """Labels and features from label-first, headerless CSV (a file or a folder of files)."""
    tables = []
    for path in _channel_files(channel):
        try:
            table = pacsv.read_csv(
                path,
                read_options=pacsv.ReadOptions(autogenerate_column_names=True),
                convert_options=pacsv.ConvertOptions(
                    column_types={f"f{i}": pa.float64() for i in range(64)}
                ),
            )
        except pa.ArrowInvalid as exc:
            raise TrainingError(
                f"{path}: not label-first numeric CSV without a header ({exc})"
            ) from exc
        tables.append(table)
    widths = {t.num_columns for t in tables}
    if len(widths) != 1 or min(widths) < 2:
        raise TrainingError(f"channel {channel}: files need the same number (>= 2) of columns")
    matrix = np.column_stack(
        [np.concatenate([t.column(i).to_numpy() for t in tables]) for i in range(widths.pop())]
    )
    return matrix[:, 0], matrix[:, 1:]


def parse_hyperparameters(raw: Mapping[str, Any]) -> tuple[dict[str, Any], int, int | None]:
    """SageMaker-style string hyperparameters to XGBoost params, rounds and early stopping."""
    merged = {**DEFAULT_HYPERPARAMETERS, **{k: str(v) for k, v in raw.items()}}
    params: dict[str, Any] = {}
    for name, text in merged.items():
        if name in _NOT_BOOSTER_PARAMS:
            continue
        params[name] = _typed(name, text)
    try:
        num_round = int(merged["num_round"])
        early = merged.get("early_stopping_rounds")
        early_stopping = int(early) if early not in (None, "", "None") else None
    except ValueError as exc:
        raise TrainingError(f"hyperparameter num_round/early_stopping_rounds: {exc}") from exc
    if num_round < 1:
        raise TrainingError("hyperparameter num_round must be at least 1")
    params.setdefault("eval_metric", "rmse")
    return params, num_round, early_stopping


def _typed(name: str, text: str) -> Any:
    for convert in (int, float):
        try:
            return convert(text)
        except ValueError:
            continue
    if name in {"max_depth", "eta", "gamma", "min_child_weight", "subsample"}:
        raise TrainingError(f"hyperparameter {name}={text!r} is not a number")
    return text


class _Progress(xgb.callback.TrainingCallback):
    def __init__(self, say: Progress) -> None:
        super().__init__()
        self.say = say

    def after_iteration(self, model: Any, epoch: int, evals_log: Any) -> bool:
        parts = [f"[{epoch}]"]
        for data_name, metrics in evals_log.items():
            for metric, values in metrics.items():
                parts.append(f"{data_name}-{metric}:{values[-1]:.5f}")
        self.say("\t".join(parts))
        return False


def fit(
    train_channel: Path,
    validation_channel: Path | None,
    hyperparameters: Mapping[str, Any] | None = None,
    progress: Progress | None = None,
) -> tuple[xgb.Booster, TrainingReport]:
    started = time.monotonic()
    raw = dict(hyperparameters or {})
    params, num_round, early_stopping = parse_hyperparameters(raw)
    y_train, x_train = read_channel(train_channel)
    dtrain = xgb.DMatrix(x_train, label=y_train)
    evals = [(dtrain, "train")]
    validation_rows = 0
    if validation_channel is not None:
        y_valid, x_valid = read_channel(validation_channel)
        if x_valid.shape[1] != x_train.shape[1]:
            raise TrainingError(
                f"validation has {x_valid.shape[1]} features, train has {x_train.shape[1]}"
            )
        evals.append((xgb.DMatrix(x_valid, label=y_valid), "validation"))
        validation_rows = len(y_valid)
    else:
        early_stopping = None  # nothing to stop on
    history: dict[str, dict[str, list[float]]] = {}
    callbacks = [_Progress(progress)] if progress else []
    try:
        booster = xgb.train(
            params,
            dtrain,
            num_boost_round=num_round,
            evals=evals,
            evals_result=history,
            early_stopping_rounds=early_stopping,
            verbose_eval=False,
            callbacks=callbacks,
        )
    except xgb.core.XGBoostError as exc:
        raise TrainingError(f"XGBoost refused the job: {str(exc).splitlines()[0]}") from exc
    rounds_run = booster.num_boosted_rounds()
    best = booster.best_iteration if early_stopping is not None else rounds_run - 1
    if best < rounds_run - 1:
        booster = booster[: best + 1]  # keep the model whose validation score is reported
    rounds = {
        f"{data}:{metric}": [float(v) for v in values]
        for data, metrics in history.items()
        for metric, values in metrics.items()
    }
    report = TrainingReport(
        final_metrics={name: values[best] for name, values in rounds.items()},
        rounds=rounds,
        best_iteration=best,
        rounds_run=rounds_run,
        num_round=num_round,
        train_rows=len(y_train),
        validation_rows=validation_rows,
        hyperparameters={**DEFAULT_HYPERPARAMETERS, **{k: str(v) for k, v in raw.items()}},
        seconds=round(time.monotonic() - started, 3),
    )
    return booster, report


def save_archive(booster: xgb.Booster, archive: Path) -> None:
    """``model.tar.gz`` holding ``xgboost-model``, as SageMaker packs ``/opt/ml/model``."""
    archive.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        model_file = Path(tmp) / MODEL_FILE
        write_model(booster, model_file)
        with tarfile.open(archive, "w:gz") as tar:
            tar.add(model_file, arcname=MODEL_FILE)


def write_model(booster: xgb.Booster, path: Path) -> None:
    """Save as UBJSON under the extension-less name the container expects."""
    staged = path.with_name(path.name + ".ubj")
    booster.save_model(staged)
    staged.replace(path)


def train_to_dir(
    data_dir: Path,
    out_dir: Path,
    hyperparameters: Mapping[str, Any] | None = None,
    progress: Progress | None = None,
) -> TrainingReport:
    """``safe-deploy train``: channels from ``data_dir`` (``train/`` or ``train.csv``)."""

    def channel(name: str) -> Path | None:
        for candidate in (data_dir / name, data_dir / f"{name}.csv"):
            if candidate.exists():
                return candidate
        return None

    train_channel = channel("train")
    if train_channel is None:
        raise TrainingError(f"{data_dir}: no train channel (train/ or train.csv)")
    booster, report = fit(train_channel, channel("validation"), hyperparameters, progress)
    save_archive(booster, out_dir / MODEL_ARCHIVE)
    (out_dir / METRICS_FILE).write_text(report.to_json())
    return report


@dataclass(frozen=True)
class Cluster:
    """The hosts of a distributed training job, as ``resourceconfig.json`` lists them."""

    hosts: tuple[str, ...]
    current_host: str

    @property
    def rank(self) -> int:
        return self.hosts.index(self.current_host)

    @property
    def is_master(self) -> bool:
        return self.rank == 0


def read_cluster(config_dir: Path) -> Cluster | None:
    """The job's hosts, or None for a single-host job (or no ``resourceconfig.json``)."""
    path = config_dir / RESOURCE_CONFIG
    if not path.exists():
        return None
    resources = json.loads(path.read_text())
    hosts = tuple(str(host) for host in resources.get("hosts") or ())
    if len(hosts) <= 1:
        return None
    current = str(resources.get("current_host"))
    if current not in hosts:
        raise TrainingError(f"{RESOURCE_CONFIG}: current_host {current!r} is not in {hosts}")
    return Cluster(hosts, current)


def tracker_address(cluster: Cluster, environ: Mapping[str, str] = os.environ) -> tuple[str, int]:
    """Where the collective's tracker listens: the environment's, else the first host's."""
    return (
        environ.get("DMLC_TRACKER_URI", cluster.hosts[0]),
        int(environ.get("DMLC_TRACKER_PORT", TRACKER_PORT)),
    )


@contextmanager
def collective_worker(cluster: Cluster, environ: Mapping[str, str] = os.environ) -> Iterator[None]:
    """This host as one worker of the job's XGBoost collective, the first host also running the
    tracker; ``xgb.train`` inside trains together with every other host."""
    uri, port = tracker_address(cluster, environ)
    tracker = None
    if cluster.is_master:
        tracker = RabitTracker(
            n_workers=len(cluster.hosts),
            host_ip=socket.gethostbyname(uri),
            port=port,
            sortby="task",  # ranks by dmlc_task_id: the host's place in ``hosts``
            timeout=TRACKER_TIMEOUT_SECONDS,
        )
        tracker.start()
    else:
        _await_tracker(uri, port)
    with collective.CommunicatorContext(
        dmlc_tracker_uri=uri,
        dmlc_tracker_port=port,
        dmlc_task_id=f"{cluster.rank:06d}",  # zero-padded: the tracker sorts them as text
        dmlc_retry=TRACKER_CONNECT_RETRIES,
    ):
        if collective.get_rank() != cluster.rank:
            raise TrainingError(
                f"{cluster.current_host} joined the collective as rank {collective.get_rank()},"
                f" not {cluster.rank}"
            )
        yield
    if tracker is not None:
        tracker.wait_for(TRACKER_TIMEOUT_SECONDS)  # every host has left the collective
        tracker.free()


def _await_tracker(uri: str, port: int) -> None:
    """Wait until the first host's tracker takes connections, as the SageMaker XGBoost container
    does before it joins: XGBoost's own retries back off for seconds at a time. (The tracker
    logs the probe as a worker that "failed to verify", and goes on.)"""
    deadline = time.monotonic() + TRACKER_TIMEOUT_SECONDS
    while True:
        try:
            with socket.create_connection((uri, port), timeout=1):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def _global_count(count: int) -> int:
    """A count summed over every host of the collective."""
    return int(collective.allreduce(np.array([count], dtype=np.int64), collective.Op.SUM)[0])


def run_container(root: Path = Path("/opt/ml"), progress: Progress | None = print) -> int:
    """The training container: ``<root>/input/{config,data}`` in, ``<root>/model`` out."""
    output = root / "output"
    output.mkdir(parents=True, exist_ok=True)
    try:
        config = root / "input" / "config" / "hyperparameters.json"
        hyperparameters = json.loads(config.read_text()) if config.exists() else {}
        cluster = read_cluster(root / "input" / "config")
        data = root / "input" / "data"
        validation = data / "validation"
        with nullcontext() if cluster is None else collective_worker(cluster):
            booster, report = fit(
                data / "train",
                validation if validation.exists() else None,
                hyperparameters,
                progress,
            )
            if cluster is not None:  # this host's shard: the report counts every host's
                report.train_rows = _global_count(report.train_rows)
        if cluster is not None and not cluster.is_master:
            return 0  # the first host saves the model the hosts trained together
        model_dir = root / "model"
        model_dir.mkdir(parents=True, exist_ok=True)
        write_model(booster, model_dir / MODEL_FILE)
        (output / METRICS_FILE).write_text(report.to_json())
    except TrainingError as exc:
        (output / "failure").write_text(f"ClientError: {exc}")
        return 1
    except Exception as exc:  # the container reports every failure, then exits non-zero
        (output / "failure").write_text(f"AlgorithmError: {exc}\n{traceback.format_exc()}")
        return 2
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="SageMaker XGBoost-compatible training")
    parser.add_argument("--root", type=Path, default=Path("/opt/ml"))
    return run_container(parser.parse_args(argv).root)


if __name__ == "__main__":
    raise SystemExit(main())
