"""Every failure scenario ends with blue serving, nothing orphaned, no failed client request, and
the model registry saying what became of the candidate."""

from __future__ import annotations

import pytest
from pipeline_common import registry

from safe_deploy import ops
from safe_deploy.demo import Demo
from safe_deploy.scenarios import REGISTRY, Decision, Scenario
from tests.e2e.conftest import Story, live_version_endpoint, sagemaker_resources, subject_arrives

# Every scenario but approval-times-out: it needs a stack with a short approval window
# (tests/approvals/test_local_timeout.py and tests/e2e/test_registry.py have one).
CHOSEN = [s for s in REGISTRY if not s.parameters]
APPROVED_BY = "approved by demo reviewer (--auto-approve)"


def registered(scenario: Scenario) -> tuple[str, str] | None:
    """What the registry holds of month 2's candidate: nothing when it never passed the gate; its
    version's approval status and description otherwise (a person approved the canaried ones)."""
    if not scenario.registered:
        return None
    if scenario.decision is Decision.REJECT:
        return (registry.REJECTED, "rejected by demo reviewer: the plot looks wrong")
    return (registry.APPROVED, APPROVED_BY)


@pytest.fixture
def blue(story: Story) -> str:
    return f"{story.first_model().model}-prod"


@pytest.mark.parametrize("scenario", CHOSEN, ids=lambda s: s.name)
def test_scenario_ends_with_blue_serving(demo: Demo, blue: str, scenario: Scenario) -> None:
    version_before, _, _ = live_version_endpoint(demo)
    result = demo.failing_month(scenario.name, blue)

    assert result.run.status == "FAILED"
    assert result.run.error == scenario.error
    assert scenario.cause_holds in (result.run.cause or "")
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
    assert result.failed == 0
    if scenario.needs_traffic:
        assert result.sent > 50, "the canary and rollback were watched by client traffic"
    model = result.green.removesuffix("-prod")
    assert subject_arrives(demo.cloud, model, "stopped")

    packages = {p.model_id: p for p in ops.model_packages(demo.target)}
    blue_version = packages[blue.removesuffix("-prod")]
    assert ops.serving_package_arn(demo.target) == blue_version.arn
    assert blue_version.in_production
    expected = registered(scenario)
    if expected is None:
        assert model not in packages, "a candidate the gate never passed has no version"
    else:
        candidate = packages[model]
        assert (candidate.status, candidate.approval_description) == expected
        assert candidate.production_since is None, "it never served production"
