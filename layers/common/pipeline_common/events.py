"""What the training state machine sends the functions it invokes: one model per Task Payload in
``statemachines/training.asl.json``, field for field.

Handlers parse these with Powertools' parser, so a payload that is not what the ASL sends fails
the invocation with a ``ValidationError`` the Task's Catch records, not with a ``KeyError`` from
deep inside. Errors never echo their input: the approval request carries the task token, and an
error's message lands in the execution history and the failure notification.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Discriminator, Tag, TypeAdapter


class TaskPayload(BaseModel):
    model_config = ConfigDict(frozen=True, hide_input_in_errors=True)


class EvaluateModelEvent(TaskPayload):
    """The ``Evaluate`` Task."""

    model_id: str
    training_job: str


class DevEndpointTestEvent(TaskPayload):
    """The ``TestDevEndpoint`` Task."""

    model_id: str
    endpoint_name: str


class SourceObject(TaskPayload):
    """The trip file the run trains on, as start_pipeline puts it in the execution input."""

    bucket: str
    key: str
    version_id: str | None


class GateVerdict(TaskPayload):
    """What the approval shows of evaluate_model's answer (``gate.Evaluation``; the rest of it is
    passed along and ignored)."""

    reason: str
    validation_rmse: float
    champion_rmse: float | None
    champion_model_id: str | None
    # The comparison on the same rows (gate.py); absent from runs evaluated before it existed.
    summary: str = ""
    rows_compared: int | None = None
    champion_rmse_same_rows: float | None = None


class DevTestResult(TaskPayload):
    """What the approval shows of test_dev_endpoint's answer (``evaluation.DevTestReport``)."""

    rows: int
    rmse: float
    plot_key: str


class ApprovalRequestEvent(TaskPayload):
    """The ``RequestApproval`` Task: ``evaluation`` and ``test`` are what evaluate_model and
    test_dev_endpoint answered, passed on by the state machine."""

    task_token: str
    execution_arn: str
    model_id: str
    source: SourceObject
    evaluation: GateVerdict
    test: DevTestResult
    timeout_seconds: int


class ApprovalExpiryEvent(TaskPayload):
    """The ``ExpireApproval`` Task, on the timeout path."""

    action: Literal["expire"]
    execution_arn: str
    model_id: str
    timeout_seconds: int


def _approval_task(payload: Any) -> str:
    """Which Task sent it: only ExpireApproval's payload says ``"action": "expire"``."""
    action = (
        payload.get("action") if isinstance(payload, dict) else getattr(payload, "action", None)
    )
    return "expire" if action == "expire" else "request"


# request_approval's two payloads, told apart as the handler always did: by "action".
APPROVAL_TASK: TypeAdapter[ApprovalRequestEvent | ApprovalExpiryEvent] = TypeAdapter(
    Annotated[
        Annotated[ApprovalRequestEvent, Tag("request")]
        | Annotated[ApprovalExpiryEvent, Tag("expire")],
        Discriminator(_approval_task),
    ],
    config=ConfigDict(hide_input_in_errors=True, title="request_approval payload"),
)
