"""Slack's interactivity callbacks: ``POST /slack/interactions``, honoured only when Slack signed
the body in the last five minutes and the click is an approver's, in the stack's workspace. The
person who clicked hears the outcome in Slack; the answer stands whether or not Slack takes it."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.router import APIGatewayRouter
from pipeline_common.approvals import LinkError, now
from pipeline_common.observability import logger
from pipeline_common.secrets import CURRENT, SecretReader
from pipeline_common.settings import ApprovalApiSettings
from pipeline_common.slack import (
    BODY_LIMIT,
    Approvers,
    ButtonClick,
    SlackRefused,
    SlackWebhookError,
    decided_update,
    ephemeral,
    parse_click,
    post_json,
    verify_request_with,
)

from .common import Decide, body_of, json_answer, new_router

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.data_classes import APIGatewayProxyEvent

INTERACTIONS = "/slack/interactions"
NOT_ENABLED = (
    "Slack interactivity is not enabled on this stack "
    "(deploy with the SlackSigningSecretArn parameter to turn it on)."
)


def routes(
    settings: ApprovalApiSettings, secrets: SecretReader, approvers: Approvers, decide: Decide
) -> APIGatewayRouter:
    """Slack's one route, over the handler's settings, secrets and approvers."""
    router = new_router()

    @router.post(INTERACTIONS)
    def slack_interaction() -> Response[str]:
        return interaction(router.current_event, settings, secrets, approvers, decide)

    return router


def interaction(
    event: APIGatewayProxyEvent,
    settings: ApprovalApiSettings,
    secrets: SecretReader,
    approvers: Approvers,
    decide: Decide,
) -> Response[str]:
    """A button in the approval message: a decision if Slack signed it, it decides, and its user
    may; the link buttons' clicks are only acknowledged."""
    signing_secret_arn = settings.slack_signing_secret_arn
    if not signing_secret_arn:
        return json_answer(404, {"message": NOT_ENABLED})
    body = body_of(event, BODY_LIMIT)
    try:
        click = _signed_click(event, body, signing_secret_arn, secrets)
    except SlackRefused as error:
        logger.warning("Slack request refused", extra={"why": error.title})
        return json_answer(error.status, {"message": f"{error.title}: {error.detail}"})
    except ValueError as error:  # signed by Slack, but not one of our buttons' clicks
        return json_answer(400, {"message": str(error)})
    if not click.decides:
        return json_answer(200, {"message": "the link button opens the approval page"})
    return _decide_click(click, approvers, decide)


def _signed_click(
    event: APIGatewayProxyEvent, body: bytes, signing_secret_arn: str, secrets: SecretReader
) -> ButtonClick:
    """The click, once Slack's signature over the body and its timestamp holds (``SlackRefused``
    otherwise); ``ValueError`` if it is no click of ours."""
    headers = event.headers
    verify_request_with(
        body,
        headers.get("X-Slack-Request-Timestamp"),
        headers.get("X-Slack-Signature"),
        now(),
        lambda signed_with: secrets.verified(signing_secret_arn, signed_with, (CURRENT,)),
    )
    return parse_click(body)


def _decide_click(click: ButtonClick, approvers: Approvers, decide: Decide) -> Response[str]:
    try:
        approvers.check(click)
        approval = decide(
            click.approval_id, approved=click.action == "approve", by=click.approver, via="Slack"
        )
    except (SlackRefused, LinkError) as error:
        logger.warning(
            "Slack decision refused",
            extra={
                "why": error.title,
                "user_id": click.user_id,
                "team_id": click.team_id,
                "approval_id": click.approval_id,
            },
        )
        _tell_slack_user(click, ephemeral(f"{error.title}: {error.detail}"))
        return json_answer(error.status, {"message": f"{error.title}: {error.detail}"})
    update = decided_update(approval.model_id, approval.status.value, click.user_id)
    _tell_slack_user(click, update)
    return json_answer(200, {"message": update["text"], "status": approval.status.value})


def _tell_slack_user(click: ButtonClick, message: dict[str, Any]) -> None:
    """Update the message in Slack (best effort: the answer stands either way)."""
    if not click.response_url:
        return
    try:
        post_json(click.response_url, message, timeout=2.0)
    except SlackWebhookError as error:
        logger.warning("Slack response_url failed", extra={"error": str(error)})
