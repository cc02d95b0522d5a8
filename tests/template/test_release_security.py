"""What the template does so that no one outside can block, steer or decide a release:
rollback alarms that describe the candidate only, approval links on the approvers' own topic,
the operator route closed to everyone but the named operators."""

from __future__ import annotations

from typing import Any

import pytest

from safe_deploy.localcloud.resource_policy import evaluate_policy
from tests.support_template import (
    Stack,
    Template,
    as_list,
    ref_target,
    resources_of_type,
    role_statements,
    sam_parameters_with_everything_on,
    transformed,
)


@pytest.fixture(scope="module")
def template() -> Template:
    return transformed(sam_parameters_with_everything_on())


@pytest.fixture(scope="module")
def stack(template: Template) -> Stack:
    return Stack(template, sam_parameters_with_everything_on())


def _rollback_alarms(template: Template) -> list[str]:
    groups = resources_of_type(template, "AWS::CodeDeploy::DeploymentGroup")
    (group,) = groups.values()
    alarms = group["Properties"]["AlarmConfiguration"]["Alarms"]
    return [str(ref_target(a["Name"])) for a in alarms]


def _describes_the_candidate(alarm: dict[str, Any]) -> bool:
    """An alarm whose metric only the release being deployed can move: the SafeDeploy metrics
    of the candidate endpoint, or Lambda's metrics of the version being deployed."""
    props = alarm["Properties"]
    dimensions = {d["Name"]: d["Value"] for d in props.get("Dimensions", [])}
    if props.get("Namespace") == "SafeDeploy":
        return dimensions.get("Release") == "candidate"
    if props.get("Namespace") == "AWS/Lambda":
        version = dimensions.get("ExecutedVersion")
        return isinstance(version, dict) and "Fn::GetAtt" in version
    return False


def test_rollback_alarms_describe_the_candidate_only(template: Template) -> None:
    """Nothing an unauthenticated caller drives may stop a canary: not the API's 5xx (a flood
    of the open approval routes throttles their function into 5xx), not the current version's
    errors."""
    names = _rollback_alarms(template)
    assert len(names) >= 3
    resources = template["Resources"]
    for name in names:
        assert _describes_the_candidate(resources[name]), f"{name} is not about the candidate"


def test_an_api_wide_alarm_would_be_refused_as_a_rollback_alarm(template: Template) -> None:
    assert not _describes_the_candidate(template["Resources"]["Api5xxAlarm"])


def test_approval_links_go_to_the_approvers_topic_only(template: Template, stack: Stack) -> None:
    resources = template["Resources"]
    request = resources["RequestApprovalFunction"]["Properties"]
    assert ref_target(request["Environment"]["Variables"]["TOPIC_ARN"]) == "ApprovalTopic"
    subscriptions = {
        name: (ref_target(r["Properties"]["TopicArn"]), r["Properties"]["Endpoint"])
        for name, r in resources_of_type(template, "AWS::SNS::Subscription").items()
    }
    assert subscriptions["ApproverSubscription"] == ("ApprovalTopic", {"Ref": "ApproverEmail"})
    assert subscriptions["NotificationSubscription"][0] == "NotificationTopic"
    # only the function that sends links may publish to the approvers' topic, and it publishes
    # nowhere else
    approval_topic = stack.ref("ApprovalTopic")
    general_topic = stack.ref("NotificationTopic")
    for role_id in resources_of_type(template, "AWS::IAM::Role"):
        published = {
            resource
            for statement in role_statements(stack, role_id)
            if "sns:Publish" in as_list(statement.get("Action"))
            for resource in as_list(statement["Resource"])
        }
        if role_id == "RequestApprovalFunctionRole":
            assert published == {approval_topic}, published
        else:
            assert approval_topic not in published, role_id
    assert general_topic != approval_topic


def _api_policy(template: Template, stack: Stack) -> dict[str, Any]:
    body = template["Resources"]["FaresApi"]["Properties"]["Body"]
    return dict(stack.resolve(body["x-amazon-apigateway-policy"]))


OPERATOR = "arn:aws:iam::123456789012:user/alice"
RELEASE_MANAGER_ROLE = "arn:aws:iam::123456789012:role/ReleaseManagers"
PREDICT_CLIENT = "arn:aws:iam::123456789012:role/fare-quotes-service"


@pytest.mark.parametrize("principal", [OPERATOR, RELEASE_MANAGER_ROLE])
def test_a_named_operator_may_decide(template: Template, stack: Stack, principal: str) -> None:
    policy = _api_policy(template, stack)
    verdict = evaluate_policy(
        policy, principal_arn=principal, method="POST", path="/operator/decisions", stage="v1"
    )
    assert verdict.allowed


def test_a_predict_caller_is_refused_the_operator_route(template: Template, stack: Stack) -> None:
    """Allowed execute-api:Invoke on the whole API by its IAM policy, it still cannot decide: the
    API's resource policy denies it explicitly."""
    policy = _api_policy(template, stack)
    predict = evaluate_policy(
        policy, principal_arn=PREDICT_CLIENT, method="POST", path="/predict", stage="v1"
    )
    decide = evaluate_policy(
        policy, principal_arn=PREDICT_CLIENT, method="POST", path="/operator/decisions", stage="v1"
    )
    assert predict.allowed
    assert not decide.allowed
    assert decide.explicit_deny


def test_without_operators_nobody_may_decide_through_the_api() -> None:
    template = transformed()
    stack = Stack(template)
    policy = _api_policy(template, stack)
    for principal in (OPERATOR, PREDICT_CLIENT, None):
        verdict = evaluate_policy(
            policy, principal_arn=principal, method="POST", path="/operator/decisions", stage="v1"
        )
        assert not verdict.allowed, principal


@pytest.mark.parametrize(
    ("method", "path", "authorization"),
    [
        ("GET", "/approvals/abc", "NONE"),
        ("POST", "/approvals/abc", "NONE"),
        ("POST", "/slack/interactions", "NONE"),
        ("GET", "/health", "NONE"),
    ],
)
def test_the_open_routes_stay_open(
    template: Template, stack: Stack, method: str, path: str, authorization: str
) -> None:
    """A resource policy on an API makes every unauthenticated route need an explicit Allow."""
    verdict = evaluate_policy(
        _api_policy(template, stack),
        principal_arn=None,
        method=method,
        path=path,
        stage="v1",
        authorization=authorization,
    )
    assert verdict.allowed
