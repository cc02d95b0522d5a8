"""Approvals a person can trust (DESIGN.md §5).

The task token stays in DynamoDB; links carry an approval id, an expiry and an HMAC-SHA256
signature over both and the link's purpose (key in Secrets Manager; the previous key still
verifies after a rotation). Only a POST decides, once: a conditional write moves PENDING to a
decision, then Step Functions hears about it. Nothing here ever puts the token in a URL, a page,
a message or a log line.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from enum import StrEnum
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

if TYPE_CHECKING:
    from mypy_boto3_stepfunctions import SFNClient


PURGE_AFTER_SECONDS = 90 * 24 * 3600  # decided approvals stay visible in `status` this long
REVIEW = "review"  # a link that opens the page, whose form can decide
PLOT = "plot"  # a link to the plot image only: it cannot be turned into a decision


class Status(StrEnum):
    PENDING = "PENDING"
    APPROVED = "APPROVED"
    REJECTED = "REJECTED"
    EXPIRED = "EXPIRED"


class LinkError(Exception):
    """A request that must not be honoured; ``status`` is the HTTP status to answer with."""

    status = 403

    def __init__(self, title: str, detail: str) -> None:
        self.title = title
        self.detail = detail
        super().__init__(f"{title}: {detail}")


class Tampered(LinkError):
    status = 403


class Expired(LinkError):
    status = 410


class Unknown(LinkError):
    status = 404


class AlreadyDecided(LinkError):
    status = 409


def new_approval_id() -> str:
    return secrets.token_urlsafe(16)


def signature(approval_id: str, expires: int, key: str, purpose: str = REVIEW) -> str:
    message = f"{purpose}:{approval_id}:{expires}".encode()
    return hmac.new(key.encode(), message, hashlib.sha256).hexdigest()


def verify(
    approval_id: str,
    expires: str | int,
    sig: str,
    keys: Iterable[str],
    now: float,
    purpose: str = REVIEW,
) -> int:
    """The link's expiry if the signature is right and the link is still valid.

    The signature is checked before the expiry, so an altered expiry reads as tampering.
    """
    try:
        expiry = int(expires)
    except (TypeError, ValueError):
        raise Tampered("This link has been altered", "its expiry is not a time.") from None
    if not sig or not any(
        hmac.compare_digest(signature(approval_id, expiry, key, purpose), sig)
        for key in keys
        if key
    ):
        raise Tampered(
            "This link has been altered",
            "its signature does not match. Use the link exactly as it was sent, "
            "or ask for a new approval request.",
        )
    if expiry <= now:
        raise Expired(
            "This link has expired",
            "the approval window is over; silence rejected the candidate.",
        )
    return expiry


def signed_query(approval_id: str, expires: int, key: str, purpose: str = REVIEW) -> str:
    return urlencode({"expires": expires, "sig": signature(approval_id, expires, key, purpose)})


def approval_url(base_url: str, approval_id: str, expires: int, key: str) -> str:
    query = signed_query(approval_id, expires, key, REVIEW)
    return f"{base_url.rstrip('/')}/approvals/{approval_id}?{query}"


def plot_url(base_url: str, approval_id: str, expires: int, key: str) -> str:
    query = signed_query(approval_id, expires, key, PLOT)
    return f"{base_url.rstrip('/')}/approvals/{approval_id}/plot.png?{query}"


@dataclass
class Approval:
    """An approval as the page and the CLI see it: everything but the token."""

    approval_id: str
    execution_arn: str
    model_id: str
    status: Status
    created_at: int
    expires_at: int
    evidence: dict[str, Any] = field(default_factory=dict)
    decided_by: str | None = None
    decided_at: int | None = None
    decided_via: str | None = None  # "approval page", "Slack", "operator API (IAM)", "timeout"
    reason: str | None = None
    channels: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_item(cls, item: Mapping[str, Any]) -> Approval:
        return cls(
            approval_id=item["approval_id"],
            execution_arn=item["execution_arn"],
            model_id=item["model_id"],
            status=Status(item["status"]),
            created_at=int(item["created_at"]),
            expires_at=int(item["expires_at"]),
            evidence=json.loads(item.get("evidence", "{}")),
            decided_by=item.get("decided_by"),
            decided_at=int(item["decided_at"]) if item.get("decided_at") is not None else None,
            decided_via=item.get("decided_via"),
            reason=item.get("reason"),
            channels=dict(item.get("channels", {})),
        )


def _plain(value: Any) -> Any:
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    return value


class ApprovalStore:
    """The approvals table (a boto3 DynamoDB Table resource)."""

    def __init__(self, table: Any) -> None:
        self.table = table

    def create(
        self,
        *,
        execution_arn: str,
        model_id: str,
        task_token: str,
        evidence: dict[str, Any],
        timeout_seconds: int,
        now: float,
    ) -> Approval:
        approval = Approval(
            approval_id=new_approval_id(),
            execution_arn=execution_arn,
            model_id=model_id,
            status=Status.PENDING,
            created_at=int(now),
            expires_at=int(now) + int(timeout_seconds),
            evidence=evidence,
        )
        self.table.put_item(
            Item={
                "approval_id": approval.approval_id,
                "execution_arn": execution_arn,
                "model_id": model_id,
                "task_token": task_token,
                "status": approval.status.value,
                "created_at": approval.created_at,
                "expires_at": approval.expires_at,
                "purge_at": approval.expires_at + PURGE_AFTER_SECONDS,
                "evidence": json.dumps(evidence),
                "channels": {},
            },
            ConditionExpression="attribute_not_exists(approval_id)",
        )
        return approval

    def record_channels(
        self, approval_id: str, channels: Mapping[str, str], attribute: str = "channels"
    ) -> None:
        """What each channel did with a message (``sent``, ``off`` or ``failed: why``)."""
        self.table.update_item(
            Key={"approval_id": approval_id},
            UpdateExpression="SET #a = :c",
            ExpressionAttributeNames={"#a": attribute},
            ExpressionAttributeValues={":c": dict(channels)},
        )

    def get(self, approval_id: str) -> Approval:
        item = self.table.get_item(Key={"approval_id": approval_id}, ConsistentRead=True).get(
            "Item"
        )
        if item is None:
            raise Unknown(
                "No such approval",
                "this link does not point to any approval request; it may have been purged.",
            )
        return Approval.from_item({k: _plain(v) for k, v in item.items()})

    def for_execution(self, execution_arn: str) -> Approval | None:
        """The latest approval request of a pipeline run."""
        response = self.table.query(
            IndexName="by-execution",
            KeyConditionExpression="execution_arn = :e",
            ExpressionAttributeValues={":e": execution_arn},
        )
        items = sorted(response.get("Items", []), key=lambda i: int(i["created_at"]))
        return Approval.from_item({k: _plain(v) for k, v in items[-1].items()}) if items else None

    def decide(
        self,
        approval_id: str,
        approved: bool,
        by: str,
        reason: str,
        now: float,
        via: str = "approval page",
    ) -> tuple[Approval, str]:
        """Move PENDING to a decision exactly once; returns the approval and its task token."""
        status = Status.APPROVED if approved else Status.REJECTED
        try:
            response = self.table.update_item(
                Key={"approval_id": approval_id},
                UpdateExpression=(
                    "SET #s = :decision, decided_by = :by, decided_at = :at, reason = :r, "
                    "decided_via = :via"
                ),
                ConditionExpression=(
                    "attribute_exists(approval_id) AND #s = :pending AND expires_at > :at"
                ),
                ExpressionAttributeNames={"#s": "status"},
                ExpressionAttributeValues={
                    ":decision": status.value,
                    ":pending": Status.PENDING.value,
                    ":by": by,
                    ":at": int(now),
                    ":r": reason,
                    ":via": via,
                },
                ReturnValues="ALL_NEW",
            )
        except self.table.meta.client.exceptions.ConditionalCheckFailedException:
            raise self.refusal(self.get(approval_id)) from None  # get: Unknown if never existed
        item = {k: _plain(v) for k, v in response["Attributes"].items()}
        return Approval.from_item(item), str(item["task_token"])

    @staticmethod
    def refusal(current: Approval) -> LinkError:
        """Why an approval that is no longer pending cannot be decided."""
        if current.status is Status.EXPIRED:
            return Expired(
                "This approval has expired",
                f"the approval window closed ({current.reason or 'no decision in time'}) and "
                "the candidate was rejected; production is unchanged.",
            )
        if current.status is not Status.PENDING:
            return AlreadyDecided(
                "Already decided",
                f"{current.decided_by or 'someone'} already {current.status.value.lower()} "
                f"model {current.model_id}; a decision cannot be changed or replayed.",
            )
        return Expired("This approval has expired", "the approval window is over.")

    def expire(self, approval_id: str, reason: str, now: float) -> Approval | None:
        """PENDING to EXPIRED (the pipeline stopped waiting); None if it was no longer pending."""
        try:
            response = self.table.update_item(
                Key={"approval_id": approval_id},
                UpdateExpression=(
                    "SET #s = :expired, decided_at = :at, decided_by = :by, reason = :r, "
                    "decided_via = :by"
                ),
                ConditionExpression="attribute_exists(approval_id) AND #s = :pending",
                ExpressionAttributeNames={"#s": "status"},
                ExpressionAttributeValues={
                    ":expired": Status.EXPIRED.value,
                    ":pending": Status.PENDING.value,
                    ":at": int(now),
                    ":by": "timeout",
                    ":r": reason,
                },
                ReturnValues="ALL_NEW",
            )
        except self.table.meta.client.exceptions.ConditionalCheckFailedException:
            return None
        return Approval.from_item({k: _plain(v) for k, v in response["Attributes"].items()})

    def undo(self, approval: Approval) -> None:
        """Back to PENDING: the decision was written but Step Functions could not be told (the
        person sees an error and may try again; the window still closes on time)."""
        self.table.update_item(
            Key={"approval_id": approval.approval_id},
            UpdateExpression="SET #s = :pending REMOVE decided_by, decided_at, decided_via, reason",
            ConditionExpression="#s = :decided AND decided_at = :at",
            ExpressionAttributeNames={"#s": "status"},
            ExpressionAttributeValues={
                ":pending": Status.PENDING.value,
                ":decided": approval.status.value,
                ":at": approval.decided_at,
            },
        )

    def too_late(self, approval: Approval, now: float) -> None:
        """A decision was written but the execution had stopped waiting: it counts as expired."""
        self.table.update_item(
            Key={"approval_id": approval.approval_id},
            UpdateExpression="SET #s = :expired, reason = :r",
            ConditionExpression="#s = :decided",
            ExpressionAttributeNames={"#s": "status"},
            ExpressionAttributeValues={
                ":expired": Status.EXPIRED.value,
                ":decided": approval.status.value,
                ":r": (
                    f"{approval.decided_by} {approval.status.value.lower()} it after the "
                    "pipeline had stopped waiting"
                ),
            },
        )


class TooLate(Expired):
    """Step Functions no longer waits for this decision."""


def tell_step_functions(sfn: SFNClient, approval: Approval, token: str) -> None:
    """The decision, to the execution that waits for it.

    Raises ``TooLate`` when the task already timed out or the execution ended.
    """
    gone = (
        sfn.exceptions.TaskTimedOut,
        sfn.exceptions.TaskDoesNotExist,
        sfn.exceptions.InvalidToken,
    )
    try:
        if approval.status is Status.APPROVED:
            sfn.send_task_success(
                taskToken=token,
                output=json.dumps(
                    {
                        "approved": True,
                        "approval_id": approval.approval_id,
                        "by": approval.decided_by,
                        "at": approval.decided_at,
                        "reason": approval.reason,
                    }
                ),
            )
        else:
            sfn.send_task_failure(
                taskToken=token,
                error="ApprovalRejected",
                cause=(
                    f"rejected by {approval.decided_by}: {approval.reason or 'no reason given'}"
                )[:32768],
            )
    except gone:
        raise TooLate(
            "This approval has expired",
            "the pipeline stopped waiting before your decision arrived; "
            "the candidate was rejected.",
        ) from None


def now() -> float:
    return time.time()
