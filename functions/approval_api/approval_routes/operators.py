"""``POST /operator/decisions``: ``safe-deploy approve|reject``. API Gateway has checked the
caller's SigV4 signature and the API's resource policy (only ``OperatorPrincipalArns`` reach this
route); the decision is the same single-use write as the page's, recorded as that principal's."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.router import APIGatewayRouter
from pipeline_common.approvals import OPERATOR_BODY_LIMIT, ApprovalStore, operator_decision

from .common import Decide, body_of, json_answer, new_router

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.data_classes import APIGatewayProxyEvent

DECISIONS = "/operator/decisions"
VIA = "operator API (IAM)"


def routes(store: ApprovalStore, decide: Decide) -> APIGatewayRouter:
    """The CLI's one route, over the handler's approvals table."""
    router = new_router()

    @router.post(DECISIONS)
    def operator_decision_route() -> Response[str]:
        return decision(router.current_event, store, decide)

    return router


def decision(event: APIGatewayProxyEvent, store: ApprovalStore, decide: Decide) -> Response[str]:
    """The latest approval request of the run the body names, decided as the caller."""
    chosen = operator_decision(body_of(event, OPERATOR_BODY_LIMIT))
    requested = store.for_execution(chosen.execution_arn)
    if requested is None:
        return json_answer(404, {"message": f"no approval request for {chosen.execution_arn}"})
    identity = event.request_context.identity
    by = identity.user_arn or identity.caller or "an IAM principal"
    approval = decide(
        requested.approval_id, approved=chosen.approved, by=by, via=VIA, reason=chosen.reason
    )
    return json_answer(
        200,
        {
            "approval_id": approval.approval_id,
            "model_id": approval.model_id,
            "status": approval.status.value,
            "decided_by": approval.decided_by,
            "decided_at": approval.decided_at,
        },
    )
