"""The local cloud's CloudFormation, through CloudFormation's API (boto3, as the SAM CLI calls it):
change sets, creation in dependency order, a refused cycle, updates of only what changed,
custom resources, a failed update rolled back, deletion with ``DeletionPolicy: Retain``."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from safe_deploy.localcloud.cloud import LocalCloud
from safe_deploy.localcloud.state import LocalSettings
from tests.support_template import load_sam

ROOT = Path(__file__).resolve().parents[2]

# A custom resource's function, inline: it answers CloudFormation at the ResponseURL and counts
# the requests it gets in SSM, so a test can see which ones CloudFormation sent.
RESPONDER = """
import json, urllib.request, boto3
def handler(event, context):
    ssm, props = boto3.client("ssm"), event["ResourceProperties"]
    try:
        journal = json.loads(ssm.get_parameter(Name=props["Journal"])["Parameter"]["Value"])
    except ssm.exceptions.ParameterNotFound:
        journal = []
    journal.append(event["RequestType"])
    ssm.put_parameter(Name=props["Journal"], Value=json.dumps(journal), Overwrite=True)
    body = {"Status": "SUCCESS", "PhysicalResourceId": "thing-" + props["Size"],
            "StackId": event["StackId"], "RequestId": event["RequestId"],
            "LogicalResourceId": event["LogicalResourceId"], "Data": {"Size": props["Size"]}}
    data = json.dumps(body).encode()
    urllib.request.urlopen(urllib.request.Request(event["ResponseURL"], data, method="PUT"))
"""


def small_template(size: str = "1", note: str = "a", extra: dict[str, Any] | None = None) -> str:
    resources: dict[str, Any] = {
        "Role": {
            "Type": "AWS::IAM::Role",
            "Properties": {
                "AssumeRolePolicyDocument": {
                    "Statement": [
                        {
                            "Effect": "Allow",
                            "Principal": {"Service": "lambda.amazonaws.com"},
                            "Action": "sts:AssumeRole",
                        }
                    ]
                }
            },
        },
        "Responder": {
            "Type": "AWS::Lambda::Function",
            "Properties": {
                "Runtime": "python3.12",
                "Handler": "index.handler",
                "Role": {"Fn::GetAtt": ["Role", "Arn"]},
                "Code": {"ZipFile": RESPONDER},
            },
        },
        "Thing": {
            "Type": "Custom::Thing",
            "Properties": {
                "ServiceToken": {"Fn::GetAtt": ["Responder", "Arn"]},
                "Size": size,
                "Journal": {"Fn::Sub": "${AWS::StackName}-journal"},
            },
        },
        "Note": {
            "Type": "AWS::SSM::Parameter",
            "Properties": {"Type": "String", "Value": {"Fn::Sub": "${Thing.Size}-${Word}"}},
        },
        "Kept": {
            "Type": "AWS::SQS::Queue",
            "DeletionPolicy": "Retain",
        },
    }
    resources.update(extra or {})
    return json.dumps(
        {
            "Parameters": {"Word": {"Type": "String", "Default": note}},
            "Resources": resources,
            "Outputs": {
                "NoteName": {"Value": {"Ref": "Note"}},
                "KeptUrl": {"Value": {"Ref": "Kept"}},
            },
        }
    )


@pytest.fixture(scope="module")
def cloud(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCloud]:
    settings = LocalSettings(
        project_root=ROOT, workdir=tmp_path_factory.mktemp("cfn") / "cloud", local_channels=False
    )
    with LocalCloud(settings) as running:
        yield running


def wait(cloud: LocalCloud, name: str) -> dict[str, Any]:
    cfn = cloud.client("cloudformation")
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        stack: dict[str, Any] = cfn.describe_stacks(StackName=name)["Stacks"][0]
        if not stack["StackStatus"].endswith("IN_PROGRESS"):
            return stack
        time.sleep(0.05)
    raise TimeoutError(name)


def deploy(cloud: LocalCloud, name: str, body: str, kind: str, **extra: Any) -> dict[str, Any]:
    cfn = cloud.client("cloudformation")
    change_set = cfn.create_change_set(
        StackName=name,
        ChangeSetName=f"cs-{uuid.uuid4().hex[:8]}",
        ChangeSetType=kind,
        TemplateBody=body,
        Capabilities=["CAPABILITY_IAM"],
        **extra,
    )
    described: dict[str, Any] = cfn.describe_change_set(ChangeSetName=change_set["Id"])
    if described["Status"] == "CREATE_COMPLETE":
        cfn.execute_change_set(ChangeSetName=change_set["Id"])
        wait(cloud, name)
    return described


def journal(cloud: LocalCloud, name: str) -> list[str]:
    value = cloud.client("ssm").get_parameter(Name=f"{name}-journal")["Parameter"]["Value"]
    entries: list[str] = json.loads(value)
    return entries


def events(cloud: LocalCloud, name: str) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = cloud.client("cloudformation").describe_stack_events(
        StackName=name
    )["StackEvents"]
    return list(reversed(found))


def test_create_update_and_delete_follow_cloudformations_rules(cloud: LocalCloud) -> None:
    name = "small-" + uuid.uuid4().hex[:6]
    cfn, ssm = cloud.client("cloudformation"), cloud.client("ssm")
    created = deploy(cloud, name, small_template(), "CREATE")
    assert {c["ResourceChange"]["Action"] for c in created["Changes"]} == {"Add"}
    stack = cfn.describe_stacks(StackName=name)["Stacks"][0]
    assert stack["StackStatus"] == "CREATE_COMPLETE"
    outputs = {o["OutputKey"]: o["OutputValue"] for o in stack["Outputs"]}
    assert ssm.get_parameter(Name=outputs["NoteName"])["Parameter"]["Value"] == "1-a"
    resource = cfn.describe_stack_resource(StackName=name, LogicalResourceId="Thing")
    assert resource["StackResourceDetail"]["PhysicalResourceId"] == "thing-1"

    # Only a parameter changes: the custom resource gets no Update, the parameter does.
    changed = deploy(
        cloud, name, small_template(), "UPDATE",
        Parameters=[{"ParameterKey": "Word", "ParameterValue": "b"}],
    )  # fmt: skip
    assert [c["ResourceChange"]["LogicalResourceId"] for c in changed["Changes"]] == ["Note"]
    assert ssm.get_parameter(Name=outputs["NoteName"])["Parameter"]["Value"] == "1-b"
    assert journal(cloud, name) == ["Create"]

    # Nothing changes: CloudFormation's own words, which the SAM CLI reads as "no changes".
    same = deploy(
        cloud, name, small_template(), "UPDATE",
        Parameters=[{"ParameterKey": "Word", "UsePreviousValue": True}],
    )  # fmt: skip
    assert same["Status"] == "FAILED"
    assert "didn't contain changes" in same["StatusReason"]

    # The custom resource's properties change: an Update, a new physical id, and the old one
    # deleted in the cleanup, as CloudFormation does.
    deploy(
        cloud, name, small_template(size="2"), "UPDATE",
        Parameters=[{"ParameterKey": "Word", "UsePreviousValue": True}],
    )  # fmt: skip
    assert journal(cloud, name) == ["Create", "Update", "Delete"]
    assert ssm.get_parameter(Name=outputs["NoteName"])["Parameter"]["Value"] == "2-b"

    cfn.delete_stack(StackName=name)
    final = wait(cloud, stack["StackId"])
    assert final["StackStatus"] == "DELETE_COMPLETE"
    assert journal(cloud, name) == ["Create", "Update", "Delete", "Delete"]
    kept = [e for e in events(cloud, stack["StackId"]) if e["LogicalResourceId"] == "Kept"]
    assert kept[-1]["ResourceStatus"] == "DELETE_SKIPPED"
    assert outputs["KeptUrl"] in cloud.client("sqs").list_queues().get("QueueUrls", [])
    with pytest.raises(ClientError, match="does not exist"):
        cfn.describe_stacks(StackName=name)


def test_a_failed_update_rolls_back_with_the_reason(cloud: LocalCloud) -> None:
    name = "failing-" + uuid.uuid4().hex[:6]
    deploy(cloud, name, small_template(), "CREATE")
    broken = {
        "Broken": {
            "Type": "AWS::StepFunctions::StateMachine",
            "DependsOn": "Thing",
            "Properties": {
                "DefinitionString": "{not json",
                "RoleArn": {"Fn::GetAtt": ["Role", "Arn"]},
            },
        }
    }
    deploy(cloud, name, small_template(size="3", extra=broken), "UPDATE")
    stack = cloud.client("cloudformation").describe_stacks(StackName=name)["Stacks"][0]
    assert stack["StackStatus"] == "UPDATE_ROLLBACK_COMPLETE"
    failed = [e for e in events(cloud, name) if e["ResourceStatus"] == "CREATE_FAILED"]
    assert failed
    assert "Invalid State Machine Definition" in failed[0]["ResourceStatusReason"]
    # The custom resource went to size 3 (a new physical id), then the rollback deleted that one
    # and the stack has size 1 again.
    thing = cloud.client("cloudformation").describe_stack_resource(
        StackName=name, LogicalResourceId="Thing"
    )["StackResourceDetail"]
    assert thing["PhysicalResourceId"] == "thing-1"
    assert journal(cloud, name) == ["Create", "Update", "Delete"]


def test_a_dependency_cycle_is_refused_with_cloudformations_message(cloud: LocalCloud) -> None:
    """The application's own template with the approval API's callback policy naming the
    training state machine by Ref: the cycle only the transform shows."""
    sam = load_sam()
    policies = sam["Resources"]["ApprovalApiFunction"]["Properties"]["Policies"]
    for policy in policies:
        for statement in policy.get("Statement", []) if isinstance(policy, dict) else []:
            if statement.get("Sid") == "AnswerTheWaitingTask":
                statement["Resource"] = {"Ref": "TrainingStateMachine"}
    described = deploy(cloud, "cyclic", json.dumps(packaged(sam)), "CREATE")
    assert described["Status"] == "FAILED"
    reason = described["StatusReason"]
    assert reason.startswith("Circular dependency between resources: [")
    for member in ("TrainingStateMachine", "ApprovalApiFunctionRole", "FaresApi"):
        assert member in reason


def packaged(sam: dict[str, Any]) -> dict[str, Any]:
    """The application's template with its code where ``sam package`` would put it."""
    for resource in sam["Resources"].values():
        props = resource.get("Properties", {})
        for key in ("CodeUri", "ContentUri"):
            if isinstance(props.get(key), str):
                props[key] = "s3://nowhere/code.zip"
        if isinstance(props.get("DefinitionUri"), str):
            props["DefinitionUri"] = "s3://nowhere/definition.json"
    return sam


@pytest.mark.parametrize(
    ("parameters", "refusal"),
    [
        (
            {"SlackSigningSecretArn": "arn:aws:secretsmanager:us-east-1:123456789012:secret:s"},
            "SlackTeamId is required with SlackSigningSecretArn",
        ),
        ({"SlackApproverGroup": "S0123ABCD"}, "SlackApproverGroup needs SlackBotTokenSecretArn"),
    ],
)
def test_the_templates_rules_refuse_parameters_that_do_not_go_together(
    cloud: LocalCloud, parameters: dict[str, str], refusal: str
) -> None:
    """CloudFormation evaluates the ``Rules`` section before it touches a resource."""
    given = [{"ParameterKey": k, "ParameterValue": v} for k, v in parameters.items()]
    described = deploy(cloud, "ruled", json.dumps(packaged(load_sam())), "CREATE", Parameters=given)
    assert described["Status"] == "FAILED"
    assert refusal in described["StatusReason"]


def test_the_application_stack_was_made_by_a_change_set(cloud: LocalCloud) -> None:
    cfn = cloud.client("cloudformation")
    stack = cfn.describe_stacks(StackName=cloud.settings.stack_name)["Stacks"][0]
    assert stack["StackStatus"] == "CREATE_COMPLETE"
    # boto3 hands a JSON template body over parsed
    template = cfn.get_template(StackName=stack["StackName"], TemplateStage="Processed")[
        "TemplateBody"
    ]
    alias = template["Resources"]["PredictFunctionAliaslive"]
    assert "CodeDeployLambdaAliasUpdate" in alias["UpdatePolicy"]
    resources = cfn.list_stack_resources(StackName=stack["StackName"])["StackResourceSummaries"]
    listed = {r["LogicalResourceId"] for r in resources}
    unconditional = {k for k, v in template["Resources"].items() if "Condition" not in v}
    assert unconditional <= listed <= set(template["Resources"])
    assert "NotificationSubscription" not in listed  # its condition is false by default
    assert all(r["ResourceStatus"] == "CREATE_COMPLETE" for r in resources)
