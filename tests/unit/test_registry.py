"""The model registry as the pipeline reads it back (pipeline_common.registry): a version's
metrics, approval and time in production, the champion record the gate uses, and text fitted to
what SageMaker takes as metadata."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest
from pipeline_common import gate, registry
from pipeline_common.registry import Package, champion_pointer, fit_metadata, metadata_allows

ARN = "arn:aws:sagemaker:us-east-1:123456789012:model-package/fare-models-0a1b2c3d/2"
ARTIFACT = "s3://artifacts/runs/fare-1/model/fare-1-train/output/model.tar.gz"


def described(**metadata: str) -> dict[str, Any]:
    """DescribeModelPackage's answer for a version the pipeline registered."""
    return {
        "ModelPackageArn": ARN,
        "ModelPackageVersion": 2,
        "ModelApprovalStatus": "Approved",
        "ApprovalDescription": "approved by alice: looks right",
        "CreationTime": datetime(2026, 12, 1, 9, tzinfo=UTC),
        "InferenceSpecification": {
            "Containers": [{"Image": "xgboost:1.7-1", "ModelDataUrl": ARTIFACT}]
        },
        "DriftCheckBaselines": {
            "ModelDataQuality": {
                "Statistics": {
                    "ContentType": "application/json",
                    "S3Uri": "s3://a/statistics.json",
                },
                "Constraints": {
                    "ContentType": "application/json",
                    "S3Uri": "s3://a/constraints.json",
                },
            }
        },
        "CustomerMetadataProperties": {
            "model_id": "fare-1",
            "validation_rmse": "3.72",
            "test_rmse": "3.91",
            "source_bucket": "data",
            "source_key": "raw/2018-01.csv",
            "source_version": "v1",
            **metadata,
        },
    }


def test_a_version_reads_back_as_the_pipeline_wrote_it() -> None:
    package = Package.from_description(described())
    assert (package.version, package.status, package.model_id) == (2, "Approved", "fare-1")
    assert (package.validation_rmse, package.test_rmse) == (3.72, 3.91)
    assert package.model_data_url == ARTIFACT
    assert package.baseline == {
        "statistics": "s3://a/statistics.json",
        "constraints": "s3://a/constraints.json",
    }
    assert package.source == "s3://data/raw/2018-01.csv (version v1)"


@pytest.mark.parametrize(
    ("since", "until", "serving"),
    [
        (None, None, False),
        ("2026-12-01T10:00:00.000Z", None, True),
        ("2026-12-01T10:00:00.000Z", "2026-12-01T11:00:00.000Z", False),
        # rolled back to: it left once, and came back later
        ("2026-12-01T12:00:00.000000+00:00", "2026-12-01T11:00:00.000000+00:00", True),
    ],
)
def test_in_production_is_an_open_last_period(
    since: str | None, until: str | None, serving: bool
) -> None:
    metadata = {k: v for k, v in (("production_since", since), ("production_until", until)) if v}
    assert Package.from_description(described(**metadata)).in_production is serving


def test_the_champion_record_is_the_versions_artifact_and_metrics() -> None:
    record = registry.champion_record(described())
    assert record["model_id"] == "fare-1"
    assert record["validation_rmse"] == 3.72
    assert record["model_data_url"] == ARTIFACT
    assert record["model_package_arn"] == ARN


def test_a_version_without_what_the_gate_needs_is_no_champion() -> None:
    incomplete = described()
    del incomplete["CustomerMetadataProperties"]["validation_rmse"]
    with pytest.raises(ValueError, match=rf"{ARN} has no validation_rmse"):
        registry.champion_record(incomplete)


def test_the_gate_reads_the_champion_through_the_pointer() -> None:
    pointer = json.dumps({"model_package_arn": ARN})
    asked: list[str] = []

    def describe(arn: str) -> dict[str, Any]:
        asked.append(arn)
        return described()

    assert gate.champion_record(pointer, describe)["validation_rmse"] == 3.72
    assert asked == [ARN]
    with pytest.raises(ValueError, match="the registry is needed"):
        gate.champion_record(pointer)
    legacy = {"model_id": "fare-0", "validation_rmse": 4.0}
    assert gate.champion_record(json.dumps(legacy), describe) == legacy
    assert gate.champion_record("{}", describe) == {}
    assert asked == [ARN]


@pytest.mark.parametrize(
    ("value", "arn"),
    [("{}", None), ('{"model_id": "fare-0", "validation_rmse": 4}', None), ("not json", None)],
)
def test_records_from_before_the_registry_point_nowhere(value: str, arn: str | None) -> None:
    assert champion_pointer(value) is arn
    assert champion_pointer(json.dumps({"model_package_arn": ARN})) == ARN


@pytest.mark.parametrize(
    ("text", "fitted"),
    [
        ("fares too high since Tuesday", "fares too high since Tuesday"),
        ("drift, fares too high (since Tue!)", "drift fares too high since Tue"),
        ("arn:aws:sts::123456789012:assumed-role/Ops/alice@example.com", None),
        ("Café München 東京", None),
        ("  \n\t ", "-"),
        ("😀😀", "-"),
    ],
)
def test_text_is_fitted_to_what_the_registry_takes(text: str, fitted: str | None) -> None:
    result = fit_metadata(text)
    assert result == (fitted if fitted is not None else text)
    assert metadata_allows(result)


def test_fitted_text_is_cut_to_the_value_limit() -> None:
    assert len(fit_metadata("word " * 100)) <= registry.METADATA_VALUE_LENGTH
    assert not metadata_allows("a, b")


def test_model_quality_statistics_hold_what_the_run_measured() -> None:
    evaluation = {"validation_rmse": 3.72, "rows_compared": 18012, "passed": True}
    statistics = registry.model_quality_statistics(evaluation, datetime(2026, 12, 1, tzinfo=UTC))
    assert statistics["regression_metrics"] == {"rmse": {"value": 3.72}}
    assert statistics["dataset"]["item_count"] == 18012
    assert statistics["gate"] == evaluation
    first = registry.model_quality_statistics({"validation_rmse": 4.0}, datetime.now(UTC))
    assert "item_count" not in first["dataset"]
