"""Silence rejects: when nobody answers in time the run stops, the approval is EXPIRED (its links
answer 410), every channel tells the reviewers, the dev endpoint is deleted, and the model in
production serves on.

One local cloud whose approval window is ten scaled minutes (the approval-times-out scenario's):
month 1 goes to production, then the demo's scenario leaves month 2's approval unanswered.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from urllib.parse import urlencode

import pytest
from pipeline_common.slack import button_value, request_signature

from safe_deploy import ops
from safe_deploy.demo import Demo
from safe_deploy.localcloud.channels import LOCAL_APPROVER, LOCAL_TEAM
from safe_deploy.scenarios import SCENARIO_PARAMETERS
from tests.approvals.local import LocalPipeline, link_parts
from tests.e2e.conftest import running_demo, sagemaker_resources, subject_arrives

pytestmark = pytest.mark.timeout(600)


@dataclass(frozen=True)
class TimedOut:
    """Month 2's run, stopped by silence, with month 1 in production."""

    blue: str  # month 1's endpoint
    execution: str  # month 2's run
    model_id: str
    link: str  # its approval page, as the Slack message's Approve button opens it
    status: str
    error: str
    cause: str


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Demo]:
    with running_demo(
        tmp_path_factory.mktemp("timeout"), SCENARIO_PARAMETERS["approval-times-out"]
    ) as demo:
        yield demo


@pytest.fixture(scope="module")
def pipeline(demo: Demo) -> LocalPipeline:
    """The same local cloud, as the approval tests drive it."""
    return LocalPipeline(demo.cloud, demo.target, demo.workdir)


@pytest.fixture(scope="module")
def timed_out(demo: Demo, pipeline: LocalPipeline) -> TimedOut:
    blue = f"{demo.first_model().model}-prod"
    run = demo.failing_month("approval-times-out", blue).run
    return TimedOut(
        blue,
        run.arn,
        run.name,
        pipeline.link_for(run.name),
        run.status,
        run.error or "",
        run.cause or "",
    )


def test_silence_rejects_the_candidate(demo: Demo, timed_out: TimedOut) -> None:
    assert (timed_out.status, timed_out.error) == ("FAILED", "ApprovalTimedOut")
    assert "no decision within 600 seconds" in timed_out.cause
    assert ops.release(demo.target).production_endpoint == timed_out.blue


def test_the_approval_is_marked_expired(pipeline: LocalPipeline, timed_out: TimedOut) -> None:
    approval = ops.approval_of(pipeline.target, timed_out.execution)
    assert approval is not None
    assert approval["status"] == "EXPIRED"
    assert approval["decided_by"] == "timeout"
    assert approval["reason"] == "no decision within 10 minutes"
    assert approval["expiry_channels"] == {"slack": "sent", "email": "sent", "sns": "sent"}


def test_the_reviewers_are_told_on_every_channel(
    pipeline: LocalPipeline, timed_out: TimedOut
) -> None:
    subject = f"Approval expired: fare model {timed_out.model_id} was not promoted"
    slack = [m["message"]["text"] for m in pipeline.outbox("slack")]
    email = [m for m in pipeline.outbox("email") if m["subject"] == subject]
    sns = [m for m in pipeline.outbox("sns") if m["subject"] == subject]

    assert any(text.startswith(subject) for text in slack)
    assert len(email) == len(sns) == 1
    for said in (email[0]["text"], email[0]["html"], sns[0]["message"]):
        assert "within 10 minutes" in said
        assert "production is unchanged" in said
    assert "/approvals/" not in sns[0]["message"]  # no link that no longer works
    assert subject_arrives(pipeline.cloud, timed_out.model_id, "stopped")


def test_the_dev_endpoint_is_deleted(
    demo: Demo, pipeline: LocalPipeline, timed_out: TimedOut
) -> None:
    assert sagemaker_resources(demo)["endpoints"] == [timed_out.blue]
    sagemaker = pipeline.target.client("sagemaker")
    dev = f"{timed_out.model_id}-dev"
    assert dev not in [e["EndpointName"] for e in sagemaker.list_endpoints()["Endpoints"]]
    configs = sagemaker.list_endpoint_configs()["EndpointConfigs"]
    assert dev not in [c["EndpointConfigName"] for c in configs]
    assert dev not in [m["ModelName"] for m in sagemaker.list_models()["Models"]]


def test_the_links_answer_410_once_the_run_stopped_waiting(
    pipeline: LocalPipeline, timed_out: TimedOut
) -> None:
    base, approval_id, query = link_parts(timed_out.link)

    shown = pipeline.http("GET", timed_out.link)
    posted = pipeline.http("POST", base, data={**query, "decision": "approve", "name": "Late"})
    raw = urlencode(
        {
            "payload": json.dumps(
                {
                    "type": "block_actions",
                    "user": {"id": LOCAL_APPROVER, "username": "late"},
                    "team": {"id": LOCAL_TEAM},
                    "actions": [{"value": button_value("approve", approval_id)}],
                }
            )
        }
    ).encode()
    timestamp = str(int(time.time()))
    slack = pipeline.http(
        "POST",
        f"{pipeline.target.api_url}/slack/interactions",
        data=raw,
        headers={
            "Content-Type": "application/x-www-form-urlencoded",
            "X-Slack-Request-Timestamp": timestamp,
            "X-Slack-Signature": request_signature(
                pipeline.cloud.channels.signing_secret, timestamp, raw
            ),
        },
    )

    for answer in (shown, posted):
        assert answer.status_code == 410
        assert "This approval has expired" in answer.text
        assert "no decision within 10 minutes" in answer.text
    assert slack.status_code == 410
    approval = ops.approval_of(pipeline.target, timed_out.execution)
    assert approval is not None
    assert (approval["status"], approval["decided_by"]) == ("EXPIRED", "timeout")
