"""``safe-deploy rollback``'s choice of version and what it refuses (safe_deploy.ops), against the
registry, the champion parameter and the deploy state machine in moto: the default is the version
that left production last; only an Approved version that does not serve now, and is not being
released, can be chosen; who asked and why go to the deploy state machine."""

from __future__ import annotations

import functools
import json
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws
from pipeline_common import registry
from pipeline_common.layout import execution_arn, is_rollback

from safe_deploy import ops
from safe_deploy.cli_models import show_rollback_stop
from safe_deploy.follow import Stop
from safe_deploy.localcloud import patching
from safe_deploy.localcloud import registry as local_registry
from safe_deploy.target import Target, TargetError
from tests.support import offline_aws

REGION = "us-east-1"
GROUP = "fare-models-0a1b2c3d"
PARAMETER = "CFN-ChampionParameter-0A1B2C3D"
DEFINITION = json.dumps(
    {"StartAt": "Wait", "States": {"Wait": {"Type": "Wait", "Seconds": 3600, "End": True}}}
)


@functools.cache
def session() -> boto3.Session:
    """One session for every client: botocore then loads each service's model once."""
    return boto3.Session(region_name=REGION)


class Registry:
    """The stack's group with versions, as the pipeline leaves them, and its champion."""

    def __init__(self) -> None:
        self.sagemaker = session().client("sagemaker")
        self.sagemaker.create_model_package_group(ModelPackageGroupName=GROUP)
        ssm = session().client("ssm")
        ssm.put_parameter(Name=PARAMETER, Value="{}", Type="String")
        self.ssm = ssm
        sfn = session().client("stepfunctions")
        machine = sfn.create_state_machine(
            name="safe-deploy-deploy",
            definition=DEFINITION,
            roleArn="arn:aws:iam::123456789012:role/deploy",
        )["stateMachineArn"]
        self.sfn = sfn
        self.target = Target(
            "moto",
            REGION,
            {
                "ModelPackageGroupName": GROUP,
                "ChampionParameterName": PARAMETER,
                "DeployStateMachineArn": machine,
            },
            session(),
        )

    def version(
        self, model_id: str, status: str = "Approved", since: str = "", until: str = ""
    ) -> str:
        metadata = {"model_id": model_id, "validation_rmse": "3.7"}
        if since:
            metadata["production_since"] = since
        if until:
            metadata["production_until"] = until
        arn: str = self.sagemaker.create_model_package(
            ModelPackageGroupName=GROUP,
            ModelApprovalStatus=status,  # type: ignore[arg-type]
            InferenceSpecification={
                "Containers": [{"Image": "xgboost", "ModelDataUrl": f"s3://a/{model_id}.tar.gz"}]
            },
            CustomerMetadataProperties=metadata,
        )["ModelPackageArn"]
        if status != "Approved":
            self.sagemaker.update_model_package(
                ModelPackageArn=arn, ApprovalDescription=f"{status.lower()} by bob: plot wrong"
            )
        return arn

    def serves(self, arn: str) -> None:
        self.ssm.put_parameter(
            Name=PARAMETER, Value=json.dumps({"model_package_arn": arn}), Overwrite=True
        )

    def releasing(self, name: str) -> None:
        self.sfn.start_execution(
            stateMachineArn=self.target.output("DeployStateMachineArn"), name=name, input="{}"
        )


@pytest.fixture
def group(monkeypatch: pytest.MonkeyPatch) -> Iterator[Registry]:
    offline_aws(monkeypatch)
    with mock_aws():
        local_registry.install()  # SageMaker's update semantics: merge, keep what is not named
        try:
            yield Registry()
        finally:
            patching.restore_all()


def history(group: Registry) -> list[str]:
    """m1 served, then m2, then m3 (serving now); m4 approved but never served."""
    first = group.version("fare-m1", since="2026-12-01T08:00:00Z", until="2026-12-01T09:00:00Z")
    second = group.version("fare-m2", since="2026-12-01T09:00:00Z", until="2026-12-01T10:00:00Z")
    third = group.version("fare-m3", since="2026-12-01T10:00:00Z")
    fourth = group.version("fare-m4")
    group.serves(third)
    return [first, second, third, fourth]


def test_the_default_is_the_version_that_left_production_last(group: Registry) -> None:
    first, second, third, _ = history(group)
    plan = ops.plan_rollback(group.target)
    assert plan.package.arn == second
    assert plan.serving is not None
    assert plan.serving.arn == third
    assert ops.plan_rollback(group.target, 1).package.arn == first


def test_an_approved_version_that_never_served_may_be_named(group: Registry) -> None:
    *_, fourth = history(group)
    assert ops.plan_rollback(group.target, 4).package.arn == fourth


@pytest.mark.parametrize("status", ["Rejected", "PendingManualApproval"])
def test_a_version_that_is_not_approved_is_refused_with_why(group: Registry, status: str) -> None:
    history(group)
    group.version("fare-m5", status=status)
    with pytest.raises(
        TargetError,
        match=(
            rf"version 5 \(model fare-m5\) is {status} "
            rf"\({status.lower()} by bob: plot wrong\): only an Approved version"
        ),
    ):
        ops.plan_rollback(group.target, 5)


def test_the_version_serving_now_is_refused(group: Registry) -> None:
    history(group)
    with pytest.raises(TargetError, match=r"version 3 .* serves production now"):
        ops.plan_rollback(group.target, 3)


def test_a_version_being_released_now_is_refused(group: Registry) -> None:
    history(group)
    group.releasing("fare-m2-rollback-20261201100500")
    with pytest.raises(TargetError, match=r"being released now \(fare-m2-rollback-"):
        ops.plan_rollback(group.target)


def test_another_release_under_way_is_waited_for(group: Registry) -> None:
    history(group)
    group.releasing("fare-m6")
    assert ops.plan_rollback(group.target).running == ["fare-m6"]


def test_without_an_earlier_production_model_there_is_no_default(group: Registry) -> None:
    only = group.version("fare-m1", since="2026-12-01T08:00:00Z")
    group.serves(only)
    group.version("fare-m2")
    with pytest.raises(TargetError, match="no earlier production model to roll back to"):
        ops.plan_rollback(group.target)
    with pytest.raises(TargetError, match=r"has no version 7 \(versions: 1, 2\)"):
        ops.plan_rollback(group.target, 7)


def test_an_empty_registry_has_nothing_to_roll_back_to(group: Registry) -> None:
    with pytest.raises(TargetError, match="has no versions yet"):
        ops.plan_rollback(group.target)


def test_the_rollback_carries_who_and_why_to_the_deploy_machine(group: Registry) -> None:
    _, second, third, _ = history(group)
    plan = ops.plan_rollback(group.target)
    who = "arn:aws:sts::123456789012:assumed-role/Ops,Team/alice"
    name = ops.start_rollback(group.target, plan, "fares too high, since Tuesday", who)

    assert name.startswith("fare-m2-rollback-")
    assert is_rollback(name), "safe-deploy follow NAME follows it as a release"
    assert not is_rollback("fare-m2"), "a promotion is named after its run"
    arn = execution_arn(group.target.output("DeployStateMachineArn"), name)
    given: dict[str, Any] = json.loads(group.sfn.describe_execution(executionArn=arn)["input"])
    assert given["model_id"] == "fare-m2"
    assert given["model_package_arn"] == second
    rollback = given["rollback"]
    assert rollback["requested_by"] == who
    assert rollback["reason"] == "fares too high, since Tuesday"
    assert rollback["from_model_package_arn"] == third
    assert rollback["record"] == {
        registry.ROLLED_BACK_BY: "arn:aws:sts::123456789012:assumed-role/Ops Team/alice",
        registry.ROLLBACK_REASON: "fares too high since Tuesday",
    }
    # what the deploy machine's MarkRollback will record, SageMaker takes
    group.sagemaker.update_model_package(
        ModelPackageArn=second, CustomerMetadataProperties=rollback["record"]
    )


@pytest.mark.parametrize("reason", ["", "   ", "x" * 501, "fares \u202ehgih oot"])
def test_a_rollback_needs_a_reason_it_can_record(group: Registry, reason: str) -> None:
    history(group)
    plan = ops.plan_rollback(group.target)
    with pytest.raises(TargetError, match="reason"):
        ops.start_rollback(group.target, plan, reason, "arn:aws:iam::123456789012:user/alice")
    assert not ops.running_releases(group.target)


def test_a_failed_rollback_says_why(group: Registry) -> None:
    """What ``rollback --wait`` shows when the release stops: the deploy state machine's error
    and the hook's or alarm's reason, as an error (exit status 1)."""
    history(group)
    plan = ops.plan_rollback(group.target)
    stop = Stop(
        "failed",
        {
            "run": "fare-m2-rollback-20261201100500",
            "status": "FAILED",
            "error": "DeploymentFailed",
            "cause": "the AfterAllowTraffic lifecycle hook reported Failed",
        },
    )
    with pytest.raises(TargetError) as raised:
        show_rollback_stop(stop, plan.package)
    assert str(raised.value) == (
        "the rollback fare-m2-rollback-20261201100500 failed: DeploymentFailed the "
        "AfterAllowTraffic lifecycle hook reported Failed"
    )
