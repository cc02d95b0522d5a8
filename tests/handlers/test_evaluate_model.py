"""evaluate_model: the gate between training and a person: the ceiling, then the Compare job's
comparison.json (the candidate and production on the same rows) against production's record,
read from the model registry version the champion parameter points at."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import pytest
from botocore.exceptions import ClientError
from pipeline_common import registry
from pipeline_common.gate import Comparison, comparison_key

from tests.handlers.support import (
    TEMPLATE,
    Cloud,
    FakeLambdaContext,
    Loader,
    emf_metrics,
    load_event,
)

EVENT = load_event("evaluate_model")
CEILING = float(TEMPLATE["Parameters"]["ValidationRmseCeiling"]["Default"])
MARGIN = float(TEMPLATE["Parameters"]["ChampionMarginPercent"]["Default"])
FARE_LIMIT = float(TEMPLATE["Parameters"]["FareShiftLimitPercent"]["Default"])
CHAMPION_ID = "fare-2e71d0c94a5b"
CHAMPION_RMSE = 4.0


CHAMPION_ARTIFACT = (
    f"s3://artifacts/runs/{CHAMPION_ID}/model/{CHAMPION_ID}-train/output/model.tar.gz"
)


def registered_champion(cloud: Cloud, metadata: dict[str, str] | None = None) -> str:
    """Production as the deploy state machine leaves it: an Approved version of the registry,
    and the champion parameter pointing at it (BuildChampionRecord)."""
    group = "fare-models-0a1b2c3d"
    cloud.sagemaker.create_model_package_group(ModelPackageGroupName=group)
    arn = cloud.sagemaker.create_model_package(
        ModelPackageGroupName=group,
        ModelApprovalStatus="Approved",
        InferenceSpecification={
            "Containers": [{"Image": "xgboost:1.7-1", "ModelDataUrl": CHAMPION_ARTIFACT}],
            "SupportedContentTypes": ["text/csv"],
            "SupportedResponseMIMETypes": ["text/csv"],
        },
        CustomerMetadataProperties=(
            {"model_id": CHAMPION_ID, "validation_rmse": str(CHAMPION_RMSE), "test_rmse": "4.1"}
            if metadata is None
            else metadata
        ),
    )["ModelPackageArn"]
    cloud.set_parameter("ChampionParameter", json.dumps({"model_package_arn": arn}))
    return arn


def champion(cloud: Cloud, rmse: float = CHAMPION_RMSE) -> None:
    """A record from before the registry, as BuildChampionRecord wrote it after a promotion:
    the production model's metrics in the parameter itself (still read)."""
    record = {
        "model_id": CHAMPION_ID,
        "endpoint": f"{CHAMPION_ID}-prod",
        "model_data_url": f"s3://artifacts/runs/{CHAMPION_ID}/model/{CHAMPION_ID}-train/output/model.tar.gz",
        "validation_rmse": rmse,
        "test_rmse": rmse + 0.1,
    }
    cloud.set_parameter("ChampionParameter", json.dumps(record))


def compared(
    cloud: Cloud,
    candidate_rmse: float,
    champion_rmse: float = CHAMPION_RMSE,
    spread: float = 0.01,
    fare_shift: float = 0.0,
    **overrides: Any,
) -> None:
    """comparison.json as the Compare job writes it for this run: bounds ``spread`` either side."""
    change = candidate_rmse / champion_rmse - 1
    comparison = Comparison(
        rows=18012,
        mean_fare=16.1,
        candidate_rmse=candidate_rmse,
        champion_rmse=champion_rmse,
        rmse_change=change,
        rmse_change_lower=change - spread,
        rmse_change_upper=change + spread,
        champion_mean_residual=fare_shift * 16.1,
        fare_shift=fare_shift,
        fare_shift_lower=fare_shift - 0.004,
        fare_shift_upper=fare_shift + 0.004,
        resamples=1000,
        seed=20180201,
        confidence=0.95,
        candidate_model_id=EVENT["model_id"],
        champion_model_id=CHAMPION_ID,
    )
    body = dataclasses.asdict(comparison) | {"format": 1} | overrides
    cloud.s3.put_object(
        Bucket=cloud.ref("ArtifactBucket"),
        Key=comparison_key(EVENT["model_id"]),
        Body=json.dumps(body).encode(),
    )


def test_first_model_under_the_ceiling_passes(
    cloud: Cloud,
    load_handler: Loader,
    context: FakeLambdaContext,
    capsys: pytest.CaptureFixture[str],
) -> None:
    cloud.training_job(EVENT["training_job"], {"validation:rmse": 4.8, "train:rmse": 4.6})
    app = load_handler("evaluate_model")

    verdict = app.lambda_handler(EVENT, context)

    assert verdict["passed"] is True
    assert "no model in production yet" in verdict["reason"]
    assert verdict["validation_rmse"] == 4.8
    assert verdict["train_rmse"] == 4.6
    assert verdict["champion_rmse"] is None
    assert verdict["rows_compared"] is None
    assert (verdict["ceiling"], verdict["margin_percent"]) == (CEILING, MARGIN)
    assert verdict["fare_shift_limit_percent"] == FARE_LIMIT
    assert "only the ceiling applies" in verdict["summary"]
    (metric,) = [m for m in emf_metrics(capsys.readouterr().out) if m.name != "ColdStart"]
    assert (metric.name, metric.value) == ("CandidateValidationRmse", 4.8)


def test_a_model_above_the_ceiling_is_rejected_whatever_production_does(
    cloud: Cloud, load_handler: Loader, context: FakeLambdaContext
) -> None:
    cloud.training_job(EVENT["training_job"], {"validation:rmse": CEILING + 1.5})
    champion(cloud, rmse=CEILING + 3)  # even a worse champion does not let it through
    compared(cloud, CEILING + 1.5, champion_rmse=CEILING + 3)
    app = load_handler("evaluate_model")

    verdict = app.lambda_handler(EVENT, context)

    assert verdict["passed"] is False
    assert verdict["reason"] == (
        f"validation RMSE {CEILING + 1.5:.3f} is above the ceiling {CEILING:.3f}"
    )


def test_a_model_worse_than_production_on_the_same_rows_beyond_the_noise_is_rejected(
    cloud: Cloud, load_handler: Loader, context: FakeLambdaContext
) -> None:
    worse = CHAMPION_RMSE * (1 + 2 * MARGIN / 100)
    cloud.training_job(EVENT["training_job"], {"validation:rmse": worse})
    champion(cloud)
    compared(cloud, worse)
    app = load_handler("evaluate_model")

    verdict = app.lambda_handler(EVENT, context)

    assert verdict["passed"] is False
    assert verdict["champion_rmse"] == CHAMPION_RMSE
    assert verdict["champion_model_id"] == CHAMPION_ID
    assert verdict["champion_rmse_same_rows"] == CHAMPION_RMSE
    assert verdict["rows_compared"] == 18012
    assert f"worse than the production model {CHAMPION_ID}'s" in verdict["reason"]
    assert f"more than the {MARGIN:g}% margin" in verdict["reason"]
    assert f"the rule rejects only above +{MARGIN:g}%" in verdict["summary"]


def test_a_model_worse_by_more_than_the_margin_only_within_the_noise_passes(
    cloud: Cloud, load_handler: Loader, context: FakeLambdaContext
) -> None:
    """6% worse on these rows, but the bootstrap's lower bound is under the margin."""
    noisy = CHAMPION_RMSE * 1.06
    cloud.training_job(EVENT["training_job"], {"validation:rmse": noisy})
    champion(cloud)
    compared(cloud, noisy, spread=0.02)
    app = load_handler("evaluate_model")

    verdict = app.lambda_handler(EVENT, context)

    assert verdict["passed"] is True
    assert verdict["rmse_change_percent"] == pytest.approx(6.0)
    assert verdict["rmse_change_lower_percent"] == pytest.approx(4.0)
    assert "(+6.0%, 95% bound +4.0%); the rule rejects only above +5%" in verdict["summary"]


def test_a_candidate_is_judged_against_productions_rmse_on_its_rows_not_its_record(
    cloud: Cloud, load_handler: Loader, context: FakeLambdaContext
) -> None:
    """A harder month (a real one after a synthetic one): 6.48 against the record's 4.00, but
    production scores 6.90 on the same rows."""
    cloud.training_job(EVENT["training_job"], {"validation:rmse": 6.48})
    champion(cloud)
    compared(cloud, 6.48, champion_rmse=6.90, fare_shift=-0.04)
    app = load_handler("evaluate_model")

    verdict = app.lambda_handler(EVENT, context)

    assert verdict["passed"] is True
    assert (
        "Production's recorded RMSE 4.00 was measured on its own month's rows"
        in (verdict["summary"])
    )


def test_fares_that_moved_for_the_same_trips_are_rejected(
    cloud: Cloud, load_handler: Loader, context: FakeLambdaContext
) -> None:
    cloud.training_job(EVENT["training_job"], {"validation:rmse": 4.69})
    champion(cloud)
    compared(cloud, 4.69, champion_rmse=7.96, fare_shift=0.32)
    app = load_handler("evaluate_model")

    verdict = app.lambda_handler(EVENT, context)

    assert verdict["passed"] is False
    assert verdict["rule"] == "fare-shift"
    assert verdict["reason"].startswith(
        f"for the same trips fares are 32.0% higher than the production model {CHAMPION_ID} expects"
    )
    assert verdict["fare_shift_percent"] == pytest.approx(32.0)


def test_the_margin_and_the_fare_limit_come_from_the_environment(
    cloud: Cloud, load_handler: Loader, context: FakeLambdaContext
) -> None:
    cloud.training_job(EVENT["training_job"], {"validation:rmse": CHAMPION_RMSE * 1.03})
    champion(cloud)
    compared(cloud, CHAMPION_RMSE * 1.03, fare_shift=0.08)

    assert load_handler("evaluate_model").lambda_handler(EVENT, context)["passed"] is True
    strict_margin = load_handler("evaluate_model", CHAMPION_MARGIN_PERCENT="1")
    assert strict_margin.lambda_handler(EVENT, context)["rule"] == "worse-than-production"
    strict_fares = load_handler("evaluate_model", FARE_SHIFT_LIMIT_PERCENT="5")
    assert strict_fares.lambda_handler(EVENT, context)["rule"] == "fare-shift"


def test_production_without_a_comparison_fails_the_run(
    cloud: Cloud, load_handler: Loader, context: FakeLambdaContext
) -> None:
    cloud.training_job(EVENT["training_job"], {"validation:rmse": 3.9})
    champion(cloud)
    app = load_handler("evaluate_model")

    with pytest.raises(ValueError, match=r"no comparison with the production model .*missing"):
        app.lambda_handler(EVENT, context)


def test_a_comparison_with_a_model_no_longer_in_production_fails_the_run(
    cloud: Cloud, load_handler: Loader, context: FakeLambdaContext
) -> None:
    cloud.training_job(EVENT["training_job"], {"validation:rmse": 3.9})
    champion(cloud)
    compared(cloud, 3.9, champion_model_id="fare-000000000000")
    app = load_handler("evaluate_model")

    with pytest.raises(ValueError, match=r"compared with fare-000000000000, but production is"):
        app.lambda_handler(EVENT, context)


def test_a_job_without_a_validation_metric_fails_the_run(
    cloud: Cloud, load_handler: Loader, context: FakeLambdaContext
) -> None:
    cloud.training_job(EVENT["training_job"])  # reports only train:progress
    app = load_handler("evaluate_model")

    with pytest.raises(ValueError, match=r"reported no validation:rmse"):
        app.lambda_handler(EVENT, context)


def test_an_unknown_training_job_fails_the_run(
    cloud: Cloud, load_handler: Loader, context: FakeLambdaContext
) -> None:
    app = load_handler("evaluate_model")

    with pytest.raises(ClientError, match=r"ValidationException|ValidationError"):
        app.lambda_handler(EVENT, context)


def test_the_champion_is_the_registry_version_the_record_points_at(
    cloud: Cloud, load_handler: Loader, context: FakeLambdaContext
) -> None:
    worse = CHAMPION_RMSE * (1 + 2 * MARGIN / 100)
    cloud.training_job(EVENT["training_job"], {"validation:rmse": worse})
    registered_champion(cloud)
    compared(cloud, worse)
    app = load_handler("evaluate_model")

    verdict = app.lambda_handler(EVENT, context)

    assert verdict["passed"] is False
    assert verdict["rule"] == "worse-than-production"
    assert verdict["champion_model_id"] == CHAMPION_ID
    assert verdict["champion_rmse"] == CHAMPION_RMSE  # the version's own validation RMSE


def test_a_comparison_with_another_model_than_the_registrys_champion_fails_the_run(
    cloud: Cloud, load_handler: Loader, context: FakeLambdaContext
) -> None:
    """Production changed (a promotion or a rollback) while the Compare job ran."""
    cloud.training_job(EVENT["training_job"], {"validation:rmse": 3.9})
    registered_champion(cloud)
    compared(cloud, 3.9, champion_model_id="fare-000000000000")
    app = load_handler("evaluate_model")

    with pytest.raises(
        ValueError, match=rf"compared with fare-000000000000, but production is now {CHAMPION_ID}"
    ):
        app.lambda_handler(EVENT, context)


def test_a_champion_version_without_its_metrics_fails_the_run(
    cloud: Cloud, load_handler: Loader, context: FakeLambdaContext
) -> None:
    cloud.training_job(EVENT["training_job"], {"validation:rmse": 3.9})
    arn = registered_champion(cloud, {"model_id": CHAMPION_ID})
    app = load_handler("evaluate_model")

    with pytest.raises(ValueError, match=rf"package {arn} has no validation_rmse"):
        app.lambda_handler(EVENT, context)


def test_the_verdict_is_written_where_the_candidates_version_will_point(
    cloud: Cloud, load_handler: Loader, context: FakeLambdaContext
) -> None:
    """The candidate's model-quality statistics (Model Monitor's regression format): the
    registry's ModelMetrics.ModelQuality for its version."""
    cloud.training_job(EVENT["training_job"], {"validation:rmse": 4.07, "train:rmse": 3.9})
    registered_champion(cloud)
    compared(cloud, 4.07)
    app = load_handler("evaluate_model")

    verdict = app.lambda_handler(EVENT, context)

    body = cloud.s3.get_object(
        Bucket=cloud.ref("ArtifactBucket"), Key=registry.model_quality_key(EVENT["model_id"])
    )["Body"].read()
    written = json.loads(body)
    assert written["regression_metrics"]["rmse"]["value"] == 4.07
    assert written["dataset"]["item_count"] == 18012
    assert written["gate"] == verdict
