"""What each role must allow, derived from the code and the ASL, and what its policies do allow.

Needs come from two places, never from a hand-kept list:
- a function's code (``tests/support_code.py`` finds the botocore operations it can call);
- a state machine's Task states (each ``Resource`` names an integration, whose permissions
  follow AWS's documented policies for that integration).

Operations become IAM actions through the service's own metadata (its signing name), with a
table for the few operations whose IAM action has another name; every action is then checked
against cfn-lint's copy of the Service Authorization Reference, so a wrong mapping fails loudly.

Policies are evaluated for the imaginary stack of ``tests/support_template.py``: wildcards in
actions and resources, ``Deny``, and the conditions a need carries (``iam:PassedToService``,
``kms:ViaService``). Conditions on keys a need does not carry are taken as met.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cfnlint.data.AdditionalSpecs  # type: ignore[import-untyped]

from tests.support_asl import tasks
from tests.support_code import Report, analyse, sdk_service, service_model
from tests.support_template import (
    REGION,
    REPO,
    Stack,
    Template,
    arn,
    as_list,
    ref_target,
    resources_of_type,
    statements,
)

# botocore's signing name (or endpoint prefix) is the IAM prefix, except for these services.
IAM_PREFIX_OVERRIDES = {"cloudwatch": "cloudwatch"}  # botocore says "monitoring"

# Operations authorised by an IAM action of another name (Service Authorization Reference).
ACTION_OVERRIDES: dict[tuple[str, str], tuple[str, ...]] = {
    ("s3", "ListObjectsV2"): ("s3:ListBucket",),
    ("s3", "ListObjects"): ("s3:ListBucket",),
    ("s3", "HeadObject"): ("s3:GetObject",),
    ("s3", "HeadBucket"): ("s3:ListBucket",),
    ("s3", "ListObjectVersions"): ("s3:ListBucketVersions",),
    ("s3", "CreateMultipartUpload"): ("s3:PutObject",),
    ("s3", "UploadPart"): ("s3:PutObject",),
    ("s3", "CompleteMultipartUpload"): ("s3:PutObject",),
    ("s3", "CopyObject"): ("s3:GetObject", "s3:PutObject"),
    ("s3", "DeleteObjects"): ("s3:DeleteObject",),
    ("lambda", "Invoke"): ("lambda:InvokeFunction",),
    ("lambda", "InvokeAsync"): ("lambda:InvokeFunction",),
    ("lambda", "InvokeWithResponseStream"): ("lambda:InvokeFunction",),
}

# What the AWS managed policies SAM attaches allow (their published documents, abridged to the
# statements; an unknown managed policy fails the analysis rather than being guessed).
MANAGED_POLICY_STATEMENTS: dict[str, list[dict[str, Any]]] = {
    "arn:aws:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole": [
        {
            "Effect": "Allow",
            "Action": ["logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents"],
            "Resource": "*",
        }
    ],
    "arn:aws:iam::aws:policy/AWSXrayWriteOnlyAccess": [
        {
            "Effect": "Allow",
            "Action": [
                "xray:PutTraceSegments",
                "xray:PutTelemetryRecords",
                "xray:GetSamplingRules",
                "xray:GetSamplingTargets",
                "xray:GetSamplingStatisticSummaries",
            ],
            "Resource": "*",
        }
    ],
}

# Step Functions' optimized SageMaker job integrations: job noun and the managed rule `.sync`
# uses (https://docs.aws.amazon.com/step-functions/latest/dg/sagemaker-iam.html).
SAGEMAKER_JOBS = {
    "createTrainingJob": ("TrainingJob", "StepFunctionsGetEventsForSageMakerTrainingJobsRule"),
    "createProcessingJob": (
        "ProcessingJob",
        "StepFunctionsGetEventsForSageMakerProcessingJobsRule",
    ),
    "createTransformJob": ("TransformJob", "StepFunctionsGetEventsForSageMakerTransformJobsRule"),
    "createHyperParameterTuningJob": (
        "HyperParameterTuningJob",
        "StepFunctionsGetEventsForSageMakerTuningJobsRule",
    ),
}
STEP_FUNCTIONS_SYNC_RULE = "StepFunctionsGetEventsForStepFunctionsExecutionRule"
# Calls whose service first checks that the caller could do more itself: Application Auto
# Scaling's "permissions validation" on the target service and CloudWatch (for SageMaker
# endpoints, the actions SageMaker's auto scaling prerequisites list). Keyed by
# (service, operation, ServiceNamespace).
VALIDATED_ON_CALLER: dict[tuple[str, str, str], tuple[str, ...]] = {
    ("application-autoscaling", "RegisterScalableTarget", "sagemaker"): (
        "sagemaker:DescribeEndpoint",
        "sagemaker:DescribeEndpointConfig",
        "sagemaker:UpdateEndpointWeightsAndCapacities",
    ),
    ("application-autoscaling", "PutScalingPolicy", "sagemaker"): (
        "cloudwatch:PutMetricAlarm",
        "cloudwatch:DescribeAlarms",
        "cloudwatch:DeleteAlarms",
    ),
}


# ---------------------------------------------------------------------------- actions
def iam_prefix(service: str) -> str:
    if service in IAM_PREFIX_OVERRIDES:
        return IAM_PREFIX_OVERRIDES[service]
    metadata = service_model(service).metadata
    return str(metadata.get("signingName") or metadata["endpointPrefix"])


def iam_actions(service: str, operation: str) -> tuple[str, ...]:
    prefix = iam_prefix(service)
    return ACTION_OVERRIDES.get((prefix, operation), (f"{prefix}:{operation}",))


@functools.cache
def iam_catalogue() -> dict[str, dict[str, tuple[str, ...]]]:
    """prefix -> lower-case action -> resource types it can be scoped to (empty: only ``*``),
    from cfn-lint's copy of the Service Authorization Reference."""
    path = Path(cfnlint.data.AdditionalSpecs.__file__).parent / "Policies.json"
    data = json.loads(path.read_text())
    return {
        prefix: {
            action: tuple(spec.get("Resources", ())) for action, spec in service["Actions"].items()
        }
        for prefix, service in data.items()
    }


def is_iam_action(action: str) -> bool:
    prefix, _, name = action.partition(":")
    return name.lower() in iam_catalogue().get(prefix, {})


def resource_types(action: str) -> tuple[str, ...]:
    prefix, _, name = action.partition(":")
    return iam_catalogue()[prefix][name.lower()]


# ---------------------------------------------------------------------------- policy evaluation
@dataclass(frozen=True)
class Need:
    """An action a principal must be allowed, on a resource (None: whichever it names)."""

    action: str
    resource: str | None = None
    context: tuple[tuple[str, str], ...] = ()  # condition keys the request carries
    why: str = ""

    def __str__(self) -> str:
        on = f" on {self.resource}" if self.resource else ""
        return f"{self.action}{on} ({self.why})"


@functools.cache
def _wildcard(pattern: str, ignore_case: bool) -> re.Pattern[str]:
    regex = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.compile(regex, (re.IGNORECASE if ignore_case else 0) | re.DOTALL)


def _any_match(patterns: Any, value: str, ignore_case: bool = False) -> bool:
    return any(_wildcard(str(p), ignore_case).fullmatch(value) for p in as_list(patterns))


CONDITION_OPERATORS = {
    "StringEquals": lambda want, have: have in want,
    "StringLike": lambda want, have: _any_match(want, have),
    "ArnEquals": lambda want, have: have in want,
    "ArnLike": lambda want, have: _any_match(want, have),
    "StringNotEquals": lambda want, have: have not in want,
    "StringNotLike": lambda want, have: not _any_match(want, have),
}


def _conditions_met(condition: Mapping[str, Any], context: Mapping[str, str]) -> bool:
    for operator, tests in condition.items():
        base = operator.removesuffix("IfExists")
        for key, wanted in tests.items():
            if key not in context:
                continue  # a key the need does not carry: taken as met
            if base not in CONDITION_OPERATORS:
                raise NotImplementedError(f"condition operator {operator} on {key}")
            if not CONDITION_OPERATORS[base]([str(w) for w in as_list(wanted)], context[key]):
                return False
    return True


def _applies(statement: Mapping[str, Any], need: Need, deny: bool) -> bool:
    if "Action" in statement:
        if not _any_match(statement["Action"], need.action, ignore_case=True):
            return False
    elif _any_match(statement.get("NotAction", []), need.action, ignore_case=True):
        return False
    if need.resource is None:
        # Which resource the call names is unknown: an Allow scoped to anything counts; a Deny
        # counts only when it covers everything.
        if deny and "*" not in as_list(statement.get("Resource", [])):
            return False
    elif "Resource" in statement:
        if not _any_match(statement["Resource"], need.resource):
            return False
    elif _any_match(statement.get("NotResource", []), need.resource):
        return False
    return _conditions_met(statement.get("Condition", {}), dict(need.context))


def allows(policy: Iterable[Mapping[str, Any]], need: Need) -> bool:
    policy = list(policy)
    if any(_applies(s, need, deny=True) for s in policy if s.get("Effect") == "Deny"):
        return False
    return any(_applies(s, need, deny=False) for s in policy if s.get("Effect") == "Allow")


def role_policy(stack: Stack, role_id: str) -> list[dict[str, Any]]:
    """Every statement a role's policies hold: inline ones and the AWS managed ones SAM adds."""
    props = stack.resolve(stack.resources[role_id]["Properties"])
    found = [
        s for policy in props.get("Policies", []) for s in statements(policy["PolicyDocument"])
    ]
    for managed in props.get("ManagedPolicyArns", []):
        if managed not in MANAGED_POLICY_STATEMENTS:
            raise KeyError(f"{role_id}: managed policy {managed} is not described in support_iam")
        found += MANAGED_POLICY_STATEMENTS[managed]
    return found


# ---------------------------------------------------------------------------- principals
@dataclass
class Check:
    """A principal's needs, the role that must allow them, and what the analysis could not map."""

    principal: str
    role: str
    needs: list[Need] = field(default_factory=list)
    report: Report | None = None

    def missing(self, stack: Stack) -> list[Need]:
        policy = role_policy(stack, self.role)
        return [n for n in self.needs if not allows(policy, n)]


def role_of(template: Template, logical_id: str) -> str:
    props = template["Resources"][logical_id]["Properties"]
    target = ref_target(props.get("Role") or props.get("RoleArn"))
    if target is None:
        raise ValueError(f"{logical_id}: its role is not a role of this template")
    return target


def function_source(sam: Template, function_id: str) -> tuple[Path, list[Path]]:
    """A function's handler module and the layer directories its imports may come from."""
    props = sam["Resources"][function_id]["Properties"]
    globals_ = sam.get("Globals", {}).get("Function", {})
    handler = props.get("Handler", globals_.get("Handler", "app.lambda_handler"))
    module = handler.rsplit(".", 1)[0].replace(".", "/")
    roots = []
    for layer in props.get("Layers", globals_.get("Layers", [])):
        target = ref_target(layer)
        if target and sam["Resources"][target]["Type"] == "AWS::Serverless::LayerVersion":
            roots.append(REPO / sam["Resources"][target]["Properties"]["ContentUri"])
    return REPO / props["CodeUri"] / f"{module}.py", roots


def function_check(
    sam: Template,
    template: Template,
    stack: Stack,
    function_id: str,
    source: Path | None = None,
    library_roots: list[Path] | None = None,
) -> Check:
    """What a function's code can call, as needs on its role. ``source`` and ``library_roots``
    replace the function's own code (to test the analysis on altered copies)."""
    handler, roots = function_source(sam, function_id)
    if source is None and library_roots is None:
        report = _own_code_report(handler, tuple(roots))
    else:
        roots = library_roots if library_roots is not None else roots
        report = analyse(source or handler, roots, REPO)
    check = Check(function_id, role_of(template, function_id), report=report)
    for call in report.calls:
        for action in iam_actions(call.service, call.operation):
            check.needs.append(Need(action, why=f"{call.where} {call.service}.{call.operation}"))
    if any(n.action == "sns:Publish" for n in check.needs):
        environment = stack.resolve(
            template["Resources"][function_id]["Properties"].get("Environment", {})
        ).get("Variables", {})
        for value in environment.values():
            check.needs += topic_key_needs(stack, str(value), why=f"{function_id} publishes")
    return check


@functools.cache
def _analysed(handler: Path, roots: tuple[Path, ...]) -> Report:
    # The analysis is the slow part of a check and several tests check the same function: the
    # repository's code does not change during a session (altered copies are never cached).
    return analyse(handler, roots, REPO)


def _own_code_report(handler: Path, roots: tuple[Path, ...]) -> Report:
    """A function's own code analysed (once per session), as a copy its caller may change."""
    report = _analysed(handler, roots)
    return Report(list(report.calls), list(report.unmapped), list(report.modules))


def topic_key_needs(stack: Stack, topic_arn: str, why: str) -> list[Need]:
    """Publishing to a topic encrypted with a key of this template needs that key (an AWS
    managed key's own policy already lets the account's principals use it through SNS)."""
    for logical_id, resource in resources_of_type(stack.template, "AWS::SNS::Topic").items():
        if stack.ref(logical_id) != topic_arn:
            continue
        key = ref_target(resource.get("Properties", {}).get("KmsMasterKeyId"))
        if key and stack.resources[key]["Type"] == "AWS::KMS::Key":
            context = (("kms:ViaService", f"sns.{REGION}.amazonaws.com"),)
            key_arn = stack.attribute(key, "Arn")
            return [
                Need("kms:GenerateDataKey", key_arn, context, why),
                Need("kms:Decrypt", key_arn, context, why),
            ]
    return []


# ---------------------------------------------------------------------------- state machines
def definition(sam: Template, stack: Stack, machine_id: str) -> dict[str, Any]:
    """A state machine's ASL as deployed: its file with DefinitionSubstitutions filled in."""
    props = sam["Resources"][machine_id]["Properties"]
    text = (REPO / props["DefinitionUri"]).read_text()
    values = stack.resolve(stack.resources[machine_id]["Properties"]["DefinitionSubstitutions"])

    def fill(match: re.Match[str]) -> str:
        if match.group(1) not in values:
            raise KeyError(
                f"{machine_id}: ${{{match.group(1)}}} has no DefinitionSubstitutions entry"
            )
        return json.dumps(str(values[match.group(1)]))[1:-1]

    document: dict[str, Any] = json.loads(re.sub(r"\$\{([A-Za-z0-9_]+)\}", fill, text))
    return document


def state_machine_check(sam: Template, template: Template, stack: Stack, machine_id: str) -> Check:
    check = Check(machine_id, role_of(template, machine_id))
    document = definition(sam, stack, machine_id)
    for path, state in tasks(document):
        needs = task_needs(state["Resource"], state.get("Parameters", {}), f"{machine_id}/{path}")
        for need in list(needs):
            if need.action == "sns:Publish" and need.resource:
                needs += topic_key_needs(stack, need.resource, need.why)
        check.needs += needs
    return check


def _static(parameters: Mapping[str, Any]) -> dict[str, Any]:
    """Parameters with a fixed value (``Key.$`` ones are filled from the state's input)."""
    return {k: v for k, v in parameters.items() if not k.endswith(".$")}


def function_arn(name: str) -> str:
    if name.startswith("arn:"):
        parts = name.split(":")
        return ":".join(parts[:7])  # a qualified ARN's permission is the function's
    return arn("lambda", f"function:{name}")


def _passed_roles(parameters: Any, service: str, why: str) -> Iterator[Need]:
    """iam:PassRole for every role ARN a call hands to a service (``RoleArn``,
    ``ExecutionRoleArn``, ...), with the service as ``iam:PassedToService``."""
    if isinstance(parameters, Mapping):
        for key, value in parameters.items():
            if key.endswith("RoleArn") and isinstance(value, str) and value.startswith("arn:"):
                context = (("iam:PassedToService", f"{service}.amazonaws.com"),)
                yield Need("iam:PassRole", value, context, why)
            else:
                yield from _passed_roles(value, service, why)
    elif isinstance(parameters, list):
        for item in parameters:
            yield from _passed_roles(item, service, why)


def _sdk_resource(service: str, parameters: Mapping[str, Any]) -> str | None:
    """The ARN a call acts on, where a fixed parameter names it."""
    fixed = _static(parameters)
    if service == "lambda" and isinstance(fixed.get("FunctionName"), str):
        return function_arn(fixed["FunctionName"])
    if service == "ssm" and isinstance(fixed.get("Name"), str):
        return arn("ssm", f"parameter/{fixed['Name'].lstrip('/')}")
    if service == "codedeploy" and {"ApplicationName", "DeploymentGroupName"} <= fixed.keys():
        return arn(
            "codedeploy",
            f"deploymentgroup:{fixed['ApplicationName']}/{fixed['DeploymentGroupName']}",
        )
    if service == "sns" and isinstance(fixed.get("TopicArn"), str):
        return str(fixed["TopicArn"])
    if service == "stepfunctions" and isinstance(fixed.get("StateMachineArn"), str):
        return str(fixed["StateMachineArn"])
    if service == "sagemaker" and isinstance(fixed.get("ModelPackageGroupName"), str):
        # a versioned package is model-package/<group>/<version> (SageMaker writes it lower case)
        group = str(fixed["ModelPackageGroupName"]).rsplit("/", 1)[-1].lower()
        return arn("sagemaker", f"model-package/{group}/1")
    if service == "cloudformation" and isinstance(fixed.get("StackName"), str):
        return str(fixed["StackName"])  # the stack's id: an ARN
    return None


def task_needs(resource: str, parameters: Mapping[str, Any], why: str) -> list[Need]:
    """The permissions one Task state's integration needs."""
    if resource.startswith("arn:aws:lambda:"):
        return [Need("lambda:InvokeFunction", function_arn(resource), why=why)]
    prefix = "arn:aws:states:::"
    if not resource.startswith(prefix):
        raise ValueError(f"{why}: Task resource {resource} is not a service integration")
    integration, _, call = resource.removeprefix(prefix).partition(":")
    if integration == "aws-sdk":
        sdk, _, api = call.partition(":")
        api, _, pattern = api.partition(".")
        service = sdk_service(sdk)
        operation = api[:1].upper() + api[1:]
        if operation not in service_model(service).operation_names:
            raise ValueError(f"{why}: {service} has no operation {operation}")
        target = _sdk_resource(service, parameters)
        needs = [Need(a, target, why=why) for a in iam_actions(service, operation)]
        namespace = str(_static(parameters).get("ServiceNamespace", ""))
        needs += [
            Need(action, why=f"{why}, checked by {service}")
            for action in VALIDATED_ON_CALLER.get((service, operation, namespace), ())
        ]
        return needs + list(_passed_roles(parameters, iam_prefix(service), why))
    api, _, pattern = call.partition(".")
    fixed = _static(parameters)
    if integration == "lambda" and api == "invoke":
        return [
            Need("lambda:InvokeFunction", function_arn(fixed.get("FunctionName", "*")), why=why)
        ]
    if integration == "sns" and api == "publish":
        return [Need("sns:Publish", fixed.get("TopicArn"), why=why)]
    if integration == "dynamodb" and api in ("getItem", "putItem", "deleteItem", "updateItem"):
        table = fixed.get("TableName")
        target = arn("dynamodb", f"table/{table}") if isinstance(table, str) else None
        return [Need(f"dynamodb:{api[:1].upper()}{api[1:]}", target, why=why)]
    if integration == "states" and api == "startExecution":
        machine = fixed.get("StateMachineArn")
        needs = [Need("states:StartExecution", machine, why=why)]
        if pattern.startswith("sync"):
            execution = (
                machine.replace(":stateMachine:", ":execution:") + ":an-execution"
                if isinstance(machine, str)
                else None
            )
            needs += [
                Need("states:DescribeExecution", execution, why=why),
                Need("states:StopExecution", execution, why=why),
            ]
            needs += _rule_needs(STEP_FUNCTIONS_SYNC_RULE, why)
        return needs
    if integration == "sagemaker":
        operation = api[:1].upper() + api[1:]
        needs = [Need(f"sagemaker:{operation}", why=why)]
        if api in SAGEMAKER_JOBS:
            noun, rule = SAGEMAKER_JOBS[api]
            # AWS's generated policies for these integrations also grant ListTags.
            needs.append(Need("sagemaker:ListTags", why=why))
            if pattern.startswith("sync"):
                needs += [
                    Need(f"sagemaker:Describe{noun}", why=why),
                    Need(f"sagemaker:Stop{noun}", why=why),
                ]
                needs += _rule_needs(rule, why)
        return needs + list(_passed_roles(parameters, "sagemaker", why))
    raise ValueError(f"{why}: no permissions known for {resource}: teach tests/support_iam.py")


def _rule_needs(rule: str, why: str) -> list[Need]:
    rule_arn = arn("events", f"rule/{rule}")
    return [
        Need(action, rule_arn, why=why)
        for action in ("events:PutTargets", "events:PutRule", "events:DescribeRule")
    ]
