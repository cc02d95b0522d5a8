"""The evaluation gate: an absolute ceiling and champion/challenger (DESIGN.md §3)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

VALIDATION_METRIC = "validation:rmse"
TRAIN_METRIC = "train:rmse"


@dataclass(frozen=True)
class Evaluation:
    passed: bool
    reason: str
    validation_rmse: float
    train_rmse: float | None
    champion_rmse: float | None
    champion_model_id: str | None
    ceiling: float
    margin_percent: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def final_metrics(training_job: Mapping[str, Any]) -> dict[str, float]:
    """``FinalMetricDataList`` of ``DescribeTrainingJob`` as name -> value."""
    return {m["MetricName"]: float(m["Value"]) for m in training_job.get("FinalMetricDataList", [])}


def champion_record(parameter_value: str) -> dict[str, Any]:
    """The production model's record; ``{}`` before the first promotion.

    An unreadable record fails the gate rather than reading as "no champion", which would let any
    candidate under the ceiling replace production.
    """
    try:
        record = json.loads(parameter_value or "{}")
    except json.JSONDecodeError as exc:
        raise ValueError(f"the champion record is not JSON ({exc.msg}): fix the parameter") from exc
    if not isinstance(record, dict) or (record and "validation_rmse" not in record):
        raise ValueError("the champion record has no validation_rmse: fix the parameter")
    return record


def evaluate(
    metrics: dict[str, float], champion: dict[str, Any], ceiling: float, margin_percent: float
) -> Evaluation:
    if VALIDATION_METRIC not in metrics:
        raise ValueError(f"the training job reported no {VALIDATION_METRIC}")
    rmse = metrics[VALIDATION_METRIC]
    raw_champion = champion.get("validation_rmse")
    champion_rmse = float(raw_champion) if raw_champion is not None else None
    under = f"validation RMSE {rmse:.3f} is under the ceiling {ceiling:.3f}"
    if rmse > ceiling:
        passed, reason = False, f"validation RMSE {rmse:.3f} is above the ceiling {ceiling:.3f}"
    elif champion_rmse is None:
        passed, reason = True, f"{under}; no model in production yet"
    elif rmse > champion_rmse * (1 + margin_percent / 100.0):
        passed = False
        reason = (
            f"validation RMSE {rmse:.3f} is worse than the production model "
            f"{champion.get('model_id')} ({champion_rmse:.3f}) by more than {margin_percent:g}%"
        )
    else:
        passed = True
        reason = f"{under} and within {margin_percent:g}% of production's {champion_rmse:.3f}"
    return Evaluation(
        passed=passed,
        reason=reason,
        validation_rmse=rmse,
        train_rmse=metrics.get(TRAIN_METRIC),
        champion_rmse=champion_rmse,
        champion_model_id=champion.get("model_id"),
        ceiling=ceiling,
        margin_percent=margin_percent,
    )
