"""Every AWS call a function's code makes, and every Task a state machine runs, is allowed by its
role in the transformed template (DESIGN.md §9). The needs are derived from the code and the ASL
(``tests/support_code.py``, ``tests/support_iam.py``), never listed by hand.

The template is evaluated with every optional feature on (Slack, SES, e-mail, retraining on
drift): code may call what a feature needs, so the role must allow it when the feature is on.
"""

from __future__ import annotations

import ast
import copy
import json
import shutil
from pathlib import Path

import pytest

from tests.support_iam import (
    Check,
    Need,
    allows,
    function_check,
    is_iam_action,
    role_policy,
    state_machine_check,
)
from tests.support_template import (
    REPO,
    Stack,
    Template,
    arn,
    load_sam,
    ref_target,
    resources_of_type,
    sam_parameters_with_everything_on,
    transformed,
)

SAM = load_sam()
FUNCTIONS = sorted(resources_of_type(SAM, "AWS::Serverless::Function"))
MACHINES = sorted(resources_of_type(SAM, "AWS::Serverless::StateMachine"))
EVERYTHING_ON = sam_parameters_with_everything_on()


@pytest.fixture(scope="module")
def template() -> Template:
    return transformed(EVERYTHING_ON)


@pytest.fixture(scope="module")
def stack(template: Template) -> Stack:
    return Stack(template, EVERYTHING_ON)


def _problems(check: Check, stack: Stack) -> list[str]:
    problems = [f"not an IAM action: {n}" for n in check.needs if not is_iam_action(n.action)]
    if check.report is not None:
        problems += [
            f"{u.where}: {u.service} has no operation for .{u.method}()"
            for u in check.report.unmapped
        ]
    problems += [f"{check.role} does not allow {n}" for n in check.missing(stack)]
    return problems


def _actions(check: Check) -> set[str]:
    return {n.action for n in check.needs}


@pytest.mark.parametrize("function_id", FUNCTIONS)
def test_function_code_calls_are_allowed(
    function_id: str, template: Template, stack: Stack
) -> None:
    check = function_check(SAM, template, stack, function_id)
    problems = _problems(check, stack)
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("machine_id", MACHINES)
def test_state_machine_tasks_are_allowed(machine_id: str, template: Template, stack: Stack) -> None:
    check = state_machine_check(SAM, template, stack, machine_id)
    assert check.needs
    problems = _problems(check, stack)
    assert not problems, "\n".join(problems)


# ---------------------------------------------------------------------------- the analysis itself
def test_the_analysis_follows_clients_into_the_library(template: Template, stack: Stack) -> None:
    """Clients built in a handler and used in pipeline_common, a DynamoDB table held by a class,
    paginators and Powertools helpers are all seen; calls are followed, not whole modules."""
    predict = _actions(function_check(SAM, template, stack, "PredictFunction"))
    assert {"sagemaker:InvokeEndpoint", "ssm:GetParameter"} <= predict
    pre = _actions(function_check(SAM, template, stack, "PreTrafficHookFunction"))
    assert {
        "codedeploy:GetDeployment",
        "codedeploy:PutLifecycleEventHookExecutionStatus",
        "lambda:GetFunctionConfiguration",
        "sagemaker:DescribeEndpoint",
        "sagemaker:InvokeEndpoint",
    } <= pre
    post = _actions(function_check(SAM, template, stack, "PostTrafficHookFunction"))
    assert {"s3:ListBucket", "s3:GetObject"} <= post
    assert "sagemaker:InvokeEndpoint" not in post  # post_traffic_checks reads capture only
    start = _actions(function_check(SAM, template, stack, "StartPipelineFunction"))
    assert {"states:StartExecution", "s3:ListBucket"} <= start
    dev_test = _actions(function_check(SAM, template, stack, "TestDevEndpointFunction"))
    assert {"s3:ListBucket", "s3:GetObject", "s3:PutObject"} <= dev_test  # lists prepared/test
    api = _actions(function_check(SAM, template, stack, "ApprovalApiFunction"))
    assert {"dynamodb:GetItem", "dynamodb:UpdateItem", "states:SendTaskSuccess"} <= api
    drift = function_check(SAM, template, stack, "DriftCheckFunction")
    key = stack.attribute("NotificationKey", "Arn")
    assert {(n.action, n.resource) for n in drift.needs} >= {
        ("sns:Publish", None),
        ("kms:GenerateDataKey", key),
    }


def test_state_machine_needs_include_what_sync_integrations_need(
    template: Template, stack: Stack
) -> None:
    training = state_machine_check(SAM, template, stack, "TrainingStateMachine")
    sagemaker_role = stack.attribute("SageMakerExecutionRole", "Arn")
    rules = {n.resource for n in training.needs if n.action == "events:PutRule"}
    assert rules == {
        f"arn:aws:events:us-east-1:123456789012:rule/StepFunctionsGetEventsFor{name}"
        for name in (
            "SageMakerTrainingJobsRule",
            "SageMakerProcessingJobsRule",
            "StepFunctionsExecutionRule",
        )
    }
    assert Need(
        "iam:PassRole",
        sagemaker_role,
        (("iam:PassedToService", "sagemaker.amazonaws.com"),),
    ) in {Need(n.action, n.resource, n.context) for n in training.needs}
    deploy = _actions(state_machine_check(SAM, template, stack, "DeployStateMachine"))
    assert {"cloudformation:UpdateStack", "dynamodb:PutItem", "iam:PassRole"} <= deploy
    # Application Auto Scaling checks its caller's permissions on the endpoint and the alarms.
    assert {"sagemaker:UpdateEndpointWeightsAndCapacities", "cloudwatch:PutMetricAlarm"} <= deploy


def _insert_first_in(source: Path, function: str, line: str) -> str:
    """``source`` with ``line`` as the first statement of ``function`` (wherever it is)."""
    text = source.read_text()
    node = next(
        n
        for n in ast.walk(ast.parse(text))
        if isinstance(n, ast.FunctionDef) and n.name == function
    )
    first = node.body[0]
    lines = text.splitlines(keepends=True)
    indent = " " * first.col_offset
    lines.insert(first.lineno - 1, f"{indent}{line}\n")
    return "".join(lines)


def test_a_call_added_in_a_handler_without_its_permission_is_reported(
    tmp_path: Path, template: Template, stack: Stack
) -> None:
    handler = REPO / "functions" / "evaluate_model" / "app.py"
    changed = tmp_path / "app.py"
    changed.write_text(
        _insert_first_in(handler, "lambda_handler", 'SAGEMAKER.delete_model(ModelName="x")')
    )
    check = function_check(SAM, template, stack, "EvaluateModelFunction", source=changed)
    missing = {n.action for n in check.missing(stack)}
    assert missing == {"sagemaker:DeleteModel"}
    assert any(
        p.startswith("EvaluateModelFunctionRole does not allow sagemaker:DeleteModel")
        for p in _problems(check, stack)
    )


def test_a_call_added_in_the_library_without_its_permission_is_reported(
    tmp_path: Path, template: Template, stack: Stack
) -> None:
    """The call is made through a typed parameter of pipeline_common, not in the handler."""
    library = tmp_path / "common"
    shutil.copytree(REPO / "layers" / "common", library)
    hooks = library / "pipeline_common" / "hooks.py"
    hooks.write_text(
        _insert_first_in(hooks, "pre_traffic_checks", 'sagemaker.delete_endpoint(EndpointName="x")')
    )
    handler = REPO / "functions" / "pre_traffic_hook" / "app.py"
    check = function_check(
        SAM, template, stack, "PreTrafficHookFunction", source=handler, library_roots=[library]
    )
    assert {n.action for n in check.missing(stack)} == {"sagemaker:DeleteEndpoint"}


def test_a_method_that_is_no_operation_is_reported(
    tmp_path: Path, template: Template, stack: Stack
) -> None:
    handler = REPO / "functions" / "evaluate_model" / "app.py"
    changed = tmp_path / "app.py"
    changed.write_text(_insert_first_in(handler, "lambda_handler", "SAGEMAKER.describe_jobz()"))
    check = function_check(SAM, template, stack, "EvaluateModelFunction", source=changed)
    assert check.report is not None
    assert [u.method for u in check.report.unmapped] == ["describe_jobz"]


def _without_statement(template: Template, role: str, sid: str) -> Template:
    changed = copy.deepcopy(template)
    policies = changed["Resources"][role]["Properties"]["Policies"]
    removed = 0
    for policy in policies:
        statements = policy["PolicyDocument"]["Statement"]
        kept = [s for s in statements if s.get("Sid") != sid]
        removed += len(statements) - len(kept)
        policy["PolicyDocument"]["Statement"] = kept
    assert removed == 1, f"{role} has no statement {sid}"
    return changed


def test_a_removed_statement_is_reported() -> None:
    template = _without_statement(
        transformed(EVERYTHING_ON), "DeployStateMachineRole", "PromoteByUpdatingTheStack"
    )
    stack = Stack(template, EVERYTHING_ON)
    check = state_machine_check(SAM, template, stack, "DeployStateMachine")
    missing = {n.action for n in check.missing(stack)}
    assert {
        "cloudformation:UpdateStack",
        "cloudformation:DescribeStacks",
        "cloudformation:DescribeStackEvents",
    } == missing


def test_a_task_on_a_resource_the_role_does_not_name_is_reported(
    tmp_path: Path, template: Template, stack: Stack
) -> None:
    """Resource-level: the deploy state machine may update the predict function (through its
    stack), not invoke it."""
    sam = copy.deepcopy(SAM)
    props = sam["Resources"]["DeployStateMachine"]["Properties"]
    document = json.loads((REPO / props["DefinitionUri"]).read_text())
    document["States"]["InvokePredict"] = {
        "Type": "Task",
        "Resource": "arn:aws:states:::lambda:invoke",
        "Parameters": {"FunctionName": stack.ref("PredictFunction"), "Payload": {}},
        "End": True,
    }
    changed = tmp_path / "deploy.asl.json"
    changed.write_text(json.dumps(document))
    props["DefinitionUri"] = str(changed)
    check = state_machine_check(sam, template, stack, "DeployStateMachine")
    assert [(n.action, n.resource) for n in check.missing(stack)] == [
        ("lambda:InvokeFunction", stack.attribute("PredictFunction", "Arn"))
    ]


# ---------------------------------------------------------------- what a promotion's update does
PIPELINE_OWNED = "ServingEndpoint"  # the one parameter the deploy state machine's update changes


def _mentions(value: object, name: str) -> bool:
    text = json.dumps(value)
    return f'"Ref": "{name}"' in text or f"${{{name}}}" in text


def _promotion_needs(template: Template, stack: Stack) -> list[Need]:
    """What CloudFormation calls, with its caller's credentials, in a promotion's update: derived
    from the transformed template (the resources a new ServingEndpoint changes)."""
    resources = template["Resources"]
    changed = {
        k for k, v in resources.items() if _mentions(v.get("Properties", {}), PIPELINE_OWNED)
    }
    # an immutable version is replaced: whatever reads its attributes changes too
    for logical_id, resource in resources.items():
        for replaced in [k for k in changed if resources[k]["Type"] == "AWS::Lambda::Version"]:
            if f'"Fn::GetAtt": ["{replaced}"' in json.dumps(resource.get("Properties", {})):
                changed.add(logical_id)
    kinds = {resources[k]["Type"] for k in changed}
    assert kinds == {
        "AWS::Lambda::Function",
        "AWS::Lambda::Version",
        "AWS::Lambda::Alias",
        "AWS::CloudWatch::Alarm",  # the green version's errors alarm names the new version
    }, kinds

    needs: list[Need] = [
        Need(
            "cloudformation:CreateChangeSet",
            "arn:aws:cloudformation:us-east-1:aws:transform/Serverless-2016-10-31",
        )
    ]
    for logical_id in sorted(changed):
        resource = resources[logical_id]
        props = resource["Properties"]
        if resource["Type"] == "AWS::Lambda::Function":
            function = stack.attribute(logical_id, "Arn")
            needs += [
                Need(a, function)
                for a in ("lambda:GetFunction", "lambda:UpdateFunctionConfiguration")
            ]
            role = stack.resolve(props["Role"])
            needs.append(
                Need("iam:PassRole", role, (("iam:PassedToService", "lambda.amazonaws.com"),))
            )
            for layer in props.get("Layers", []):
                name = stack.resolve(resources[ref_target(layer) or ""]["Properties"]["LayerName"])
                needs.append(Need("lambda:GetLayerVersion", arn("lambda", f"layer:{name}:2")))
        elif resource["Type"] == "AWS::Lambda::Version":
            function = stack.attribute(props["FunctionName"]["Ref"], "Arn")
            needs.append(Need("lambda:PublishVersion", function))
        elif resource["Type"] == "AWS::CloudWatch::Alarm":
            alarm = stack.attribute(logical_id, "Arn")
            needs += [
                Need(a, alarm) for a in ("cloudwatch:PutMetricAlarm", "cloudwatch:DescribeAlarms")
            ]
        else:
            alias = stack.ref(logical_id)
            needs += [Need(a, alias) for a in ("lambda:GetAlias", "lambda:UpdateAlias")]
            update = stack.resolve(resource["UpdatePolicy"]["CodeDeployLambdaAliasUpdate"])
            group = arn(
                "codedeploy",
                f"deploymentgroup:{update['ApplicationName']}/{update['DeploymentGroupName']}",
            )
            needs += [
                Need(a, group) for a in ("codedeploy:CreateDeployment", "codedeploy:GetDeployment")
            ]
    return needs


def _missing(template: Template, stack: Stack) -> list[tuple[str, str | None]]:
    policy = role_policy(stack, "DeployStateMachineRole")
    return [
        (n.action, n.resource) for n in _promotion_needs(template, stack) if not allows(policy, n)
    ]


def test_the_deploy_role_may_do_what_a_promotion_update_does(
    template: Template, stack: Stack
) -> None:
    """The deploy state machine starts the update, so CloudFormation acts with its role."""
    assert not _missing(template, stack)


def test_a_promotion_permission_removed_is_reported() -> None:
    template = _without_statement(
        transformed(EVERYTHING_ON), "DeployStateMachineRole", "UpdateBindsPredictToGreen"
    )
    missing = {action for action, _ in _missing(template, Stack(template, EVERYTHING_ON))}
    assert {
        "lambda:GetFunction",
        "lambda:UpdateFunctionConfiguration",
        "lambda:PublishVersion",
        "lambda:GetAlias",
        "lambda:UpdateAlias",
    } == missing
