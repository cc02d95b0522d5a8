"""Asking a person: store the token, send signed links on every configured channel."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pipeline_common.approvals import Approval, ApprovalStore, approval_url, plot_url

if TYPE_CHECKING:
    from mypy_boto3_sns import SNSClient


@dataclass(frozen=True)
class Message:
    """What every channel says, in its own format."""

    subject: str
    text: str
    approval_url: str
    plot_url: str
    facts: tuple[tuple[str, str], ...]


Channel = Callable[[Message], None]


def evidence_from(event: Mapping[str, Any]) -> dict[str, Any]:
    evaluation = event.get("evaluation", {})
    test = event.get("test", {})
    source = event.get("source", {})
    return {
        "validation_rmse": evaluation.get("validation_rmse"),
        "champion_rmse": evaluation.get("champion_rmse"),
        "champion_model_id": evaluation.get("champion_model_id"),
        "gate_reason": evaluation.get("reason"),
        "test_rmse": test.get("rmse"),
        "test_rows": test.get("rows"),
        "plot_key": test.get("plot_key"),
        "data": f"s3://{source.get('bucket')}/{source.get('key')}" if source else None,
        "data_version": source.get("version_id"),
    }


def _number(value: Any) -> str:
    return f"{value:.3f}" if isinstance(value, int | float) else "-"


def build_message(approval: Approval, base_url: str, key: str) -> Message:
    e = approval.evidence
    url = approval_url(base_url, approval.approval_id, approval.expires_at, key)
    facts = (
        ("Model", approval.model_id),
        ("Validation RMSE", _number(e.get("validation_rmse"))),
        (
            "Production RMSE",
            _number(e.get("champion_rmse")) if e.get("champion_rmse") is not None else "none yet",
        ),
        ("Test-set RMSE", _number(e.get("test_rmse"))),
        ("Data", f"{e.get('data')} (version {e.get('data_version') or '-'})"),
    )
    text = "\n".join(f"{k}: {v}" for k, v in facts)
    return Message(
        subject=f"Approve fare model {approval.model_id} for production?",
        text=f"{text}\n\nReview and decide: {url}\n",
        approval_url=url,
        plot_url=plot_url(base_url, approval.approval_id, approval.expires_at, key),
        facts=facts,
    )


def sns_channel(sns: SNSClient, topic_arn: str) -> Channel:
    def send(message: Message) -> None:
        sns.publish(TopicArn=topic_arn, Subject=message.subject[:100], Message=message.text)

    return send


def request_approval(
    event: Mapping[str, Any],
    *,
    store: ApprovalStore,
    signing_key: str,
    base_url: str,
    channels: Mapping[str, Channel],
    now: float,
) -> dict[str, Any]:
    """Store the token server-side, then notify; a failing channel never blocks the others."""
    approval = store.create(
        execution_arn=event["execution_arn"],
        model_id=event["model_id"],
        task_token=event["task_token"],
        evidence=evidence_from(event),
        timeout_seconds=int(event.get("timeout_seconds", 86400)),
        now=now,
    )
    message = build_message(approval, base_url, signing_key)
    outcomes: dict[str, str] = {}
    for name, send in channels.items():
        try:
            send(message)
            outcomes[name] = "sent"
        except Exception as exc:  # one channel failing must not block the others
            outcomes[name] = f"failed: {type(exc).__name__}: {exc}"
    store.record_channels(approval.approval_id, outcomes)
    if channels and not any(v == "sent" for v in outcomes.values()):
        raise RuntimeError(f"no approval channel delivered: {outcomes}")
    return {
        "approval_id": approval.approval_id,
        "expires_at": approval.expires_at,
        "channels": outcomes,
    }
