"""The model core end to end on synthetic data: synth, prepare, train, baseline, predict,
then monitor undrifted and drifted traffic. Exits non-zero unless every step did what it should.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from rich.text import Text

from model.baseline import baseline
from model.monitor import monitor
from model.prepare import prepare
from model.schema import FEATURES, LABEL
from model.serve import FareModel
from model.synth import DRIFT_KINDS, synth_trips, write_trips
from model.train import train_to_dir
from safe_deploy.console import StageFailed, Stages, console
from safe_deploy.offline import serve_and_capture

MONTH_ROWS = 200_000
TRAFFIC_ROWS = 5_000


def _rmse(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.sqrt(np.mean((a - b) ** 2)))


def _traffic(workdir: Path, drift: str | None, seed: int) -> pd.DataFrame:
    raw = workdir / "traffic" / f"{drift or 'undrifted'}.csv"
    write_trips(synth_trips(TRAFFIC_ROWS, seed=seed, drift=drift, month="2018-03"), raw)
    prepared = workdir / "traffic" / f"{drift or 'undrifted'}-prepared"
    prepare([raw], prepared)
    frames = [pd.read_csv(prepared / "baseline.csv"), pd.read_csv(prepared / "test.csv")]
    return pd.concat(frames, ignore_index=True)


def run_core_demo(workdir: Path) -> None:
    stages = Stages()
    from safe_deploy.demo import empty_workdir

    empty_workdir(workdir)
    month = workdir / "raw" / "green_tripdata_2018-02.csv"
    prepared, model_dir, baseline_dir = (workdir / n for n in ("prepared", "model", "baseline"))

    with stages.stage(f"synthesise a month of trips ({MONTH_ROWS:,} rows)"):
        write_trips(synth_trips(MONTH_ROWS, seed=1), month)
        stages.say(f"wrote {month}")
    with stages.stage("prepare: derive duration, filter, split 80/15/5"):
        summary = prepare([month], prepared)
        for line in summary.lines():
            stages.say(line)
    with stages.stage("train XGBoost (built-in algorithm contract)"):
        report = train_to_dir(prepared, model_dir)
        validation = pd.read_csv(prepared / "validation.csv", header=None)
        train_labels = pd.read_csv(prepared / "train.csv", header=None)[0].to_numpy()
        mean_rmse = _rmse(validation[0].to_numpy(), np.full(len(validation), train_labels.mean()))
        model_rmse = report.final_metrics["validation:rmse"]
        stages.say(f"validation:rmse {model_rmse:.3f} (mean predictor: {mean_rmse:.3f})")
        if not model_rmse < 0.5 * mean_rmse:
            raise StageFailed("train", "the model does not beat the mean predictor by 2x")
    with stages.stage("baseline (Model Monitor statistics and constraints)"):
        statistics, _ = baseline(prepared / "baseline.csv", baseline_dir)
        stages.say(
            f"{statistics['dataset']['item_count']:,} rows, features: "
            + ", ".join(f["name"] for f in statistics["features"])
        )
    model = FareModel.load(model_dir)
    with stages.stage("predict the held-out test split"):
        test = pd.read_csv(prepared / "test.csv")
        predictions = model.predict(test[list(FEATURES)].to_numpy())
        stages.say(
            f"test RMSE {_rmse(predictions, test[LABEL].to_numpy()):.3f} on {len(test):,} trips"
        )
    outcomes = []
    for seed, drift in enumerate([None, *DRIFT_KINDS], start=100):
        name = drift or "undrifted"
        with stages.stage(f"monitor {TRAFFIC_ROWS:,} trips of {name} traffic"):
            frame = _traffic(workdir, drift, seed)
            captures = workdir / "capture" / f"{name}.jsonl"
            truth = workdir / "ground-truth" / f"{name}.jsonl"
            serve_and_capture(
                model, frame[list(FEATURES)].to_numpy(), captures, frame[LABEL].to_numpy(), truth
            )
            result = monitor(baseline_dir, [captures], workdir / "monitoring" / name, [truth])
            flagged = result.drifted_features
            distances = ", ".join(f"{k} {v:.3f}" for k, v in result.distances.items())
            stages.say(f"distances: {distances}")
            stages.say(f"drift flagged on: {', '.join(flagged) or 'nothing'}")
            outcomes.append((name, bool(flagged) == (drift is not None)))
    failed = [name for name, ok in outcomes if not ok]
    if failed:
        raise StageFailed("monitor", f"drift verdict wrong for: {', '.join(failed)}")
    console.print(
        Text.assemble(
            ("model core demo complete", "green"),
            f" in {stages.elapsed().strip()}; everything is under {workdir}",
        )
    )
