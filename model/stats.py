"""Model Monitor's file formats: ``statistics.json``, ``constraints.json`` and
``constraint_violations.json``, computed the way the prebuilt analyzer computes them.

Distributions are summarised as 10 equal-width buckets plus a quantile sketch in the KLL
layout (``sketch.data`` holds equally weighted quantile points on one level). Drift is the
L-infinity distance between the baseline's and the current cumulative distributions, compared
with ``distribution_constraints.comparison_threshold``. With ``comparison_method: Robust`` a
distance is reported only if it is also statistically significant for the sample sizes (two-sample
Kolmogorov-Smirnov at the 0.1% level), so a small window of traffic does not raise false alarms.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

SKETCH_POINTS = 2048
KLL_PARAMETERS = {"c": 0.64, "k": SKETCH_POINTS}
BUCKETS = 10
DEFAULT_COMPARISON_THRESHOLD = 0.1
KS_CRITICAL_0_001 = 1.949  # c(alpha) of the two-sample KS test at alpha = 0.001

DEFAULT_MONITORING_CONFIG: dict[str, Any] = {
    "evaluate_constraints": "Enabled",
    "emit_metrics": "Enabled",
    "datatype_check_threshold": 1.0,
    "domain_content_threshold": 1.0,
    "distribution_constraints": {
        "perform_comparison": "Enabled",
        "comparison_threshold": DEFAULT_COMPARISON_THRESHOLD,
        "comparison_method": "Robust",
        "categorical_comparison_threshold": 0.1,
        "categorical_drift_method": "LInfinity",
    },
}


def _round(value: float) -> float:
    return float(value) if math.isfinite(value) else 0.0


def inferred_type(present: np.ndarray) -> str:
    if present.size and np.all(np.isfinite(present)) and np.all(present == np.round(present)):
        return "Integral"
    return "Fractional"


def sketch_points(sorted_values: np.ndarray, points: int = SKETCH_POINTS) -> np.ndarray:
    """Equally spaced quantiles of already sorted values (all of them if there are few)."""
    if sorted_values.size <= points:
        return sorted_values
    ranks = np.linspace(0, sorted_values.size - 1, points).round().astype(np.int64)
    return sorted_values[ranks]


def feature_statistics(
    name: str, values: np.ndarray, type_hint: str | None = None
) -> dict[str, Any]:
    """One feature's entry of ``statistics.json``; NaN marks a missing value."""
    missing = np.isnan(values)
    present = np.sort(values[~missing])
    common = {"num_present": int(present.size), "num_missing": int(missing.sum())}
    stats: dict[str, Any] = {"common": common}
    if present.size:
        low, high = float(present[0]), float(present[-1])
        edges = np.linspace(low, high, BUCKETS + 1) if high > low else np.array([low, high])
        counts, _ = np.histogram(present, bins=edges)
        stats.update(
            mean=_round(present.mean()),
            sum=_round(present.sum()),
            std_dev=_round(present.std()),
            min=low,
            max=high,
            distribution={
                "kll": {
                    "buckets": [
                        {"lower_bound": float(lo), "upper_bound": float(hi), "count": float(c)}
                        for lo, hi, c in zip(edges[:-1], edges[1:], counts, strict=True)
                    ],
                    "sketch": {
                        "parameters": dict(KLL_PARAMETERS),
                        "data": [sketch_points(present).tolist()],
                    },
                }
            },
        )
    else:
        stats.update(mean=0.0, sum=0.0, std_dev=0.0, min=0.0, max=0.0)
    return {
        "name": name,
        "inferred_type": type_hint or inferred_type(present),
        "numerical_statistics": stats,
    }


def dataset_statistics(columns: Mapping[str, np.ndarray]) -> dict[str, Any]:
    counts = {len(values) for values in columns.values()}
    return {
        "version": 0,
        "dataset": {"item_count": counts.pop() if len(counts) == 1 else max(counts, default=0)},
        "features": [feature_statistics(name, values) for name, values in columns.items()],
    }


def suggest_constraints(
    statistics: Mapping[str, Any], comparison_threshold: float = DEFAULT_COMPARISON_THRESHOLD
) -> dict[str, Any]:
    """``constraints.json`` suggested from baseline statistics, as the analyzer suggests them."""
    features = []
    for feature in statistics["features"]:
        numbers = feature["numerical_statistics"]
        total = numbers["common"]["num_present"] + numbers["common"]["num_missing"]
        features.append(
            {
                "name": feature["name"],
                "inferred_type": feature["inferred_type"],
                "completeness": numbers["common"]["num_present"] / total if total else 0.0,
                "num_constraints": {"is_non_negative": bool(numbers["min"] >= 0)},
            }
        )
    config = {
        **DEFAULT_MONITORING_CONFIG,
        "distribution_constraints": {
            **DEFAULT_MONITORING_CONFIG["distribution_constraints"],
            "comparison_threshold": comparison_threshold,
        },
    }
    return {"version": 0, "features": features, "monitoring_config": config}


def _baseline_points(feature: Mapping[str, Any]) -> np.ndarray:
    data = feature["numerical_statistics"].get("distribution", {}).get("kll", {})
    levels = data.get("sketch", {}).get("data", [])
    # Items on level h of a KLL sketch weigh 2**h; repeat them to build the weighted ECDF.
    parts = [np.repeat(np.asarray(level, dtype=np.float64), 2**h) for h, level in enumerate(levels)]
    return np.sort(np.concatenate(parts)) if parts else np.empty(0)


def drift_distance(baseline_points: np.ndarray, current_sorted: np.ndarray) -> float:
    """L-infinity distance between two empirical CDFs (the KS statistic)."""
    if baseline_points.size == 0 or current_sorted.size == 0:
        return 0.0
    grid = np.union1d(baseline_points, sketch_points(current_sorted, 8 * SKETCH_POINTS))
    base_cdf = np.searchsorted(baseline_points, grid, side="right") / baseline_points.size
    curr_cdf = np.searchsorted(current_sorted, grid, side="right") / current_sorted.size
    return float(np.max(np.abs(base_cdf - curr_cdf)))


def _type_matches(numbers: np.ndarray, expected: str) -> int:
    """How many of the (parsed, present) numbers have the expected type."""
    if expected == "Integral":
        return int(np.count_nonzero(numbers == np.round(numbers)))
    return int(numbers.size)


def check_constraints(
    baseline_statistics: Mapping[str, Any],
    constraints: Mapping[str, Any],
    current: Mapping[str, np.ndarray],
    unparsable: Mapping[str, int] | None = None,
) -> list[dict[str, str]]:
    """``constraint_violations.json`` entries for current columns against the baseline."""
    violations: list[dict[str, str]] = []
    config = constraints.get("monitoring_config", DEFAULT_MONITORING_CONFIG)
    distribution = config.get("distribution_constraints", {})
    threshold = float(distribution.get("comparison_threshold", DEFAULT_COMPARISON_THRESHOLD))
    robust = distribution.get("comparison_method", "Robust") == "Robust"
    compare = distribution.get("perform_comparison", "Enabled") == "Enabled"
    datatype_threshold = float(config.get("datatype_check_threshold", 1.0))
    baseline_by_name = {f["name"]: f for f in baseline_statistics["features"]}
    baseline_items = int(baseline_statistics.get("dataset", {}).get("item_count", 0))
    unparsable = unparsable or {}

    for constraint in constraints["features"]:
        name = constraint["name"]
        if name not in current:
            violations.append(
                {
                    "feature_name": name,
                    "constraint_check_type": "missing_column_check",
                    "description": f"There are missing columns in current dataset: {name}",
                }
            )
            continue
        values = current[name]
        present = values[~np.isnan(values)]
        wrong_type = unparsable.get(name, 0)  # present, but not a number (arrives as NaN)
        observed = present.size + wrong_type
        completeness = observed / values.size if values.size else 1.0
        expected_completeness = float(constraint.get("completeness", 1.0))
        if completeness < expected_completeness:
            violations.append(
                {
                    "feature_name": name,
                    "constraint_check_type": "completeness_check",
                    "description": (
                        "Data completeness requirement is not met. Expected completeness: "
                        f"{expected_completeness:.1%}. Observed: Only {completeness:.2%} of data "
                        "is complete."
                    ),
                }
            )
        expected_type = constraint.get("inferred_type", "Fractional")
        match = _type_matches(present, expected_type) / observed if observed else 1.0
        if match < datatype_threshold:
            violations.append(
                {
                    "feature_name": name,
                    "constraint_check_type": "data_type_check",
                    "description": (
                        "Data type match requirement is not met. Expected data type: "
                        f"{expected_type}, Expected match: {datatype_threshold:.1%}. "
                        f"Observed: Only {match:.2%} of data is {expected_type}."
                    ),
                }
            )
        if compare and name in baseline_by_name and present.size:
            distance = drift_distance(_baseline_points(baseline_by_name[name]), np.sort(present))
            significant = True
            if robust and baseline_items:
                critical = KS_CRITICAL_0_001 * math.sqrt(
                    (baseline_items + present.size) / (baseline_items * present.size)
                )
                significant = distance > critical
            if distance > threshold and significant:
                violations.append(
                    {
                        "feature_name": name,
                        "constraint_check_type": "baseline_drift_check",
                        "description": (
                            f"Baseline drift distance: {distance} exceeds threshold: {threshold}"
                        ),
                    }
                )
    return violations


def drift_distances(
    baseline_statistics: Mapping[str, Any], current: Mapping[str, np.ndarray], names: Sequence[str]
) -> dict[str, float]:
    """Per-feature drift distance, whatever the threshold (for reports and metrics)."""
    baseline_by_name = {f["name"]: f for f in baseline_statistics["features"]}
    out = {}
    for name in names:
        if name in baseline_by_name and name in current:
            values = current[name]
            out[name] = drift_distance(
                _baseline_points(baseline_by_name[name]), np.sort(values[~np.isnan(values)])
            )
    return out
