"""The gate's decisions (the evaluate_model handler's tests run it under moto)."""

from __future__ import annotations

import pytest
from pipeline_common.gate import champion_record, evaluate


def test_no_champion_before_the_first_promotion() -> None:
    assert champion_record("{}") == {}


@pytest.mark.parametrize("value", ["not json", "[1, 2]", '{"model_id": "fare-1"}'])
def test_an_unreadable_champion_fails_the_gate_instead_of_waving_candidates_through(
    value: str,
) -> None:
    with pytest.raises(ValueError, match="champion record"):
        champion_record(value)


def test_margin_is_relative_to_the_champion() -> None:
    champion = {"model_id": "fare-1", "validation_rmse": 4.0}
    assert evaluate({"validation:rmse": 4.19}, champion, 8.0, 5.0).passed
    rejected = evaluate({"validation:rmse": 4.21}, champion, 8.0, 5.0)
    assert not rejected.passed
    assert "fare-1" in rejected.reason
