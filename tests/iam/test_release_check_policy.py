"""The release check reads this stack's release and nothing else (the cross-check in test_iam.py
proves its calls are allowed; this proves on what)."""

from __future__ import annotations

import pytest

from tests.support_iam import Need, allows, role_of, role_policy
from tests.support_template import STACK_NAME, Stack, arn, transformed


@pytest.fixture(scope="module")
def stack() -> Stack:
    return Stack(transformed())


def _allowed(stack: Stack, action: str, resource: str) -> bool:
    role = role_of(stack.template, "ReleaseCheckFunction")
    return allows(role_policy(stack, role), Need(action, resource))


def test_it_reads_this_stack_and_no_other(stack: Stack) -> None:
    assert _allowed(stack, "cloudformation:DescribeStacks", stack.ref("AWS::StackId"))
    other = arn("cloudformation", f"stack/{STACK_NAME}-other/{'0' * 8}")
    assert not _allowed(stack, "cloudformation:DescribeStacks", other)
    assert not _allowed(stack, "cloudformation:UpdateStack", stack.ref("AWS::StackId"))


def test_it_reads_the_predict_alias_and_versions_and_changes_nothing(stack: Stack) -> None:
    predict = stack.attribute("PredictFunction", "Arn")
    assert _allowed(stack, "lambda:GetAlias", f"{predict}:live")
    assert _allowed(stack, "lambda:GetFunctionConfiguration", f"{predict}:7")
    assert not _allowed(stack, "lambda:UpdateAlias", f"{predict}:live")
    hook = stack.attribute("PreTrafficHookFunction", "Arn")
    assert not _allowed(stack, "lambda:GetFunctionConfiguration", hook)


def test_it_reads_the_production_record_and_production_endpoints_only(stack: Stack) -> None:
    record = arn("ssm", f"parameter/{stack.ref('ProductionEndpointParameter')}")
    champion = arn("ssm", f"parameter/{stack.ref('ChampionParameter')}")
    assert _allowed(stack, "ssm:GetParameter", record)
    assert not _allowed(stack, "ssm:GetParameter", champion)
    prefix = stack.parameters["NamePrefix"]
    assert _allowed(
        stack, "sagemaker:DescribeEndpoint", arn("sagemaker", f"endpoint/{prefix}-1-prod")
    )
    assert not _allowed(
        stack, "sagemaker:DescribeEndpoint", arn("sagemaker", f"endpoint/{prefix}-1-dev")
    )
    assert not _allowed(
        stack, "sagemaker:DeleteEndpoint", arn("sagemaker", f"endpoint/{prefix}-1-prod")
    )
