"""The approvals table: the token stays server-side, a decision is written exactly once."""

from __future__ import annotations

from typing import Any

import boto3
import pytest
from botocore.stub import Stubber
from pipeline_common.approvals import (
    AlreadyDecided,
    ApprovalStore,
    Expired,
    Status,
    TooLate,
    Unknown,
    tell_step_functions,
)

from tests.approvals.conftest import REGION, TOKEN

NOW = 1_800_000_000.0
EXECUTION = "arn:aws:states:us-east-1:123456789012:execution:Training:fare-abc"


def pending(store: ApprovalStore, timeout: int = 3600) -> str:
    approval = store.create(
        execution_arn=EXECUTION,
        model_id="fare-abc",
        task_token=TOKEN,
        evidence={"validation_rmse": 3.2},
        timeout_seconds=timeout,
        now=NOW,
    )
    return approval.approval_id


def test_the_token_is_stored_with_a_ttl_and_never_handed_out_with_the_approval(
    store: ApprovalStore, table: Any
) -> None:
    approval_id = pending(store)
    item = table.get_item(Key={"approval_id": approval_id})["Item"]

    assert item["task_token"] == TOKEN
    assert int(item["purge_at"]) > int(item["expires_at"]) == int(NOW) + 3600
    assert TOKEN not in repr(store.get(approval_id))
    assert TOKEN not in repr(store.for_execution(EXECUTION))


def test_a_decision_is_written_once_with_who_when_and_how(store: ApprovalStore) -> None:
    approval_id = pending(store)

    approval, token = store.decide(approval_id, True, "Ann Reviewer", "looks good", NOW + 10)

    assert token == TOKEN
    assert (approval.status, approval.decided_by, approval.decided_at) == (
        Status.APPROVED,
        "Ann Reviewer",
        int(NOW) + 10,
    )
    assert approval.decided_via == "approval page"


@pytest.mark.parametrize("second", [True, False])
def test_a_reused_link_cannot_change_or_replay_the_decision(
    store: ApprovalStore, second: bool
) -> None:
    approval_id = pending(store)
    store.decide(approval_id, False, "Ann", "plot looks wrong", NOW + 10)

    with pytest.raises(AlreadyDecided, match="Ann already rejected") as refused:
        store.decide(approval_id, second, "Mallory", "", NOW + 20)

    assert refused.value.status == 409
    current = store.get(approval_id)
    assert (current.status, current.decided_by) == (Status.REJECTED, "Ann")


def test_an_unknown_approval_is_404(store: ApprovalStore) -> None:
    with pytest.raises(Unknown) as refused:
        store.decide("no-such-approval", True, "Ann", "", NOW)
    assert refused.value.status == 404


def test_no_decision_after_the_window(store: ApprovalStore) -> None:
    approval_id = pending(store, timeout=60)
    with pytest.raises(Expired) as refused:
        store.decide(approval_id, True, "Ann", "", NOW + 61)
    assert refused.value.status == 410
    assert store.get(approval_id).status is Status.PENDING


def test_expiry_moves_only_a_pending_approval_and_then_refuses_decisions(
    store: ApprovalStore,
) -> None:
    approval_id = pending(store)

    expired = store.expire(approval_id, "no decision within 1 hour", NOW + 3601)
    assert expired is not None
    assert (expired.status, expired.decided_by) == (Status.EXPIRED, "timeout")
    assert store.expire(approval_id, "again", NOW + 3700) is None  # idempotent
    with pytest.raises(Expired, match="no decision within 1 hour"):
        store.decide(approval_id, True, "Ann", "", NOW + 100)


def test_expiry_leaves_a_decided_approval_alone(store: ApprovalStore) -> None:
    approval_id = pending(store)
    store.decide(approval_id, True, "Ann", "", NOW + 10)

    assert store.expire(approval_id, "timeout", NOW + 3601) is None
    assert store.get(approval_id).status is Status.APPROVED


def test_a_decision_step_functions_no_longer_waits_for_becomes_expired(
    store: ApprovalStore,
) -> None:
    approval_id = pending(store)
    approval, _ = store.decide(approval_id, True, "Ann", "", NOW + 10)

    store.too_late(approval, NOW + 11)

    current = store.get(approval_id)
    assert current.status is Status.EXPIRED
    assert current.reason == "Ann approved it after the pipeline had stopped waiting"


def test_the_latest_request_of_a_run_is_found_by_its_execution(store: ApprovalStore) -> None:
    pending(store)
    later = store.create(
        execution_arn=EXECUTION,
        model_id="fare-abc",
        task_token=TOKEN,
        evidence={},
        timeout_seconds=60,
        now=NOW + 5,
    )
    found = store.for_execution(EXECUTION)
    assert found is not None
    assert found.approval_id == later.approval_id
    assert store.for_execution(EXECUTION + "-other") is None


@pytest.mark.parametrize("error", ["TaskTimedOut", "TaskDoesNotExist", "InvalidToken"])
def test_step_functions_no_longer_waiting_makes_the_decision_too_late(
    store: ApprovalStore, error: str
) -> None:
    approval_id = pending(store)
    approval, token = store.decide(approval_id, True, "Ann", "", NOW + 10)
    sfn = boto3.client("stepfunctions", region_name=REGION)
    with Stubber(sfn) as stub:
        stub.add_client_error("send_task_success", service_error_code=error)
        with pytest.raises(TooLate) as refused:
            tell_step_functions(sfn, approval, token)
    assert refused.value.status == 410


def test_the_waiting_execution_hears_the_decision_and_who_made_it(store: ApprovalStore) -> None:
    rejected, token = store.decide(pending(store), False, "Ann", "plot is off", NOW + 10)
    sfn = boto3.client("stepfunctions", region_name=REGION)
    with Stubber(sfn) as stub:
        stub.add_response(
            "send_task_failure",
            {},
            {
                "taskToken": TOKEN,
                "error": "ApprovalRejected",
                "cause": "rejected by Ann: plot is off",
            },
        )
        tell_step_functions(sfn, rejected, token)
        stub.assert_no_pending_responses()


def test_a_decision_step_functions_could_not_hear_is_undone(store: ApprovalStore) -> None:
    approval_id = pending(store)
    approval, _ = store.decide(approval_id, True, "Ann", "", NOW + 10)

    store.undo(approval)

    current = store.get(approval_id)
    assert (current.status, current.decided_by, current.decided_at) == (Status.PENDING, None, None)
    again, _ = store.decide(approval_id, False, "Bob", "", NOW + 20)  # the link works again
    assert again.decided_by == "Bob"
