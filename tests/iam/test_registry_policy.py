"""The model registry's versions are written by the pipeline's own roles, on this stack's group
only, and read by the gate (the cross-check in test_iam.py proves every call is allowed; this
proves on what, and that nothing else may change the record)."""

from __future__ import annotations

import pytest

from tests.support_iam import Need, allows, role_of, role_policy, state_machine_check
from tests.support_template import Stack, arn, load_sam, transformed


@pytest.fixture(scope="module")
def stack() -> Stack:
    return Stack(transformed())


def _group(stack: Stack) -> str:
    return str(stack.ref("ModelPackageGroup")).rsplit("/", 1)[-1]


def _allowed(stack: Stack, principal: str, action: str, resource: str) -> bool:
    role = role_of(stack.template, principal)
    return allows(role_policy(stack, role), Need(action, resource))


def test_candidates_are_registered_in_this_stacks_group(stack: Stack) -> None:
    check = state_machine_check(load_sam(), stack.template, stack, "TrainingStateMachine")
    (create,) = [n for n in check.needs if n.action == "sagemaker:CreateModelPackage"]
    assert create.resource == arn("sagemaker", f"model-package/{_group(stack)}/1")
    assert not check.missing(stack)
    other = arn("sagemaker", "model-package/another-group/1")
    assert not _allowed(stack, "TrainingStateMachine", "sagemaker:CreateModelPackage", other)
    assert not _allowed(stack, "TrainingStateMachine", "sagemaker:UpdateModelPackage", other)


@pytest.mark.parametrize(
    ("principal", "action", "allowed"),
    [
        ("TrainingStateMachine", "sagemaker:UpdateModelPackage", True),
        ("DeployStateMachine", "sagemaker:DescribeModelPackage", True),
        ("DeployStateMachine", "sagemaker:UpdateModelPackage", True),
        ("DeployStateMachine", "sagemaker:CreateModelPackage", False),
        ("EvaluateModelFunction", "sagemaker:DescribeModelPackage", True),
        ("EvaluateModelFunction", "sagemaker:UpdateModelPackage", False),
        ("PredictFunction", "sagemaker:DescribeModelPackage", False),
        ("ApprovalApiFunction", "sagemaker:UpdateModelPackage", False),
    ],
)
def test_who_may_read_and_change_the_record(
    stack: Stack, principal: str, action: str, allowed: bool
) -> None:
    version = arn("sagemaker", f"model-package/{_group(stack)}/3")
    assert _allowed(stack, principal, action, version) is allowed


def test_the_gate_writes_only_the_candidates_model_quality(stack: Stack) -> None:
    bucket = stack.attribute("ArtifactBucket", "Arn")
    ok = f"{bucket}/runs/fare-0123456789ab/evaluation/model_quality.json"
    assert _allowed(stack, "EvaluateModelFunction", "s3:PutObject", ok)
    for elsewhere in ("runs/fare-0123456789ab/model/model.tar.gz", "code/model/train.py"):
        assert not _allowed(stack, "EvaluateModelFunction", "s3:PutObject", f"{bucket}/{elsewhere}")
