"""The gate's decisions on a comparison of the same rows (the evaluate_model handler's tests run it
under moto; tests/unit/test_compare.py runs it on models trained on synthetic months)."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import pytest
from pipeline_common.gate import (
    CEILING,
    FARE_SHIFT,
    NO_CHAMPION,
    WITHIN,
    WORSE,
    Comparison,
    GateRules,
    champion_record,
    evaluate,
)

RULES = GateRules(ceiling=8.0, margin_percent=5.0, fare_shift_limit_percent=15.0)
CHAMPION = {"model_id": "fare-1", "validation_rmse": 3.70}


def comparison(**changes: Any) -> Comparison:
    """Two models from the same generator on 18,012 rows: the candidate a little better."""
    values: dict[str, Any] = {
        "rows": 18012,
        "mean_fare": 16.1,
        "candidate_rmse": 3.70,
        "champion_rmse": 3.88,
        "rmse_change": 3.70 / 3.88 - 1,
        "rmse_change_lower": -0.061,
        "rmse_change_upper": -0.031,
        "champion_mean_residual": 0.02,
        "fare_shift": 0.001,
        "fare_shift_lower": -0.002,
        "fare_shift_upper": 0.004,
        "resamples": 1000,
        "seed": 7,
        "confidence": 0.95,
        "candidate_model_id": "fare-2",
        "champion_model_id": "fare-1",
    }
    return Comparison(**(values | changes))


def metrics(rmse: float) -> dict[str, float]:
    return {"validation:rmse": rmse, "train:rmse": rmse - 0.1}


def test_no_champion_before_the_first_promotion() -> None:
    assert champion_record("{}") == {}


@pytest.mark.parametrize(
    "value",
    ["not json", "[1, 2]", '{"model_id": "fare-1"}', '{"validation_rmse": 3.7}'],
)
def test_an_unreadable_champion_fails_the_gate_instead_of_waving_candidates_through(
    value: str,
) -> None:
    with pytest.raises(ValueError, match="champion record"):
        champion_record(value)


def test_a_record_written_before_it_carried_the_model_artifact_is_read() -> None:
    old = {
        "model_id": "fare-1",
        "endpoint": "fare-1-prod",
        "validation_rmse": 3.7,
        "test_rmse": 3.8,
    }
    assert champion_record(json.dumps(old)) == old


def test_the_first_model_is_held_to_the_ceiling_only() -> None:
    verdict = evaluate(metrics(7.9), {}, None, RULES)

    assert (verdict.passed, verdict.rule) == (True, NO_CHAMPION)
    assert "no model in production yet" in verdict.reason
    assert "only the ceiling applies" in verdict.summary
    assert verdict.rows_compared is None


def test_the_ceiling_rejects_whatever_production_does() -> None:
    verdict = evaluate(metrics(8.5), CHAMPION, comparison(candidate_rmse=8.5), RULES)

    assert (verdict.passed, verdict.rule) == (False, CEILING)
    assert verdict.reason == "validation RMSE 8.500 is above the ceiling 8.000"


def test_two_months_of_the_same_generator_pass_on_the_same_rows() -> None:
    """The complaint: 3.88 against 3.66 measured on different months' rows was rejected. On the
    same rows the candidate is compared with production's RMSE there, not with its record."""
    verdict = evaluate(
        metrics(3.70), {"model_id": "fare-1", "validation_rmse": 3.52}, comparison(), RULES
    )

    assert (verdict.passed, verdict.rule) == (True, WITHIN)
    assert verdict.summary.startswith(
        "On the same 18,012 validation rows the candidate's RMSE is 3.70 and production's 3.88 "
        "(-4.6%, 95% bound -6.1%); the rule rejects only above +5%."
    )
    assert "fares are 0.1% higher than production expects" in verdict.summary
    assert "beyond ±15%" in verdict.summary


def test_only_a_candidate_worse_by_more_than_the_margin_with_confidence_is_rejected() -> None:
    noisy = comparison(candidate_rmse=4.13, rmse_change=0.064, rmse_change_lower=0.049)
    worse = comparison(candidate_rmse=4.16, rmse_change=0.072, rmse_change_lower=0.051)

    assert evaluate(metrics(4.13), CHAMPION, noisy, RULES).passed  # 6.4% worse, but maybe noise
    verdict = evaluate(metrics(4.16), CHAMPION, worse, RULES)
    assert (verdict.passed, verdict.rule) == (False, WORSE)
    assert verdict.reason == (
        "on the same 18,012 validation rows the candidate's RMSE 4.160 is worse than the "
        "production model fare-1's 3.880 by +7.2% (95% bound +5.1%), more than the 5% margin"
    )


def test_a_margin_of_zero_rejects_any_candidate_confidently_worse() -> None:
    slightly = comparison(rmse_change=0.01, rmse_change_lower=0.004)
    assert not evaluate(
        metrics(3.9), CHAMPION, slightly, dataclasses.replace(RULES, margin_percent=0)
    ).passed


@pytest.mark.parametrize(("shift", "words"), [(0.32, "32.0% higher"), (-0.25, "25.0% lower")])
def test_fares_that_moved_for_the_same_trips_are_rejected_even_when_the_rmse_improves(
    shift: float, words: str
) -> None:
    """A month of inflated fares makes a model that beats production on that month's rows: the
    RMSE rule would promote it."""
    moved = comparison(
        candidate_rmse=4.69,
        champion_rmse=7.96,
        rmse_change=-0.41,
        rmse_change_lower=-0.44,
        rmse_change_upper=-0.39,
        fare_shift=shift,
        fare_shift_lower=shift - 0.004,
        fare_shift_upper=shift + 0.004,
    )

    verdict = evaluate(metrics(4.69), CHAMPION, moved, RULES)

    assert (verdict.passed, verdict.rule) == (False, FARE_SHIFT)
    assert verdict.reason.startswith(
        f"for the same trips fares are {words} than the production model fare-1 expects"
    )
    assert verdict.reason.endswith("a change in how fares are charged or recorded; review the data")
    assert f"{words} than production expects" in verdict.summary


def test_a_fare_shift_within_the_limit_or_not_certain_to_exceed_it_passes() -> None:
    small = comparison(fare_shift=0.10, fare_shift_lower=0.09, fare_shift_upper=0.11)
    uncertain = comparison(fare_shift=0.16, fare_shift_lower=0.12, fare_shift_upper=0.20)
    for moved in (small, uncertain):
        assert evaluate(metrics(3.7), CHAMPION, moved, RULES).passed


def test_a_month_harder_to_predict_says_why_its_rmse_is_not_held_against_it() -> None:
    """A real month after a synthetic one: 6.48 against production's recorded 3.70, but on the
    real month's rows production does worse still."""
    harder = comparison(
        candidate_rmse=6.48,
        champion_rmse=6.90,
        rmse_change=6.48 / 6.90 - 1,
        rmse_change_lower=-0.07,
        rmse_change_upper=-0.05,
        fare_shift=-0.04,
        fare_shift_lower=-0.05,
        fare_shift_upper=-0.03,
    )

    verdict = evaluate(metrics(6.48), CHAMPION, harder, RULES)

    assert verdict.passed
    assert (verdict.champion_rmse, verdict.champion_rmse_same_rows) == (3.70, 6.90)
    assert (
        "Production's recorded RMSE 3.70 was measured on its own month's rows, so it is not what "
        "the candidate is compared with." in verdict.summary
    )
    assert "fares are 4.0% lower than production expects" in verdict.summary


def test_a_champion_without_a_comparison_fails_the_gate() -> None:
    with pytest.raises(ValueError, match="not compared with the production model fare-1"):
        evaluate(metrics(3.7), CHAMPION, None, RULES)


def test_the_verdict_keeps_its_keys_and_adds_the_comparison() -> None:
    verdict = evaluate(metrics(3.70), CHAMPION, comparison(), RULES).to_dict()

    assert {"passed", "reason", "validation_rmse", "champion_rmse", "champion_model_id"} <= set(
        verdict
    )
    assert verdict["champion_rmse"] == 3.70  # production's record, as before
    assert verdict["rows_compared"] == 18012
    assert verdict["champion_rmse_same_rows"] == 3.88
    assert verdict["rmse_change_lower_percent"] == pytest.approx(-6.1)
    assert verdict["fare_shift_percent"] == pytest.approx(0.1)
    assert (verdict["bootstrap_resamples"], verdict["bootstrap_confidence"]) == (1000, 0.95)
    assert json.loads(json.dumps(verdict)) == verdict  # the state's output is JSON


@pytest.mark.parametrize(
    "text",
    [
        "",
        "[]",
        '{"rows": 3}',
        json.dumps(dataclasses.asdict(comparison(rows=0))),
        json.dumps(dataclasses.asdict(comparison(fare_shift=float("nan")))),
        json.dumps(dataclasses.asdict(comparison()) | {"rows": "many"}),
    ],
)
def test_an_unusable_comparison_file_fails_loudly(text: str) -> None:
    with pytest.raises(ValueError, match="comparison"):
        Comparison.from_json(text)


def test_a_comparison_file_reads_back() -> None:
    written = comparison()
    assert Comparison.from_json(json.dumps(dataclasses.asdict(written) | {"format": 1})) == written
