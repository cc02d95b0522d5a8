"""The approval API: the page (GET shows, only POST decides, once), the plot, Slack button
callbacks (signed by Slack, from an approver) and operator decisions (IAM-authenticated, for the
CLI), each a router of ``approval_routes`` beside this file. Every request it cannot honour gets a
4xx that says why (a page on the page routes, JSON on the others) and changes nothing."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

import boto3
from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext
from pipeline_common.approvals import Approval, ApprovalStore, LinkError, decide
from pipeline_common.observability import logger, metrics, tracer
from pipeline_common.secrets import SecretReader
from pipeline_common.settings import ApprovalApiSettings
from pipeline_common.slack import Approvers, usergroup_members

if TYPE_CHECKING:  # mypy names modules by their path from the repository (explicit_package_bases)
    from functions.approval_api.approval_routes import common, operators, page, slack
else:  # Lambda imports this file with its folder on sys.path
    from approval_routes import common, operators, page, slack

SETTINGS = ApprovalApiSettings.from_env(os.environ)
STORE = ApprovalStore(boto3.resource("dynamodb").Table(SETTINGS.approvals_table))
SECRETS = SecretReader(boto3.client("secretsmanager"))
SFN = boto3.client("stepfunctions")
S3 = boto3.client("s3")
APPROVERS = Approvers(
    SETTINGS.slack_team_id,
    SETTINGS.slack_approver_ids,
    SETTINGS.slack_approver_group,
    lambda group: usergroup_members(
        SETTINGS.slack_api_url, SECRETS.required(SETTINGS.slack_bot_token_secret_arn), group
    ),
)


def decide_once(
    approval_id: str, *, approved: bool, by: str, via: str, reason: str = ""
) -> Approval:
    """The layer's single-use write, then Step Functions (with this module's clients as they are
    when a request comes), logged without the token."""
    approval = decide(STORE, SFN, approval_id, approved=approved, by=by, via=via, reason=reason)
    logger.info(
        "approval decided",
        extra={
            "approval_id": approval_id,
            "model_id": approval.model_id,
            "status": approval.status,
            "by": approval.decided_by,
            "via": via,
        },
    )
    return approval


app = APIGatewayRestResolver()
app.include_router(page.routes(SETTINGS, STORE, SECRETS, S3, decide_once))
app.include_router(slack.routes(SETTINGS, SECRETS, APPROVERS, decide_once))
app.include_router(operators.routes(STORE, decide_once))


@app.exception_handler(LinkError)  # type: ignore[untyped-decorator]
def refused(error: LinkError) -> Response[str]:
    return common.refusal(app.current_event, error)


@app.not_found
def not_found(_: Exception) -> Response[str]:
    return common.no_route(app.current_event)


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_REST)
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event, context)
