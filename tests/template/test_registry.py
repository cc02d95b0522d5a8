"""The model registry's group in the template: the stack's own, kept with the record it holds,
named as SageMaker and IAM need it, and found through the stack's outputs."""

from __future__ import annotations

import re

import botocore.session
import pytest

from tests.support_template import Stack, load_sam, transformed

GROUP = "ModelPackageGroup"


@pytest.fixture(scope="module")
def stack() -> Stack:
    return Stack(transformed())


def test_the_record_outlives_the_stack(stack: Stack) -> None:
    group = stack.template["Resources"][GROUP]
    assert group["Type"] == "AWS::SageMaker::ModelPackageGroup"
    assert group["DeletionPolicy"] == "Retain"
    assert group["UpdateReplacePolicy"] == "Retain"


@pytest.mark.parametrize("prefix", ["fare", "a" * 12])  # NamePrefix's shortest and longest
def test_the_name_is_what_sagemaker_and_iam_take(prefix: str) -> None:
    """SageMaker's EntityName (at most 63, its pattern); lower case, because the package ARNs
    IAM matches are; unique per stack, because a retained group must not block a new stack."""
    template = transformed({"NamePrefix": prefix})
    group = Stack(template, {"NamePrefix": prefix})
    name = group.resolve(template["Resources"][GROUP]["Properties"]["ModelPackageGroupName"])
    shape = botocore.session.get_session().get_service_model("sagemaker").shape_for("EntityName")
    assert len(name) <= shape.metadata["max"]
    assert re.fullmatch(shape.metadata["pattern"], name)
    assert name == name.lower()
    assert name.startswith(f"{prefix}-models-")
    assert name.removeprefix(f"{prefix}-models-") in str(group.ref("AWS::StackId"))


def test_the_outputs_name_the_group_the_pipeline_writes(stack: Stack) -> None:
    outputs = stack.template["Outputs"]
    arn = stack.ref(GROUP)
    assert stack.resolve(outputs["ModelPackageGroupArn"]["Value"]) == arn
    assert arn.endswith("/" + stack.resolve(outputs["ModelPackageGroupName"]["Value"]))
    substitutions = load_sam()["Resources"]["TrainingStateMachine"]["Properties"][
        "DefinitionSubstitutions"
    ]
    assert substitutions["ModelPackageGroupName"] == outputs["ModelPackageGroupName"]["Value"]
