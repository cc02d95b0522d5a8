"""The approval request: token stored server-side, signed links sent on every channel."""

from __future__ import annotations

import os
from typing import Any

import boto3
from aws_lambda_powertools.utilities.typing import LambdaContext
from pipeline_common.approval_request import Channel, request_approval, sns_channel
from pipeline_common.approvals import ApprovalStore, now
from pipeline_common.observability import logger, metrics, tracer
from pipeline_common.secrets import signing_key
from pipeline_common.settings import RequestApprovalSettings

SETTINGS = RequestApprovalSettings.from_env(os.environ)
STORE = ApprovalStore(boto3.resource("dynamodb").Table(SETTINGS.approvals_table))
SNS = boto3.client("sns")


def channels() -> dict[str, Channel]:
    return {"sns": sns_channel(SNS, SETTINGS.topic_arn)}


# The event holds the task token: it is never logged (no log_event, no captured response).
@logger.inject_lambda_context(correlation_id_path="model_id")
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    result = request_approval(
        event,
        store=STORE,
        signing_key=signing_key(SETTINGS.signing_secret_arn),
        base_url=SETTINGS.api_base_url,
        channels=channels(),
        now=now(),
    )
    logger.info("approval requested", extra=result)
    return result
