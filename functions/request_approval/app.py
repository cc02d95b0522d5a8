"""The approval request: token stored server-side, signed links sent on every channel; and the
expiry when the run stops waiting (``{"action": "expire"}`` from the timeout path)."""

from __future__ import annotations

import os
from typing import Any

import boto3
from aws_lambda_powertools.utilities.parser import event_parser
from aws_lambda_powertools.utilities.typing import LambdaContext
from pipeline_common.approval_request import (
    NoChannelDelivered,
    expire_approval,
    request_approval,
)
from pipeline_common.approvals import ApprovalStore, now
from pipeline_common.events import APPROVAL_TASK, ApprovalExpiryEvent, ApprovalRequestEvent
from pipeline_common.notifications import (
    Channel,
    email_channel,
    recipients_of,
    slack_channel,
    sns_channel,
)
from pipeline_common.observability import logger, metrics, tracer
from pipeline_common.secrets import SecretReader
from pipeline_common.settings import RequestApprovalSettings

SETTINGS = RequestApprovalSettings.from_env(os.environ)
STORE = ApprovalStore(boto3.resource("dynamodb").Table(SETTINGS.approvals_table))
SECRETS = SecretReader(boto3.client("secretsmanager"))
SNS = boto3.client("sns")
SES = boto3.client("ses")


def channels() -> dict[str, Channel | None]:
    """Every channel, ``None`` where the stack does not configure it; Slack and email first, so
    the people hear before the topic's other subscribers."""
    recipients = recipients_of(SETTINGS.approval_email_recipients)
    webhook_arn = SETTINGS.slack_webhook_secret_arn
    return {
        "slack": slack_channel(lambda: SECRETS.required(webhook_arn)) if webhook_arn else None,
        "email": (
            email_channel(SES, SETTINGS.ses_sender, recipients)
            if SETTINGS.ses_sender and recipients
            else None
        ),
        "sns": sns_channel(SNS, SETTINGS.topic_arn) if SETTINGS.topic_arn else None,
    }


def _log_outcomes(what: str, result: dict[str, Any]) -> None:
    for channel, outcome in result["channels"].items():
        if outcome.startswith("failed"):
            logger.warning(
                f"{what}: channel failed",
                extra={"channel": channel, "approval_id": result["approval_id"], "error": outcome},
            )
    logger.info(what, extra=result)


# The event holds the task token: it is never logged (no log_event, no captured response, no
# input in validation errors).
@logger.inject_lambda_context(correlation_id_path="model_id")
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics
@event_parser(model=APPROVAL_TASK)
def lambda_handler(
    event: ApprovalRequestEvent | ApprovalExpiryEvent, context: LambdaContext
) -> dict[str, Any]:
    if isinstance(event, ApprovalExpiryEvent):
        result = expire_approval(event, store=STORE, channels=channels(), now=now())
        _log_outcomes("approval expired", result)
        return result
    try:
        result = request_approval(
            event,
            store=STORE,
            # Fresh: a cached key may have been revoked since, and its links would not open.
            signing_key=SECRETS.signing_key(SETTINGS.signing_secret_arn, fresh=True),
            base_url=SETTINGS.api_base_url,
            channels=channels(),
            now=now(),
            decide_in_slack=SETTINGS.slack_interactive,
        )
    except NoChannelDelivered as exc:
        logger.error("approval request not delivered", extra={"error": str(exc)})
        raise
    _log_outcomes("approval requested", result)
    return result
