"""Who may decide in Slack: the listed users and the members of a user group (read with
``usergroups.users.list`` from the local cloud's Slack Web API), in the stack's workspace only.
Anyone else is told so, only them, through ``response_url``, and nothing is decided. What reaches
Slack is escaped for mrkdwn."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlencode

import pytest
from pipeline_common.notifications import Notification, as_slack
from pipeline_common.settings import ApprovalApiSettings, SettingsError
from pipeline_common.slack import (
    Approvers,
    ButtonClick,
    NotAnApprover,
    SlackApiError,
    button_value,
    escape,
    usergroup_members,
)

from safe_deploy.localcloud.channels import (
    LOCAL_APPROVER,
    LOCAL_APPROVER_GROUP,
    LOCAL_GROUP_MEMBERS,
    LOCAL_TEAM,
)
from tests.approvals.api import World, event, load, message_of, slack_payload

CAROL = LOCAL_GROUP_MEMBERS[0]  # an approver as a member of the group, not listed by id


def click(world: World, action: str, **who: Any) -> dict[str, Any]:
    body = slack_payload(world, button_value(action, world.approval.approval_id), **who)
    return world.call(
        event("POST", "/slack/interactions", headers=world.slack_headers(body), body=body)
    )


def test_a_listed_approver_decides_and_the_message_says_who(world: World) -> None:
    answer = click(world, "approve", user=LOCAL_APPROVER, name="lead")

    assert answer["statusCode"] == 200
    assert world.status() == "APPROVED"
    ((call, arguments),) = world.sfn.calls
    assert call == "send_task_success"
    assert json.loads(arguments["output"])["by"] == (
        f"lead (Slack user {LOCAL_APPROVER}, team {LOCAL_TEAM})"
    )
    assert world.slack.responses()[-1] == {
        "replace_original": True,
        "text": f"Fare model fare-abc was approved by <@{LOCAL_APPROVER}> in Slack.",
    }


def test_a_member_of_the_approver_group_decides(world: World) -> None:
    answer = click(world, "reject", user=CAROL, name="carol")

    assert answer["statusCode"] == 200
    assert world.status() == "REJECTED"
    assert [call for call, _ in world.sfn.calls] == ["send_task_failure"]


def test_anyone_else_is_told_they_are_not_an_approver_and_nothing_is_decided(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    answer = click(world, "approve", user="U0MALLORY", name="mallory")

    assert answer["statusCode"] == 403
    assert "You are not an approver of this pipeline" in message_of(answer)
    assert world.status() == "PENDING"
    assert world.sfn.calls == []
    told = world.slack.responses()[-1]
    assert told["response_type"] == "ephemeral"
    assert told["replace_original"] is False
    assert told["text"].startswith("You are not an approver of this pipeline")
    refusals = [r for r in caplog.records if r.getMessage() == "Slack decision refused"]
    logged = [(vars(r).get("user_id"), vars(r).get("team_id")) for r in refusals]
    assert logged == [("U0MALLORY", LOCAL_TEAM)]


def test_an_approver_clicking_from_another_workspace_is_refused(world: World) -> None:
    answer = click(world, "approve", user=LOCAL_APPROVER, team="T0OTHER")

    assert answer["statusCode"] == 403
    assert "another Slack workspace" in message_of(answer)
    assert world.status() == "PENDING"
    assert world.slack.responses()[-1]["response_type"] == "ephemeral"


def test_a_review_click_is_acknowledged_for_anyone(world: World) -> None:
    answer = click(world, "review", user="U0MALLORY", team="T0OTHER")
    assert answer["statusCode"] == 200
    assert world.status() == "PENDING"


def test_without_approvers_nobody_decides_in_slack(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = load(
        monkeypatch,
        SLACK_APPROVER_IDS="",
        SLACK_APPROVER_GROUP="",
        SLACK_BOT_TOKEN_SECRET_ARN="",
    )
    app.SFN = world.sfn  # type: ignore[attr-defined]
    monkeypatch.setattr(world, "app", app)

    for user in (LOCAL_APPROVER, CAROL):
        answer = click(world, "approve", user=user)
        assert answer["statusCode"] == 403
        assert "Nobody decides in Slack here" in message_of(answer)
    assert world.status() == "PENDING"
    assert world.sfn.calls == []


def test_when_slack_cannot_list_the_group_its_members_are_refused(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(world.slack.channels.slack_api, "bot_token", "xoxb-revoked")
    monkeypatch.setattr(world.app.APPROVERS, "_cached", None)

    answer = click(world, "approve", user=CAROL)

    assert answer["statusCode"] == 403
    assert "invalid_auth" in message_of(answer)
    assert world.status() == "PENDING"
    assert click(world, "approve", user=LOCAL_APPROVER)["statusCode"] == 200  # listed: no call


def test_the_group_is_read_with_the_bot_token_as_slack_answers(world: World) -> None:
    api, token = world.slack.api_url, world.slack.channels.slack_api.bot_token
    assert usergroup_members(api, token, LOCAL_APPROVER_GROUP) == frozenset(LOCAL_GROUP_MEMBERS)
    for bad_token, group, error in (
        ("", LOCAL_APPROVER_GROUP, "not_authed"),
        ("xoxb-other", LOCAL_APPROVER_GROUP, "invalid_auth"),
        (token, "S0NOSUCHGROUP", "no_such_subteam"),
    ):
        with pytest.raises(SlackApiError, match=error) as failed:
            usergroup_members(api, bad_token, group)
        assert token not in str(failed.value)


def test_group_members_are_cached_briefly() -> None:
    calls: list[str] = []
    clock = [0.0]

    def members(group: str) -> frozenset[str]:
        calls.append(group)
        return frozenset({"U1"})

    approvers = Approvers("T1", (), "S1", members, cache_seconds=60, clock=lambda: clock[0])
    someone = ButtonClick("approve", "abc", "U1", "ann", "T1", None)
    approvers.check(someone)
    clock[0] = 59.0
    approvers.check(someone)
    assert calls == ["S1"]
    clock[0] = 61.0
    approvers.check(someone)
    assert calls == ["S1", "S1"]
    with pytest.raises(NotAnApprover):
        approvers.check(ButtonClick("approve", "abc", "U2", "bob", "T1", None))


# ---------------------------------------------------------------- signed, but not a click
@pytest.mark.parametrize(
    "body",
    [
        b"payload=%7Bnot%20json",
        b"payload=" + b"%5B" * 5000 + b"%5D" * 5000,
        b"payload=%5B1%5D",
        b'payload="block_actions"',
        b"payload=%7B%22type%22%3A%22block_actions%22%2C%22actions%22%3A%5B1%5D%7D",
        b"payload=%7B%22type%22%3A%22block_actions%22%2C%22actions%22%3A%22x%22%7D",
        b"\xff\xfepayload=1",
        b"payload=%FF",
        b"nothing=here",
    ],
    ids=[
        "bad json",
        "deep json",
        "array",
        "string",
        "actions of numbers",
        "actions a string",
        "not utf-8",
        "escaped not utf-8",
        "no payload",
    ],
)
def test_a_signed_request_that_is_not_a_click_gets_a_400(world: World, body: bytes) -> None:
    answer = world.call(
        event("POST", "/slack/interactions", headers=world.slack_headers(body), body=body)
    )
    assert answer["statusCode"] == 400
    assert "not an approval button click" in message_of(answer)
    assert world.status() == "PENDING"


@pytest.mark.parametrize(
    "change",
    [
        {"user": "U1>|<!channel"},
        {"user": "u024be7lh"},
        {"user": 42},
        {"team": "<!here>"},
        {"response_url": "file:///etc/passwd"},
        {"response_url": 7},
        {"value": "approve:../../x"},
        {"value": ["approve"]},
    ],
    ids=str,
)
def test_a_click_with_a_field_of_the_wrong_shape_gets_a_400(
    world: World, change: dict[str, Any]
) -> None:
    value = change.get("value", button_value("approve", world.approval.approval_id))
    payload = {
        "type": "block_actions",
        "user": {"id": change.get("user", LOCAL_APPROVER), "username": "lead"},
        "team": {"id": change.get("team", LOCAL_TEAM)},
        "actions": [{"value": value}],
        "response_url": change.get("response_url", world.slack.response_url),
    }
    body = urlencode({"payload": json.dumps(payload)}).encode()
    answer = world.call(
        event("POST", "/slack/interactions", headers=world.slack_headers(body), body=body)
    )
    assert answer["statusCode"] == 400
    assert world.status() == "PENDING"
    assert world.sfn.calls == []


# ---------------------------------------------------------------- what reaches Slack is escaped
def test_a_deciders_name_reaches_slack_escaped(world: World) -> None:
    fields = {**world.link_fields(), "decision": "reject", "name": "<!channel> Ann & co"}
    decided = world.call(
        event(
            "POST",
            f"/approvals/{world.approval.approval_id}",
            headers={"Content-Type": "application/x-www-form-urlencoded"},
            body=urlencode(fields).encode(),
        )
    )
    assert decided["statusCode"] == 200

    answer = click(world, "approve", user=LOCAL_APPROVER)

    assert answer["statusCode"] == 409
    told = world.slack.responses()[-1]["text"]
    assert "&lt;!channel&gt; Ann &amp; co already rejected model fare-abc" in told
    assert "<!channel>" not in told


def test_a_slack_user_name_with_bidi_or_control_characters_is_recorded_without_them(
    world: World,
) -> None:
    answer = click(world, "approve", user=LOCAL_APPROVER, name="le\u202ead\x1b[31m\u2066")

    assert answer["statusCode"] == 200
    ((_, arguments),) = world.sfn.calls
    assert json.loads(arguments["output"])["by"].startswith("lead[31m (Slack user")


def test_notifications_reach_slack_escaped() -> None:
    notification = Notification(
        kind="request",
        approval_id="abc",
        model_id="fare-<!channel>",
        subject="Approve fare model fare-<!channel> for production?",
        headline="Fare model fare-<!channel> passed <@U1> & more",
        facts=(("Data", "s3://bucket/raw/<!here>.csv"), ("<b>", "x>y")),
    )
    sent = json.dumps(as_slack(notification))
    for raw in ("<!channel>", "<!here>", "<@U1>", "<b>", "x>y"):
        assert raw not in sent
    assert escape("<!channel>") in sent


# ---------------------------------------------------------------- settings
@pytest.mark.parametrize(
    ("environment", "problem"),
    [
        ({"SLACK_SIGNING_SECRET_ARN": "arn:s"}, "SLACK_TEAM_ID"),
        ({"SLACK_APPROVER_GROUP": "S1"}, "SLACK_BOT_TOKEN_SECRET_ARN"),
        ({"SLACK_APPROVER_IDS": "U1,<!channel>"}, "SLACK_APPROVER_IDS"),
        ({"SLACK_TEAM_ID": "t-lower"}, "SLACK_TEAM_ID"),
        ({"SLACK_API_URL": "file:///tmp"}, "SLACK_API_URL"),
    ],
)
def test_slack_settings_are_checked_once_at_start(
    environment: dict[str, str], problem: str
) -> None:
    base = {"APPROVALS_TABLE": "t", "SIGNING_SECRET_ARN": "arn:k", "ARTIFACT_BUCKET": "b"}
    with pytest.raises(SettingsError, match=problem):
        ApprovalApiSettings.from_env({**base, **environment})


def test_approver_ids_are_comma_separated() -> None:
    settings = ApprovalApiSettings.from_env(
        {
            "APPROVALS_TABLE": "t",
            "SIGNING_SECRET_ARN": "arn:k",
            "ARTIFACT_BUCKET": "b",
            "SLACK_APPROVER_IDS": " U1, W2 ,,",
        }
    )
    assert settings.slack_approver_ids == ("U1", "W2")
