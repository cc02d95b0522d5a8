"""The approval API: the page (GET shows, only POST decides, once), the plot, Slack button
callbacks (signed by Slack) and operator decisions (IAM-authenticated, for the CLI)."""

from __future__ import annotations

import base64
import json
import os
import threading
import time
from typing import Any
from urllib.parse import parse_qs, urlencode

import boto3
from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext
from pipeline_common.approvals import (
    PLOT,
    REVIEW,
    Approval,
    ApprovalStore,
    LinkError,
    Status,
    Tampered,
    TooLate,
    now,
    signature,
    tell_step_functions,
    verify,
)
from pipeline_common.observability import logger, metrics, tracer
from pipeline_common.pages import decided_page, error_page, review_page
from pipeline_common.secrets import SecretReader
from pipeline_common.settings import ApprovalApiSettings
from pipeline_common.slack import (
    ButtonClick,
    SlackRefused,
    SlackWebhookError,
    parse_click,
    post_json,
    verify_request,
)

SETTINGS = ApprovalApiSettings.from_env(os.environ)
STORE = ApprovalStore(boto3.resource("dynamodb").Table(SETTINGS.approvals_table))
SECRETS = SecretReader(boto3.client("secretsmanager"))
SFN = boto3.client("stepfunctions")
S3 = boto3.client("s3")
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
KEY_REFRESH_SECONDS = 30.0  # after a rotation, a fresher key is fetched at most this often
_last_refresh = [0.0]
_refresh_lock = threading.Lock()


def page(status: int, html: str, headers: dict[str, str] | None = None) -> Response[str]:
    return Response(status, HTML, html, headers={**PAGE_HEADERS, **(headers or {})})


def _json(status: int, body: dict[str, Any]) -> Response[str]:
    return Response(status, "application/json", json.dumps(body))


@app.exception_handler(LinkError)  # type: ignore[untyped-decorator]
def refused(error: LinkError) -> Response[str]:
    logger.info("approval request refused", extra={"why": error.title, "status": error.status})
    return page(error.status, error_page(error.title, error.detail, error.status))


@app.not_found
def not_found(_: Exception) -> Response[str]:
    return page(404, error_page("Not found", "There is no such page here.", 404))


def _checked(approval_id: str, expires: str | None, sig: str | None, purpose: str) -> int:
    """The link's expiry, if it is genuine; a key rotated since the cache filled is re-read."""
    arn = SETTINGS.signing_secret_arn
    try:
        return verify(
            approval_id, expires or "", sig or "", SECRETS.verifying_keys(arn), now(), purpose
        )
    except Tampered:
        with _refresh_lock:
            if time.monotonic() - _last_refresh[0] < KEY_REFRESH_SECONDS:
                raise
            _last_refresh[0] = time.monotonic()
        keys = SECRETS.verifying_keys(arn, fresh=True)
        return verify(approval_id, expires or "", sig or "", keys, now(), purpose)


def _decide(approval_id: str, approved: bool, by: str, via: str, reason: str) -> Approval:
    """The single-use write, then Step Functions; a decision it no longer waits for expires."""
    approval, token = STORE.decide(approval_id, approved, by[:200], reason[:500], now(), via)
    try:
        tell_step_functions(SFN, approval, token)
    except TooLate:
        STORE.too_late(approval, now())
        raise
    except Exception:  # Step Functions did not hear it: the decision must not stand unheard
        STORE.undo(approval)
        raise
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
    expires = _checked(approval_id, query.get("expires"), query.get("sig"), REVIEW)
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
def decide(approval_id: str) -> Response[str]:
    form = {k: v[0] for k, v in parse_qs(app.current_event.decoded_body or "").items()}
    _checked(approval_id, form.get("expires"), form.get("sig"), REVIEW)
    decision = form.get("decision")
    name = " ".join((form.get("name") or "").split())
    if decision not in ("approve", "reject") or not name:
        return page(
            400,
            error_page(
                "Incomplete decision",
                "Choose Approve or Reject and type your name; nothing was decided.",
                400,
            ),
        )
    approval = _decide(
        approval_id, decision == "approve", name, "approval page", form.get("reason") or ""
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
    _checked(approval_id, query.get("expires"), query.get("sig"), PLOT)
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
def _raw_body() -> bytes:
    event = app.current_event
    body = event.body or ""
    return base64.b64decode(body) if event.is_base64_encoded else body.encode("utf-8")


@app.post("/slack/interactions")
def slack_interaction() -> Response[str]:
    """A button in the Slack message, accepted only when Slack signed it in the last 5 minutes."""
    if not SETTINGS.slack_signing_secret_arn:
        return _json(
            404,
            {
                "message": "Slack interactivity is not enabled on this stack "
                "(deploy with the SlackSigningSecretArn parameter to turn it on)."
            },
        )
    body = _raw_body()
    headers = app.current_event.headers
    try:
        verify_request(
            body,
            _header(headers, "X-Slack-Request-Timestamp"),
            _header(headers, "X-Slack-Signature"),
            SECRETS.required(SETTINGS.slack_signing_secret_arn),
            now(),
        )
    except SlackRefused as error:
        logger.warning("Slack request refused", extra={"why": error.title})
        return _json(error.status, {"message": f"{error.title}: {error.detail}"})
    try:
        click = parse_click(body)
    except ValueError as error:
        return _json(400, {"message": str(error)})
    if not click.decides:
        return _json(200, {"message": "the link button opens the approval page"})
    try:
        approval = _decide(
            click.approval_id, click.action == "approve", click.approver, "Slack", ""
        )
    except LinkError as error:
        _tell_slack_user(
            click,
            {
                "response_type": "ephemeral",
                "replace_original": False,
                "text": f"{error.title}: {error.detail}",
            },
        )
        return _json(error.status, {"message": f"{error.title}: {error.detail}"})
    verb = approval.status.value.lower()
    text = f"Fare model {approval.model_id} was {verb} by <@{click.user_id}> in Slack."
    _tell_slack_user(click, {"replace_original": True, "text": text})
    return _json(200, {"message": text, "status": approval.status.value})


def _header(headers: dict[str, str], name: str) -> str | None:
    return next((v for k, v in headers.items() if k.lower() == name.lower()), None)


def _tell_slack_user(click: ButtonClick, message: dict[str, Any]) -> None:
    """Update the message in Slack (best effort: the decision already stands)."""
    if not click.response_url:
        return
    try:
        post_json(click.response_url, message, timeout=3.0)
    except SlackWebhookError as error:
        logger.warning("Slack response_url failed", extra={"error": str(error)})


# ---------------------------------------------------------------- operators (the CLI)
@app.post("/operator/decisions")
def operator_decision() -> Response[str]:
    """``safe-deploy approve|reject``: IAM-authenticated, the same single-use write."""
    try:
        body = app.current_event.json_body or {}
    except ValueError:
        return _json(400, {"message": "send a JSON body"})
    decision = body.get("decision")
    execution_arn = body.get("execution_arn", "")
    if decision not in ("approve", "reject") or not execution_arn:
        return _json(400, {"message": "send execution_arn and decision (approve or reject)"})
    approval = STORE.for_execution(execution_arn)
    if approval is None:
        return _json(404, {"message": f"no approval request for {execution_arn}"})
    identity = app.current_event.request_context.identity
    by = identity.user_arn or identity.caller or "an IAM principal"
    try:
        approval = _decide(
            approval.approval_id,
            decision == "approve",
            by,
            "operator API (IAM)",
            str(body.get("reason", "")),
        )
    except LinkError as error:
        return _json(error.status, {"message": f"{error.title}: {error.detail}"})
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
