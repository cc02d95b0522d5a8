"""The local model registry answers as SageMaker documents it (DESIGN.md §7), where moto 5.2.5
does not: an update changes only what it names, the documented limits hold, a list gives
summaries, and only an Approved version can be deployed.

moto runs in-process with the local cloud's registry rules installed, as the local cloud installs
them; the tests call SageMaker through boto3.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from hypothesis import given
from hypothesis import strategies as st
from moto import mock_aws
from moto.sagemaker.models import sagemaker_backends
from pipeline_common.registry import fit_metadata, metadata_allows

from safe_deploy.localcloud import patching, registry
from tests.support import offline_aws

REGION = "us-east-1"
ACCOUNT = "123456789012"
GROUP = "fare-models-0a1b2c3d"
ARTIFACT = "s3://artifacts/runs/fare-1/model/fare-1-train/output/model.tar.gz"
ROLE = f"arn:aws:iam::{ACCOUNT}:role/sagemaker"


@pytest.fixture
def sagemaker(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    offline_aws(monkeypatch)
    with mock_aws():
        registry.install()
        try:
            client = boto3.client("sagemaker", region_name=REGION)
            client.create_model_package_group(ModelPackageGroupName=GROUP)
            yield client
        finally:
            patching.restore_all()


def register(sagemaker: Any, group: str = GROUP, **extra: Any) -> str:
    """A version as the training state machine's RegisterCandidate makes it."""
    arn: str = sagemaker.create_model_package(
        ModelPackageGroupName=group,
        InferenceSpecification={
            "Containers": [{"Image": "xgboost:1.7-1", "ModelDataUrl": ARTIFACT}],
            "SupportedContentTypes": ["text/csv"],
            "SupportedResponseMIMETypes": ["text/csv"],
        },
        CustomerMetadataProperties={"model_id": "fare-1", "validation_rmse": "3.72"},
        **extra,
    )["ModelPackageArn"]
    return arn


def refused(call: Any, **arguments: Any) -> str:
    with pytest.raises(ClientError) as caught:
        call(**arguments)
    assert caught.value.response["Error"]["Code"] == "ValidationException"
    return str(caught.value.response["Error"]["Message"])


# ---------------------------------------------------------------------------- updates
def test_an_update_changes_only_what_it_names(sagemaker: Any) -> None:
    arn = register(sagemaker)
    sagemaker.update_model_package(
        ModelPackageArn=arn,
        ModelApprovalStatus="Approved",
        ApprovalDescription="approved by alice: metrics look right",
    )
    sagemaker.update_model_package(
        ModelPackageArn=arn, CustomerMetadataProperties={"production_since": "2026-12-01T10:00Z"}
    )

    described = sagemaker.describe_model_package(ModelPackageName=arn)
    assert described["ModelApprovalStatus"] == "Approved"
    assert described["ApprovalDescription"] == "approved by alice: metrics look right"
    assert described["CustomerMetadataProperties"] == {
        "model_id": "fare-1",
        "validation_rmse": "3.72",
        "production_since": "2026-12-01T10:00Z",
    }


def test_an_update_removes_the_keys_it_lists(sagemaker: Any) -> None:
    arn = register(sagemaker)
    sagemaker.update_model_package(
        ModelPackageArn=arn,
        CustomerMetadataProperties={"test_rmse": "3.9"},
        CustomerMetadataPropertiesToRemove=["validation_rmse", "never-there"],
    )
    metadata = sagemaker.describe_model_package(ModelPackageName=arn)["CustomerMetadataProperties"]
    assert metadata == {"model_id": "fare-1", "test_rmse": "3.9"}


# ---------------------------------------------------------------------------- limits
@pytest.mark.parametrize(
    ("metadata", "why"),
    [
        ({"reason": "drift, fares too high"}, "regular expression pattern"),
        ({"reason": "it's wrong"}, "regular expression pattern"),
        ({"reason": "a" * 257}, "less than or equal to 256"),
        ({"k" * 129: "v"}, "less than or equal to 128"),
    ],
)
def test_metadata_outside_the_documented_limits_is_refused(
    sagemaker: Any, metadata: dict[str, str], why: str
) -> None:
    arn = register(sagemaker)
    message = refused(
        sagemaker.update_model_package, ModelPackageArn=arn, CustomerMetadataProperties=metadata
    )
    assert why in message
    unchanged = sagemaker.describe_model_package(ModelPackageName=arn)
    assert unchanged["CustomerMetadataProperties"] == {
        "model_id": "fare-1",
        "validation_rmse": "3.72",
    }


def test_more_than_fifty_entries_are_refused_when_merged(sagemaker: Any) -> None:
    arn = register(sagemaker)  # two entries
    many = {f"key{i}": "v" for i in range(49)}
    message = refused(
        sagemaker.update_model_package, ModelPackageArn=arn, CustomerMetadataProperties=many
    )
    assert "less than or equal to 50" in message
    sagemaker.update_model_package(
        ModelPackageArn=arn, CustomerMetadataProperties=dict(list(many.items())[:48])
    )


def test_long_descriptions_are_refused(sagemaker: Any) -> None:
    arn = register(sagemaker)
    message = refused(
        sagemaker.update_model_package, ModelPackageArn=arn, ApprovalDescription="x" * 1025
    )
    assert "less than or equal to 1024" in message
    refused(
        sagemaker.create_model_package,
        ModelPackageGroupName=GROUP,
        ModelPackageDescription="x" * 1025,
    )


def test_the_metadata_pattern_is_read_from_sagemakers_model() -> None:
    pattern = (
        boto3.session.Session()
        ._session.get_service_model("sagemaker")
        .shape_for("CustomerMetadataValue")
        .metadata["pattern"]
    )
    categories, characters = registry.character_class(pattern)
    assert categories == {"L", "Z", "N"}
    assert characters == set("_.:/=+-@")


@given(st.text(max_size=400))
def test_what_the_cli_records_the_registry_takes(text: str) -> None:
    """``rollback`` fits a person's reason (and identity) to the registry's metadata; the local
    registry, reading SageMaker's own pattern, takes whatever it makes of any text."""
    fitted = fit_metadata(text)
    assert metadata_allows(fitted)
    registry.check_metadata({"rollback_reason": fitted})


# ---------------------------------------------------------------------------- groups and lists
def test_a_version_starts_pending_and_the_group_may_be_named_by_arn(sagemaker: Any) -> None:
    group_arn = sagemaker.describe_model_package_group(ModelPackageGroupName=GROUP)[
        "ModelPackageGroupArn"
    ]
    first = register(sagemaker)
    second = register(sagemaker, group=group_arn)
    assert first.endswith(f"model-package/{GROUP}/1")
    assert second.endswith(f"model-package/{GROUP}/2")
    described = sagemaker.describe_model_package(ModelPackageName=second)
    assert described["ModelApprovalStatus"] == "PendingManualApproval"


def test_a_group_that_exists_is_refused(sagemaker: Any) -> None:
    assert "already exists" in refused(
        sagemaker.create_model_package_group, ModelPackageGroupName=GROUP
    )
    refused(sagemaker.create_model_package_group, ModelPackageGroupName="no_underscores")


def test_a_list_gives_summaries_and_a_description_the_rest(sagemaker: Any) -> None:
    arn = register(sagemaker)
    (summary,) = sagemaker.list_model_packages(ModelPackageGroupName=GROUP)[
        "ModelPackageSummaryList"
    ]
    assert summary["ModelPackageArn"] == arn
    assert summary["ModelPackageVersion"] == 1
    assert summary["ModelApprovalStatus"] == "PendingManualApproval"
    for detail in ("CustomerMetadataProperties", "InferenceSpecification", "ModelMetrics"):
        assert detail not in summary
    described = sagemaker.describe_model_package(ModelPackageName=arn)
    assert described["InferenceSpecification"]["Containers"][0]["ModelDataUrl"] == ARTIFACT


# ---------------------------------------------------------------------------- deploying
@pytest.mark.parametrize("status", ["PendingManualApproval", "Rejected"])
def test_only_an_approved_version_can_be_deployed(sagemaker: Any, status: str) -> None:
    arn = register(sagemaker, ModelApprovalStatus=status)
    message = refused(
        sagemaker.create_model,
        ModelName="fare-1-prod",
        PrimaryContainer={"ModelPackageName": arn},
        ExecutionRoleArn=ROLE,
    )
    assert f"ModelApprovalStatus is {status}" in message
    assert sagemaker.list_models()["Models"] == []

    sagemaker.update_model_package(ModelPackageArn=arn, ModelApprovalStatus="Approved")
    sagemaker.create_model(
        ModelName="fare-1-prod", PrimaryContainer={"ModelPackageName": arn}, ExecutionRoleArn=ROLE
    )
    backend = sagemaker_backends[ACCOUNT][REGION]
    model = backend.describe_model("fare-1-prod").response_object
    assert registry.model_data_url(backend, model["PrimaryContainer"]) == ARTIFACT


def test_a_model_name_that_exists_is_refused(sagemaker: Any) -> None:
    arn = register(sagemaker, ModelApprovalStatus="Approved")
    sagemaker.create_model(
        ModelName="fare-1-prod", PrimaryContainer={"ModelPackageName": arn}, ExecutionRoleArn=ROLE
    )
    message = refused(
        sagemaker.create_model,
        ModelName="fare-1-prod",
        PrimaryContainer={"Image": "xgboost:1.7-1", "ModelDataUrl": "s3://elsewhere/model.tar.gz"},
        ExecutionRoleArn=ROLE,
    )
    assert "Cannot create already existing model" in message
    backend = sagemaker_backends[ACCOUNT][REGION]
    kept = backend.describe_model("fare-1-prod").response_object
    assert registry.model_data_url(backend, kept["PrimaryContainer"]) == ARTIFACT


def test_an_unknown_package_cannot_be_deployed(sagemaker: Any) -> None:
    message = refused(
        sagemaker.create_model,
        ModelName="fare-9-prod",
        PrimaryContainer={
            "ModelPackageName": f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:model-package/{GROUP}/9"
        },
        ExecutionRoleArn=ROLE,
    )
    assert "does not exist" in message


def test_stopping_the_local_cloud_gives_moto_back(sagemaker: Any) -> None:
    patching.restore_all()
    arn = register(sagemaker)
    sagemaker.update_model_package(ModelPackageArn=arn, CustomerMetadataProperties={"a": "b"})
    # moto's own behaviour: the properties are replaced wholesale
    assert sagemaker.describe_model_package(ModelPackageName=arn)["CustomerMetadataProperties"] == {
        "a": "b"
    }
