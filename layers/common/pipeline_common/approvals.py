"""Approvals a person can trust (DESIGN.md §5).

The task token stays in DynamoDB; links carry an approval id, an expiry and an HMAC-SHA256
signature over both and the link's purpose (key in Secrets Manager; the previous key still
verifies after a rotation, until it is revoked). Only a POST decides, once: a conditional write
moves PENDING to a decision, then Step Functions hears about it. Nothing here ever puts the token
in a URL, a page, a message or a log line.

What a request may carry is checked here too, before anything is decided: bodies (base64 from
API Gateway, bounded in size, UTF-8), forms, JSON objects, and the names and reasons a person
types (no control or bidi characters, which could hide or reorder what an approver reads).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import re
import secrets
import time
import unicodedata
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from enum import StrEnum
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlencode

if TYPE_CHECKING:
    from mypy_boto3_stepfunctions import SFNClient

    from pipeline_common.secrets import SecretReader


PURGE_AFTER_SECONDS = 90 * 24 * 3600  # decided approvals stay visible in `status` this long
REVIEW = "review"  # a link that opens the page, whose form can decide
PLOT = "plot"  # a link to the plot image only: it cannot be turned into a decision
APPROVAL_ID = re.compile(r"[A-Za-z0-9_-]{1,64}", re.ASCII)  # new_approval_id(): 22 characters
_EXPIRY = re.compile(r"[0-9]{1,12}", re.ASCII)
_SIGNATURE = re.compile(r"[0-9a-f]{64}", re.ASCII)
# A state machine's or an execution's name, as Step Functions allows it.
_SFN_NAME = r"""[^\s<>{}\[\]?*"#%\\^|~`$&,;:/\x00-\x1f\x7f-\x9f\ud800-\udfff]{1,80}"""
EXECUTION_ARN = re.compile(
    rf"arn:aws[a-z-]*:states:[a-z0-9-]+:[0-9]{{12}}:execution:{_SFN_NAME}:{_SFN_NAME}"
)
NAME_LIMIT = 100  # the page's input says so too
REASON_LIMIT = 500
PAGE_BODY_LIMIT = 16 * 1024  # the page's form: a name, a reason, the link's expiry and signature
OPERATOR_BODY_LIMIT = 16 * 1024


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


class Invalid(LinkError):
    """A request that cannot be read or is incomplete; nothing was decided."""

    status = 400


class TooLarge(LinkError):
    status = 413


def new_approval_id() -> str:
    return secrets.token_urlsafe(16)


def signature(approval_id: str, expires: int, key: str, purpose: str = REVIEW) -> str:
    message = f"{purpose}:{approval_id}:{expires}".encode()
    return hmac.new(key.encode(), message, hashlib.sha256).hexdigest()


def _tampered() -> Tampered:
    return Tampered(
        "This link has been altered",
        "its signature does not match. Use the link exactly as it was sent, "
        "or ask for a new approval request.",
    )


def _link_expiry(approval_id: str, expires: str | int | None, sig: str | None) -> int:
    """The expiry a link claims, once the link's parts have the shape a signed link has."""
    if not APPROVAL_ID.fullmatch(approval_id):
        raise Tampered("This link has been altered", "its approval id is not one we issue.")
    if not _EXPIRY.fullmatch(str(expires or "")):
        raise Tampered("This link has been altered", "its expiry is not a time.")
    if not _SIGNATURE.fullmatch(sig or ""):
        raise _tampered()
    return int(str(expires))


def _signed_with(approval_id: str, expiry: int, sig: str, purpose: str, key: str) -> bool:
    return hmac.compare_digest(signature(approval_id, expiry, key, purpose).encode(), sig.encode())


def _unexpired(expiry: int, now: float) -> int:
    if expiry <= now:
        raise Expired(
            "This link has expired",
            "the approval window is over; silence rejected the candidate.",
        )
    return expiry


def verify(
    approval_id: str,
    expires: str | int | None,
    sig: str | None,
    keys: Iterable[str],
    now: float,
    purpose: str = REVIEW,
) -> int:
    """The link's expiry if the signature is right and the link is still valid.

    The signature is checked before the expiry, so an altered expiry reads as tampering.
    """
    expiry = _link_expiry(approval_id, expires, sig)
    if not any(_signed_with(approval_id, expiry, str(sig), purpose, key) for key in keys if key):
        raise _tampered()
    return _unexpired(expiry, now)


def check_link(
    keys: SecretReader,
    secret_arn: str,
    approval_id: str,
    expires: str | None,
    sig: str | None,
    now: float,
    purpose: str = REVIEW,
) -> int:
    """``verify`` with the keys the secret holds now: a key revoked since the reader cached it no
    longer verifies (see ``SecretReader.verified``)."""
    expiry = _link_expiry(approval_id, expires, sig)
    if not keys.verified(
        secret_arn, lambda key: _signed_with(approval_id, expiry, str(sig), purpose, key)
    ):
        raise _tampered()
    return _unexpired(expiry, now)


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


def decide(
    store: ApprovalStore,
    sfn: SFNClient,
    approval_id: str,
    *,
    approved: bool,
    by: str,
    via: str,
    reason: str = "",
) -> Approval:
    """The single-use write, then Step Functions; a decision it no longer waits for expires, and
    one it did not hear is undone (the person sees an error and may try again)."""
    approval, token = store.decide(
        approval_id, approved, by[:200], reason[:REASON_LIMIT], now(), via
    )
    try:
        tell_step_functions(sfn, approval, token)
    except TooLate:
        store.too_late(approval, now())
        raise
    except Exception:  # Step Functions did not hear it: the decision must not stand unheard
        store.undo(approval)
        raise
    return approval


# ---------------------------------------------------------------- what a request may carry
# Control and format characters (bidi overrides and isolates, zero-width marks, NUL, escape
# sequences), lone surrogates and line separators can hide or reorder what an approver, a log
# or Slack shows. Names are one line; in a reason, line breaks and tabs fold into spaces.
_UNSAFE_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Zl", "Zp"})
_REASON_BREAKS = frozenset("\t\n\r\v\f\x85\u2028\u2029")


def _first_unsafe(text: str, allowed: frozenset[str] = frozenset()) -> str | None:
    return next(
        (c for c in text if c not in allowed and unicodedata.category(c) in _UNSAFE_CATEGORIES),
        None,
    )


def _refuse_unsafe(what: str, text: str, allowed: frozenset[str] = frozenset()) -> None:
    found = _first_unsafe(text, allowed)
    if found is not None:
        raise Invalid(
            f"Unusable {what}",
            f"the {what} contains U+{ord(found):04X}, an invisible or control character that "
            f"could hide or reorder what others read; type it plainly. Nothing was decided.",
        )


def clean_name(name: str) -> str:
    """A person's name as typed: one line, printable, spaces collapsed."""
    _refuse_unsafe("name", name)
    cleaned = " ".join(name.split())
    if not cleaned:
        raise Invalid(
            "Incomplete decision",
            "Choose Approve or Reject and type your name; nothing was decided.",
        )
    if len(cleaned) > NAME_LIMIT:
        raise Invalid(
            "Name too long",
            f"a name has at most {NAME_LIMIT} characters; nothing was decided.",
        )
    return cleaned


def clean_reason(reason: str) -> str:
    """A reason as typed: printable; line breaks and tabs folded into single spaces."""
    _refuse_unsafe("reason", reason, _REASON_BREAKS)
    cleaned = " ".join(reason.split())
    if len(cleaned) > REASON_LIMIT:
        raise Invalid(
            "Reason too long",
            f"a reason has at most {REASON_LIMIT} characters; nothing was decided.",
        )
    return cleaned


def printable(text: str, limit: int = NAME_LIMIT) -> str:
    """A name someone else chose (a Slack display name): unsafe characters dropped, not refused."""
    kept = "".join(c for c in text if unicodedata.category(c) not in _UNSAFE_CATEGORIES)
    return " ".join(kept.split())[:limit]


def request_body(body: str | None, base64_encoded: bool, limit: int) -> bytes:
    """The raw bytes of a proxy event's body (API Gateway base64-encodes every body whose type is
    one of the API's binary media types: ``*/*`` makes that every body with a Content-Type)."""
    if not body:
        return b""
    if len(body) > (4 * limit // 3 + 4 if base64_encoded else limit):
        raise _too_large(limit)
    if base64_encoded:
        try:
            raw = base64.b64decode(body, validate=True)
        except (binascii.Error, ValueError):
            raise Invalid("Unreadable request", "the body is not valid base64.") from None
    else:
        raw = body.encode("utf-8", errors="replace")
    if len(raw) > limit:
        raise _too_large(limit)
    return raw


def _too_large(limit: int) -> TooLarge:
    return TooLarge("Request too large", f"this route takes at most {limit:,} bytes.")


def form_fields(raw: bytes, max_fields: int = 20) -> dict[str, str]:
    """An ``application/x-www-form-urlencoded`` body, UTF-8 throughout; the first of repeated
    fields counts."""
    try:
        pairs = parse_qsl(
            raw.decode("utf-8"),
            keep_blank_values=True,
            max_num_fields=max_fields,
            errors="strict",
        )
    except ValueError:  # UnicodeDecodeError too
        raise Invalid(
            "Unreadable form", "send the page's form as UTF-8 form fields; nothing was decided."
        ) from None
    fields: dict[str, str] = {}
    for key, value in pairs:
        fields.setdefault(key, value)
    return fields


@dataclass(frozen=True)
class Decision:
    approved: bool
    by: str
    reason: str


def page_decision(form: Mapping[str, str]) -> Decision:
    """The page's form, once its link is known to be genuine."""
    decision = form.get("decision")
    if decision not in ("approve", "reject"):
        raise Invalid(
            "Incomplete decision",
            "Choose Approve or Reject and type your name; nothing was decided.",
        )
    return Decision(
        decision == "approve",
        clean_name(form.get("name", "")),
        clean_reason(form.get("reason", "")),
    )


@dataclass(frozen=True)
class OperatorDecision:
    execution_arn: str
    approved: bool
    reason: str


def operator_decision(raw: bytes) -> OperatorDecision:
    """``{"execution_arn": ..., "decision": "approve" | "reject", "reason": ...}``."""
    try:
        body = json.loads(raw.decode("utf-8"))
    except (ValueError, RecursionError):  # RecursionError: nested deeper than the parser goes
        body = None
    if not isinstance(body, dict):
        raise Invalid("Unreadable decision", "send a JSON object.")
    execution_arn = body.get("execution_arn")
    decision = body.get("decision")
    reason = body.get("reason")
    if (
        not isinstance(execution_arn, str)
        or not EXECUTION_ARN.fullmatch(execution_arn)
        or not isinstance(decision, str)
        or decision not in ("approve", "reject")
    ):
        raise Invalid(
            "Incomplete decision",
            "send execution_arn (a Step Functions execution ARN) and decision (approve or reject).",
        )
    if reason is not None and not isinstance(reason, str):
        raise Invalid("Unusable reason", "reason is text.")
    return OperatorDecision(execution_arn, decision == "approve", clean_reason(reason or ""))


def now() -> float:
    return time.time()


def champion_rmse_text(evidence: Mapping[str, Any], number: Callable[[Any], str]) -> str:
    """Production's RMSE as the gate compared it: on the candidate's validation rows, with the
    RMSE it recorded on its own month beside it (approvals stored before the comparison existed
    have only that one)."""
    model = evidence.get("champion_model_id") or "production"
    recorded = evidence.get("champion_rmse")
    same_rows = evidence.get("champion_rmse_same_rows")
    if same_rows is not None:
        own = f"; {number(recorded)} on its own month" if recorded is not None else ""
        return f"{number(same_rows)} on the same rows ({model}{own})"
    if recorded is not None:
        return f"{number(recorded)} ({model})"
    return ""
