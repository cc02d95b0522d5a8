"""The approval page: GET shows the evidence, only POST decides, once."""

from __future__ import annotations

import json
import os
from typing import Any
from urllib.parse import parse_qs, urlencode

import boto3
from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext
from pipeline_common.approvals import ApprovalStore, LinkError, now, tell_step_functions, verify
from pipeline_common.observability import logger, metrics, tracer
from pipeline_common.pages import decided_page, error_page, review_page
from pipeline_common.secrets import verifying_keys
from pipeline_common.settings import ApprovalApiSettings

SETTINGS = ApprovalApiSettings.from_env(os.environ)
STORE = ApprovalStore(boto3.resource("dynamodb").Table(SETTINGS.approvals_table))
SFN = boto3.client("stepfunctions")
S3 = boto3.client("s3")
app = APIGatewayRestResolver()

HTML = "text/html; charset=utf-8"


def page(status: int, html: str) -> Response[str]:
    return Response(
        status, HTML, html, headers={"Cache-Control": "no-store", "X-Robots-Tag": "noindex"}
    )


@app.exception_handler(LinkError)  # type: ignore[untyped-decorator]
def refused(error: LinkError) -> Response[str]:
    logger.info("approval link refused", extra={"why": error.title})
    return page(error.status, error_page(error.title, error.detail))


def _checked(approval_id: str, expires: str | None, sig: str | None) -> int:
    return verify(
        approval_id, expires or "", sig or "", verifying_keys(SETTINGS.signing_secret_arn), now()
    )


@app.get("/approvals/<approval_id>")
def show(approval_id: str) -> Response[str]:
    query = app.current_event.query_string_parameters or {}
    expires = _checked(approval_id, query.get("expires"), query.get("sig"))
    approval = STORE.get(approval_id)
    sig = query.get("sig", "")
    base = f"/{app.current_event.request_context.stage}/approvals/{approval_id}"
    plot = f"{base}/plot.png?{urlencode({'expires': expires, 'sig': sig})}"
    return page(200, review_page(approval, base, expires, sig, plot))


@app.post("/approvals/<approval_id>")
def decide(approval_id: str) -> Response[str]:
    form = {k: v[0] for k, v in parse_qs(app.current_event.decoded_body or "").items()}
    _checked(approval_id, form.get("expires"), form.get("sig"))
    decision = form.get("decision")
    name = (form.get("name") or "").strip()
    if decision not in ("approve", "reject") or not name:
        return page(
            400, error_page("Incomplete decision", "Choose Approve or Reject and give your name.")
        )
    approval, token = STORE.decide(
        approval_id, decision == "approve", name[:100], (form.get("reason") or "")[:500], now()
    )
    tell_step_functions(SFN, approval, token)
    logger.info(
        "approval decided",
        extra={"approval_id": approval_id, "status": approval.status, "by": approval.decided_by},
    )
    return page(200, decided_page(approval))


@app.get("/approvals/<approval_id>/plot.png")
def plot(approval_id: str) -> Response[str]:
    query = app.current_event.query_string_parameters or {}
    _checked(approval_id, query.get("expires"), query.get("sig"))
    key = STORE.get(approval_id).evidence.get("plot_key")
    if not key:
        return page(404, error_page("No plot", "This candidate has no plot."))
    data = S3.get_object(Bucket=SETTINGS.artifact_bucket, Key=key)["Body"].read()
    return Response(200, "image/png", data, headers={"Cache-Control": "private, max-age=300"})  # type: ignore[arg-type]  # Powertools base64-encodes bytes bodies


@app.post("/operator/decisions")
def operator_decision() -> Response[str]:
    """Terminal users (``safe-deploy approve|reject``): IAM-authenticated, same single-use write."""
    body = app.current_event.json_body or {}
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
        approval, token = STORE.decide(
            approval.approval_id,
            decision == "approve",
            by,
            str(body.get("reason", ""))[:500],
            now(),
        )
    except LinkError as error:
        return _json(error.status, {"message": f"{error.title}: {error.detail}"})
    tell_step_functions(SFN, approval, token)
    logger.info(
        "approval decided",
        extra={"approval_id": approval.approval_id, "status": approval.status, "by": by},
    )
    return _json(
        200,
        {"approval_id": approval.approval_id, "status": approval.status.value, "decided_by": by},
    )


def _json(status: int, body: dict[str, Any]) -> Response[str]:
    return Response(status, "application/json", json.dumps(body))


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_REST)
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event, context)
