"""Every failure scenario ends with blue serving, nothing orphaned, no failed client request, and
the model registry saying what became of the candidate."""

from __future__ import annotations

import pytest
from pipeline_common import registry

from safe_deploy import ops
from safe_deploy.demo import Demo
from tests.e2e.conftest import live_version_endpoint, sagemaker_resources, subject_arrives

EXPECTED = {
    "training-fails": ("TrainingJobFailed", "eta"),
    "gate-rejects": ("ModelRejected", "higher than the production model"),
    "approval-rejected": ("ApprovalRejected", "rejected by demo reviewer"),
    "pre-traffic-fails": ("DeploymentFailed", "BeforeAllowTraffic"),
    "green-errors": ("DeploymentFailed", "CandidateEndpointErrorsAlarm"),
    "no-capture": ("DeploymentFailed", "AfterAllowTraffic"),
}
# What the registry holds of month 2's candidate: nothing when it never passed the gate; its
# version's approval status and description otherwise (a person approved the canaried ones).
APPROVED_BY = "approved by demo reviewer (--auto-approve)"
REGISTERED = {
    "training-fails": None,
    "gate-rejects": None,
    "approval-rejected": (registry.REJECTED, "rejected by demo reviewer: the plot looks wrong"),
    "pre-traffic-fails": (registry.APPROVED, APPROVED_BY),
    "green-errors": (registry.APPROVED, APPROVED_BY),
    "no-capture": (registry.APPROVED, APPROVED_BY),
}
BLUE: dict[str, str] = {}


@pytest.fixture
def blue(demo: Demo) -> str:
    if "endpoint" not in BLUE:
        BLUE["endpoint"] = f"{demo.first_model()}-prod"
    return BLUE["endpoint"]


@pytest.mark.parametrize("scenario", list(EXPECTED))
def test_scenario_ends_with_blue_serving(demo: Demo, blue: str, scenario: str) -> None:
    version_before, _, _ = live_version_endpoint(demo)
    demo.failing_month(scenario, blue)
    result = demo.notes["scenario"]
    error, words = EXPECTED[scenario]

    assert result["run"].status == "FAILED"
    assert result["run"].error == error
    assert words in (result["run"].cause or "")
    assert ops.release(demo.target).production_endpoint == blue
    version, bound, routing = live_version_endpoint(demo)
    assert (version, bound) == (version_before, blue)
    assert not routing.get("AdditionalVersionWeights")
    assert sagemaker_resources(demo) == {
        "endpoints": [blue],
        "configs": [blue],
        "models": [blue],
        "schedules": [f"{blue}-monitor"],
    }
    assert result["failed"] == 0
    if scenario not in ("training-fails", "gate-rejects", "approval-rejected"):
        assert result["sent"] > 50, "the canary and rollback were watched by client traffic"
    model = result["green"].removesuffix("-prod")
    assert subject_arrives(demo.cloud, model, "stopped")

    packages = {p.model_id: p for p in ops.model_packages(demo.target)}
    blue_version = packages[blue.removesuffix("-prod")]
    assert ops.serving_package_arn(demo.target) == blue_version.arn
    assert blue_version.in_production
    expected = REGISTERED[scenario]
    if expected is None:
        assert model not in packages, "a candidate the gate never passed has no version"
    else:
        candidate = packages[model]
        assert (candidate.status, candidate.approval_description) == expected
        assert candidate.production_since is None, "it never served production"
