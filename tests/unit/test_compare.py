"""The Compare job (model/compare.py) and the gate on its result, on models trained on synthetic
months: the same generator passes, inflated fares are rejected, a month harder to predict is judged
on its own rows. No cloud: prepare, train and compare are called directly."""

from __future__ import annotations

import ast
import json
import shlex
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
from pipeline_common.gate import (
    FARE_SHIFT,
    WITHIN,
    WORSE,
    Comparison,
    Evaluation,
    GateRules,
    evaluate,
)

from model import compare as compare_module
from model.compare import (
    COMPARISON_FILE,
    ComparisonError,
    compare,
    compare_predictions,
    main,
    paired_bootstrap,
    read_rows,
)
from model.prepare import prepare
from model.synth import synth_trips, write_trips
from model.train import train_to_dir
from safe_deploy.localcloud.sagemaker import JobFailed
from safe_deploy.localcloud.sagemaker.jobs import JobRunner
from safe_deploy.localcloud.state import ActivityFeed, LocalSettings
from tests.conftest import TRAINING_ROWS
from tests.support import FEBRUARY_HEAD, JANUARY_SAMPLE, REPO, Trained

TEMPLATE_RULES = GateRules(ceiling=8.0, margin_percent=5.0, fare_shift_limit_percent=15.0)
CHAMPION_ID = "fare-000000000001"


# ---------------------------------------------------------------------------- the statistics
def test_identical_models_differ_by_exactly_nothing_on_every_resample() -> None:
    """Paired: both models are scored on the same resampled rows, so what they share cancels."""
    rng = np.random.default_rng(3)
    actual = rng.gamma(2.0, 8.0, 2000)
    predicted = actual + rng.normal(0, 3, 2000)

    result = compare_predictions(actual, predicted, predicted.copy())

    assert result["rmse_change"] == 0.0
    assert result["rmse_change_lower"] == result["rmse_change_upper"] == 0.0
    assert result["rows"] == 2000


def test_the_bounds_bracket_the_estimate_and_the_same_data_gives_the_same_bounds() -> None:
    rng = np.random.default_rng(4)
    actual = rng.gamma(2.0, 8.0, 3000)
    champion = actual + rng.normal(0, 3, 3000)
    candidate = actual + rng.normal(0, 3.3, 3000)  # 10% worse

    first = compare_predictions(actual, candidate, champion)
    again = compare_predictions(actual, candidate, champion)

    assert first == again
    assert first["rmse_change_lower"] < first["rmse_change"] < first["rmse_change_upper"]
    assert first["rmse_change_lower"] > 0.05
    assert first["rmse_change_upper"] < 0.15
    assert first["fare_shift_lower"] < first["fare_shift"] < first["fare_shift_upper"]


def test_the_fare_shift_is_how_far_fares_sit_from_what_production_expects() -> None:
    rng = np.random.default_rng(5)
    expected = rng.gamma(2.0, 8.0, 4000)
    actual = expected * 1.3  # the same trips, 30% dearer

    result = compare_predictions(actual, actual, expected)

    assert result["fare_shift"] == pytest.approx(0.3)
    assert result["champion_mean_residual"] == pytest.approx(0.3 * expected.mean())
    assert result["fare_shift_lower"] == pytest.approx(0.3)


def test_the_bootstrap_draws_the_same_rows_for_both_models() -> None:
    actual = np.arange(1.0, 11.0)
    changes, shifts = paired_bootstrap(actual, actual + 1, actual + 1, resamples=50, seed=1)
    assert np.allclose(changes, 0.0)
    assert len(changes) == len(shifts) == 50


# ---------------------------------------------------------------------------- synthetic months
def _month(root: Path, seed: int, drift: str | None = None, fare_noise: float = 0.0) -> Trained:
    """A synthetic month prepared and trained as the pipeline does. ``fare_noise`` adds
    zero-mean, heavy-tailed noise to the fares: a month harder to predict (as a real month is
    after a synthetic one) whose fares did not move."""
    frame = synth_trips(TRAINING_ROWS, seed=seed, drift=drift)
    if fare_noise:
        noise = np.random.default_rng(seed + 100).standard_t(3, len(frame)) * fare_noise
        frame["total_amount"] = frame["total_amount"] + noise
    write_trips(frame, root / "raw" / "month.csv")
    prepare([root / "raw" / "month.csv"], root / "prepared")
    report = train_to_dir(root / "prepared", root / "model")
    return Trained(prepared=root / "prepared", model_dir=root / "model", report=report)


@pytest.fixture(scope="module")
def months(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Trained]:
    """Month 2 of the same generator, month 2 with 35% fare inflation (``safe-deploy demo
    --scenario gate-rejects``), and a month harder to predict."""
    return {
        "same-generator": _month(tmp_path_factory.mktemp("seed2"), seed=2),
        "fare-inflation": _month(tmp_path_factory.mktemp("inflated"), 2, "fare-inflation"),
        "harder": _month(tmp_path_factory.mktemp("harder"), seed=3, fare_noise=3.0),
    }


def _gate(champion: Trained, candidate: Trained) -> tuple[dict[str, Any], Evaluation]:
    """What the Compare job writes for ``candidate`` against production ``champion``, and the
    verdict of the gate with the template's default rules on it."""
    comparison = compare(
        candidate.model_dir,
        champion.model_dir / "model.tar.gz",
        candidate.prepared / "validation.csv",
        candidate_model_id="fare-000000000002",
        champion_model_id=CHAMPION_ID,
    )
    record = {
        "model_id": CHAMPION_ID,
        "validation_rmse": champion.report.final_metrics["validation:rmse"],
    }
    verdict = evaluate(
        candidate.report.final_metrics,
        record,
        Comparison.from_json(json.dumps(comparison)),
        TEMPLATE_RULES,
    )
    return comparison, verdict


def test_two_months_from_the_same_generator_pass_against_each_other(
    trained: Trained, months: dict[str, Trained]
) -> None:
    comparison, verdict = _gate(trained, months["same-generator"])

    assert (verdict.passed, verdict.rule) == (True, WITHIN), verdict.summary
    # scored on the same rows, the candidate's RMSE is the one its training job reported
    assert comparison["candidate_rmse"] == pytest.approx(
        months["same-generator"].report.final_metrics["validation:rmse"], rel=1e-5
    )
    assert comparison["rows"] == months["same-generator"].report.validation_rows
    assert abs(comparison["rmse_change"]) < 0.02
    assert abs(comparison["fare_shift"]) < 0.02
    assert verdict.summary.startswith(
        f"On the same {comparison['rows']:,} validation rows the candidate's RMSE is"
    )


def test_the_same_months_against_each_others_records_are_what_the_old_gate_rejected(
    trained: Trained, months: dict[str, Trained]
) -> None:
    """The old gate compared RMSEs measured on different months' rows: seed 2's month scores
    more than 5% worse than seed 1's on its own rows, which is noise between the two samples."""
    own = months["same-generator"].report.final_metrics["validation:rmse"]
    recorded = trained.report.final_metrics["validation:rmse"]
    assert own > recorded * (1 + TEMPLATE_RULES.margin_percent / 100)


def test_inflated_fares_beat_production_on_their_own_rows_and_are_rejected(
    trained: Trained, months: dict[str, Trained]
) -> None:
    comparison, verdict = _gate(trained, months["fare-inflation"])

    # the RMSE rule alone would promote it: on the new month's rows it beats production widely
    assert comparison["rmse_change_upper"] < -0.25
    assert comparison["fare_shift_lower"] > 0.25  # ~32%: fares 35%, surcharges unchanged
    assert (verdict.passed, verdict.rule) == (False, FARE_SHIFT)
    assert verdict.reason.startswith("for the same trips fares are 3")
    assert "higher than the production model fare-000000000001 expects" in verdict.reason
    assert "a change in how fares are charged or recorded; review the data" in verdict.reason


def test_a_month_harder_to_predict_is_judged_on_its_own_rows_and_says_why(
    trained: Trained, months: dict[str, Trained]
) -> None:
    """Like a real month after a synthetic one: its validation RMSE is far above production's
    record, but production does no better on the same rows."""
    candidate = months["harder"]
    own = candidate.report.final_metrics["validation:rmse"]
    recorded = trained.report.final_metrics["validation:rmse"]
    assert own > recorded * 1.3  # what the old gate rejected

    comparison, verdict = _gate(trained, candidate)

    assert verdict.passed, verdict.summary
    assert comparison["champion_rmse"] > recorded * 1.3
    assert verdict.champion_rmse_same_rows == comparison["champion_rmse"]
    assert f"Production's recorded RMSE {recorded:.2f} was measured on its own month's rows" in (
        verdict.summary
    )


def test_real_tlc_trips_are_not_taken_for_a_fare_change_by_a_synthetic_production_model(
    trained: Trained, months: dict[str, Trained], tmp_path: Path
) -> None:
    """The real TLC rows kept with the tests (the same as shared/data), scored as a new month's
    rows: the synthetic model's expectations are close to real fares, so after a synthetic month
    a real one is judged by its RMSE on the same rows, not stopped by the fare-shift rule."""
    prepare([JANUARY_SAMPLE, FEBRUARY_HEAD], tmp_path / "real")
    rows = tmp_path / "real-rows.csv"
    test_split = (tmp_path / "real" / "test.csv").read_text().splitlines()[1:]
    rows.write_text(
        (tmp_path / "real" / "train.csv").read_text()
        + (tmp_path / "real" / "validation.csv").read_text()
        + "\n".join(test_split)
        + "\n"
    )

    comparison = compare(
        months["same-generator"].model_dir, trained.model_dir, rows, champion_model_id=CHAMPION_ID
    )
    verdict = evaluate(
        {"validation:rmse": comparison["candidate_rmse"]},
        {"model_id": CHAMPION_ID, "validation_rmse": 3.7},
        Comparison.from_json(json.dumps(comparison)),
        TEMPLATE_RULES,
    )

    assert comparison["rows"] == verdict.rows_compared == 15
    assert abs(comparison["fare_shift"]) < 0.10
    # Not stopped by the fare-shift rule: its bounds straddle zero and stay inside the limit.
    assert comparison["fare_shift_lower"] < 0 < comparison["fare_shift_upper"]
    assert verdict.rule in (WITHIN, WORSE), verdict.summary
    # Judged by RMSE on these rows (which of two synthetic models wins on 15 real trips is
    # chance), never by production's record from its own month.
    assert verdict.champion_rmse_same_rows == comparison["champion_rmse"]
    assert "On the same 15 validation rows" in verdict.summary


# ---------------------------------------------------------------------------- the job
def test_the_job_writes_comparison_json_with_the_ids_from_its_environment(
    trained: Trained, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CANDIDATE_MODEL_ID", "fare-000000000002")
    monkeypatch.setenv("CHAMPION_MODEL_ID", CHAMPION_ID)
    args = [
        "--candidate",
        str(trained.model_dir),
        "--champion",
        str(trained.model_dir / "model.tar.gz"),
        "--validation",
        str(trained.prepared / "validation.csv"),
        "--output",
        str(tmp_path / "evaluation"),
        "--resamples",
        "200",
    ]

    assert main(args) == 0

    written = json.loads((tmp_path / "evaluation" / COMPARISON_FILE).read_text())
    assert (written["candidate_model_id"], written["champion_model_id"]) == (
        "fare-000000000002",
        CHAMPION_ID,
    )
    assert written["rmse_change"] == 0.0  # the same model twice
    assert written["resamples"] == 200
    assert Comparison.from_json(json.dumps(written)).rows == trained.report.validation_rows


def test_a_missing_model_fails_the_job_naming_it(
    trained: Trained, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "champion").mkdir()
    args = ["--candidate", str(trained.model_dir), "--champion", str(tmp_path / "champion")]
    args += ["--validation", str(trained.prepared / "validation.csv")]

    assert main([*args, "--output", str(tmp_path / "out")]) == 1
    assert "the production model: nothing at" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_the_validation_rows_of_several_preparation_instances_are_read_together(
    trained: Trained, tmp_path: Path
) -> None:
    """``prepared/validation`` of PrepareData on several instances: a file per host, one of
    them with no rows (a host whose files' trips all went to other splits)."""
    rows = (trained.prepared / "validation.csv").read_text().splitlines()
    folder = tmp_path / "validation"
    folder.mkdir()
    for index in range(2):
        (folder / f"algo-{index + 1}.csv").write_text("\n".join(rows[index::2]) + "\n")
    (folder / "algo-3.csv").write_text("")

    labels, features = read_rows(folder)
    whole_labels, whole_features = read_rows(trained.prepared / "validation.csv")

    def as_rows(labels: np.ndarray, features: np.ndarray) -> list[tuple[float, ...]]:
        return sorted(map(tuple, np.column_stack([labels, features]).tolist()))

    assert as_rows(labels, features) == as_rows(whole_labels, whole_features)


def test_models_that_take_other_features_are_refused(trained: Trained, tmp_path: Path) -> None:
    narrow = tmp_path / "narrow.csv"
    narrow.write_text("10.5,3.0,1\n12.0,4.0,2\n")
    with pytest.raises(ComparisonError, match="takes 3 features; the validation rows have 2"):
        compare(trained.model_dir, trained.model_dir, narrow)


def _compare_state() -> dict[str, Any]:
    definition = json.loads((REPO / "statemachines" / "training.asl.json").read_text())
    state: dict[str, Any] = definition["States"]["Candidate"]["Branches"][0]["States"]["Compare"]
    return state


def test_the_local_cloud_runs_the_job_as_the_state_machine_defines_it(
    trained: Trained, tmp_path: Path
) -> None:
    """The ASL's command and paths, the local processing runner and model/compare.py agree."""
    parameters = _compare_state()["Parameters"]
    inputs = {i["InputName"]: i["S3Input"]["LocalPath"] for i in parameters["ProcessingInputs"]}
    (output,) = parameters["ProcessingOutputConfig"]["Outputs"]

    def local(container_path: str) -> Path:
        return tmp_path / container_path.lstrip("/")

    for name, source in (
        ("candidate", trained.model_dir / "model.tar.gz"),
        ("champion", trained.model_dir / "model.tar.gz"),
        ("validation", trained.prepared / "validation.csv"),
    ):
        local(inputs[name]).mkdir(parents=True)
        (local(inputs[name]) / source.name).write_bytes(source.read_bytes())
    command = shlex.join(parameters["AppSpecification"]["ContainerEntrypoint"])
    jobs = JobRunner(LocalSettings(REPO, tmp_path), ActivityFeed())
    job = SimpleNamespace(
        processing_job_name="compare-test", environment={"CHAMPION_MODEL_ID": CHAMPION_ID}
    )

    jobs.run_script(job, "model.compare", command, local)

    written = json.loads((local(output["S3Output"]["LocalPath"]) / COMPARISON_FILE).read_text())
    assert written["champion_model_id"] == CHAMPION_ID
    assert written["rows"] == trained.report.validation_rows

    # Without the production model, the job fails as SageMaker says it: generic words in its
    # FailureReason, the script's own in its ExitMessage.
    (local(inputs["champion"]) / "model.tar.gz").unlink()
    with pytest.raises(JobFailed, match=r"^AlgorithmError: See job logs for more information$"):
        jobs.run_script(job, "model.compare", command, local)
    assert "/opt/ml/processing/input/champion" in job.exit_message
    assert str(tmp_path) not in job.exit_message


# ---------------------------------------------------------------------------- the image
def test_the_job_runs_in_the_xgboost_image() -> None:
    """The XGBoost image (the training algorithm's: Python 3.8, xgboost 1.7, numpy) runs it as
    it is: no syntax after 3.8, and nothing imported that the image lacks."""
    assert _compare_state()["Parameters"]["AppSpecification"]["ImageUri"] == "${XGBoostImage}"
    source = Path(compare_module.__file__).read_text()
    tree = ast.parse(source, feature_version=(3, 8))
    imported = {
        alias.name for n in ast.walk(tree) if isinstance(n, ast.Import) for alias in n.names
    }
    imported |= {n.module or "." for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    imported = {name.split(".")[0] for name in imported}
    third_party = {name for name in imported if name not in sys.stdlib_module_names}
    assert third_party <= {"numpy", "xgboost", "__future__"}
    for newer in ("removeprefix", "removesuffix", "strict=", "filter="):  # 3.9+ APIs
        assert newer not in source
