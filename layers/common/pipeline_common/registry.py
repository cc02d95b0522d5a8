"""The model registry as the pipeline keeps it (docs/registry.md).

Every candidate that passes the gate becomes a SageMaker model package in the stack's model
package group. The training state machine writes it (``CreateModelPackage``, then
``UpdateModelPackage`` for the dev test, the approval or the rejection); the deploy state
machine marks when it entered and left production. This module reads packages back, for the
gate (the champion is the package now serving), ``safe-deploy models`` and ``rollback``, and it
holds the one place where the metadata keys are named: the ASL files write the same keys (the
tests compare them).

A package's ``CustomerMetadataProperties`` take only what SageMaker documents (keys up to 128
characters, values up to 256, at most 50 entries, and only letters, numbers, spaces and
``_.:/=+-@``): text a person typed is fitted to a value's rules before it is recorded there.
"""

from __future__ import annotations

import json
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from pipeline_common.layout import ModelResources

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

# ---------------------------------------------------------------------------- metadata keys
MODEL_ID = "model_id"  # the run that trained it: also the training execution's name
SOURCE_BUCKET = "source_bucket"
SOURCE_KEY = "source_key"
SOURCE_VERSION = "source_version"
CODE_VERSION = "code_version"  # the content hash of the model code the jobs ran
VALIDATION_RMSE = "validation_rmse"
GATE_RULE = "gate_rule"
TEST_RMSE = "test_rmse"  # written after the dev endpoint test
TEST_MAE = "test_mae"
TEST_ROWS = "test_rows"
TEST_REPORT = "test_report"
APPROVAL_ID = "approval_id"
PRODUCTION_SINCE = "production_since"  # when it last went into production
PRODUCTION_UNTIL = "production_until"  # when it last left production
ROLLED_BACK_BY = "rolled_back_by"  # the operator who last rolled production back to it
ROLLBACK_REASON = "rollback_reason"

METADATA_KEYS = frozenset(
    {
        MODEL_ID,
        SOURCE_BUCKET,
        SOURCE_KEY,
        SOURCE_VERSION,
        CODE_VERSION,
        VALIDATION_RMSE,
        GATE_RULE,
        TEST_RMSE,
        TEST_MAE,
        TEST_ROWS,
        TEST_REPORT,
        APPROVAL_ID,
        PRODUCTION_SINCE,
        PRODUCTION_UNTIL,
        ROLLED_BACK_BY,
        ROLLBACK_REASON,
    }
)

APPROVED = "Approved"
REJECTED = "Rejected"
PENDING = "PendingManualApproval"

MODEL_QUALITY_FILE = "model_quality.json"  # ModelMetrics.ModelQuality.Statistics

# SageMaker's limits on a CustomerMetadataProperties value (botocore's CustomerMetadataValue).
METADATA_VALUE_LENGTH = 256
METADATA_CATEGORIES = frozenset("LZN")  # \p{L}, \p{Z}, \p{N}
METADATA_SYMBOLS = frozenset("_.:/=+-@")


def _takes(character: str) -> bool:
    return (
        unicodedata.category(character)[0] in METADATA_CATEGORIES or character in METADATA_SYMBOLS
    )


def metadata_allows(text: str) -> bool:
    """Whether SageMaker's metadata pattern (``[\\p{L}\\p{Z}\\p{N}_.:/=+\\-@]*``) takes
    ``text``."""
    return all(_takes(c) for c in text)


def fit_metadata(text: str, limit: int = METADATA_VALUE_LENGTH) -> str:
    """``text`` as a metadata value can hold it: every other character becomes a space, runs of
    spaces one, and it is cut to ``limit``. Never empty (SageMaker refuses an empty value)."""
    kept = "".join(c if _takes(c) else " " for c in text)
    fitted = " ".join(kept.split())[:limit].strip()
    return fitted or "-"


def model_quality_key(model_id: str) -> str:
    """Where the gate writes the candidate's model-quality statistics (the package's
    ``ModelMetrics.ModelQuality.Statistics``)."""
    return f"{ModelResources(model_id).evaluation_prefix}{MODEL_QUALITY_FILE}"


def model_quality_statistics(
    evaluation: Mapping[str, Any], evaluated_at: datetime
) -> dict[str, Any]:
    """The candidate's validation metrics in Model Monitor's model-quality statistics format
    (``regression_metrics``), with the gate's verdict beside them. Only what the run measured:
    the validation RMSE the training job reported, and the rows the gate compared, if it did."""
    dataset: dict[str, Any] = {"evaluation_time": evaluated_at.isoformat()}
    if evaluation.get("rows_compared") is not None:
        dataset["item_count"] = int(evaluation["rows_compared"])
    return {
        "version": 0.0,
        "dataset": dataset,
        "regression_metrics": {"rmse": {"value": float(evaluation["validation_rmse"])}},
        "gate": dict(evaluation),
    }


def write_model_quality(
    s3: S3Client, bucket: str, model_id: str, evaluation: Mapping[str, Any], now: datetime
) -> str:
    """The candidate's model-quality statistics, where its package will point; the S3 URI."""
    key = model_quality_key(model_id)
    s3.put_object(
        Bucket=bucket,
        Key=key,
        Body=json.dumps(model_quality_statistics(evaluation, now)).encode(),
        ContentType="application/json",
    )
    return f"s3://{bucket}/{key}"


# ---------------------------------------------------------------------------- packages
def _number(text: str | None) -> float | None:
    try:
        return float(text) if text is not None else None
    except ValueError:
        return None


def _time(text: str | None) -> datetime | None:
    """``$$.State.EnteredTime`` as Step Functions writes it (ISO 8601, ``Z`` or an offset)."""
    if not text:
        return None
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None


@dataclass(frozen=True)
class Package:
    """One model package version of the group, as ``DescribeModelPackage`` answers."""

    arn: str
    version: int
    status: str  # ModelApprovalStatus
    created: datetime | None
    approval_description: str
    description: str
    model_data_url: str | None
    image: str | None
    metadata: dict[str, str] = field(default_factory=dict)
    baseline: dict[str, str] = field(default_factory=dict)  # statistics/constraints S3 URIs
    model_quality: str | None = None  # ModelMetrics.ModelQuality.Statistics S3 URI

    @classmethod
    def from_description(cls, described: Mapping[str, Any]) -> Package:
        containers = (described.get("InferenceSpecification") or {}).get("Containers") or [{}]
        drift = ((described.get("DriftCheckBaselines") or {}).get("ModelDataQuality")) or {}
        quality = ((described.get("ModelMetrics") or {}).get("ModelQuality")) or {}
        created = described.get("CreationTime")
        return cls(
            arn=str(described["ModelPackageArn"]),
            version=int(described.get("ModelPackageVersion") or 0),
            status=str(described.get("ModelApprovalStatus") or PENDING),
            created=created if isinstance(created, datetime) else None,
            approval_description=str(described.get("ApprovalDescription") or ""),
            description=str(described.get("ModelPackageDescription") or ""),
            model_data_url=containers[0].get("ModelDataUrl"),
            image=containers[0].get("Image"),
            metadata={
                str(k): str(v)
                for k, v in (described.get("CustomerMetadataProperties") or {}).items()
            },
            baseline={
                kind: str(source["S3Uri"])
                for kind, source in (
                    ("statistics", drift.get("Statistics")),
                    ("constraints", drift.get("Constraints")),
                )
                if source and source.get("S3Uri")
            },
            model_quality=(quality.get("Statistics") or {}).get("S3Uri"),
        )

    @property
    def model_id(self) -> str | None:
        return self.metadata.get(MODEL_ID)

    @property
    def validation_rmse(self) -> float | None:
        return _number(self.metadata.get(VALIDATION_RMSE))

    @property
    def test_rmse(self) -> float | None:
        return _number(self.metadata.get(TEST_RMSE))

    @property
    def production_since(self) -> datetime | None:
        return _time(self.metadata.get(PRODUCTION_SINCE))

    @property
    def production_until(self) -> datetime | None:
        return _time(self.metadata.get(PRODUCTION_UNTIL))

    @property
    def in_production(self) -> bool:
        """Entered production and has not left since (its last period is open)."""
        since, until = self.production_since, self.production_until
        return since is not None and (until is None or until < since)

    @property
    def source(self) -> str:
        bucket, key = self.metadata.get(SOURCE_BUCKET), self.metadata.get(SOURCE_KEY)
        if not key:
            return "-"
        text = f"s3://{bucket}/{key}" if bucket else key
        version = self.metadata.get(SOURCE_VERSION)
        return f"{text} (version {version})" if version and version != "null" else text


def champion_record(described: Mapping[str, Any]) -> dict[str, Any]:
    """The gate's champion, from the package that serves production: what the Compare job scores
    (its artifact) and what the verdict quotes (its id and validation RMSE).

    A package without them cannot be compared with: that fails the gate rather than reading as
    "no champion", which would let any candidate under the ceiling replace production.
    """
    package = Package.from_description(described)
    found = {
        "model_id": package.model_id,
        "validation_rmse": package.validation_rmse,
        "model_data_url": package.model_data_url,
    }
    missing = [name for name, value in found.items() if value is None]
    if missing:
        raise ValueError(
            f"the production model's package {package.arn} has no {', '.join(missing)}: "
            "fix its CustomerMetadataProperties or roll back to a complete package"
        )
    return found | {
        "test_rmse": package.test_rmse,
        "model_package_arn": package.arn,
        "model_package_version": package.version,
    }


def champion_pointer(parameter_value: str) -> str | None:
    """The package ARN the champion parameter points at; None for a record written before the
    registry (which holds the champion's metrics itself) or before the first promotion."""
    try:
        record = json.loads(parameter_value or "{}")
    except json.JSONDecodeError:
        return None
    arn = record.get("model_package_arn") if isinstance(record, dict) else None
    return str(arn) if arn else None
