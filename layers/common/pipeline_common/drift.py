"""Reading Model Monitor results: which features drifted, and by how much."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

DISTANCE = re.compile(
    r"Baseline drift distance:\s*([0-9.eE+-]+)\s+exceeds threshold:\s*([0-9.eE+-]+)"
)


@dataclass
class DriftResult:
    endpoint: str
    key: str
    violations: list[dict[str, str]] = field(default_factory=list)
    distances: dict[str, float] = field(default_factory=dict)

    @property
    def drifted(self) -> list[str]:
        return sorted(self.distances)

    def message(self) -> str:
        if not self.violations:
            return f"No violations for {self.endpoint} in {self.key}."
        lines = [f"{len(self.violations)} violation(s) for {self.endpoint} ({self.key}):"]
        lines += [
            f"- {v['feature_name']}: {v['constraint_check_type']}: {v['description']}"
            for v in self.violations
        ]
        return "\n".join(lines)


def endpoint_of(key: str) -> str:
    """``monitoring/<endpoint>/...`` to the endpoint."""
    parts = key.split("/")
    if len(parts) < 3 or parts[0] != "monitoring":
        raise ValueError(f"{key} is not a monitoring result of this pipeline")
    return parts[1]


def read_violations(key: str, document: str) -> DriftResult:
    data: Any = json.loads(document)
    violations = data.get("violations", []) if isinstance(data, dict) else []
    result = DriftResult(endpoint_of(key), key, list(violations))
    for violation in violations:
        if violation.get("constraint_check_type") != "baseline_drift_check":
            continue
        match = DISTANCE.search(violation.get("description", ""))
        if match:
            result.distances[violation["feature_name"]] = float(match.group(1))
    return result
