"""Asking people: every configured channel, one failing never blocks the others, and what each
channel says (the same evidence; signed links; never the token)."""

from __future__ import annotations

import html
import json
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from pipeline_common.approval_request import (
    NoChannelDelivered,
    expire_approval,
    request_approval,
)
from pipeline_common.approvals import ApprovalStore, Status
from pipeline_common.events import ApprovalExpiryEvent, ApprovalRequestEvent, GateVerdict
from pipeline_common.notifications import Notification, as_html, as_slack, as_text
from pipeline_common.pages import review_page

from tests.approvals.conftest import TOKEN

REPO = Path(__file__).resolve().parents[2]
KEY = "k" * 64
NOW = 1_800_000_000.0
BASE = "https://abc.execute-api.us-east-1.amazonaws.com/v1"


def event() -> ApprovalRequestEvent:
    sample: dict[str, Any] = json.loads((REPO / "events" / "request_approval.json").read_text())
    sample["task_token"] = TOKEN
    return ApprovalRequestEvent.model_validate(sample)


class Recorder:
    def __init__(self, fail: Exception | None = None) -> None:
        self.sent: list[Notification] = []
        self.fail = fail

    def __call__(self, notification: Notification) -> None:
        if self.fail is not None:
            raise self.fail
        self.sent.append(notification)


def ask(store: ApprovalStore, **channels: Recorder | None) -> dict[str, Any]:
    return request_approval(
        event(), store=store, signing_key=KEY, base_url=BASE, channels=channels, now=NOW
    )


def test_every_channel_is_asked_and_the_outcomes_are_recorded(store: ApprovalStore) -> None:
    slack, email, sns = Recorder(), Recorder(), Recorder()

    result = ask(store, slack=slack, email=email, sns=sns)

    assert result["channels"] == {"slack": "sent", "email": "sent", "sns": "sent"}
    assert store.get(result["approval_id"]).channels == result["channels"]
    assert len(slack.sent) == len(email.sent) == len(sns.sent) == 1


def test_a_failing_channel_is_reported_and_does_not_block_the_others(
    store: ApprovalStore,
) -> None:
    email, sns = Recorder(), Recorder()

    result = ask(
        store,
        slack=Recorder(RuntimeError("Slack answered HTTP 404: no_service")),
        email=email,
        sns=sns,
    )

    assert (
        result["channels"]["slack"] == "failed: RuntimeError: Slack answered HTTP 404: no_service"
    )
    assert (result["channels"]["email"], result["channels"]["sns"]) == ("sent", "sent")
    assert len(email.sent) == len(sns.sent) == 1
    assert store.get(result["approval_id"]).status is Status.PENDING


def test_an_unconfigured_channel_is_recorded_as_off(store: ApprovalStore) -> None:
    result = ask(store, slack=None, email=None, sns=Recorder())
    assert result["channels"] == {"slack": "off", "email": "off", "sns": "sent"}


def test_when_no_channel_delivers_the_request_fails_and_the_approval_is_closed(
    store: ApprovalStore, table: Any
) -> None:
    with pytest.raises(NoChannelDelivered, match="no approval channel delivered"):
        ask(store, slack=None, email=Recorder(ValueError("MessageRejected")), sns=None)

    (item,) = table.scan()["Items"]
    assert item["status"] == "EXPIRED"
    assert item["channels"]["email"] == "failed: ValueError: MessageRejected"


def test_every_channel_shows_the_same_evidence_and_signed_links(store: ApprovalStore) -> None:
    slack = Recorder()
    ask(store, slack=slack)
    (notification,) = slack.sent
    text, html, message = (
        as_text(notification),
        as_html(notification),
        json.dumps(as_slack(notification)),
    )

    for shown in (
        "fare-9b5c86e7fd15",
        "4.812",
        "4.907",
        "4.871",
        "Xq3mT1n8vO2hbZk5cL0pR9sY7wA4eJ6u",
    ):
        assert shown in text
        assert shown in html
        assert shown in message
    assert notification.approval_url
    assert notification.plot_url
    for rendered in (text, html, message):
        assert (
            notification.plot_url.replace("&", "&amp;") in rendered
            or notification.plot_url in rendered
        )
    query = urlsplit(notification.approval_url).query
    assert sorted(p.split("=")[0] for p in query.split("&")) == ["expires", "sig"]
    for rendered in (text, html, message, notification.approval_url, notification.plot_url):
        assert TOKEN not in rendered


def test_slack_buttons_are_links_to_the_page_that_decide_nothing(store: ApprovalStore) -> None:
    slack = Recorder()
    ask(store, slack=slack)
    (notification,) = slack.sent

    blocks = as_slack(notification)["blocks"]
    buttons = [e for b in blocks if b["type"] == "actions" for e in b["elements"]]

    assert [b["text"]["text"] for b in buttons] == ["Approve…", "Reject…"]
    assert all(b["url"] == notification.approval_url for b in buttons)
    assert all(b["value"] == f"review:{notification.approval_id}" for b in buttons)


def test_with_interactivity_on_slack_also_gets_buttons_that_carry_no_secret(
    store: ApprovalStore,
) -> None:
    slack = Recorder()
    request_approval(
        event(),
        store=store,
        signing_key=KEY,
        base_url=BASE,
        channels={"slack": slack},
        now=NOW,
        decide_in_slack=True,
    )
    (notification,) = slack.sent
    blocks = as_slack(notification)["blocks"]
    deciding = [
        e for b in blocks if b["type"] == "actions" for e in b["elements"] if "url" not in e
    ]

    assert [b["value"] for b in deciding] == [
        f"approve:{notification.approval_id}",
        f"reject:{notification.approval_id}",
    ]
    assert all("confirm" in b for b in deciding)


def test_silence_expires_the_approval_and_tells_every_channel_once(store: ApprovalStore) -> None:
    first = ask(store, sns=Recorder())
    slack, sns = Recorder(), Recorder(RuntimeError("topic gone"))
    timed_out = ApprovalExpiryEvent(
        action="expire",
        execution_arn=event().execution_arn,
        model_id=event().model_id,
        timeout_seconds=86400,
    )

    result = expire_approval(
        timed_out, store=store, channels={"slack": slack, "sns": sns}, now=NOW + 86401
    )
    again = expire_approval(timed_out, store=store, channels={"slack": slack}, now=NOW + 86402)

    assert result == {
        "approval_id": first["approval_id"],
        "status": "EXPIRED",
        "channels": {"slack": "sent", "sns": "failed: RuntimeError: topic gone"},
    }
    assert again["status"] == "EXPIRED"
    assert again["channels"] == {}
    (notice,) = slack.sent
    assert "within 1 day" in notice.headline
    assert notice.approval_url is None
    approval = store.get(first["approval_id"])
    assert (approval.status, approval.decided_by) == (Status.EXPIRED, "timeout")


def test_expiry_of_a_run_that_never_asked_is_a_no_op(store: ApprovalStore) -> None:
    result = expire_approval(
        ApprovalExpiryEvent(
            action="expire",
            execution_arn="arn:aws:states:::execution:x:y",
            model_id="fare-0123456789ab",
            timeout_seconds=86400,
        ),
        store=store,
        channels={"slack": Recorder()},
        now=NOW,
    )
    assert result["status"] == "none"


def test_every_channel_and_the_page_show_the_gates_rule_and_numbers(store: ApprovalStore) -> None:
    """The gate's summary (the candidate and production on the same rows) and production's RMSE
    on those rows, beside the one it recorded on its own month."""
    slack = Recorder()
    result = ask(store, slack=slack)
    (notification,) = slack.sent
    summary = event().evaluation.summary
    assert summary.startswith("On the same 18,012 validation rows")

    assert dict(notification.facts)["Gate"] == summary
    assert dict(notification.facts)["Production model's RMSE"] == (
        "4.907 on the same rows (fare-2e71d0c94a5b; 4.733 on its own month)"
    )
    assert summary in as_text(notification)
    assert html.escape(summary) in as_html(notification)
    assert json.dumps(summary)[1:-1] in json.dumps(as_slack(notification))
    approval = store.get(result["approval_id"])
    page = review_page(approval, "/v1/approvals/x", approval.expires_at, "sig", None)
    assert html.escape(summary) in page
    assert "4.907 on the same rows" in page


def test_an_approval_stored_before_the_comparison_still_shows_productions_rmse(
    store: ApprovalStore,
) -> None:
    old = event().model_copy(
        update={
            "evaluation": GateVerdict(
                reason="validation RMSE 4.812 is under the ceiling 8.000 and within 5% of "
                "production's 4.907",
                validation_rmse=4.812,
                champion_rmse=4.907,
                champion_model_id="fare-2e71d0c94a5b",
            )
        }
    )
    slack = Recorder()
    result = request_approval(
        old, store=store, signing_key=KEY, base_url=BASE, channels={"slack": slack}, now=NOW
    )

    facts = dict(slack.sent[0].facts)
    assert facts["Production model's RMSE"] == "4.907 (fare-2e71d0c94a5b)"
    assert "Gate" not in facts
    approval = store.get(result["approval_id"])
    assert "within 5% of production" in html.unescape(
        review_page(approval, "/v1/approvals/x", approval.expires_at, "sig", None)
    )
