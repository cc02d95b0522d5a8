"""The template as CloudFormation receives it: ``template.yaml`` transformed by the SAM translator,
offline, and evaluated for one imaginary stack so that policies can be compared with real ARNs.

The translator needs no AWS account: it is given a region, local code paths are swapped for
S3 URIs (as ``sam validate`` does), the state machines' ASL files are inlined, and the few AWS
managed policies SAM may name come from a table instead of IAM.
"""

from __future__ import annotations

import copy
import functools
import json
import os
import re
import uuid
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any
from unittest import mock

from cfnlint.decode import cfn_yaml  # type: ignore[import-untyped]
from samtranslator.translator.managed_policy_translator import (  # type: ignore[import-untyped]
    ManagedPolicyLoader,
)
from samtranslator.translator.transform import transform  # type: ignore[import-untyped]

from safe_deploy.localcloud.template import Evaluator

REPO = Path(__file__).resolve().parents[1]
TEMPLATE = REPO / "template.yaml"

# The imaginary stack every ARN is built for.
REGION = "us-east-1"
ACCOUNT = "123456789012"
PARTITION = "aws"
STACK_NAME = "fares"

# AWS managed policies SAM may look up by name (only these: the transform never calls IAM).
MANAGED_POLICIES = {
    "AWSLambdaBasicExecutionRole": (
        "arn:aws:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole"
    ),
    "AWSXrayWriteOnlyAccess": "arn:aws:iam::aws:policy/AWSXrayWriteOnlyAccess",
    "AWSLambdaRole": "arn:aws:iam::aws:policy/service-role/AWSLambdaRole",
}

Template = dict[str, Any]


class OfflinePolicyLoader(ManagedPolicyLoader):  # type: ignore[misc]
    """SAM's managed-policy lookup without IAM."""

    def __init__(self) -> None:
        pass

    def load(self) -> dict[str, str]:
        return dict(MANAGED_POLICIES)


def plain(value: Any) -> Any:
    """cfn-lint's node types (str and dict subclasses with line numbers) as plain JSON values."""
    return json.loads(json.dumps(value))


def load_sam(path: Path = TEMPLATE) -> Template:
    """``template.yaml`` as written (short tags such as ``!Sub`` become ``Fn::Sub``); each
    caller gets its own copy."""
    document: Template = json.loads(_parsed(str(path), path.read_text(encoding="utf-8")))
    return document


@functools.cache
def _parsed(name: str, text: str) -> str:
    # Most test modules load the template, and the YAML parse is far slower than json.loads:
    # parsed once per text, so a file rewritten during the session is parsed again.
    return json.dumps(cfn_yaml.loads(text, name))


def for_translator(sam: Template, root: Path = REPO, packaged: bool = False) -> Template:
    """What ``sam validate`` hands the translator: local paths become S3 URIs; the state
    machines' definitions are inlined so the transformed template carries them. ``packaged``:
    what ``sam package`` leaves instead, the definitions uploaded to S3 as well (what
    CloudFormation receives from ``sam deploy``)."""
    sam = copy.deepcopy(sam)
    for logical_id, resource in sam["Resources"].items():
        props = resource.get("Properties", {})
        if resource["Type"] == "AWS::Serverless::Function" and isinstance(
            props.get("CodeUri"), str
        ):
            props["CodeUri"] = f"s3://offline-artifacts/{logical_id}.zip"
        elif resource["Type"] == "AWS::Serverless::LayerVersion" and isinstance(
            props.get("ContentUri"), str
        ):
            props["ContentUri"] = f"s3://offline-artifacts/{logical_id}.zip"
        elif resource["Type"] == "AWS::Serverless::StateMachine" and isinstance(
            props.get("DefinitionUri"), str
        ):
            if packaged:
                props["DefinitionUri"] = f"s3://offline-artifacts/{logical_id}.asl.json"
            else:
                props["Definition"] = json.loads((root / props.pop("DefinitionUri")).read_text())
    return sam


def translate(
    sam: Template, parameters: Mapping[str, str] | None = None, packaged: bool = False
) -> Template:
    """The SAM translator's output for ``sam`` (a template as written)."""
    values: dict[str, Any] = {"AWS::Region": REGION, "AWS::AccountId": ACCOUNT}
    values.update(parameters or {})
    # The translator asks boto3 for a region even when it is given one.
    with mock.patch.dict(os.environ, {"AWS_DEFAULT_REGION": REGION}):
        result = transform(for_translator(sam, packaged=packaged), values, OfflinePolicyLoader())
    document: Template = plain(result)
    return document


@functools.cache
def _transformed(parameters: tuple[tuple[str, str], ...], packaged: bool) -> str:
    return json.dumps(translate(load_sam(), dict(parameters), packaged=packaged))


def transformed(parameters: Mapping[str, str] | None = None, packaged: bool = False) -> Template:
    """``template.yaml`` transformed (cached per parameter set; each caller gets its own copy).
    ``packaged``: as ``translate`` takes it."""
    key = tuple(sorted((parameters or {}).items()))
    result: Template = json.loads(_transformed(key, packaged))
    return result


def sam_parameters_with_everything_on() -> dict[str, str]:
    """Parameter values that switch every optional feature on, so that every conditional
    policy exists (a function's code may call what a feature needs)."""
    return {
        "NotificationEmail": "ops@example.com",
        "ApprovalEmailRecipients": "reviewer@example.com",
        "SesSenderAddress": "pipeline@example.com",
        "SlackWebhookSecretArn": (
            f"arn:{PARTITION}:secretsmanager:{REGION}:{ACCOUNT}:secret:slack-webhook-AbCdEf"
        ),
        "SlackSigningSecretArn": (
            f"arn:{PARTITION}:secretsmanager:{REGION}:{ACCOUNT}:secret:slack-signing-AbCdEf"
        ),
        "DriftRetrainingEnabled": "true",
        "ApproverEmail": "approver@example.com",
        "SlackTeamId": "T0123ABCD",
        "SlackApproverIds": "U0123ABCD,U0456EFGH",
        "SlackApproverGroup": "S0123ABCD",
        "SlackBotTokenSecretArn": (
            f"arn:{PARTITION}:secretsmanager:{REGION}:{ACCOUNT}:secret:slack-bot-AbCdEf"
        ),
        "OperatorPrincipalArns": OPERATORS,
    }


# Who may decide through the operator route, in the stack "with everything on".
OPERATORS = (
    f"arn:{PARTITION}:iam::{ACCOUNT}:role/ReleaseManagers,arn:{PARTITION}:iam::{ACCOUNT}:user/alice"
)


# ---------------------------------------------------------------------------- one imaginary stack


def arn(service: str, resource: str, region: str = REGION, account: str = ACCOUNT) -> str:
    return f"arn:{PARTITION}:{service}:{region}:{account}:{resource}"


class Stack(Evaluator):
    """A (transformed) template evaluated for the imaginary stack: parameters and conditions as
    CloudFormation would evaluate them, and every Ref/GetAtt replaced by a plausible physical
    value, so that a policy's ``Resource`` can be matched against the ARN a call will name."""

    def __init__(self, template: Template, overrides: Mapping[str, str] | None = None) -> None:
        super().__init__(
            template,
            overrides,
            {
                "AWS::Region": REGION,
                "AWS::AccountId": ACCOUNT,
                "AWS::Partition": PARTITION,
                "AWS::StackName": STACK_NAME,
                "AWS::StackId": arn("cloudformation", f"stack/{STACK_NAME}/{uuid.UUID(int=1)}"),
                "AWS::URLSuffix": "amazonaws.com",
            },
        )
        self.resources: dict[str, Any] = self.template.get("Resources", {})

    # ---- physical values
    def physical(self, logical_id: str) -> str:
        kind = self.resources[logical_id]["Type"]
        name = f"{STACK_NAME}-{logical_id}-1A2B3C4D5E6F"
        props = self.resources[logical_id].get("Properties", {})
        by_type: dict[str, Callable[[], str]] = {
            "AWS::S3::Bucket": lambda: name.lower(),
            "AWS::SNS::Topic": lambda: arn("sns", name),
            "AWS::StepFunctions::StateMachine": lambda: arn("states", f"stateMachine:{name}"),
            "AWS::SecretsManager::Secret": lambda: arn("secretsmanager", f"secret:{name}-AbCdEf"),
            "AWS::SSM::Parameter": lambda: f"CFN-{logical_id}-1A2B3C4D5E6F",
            "AWS::KMS::Key": lambda: str(uuid.uuid5(uuid.NAMESPACE_URL, logical_id)),
            "AWS::SQS::Queue": lambda: f"https://sqs.{REGION}.amazonaws.com/{ACCOUNT}/{name}",
            "AWS::Lambda::Alias": lambda: (
                f"{self.attribute(props['FunctionName']['Ref'], 'Arn')}:{props['Name']}"
            ),
            "AWS::Lambda::Version": lambda: (
                f"{self.attribute(props['FunctionName']['Ref'], 'Arn')}:1"
            ),
            "AWS::Lambda::LayerVersion": lambda: arn("lambda", f"layer:{name}:1"),
            "AWS::ApiGateway::RestApi": lambda: "a1b2c3d4e5",
            # Ref is the group's ARN (SageMaker names packages model-package/<group>/<version>)
            "AWS::SageMaker::ModelPackageGroup": lambda: arn(
                "sagemaker", f"model-package-group/{name.lower()}"
            ),
        }
        return by_type.get(kind, lambda: name)()

    def attribute(self, logical_id: str, attribute: str) -> Any:
        kind = self.resources[logical_id]["Type"]
        ref = self.physical(logical_id)
        values: dict[tuple[str, str], Callable[[], Any]] = {
            ("AWS::Lambda::Function", "Arn"): lambda: arn("lambda", f"function:{ref}"),
            ("AWS::IAM::Role", "Arn"): lambda: f"arn:{PARTITION}:iam::{ACCOUNT}:role/{ref}",
            ("AWS::S3::Bucket", "Arn"): lambda: f"arn:{PARTITION}:s3:::{ref}",
            ("AWS::StepFunctions::StateMachine", "Name"): lambda: ref.rsplit(":", 1)[1],
            ("AWS::StepFunctions::StateMachine", "Arn"): lambda: ref,
            ("AWS::SNS::Topic", "TopicName"): lambda: ref.rsplit(":", 1)[1],
            ("AWS::SNS::Topic", "TopicArn"): lambda: ref,
            ("AWS::CloudWatch::Alarm", "Arn"): lambda: arn("cloudwatch", f"alarm:{ref}"),
            ("AWS::Logs::LogGroup", "Arn"): lambda: arn("logs", f"log-group:{ref}:*"),
            ("AWS::KMS::Key", "Arn"): lambda: arn("kms", f"key/{ref}"),
            ("AWS::KMS::Key", "KeyId"): lambda: ref,
            ("AWS::SQS::Queue", "Arn"): lambda: arn("sqs", ref.rsplit("/", 1)[1]),
            ("AWS::SQS::Queue", "QueueName"): lambda: ref.rsplit("/", 1)[1],
            ("AWS::Events::Rule", "Arn"): lambda: arn("events", f"rule/{ref}"),
            ("AWS::DynamoDB::Table", "Arn"): lambda: arn("dynamodb", f"table/{ref}"),
            ("AWS::DynamoDB::Table", "StreamArn"): lambda: arn(
                "dynamodb", f"table/{ref}/stream/2026-01-01T00:00:00.000"
            ),
            ("AWS::Lambda::Version", "Version"): lambda: "1",
            ("AWS::ApiGateway::RestApi", "RootResourceId"): lambda: "r00t1d",
            ("AWS::SecretsManager::Secret", "Id"): lambda: ref,
            ("AWS::SSM::Parameter", "Value"): lambda: "value",
            ("Custom::ModelCode", "S3Uri"): lambda: "s3://model-code-bucket/code/0123456789abcdef/",
        }
        if (kind, attribute) not in values:
            raise KeyError(
                f"no imaginary value for GetAtt {logical_id}.{attribute} ({kind}): "
                "add one in tests/support_template.py"
            )
        return values[(kind, attribute)]()


# ---------------------------------------------------------------------------- reading documents
def as_list(value: Any) -> list[Any]:
    """IAM and CloudFormation allow one value where they allow a list of them."""
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def statements(document: Mapping[str, Any]) -> list[dict[str, Any]]:
    return as_list(document.get("Statement", []))


def resources_of_type(template: Template, kind: str) -> dict[str, Any]:
    return {k: v for k, v in template.get("Resources", {}).items() if v.get("Type") == kind}


def ref_target(value: Any) -> str | None:
    """The logical id a ``Ref``, ``GetAtt`` or single-variable ``Sub`` points at, if any."""
    if not isinstance(value, dict) or len(value) != 1:
        return None
    ((key, arg),) = value.items()
    if key == "Ref" and isinstance(arg, str):
        return arg
    if key == "Fn::GetAtt":
        return str((arg if isinstance(arg, list) else str(arg).split("."))[0])
    if key == "Fn::Sub" and isinstance(arg, str):
        match = re.fullmatch(r"\$\{([A-Za-z0-9]+)(?:\.[A-Za-z]+)?\}", arg)
        return match.group(1) if match else None
    return None


def role_statements(stack: Stack, role_id: str) -> list[dict[str, Any]]:
    """A role's inline policy statements, evaluated for the imaginary stack."""
    props = stack.resolve(stack.resources[role_id]["Properties"])
    return [s for policy in props.get("Policies", []) for s in statements(policy["PolicyDocument"])]
