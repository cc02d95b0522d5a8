"""The gate: a ceiling on validation RMSE, then the candidate against production on the same rows
(the Compare job's comparison.json): rejected when fares moved for the same trips, or when it is
worse than production by more than the margin with 95% confidence.

Production's record comes from the model registry (the package the champion parameter points
at); the verdict's numbers are written beside the run's other evaluation files, where the
candidate's model package will point (ModelMetrics.ModelQuality)."""

from __future__ import annotations

import os
from datetime import UTC, datetime
from typing import Any

import boto3
from aws_lambda_powertools.utilities import parameters
from aws_lambda_powertools.utilities.parser import event_parser
from aws_lambda_powertools.utilities.typing import LambdaContext
from pipeline_common.events import EvaluateModelEvent
from pipeline_common.gate import (
    GateRules,
    champion_record,
    evaluate,
    final_metrics,
    read_comparison,
)
from pipeline_common.observability import logger, metrics, tracer
from pipeline_common.registry import write_model_quality
from pipeline_common.settings import EvaluateSettings

SETTINGS = EvaluateSettings.from_env(os.environ)
RULES = GateRules(
    ceiling=SETTINGS.validation_rmse_ceiling,
    margin_percent=SETTINGS.champion_margin_percent,
    fare_shift_limit_percent=SETTINGS.fare_shift_limit_percent,
)
SAGEMAKER = boto3.client("sagemaker")
S3 = boto3.client("s3")


def describe_package(arn: str) -> dict[str, Any]:
    """The production model's package, as the registry holds it."""
    return dict(SAGEMAKER.describe_model_package(ModelPackageName=arn))


@logger.inject_lambda_context(correlation_id_path="model_id")
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics
@event_parser(model=EvaluateModelEvent)
def lambda_handler(event: EvaluateModelEvent, context: LambdaContext) -> dict[str, Any]:
    job = SAGEMAKER.describe_training_job(TrainingJobName=event.training_job)
    champion = champion_record(
        str(parameters.get_parameter(SETTINGS.champion_parameter, max_age=0)), describe_package
    )
    comparison = (
        read_comparison(S3, SETTINGS.artifact_bucket, event.model_id, champion["model_id"])
        if champion
        else None
    )
    result = evaluate(final_metrics(job), champion, comparison, RULES).to_dict()
    write_model_quality(S3, SETTINGS.artifact_bucket, event.model_id, result, datetime.now(UTC))
    metrics.add_metric(name="CandidateValidationRmse", unit="None", value=result["validation_rmse"])
    logger.info("gate verdict", extra=result)
    return result
