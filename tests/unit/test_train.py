"""Training with the built-in SageMaker XGBoost algorithm's contract."""

from __future__ import annotations

import json
import shutil
import tarfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import botocore.session
import numpy as np
import pytest
import xgboost as xgb

from model.errors import TrainingError
from model.serve import FareModel
from model.train import (
    DEFAULT_HYPERPARAMETERS,
    fit,
    parse_hyperparameters,
    run_container,
)
from tests.support import Trained, read_json, rmse

ORIGINAL_PARAMS = {
    "max_depth": 9,
    "eta": 0.2,
    "gamma": 4,
    "min_child_weight": 300,
    "subsample": 0.8,
    "objective": "reg:squarederror",
}


def _load_channel(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Label and features read with numpy alone, independently of model.train."""
    matrix = np.loadtxt(path, delimiter=",", ndmin=2)
    return matrix[:, 0], matrix[:, 1:]


def test_model_beats_the_mean_predictor_by_a_wide_margin(trained: Trained) -> None:
    train_labels, _ = _load_channel(trained.prepared / "train.csv")
    valid_labels, valid_features = _load_channel(trained.prepared / "validation.csv")
    mean_rmse = rmse(valid_labels, np.full(len(valid_labels), train_labels.mean()))

    model_rmse = trained.report.final_metrics["validation:rmse"]

    assert model_rmse < 0.5 * mean_rmse
    # The reported number is the saved model's real score on the validation rows.
    predicted = FareModel.load(trained.model_dir).predict(valid_features)
    assert rmse(valid_labels, predicted) == pytest.approx(model_rmse, rel=1e-4)


def test_validation_rmse_matches_plain_xgboost_with_the_same_params(trained: Trained) -> None:
    train_labels, train_features = _load_channel(trained.prepared / "train.csv")
    valid_labels, valid_features = _load_channel(trained.prepared / "validation.csv")
    dtrain = xgb.DMatrix(train_features, label=train_labels)
    dvalid = xgb.DMatrix(valid_features, label=valid_labels)

    plain = xgb.train(
        {**ORIGINAL_PARAMS, "eval_metric": "rmse"},
        dtrain,
        num_boost_round=50,
        evals=[(dtrain, "train"), (dvalid, "validation")],
        early_stopping_rounds=10,
        verbose_eval=False,
    )
    best = plain.predict(dvalid, iteration_range=(0, plain.best_iteration + 1))

    reported = trained.report.final_metrics["validation:rmse"]
    assert reported == pytest.approx(rmse(valid_labels, best), rel=0.01)


def test_archive_holds_xgboost_model(trained: Trained) -> None:
    with tarfile.open(trained.model_dir / "model.tar.gz", "r:gz") as archive:
        assert archive.getnames() == ["xgboost-model"]


def test_archive_reproduces_the_in_memory_booster(trained: Trained) -> None:
    booster, _ = fit(trained.prepared / "train.csv", trained.prepared / "validation.csv")
    _, features = _load_channel(trained.prepared / "validation.csv")

    loaded = FareModel.load(trained.model_dir / "model.tar.gz")

    np.testing.assert_array_equal(loaded.predict(features), booster.predict(xgb.DMatrix(features)))


def test_metrics_json_has_final_and_per_round_metrics(trained: Trained) -> None:
    metrics = read_json(trained.model_dir / "metrics.json")

    final, rounds = metrics["final_metrics"], metrics["rounds"]
    assert set(final) == set(rounds) == {"train:rmse", "validation:rmse"}
    for name, values in rounds.items():
        assert len(values) == metrics["rounds_run"]
        assert final[name] == values[metrics["best_iteration"]]
    # Early stopping reports (and keeps) the round with the best validation score.
    assert final["validation:rmse"] == min(rounds["validation:rmse"])
    assert rounds["train:rmse"][-1] < rounds["train:rmse"][0]
    assert metrics["train_rows"] == len(_load_channel(trained.prepared / "train.csv")[0])


def test_final_metric_data_list_has_describe_training_job_entries(trained: Trained) -> None:
    entries = trained.report.final_metric_data_list()

    shape: Any = (
        botocore.session.get_session().get_service_model("sagemaker").shape_for("MetricData")
    )
    types = {name: member.type_name for name, member in shape.members.items()}
    assert (types["MetricName"], types["Value"]) == ("string", "float")
    for entry in entries:
        assert set(entry) <= set(types)
        assert isinstance(entry["MetricName"], str)
        assert isinstance(entry["Value"], float)
    assert {e["MetricName"]: e["Value"] for e in entries} == trained.report.final_metrics
    assert sorted(e["MetricName"] for e in entries) == ["train:rmse", "validation:rmse"]
    json.dumps(entries)  # a training-job emulation returns them as JSON


def test_default_hyperparameters_are_the_original_pipelines(trained: Trained) -> None:
    assert DEFAULT_HYPERPARAMETERS == {
        "max_depth": "9",
        "eta": "0.2",
        "gamma": "4",
        "min_child_weight": "300",
        "subsample": "0.8",
        "objective": "reg:squarederror",
        "num_round": "50",
        "early_stopping_rounds": "10",
    }
    params, num_round, early_stopping = parse_hyperparameters({})
    assert {k: v for k, v in params.items() if k != "eval_metric"} == ORIGINAL_PARAMS
    assert (num_round, early_stopping) == (50, 10)
    assert trained.report.hyperparameters == DEFAULT_HYPERPARAMETERS
    assert trained.report.num_round == 50


def test_string_hyperparameters_override_the_defaults(trained: Trained) -> None:
    lines: list[str] = []

    booster, report = fit(
        trained.prepared / "train.csv",
        trained.prepared / "validation.csv",
        {"num_round": "5", "max_depth": "3"},
        progress=lines.append,
    )

    assert booster.num_boosted_rounds() == 5
    assert report.rounds_run == 5
    assert all(len(values) == 5 for values in report.rounds.values())
    assert report.hyperparameters["num_round"] == "5"
    config = json.loads(booster.save_config())
    assert config["learner"]["gradient_booster"]["tree_train_param"]["max_depth"] == "3"
    assert len(lines) == 5
    assert "validation-rmse" in lines[-1]


@pytest.mark.parametrize(
    ("hyperparameters", "named"),
    [
        ({"eta": "abc"}, "eta"),
        ({"max_depth": "deep"}, "max_depth"),
        ({"num_round": "many"}, "num_round"),
        ({"num_round": "0"}, "num_round"),
        ({"objective": "reg:nonsense"}, "reg:nonsense"),
    ],
)
def test_bad_hyperparameter_raises_training_error_naming_it(
    trained: Trained, hyperparameters: dict[str, str], named: str
) -> None:
    with pytest.raises(TrainingError, match=named):
        fit(trained.prepared / "train.csv", trained.prepared / "validation.csv", hyperparameters)


# --- the training container (/opt/ml layout) --------------------------------------------------


def _container_root(tmp_path: Path, prepared: Path, hyperparameters: dict[str, str]) -> Path:
    root = tmp_path / "ml"
    for channel in ("train", "validation"):
        folder = root / "input" / "data" / channel
        folder.mkdir(parents=True)
        shutil.copy(prepared / f"{channel}.csv", folder / f"{channel}.csv")
    config = root / "input" / "config"
    config.mkdir(parents=True)
    (config / "hyperparameters.json").write_text(json.dumps(hyperparameters))
    return root


def test_container_writes_the_model_and_metrics(trained: Trained, tmp_path: Path) -> None:
    root = _container_root(tmp_path, trained.prepared, {"num_round": "5"})

    assert run_container(root, progress=None) == 0

    assert not (root / "output" / "failure").exists()
    metrics = read_json(root / "output" / "metrics.json")
    assert metrics["rounds_run"] == 5
    model = FareModel.load(root / "model" / "xgboost-model")
    assert model.booster.num_boosted_rounds() == 5
    _, features = _load_channel(trained.prepared / "validation.csv")
    assert np.isfinite(model.predict(features)).all()


def _with_header(root: Path) -> None:
    channel = root / "input" / "data" / "train" / "train.csv"
    channel.write_text(
        "total_amount,duration_minutes,passenger_count,trip_distance\n" + "1,2,3,4\n"
    )


def _without_train(root: Path) -> None:
    shutil.rmtree(root / "input" / "data" / "train")


def _bad_eta(root: Path) -> None:
    (root / "input" / "config" / "hyperparameters.json").write_text('{"eta": "abc"}')


@pytest.mark.parametrize(
    ("spoil", "named"),
    [(_with_header, "train.csv"), (_without_train, "train"), (_bad_eta, "eta")],
    ids=["header-in-channel", "no-train-channel", "bad-hyperparameter"],
)
def test_container_reports_bad_input_in_failure_file(
    trained: Trained, tmp_path: Path, spoil: Callable[[Path], None], named: str
) -> None:
    root = _container_root(tmp_path, trained.prepared, {"num_round": "2"})
    spoil(root)

    assert run_container(root, progress=None) != 0

    failure = (root / "output" / "failure").read_text()
    assert failure.startswith("ClientError: ")
    assert named in failure
    assert not (root / "model" / "xgboost-model").exists()
