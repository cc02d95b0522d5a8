"""The approval flow end to end in the local cloud: links from the outbox, the page, Slack
callbacks and the operator route, each forged, stale and replayed request tried; and the task
token searched for in every URL, page, notification and log line.

Three runs share one local cloud: ``page_run`` is decided on the page, ``slack_run`` by a Slack
callback, ``operator_run`` (asked while the Slack webhook is broken) through the IAM-signed
operator route, as ``safe-deploy reject`` does. Tests in this module run in file order.
"""

from __future__ import annotations

import dataclasses
import json
import secrets
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import boto3
import pytest
from click.testing import CliRunner
from pipeline_common.approvals import REVIEW, signature
from pipeline_common.slack import button_value, request_signature

from safe_deploy import ops
from safe_deploy.cli import main
from safe_deploy.localcloud.api import LOCAL_SECRET
from safe_deploy.localcloud.channels import LOCAL_GROUP_MEMBERS, LOCAL_TEAM
from safe_deploy.target import TargetError
from tests.approvals.local import LocalPipeline, link_parts

pytestmark = pytest.mark.timeout(600)

CAROL = LOCAL_GROUP_MEMBERS[0]


@dataclass(frozen=True)
class Run:
    execution_arn: str
    model_id: str
    approval_id: str
    link: str


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalPipeline]:
    local = LocalPipeline.start(tmp_path_factory.mktemp("approvals"))
    try:
        yield local
    finally:
        local.stop()


def _asked(pipeline: LocalPipeline, execution_arn: str) -> Run:
    item = pipeline.wait_for_approval(execution_arn)
    model_id = str(item["model_id"])
    return Run(execution_arn, model_id, str(item["approval_id"]), pipeline.link_for(model_id))


@pytest.fixture(scope="module")
def runs(pipeline: LocalPipeline) -> dict[str, Run]:
    """Two runs waiting for a person (started together, so they overlap)."""
    page = pipeline.upload("page-month", seed=31)
    slack = pipeline.upload("slack-month", seed=32)
    return {"page": _asked(pipeline, page), "slack": _asked(pipeline, slack)}


@pytest.fixture(scope="module")
def operator_run(pipeline: LocalPipeline, runs: dict[str, Run]) -> Run:
    """A third run, asked while the Slack webhook answers 404 (a revoked webhook)."""
    pipeline.cloud.channels.slack_failure = (404, "no_service")
    try:
        execution = pipeline.upload("operator-month", seed=33)
        item = pipeline.wait_for_approval(execution)
    finally:
        pipeline.cloud.channels.slack_failure = None
    model_id = str(item["model_id"])
    email = [m for m in pipeline.outbox("email") if model_id in m["subject"]]
    link = next(
        line.split(": ", 1)[1]
        for line in email[-1]["text"].splitlines()
        if line.startswith("Review and decide: ")
    )
    return Run(execution, model_id, str(item["approval_id"]), link)


def status_of(pipeline: LocalPipeline, run: Run) -> str:
    item = pipeline.approval_item(run.execution_arn)
    assert item is not None
    return str(item["status"])


# ---------------------------------------------------------------- the request
def test_the_request_reaches_slack_email_and_sns_with_the_evidence(
    pipeline: LocalPipeline, runs: dict[str, Run]
) -> None:
    run = runs["page"]
    item = pipeline.approval_item(run.execution_arn)
    assert item is not None
    assert item["channels"] == {"slack": "sent", "email": "sent", "sns": "sent"}
    evidence = json.loads(item["evidence"])
    validation = f"{evidence['validation_rmse']:.3f}"
    test_rmse = f"{evidence['test_rmse']:.3f}"

    slack = json.dumps(pipeline.slack_request_for(run.model_id))
    (email,) = [m for m in pipeline.outbox("email") if run.model_id in m["subject"]]
    (sns,) = [m for m in pipeline.outbox("sns") if run.model_id in (m["subject"] or "")]
    assert email["to"] == ["reviewer@example.com", "second-reviewer@example.com"]
    for rendered in (slack, email["text"], email["html"], sns["message"]):
        assert validation in rendered
        assert test_rmse in rendered
        assert evidence["data_version"] in rendered
        assert "/plot.png?expires=" in rendered
    assert run.link in sns["message"]
    assert run.link in email["text"]


# ---------------------------------------------------------------- the page
def test_get_shows_the_evidence_and_never_decides(
    pipeline: LocalPipeline, runs: dict[str, Run]
) -> None:
    run = runs["page"]
    for _ in range(3):  # a mail scanner, a link preview, the reviewer
        page = pipeline.http("GET", run.link)
        assert page.status_code == 200
        assert "validation RMSE" in page.text
        assert "Approve</button>" in page.text
        assert "Reject</button>" in page.text
    assert page.headers["Cache-Control"] == "no-store"
    assert page.headers["Referrer-Policy"] == "no-referrer"
    head = pipeline.http("HEAD", run.link)
    assert head.status_code == 405
    assert status_of(pipeline, run) == "PENDING"


def test_the_plot_loads_with_its_own_link_and_that_link_cannot_decide(
    pipeline: LocalPipeline, runs: dict[str, Run]
) -> None:
    run = runs["page"]
    page = pipeline.http("GET", run.link)
    src = page.text.split('<img id=plot src="', 1)[1].split('"', 1)[0].replace("&amp;", "&")
    origin = run.link.split("/v1/", 1)[0]
    image = pipeline.http("GET", origin + src)
    assert image.status_code == 200
    assert image.headers["Content-Type"] == "image/png"
    assert image.content.startswith(b"\x89PNG")

    _, _, plot_query = link_parts(origin + src)
    base, _, _ = link_parts(run.link)
    forged = pipeline.http(
        "POST", base, data={**plot_query, "decision": "approve", "name": "Mallory"}
    )
    assert forged.status_code == 403
    assert status_of(pipeline, run) == "PENDING"


@pytest.mark.parametrize(
    "tamper",
    ["signature", "expiry", "other approval", "no signature"],
)
def test_a_tampered_link_gets_a_403_page(
    pipeline: LocalPipeline, runs: dict[str, Run], tamper: str
) -> None:
    run = runs["page"]
    base, approval_id, query = link_parts(run.link)
    if tamper == "signature":
        query["sig"] = ("0" if query["sig"][0] != "0" else "1") + query["sig"][1:]
    elif tamper == "expiry":
        query["expires"] = str(int(query["expires"]) + 7 * 86400)
    elif tamper == "other approval":
        base = base.replace(approval_id, runs["slack"].approval_id)
    else:
        del query["sig"]

    shown = pipeline.http("GET", f"{base}?{urlencode(query)}")
    posted = pipeline.http("POST", base, data={**query, "decision": "approve", "name": "Mallory"})

    for answer in (shown, posted):
        assert answer.status_code == 403
        assert answer.headers["Content-Type"].startswith("text/html")
        assert "This link has been altered" in answer.text
    assert status_of(pipeline, run) == status_of(pipeline, runs["slack"]) == "PENDING"


def test_an_expired_link_gets_a_410_page(pipeline: LocalPipeline, runs: dict[str, Run]) -> None:
    run = runs["page"]
    base, approval_id, _ = link_parts(run.link)
    past = int(time.time()) - 60
    sig = signature(approval_id, past, pipeline.signing_key(), REVIEW)

    shown = pipeline.http("GET", f"{base}?{urlencode({'expires': past, 'sig': sig})}")
    posted = pipeline.http(
        "POST", base, data={"expires": past, "sig": sig, "decision": "approve", "name": "Ann"}
    )

    for answer in (shown, posted):
        assert answer.status_code == 410
        assert "This link has expired" in answer.text
    assert status_of(pipeline, run) == "PENDING"


def test_an_unknown_approval_gets_a_404_page(pipeline: LocalPipeline, runs: dict[str, Run]) -> None:
    base, approval_id, query = link_parts(runs["page"].link)
    unknown = secrets.token_urlsafe(16)
    expires = int(query["expires"])
    sig = signature(unknown, expires, pipeline.signing_key(), REVIEW)

    answer = pipeline.http(
        "GET", f"{base.replace(approval_id, unknown)}?{urlencode({'expires': expires, 'sig': sig})}"
    )

    assert answer.status_code == 404
    assert "No such approval" in answer.text


@pytest.mark.parametrize("method", ["PUT", "PATCH", "DELETE"])
def test_other_methods_get_a_405_page(
    pipeline: LocalPipeline, runs: dict[str, Run], method: str
) -> None:
    run = runs["page"]
    base, _, query = link_parts(run.link)

    answer = pipeline.http(method, run.link, data={**query, "decision": "approve", "name": "M"})
    plot = pipeline.http(method, base + "/plot.png?" + urlencode(query))

    assert answer.status_code == plot.status_code == 405
    assert answer.headers["Allow"] == "GET, POST"
    assert "Method not allowed" in answer.text
    assert status_of(pipeline, run) == "PENDING"


def test_a_post_without_a_name_decides_nothing(
    pipeline: LocalPipeline, runs: dict[str, Run]
) -> None:
    run = runs["page"]
    base, _, query = link_parts(run.link)
    answer = pipeline.http("POST", base, data={**query, "decision": "approve", "name": "  "})
    assert answer.status_code == 400
    assert status_of(pipeline, run) == "PENDING"


def test_the_page_decides_once_and_records_who(
    pipeline: LocalPipeline, runs: dict[str, Run]
) -> None:
    run = runs["page"]
    base, _, query = link_parts(run.link)

    decided = pipeline.http(
        "POST",
        base,
        data={**query, "decision": "reject", "name": "Ann Reviewer", "reason": "plot is off"},
    )
    assert decided.status_code == 200
    assert "was rejected" in decided.text
    assert "Ann Reviewer" in decided.text

    ended = pipeline.wait_for_end(run.execution_arn)
    assert (ended["status"], ended["error"]) == ("FAILED", "ApprovalRejected")
    assert "rejected by Ann Reviewer: plot is off" in ended["cause"]
    approval = ops.approval_of(pipeline.target, run.execution_arn)
    assert approval is not None
    assert approval["status"] == "REJECTED"
    assert approval["decided_by"] == "Ann Reviewer"
    assert approval["decided_via"] == "approval page"
    assert abs(approval["decided_at"] - time.time()) < 120


def test_a_reused_link_cannot_decide_again(pipeline: LocalPipeline, runs: dict[str, Run]) -> None:
    run = runs["page"]
    base, _, query = link_parts(run.link)

    replayed = pipeline.http(
        "POST", base, data={**query, "decision": "reject", "name": "Ann Reviewer"}
    )
    overturned = pipeline.http("POST", base, data={**query, "decision": "approve", "name": "Bob"})
    shown = pipeline.http("GET", run.link)

    for answer in (replayed, overturned):
        assert answer.status_code == 409
        assert "Already decided" in answer.text
        assert "Ann Reviewer already rejected" in answer.text
    assert shown.status_code == 200
    assert "was rejected" in shown.text
    assert "Approve</button>" not in shown.text
    approval = ops.approval_of(pipeline.target, run.execution_arn)
    assert approval is not None
    assert (approval["status"], approval["decided_by"]) == ("REJECTED", "Ann Reviewer")


def test_the_operator_route_cannot_overturn_a_decision(
    pipeline: LocalPipeline, runs: dict[str, Run]
) -> None:
    with pytest.raises(TargetError, match="Already decided"):
        ops.decide(pipeline.target, runs["page"].execution_arn, True, "overrule")


# ---------------------------------------------------------------- Slack
def slack_click(
    pipeline: LocalPipeline,
    value: str,
    *,
    age: int = 0,
    secret: str | None = None,
    body: bytes | None = None,
    user: str = CAROL,
    team: str = LOCAL_TEAM,
) -> Any:
    """A click signed as Slack signs it; by carol, an approver as a member of the approver group
    (the approval API reads it from the local Slack's ``usergroups.users.list``)."""
    payload = {
        "type": "block_actions",
        "user": {"id": user, "username": "carol" if user == CAROL else user, "team_id": team},
        "team": {"id": team, "domain": "fares"},
        "actions": [{"action_id": value.split(":")[0], "value": value, "type": "button"}],
        "response_url": f"{pipeline.cloud.api.origin}/_local/slack/response/T0LOCAL/1/abc",
    }
    raw = body if body is not None else urlencode({"payload": json.dumps(payload)}).encode()
    timestamp = str(int(time.time()) - age)
    signed = request_signature(secret or pipeline.cloud.channels.signing_secret, timestamp, raw)
    return pipeline.http(
        "POST",
        f"{pipeline.target.api_url}/slack/interactions",
        data=raw,
        headers={
            "Content-Type": "application/x-www-form-urlencoded",
            "X-Slack-Request-Timestamp": timestamp,
            "X-Slack-Signature": signed,
        },
    )


def test_a_slack_callback_with_a_wrong_signature_is_refused(
    pipeline: LocalPipeline, runs: dict[str, Run]
) -> None:
    run = runs["slack"]
    answer = slack_click(
        pipeline, button_value("approve", run.approval_id), secret="not-the-signing-secret"
    )
    unsigned = pipeline.http(
        "POST",
        f"{pipeline.target.api_url}/slack/interactions",
        data={"payload": json.dumps({"type": "block_actions"})},
    )
    assert answer.status_code == unsigned.status_code == 401
    assert "Not signed by Slack" in answer.json()["message"]
    assert status_of(pipeline, run) == "PENDING"


def test_a_stale_slack_callback_is_refused(pipeline: LocalPipeline, runs: dict[str, Run]) -> None:
    run = runs["slack"]
    answer = slack_click(pipeline, button_value("approve", run.approval_id), age=6 * 60)
    assert answer.status_code == 401
    assert "Stale Slack request" in answer.json()["message"]
    assert status_of(pipeline, run) == "PENDING"


def test_a_link_button_click_reported_by_slack_decides_nothing(
    pipeline: LocalPipeline, runs: dict[str, Run]
) -> None:
    run = runs["slack"]
    answer = slack_click(pipeline, button_value("review", run.approval_id))
    assert answer.status_code == 200
    assert status_of(pipeline, run) == "PENDING"


def test_a_click_from_someone_who_is_not_an_approver_decides_nothing_and_they_are_told(
    pipeline: LocalPipeline, runs: dict[str, Run]
) -> None:
    run = runs["slack"]
    for user, team in (("U0MALLORY", LOCAL_TEAM), (CAROL, "T0OTHER")):
        answer = slack_click(
            pipeline, button_value("approve", run.approval_id), user=user, team=team
        )
        assert answer.status_code == 403
        assert "You are not an approver of this pipeline" in answer.json()["message"]
    assert status_of(pipeline, run) == "PENDING"
    told = [m["message"] for m in pipeline.outbox("slack") if m["via"] == "response_url"]
    assert [m["response_type"] for m in told[-2:]] == ["ephemeral", "ephemeral"]
    assert all(m["text"].startswith("You are not an approver") for m in told[-2:])
    logs = "".join(p.read_text() for p in pipeline.cloud.host.logs_dir.glob("*.log"))
    assert '"user_id":"U0MALLORY","team_id":"T0LOCAL"' in logs.replace(" ", "")


@pytest.mark.parametrize(
    "body",
    [b"payload=%7Bnot%20json", b"payload=%5B1%5D", b"\xff\xfe", b"payload=" + b"%5B" * 5000],
    ids=["bad json", "array", "not utf-8", "deep"],
)
def test_a_signed_request_that_is_not_a_click_gets_a_400(
    pipeline: LocalPipeline, runs: dict[str, Run], body: bytes
) -> None:
    answer = slack_click(pipeline, "", body=body)
    assert answer.status_code == 400
    assert "not an approval button click" in answer.json()["message"]
    assert status_of(pipeline, runs["slack"]) == "PENDING"


def test_a_signed_slack_callback_decides_as_the_slack_user_once(
    pipeline: LocalPipeline, runs: dict[str, Run]
) -> None:
    run = runs["slack"]
    decided = slack_click(pipeline, button_value("reject", run.approval_id))
    assert decided.status_code == 200
    assert decided.json()["status"] == "REJECTED"

    replayed = pipeline.http(
        "POST",
        decided.request.url,
        data=decided.request.body,
        headers=dict(decided.request.headers),
    )
    assert replayed.status_code == 409
    assert "Already decided" in replayed.json()["message"]

    ended = pipeline.wait_for_end(run.execution_arn)
    assert (ended["status"], ended["error"]) == ("FAILED", "ApprovalRejected")
    approval = ops.approval_of(pipeline.target, run.execution_arn)
    assert approval is not None
    assert approval["decided_by"] == "carol (Slack user U024BE7LH, team T0LOCAL)"
    assert approval["decided_via"] == "Slack"
    updates = [m["message"]["text"] for m in pipeline.outbox("slack") if m["via"] == "response_url"]
    assert f"Fare model {run.model_id} was rejected by <@U024BE7LH> in Slack." in updates


# ---------------------------------------------------------------- a broken channel; operators
def test_a_failing_channel_does_not_stop_the_others(
    pipeline: LocalPipeline, operator_run: Run
) -> None:
    item = pipeline.approval_item(operator_run.execution_arn)
    assert item is not None
    assert item["channels"] == {
        "slack": "failed: SlackWebhookError: Slack answered HTTP 404: no_service",
        "email": "sent",
        "sns": "sent",
    }
    assert not [m for m in pipeline.outbox("slack") if operator_run.model_id in json.dumps(m)]
    # SNS reaches the outbox through a queue: wait for it rather than read it at once
    pipeline.cloud.wait_for(
        lambda: any(operator_run.model_id in (m["subject"] or "") for m in pipeline.outbox("sns")),
        30,
        what="the SNS approval message",
    )
    assert status_of(pipeline, operator_run) == "PENDING"
    logs = "".join(p.read_text() for p in pipeline.cloud.host.logs_dir.glob("*.log"))
    assert "approval requested: channel failed" in logs
    assert pipeline.http("GET", operator_run.link).status_code == 200


def test_a_principal_that_is_not_an_operator_cannot_decide(
    pipeline: LocalPipeline, operator_run: Run
) -> None:
    """A predict client, signed and allowed to call the API, is refused the operator route by
    the API's resource policy (only OperatorPrincipalArns may decide)."""
    client = dataclasses.replace(
        pipeline.target,
        session=boto3.Session(
            aws_access_key_id="fare-quotes-service",
            aws_secret_access_key=LOCAL_SECRET,
            region_name=pipeline.target.region,
        ),
    )
    with pytest.raises(TargetError, match="OperatorPrincipalArns") as refused:
        ops.decide(client, operator_run.execution_arn, True, "I only quote fares")
    assert "user/fare-quotes-service is not authorized" in str(refused.value)
    assert "explicit deny" in str(refused.value)
    assert status_of(pipeline, operator_run) == "PENDING"
    assert (
        client.signed("POST", "/predict", b"12.5,1,2.4", {"Content-Type": "text/csv"}).status_code
        != 403
    )


def test_the_operator_route_needs_iam_and_records_the_principal(
    pipeline: LocalPipeline, operator_run: Run
) -> None:
    body = {"execution_arn": operator_run.execution_arn, "decision": "approve"}
    unsigned = pipeline.http("POST", f"{pipeline.target.api_url}/operator/decisions", json=body)
    assert unsigned.status_code == 403
    assert status_of(pipeline, operator_run) == "PENDING"

    answer = ops.decide(pipeline.target, operator_run.execution_arn, False, "not this month")

    principal = "arn:aws:iam::123456789012:user/local-operator"
    assert answer["status"] == "REJECTED"
    assert answer["decided_by"] == principal
    ended = pipeline.wait_for_end(operator_run.execution_arn)
    assert (ended["status"], ended["error"]) == ("FAILED", "ApprovalRejected")
    assert f"rejected by {principal}: not this month" in ended["cause"]
    approval = ops.approval_of(pipeline.target, operator_run.execution_arn)
    assert approval is not None
    assert (approval["decided_by"], approval["decided_via"]) == (principal, "operator API (IAM)")
    with pytest.raises(TargetError, match="Already decided"):
        ops.decide(pipeline.target, operator_run.execution_arn, True)
    page = pipeline.http(
        "POST",
        link_parts(operator_run.link)[0],
        data={**link_parts(operator_run.link)[2], "decision": "approve", "name": "Ann"},
    )
    assert page.status_code == 409


# ---------------------------------------------------------------- the token
def test_the_task_token_is_in_no_url_page_notification_or_log_line(
    pipeline: LocalPipeline, runs: dict[str, Run], operator_run: Run
) -> None:
    tokens = {}
    for run in (*runs.values(), operator_run):
        item = pipeline.approval_item(run.execution_arn)
        assert item is not None
        tokens[run.model_id] = str(item["task_token"])
        assert len(tokens[run.model_id]) > 20
    logs = sorted(pipeline.cloud.host.logs_dir.glob("*.log"))
    request_log = "".join(p.read_text() for p in logs if "RequestApproval" in p.name)
    assert all(run.approval_id in request_log for run in runs.values())  # the right logs

    written = [p for p in pipeline.cloud.settings.workdir.rglob("*") if p.is_file()]
    texts = {str(p): p.read_bytes().decode("utf-8", errors="replace") for p in written}
    texts |= {
        f"response {i}: {r.request.method} {r.url}": f"{r.url}\n{r.headers}\n{r.text}"
        for i, r in enumerate(pipeline.responses)
    }
    texts |= {f"feed {i}": repr(a) for i, a in enumerate(pipeline.cloud.feed.items)}
    for model_id, token in tokens.items():
        for piece in {token, token[:40], token[-40:]}:
            leaks = [name for name, text in texts.items() if piece in text]
            assert not leaks, f"the task token of {model_id} appears in {leaks}"
    assert sum("/outbox/" in name for name in texts) >= 9  # 3 runs x Slack, email, SNS
    assert len(pipeline.responses) > 30  # every page this module was answered


# ---------------------------------------------------------------- the key, rotated and revoked
def test_rotating_the_key_keeps_old_links_until_the_previous_key_is_revoked(
    pipeline: LocalPipeline, runs: dict[str, Run], monkeypatch: pytest.MonkeyPatch
) -> None:
    """``safe-deploy rotate-approval-key`` against the local cloud, as an operator runs it."""
    monkeypatch.setenv("SAFE_DEPLOY_LOCAL", str(pipeline.workdir / "local.json"))
    monkeypatch.delenv("SAFE_DEPLOY_STACK", raising=False)
    link = runs["page"].link  # decided: the page still shows who decided, to a genuine link
    assert pipeline.http("GET", link).status_code == 200  # the function caches the key now

    rotated = CliRunner().invoke(main, ["rotate-approval-key"])
    assert rotated.exit_code == 0, rotated.output
    assert "is AWSPREVIOUS" in rotated.output
    assert pipeline.http("GET", link).status_code == 200  # signed with AWSPREVIOUS

    revoked = CliRunner().invoke(main, ["rotate-approval-key", "--revoke-previous"])
    assert revoked.exit_code == 0, revoked.output
    assert "revoked (AWSPREVIOUS removed)" in revoked.output

    refused = pipeline.http("GET", link)  # at once: no cache outlives the revocation
    assert refused.status_code == 403
    assert "This link has been altered" in refused.text
    base, approval_id, query = link_parts(link)
    expires = int(query["expires"])
    fresh = signature(approval_id, expires, pipeline.signing_key(), REVIEW)
    assert pipeline.http("GET", f"{base}?{urlencode({'expires': expires, 'sig': fresh})}").ok
    key = pipeline.signing_key()
    assert key not in rotated.output + revoked.output
