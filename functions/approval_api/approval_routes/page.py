"""The approval page: ``GET /approvals/{id}`` shows the evidence and decides nothing (mail scanners
and link previews follow GETs); only its form's ``POST`` decides, once. The plot has a link of its
own, whose purpose cannot be turned into a decision. Other methods get a 405 page."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.router import APIGatewayRouter
from pipeline_common.approvals import (
    PAGE_BODY_LIMIT,
    PLOT,
    REVIEW,
    ApprovalStore,
    Status,
    check_link,
    form_fields,
    now,
    page_decision,
    signed_query,
)
from pipeline_common.pages import decided_page, error_page, review_page
from pipeline_common.secrets import SecretReader
from pipeline_common.settings import ApprovalApiSettings

from .common import Decide, body_of, new_router, page, wrong_method

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.data_classes import APIGatewayProxyEvent
    from mypy_boto3_s3 import S3Client

PAGE = "/approvals/<approval_id>"
PLOT_IMAGE = "/approvals/<approval_id>/plot.png"
NOT_ON_THE_PAGE = ["PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"]
NOT_ON_THE_PLOT = ["POST", "PUT", "PATCH", "DELETE", "OPTIONS"]


def routes(
    settings: ApprovalApiSettings,
    store: ApprovalStore,
    secrets: SecretReader,
    s3: S3Client,
    decide: Decide,
) -> APIGatewayRouter:
    """The page's and the plot's routes, over the handler's settings and clients."""
    router = new_router()

    @router.get(PAGE)
    def show_approval(approval_id: str) -> Response[str]:
        return show(router.current_event, approval_id, settings, store, secrets)

    @router.post(PAGE)
    def decide_on_page(approval_id: str) -> Response[str]:
        return decision(router.current_event, approval_id, settings, secrets, decide)

    @router.route(PAGE, method=NOT_ON_THE_PAGE)
    def page_wrong_method(approval_id: str) -> Response[str]:
        return wrong_method(router.current_event.http_method, "GET, POST")

    @router.get(PLOT_IMAGE)
    def show_plot(approval_id: str) -> Response[str]:
        return plot(router.current_event, approval_id, settings, store, secrets, s3)

    @router.route(PLOT_IMAGE, method=NOT_ON_THE_PLOT)
    def plot_wrong_method(approval_id: str) -> Response[str]:
        return wrong_method(router.current_event.http_method, "GET")

    return router


def _link(
    settings: ApprovalApiSettings,
    secrets: SecretReader,
    approval_id: str,
    expires: str | None,
    sig: str | None,
    purpose: str,
) -> int:
    """The link's expiry, once its signature holds with a key the secret holds now."""
    arn = settings.signing_secret_arn
    return check_link(secrets, arn, approval_id, expires, sig, now(), purpose)


def show(
    event: APIGatewayProxyEvent,
    approval_id: str,
    settings: ApprovalApiSettings,
    store: ApprovalStore,
    secrets: SecretReader,
) -> Response[str]:
    """The evidence and the form while the approval is pending; who decided once it is not."""
    query = event.query_string_parameters or {}
    expires = _link(settings, secrets, approval_id, query.get("expires"), query.get("sig"), REVIEW)
    approval = store.get(approval_id)
    if approval.status is Status.EXPIRED:
        raise store.refusal(approval)
    if approval.status is not Status.PENDING:
        return page(200, decided_page(approval))
    base = f"/{event.request_context.stage}/approvals/{approval_id}"
    plot_src = None
    if approval.evidence.get("plot_key"):
        key = secrets.signing_key(settings.signing_secret_arn)
        plot_src = f"{base}/plot.png?{signed_query(approval_id, expires, key, PLOT)}"
    return page(200, review_page(approval, base, expires, query.get("sig", ""), plot_src))


def decision(
    event: APIGatewayProxyEvent,
    approval_id: str,
    settings: ApprovalApiSettings,
    secrets: SecretReader,
    decide: Decide,
) -> Response[str]:
    """The form, posted: the link it carries is checked again before anything is decided."""
    form = form_fields(body_of(event, PAGE_BODY_LIMIT))
    _link(settings, secrets, approval_id, form.get("expires"), form.get("sig"), REVIEW)
    chosen = page_decision(form)
    approval = decide(
        approval_id,
        approved=chosen.approved,
        by=chosen.by,
        via="approval page",
        reason=chosen.reason,
    )
    return page(200, decided_page(approval))


def plot(
    event: APIGatewayProxyEvent,
    approval_id: str,
    settings: ApprovalApiSettings,
    store: ApprovalStore,
    secrets: SecretReader,
    s3: S3Client,
) -> Response[str]:
    """The actual-vs-predicted plot, behind a link signed for the plot only."""
    query = event.query_string_parameters or {}
    _link(settings, secrets, approval_id, query.get("expires"), query.get("sig"), PLOT)
    key = store.get(approval_id).evidence.get("plot_key")
    if not key:
        return page(404, error_page("No plot", "This candidate has no plot.", 404))
    try:
        data = s3.get_object(Bucket=settings.artifact_bucket, Key=key)["Body"].read()
    except s3.exceptions.NoSuchKey:
        return page(404, error_page("No plot", "The plot is no longer stored.", 404))
    # Powertools base64-encodes a bytes body (the API's binary media types include image/png)
    return Response(200, "image/png", data, headers={"Cache-Control": "private, max-age=300"})  # type: ignore[arg-type]
