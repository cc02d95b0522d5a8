"""What every route of the approval API shares: how a body is read, how it answers (HTML pages
with their security headers on the page routes, JSON on the others), and the shape of the
handler's decision, which each route is handed."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any, Protocol

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.router import APIGatewayRouter
from pipeline_common.approvals import Approval, LinkError, request_body
from pipeline_common.observability import logger
from pipeline_common.pages import error_page

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.data_classes import APIGatewayProxyEvent

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
JSON_ROUTES = ("/slack/interactions", "/operator/decisions")  # POST only; they answer JSON


class Decide(Protocol):
    """The single-use decision (``pipeline_common.approvals.decide`` with the handler's table and
    Step Functions client): raises ``LinkError`` when the approval cannot be decided."""

    def __call__(
        self, approval_id: str, *, approved: bool, by: str, via: str, reason: str = ""
    ) -> Approval: ...


def new_router() -> APIGatewayRouter:
    """A router for one audience's routes; the handler includes it into its resolver."""
    return APIGatewayRouter()  # type: ignore[no-untyped-call]  # Powertools leaves __init__ unannotated


def body_of(event: APIGatewayProxyEvent, limit: int) -> bytes:
    """The raw body, at most ``limit`` bytes (``Invalid`` or ``TooLarge`` otherwise)."""
    return request_body(event.body, bool(event.is_base64_encoded), limit)


def page(status: int, html: str, headers: dict[str, str] | None = None) -> Response[str]:
    return Response(status, HTML, html, headers={**PAGE_HEADERS, **(headers or {})})


def json_answer(
    status: int, body: dict[str, Any], headers: dict[str, str] | None = None
) -> Response[str]:
    return Response(status, "application/json", json.dumps(body), headers=headers)


def _json_route(event: APIGatewayProxyEvent) -> bool:
    return event.path.rstrip("/") in JSON_ROUTES


def refusal(event: APIGatewayProxyEvent, error: LinkError) -> Response[str]:
    """A request that must not be honoured, in the route's own kind of answer."""
    logger.info("approval request refused", extra={"why": error.title, "status": error.status})
    if _json_route(event):
        return json_answer(error.status, {"message": f"{error.title}: {error.detail}"})
    return page(error.status, error_page(error.title, error.detail, error.status))


def no_route(event: APIGatewayProxyEvent) -> Response[str]:
    """No route takes this request: a JSON route asked with another method gets a 405 that names
    the one it takes; anything else, a 404 page."""
    if _json_route(event):
        method = event.http_method
        return json_answer(
            405, {"message": f"{method} is not allowed here: POST"}, {"Allow": "POST"}
        )
    return page(404, error_page("Not found", "There is no such page here.", 404))


def wrong_method(method: str, allowed: str) -> Response[str]:
    """A 405 page for a method the page routes do not take (``Allow`` says which they do)."""
    detail = (
        f"{method} is not how an approval is made. Open the link (GET) to see the evidence, "
        "then press Approve or Reject on the page (POST)."
    )
    return page(405, error_page("Method not allowed", detail, 405), {"Allow": allowed})
