"""Training with the built-in SageMaker XGBoost algorithm's contract.

Channels ``train`` and ``validation`` hold label-first, headerless CSV; hyperparameters arrive as
the strings SageMaker passes; the model is ``xgboost-model`` inside ``model.tar.gz``. The same code
runs as ``safe-deploy train`` and as the local cloud's training job (``python -m model.train``
under an ``/opt/ml``-style root).
"""

from __future__ import annotations

import argparse
import json
import tarfile
import tempfile
import time
import traceback
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import xgboost as xgb

from model.errors import TrainingError

MODEL_FILE = "xgboost-model"
MODEL_ARCHIVE = "model.tar.gz"
METRICS_FILE = "metrics.json"

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


def run_container(root: Path = Path("/opt/ml"), progress: Progress | None = print) -> int:
    """The training container: ``<root>/input/{config,data}`` in, ``<root>/model`` out."""
    output = root / "output"
    output.mkdir(parents=True, exist_ok=True)
    try:
        config = root / "input" / "config" / "hyperparameters.json"
        hyperparameters = json.loads(config.read_text()) if config.exists() else {}
        data = root / "input" / "data"
        validation = data / "validation"
        booster, report = fit(
            data / "train", validation if validation.exists() else None, hyperparameters, progress
        )
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
