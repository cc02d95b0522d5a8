"""evaluate_model: the gate between training and a person (ceiling, then champion/challenger)."""

from __future__ import annotations

import json

import pytest
from botocore.exceptions import ClientError

from tests.handlers.conftest import (
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
CHAMPION_RMSE = 4.0


def champion(cloud: Cloud, rmse: float = CHAMPION_RMSE) -> None:
    """The record the deploy state machine's BuildChampionRecord writes after a promotion."""
    record = {
        "model_id": "fare-2e71d0c94a5b",
        "endpoint": "fare-2e71d0c94a5b-prod",
        "validation_rmse": rmse,
        "test_rmse": rmse + 0.1,
    }
    cloud.set_parameter("ChampionParameter", json.dumps(record))


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
    assert (verdict["ceiling"], verdict["margin_percent"]) == (CEILING, MARGIN)
    (metric,) = [m for m in emf_metrics(capsys.readouterr().out) if m.name != "ColdStart"]
    assert (metric.name, metric.value) == ("CandidateValidationRmse", 4.8)


def test_a_model_above_the_ceiling_is_rejected_whatever_production_does(
    cloud: Cloud, load_handler: Loader, context: FakeLambdaContext
) -> None:
    cloud.training_job(EVENT["training_job"], {"validation:rmse": CEILING + 1.5})
    champion(cloud, rmse=CEILING + 3)  # even a worse champion does not let it through
    app = load_handler("evaluate_model")

    verdict = app.lambda_handler(EVENT, context)

    assert verdict["passed"] is False
    assert verdict["reason"] == (
        f"validation RMSE {CEILING + 1.5:.3f} is above the ceiling {CEILING:.3f}"
    )


def test_a_model_worse_than_production_by_more_than_the_margin_is_rejected(
    cloud: Cloud, load_handler: Loader, context: FakeLambdaContext
) -> None:
    worse = CHAMPION_RMSE * (1 + 2 * MARGIN / 100)
    cloud.training_job(EVENT["training_job"], {"validation:rmse": worse})
    champion(cloud)
    app = load_handler("evaluate_model")

    verdict = app.lambda_handler(EVENT, context)

    assert verdict["passed"] is False
    assert verdict["champion_rmse"] == CHAMPION_RMSE
    assert verdict["champion_model_id"] == "fare-2e71d0c94a5b"
    assert "worse than the production model fare-2e71d0c94a5b" in verdict["reason"]
    assert f"by more than {MARGIN:g}%" in verdict["reason"]


def test_a_model_within_the_margin_of_production_passes(
    cloud: Cloud, load_handler: Loader, context: FakeLambdaContext
) -> None:
    within = CHAMPION_RMSE * (1 + MARGIN / 200)  # half the margin worse
    cloud.training_job(EVENT["training_job"], {"validation:rmse": within})
    champion(cloud)
    app = load_handler("evaluate_model")

    verdict = app.lambda_handler(EVENT, context)

    assert verdict["passed"] is True
    assert f"within {MARGIN:g}% of production's {CHAMPION_RMSE:.3f}" in verdict["reason"]


def test_the_margin_comes_from_the_environment(
    cloud: Cloud, load_handler: Loader, context: FakeLambdaContext
) -> None:
    cloud.training_job(EVENT["training_job"], {"validation:rmse": CHAMPION_RMSE * 1.01})
    champion(cloud)
    app = load_handler("evaluate_model", CHAMPION_MARGIN_PERCENT="0")

    assert app.lambda_handler(EVENT, context)["passed"] is False


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
