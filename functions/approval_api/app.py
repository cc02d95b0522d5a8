"""The approval API: the page (GET shows, only POST decides, once), the plot, Slack button
callbacks (signed by Slack, from an approver) and operator decisions (IAM-authenticated, for the
CLI). Every request it cannot honour gets a 4xx that says why (a page on the page routes, JSON on
the others) and changes nothing."""

from __future__ import annotations

import json
import os
from typing import Any
from urllib.parse import urlencode

import boto3
from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext
from pipeline_common.approvals import (
    OPERATOR_BODY_LIMIT,
    PAGE_BODY_LIMIT,
    PLOT,
    REVIEW,
    Approval,
    ApprovalStore,
    LinkError,
    Status,
    check_link,
    decide,
    form_fields,
    now,
    operator_decision,
    page_decision,
    request_body,
    signature,
)
from pipeline_common.observability import logger, metrics, tracer
from pipeline_common.pages import decided_page, error_page, review_page
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
    usergroup_members,
    verify_request_with,
)

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
app = APIGatewayRestResolver()

HTML = "text/html; charset=utf-8"
PAGE_HEADERS = {
    "Cache-Control": "no-store",
    "X-Robots-Tag": "noindex, nofollow",
    "Referrer-Policy": "no-referrer",  # the signed link never leaves in a Referer header
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Content-Security-Policy": (
        "default-src 'none'; img-src 'self'; style-src 'unsafe-inline'; "
        "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
}
PAGE_METHODS = "GET, POST"
JSON_ROUTES = ("/slack/interactions", "/operator/decisions")  # POST only; they answer JSON


def page(status: int, html: str, headers: dict[str, str] | None = None) -> Response[str]:
    return Response(status, HTML, html, headers={**PAGE_HEADERS, **(headers or {})})


def _json(
    status: int, body: dict[str, Any], headers: dict[str, str] | None = None
) -> Response[str]:
    return Response(status, "application/json", json.dumps(body), headers=headers)


def _json_route() -> bool:
    return app.current_event.path.rstrip("/") in JSON_ROUTES


@app.exception_handler(LinkError)  # type: ignore[untyped-decorator]
def refused(error: LinkError) -> Response[str]:
    logger.info("approval request refused", extra={"why": error.title, "status": error.status})
    if _json_route():
        return _json(error.status, {"message": f"{error.title}: {error.detail}"})
    return page(error.status, error_page(error.title, error.detail, error.status))


@app.not_found
def not_found(_: Exception) -> Response[str]:
    if _json_route():  # a route that exists, asked with another method
        method = app.current_event.http_method
        return _json(405, {"message": f"{method} is not allowed here: POST"}, {"Allow": "POST"})
    return page(404, error_page("Not found", "There is no such page here.", 404))


def _body(limit: int) -> bytes:
    event = app.current_event
    return request_body(event.body, bool(event.is_base64_encoded), limit)


def _link(approval_id: str, expires: str | None, sig: str | None, purpose: str) -> int:
    return check_link(
        SECRETS, SETTINGS.signing_secret_arn, approval_id, expires, sig, now(), purpose
    )


def _decide(approval_id: str, approved: bool, by: str, via: str, reason: str) -> Approval:
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


# ---------------------------------------------------------------- the page
@app.get("/approvals/<approval_id>")
def show(approval_id: str) -> Response[str]:
    """Shows the evidence; decides nothing (mail scanners and link previews follow GETs)."""
    query = app.current_event.query_string_parameters or {}
    expires = _link(approval_id, query.get("expires"), query.get("sig"), REVIEW)
    approval = STORE.get(approval_id)
    if approval.status is Status.EXPIRED:
        raise STORE.refusal(approval)
    if approval.status is not Status.PENDING:
        return page(200, decided_page(approval))
    base = f"/{app.current_event.request_context.stage}/approvals/{approval_id}"
    key = SECRETS.signing_key(SETTINGS.signing_secret_arn)
    plot_query = urlencode({"expires": expires, "sig": signature(approval_id, expires, key, PLOT)})
    plot = f"{base}/plot.png?{plot_query}" if approval.evidence.get("plot_key") else None
    return page(200, review_page(approval, base, expires, query.get("sig", ""), plot))


@app.post("/approvals/<approval_id>")
def decide_on_page(approval_id: str) -> Response[str]:
    form = form_fields(_body(PAGE_BODY_LIMIT))
    _link(approval_id, form.get("expires"), form.get("sig"), REVIEW)
    decision = page_decision(form)
    approval = _decide(
        approval_id, decision.approved, decision.by, "approval page", decision.reason
    )
    return page(200, decided_page(approval))


@app.route("/approvals/<approval_id>", method=["PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"])
def page_wrong_method(approval_id: str) -> Response[str]:
    return _wrong_method(PAGE_METHODS)


def _wrong_method(allowed: str) -> Response[str]:
    method = app.current_event.http_method
    detail = (
        f"{method} is not how an approval is made. Open the link (GET) to see the evidence, "
        "then press Approve or Reject on the page (POST)."
    )
    return page(405, error_page("Method not allowed", detail, 405), {"Allow": allowed})


@app.get("/approvals/<approval_id>/plot.png")
def plot(approval_id: str) -> Response[str]:
    query = app.current_event.query_string_parameters or {}
    _link(approval_id, query.get("expires"), query.get("sig"), PLOT)
    key = STORE.get(approval_id).evidence.get("plot_key")
    if not key:
        return page(404, error_page("No plot", "This candidate has no plot.", 404))
    try:
        data = S3.get_object(Bucket=SETTINGS.artifact_bucket, Key=key)["Body"].read()
    except S3.exceptions.NoSuchKey:
        return page(404, error_page("No plot", "The plot is no longer stored.", 404))
    return Response(200, "image/png", data, headers={"Cache-Control": "private, max-age=300"})  # type: ignore[arg-type]  # Powertools base64-encodes bytes bodies


@app.route(
    "/approvals/<approval_id>/plot.png", method=["POST", "PUT", "PATCH", "DELETE", "OPTIONS"]
)
def plot_wrong_method(approval_id: str) -> Response[str]:
    return _wrong_method("GET")


# ---------------------------------------------------------------- Slack
@app.post("/slack/interactions")
def slack_interaction() -> Response[str]:
    """A button in the Slack message: signed by Slack in the last 5 minutes, pressed by an
    approver in the stack's workspace."""
    arn = SETTINGS.slack_signing_secret_arn
    if not arn:
        return _json(
            404,
            {
                "message": "Slack interactivity is not enabled on this stack "
                "(deploy with the SlackSigningSecretArn parameter to turn it on)."
            },
        )
    body = _body(BODY_LIMIT)
    headers = app.current_event.headers
    try:
        verify_request_with(
            body,
            headers.get("X-Slack-Request-Timestamp"),
            headers.get("X-Slack-Signature"),
            now(),
            lambda signed_with: SECRETS.verified(arn, signed_with, (CURRENT,)),
        )
        click = parse_click(body)
    except SlackRefused as error:
        logger.warning("Slack request refused", extra={"why": error.title})
        return _json(error.status, {"message": f"{error.title}: {error.detail}"})
    except ValueError as error:  # signed by Slack, but not one of our buttons' clicks
        return _json(400, {"message": str(error)})
    if not click.decides:
        return _json(200, {"message": "the link button opens the approval page"})
    try:
        APPROVERS.check(click)
        approval = _decide(
            click.approval_id, click.action == "approve", click.approver, "Slack", ""
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
        return _json(error.status, {"message": f"{error.title}: {error.detail}"})
    update = decided_update(approval.model_id, approval.status.value, click.user_id)
    _tell_slack_user(click, update)
    return _json(200, {"message": update["text"], "status": approval.status.value})


def _tell_slack_user(click: ButtonClick, message: dict[str, Any]) -> None:
    """Update the message in Slack (best effort: the answer stands either way)."""
    if not click.response_url:
        return
    try:
        post_json(click.response_url, message, timeout=2.0)
    except SlackWebhookError as error:
        logger.warning("Slack response_url failed", extra={"error": str(error)})


# ---------------------------------------------------------------- operators (the CLI)
@app.post("/operator/decisions")
def operator_decision_route() -> Response[str]:
    """``safe-deploy approve|reject``: IAM-authenticated, the same single-use write."""
    decision = operator_decision(_body(OPERATOR_BODY_LIMIT))
    approval = STORE.for_execution(decision.execution_arn)
    if approval is None:
        return _json(404, {"message": f"no approval request for {decision.execution_arn}"})
    identity = app.current_event.request_context.identity
    by = identity.user_arn or identity.caller or "an IAM principal"
    approval = _decide(
        approval.approval_id, decision.approved, by, "operator API (IAM)", decision.reason
    )
    return _json(
        200,
        {
            "approval_id": approval.approval_id,
            "model_id": approval.model_id,
            "status": approval.status.value,
            "decided_by": approval.decided_by,
            "decided_at": approval.decided_at,
        },
    )


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_REST)
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event, context)
