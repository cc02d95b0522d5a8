"""The template as CloudFormation receives it: transformed by the SAM translator in the test and
read resource by resource against DESIGN.md §3 to §6 and §9."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import cfnlint.data.AdditionalSpecs  # type: ignore[import-untyped]
import pytest

from tests import support_template
from tests.support_iam import Need, allows, is_iam_action, resource_types, role_policy
from tests.support_template import (
    REPO,
    Stack,
    Template,
    as_list,
    load_sam,
    ref_target,
    resources_of_type,
    role_statements,
    sam_parameters_with_everything_on,
    statements,
    transformed,
    translate,
)

# CodeDeploy's predefined deployment configurations for the Lambda compute platform.
CODEDEPLOY_LAMBDA_CONFIGS = {
    "CodeDeployDefault.LambdaAllAtOnce",
    "CodeDeployDefault.LambdaCanary10Percent5Minutes",
    "CodeDeployDefault.LambdaCanary10Percent10Minutes",
    "CodeDeployDefault.LambdaCanary10Percent15Minutes",
    "CodeDeployDefault.LambdaCanary10Percent30Minutes",
    "CodeDeployDefault.LambdaLinear10PercentEvery1Minute",
    "CodeDeployDefault.LambdaLinear10PercentEvery2Minutes",
    "CodeDeployDefault.LambdaLinear10PercentEvery3Minutes",
    "CodeDeployDefault.LambdaLinear10PercentEvery10Minutes",
}
ROLLBACK_ALARMS = {
    "CandidateEndpointErrorsAlarm",
    "CandidateLatencyAlarm",
    "PredictAliasErrorsAlarm",
}
# Alarms that cannot tell the candidate from production (any caller can make the API answer 5xx):
# they notify, never roll back.
NOT_ROLLBACK_ALARMS = {"Api5xxAlarm", "DriftAlarm"}

# Role statements that may say ``Resource: "*"``, and why. Each action here is one the Service
# Authorization Reference gives no resource type to (checked below against cfn-lint's copy).
RESOURCE_STAR_ALLOWED = {
    # SAM's SSMParameterReadPolicy lists parameters before reading one by name.
    "ssm:DescribeParameters",
    # SageMaker jobs pull the built-in images: the ECR login token is account-wide.
    "ecr:GetAuthorizationToken",
    # Metric data has no ARN; the statements narrow it with a cloudwatch:namespace condition.
    "cloudwatch:PutMetricData",
    # Step Functions' execution logging: vended log deliveries and the log resource policy.
    "logs:CreateLogDelivery",
    "logs:GetLogDelivery",
    "logs:UpdateLogDelivery",
    "logs:DeleteLogDelivery",
    "logs:ListLogDeliveries",
    "logs:PutResourcePolicy",
    "logs:DescribeResourcePolicies",
    "logs:DescribeLogGroups",
    # CloudWatch Synthetics' runtime lists buckets before writing its artifacts.
    "s3:ListAllMyBuckets",
    # X-Ray segments (the managed AWSXrayWriteOnlyAccess policy, if it is ever inlined).
    "xray:PutTraceSegments",
    "xray:PutTelemetryRecords",
}
# Allowed on "*" although the reference gives them a resource type, and why that type does not
# apply to these calls (the test fails if the reference's types change: look again).
SCOPABLE_BUT_NOT_HERE = {
    # "dataset" scopes metrics sent to a CloudWatch dataset; SageMaker's and Synthetics' metrics
    # go to plain namespaces, which have no ARN.
    "cloudwatch:PutMetricData": ("dataset",),
}
# Resource types whose name property CloudFormation fills in when the template leaves it out.
NAME_PROPERTIES = {
    "AWS::S3::Bucket": "BucketName",
    "AWS::Lambda::Function": "FunctionName",
    "AWS::Lambda::LayerVersion": "LayerName",
    "AWS::IAM::Role": "RoleName",
    "AWS::DynamoDB::Table": "TableName",
    "AWS::SNS::Topic": "TopicName",
    "AWS::SQS::Queue": "QueueName",
    "AWS::StepFunctions::StateMachine": "StateMachineName",
    "AWS::Logs::LogGroup": "LogGroupName",
    "AWS::CloudWatch::Alarm": "AlarmName",
    "AWS::CloudWatch::Dashboard": "DashboardName",
    "AWS::CodeDeploy::Application": "ApplicationName",
    "AWS::CodeDeploy::DeploymentGroup": "DeploymentGroupName",
    "AWS::SSM::Parameter": "Name",
    "AWS::SecretsManager::Secret": "Name",
    "AWS::Events::Rule": "Name",
    "AWS::ApiGateway::RestApi": "Name",
    "AWS::Synthetics::Canary": "Name",
    "AWS::KMS::Key": None,  # keys have ids; aliases would be names
    "AWS::SageMaker::ModelPackageGroup": "ModelPackageGroupName",
}
# Types with no account-wide name: scoped to a parent, or named by the service.
NAMELESS_TYPES = {
    "AWS::Lambda::Permission",
    "AWS::Lambda::Version",
    "AWS::Lambda::Alias",  # "live", scoped to its function
    "AWS::ApiGateway::Deployment",
    "AWS::ApiGateway::Stage",  # "v1", scoped to its API
    "AWS::ApiGateway::Account",  # the account's setting, not a named resource
    "AWS::S3::BucketPolicy",
    "AWS::SQS::QueuePolicy",
    "AWS::SNS::Subscription",
    "Custom::ModelCode",
}
# The physical names the template does give, each unique per stack or per parameter value.
NAMED = {
    "FaresApi": "${AWS::StackName}-api",  # the Api5xxAlarm's ApiName dimension needs it
    "ApiCanary": "${NamePrefix}-api-health",  # Synthetics requires a name (21 characters)
    "CommonLayer": "${AWS::StackName}-common",  # LayerVersion requires one; SAM's default is fixed
    # ApprovalApiFunction's policy names it by this name: a Ref would close a dependency cycle.
    "TrainingStateMachine": "${AWS::StackName}-training",
    "DeployStateMachine": "${AWS::StackName}-deploy",  # its policy names its own executions
    # SageMaker requires one; lower case (IAM matches the package ARNs built from it) and the
    # stack id's, so a group retained from a deleted stack never blocks a new one.
    "ModelPackageGroup": [
        "${NamePrefix}-models-${StackUuid}",
        {
            "StackUuid": {
                "Fn::Select": [
                    0,
                    {
                        "Fn::Split": [
                            "-",
                            {"Fn::Select": [2, {"Fn::Split": ["/", {"Ref": "AWS::StackId"}]}]},
                        ]
                    },
                ]
            }
        },
    ],
}


@pytest.fixture(scope="module")
def sam() -> Template:
    return load_sam()


@pytest.fixture(scope="module")
def template() -> Template:
    return transformed()


@pytest.fixture(scope="module")
def stack(template: Template) -> Stack:
    return Stack(template)


def _alias(template: Template) -> tuple[str, dict[str, Any]]:
    aliases = {
        k: v
        for k, v in resources_of_type(template, "AWS::Lambda::Alias").items()
        if v["Properties"]["FunctionName"] == {"Ref": "PredictFunction"}
    }
    assert len(aliases) == 1, f"PredictFunction should have one alias, has {list(aliases)}"
    return next(iter(aliases.items()))


def _deployment_group(template: Template) -> tuple[str, dict[str, Any]]:
    _, alias = _alias(template)
    update = alias["UpdatePolicy"]["CodeDeployLambdaAliasUpdate"]
    group_id = ref_target(update["DeploymentGroupName"])
    assert group_id is not None
    return group_id, template["Resources"][group_id]


# ---------------------------------------------------------------------------- the canary
def test_predict_releases_through_a_canary_deployment_group(
    template: Template, stack: Stack
) -> None:
    _, alias = _alias(template)
    assert alias["Properties"]["Name"] == "live"
    _, group = _deployment_group(template)
    assert group["Type"] == "AWS::CodeDeploy::DeploymentGroup"
    props = group["Properties"]
    default_type = template["Parameters"]["DeploymentType"]["Default"]
    assert default_type == "Canary10Percent5Minutes"
    assert stack.resolve(props["DeploymentConfigName"]) == (
        "CodeDeployDefault.LambdaCanary10Percent5Minutes"
    )
    assert props["DeploymentStyle"] == {
        "DeploymentType": "BLUE_GREEN",
        "DeploymentOption": "WITH_TRAFFIC_CONTROL",
    }
    assert ref_target(props["ApplicationName"]) == "ServerlessDeploymentApplication"
    assert template["Resources"]["ServerlessDeploymentApplication"]["Properties"] == {
        "ComputePlatform": "Lambda"
    }


def test_alarms_roll_the_canary_back(template: Template) -> None:
    _, group = _deployment_group(template)
    props = group["Properties"]
    assert props["AlarmConfiguration"]["Enabled"] is True
    alarms = {ref_target(a["Name"]) for a in props["AlarmConfiguration"]["Alarms"]}
    assert alarms == ROLLBACK_ALARMS
    for alarm in alarms:
        assert template["Resources"][alarm]["Type"] == "AWS::CloudWatch::Alarm"
    rollback = props["AutoRollbackConfiguration"]
    assert rollback["Enabled"] is True
    assert {"DEPLOYMENT_FAILURE", "DEPLOYMENT_STOP_ON_ALARM"} <= set(rollback["Events"])


def _dimensions(alarm: dict[str, Any], stack: Stack) -> dict[str, Any]:
    return {d["Name"]: stack.resolve(d["Value"]) for d in alarm["Properties"]["Dimensions"]}


def test_rollback_alarms_watch_metrics_the_release_emits(
    sam: Template, template: Template, stack: Stack
) -> None:
    """An alarm on a metric nobody emits never fires (DESIGN.md §3, "Alarms that really fire")."""
    res = template["Resources"]
    api = stack.resolve(res["FaresApi"]["Properties"])
    stage = next(iter(resources_of_type(template, "AWS::ApiGateway::Stage").values()))
    api_5xx = _dimensions(res["Api5xxAlarm"], stack)
    assert api_5xx == {"ApiName": api["Name"], "Stage": stage["Properties"]["StageName"]}
    alias_errors = _dimensions(res["PredictAliasErrorsAlarm"], stack)
    assert res["PredictAliasErrorsAlarm"]["Properties"]["Namespace"] == "AWS/Lambda"
    # the version being deployed (the one the alias points to after this update), not the alias
    alarm_version = res["PredictAliasErrorsAlarm"]["Properties"]["Dimensions"][-1]["Value"]
    green = _alias(template)[1]["Properties"]["FunctionVersion"]
    assert alias_errors.pop("ExecutedVersion") is not None
    assert alarm_version == {"Fn::GetAtt": [ref_target(green), "Version"]}
    assert alias_errors == {
        "FunctionName": stack.ref("PredictFunction"),
        "Resource": f"{stack.ref('PredictFunction')}:live",
    }
    powertools = sam["Globals"]["Function"]["Environment"]["Variables"]
    for name in ("CandidateEndpointErrorsAlarm", "CandidateLatencyAlarm"):
        props = res[name]["Properties"]
        assert props["Namespace"] == powertools["POWERTOOLS_METRICS_NAMESPACE"]
        assert _dimensions(res[name], stack) == {
            "service": powertools["POWERTOOLS_SERVICE_NAME"],
            "Release": "candidate",
        }


def test_traffic_hooks_are_wired_on_the_alias(template: Template) -> None:
    _, alias = _alias(template)
    update = alias["UpdatePolicy"]["CodeDeployLambdaAliasUpdate"]
    assert ref_target(update["ApplicationName"]) == "ServerlessDeploymentApplication"
    assert ref_target(update["BeforeAllowTrafficHook"]) == "PreTrafficHookFunction"
    assert ref_target(update["AfterAllowTrafficHook"]) == "PostTrafficHookFunction"
    for hook in ("PreTrafficHookFunction", "PostTrafficHookFunction"):
        assert template["Resources"][hook]["Type"] == "AWS::Lambda::Function"


def test_codedeploy_role_may_run_the_hooks_and_shift_the_alias(
    template: Template, stack: Stack
) -> None:
    _, group = _deployment_group(template)
    role_id = ref_target(group["Properties"]["ServiceRoleArn"])
    assert role_id == "CodeDeployServiceRole"
    role = template["Resources"][role_id]["Properties"]
    trust = [s for s in statements(role["AssumeRolePolicyDocument"]) if s["Effect"] == "Allow"]
    assert any(
        "codedeploy.amazonaws.com" in as_list(s["Principal"].get("Service", [])) for s in trust
    )
    policy = role_policy(stack, role_id)
    for hook in ("PreTrafficHookFunction", "PostTrafficHookFunction"):
        hook_arn = stack.attribute(hook, "Arn")
        assert allows(policy, Need("lambda:InvokeFunction", hook_arn)), hook
    alias_id, _ = _alias(template)
    for action in ("lambda:GetAlias", "lambda:UpdateAlias"):
        assert allows(policy, Need(action, stack.ref(alias_id))), action
    for alarm in ROLLBACK_ALARMS:
        assert allows(policy, Need("cloudwatch:DescribeAlarms", stack.attribute(alarm, "Arn")))


def test_deploy_state_machine_promotes_by_updating_its_own_stack(
    template: Template, stack: Stack
) -> None:
    """A promotion is an update of this stack (CloudFormation owns the live alias): the machine
    may update the stack, and may do what that update does with its credentials."""
    group_id, group = _deployment_group(template)
    machine = template["Resources"]["DeployStateMachine"]["Properties"]
    substitutions = machine["DefinitionSubstitutions"]
    assert substitutions["StackId"] == {"Ref": "AWS::StackId"}
    policy = role_policy(stack, ref_target(machine["RoleArn"]) or "")
    stack_arn = str(stack.ref("AWS::StackId"))
    for action in ("cloudformation:UpdateStack", "cloudformation:DescribeStacks"):
        assert allows(policy, Need(action, stack_arn)), action
    group_arn = stack.resolve(
        {
            "Fn::Sub": "arn:${AWS::Partition}:codedeploy:${AWS::Region}:${AWS::AccountId}"
            f":deploymentgroup:${{ServerlessDeploymentApplication}}/${{{group_id}}}"
        }
    )
    assert allows(policy, Need("codedeploy:CreateDeployment", group_arn))
    predict = stack.attribute("PredictFunction", "Arn")
    for action in ("lambda:UpdateFunctionConfiguration", "lambda:PublishVersion"):
        assert allows(policy, Need(action, predict)), action
    assert allows(policy, Need("lambda:UpdateAlias", f"{predict}:live"))
    for alarm in NOT_ROLLBACK_ALARMS:
        assert {"Ref": alarm} not in group["Properties"]["AlarmConfiguration"]["Alarms"]


def _predict_version(parameters: dict[str, str]) -> tuple[str, Any]:
    template = transformed(parameters, packaged=True)
    (version,) = (
        k
        for k, v in template["Resources"].items()
        if v["Type"] == "AWS::Lambda::Version"
        and v["Properties"]["FunctionName"] == {"Ref": "PredictFunction"}
    )
    description = template["Resources"][version]["Properties"]["Description"]
    return version, Stack(template, parameters).resolve(description)


def test_a_new_serving_endpoint_publishes_a_new_predict_version() -> None:
    """SAM names a version by the code and the properties, not by parameter values; but a
    version is immutable, and its description names the serving endpoint: a promotion (a new
    endpoint) replaces the version, and the alias's new version is canaried by CodeDeploy."""
    empty = _predict_version({})
    green = _predict_version({"ServingEndpoint": "fare-0123456789ab-prod"})
    assert empty[0] == green[0]  # the same resource ...
    assert empty[1] != green[1]  # ... whose properties change
    assert "fare-0123456789ab-prod" in green[1]


def _deployment_types() -> list[str]:
    spec = load_sam()["Parameters"]["DeploymentType"]
    return sorted(set(spec["AllowedValues"]) | {spec["Default"]})


@pytest.mark.parametrize("deployment_type", _deployment_types())
def test_every_deployment_type_is_a_real_codedeploy_config(deployment_type: str) -> None:
    """``sam validate`` accepts any string here, and CodeDeploy only fails at deploy time."""
    template = transformed({"DeploymentType": deployment_type})
    _, group = _deployment_group(template)
    config = Stack(template, {"DeploymentType": deployment_type}).resolve(
        group["Properties"]["DeploymentConfigName"]
    )
    assert config in CODEDEPLOY_LAMBDA_CONFIGS


def test_a_misspelled_deployment_type_gets_past_sam_but_not_this_check() -> None:
    sam = load_sam()
    sam["Resources"]["PredictFunction"]["Properties"]["DeploymentPreference"]["Type"] = (
        "Canary10Percent5Minute"
    )
    template = translate(sam)
    _, group = _deployment_group(template)
    assert Stack(template).resolve(group["Properties"]["DeploymentConfigName"]) not in (
        CODEDEPLOY_LAMBDA_CONFIGS
    )


# ---------------------------------------------------------------------------- functions
def test_every_function_runs_python_312_from_globals(sam: Template, template: Template) -> None:
    assert sam["Globals"]["Function"]["Runtime"] == "python3.12"
    overriding = [
        k
        for k, v in resources_of_type(sam, "AWS::Serverless::Function").items()
        if "Runtime" in v["Properties"]
    ]
    assert not overriding, f"functions that set their own Runtime: {overriding}"
    functions = resources_of_type(template, "AWS::Lambda::Function")
    assert functions
    assert {v["Properties"]["Runtime"] for v in functions.values()} == {"python3.12"}
    for layer in resources_of_type(template, "AWS::Lambda::LayerVersion").values():
        assert "python3.12" in layer["Properties"]["CompatibleRuntimes"]


def test_the_runtime_is_one_lambda_still_supports(sam: Template) -> None:
    """``sam validate`` accepts an unknown runtime in Globals (DESIGN.md §10)."""
    lifecycle = json.loads(
        (
            Path(cfnlint.data.AdditionalSpecs.__file__).parent / "LmbdRuntimeLifecycle.json"
        ).read_text()
    )
    runtime = sam["Globals"]["Function"]["Runtime"]
    assert runtime in lifecycle, f"{runtime} is not a Lambda runtime"
    deprecated = dt.date.fromisoformat(lifecycle[runtime]["deprecated"])
    assert deprecated > dt.date.today(), f"{runtime} is deprecated since {deprecated}"


def test_every_function_has_its_handler(sam: Template) -> None:
    for logical_id, resource in resources_of_type(sam, "AWS::Serverless::Function").items():
        handler = resource["Properties"].get("Handler", sam["Globals"]["Function"]["Handler"])
        module, function = handler.rsplit(".", 1)
        source = REPO / resource["Properties"]["CodeUri"] / f"{module}.py"
        assert source.is_file(), f"{logical_id}: {source} is missing"
        assert f"def {function}(" in source.read_text(), f"{logical_id}: no {function} in {source}"


# ---------------------------------------------------------------------------- IAM hygiene
def _roles(template: Template) -> list[str]:
    return sorted(resources_of_type(template, "AWS::IAM::Role"))


def test_no_role_statement_grants_every_resource_where_one_can_be_named(
    template: Template,
) -> None:
    stack = Stack(template, sam_parameters_with_everything_on())
    problems = []
    for role in _roles(template):
        for statement in role_statements(stack, role):
            if statement["Effect"] == "Allow" and "*" in as_list(statement.get("Resource", [])):
                problems += [
                    f"{role}: {action} on *"
                    for action in as_list(statement["Action"])
                    if action not in RESOURCE_STAR_ALLOWED
                ]
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("action", sorted(RESOURCE_STAR_ALLOWED))
def test_actions_allowed_on_every_resource_cannot_be_scoped(action: str) -> None:
    assert is_iam_action(action), f"{action} is not an IAM action"
    assert resource_types(action) == SCOPABLE_BUT_NOT_HERE.get(action, ()), (
        f"{action} can be scoped to {resource_types(action)}"
    )


def test_every_action_in_every_role_exists(template: Template) -> None:
    """A misspelled action is silently useless: cfn-lint's IAM catalogue knows every one."""
    stack = Stack(template, sam_parameters_with_everything_on())
    unknown = [
        f"{role}: {action}"
        for role in _roles(template)
        for statement in role_statements(stack, role)
        for action in as_list(statement.get("Action", []))
        if "*" not in action and not is_iam_action(action)
    ]
    assert not unknown, unknown


# ---------------------------------------------------------------------------- storage
def _bucket_policy(template: Template, bucket: str) -> dict[str, Any] | None:
    for policy in resources_of_type(template, "AWS::S3::BucketPolicy").values():
        if ref_target(policy["Properties"]["Bucket"]) == bucket:
            document: dict[str, Any] = policy["Properties"]["PolicyDocument"]
            return document
    return None


def _secure_transport(statement: dict[str, Any]) -> Any:
    return statement.get("Condition", {}).get("Bool", {}).get("aws:SecureTransport")


def test_every_bucket_is_private_encrypted_and_tls_only(template: Template, stack: Stack) -> None:
    buckets = resources_of_type(template, "AWS::S3::Bucket")
    assert set(buckets) >= {"DataBucket", "ArtifactBucket", "CaptureBucket"}
    for name, bucket in buckets.items():
        props = bucket["Properties"]
        assert props.get("PublicAccessBlockConfiguration") == {
            "BlockPublicAcls": True,
            "BlockPublicPolicy": True,
            "IgnorePublicAcls": True,
            "RestrictPublicBuckets": True,
        }, name
        rules = props.get("BucketEncryption", {}).get("ServerSideEncryptionConfiguration", [])
        assert rules, f"{name} has no default encryption"
        assert all(r["ServerSideEncryptionByDefault"]["SSEAlgorithm"] for r in rules), name
        document = _bucket_policy(template, name)
        assert document is not None, f"{name} has no bucket policy"
        bucket_arn = stack.attribute(name, "Arn")
        tls_only = [
            s
            for s in statements(stack.resolve(document))
            if s["Effect"] == "Deny"
            and s.get("Principal") in ("*", {"AWS": "*"})
            and "s3:*" in as_list(s["Action"])
            and {bucket_arn, f"{bucket_arn}/*"} <= set(as_list(s["Resource"]))
            and _secure_transport(s) in ("false", False)
        ]
        assert tls_only, f"{name} does not refuse plain HTTP"


def test_no_physical_names_but_per_stack_ones(sam: Template, template: Template) -> None:
    """Two stacks in one account must not collide: names come from CloudFormation, or are
    built from the stack name or a parameter."""
    kinds = {r["Type"] for r in template["Resources"].values()}
    unknown = kinds - set(NAME_PROPERTIES) - NAMELESS_TYPES
    assert not unknown, f"say whether these types take a physical name: {unknown}"
    named = {}
    for logical_id, resource in template["Resources"].items():
        prop = NAME_PROPERTIES.get(resource["Type"])
        if prop and prop in resource.get("Properties", {}):
            named[_source_id(sam, logical_id)] = resource["Properties"][prop]
    assert {k: v.get("Fn::Sub") if isinstance(v, dict) else v for k, v in named.items()} == NAMED


def _source_id(sam: Template, logical_id: str) -> str:
    """The template's logical id of a generated one (``CommonLayer`` for ``CommonLayerab12``)."""
    if logical_id in sam["Resources"]:
        return logical_id
    return next((k for k in sam["Resources"] if logical_id.startswith(k)), logical_id)


# ---------------------------------------------------------------------------- notifications
def test_alarm_notifications_can_reach_their_topic(template: Template) -> None:
    """CloudWatch cannot publish to a topic encrypted with the AWS managed ``alias/aws/sns``
    key; a key of the stack must let cloudwatch.amazonaws.com use it."""
    stack = Stack(template)
    for name, alarm in resources_of_type(template, "AWS::CloudWatch::Alarm").items():
        for action in alarm["Properties"].get("AlarmActions", []):
            topic = ref_target(action)
            assert topic is not None
            key = template["Resources"][topic]["Properties"].get("KmsMasterKeyId")
            if key is None:
                continue
            key_id = ref_target(key)
            assert key_id is not None, f"{name} -> {topic}: encrypted with {key}, not our key"
            policy = stack.resolve(template["Resources"][key_id]["Properties"]["KeyPolicy"])
            cloudwatch = [
                s
                for s in statements(policy)
                if s["Effect"] == "Allow"
                and "cloudwatch.amazonaws.com" in as_list(s["Principal"].get("Service", []))
            ]
            for needed in ("kms:Decrypt", "kms:GenerateDataKey"):
                assert allows(cloudwatch, Need(needed, "*")), f"{key_id}: CloudWatch needs {needed}"


def test_a_new_layer_publishes_new_versions(monkeypatch: pytest.MonkeyPatch) -> None:
    """A change to the shared layer reaches production only through a canary: SAM publishes a
    new version of the functions that use it (``PublishLambdaVersion`` on the layer)."""

    def versions(template: Template) -> set[str]:
        return {k for k, v in template["Resources"].items() if v["Type"] == "AWS::Lambda::Version"}

    before = versions(transformed(packaged=True))
    original = support_template.for_translator

    def new_layer(sam: Template, root: Path = REPO, packaged: bool = False) -> Template:
        document = original(sam, root, packaged)
        document["Resources"]["CommonLayer"]["Properties"]["ContentUri"] = "s3://b/layer-v2.zip"
        return document

    monkeypatch.setattr(support_template, "for_translator", new_layer)
    # translated anew, not from transformed()'s cache: the change is in for_translator
    after = versions(translate(load_sam(), {}, packaged=True))
    assert {v for v in before if v.startswith("PredictFunctionVersion")}.isdisjoint(after)
