"""The local CloudFormation engine applies the AWS::Serverless transform quietly: the translator's
warnings about itself (a feature toggle it has no configuration for, its usage metrics) are no
news about the template, and they reached the demo's output in the middle of a release."""

from __future__ import annotations

import gc
import logging

import pytest

from safe_deploy.localcloud.cloudformation.model import CloudFormationError
from safe_deploy.localcloud.cloudformation.template import process
from tests.support import PSEUDO_PARAMETERS

CANARIED = {
    "Transform": "AWS::Serverless-2016-10-31",
    "Resources": {
        "Fn": {
            "Type": "AWS::Serverless::Function",
            "Properties": {
                "Runtime": "python3.11",
                "Handler": "app.h",
                "CodeUri": "s3://b/k",
                "AutoPublishAlias": "live",
                "DeploymentPreference": {"Type": "Canary10Percent5Minutes"},
            },
        }
    },
}


def test_a_canaried_function_transforms_without_the_translators_own_warnings(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.WARNING):
        resources = process(CANARIED, {}, PSEUDO_PARAMETERS)["Resources"]
        gc.collect()  # the translator warns of its unpublished metrics when they are collected
    assert {"FnAliaslive", "FnDeploymentGroup"} <= set(resources)
    assert [r.getMessage() for r in caplog.records if r.name.startswith("samtranslator")] == []


def test_the_translators_errors_still_reach_the_person() -> None:
    broken = {**CANARIED, "Resources": {"Fn": {"Type": "AWS::Serverless::Function"}}}
    with pytest.raises(CloudFormationError, match="Transform AWS::Serverless-2016-10-31 failed"):
        process(broken, {}, PSEUDO_PARAMETERS)
