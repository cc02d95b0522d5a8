"""Compare: the candidate and the production model scored on the same rows, with the noise measured.

Runs as the pipeline's ``Compare`` SageMaker Processing job in the XGBoost image (``python3 -m
model.compare``, paths under ``/opt/ml/processing``) and in the local cloud. Both models predict
the new month's validation split (label-first, headerless CSV, as ``model.prepare`` writes it);
``comparison.json`` then holds both RMSEs, a paired bootstrap of their relative difference (the
same resampled rows for both models, so what the two models have in common cancels out) and how
far the new month's fares sit from what the production model expects for the same trips.

The image is the training algorithm's own (Python 3.8, xgboost 1.7, numpy): this module needs
nothing else, so it imports no other module of ``model/`` and keeps to Python 3.8 (a test checks).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tarfile
from pathlib import Path
from typing import Any

import numpy as np
import xgboost as xgb

COMPARISON_FILE = "comparison.json"
MODEL_FILE = "xgboost-model"  # inside model.tar.gz, as the training job writes it
RESAMPLES = 1000
SEED = 20180201  # fixed: the same data always gives the same bounds
CONFIDENCE = 0.95  # each bound is one-sided at this level
FORMAT = 1


class ComparisonError(ValueError):
    """Inputs the comparison cannot use: the message says which and why."""


# ---------------------------------------------------------------------------- inputs
def _files(path: Path, what: str) -> list[Path]:
    if path.is_file():
        return [path]
    if path.is_dir():
        found = sorted(p for p in path.rglob("*") if p.is_file() and not p.name.startswith("."))
        if found:
            return found
    raise ComparisonError(f"{what}: nothing at {path}")


def load_model(path: Path, what: str) -> Any:
    """An XGBoost booster from ``model.tar.gz`` (or a folder holding it, or the bare model)."""
    files = _files(path, what)
    archives = [p for p in files if p.name.endswith(".tar.gz")]
    if len(files) > 1 and len(archives) != 1:
        raise ComparisonError(f"{what}: expected one model.tar.gz under {path}")
    source = archives[0] if archives else files[0]
    try:
        if source.name.endswith(".tar.gz"):
            with tarfile.open(source) as tar:
                member = tar.extractfile(MODEL_FILE)
                if member is None:
                    raise KeyError(MODEL_FILE)
                data = member.read()
        else:
            data = source.read_bytes()
        booster = xgb.Booster()
        booster.load_model(bytearray(data))  # from bytes: XGBoost detects the format
    except (KeyError, OSError, tarfile.TarError, xgb.core.XGBoostError) as exc:
        raise ComparisonError(f"{what}: {source} holds no readable {MODEL_FILE} ({exc})") from exc
    return booster


def read_rows(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Labels and features of label-first, headerless CSV (a file or a folder of files: the
    ``validation/<host>.csv`` of PrepareData on several instances, some of which may be empty)."""
    parts = []
    for file in _files(path, "validation rows"):
        if file.stat().st_size == 0:  # a host with no validation rows; loadtxt would warn
            continue
        try:
            parts.append(np.loadtxt(file, delimiter=",", dtype=np.float64, ndmin=2))
        except ValueError as exc:
            raise ComparisonError(f"{file}: not label-first numeric CSV ({exc})") from exc
    parts = [p for p in parts if p.size]
    if not parts:
        raise ComparisonError(f"{path}: no rows with a label and features")
    matrix = np.vstack(parts)
    if matrix.shape[0] == 0 or matrix.shape[1] < 2:
        raise ComparisonError(f"{path}: no rows with a label and features")
    if not np.isfinite(matrix).all():
        raise ComparisonError(f"{path}: holds empty or non-numeric values")
    return matrix[:, 0], matrix[:, 1:]


def predict(booster: Any, features: np.ndarray, what: str) -> np.ndarray:
    """What the serving container answers for these rows (``model.serve`` predicts the same way)."""
    width = booster.num_features()
    if width != features.shape[1]:
        raise ComparisonError(
            f"{what} takes {width} features; the validation rows have {features.shape[1]}"
        )
    return np.asarray(booster.inplace_predict(features), dtype=np.float64)


# ---------------------------------------------------------------------------- statistics
def paired_bootstrap(
    actual: np.ndarray,
    candidate: np.ndarray,
    champion: np.ndarray,
    resamples: int = RESAMPLES,
    seed: int = SEED,
) -> tuple[np.ndarray, np.ndarray]:
    """For ``resamples`` draws of row indices (with replacement, the same draw for both models):
    the relative RMSE difference (candidate / champion - 1) and the fare shift (actual fares /
    the champion's predictions - 1)."""
    rows = len(actual)
    candidate_sq = (candidate - actual) ** 2
    champion_sq = (champion - actual) ** 2
    rng = np.random.default_rng(seed)
    chunk = max(1, min(resamples, 4_000_000 // rows))
    rmse_change, fare_shift = [], []
    for start in range(0, resamples, chunk):
        draws = rng.integers(0, rows, size=(min(chunk, resamples - start), rows))
        rmse_change.append(
            np.sqrt(candidate_sq[draws].mean(axis=1) / champion_sq[draws].mean(axis=1)) - 1.0
        )
        fare_shift.append(actual[draws].sum(axis=1) / champion[draws].sum(axis=1) - 1.0)
    return np.concatenate(rmse_change), np.concatenate(fare_shift)


def _rmse(predicted: np.ndarray, actual: np.ndarray) -> float:
    return float(np.sqrt(np.mean((predicted - actual) ** 2)))


def compare_predictions(
    actual: np.ndarray,
    candidate: np.ndarray,
    champion: np.ndarray,
    resamples: int = RESAMPLES,
    seed: int = SEED,
    confidence: float = CONFIDENCE,
) -> dict[str, Any]:
    """The statistics of ``comparison.json`` for predictions of the same rows (fractions, not
    percent; ``*_lower`` and ``*_upper`` are one-sided bounds at ``confidence``)."""
    if not (len(actual) == len(candidate) == len(champion)) or len(actual) == 0:
        raise ComparisonError("both models must predict the same, non-empty rows")
    if champion.sum() <= 0:
        raise ComparisonError("the production model predicts no positive fares for these rows")
    candidate_rmse, champion_rmse = _rmse(candidate, actual), _rmse(champion, actual)
    if champion_rmse == 0.0:
        raise ComparisonError("the production model predicts these rows exactly: nothing to do")
    rmse_change, fare_shift = paired_bootstrap(actual, candidate, champion, resamples, seed)
    tail = 1.0 - confidence
    return {
        "rows": len(actual),
        "mean_fare": float(actual.mean()),
        "candidate_rmse": candidate_rmse,
        "champion_rmse": champion_rmse,
        "rmse_change": candidate_rmse / champion_rmse - 1.0,
        "rmse_change_lower": float(np.quantile(rmse_change, tail)),
        "rmse_change_upper": float(np.quantile(rmse_change, confidence)),
        "champion_mean_residual": float(np.mean(actual - champion)),
        "fare_shift": float(actual.sum() / champion.sum() - 1.0),
        "fare_shift_lower": float(np.quantile(fare_shift, tail)),
        "fare_shift_upper": float(np.quantile(fare_shift, confidence)),
        "resamples": resamples,
        "seed": seed,
        "confidence": confidence,
    }


def compare(
    candidate_model: Path,
    champion_model: Path,
    validation: Path,
    candidate_model_id: str | None = None,
    champion_model_id: str | None = None,
    resamples: int = RESAMPLES,
    seed: int = SEED,
) -> dict[str, Any]:
    """Score both models on the validation rows: what ``comparison.json`` holds."""
    actual, features = read_rows(validation)
    candidate = predict(load_model(candidate_model, "the candidate"), features, "the candidate")
    champion = predict(
        load_model(champion_model, "the production model"), features, "the production model"
    )
    statistics = compare_predictions(actual, candidate, champion, resamples, seed)
    return {
        "format": FORMAT,
        "candidate_model_id": candidate_model_id,
        "champion_model_id": champion_model_id,
        **statistics,
    }


def write_comparison(comparison: dict[str, Any], out_dir: Path) -> Path:
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / COMPARISON_FILE
    path.write_text(json.dumps(comparison, indent=2) + "\n")
    return path


def main(argv: list[str] | None = None) -> int:
    """SageMaker Processing entry point; the model ids come in the job's environment."""
    base = "/opt/ml/processing"
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--candidate", default=f"{base}/input/candidate")
    parser.add_argument("--champion", default=f"{base}/input/champion")
    parser.add_argument("--validation", default=f"{base}/input/validation")
    parser.add_argument("--output", default=f"{base}/evaluation")
    parser.add_argument("--resamples", type=int, default=RESAMPLES)
    parser.add_argument("--seed", type=int, default=SEED)
    # SageMaker shows this file's first KB as the job's ExitMessage (model/errors.py says more;
    # the XGBoost image has no `model` package beside this file, so the path is repeated here).
    parser.add_argument("--message-file", default="/opt/ml/output/message")
    args = parser.parse_args(argv)
    try:
        comparison = compare(
            Path(args.candidate),
            Path(args.champion),
            Path(args.validation),
            candidate_model_id=os.environ.get("CANDIDATE_MODEL_ID") or None,
            champion_model_id=os.environ.get("CHAMPION_MODEL_ID") or None,
            resamples=args.resamples,
            seed=args.seed,
        )
    except ComparisonError as exc:
        print(f"error: {exc}", file=sys.stderr)
        message = Path(args.message_file)
        message.parent.mkdir(parents=True, exist_ok=True)
        message.write_bytes(str(exc).encode()[:1024].decode(errors="ignore").encode())
        return 1
    path = write_comparison(comparison, Path(args.output))
    print(
        f"{comparison['rows']:,} rows: candidate RMSE {comparison['candidate_rmse']:.3f}, "
        f"production {comparison['champion_rmse']:.3f}, "
        f"change {comparison['rmse_change']:+.1%} "
        f"(one-sided {comparison['confidence']:.0%} bounds {comparison['rmse_change_lower']:+.1%}"
        f" / {comparison['rmse_change_upper']:+.1%}), "
        f"fare shift {comparison['fare_shift']:+.1%}; wrote {path}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
