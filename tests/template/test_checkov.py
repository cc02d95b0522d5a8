"""checkov on the template: every finding is fixed or reviewed.

The reviewed findings live in the template itself (``Metadata: SafeDeploy::ReviewedFindings``),
each with a one-line reason. Any other finding fails, and so does a reviewed one that no longer
matches anything (a fixed finding must leave the list). checkov lives in its own environment
(.tools/checkov; ``make test`` installs it first with ``make tools``).
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from typing import Any

import pytest

from tests.support_template import REPO, load_sam

pytestmark = pytest.mark.slow

CHECKOV = REPO / ".tools" / "checkov" / "bin" / "checkov"


@dataclass(frozen=True)
class Finding:
    check: str
    resource: str  # logical id
    title: str


@dataclass(frozen=True)
class Reviewed:
    check: str
    resources: tuple[str, ...]  # ("*",) for every resource
    reason: str

    def covers(self, finding: Finding) -> bool:
        return finding.check == self.check and (
            self.resources == ("*",) or finding.resource in self.resources
        )


def reviewed(template: dict[str, Any]) -> list[Reviewed]:
    entries = template.get("Metadata", {}).get("SafeDeploy::ReviewedFindings", [])
    out = []
    for entry in entries:
        resources = entry["Resources"]
        out.append(
            Reviewed(
                entry["Check"],
                ("*",) if resources == "*" else tuple(resources),
                str(entry.get("Reason", "")),
            )
        )
    return out


def checkov_findings(text: str) -> list[Finding]:
    """The failed checks of ``checkov -o json`` (one report, or a list of them)."""
    reports = json.loads(text)
    findings = []
    for report in reports if isinstance(reports, list) else [reports]:
        for failed in report.get("results", {}).get("failed_checks", []):
            logical_id = failed["resource"].split(".", 1)[-1]
            findings.append(Finding(failed["check_id"], logical_id, failed["check_name"]))
    return findings


def unreviewed(findings: list[Finding], reviews: list[Reviewed]) -> list[Finding]:
    return [f for f in findings if not any(r.covers(f) for r in reviews)]


def stale(findings: list[Finding], reviews: list[Reviewed]) -> Iterator[str]:
    for review in reviews:
        names = review.resources if review.resources != ("*",) else (None,)
        for name in names:
            matched = any(
                f.check == review.check and (name is None or f.resource == name) for f in findings
            )
            if not matched:
                yield f"{review.check} on {name or 'any resource'}"


@cache
def _run_checkov() -> list[Finding]:
    if not CHECKOV.exists():
        pytest.skip(f"{CHECKOV.relative_to(REPO)} is missing: run `make tools`")
    result = subprocess.run(
        [
            str(CHECKOV),
            "--file",
            "template.yaml",
            "--framework",
            "cloudformation",
            "--output",
            "json",
            "--quiet",
            "--skip-download",  # no network: the checks ship with checkov
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    if result.returncode not in (0, 1):  # 1: some check failed
        raise AssertionError(f"checkov failed to run:\n{result.stderr[-3000:]}")
    return checkov_findings(result.stdout)


def test_every_checkov_finding_on_the_template_is_fixed_or_reviewed() -> None:
    findings = _run_checkov()
    left = unreviewed(findings, reviewed(load_sam()))
    assert not left, "checkov findings nobody reviewed:\n" + "\n".join(
        f"  {f.check} {f.resource}: {f.title}" for f in left
    )


def test_no_reviewed_finding_outlives_its_fix() -> None:
    findings = _run_checkov()
    gone = list(stale(findings, reviewed(load_sam())))
    assert not gone, "reviewed findings checkov no longer reports (remove them): " + ", ".join(gone)


def test_each_reviewed_finding_says_why_in_one_line() -> None:
    reviews = reviewed(load_sam())
    assert reviews
    for review in reviews:
        assert review.reason.strip(), f"{review.check} has no reason"
        assert "\n" not in review.reason.strip(), f"{review.check}: one line"


def test_the_template_fixes_what_the_release_security_review_asked() -> None:
    """The findings fixed, not reviewed away: access logs, a dead-letter queue for the
    asynchronously invoked start_pipeline, reserved concurrency behind the open routes."""
    reviews = reviewed(load_sam())
    for check, resource in (
        ("CKV_AWS_76", "FaresApi"),  # API access logging
        ("CKV_AWS_116", "StartPipelineFunction"),  # DLQ
        ("CKV_AWS_115", "PredictFunction"),  # concurrency
        ("CKV_AWS_115", "ApprovalApiFunction"),
    ):
        assert not any(r.covers(Finding(check, resource, "")) for r in reviews), (check, resource)
    findings = _run_checkov()
    for check, resource in (
        ("CKV_AWS_116", "StartPipelineFunction"),
        ("CKV_AWS_115", "PredictFunction"),
        ("CKV_AWS_115", "ApprovalApiFunction"),
    ):
        assert Finding(check, resource, "") not in {
            Finding(f.check, f.resource, "") for f in findings
        }, (check, resource)


def test_the_comparison_catches_a_new_finding_and_a_stale_review() -> None:
    reviews = [Reviewed("CKV_X_1", ("A",), "why"), Reviewed("CKV_X_2", ("*",), "why")]
    findings = [Finding("CKV_X_1", "B", "t"), Finding("CKV_X_2", "C", "t")]
    assert unreviewed(findings, reviews) == [Finding("CKV_X_1", "B", "t")]
    assert list(stale(findings, reviews)) == ["CKV_X_1 on A"]
