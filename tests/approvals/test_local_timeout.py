"""Silence rejects: when nobody answers in time the run stops, the approval is EXPIRED (its links
answer 410), every channel tells the reviewers, and the dev endpoint is deleted."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from urllib.parse import urlencode

import pytest
from pipeline_common.slack import button_value, request_signature

from safe_deploy import ops
from safe_deploy.localcloud.channels import LOCAL_APPROVER, LOCAL_TEAM
from tests.approvals.local import LocalPipeline, link_parts

pytestmark = pytest.mark.timeout(600)

WINDOW = "600"  # seconds, as the template's parameter; 12 s at the local cloud's time scale


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalPipeline]:
    local = LocalPipeline.start(
        tmp_path_factory.mktemp("timeout"), {"ApprovalTimeoutSeconds": WINDOW}
    )
    try:
        yield local
    finally:
        local.stop()


@pytest.fixture(scope="module")
def timed_out(pipeline: LocalPipeline) -> dict[str, str]:
    execution = pipeline.upload("silent-month", seed=41)
    item = pipeline.wait_for_approval(execution)
    model_id = str(item["model_id"])
    link = pipeline.link_for(model_id)
    ended = pipeline.wait_for_end(execution)
    return {
        "execution": execution,
        "model_id": model_id,
        "link": link,
        "status": ended["status"],
        "error": ended.get("error", ""),
        "cause": ended.get("cause", ""),
    }


def test_silence_rejects_the_candidate(timed_out: dict[str, str]) -> None:
    assert (timed_out["status"], timed_out["error"]) == ("FAILED", "ApprovalTimedOut")
    assert "no decision within 600 seconds" in timed_out["cause"]


def test_the_approval_is_marked_expired(pipeline: LocalPipeline, timed_out: dict[str, str]) -> None:
    approval = ops.approval_of(pipeline.target, timed_out["execution"])
    assert approval is not None
    assert approval["status"] == "EXPIRED"
    assert approval["decided_by"] == "timeout"
    assert approval["reason"] == "no decision within 10 minutes"
    assert approval["expiry_channels"] == {"slack": "sent", "email": "sent", "sns": "sent"}


def test_the_reviewers_are_told_on_every_channel(
    pipeline: LocalPipeline, timed_out: dict[str, str]
) -> None:
    subject = f"Approval expired: fare model {timed_out['model_id']} was not promoted"
    slack = [m["message"]["text"] for m in pipeline.outbox("slack")]
    email = [m for m in pipeline.outbox("email") if m["subject"] == subject]
    sns = [m for m in pipeline.outbox("sns") if m["subject"] == subject]

    assert any(text.startswith(subject) for text in slack)
    assert len(email) == len(sns) == 1
    for said in (email[0]["text"], email[0]["html"], sns[0]["message"]):
        assert "within 10 minutes" in said
        assert "production is unchanged" in said
    assert "/approvals/" not in sns[0]["message"]  # no link that no longer works


def test_the_dev_endpoint_is_deleted(pipeline: LocalPipeline, timed_out: dict[str, str]) -> None:
    sagemaker = pipeline.target.client("sagemaker")
    dev = f"{timed_out['model_id']}-dev"
    assert dev not in [e["EndpointName"] for e in sagemaker.list_endpoints()["Endpoints"]]
    configs = sagemaker.list_endpoint_configs()["EndpointConfigs"]
    assert dev not in [c["EndpointConfigName"] for c in configs]
    assert dev not in [m["ModelName"] for m in sagemaker.list_models()["Models"]]


def test_the_links_answer_410_once_the_run_stopped_waiting(
    pipeline: LocalPipeline, timed_out: dict[str, str]
) -> None:
    base, approval_id, query = link_parts(timed_out["link"])

    shown = pipeline.http("GET", timed_out["link"])
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
    approval = ops.approval_of(pipeline.target, timed_out["execution"])
    assert approval is not None
    assert (approval["status"], approval["decided_by"]) == ("EXPIRED", "timeout")
