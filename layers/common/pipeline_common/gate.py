"""The evaluation gate: an absolute ceiling, then the candidate against production on the same rows.

The ``Compare`` processing job (``model/compare.py``) scores the candidate and the production
model on the new month's validation rows and bootstraps the difference; this module reads its
``comparison.json`` and decides (docs/gate.md):

1. a validation RMSE above the ceiling is rejected, whatever production does;
2. with no model in production, that is all;
3. fares that moved for the same trips are rejected: the production model's predictions miss the
   new month's fares by more than ``fare_shift_limit_percent`` on average, with 95% confidence.
   A model trained on such a month is *better* than production on that month's rows, so the RMSE
   rule alone would promote it;
4. a candidate worse than production by more than ``margin_percent`` with 95% confidence (the
   bootstrap's lower bound of the relative RMSE difference is above the margin) is rejected;
5. anything else passes to the dev endpoint test and a person.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, fields
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from pipeline_common import registry
from pipeline_common.layout import ModelResources

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

VALIDATION_METRIC = "validation:rmse"
TRAIN_METRIC = "train:rmse"
COMPARISON_FILE = "comparison.json"  # model/compare.py's COMPARISON_FILE

# Which rule decided (``Evaluation.rule``).
CEILING = "ceiling"
NO_CHAMPION = "no-champion"
FARE_SHIFT = "fare-shift"
WORSE = "worse-than-production"
WITHIN = "within-margin"


@dataclass(frozen=True)
class GateRules:
    ceiling: float
    margin_percent: float
    fare_shift_limit_percent: float


@dataclass(frozen=True)
class Comparison:
    """``comparison.json``: both models on the same rows. Changes are fractions (0.05 is 5%);
    ``*_lower``/``*_upper`` are one-sided bounds at ``confidence`` from a paired bootstrap."""

    rows: int
    mean_fare: float
    candidate_rmse: float
    champion_rmse: float
    rmse_change: float  # candidate / champion - 1
    rmse_change_lower: float
    rmse_change_upper: float
    champion_mean_residual: float  # dollars: actual fare - production's prediction
    fare_shift: float  # actual fares / production's predictions - 1
    fare_shift_lower: float
    fare_shift_upper: float
    resamples: int
    seed: int
    confidence: float
    candidate_model_id: str | None = None
    champion_model_id: str | None = None

    @classmethod
    def from_json(cls, text: str) -> Comparison:
        try:
            data = json.loads(text)
            comparison = cls(**{f.name: data[f.name] for f in fields(cls) if f.name in data})
        except (json.JSONDecodeError, TypeError) as exc:
            raise ValueError(f"{COMPARISON_FILE} is not a comparison ({exc})") from exc
        numbers = [getattr(comparison, f.name) for f in fields(cls) if not f.name.endswith("_id")]
        if not all(isinstance(v, int | float) and math.isfinite(v) for v in numbers):
            raise ValueError(f"{COMPARISON_FILE} holds values that are not numbers")
        if comparison.rows < 1:
            raise ValueError(f"{COMPARISON_FILE} holds no compared rows")
        return comparison


@dataclass(frozen=True)
class Evaluation:
    """The gate's verdict, as the Evaluate state's output (``$.gate.evaluation``). Percentages
    are percent (5.0 is 5%); the ``*_same_rows`` and comparison fields are None without a model
    in production."""

    passed: bool
    reason: str
    validation_rmse: float
    train_rmse: float | None
    champion_rmse: float | None  # production's own record: measured on its own month's rows
    champion_model_id: str | None
    ceiling: float
    margin_percent: float
    fare_shift_limit_percent: float
    rule: str  # which rule decided
    summary: str  # the rule and its numbers, in a sentence or two
    rows_compared: int | None = None
    candidate_rmse_same_rows: float | None = None
    champion_rmse_same_rows: float | None = None
    rmse_change_percent: float | None = None
    rmse_change_lower_percent: float | None = None
    rmse_change_upper_percent: float | None = None
    fare_shift_percent: float | None = None
    fare_shift_lower_percent: float | None = None
    fare_shift_upper_percent: float | None = None
    champion_mean_residual: float | None = None
    mean_fare: float | None = None
    bootstrap_resamples: int | None = None
    bootstrap_confidence: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def final_metrics(training_job: Mapping[str, Any]) -> dict[str, float]:
    """``FinalMetricDataList`` of ``DescribeTrainingJob`` as name -> value."""
    return {m["MetricName"]: float(m["Value"]) for m in training_job.get("FinalMetricDataList", [])}


def champion_record(
    parameter_value: str,
    describe_package: Callable[[str], Mapping[str, Any]] | None = None,
) -> dict[str, Any]:
    """The production model's record; ``{}`` before the first promotion.

    The champion parameter points at the model package that serves production, and the record
    is read from that package (``describe_package`` is SageMaker's DescribeModelPackage): the
    registry is the one source of the champion's artifact and metrics. Records written before
    the registry hold them themselves and are read as they are, and those written before they
    carried ``model_data_url`` too (the run layout says where that model is).

    An unreadable record fails the gate rather than reading as "no champion", which would let any
    candidate under the ceiling replace production.
    """
    try:
        record = json.loads(parameter_value or "{}")
    except json.JSONDecodeError as exc:
        raise ValueError(f"the champion record is not JSON ({exc.msg}): fix the parameter") from exc
    if not isinstance(record, dict):
        raise ValueError("the champion record is not a JSON object: fix the parameter")
    package_arn = record.get("model_package_arn")
    if package_arn:
        if describe_package is None:
            raise ValueError("the champion record names a model package: the registry is needed")
        return registry.champion_record(describe_package(str(package_arn)))
    for key in ("validation_rmse", "model_id"):
        if record and key not in record:
            raise ValueError(f"the champion record has no {key}: fix the parameter")
    return record


def comparison_key(model_id: str) -> str:
    """Where the Compare job of run ``model_id`` writes ``comparison.json``."""
    return f"{ModelResources(model_id).evaluation_prefix}{COMPARISON_FILE}"


def read_comparison(s3: S3Client, bucket: str, model_id: str, champion_id: str) -> Comparison:
    """The Compare job's result for this run, made against the production model ``champion_id``.

    Missing, or made against another model (production changed while the job ran), it fails the
    gate: the candidate has not been compared with what it would replace.
    """
    key = comparison_key(model_id)
    try:
        body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
            raise ValueError(
                f"no comparison with the production model {champion_id}: s3://{bucket}/{key} is "
                "missing (the Compare step did not run)"
            ) from exc
        raise
    comparison = Comparison.from_json(body.decode())
    if comparison.champion_model_id not in (None, champion_id):
        raise ValueError(
            f"the candidate was compared with {comparison.champion_model_id}, but production is "
            f"now {champion_id}: upload the month again to compare it with the new model"
        )
    if comparison.candidate_model_id not in (None, model_id):
        raise ValueError(f"s3://{bucket}/{key} compares {comparison.candidate_model_id}")
    return comparison


# ---------------------------------------------------------------------------- the decision
def evaluate(
    metrics: dict[str, float],
    champion: dict[str, Any],
    comparison: Comparison | None,
    rules: GateRules,
) -> Evaluation:
    if VALIDATION_METRIC not in metrics:
        raise ValueError(f"the training job reported no {VALIDATION_METRIC}")
    rmse = metrics[VALIDATION_METRIC]
    raw_champion = champion.get("validation_rmse")
    recorded = float(raw_champion) if raw_champion is not None else None
    champion_id = champion.get("model_id")
    common: dict[str, Any] = {
        "validation_rmse": rmse,
        "train_rmse": metrics.get(TRAIN_METRIC),
        "champion_rmse": recorded,
        "champion_model_id": champion_id,
        "ceiling": rules.ceiling,
        "margin_percent": rules.margin_percent,
        "fare_shift_limit_percent": rules.fare_shift_limit_percent,
    }
    if rmse > rules.ceiling:
        return Evaluation(
            passed=False,
            reason=f"validation RMSE {rmse:.3f} is above the ceiling {rules.ceiling:.3f}",
            rule=CEILING,
            summary=(
                f"The candidate's validation RMSE {rmse:.2f} is above the ceiling "
                f"{rules.ceiling:.2f}, which rejects it whatever production does."
            ),
            **common,
            **_numbers(comparison),
        )
    if not champion:
        return Evaluation(
            passed=True,
            reason=f"validation RMSE {rmse:.3f} is under the ceiling {rules.ceiling:.3f}; "
            "no model in production yet",
            rule=NO_CHAMPION,
            summary=(
                "No model in production yet, so only the ceiling applies: the candidate's "
                f"validation RMSE {rmse:.2f} is under {rules.ceiling:.2f}."
            ),
            **common,
        )
    if comparison is None:
        raise ValueError(f"the candidate was not compared with the production model {champion_id}")
    rule, passed, reason = _decide(rmse, comparison, rules, str(champion_id))
    return Evaluation(
        passed=passed,
        reason=reason,
        rule=rule,
        summary=summary_of(comparison, rules, recorded),
        **common,
        **_numbers(comparison),
    )


def _decide(
    rmse: float, c: Comparison, rules: GateRules, champion_id: str
) -> tuple[str, bool, str]:
    limit = rules.fare_shift_limit_percent / 100.0
    if c.fare_shift_lower > limit or c.fare_shift_upper < -limit:
        bound = c.fare_shift_lower if c.fare_shift > 0 else c.fare_shift_upper
        return (
            FARE_SHIFT,
            False,
            f"for the same trips fares are {_higher_or_lower(c.fare_shift)} than the production "
            f"model {champion_id} expects (on {c.rows:,} validation rows; 95% bound "
            f"{bound:+.1%}, limit ±{rules.fare_shift_limit_percent:g}%): a change in how fares "
            "are charged or recorded; review the data",
        )
    if c.rmse_change_lower > rules.margin_percent / 100.0:
        return (
            WORSE,
            False,
            f"on the same {c.rows:,} validation rows the candidate's RMSE {c.candidate_rmse:.3f} "
            f"is worse than the production model {champion_id}'s {c.champion_rmse:.3f} by "
            f"{c.rmse_change:+.1%} (95% bound {c.rmse_change_lower:+.1%}), more than the "
            f"{rules.margin_percent:g}% margin",
        )
    return (
        WITHIN,
        True,
        f"validation RMSE {rmse:.3f} is under the ceiling {rules.ceiling:.3f}; on the "
        f"same {c.rows:,} rows it is not worse than the production model {champion_id}'s "
        f"{c.champion_rmse:.3f} by more than {rules.margin_percent:g}% with 95% confidence, "
        f"and fares are within ±{rules.fare_shift_limit_percent:g}% of what that model expects",
    )


def summary_of(c: Comparison, rules: GateRules, recorded: float | None = None) -> str:
    """The rule and its numbers, for people: the approval message, ``safe-deploy status``."""
    parts = [
        f"On the same {c.rows:,} validation rows the candidate's RMSE is {c.candidate_rmse:.2f} "
        f"and production's {c.champion_rmse:.2f} ({c.rmse_change:+.1%}, 95% bound "
        f"{c.rmse_change_lower:+.1%}); the rule rejects only above +{rules.margin_percent:g}%."
    ]
    if recorded is not None and abs(c.champion_rmse / recorded - 1) * 100 > rules.margin_percent:
        parts.append(
            f"Production's recorded RMSE {recorded:.2f} was measured on its own month's rows, "
            "so it is not what the candidate is compared with."
        )
    parts.append(
        f"For the same trips fares are {_higher_or_lower(c.fare_shift)} than production expects "
        f"(95% bounds {c.fare_shift_lower:+.1%} to {c.fare_shift_upper:+.1%}); the rule rejects "
        f"beyond ±{rules.fare_shift_limit_percent:g}%."
    )
    return " ".join(parts)


def _higher_or_lower(shift: float) -> str:
    return f"{abs(shift):.1%} {'higher' if shift >= 0 else 'lower'}"


def _numbers(c: Comparison | None) -> dict[str, Any]:
    if c is None:
        return {}
    return {
        "rows_compared": c.rows,
        "candidate_rmse_same_rows": c.candidate_rmse,
        "champion_rmse_same_rows": c.champion_rmse,
        "rmse_change_percent": 100 * c.rmse_change,
        "rmse_change_lower_percent": 100 * c.rmse_change_lower,
        "rmse_change_upper_percent": 100 * c.rmse_change_upper,
        "fare_shift_percent": 100 * c.fare_shift,
        "fare_shift_lower_percent": 100 * c.fare_shift_lower,
        "fare_shift_upper_percent": 100 * c.fare_shift_upper,
        "champion_mean_residual": c.champion_mean_residual,
        "mean_fare": c.mean_fare,
        "bootstrap_resamples": c.resamples,
        "bootstrap_confidence": c.confidence,
    }
