"""Asking a person: store the token, send signed links on every configured channel; and, when
nobody answered in time, mark the approval expired and tell the same people."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pipeline_common.approvals import (
    Approval,
    ApprovalStore,
    approval_url,
    champion_rmse_text,
    plot_url,
)
from pipeline_common.events import ApprovalExpiryEvent, ApprovalRequestEvent
from pipeline_common.notifications import EXPIRED, REQUEST, Channel, Notification, duration

SENT = "sent"
OFF = "off"


class NoChannelDelivered(RuntimeError):
    """Nobody could be asked: the run must not wait for a decision nobody can make."""


def evidence_from(event: ApprovalRequestEvent) -> dict[str, Any]:
    evaluation, test, source = event.evaluation, event.test, event.source
    return {
        "validation_rmse": evaluation.validation_rmse,
        "champion_rmse": evaluation.champion_rmse,
        "champion_model_id": evaluation.champion_model_id,
        "champion_rmse_same_rows": evaluation.champion_rmse_same_rows,
        "rows_compared": evaluation.rows_compared,
        "gate_reason": evaluation.reason,
        "gate_summary": evaluation.summary,
        "test_rmse": test.rmse,
        "test_rows": test.rows,
        "plot_key": test.plot_key,
        "data": f"s3://{source.bucket}/{source.key}",
        "data_version": source.version_id,
    }


def _number(value: Any) -> str:
    return f"{value:.3f}" if isinstance(value, int | float) else "-"


def facts_of(approval: Approval) -> tuple[tuple[str, str], ...]:
    e = approval.evidence
    champion = champion_rmse_text(e, _number) or "none yet (first model)"
    facts = [
        ("Model", approval.model_id),
        ("Validation RMSE", _number(e.get("validation_rmse"))),
        ("Production model's RMSE", champion),
    ]
    if e.get("gate_summary"):
        facts.append(("Gate", str(e["gate_summary"])))
    facts += [
        ("Test-set RMSE (dev endpoint)", _number(e.get("test_rmse"))),
        ("Data version", str(e.get("data_version") or "-")),
        ("Data", str(e.get("data") or "-")),
    ]
    return tuple(facts)


def request_notification(
    approval: Approval, base_url: str, key: str, decide_in_slack: bool = False
) -> Notification:
    return Notification(
        kind=REQUEST,
        approval_id=approval.approval_id,
        model_id=approval.model_id,
        subject=f"Approve fare model {approval.model_id} for production?",
        headline=(
            f"Fare model {approval.model_id} passed the gate and its dev-endpoint test. "
            "Review the evidence and approve or reject its promotion (a canary: 10% of live "
            "traffic first, rolled back on any alarm)."
        ),
        facts=facts_of(approval),
        approval_url=approval_url(base_url, approval.approval_id, approval.expires_at, key),
        plot_url=plot_url(base_url, approval.approval_id, approval.expires_at, key),
        expires_at=approval.expires_at,
        decide_in_slack=decide_in_slack,
    )


def expiry_notification(approval: Approval, waited_seconds: int) -> Notification:
    return Notification(
        kind=EXPIRED,
        approval_id=approval.approval_id,
        model_id=approval.model_id,
        subject=f"Approval expired: fare model {approval.model_id} was not promoted",
        headline=(
            f"Nobody decided on fare model {approval.model_id} within {duration(waited_seconds)}, "
            "so it is rejected: its dev endpoint is being deleted and production is unchanged. "
            "The approval links no longer work."
        ),
        facts=facts_of(approval),
    )


def notify(notification: Notification, channels: Mapping[str, Channel | None]) -> dict[str, str]:
    """Send on every channel; one failing never blocks the others.

    Returns each channel's outcome: ``sent``, ``off`` (not configured) or ``failed: why``; the
    caller logs and records them.
    """
    outcomes: dict[str, str] = {}
    for name, send in channels.items():
        if send is None:
            outcomes[name] = OFF
            continue
        try:
            send(notification)
            outcomes[name] = SENT
        except Exception as exc:  # one channel failing must not block the others
            outcomes[name] = f"failed: {type(exc).__name__}: {exc}"[:500]
    return outcomes


def request_approval(
    event: ApprovalRequestEvent,
    *,
    store: ApprovalStore,
    signing_key: str,
    base_url: str,
    channels: Mapping[str, Channel | None],
    now: float,
    decide_in_slack: bool = False,
) -> dict[str, Any]:
    """Store the token server-side, then ask on every channel.

    Fails (and the run stops) only when no channel at all delivered the request.
    """
    approval = store.create(
        execution_arn=event.execution_arn,
        model_id=event.model_id,
        task_token=event.task_token,
        evidence=evidence_from(event),
        timeout_seconds=event.timeout_seconds,
        now=now,
    )
    message = request_notification(approval, base_url, signing_key, decide_in_slack)
    outcomes = notify(message, channels)
    store.record_channels(approval.approval_id, outcomes)
    if not any(v == SENT for v in outcomes.values()):
        store.expire(approval.approval_id, "no channel could deliver the approval request", now)
        raise NoChannelDelivered(
            f"no approval channel delivered the request for {approval.model_id}: {outcomes}"
        )
    return {
        "approval_id": approval.approval_id,
        "expires_at": approval.expires_at,
        "channels": outcomes,
    }


def expire_approval(
    event: ApprovalExpiryEvent,
    *,
    store: ApprovalStore,
    channels: Mapping[str, Channel | None],
    now: float,
) -> dict[str, Any]:
    """The run stopped waiting (silence rejects): mark the approval EXPIRED, tell the reviewers.

    Idempotent: an approval that is no longer pending is left as it is and nobody is told twice.
    """
    approval = store.for_execution(event.execution_arn)
    if approval is None:
        return {"approval_id": None, "status": "none", "channels": {}}
    waited = event.timeout_seconds
    expired = store.expire(approval.approval_id, f"no decision within {duration(waited)}", now)
    if expired is None:
        current = store.get(approval.approval_id)
        return {"approval_id": current.approval_id, "status": current.status.value, "channels": {}}
    outcomes = notify(expiry_notification(expired, waited), channels)
    store.record_channels(expired.approval_id, outcomes, attribute="expiry_channels")
    return {
        "approval_id": expired.approval_id,
        "status": expired.status.value,
        "channels": outcomes,
    }
