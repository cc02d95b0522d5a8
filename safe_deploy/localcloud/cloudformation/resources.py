"""Each CloudFormation resource type the application uses, created, updated and deleted in the
local cloud: through moto's APIs where moto has them, into the local cloud's own services where
it adds them (handlers run in-process, the API's routes, alarms, CodeDeploy deployments).

A type says which property changes need a new physical resource (``REPLACE_ON``); ``"*"`` means
the type is immutable (a Lambda version, a layer version). Types with no local meaning are
recorded, with a plausible physical id, and listed as not emulated.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
import secrets
import string
import threading
import time
import uuid
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from werkzeug.wrappers import Request, Response

from safe_deploy.clients import environment_client
from safe_deploy.localcloud.access_log import AccessLogError, AccessLogSetting
from safe_deploy.localcloud.api import LocalApi, Route, StageSettings, template_media_types
from safe_deploy.localcloud.cloudformation.model import Resource, ResourceFailed, Stack
from safe_deploy.localcloud.lambdas import FunctionCode, HandlerHost
from safe_deploy.localcloud.metrics import Alarm, Alarms
from safe_deploy.localcloud.resource_policy import PolicyError, ResourcePolicy
from safe_deploy.localcloud.state import ActivityFeed, LocalSettings

NOT_EMULATED = {
    "AWS::CloudWatch::Dashboard": "dashboards",
    "AWS::Synthetics::Canary": "Synthetics canaries (GET /health answers locally)",
    "AWS::Lambda::Permission": "resource policies (not enforced locally)",
    "AWS::S3::BucketPolicy": "bucket policies (not enforced locally)",
    "AWS::SQS::QueuePolicy": "queue policies (not enforced locally)",
    "AWS::SNS::Subscription": "email subscriptions (messages go to the outbox)",
    "AWS::ApiGateway::Deployment": "API deployments (routes are served as the API's body says)",
    "AWS::ApiGateway::Stage": "stage throttling, caching and tracing (access logs are written)",
    "AWS::Lambda::LayerVersion": "layer contents: handlers import pipeline_common from the project",
}
REPLACE_ON: dict[str, set[str] | str] = {
    "AWS::S3::Bucket": {"BucketName"},
    "AWS::DynamoDB::Table": {"TableName", "KeySchema"},
    "AWS::SSM::Parameter": {"Name"},
    "AWS::SecretsManager::Secret": {"Name"},
    "AWS::SNS::Topic": {"TopicName", "FifoTopic"},
    "AWS::SQS::Queue": {"QueueName", "FifoQueue"},
    "AWS::IAM::Role": {"RoleName", "Path"},
    "AWS::Lambda::Function": {"FunctionName", "PackageType"},
    "AWS::Lambda::Version": "*",
    "AWS::Lambda::LayerVersion": "*",
    "AWS::Lambda::Alias": {"Name", "FunctionName"},
    "AWS::Lambda::Permission": "*",
    "AWS::StepFunctions::StateMachine": {"StateMachineName", "StateMachineType"},
    "AWS::Logs::LogGroup": {"LogGroupName"},
    "AWS::Events::Rule": {"Name", "EventBusName"},
    "AWS::CloudWatch::Alarm": {"AlarmName"},
    "AWS::CodeDeploy::Application": {"ApplicationName", "ComputePlatform"},
    "AWS::CodeDeploy::DeploymentGroup": {"ApplicationName", "DeploymentGroupName"},
    "AWS::ApiGateway::RestApi": set(),
    "AWS::ApiGateway::Deployment": "*",
    "AWS::ApiGateway::Stage": {"RestApiId", "StageName"},
    "AWS::ApiGateway::Account": set(),
    "AWS::KMS::Key": set(),
    "AWS::SNS::Subscription": {"Endpoint", "Protocol", "TopicArn"},
    "AWS::S3::BucketPolicy": {"Bucket"},
    "AWS::SQS::QueuePolicy": set(),
    "AWS::SageMaker::ModelPackageGroup": {"ModelPackageGroupName", "ModelPackageGroupDescription"},
}
SLACK_WEB_API = "https://slack.com/api"  # served by the local Slack (channels.py)
# Function settings that say how long to wait for people or their clients (human pace).
WAITS_FOR_PEOPLE = {"CAPTURE_WAIT_SECONDS"}
DEPLOYMENT_DONE = {"Succeeded", "Failed", "Stopped"}
# Lambda's concurrency per account and Region, and what reservations must leave to the rest
# (AWS Lambda Developer Guide, "Configuring reserved concurrency").
LAMBDA_CONCURRENCY_LIMIT = 1000
LAMBDA_MIN_UNRESERVED = 100


@dataclass
class Realized:
    """What a create or update gives: the physical id, the GetAtt values, and what the handler
    keeps for itself (deleted with the resource)."""

    physical_id: str
    attributes: dict[str, Any] = field(default_factory=dict)
    handle: Any = None


@dataclass
class Context:
    """What a handler needs to act for one resource of one stack."""

    handlers: Handlers
    stack: Stack
    logical_id: str
    update_policy: dict[str, Any]
    rolling_back: bool = False

    @property
    def settings(self) -> LocalSettings:
        return self.handlers.settings

    def client(self, service: str) -> Any:
        return self.handlers.client(service)

    def name(self, limit: int = 64, lower: bool = False) -> str:
        """A physical name as CloudFormation makes them: stack, logical id, a random suffix."""
        suffix = "".join(secrets.choice(string.ascii_uppercase + string.digits) for _ in range(12))
        room = max(1, limit - len(suffix) - 2)
        base = f"{self.stack.name}-{self.logical_id}"[:room]
        name = f"{base}-{suffix}"
        return name.lower() if lower else name

    def arn(self, service: str, resource: str) -> str:
        return f"arn:aws:{service}:{self.settings.region}:{self.settings.account}:{resource}"


class Handlers:
    """The resource types, with the local cloud's services they act on. Without a handler host
    they make every type but functions (whose code the host runs)."""

    def __init__(
        self,
        settings: LocalSettings,
        host: HandlerHost | None,
        api: LocalApi,
        alarms: Alarms,
        feed: ActivityFeed,
    ) -> None:
        self.settings = settings
        self.host = host
        self.api = api
        self.alarms = alarms
        self.feed = feed
        self.not_emulated: dict[str, str] = {}
        self._custom_answers: dict[str, dict[str, Any]] = {}
        self._custom_waits: dict[str, threading.Event] = {}
        self.code_root = settings.workdir / "code"
        api.local_routes["/_local/cfn-response/"] = self._custom_response

    def client(self, service: str) -> Any:
        return environment_client(service, self.settings.region)

    def context(
        self,
        stack: Stack,
        logical_id: str,
        update_policy: dict[str, Any],
        rolling_back: bool = False,
    ) -> Context:
        return Context(self, stack, logical_id, update_policy, rolling_back)

    def create_resource(self, stack: Stack, logical_id: str, props: dict[str, Any]) -> Resource:
        """Creates one resource of ``stack``'s template from its resolved ``props``, as an
        execution creates it, and records it in ``stack`` (so later resources can refer to it):
        for part of a stack made outside an execution, with no events and no rollback."""
        definition = stack.template["Resources"][logical_id]
        kind = str(definition["Type"])
        realized = self.create(self.context(stack, logical_id, {}), kind, props)
        record = resource_record(logical_id, kind, definition, props, {}, realized)
        stack.resources[logical_id] = record
        return record

    def replaces(self, kind: str, old: dict[str, Any], new: dict[str, Any]) -> bool:
        rule = REPLACE_ON.get(kind, set())
        if kind.startswith("Custom::") or kind == "AWS::CloudFormation::CustomResource":
            return False
        if rule == "*":
            return old != new
        return any(old.get(p) != new.get(p) for p in rule)

    # ------------------------------------------------------------------ dispatch
    def create(self, ctx: Context, kind: str, props: dict[str, Any]) -> Realized:
        if kind.startswith("Custom::") or kind == "AWS::CloudFormation::CustomResource":
            return self._custom(ctx, "Create", props, None)
        action = getattr(self, "create_" + _method(kind), None)
        if action is None:
            self.not_emulated[ctx.logical_id] = NOT_EMULATED.get(kind, kind)
            return Realized(ctx.name(), {"Arn": ctx.arn("local", ctx.logical_id)})
        realized: Realized = action(ctx, props)
        return realized

    def update(self, ctx: Context, record: Resource, props: dict[str, Any]) -> Realized:
        kind = record.type
        if kind.startswith("Custom::") or kind == "AWS::CloudFormation::CustomResource":
            return self._custom(ctx, "Update", props, record)
        action = getattr(self, "update_" + _method(kind), None)
        if action is None:  # nothing local to change
            return Realized(record.physical_id, record.attributes, record.handle)
        realized: Realized = action(ctx, record, props)
        return realized

    def delete(self, ctx: Context, record: Resource) -> None:
        kind = record.type
        if kind.startswith("Custom::") or kind == "AWS::CloudFormation::CustomResource":
            self._custom(ctx, "Delete", record.properties, record)
            return
        action = getattr(self, "delete_" + _method(kind), None)
        if action is not None:
            action(ctx, record)
        self.not_emulated.pop(record.logical_id, None)

    # ------------------------------------------------------------------ storage and settings
    def create_s3_bucket(self, ctx: Context, props: dict[str, Any]) -> Realized:
        name = props.get("BucketName") or ctx.name(63, lower=True)
        ctx.client("s3").create_bucket(Bucket=name)
        self.update_s3_bucket(ctx, Resource(ctx.logical_id, "", name, {}), props)
        return Realized(name, _bucket_attributes(name))

    def update_s3_bucket(self, ctx: Context, record: Resource, props: dict[str, Any]) -> Realized:
        s3, name = ctx.client("s3"), record.physical_id
        status = props.get("VersioningConfiguration", {}).get("Status")
        if status:
            s3.put_bucket_versioning(Bucket=name, VersioningConfiguration={"Status": status})
        notification = props.get("NotificationConfiguration", {})
        if notification.get("EventBridgeConfiguration", {}).get("EventBridgeEnabled"):
            s3.put_bucket_notification_configuration(
                Bucket=name, NotificationConfiguration={"EventBridgeConfiguration": {}}
            )
        rules = (props.get("LifecycleConfiguration") or {}).get("Rules")
        if rules:
            s3.put_bucket_lifecycle_configuration(
                Bucket=name, LifecycleConfiguration={"Rules": [_lifecycle_rule(r) for r in rules]}
            )
        elif record.properties.get("LifecycleConfiguration"):
            s3.delete_bucket_lifecycle(Bucket=name)
        return Realized(name, _bucket_attributes(name))

    def delete_s3_bucket(self, ctx: Context, record: Resource) -> None:
        ctx.client("s3").delete_bucket(Bucket=record.physical_id)

    def create_dynamodb_table(self, ctx: Context, props: dict[str, Any]) -> Realized:
        name = props.get("TableName") or ctx.name(255)
        dynamodb = ctx.client("dynamodb")
        arguments: dict[str, Any] = {
            "TableName": name,
            "AttributeDefinitions": props["AttributeDefinitions"],
            "KeySchema": props["KeySchema"],
            "BillingMode": props.get("BillingMode", "PROVISIONED"),
        }
        if props.get("GlobalSecondaryIndexes"):
            arguments["GlobalSecondaryIndexes"] = props["GlobalSecondaryIndexes"]
        description = dynamodb.create_table(**arguments)["TableDescription"]
        if props.get("TimeToLiveSpecification"):
            dynamodb.update_time_to_live(
                TableName=name, TimeToLiveSpecification=props["TimeToLiveSpecification"]
            )
        return Realized(name, {"Arn": description["TableArn"]})

    def update_dynamodb_table(
        self, ctx: Context, record: Resource, props: dict[str, Any]
    ) -> Realized:
        ttl = props.get("TimeToLiveSpecification")
        if ttl and ttl != record.properties.get("TimeToLiveSpecification"):
            ctx.client("dynamodb").update_time_to_live(
                TableName=record.physical_id, TimeToLiveSpecification=ttl
            )
        return Realized(record.physical_id, record.attributes)

    def delete_dynamodb_table(self, ctx: Context, record: Resource) -> None:
        ctx.client("dynamodb").delete_table(TableName=record.physical_id)

    def create_ssm_parameter(self, ctx: Context, props: dict[str, Any]) -> Realized:
        name = props.get("Name") or f"CFN-{ctx.logical_id}-{ctx.name()[-12:]}"
        ctx.client("ssm").put_parameter(
            Name=name, Value=props["Value"], Type=props.get("Type", "String"), Overwrite=False
        )
        return Realized(name, {"Type": props.get("Type", "String"), "Value": props["Value"]})

    def update_ssm_parameter(
        self, ctx: Context, record: Resource, props: dict[str, Any]
    ) -> Realized:
        ctx.client("ssm").put_parameter(
            Name=record.physical_id,
            Value=props["Value"],
            Type=props.get("Type", "String"),
            Overwrite=True,
        )
        return Realized(
            record.physical_id, {"Type": props.get("Type", "String"), "Value": props["Value"]}
        )

    def delete_ssm_parameter(self, ctx: Context, record: Resource) -> None:
        ctx.client("ssm").delete_parameter(Name=record.physical_id)

    def create_secretsmanager_secret(self, ctx: Context, props: dict[str, Any]) -> Realized:
        generate = props.get("GenerateSecretString", {})
        alphabet = string.ascii_letters + string.digits
        value = props.get("SecretString") or "".join(
            secrets.choice(alphabet) for _ in range(int(generate.get("PasswordLength", 32)))
        )
        arn = ctx.client("secretsmanager").create_secret(
            Name=props.get("Name") or f"{ctx.logical_id}-{ctx.name()[-12:]}",
            SecretString=value,
            Description=props.get("Description", ""),
        )["ARN"]
        return Realized(arn, {"Id": arn})

    def delete_secretsmanager_secret(self, ctx: Context, record: Resource) -> None:
        ctx.client("secretsmanager").delete_secret(
            SecretId=record.physical_id, ForceDeleteWithoutRecovery=True
        )

    def create_kms_key(self, ctx: Context, props: dict[str, Any]) -> Realized:
        key = ctx.client("kms").create_key(
            Description=props.get("Description", ""), Policy=json.dumps(props.get("KeyPolicy", {}))
        )["KeyMetadata"]
        return Realized(key["KeyId"], {"Arn": key["Arn"], "KeyId": key["KeyId"]})

    def delete_kms_key(self, ctx: Context, record: Resource) -> None:
        ctx.client("kms").schedule_key_deletion(KeyId=record.physical_id, PendingWindowInDays=7)

    def create_sns_topic(self, ctx: Context, props: dict[str, Any]) -> Realized:
        name = props.get("TopicName") or ctx.name(256)
        arn = ctx.client("sns").create_topic(Name=name)["TopicArn"]
        return Realized(arn, {"TopicName": name, "TopicArn": arn})

    def delete_sns_topic(self, ctx: Context, record: Resource) -> None:
        ctx.client("sns").delete_topic(TopicArn=record.physical_id)

    def create_sqs_queue(self, ctx: Context, props: dict[str, Any]) -> Realized:
        name = props.get("QueueName") or ctx.name(80)
        sqs = ctx.client("sqs")
        url = sqs.create_queue(QueueName=name)["QueueUrl"]
        arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"][
            "QueueArn"
        ]
        return Realized(url, {"Arn": arn, "QueueName": name, "QueueUrl": url})

    def delete_sqs_queue(self, ctx: Context, record: Resource) -> None:
        ctx.client("sqs").delete_queue(QueueUrl=record.physical_id)

    def create_logs_loggroup(self, ctx: Context, props: dict[str, Any]) -> Realized:
        name = props.get("LogGroupName") or ctx.name(512)
        logs = ctx.client("logs")
        logs.create_log_group(logGroupName=name)
        if props.get("RetentionInDays"):
            logs.put_retention_policy(
                logGroupName=name, retentionInDays=int(props["RetentionInDays"])
            )
        return Realized(name, {"Arn": ctx.arn("logs", f"log-group:{name}:*")})

    def delete_logs_loggroup(self, ctx: Context, record: Resource) -> None:
        ctx.client("logs").delete_log_group(logGroupName=record.physical_id)

    # ------------------------------------------------------------------ SageMaker
    def create_sagemaker_modelpackagegroup(self, ctx: Context, props: dict[str, Any]) -> Realized:
        """The model registry's group (Ref is its ARN). Its policy and tags are not enforced."""
        sagemaker = ctx.client("sagemaker")
        arn = sagemaker.create_model_package_group(
            ModelPackageGroupName=props["ModelPackageGroupName"],
            ModelPackageGroupDescription=props.get("ModelPackageGroupDescription", ""),
            Tags=props.get("Tags", []),
        )["ModelPackageGroupArn"]
        described = sagemaker.describe_model_package_group(
            ModelPackageGroupName=props["ModelPackageGroupName"]
        )
        return Realized(
            arn,
            {
                "ModelPackageGroupArn": arn,
                "CreationTime": described["CreationTime"].isoformat(),
                "ModelPackageGroupStatus": described["ModelPackageGroupStatus"],
            },
        )

    # ------------------------------------------------------------------ IAM
    def create_iam_role(self, ctx: Context, props: dict[str, Any]) -> Realized:
        name = props.get("RoleName") or ctx.name(64)
        role = ctx.client("iam").create_role(
            RoleName=name,
            Path=props.get("Path", "/"),
            AssumeRolePolicyDocument=json.dumps(props["AssumeRolePolicyDocument"]),
        )["Role"]
        self._role_policies(ctx, name, {}, props)
        return Realized(name, {"Arn": role["Arn"], "RoleId": role["RoleId"]})

    def update_iam_role(self, ctx: Context, record: Resource, props: dict[str, Any]) -> Realized:
        iam = ctx.client("iam")
        if props["AssumeRolePolicyDocument"] != record.properties.get("AssumeRolePolicyDocument"):
            iam.update_assume_role_policy(
                RoleName=record.physical_id,
                PolicyDocument=json.dumps(props["AssumeRolePolicyDocument"]),
            )
        self._role_policies(ctx, record.physical_id, record.properties, props)
        return Realized(record.physical_id, record.attributes)

    def _role_policies(
        self, ctx: Context, name: str, old: dict[str, Any], new: dict[str, Any]
    ) -> None:
        iam = ctx.client("iam")
        old_inline = {p["PolicyName"]: p for p in old.get("Policies", [])}
        new_inline = {p["PolicyName"]: p for p in new.get("Policies", [])}
        for policy_name in old_inline.keys() - new_inline.keys():
            iam.delete_role_policy(RoleName=name, PolicyName=policy_name)
        for policy_name, policy in new_inline.items():
            if old_inline.get(policy_name) != policy:
                document = {"Version": "2012-10-17", **policy["PolicyDocument"]}
                iam.put_role_policy(
                    RoleName=name, PolicyName=policy_name, PolicyDocument=json.dumps(document)
                )
        old_managed = set(old.get("ManagedPolicyArns", []))
        new_managed = set(new.get("ManagedPolicyArns", []))
        for arn in old_managed - new_managed:
            _ignore_missing(iam.detach_role_policy, RoleName=name, PolicyArn=arn)
        for arn in new_managed - old_managed:
            # moto knows only some of AWS's managed policies; IAM is not enforced locally
            _ignore_missing(iam.attach_role_policy, RoleName=name, PolicyArn=arn)

    def delete_iam_role(self, ctx: Context, record: Resource) -> None:
        self._role_policies(ctx, record.physical_id, record.properties, {})
        ctx.client("iam").delete_role(RoleName=record.physical_id)

    # ------------------------------------------------------------------ Lambda
    def _code_dir(self, ctx: Context, code: dict[str, Any]) -> tuple[Path, dict[str, Any]]:
        """The deployment package, unpacked where the handler host imports it from; and what
        moto is given as the function's code."""
        if "ZipFile" in code:
            data = str(code["ZipFile"]).encode()
            folder = self.code_root / hashlib.sha256(data).hexdigest()[:16]
            if not folder.exists():
                folder.mkdir(parents=True)
                (folder / "index.py").write_bytes(data)
            return folder, {"ZipFile": _zip({"index.py": data})}
        obj = ctx.client("s3").get_object(Bucket=code["S3Bucket"], Key=code["S3Key"])
        data = obj["Body"].read()
        folder = self.code_root / hashlib.sha256(data).hexdigest()[:16]
        if not folder.exists():
            partial = folder.with_suffix(".partial")
            with zipfile.ZipFile(io.BytesIO(data)) as archive:
                archive.extractall(partial)
            partial.rename(folder)
        return folder, {"S3Bucket": code["S3Bucket"], "S3Key": code["S3Key"]}

    def _environment(self, props: dict[str, Any]) -> dict[str, str]:
        variables = props.get("Environment", {}).get("Variables", {})
        return {k: self.local_value(k, str(v)) for k, v in variables.items()}

    def local_value(self, name: str, value: str) -> str:
        """An environment value as the local cloud runs it: API URLs point at the local API and
        durations (``*_SECONDS``) follow the time scale, like every other wait, except waits for
        people, which keep their length at human pace."""
        if name in WAITS_FOR_PEOPLE:
            return f"{self.settings.for_people(float(value)):g}"
        if name.endswith("_SECONDS"):
            return f"{self.settings.scaled(float(value)):g}"
        return self.localize(value)

    def localize(self, value: str) -> str:
        """API URLs point at the local API, and Slack's Web API at the local Slack."""
        pattern = (
            rf"https://[a-z0-9]+\.execute-api\.{re.escape(self.settings.region)}\.amazonaws\.com"
        )
        value = re.sub(pattern, self.api.origin, value)
        if value == SLACK_WEB_API:
            return f"{self.api.origin}/_local/slack/api"
        return value

    def _code_host(self, ctx: Context) -> HandlerHost:
        if self.host is None:
            raise ResourceFailed(f"{ctx.logical_id}: no handler host to run the function's code")
        return self.host

    def create_lambda_function(self, ctx: Context, props: dict[str, Any]) -> Realized:
        host = self._code_host(ctx)
        name = props.get("FunctionName") or ctx.name(64)
        reserved = self._reserved_concurrency(ctx, name, props)
        folder, code = self._code_dir(ctx, props["Code"])
        created = ctx.client("lambda").create_function(
            FunctionName=name,
            Runtime=props.get("Runtime", "python3.12"),
            Role=props["Role"],
            Handler=props["Handler"],
            Code=code,
            Timeout=int(props.get("Timeout", 3)),
            MemorySize=int(props.get("MemorySize", 128)),
            Environment={"Variables": self._environment(props)},
            Description=props.get("Description", ""),
            Layers=list(props.get("Layers", [])),
        )
        host.register(name, _function_code(ctx.logical_id, folder, props))
        self._reserve(ctx, name, reserved, previous=None)
        return Realized(name, {"Arn": created["FunctionArn"]}, folder)

    def update_lambda_function(
        self, ctx: Context, record: Resource, props: dict[str, Any]
    ) -> Realized:
        host = self._code_host(ctx)
        lam, name = ctx.client("lambda"), record.physical_id
        reserved = self._reserved_concurrency(ctx, name, props)
        folder = record.handle
        if props["Code"] != record.properties.get("Code"):
            folder, code = self._code_dir(ctx, props["Code"])
            lam.update_function_code(FunctionName=name, **code)
            _wait_for_update(lam, name)
        lam.update_function_configuration(
            FunctionName=name,
            Role=props["Role"],
            Handler=props["Handler"],
            Timeout=int(props.get("Timeout", 3)),
            MemorySize=int(props.get("MemorySize", 128)),
            Environment={"Variables": self._environment(props)},
            Description=props.get("Description", ""),
            Layers=list(props.get("Layers", [])),
        )
        _wait_for_update(lam, name)
        host.register(name, _function_code(ctx.logical_id, folder, props))
        previous = record.properties.get("ReservedConcurrentExecutions")
        self._reserve(ctx, name, reserved, previous=None if previous is None else int(previous))
        return Realized(name, record.attributes, folder)

    def delete_lambda_function(self, ctx: Context, record: Resource) -> None:
        ctx.client("lambda").delete_function(FunctionName=record.physical_id)
        self.api.reserved_concurrency.pop(record.physical_id, None)

    def _reserved_concurrency(self, ctx: Context, name: str, props: dict[str, Any]) -> int | None:
        """The function's ``ReservedConcurrentExecutions`` if Lambda would grant it: what the
        account's other functions reserve plus this must leave 100 of the 1,000 unreserved."""
        value = props.get("ReservedConcurrentExecutions")
        if value is None:
            return None
        wanted = int(value)
        if wanted < 0:
            raise ResourceFailed(
                f"{ctx.logical_id}: 1 validation error detected: Value '{wanted}' at "
                "'reservedConcurrentExecutions' failed to satisfy constraint: Member must have "
                "value greater than or equal to 0 (Service: Lambda, Status Code: 400)"
            )
        others = sum(
            int(function.reserved_concurrency)
            for function in _lambda_backend(self.settings).list_functions()
            if function.reserved_concurrency is not None and function.function_name != name
        )
        if LAMBDA_CONCURRENCY_LIMIT - others - wanted < LAMBDA_MIN_UNRESERVED:
            raise ResourceFailed(
                f"{ctx.logical_id}: Specified ReservedConcurrentExecutions for function decreases "
                "account's UnreservedConcurrentExecution below its minimum value of "
                f"[{LAMBDA_MIN_UNRESERVED}]. (Service: Lambda, Status Code: 400)"
            )
        return wanted

    def _reserve(self, ctx: Context, name: str, reserved: int | None, previous: int | None) -> None:
        lam = ctx.client("lambda")
        if reserved is None:
            if previous is not None:
                lam.delete_function_concurrency(FunctionName=name)
            self.api.reserved_concurrency.pop(name, None)
            return
        lam.put_function_concurrency(FunctionName=name, ReservedConcurrentExecutions=reserved)
        self.api.reserved_concurrency[name] = reserved

    def create_lambda_version(self, ctx: Context, props: dict[str, Any]) -> Realized:
        version = ctx.client("lambda").publish_version(
            FunctionName=props["FunctionName"], Description=props.get("Description", "")
        )
        return Realized(version["FunctionArn"], {"Version": version["Version"]})

    def delete_lambda_version(self, ctx: Context, record: Resource) -> None:
        function, version = record.physical_id.rsplit(":", 1)
        ctx.client("lambda").delete_function(FunctionName=function, Qualifier=version)

    def create_lambda_layerversion(self, ctx: Context, props: dict[str, Any]) -> Realized:
        """Published as Lambda publishes it (a function's version changes with its layers); the
        handlers still import the shared library from the project (see NOT_EMULATED)."""
        layer = props.get("LayerName") or ctx.name(64)
        content = props["Content"]
        published = ctx.client("lambda").publish_layer_version(
            LayerName=layer,
            Description=props.get("Description", ""),
            Content={"S3Bucket": content["S3Bucket"], "S3Key": content["S3Key"]},
            CompatibleRuntimes=props.get("CompatibleRuntimes", []),
        )
        self.not_emulated[ctx.logical_id] = NOT_EMULATED["AWS::Lambda::LayerVersion"]
        arn = published["LayerVersionArn"]
        return Realized(arn, {"LayerVersionArn": arn})

    def delete_lambda_layerversion(self, ctx: Context, record: Resource) -> None:
        name, _, number = record.physical_id.rpartition(":")
        ctx.client("lambda").delete_layer_version(
            LayerName=name.rsplit(":", 1)[-1], VersionNumber=int(number)
        )

    def create_lambda_alias(self, ctx: Context, props: dict[str, Any]) -> Realized:
        alias = ctx.client("lambda").create_alias(
            FunctionName=props["FunctionName"],
            Name=props["Name"],
            FunctionVersion=str(props["FunctionVersion"]),
            Description=props.get("Description", ""),
        )
        return Realized(alias["AliasArn"], {"AliasArn": alias["AliasArn"]})

    def update_lambda_alias(
        self, ctx: Context, record: Resource, props: dict[str, Any]
    ) -> Realized:
        """A new version behind an alias with ``CodeDeployLambdaAliasUpdate`` moves through a
        CodeDeploy deployment whose ``CurrentVersion`` is the version CloudFormation last
        recorded for the alias (not what the alias points at now); a failed deployment fails
        the update."""
        lam = ctx.client("lambda")
        current = str(record.properties["FunctionVersion"])
        target = str(props["FunctionVersion"])
        policy = ctx.update_policy.get("CodeDeployLambdaAliasUpdate")
        if target != current and policy and not ctx.rolling_back:
            self._deploy_alias(ctx, props, current, target, policy)
        elif target != current:
            live = lam.get_alias(FunctionName=props["FunctionName"], Name=props["Name"])
            if live["FunctionVersion"] != target or live.get("RoutingConfig"):
                lam.update_alias(
                    FunctionName=props["FunctionName"],
                    Name=props["Name"],
                    FunctionVersion=target,
                    RoutingConfig={"AdditionalVersionWeights": {}},
                )
        if props.get("Description", "") != record.properties.get("Description", ""):
            lam.update_alias(
                FunctionName=props["FunctionName"],
                Name=props["Name"],
                Description=props.get("Description", ""),
            )
        return Realized(record.physical_id, record.attributes)

    def _deploy_alias(
        self, ctx: Context, props: dict[str, Any], current: str, target: str, policy: dict[str, Any]
    ) -> None:
        hooks = [
            {lifecycle: policy[key]}
            for lifecycle, key in (
                ("BeforeAllowTraffic", "BeforeAllowTrafficHook"),
                ("AfterAllowTraffic", "AfterAllowTrafficHook"),
            )
            if policy.get(key)
        ]
        app_spec = {
            "version": 0.0,
            "Resources": [
                {
                    ctx.logical_id: {
                        "Type": "AWS::Lambda::Function",
                        "Properties": {
                            "Name": props["FunctionName"],
                            "Alias": props["Name"],
                            "CurrentVersion": current,
                            "TargetVersion": target,
                        },
                    }
                }
            ],
            "Hooks": hooks,
        }
        codedeploy = ctx.client("codedeploy")
        deployment_id = codedeploy.create_deployment(
            applicationName=policy["ApplicationName"],
            deploymentGroupName=policy["DeploymentGroupName"],
            revision={
                "revisionType": "AppSpecContent",
                "appSpecContent": {"content": json.dumps(app_spec)},
            },
        )["deploymentId"]
        self.feed.emit(
            "cloudformation",
            f"{ctx.stack.name}: {ctx.logical_id} {current} -> {target} through CodeDeploy "
            f"deployment {deployment_id}",
            deployment=deployment_id,
        )
        while True:
            info = codedeploy.get_deployment(deploymentId=deployment_id)["deploymentInfo"]
            if info["status"] in DEPLOYMENT_DONE:
                break
            time.sleep(0.1)
        if info["status"] != "Succeeded":
            message = info.get("errorInformation", {}).get("message", info["status"])
            raise ResourceFailed(
                f"{ctx.logical_id}: CodeDeploy deployment {deployment_id} failed: {message}"
            )

    # ------------------------------------------------------------------ orchestration
    def create_stepfunctions_statemachine(self, ctx: Context, props: dict[str, Any]) -> Realized:
        name = props.get("StateMachineName") or ctx.name(80)
        arn = ctx.client("stepfunctions").create_state_machine(
            name=name, definition=self._definition(ctx, props), roleArn=props["RoleArn"]
        )["stateMachineArn"]
        return Realized(arn, {"Name": name, "Arn": arn})

    def update_stepfunctions_statemachine(
        self, ctx: Context, record: Resource, props: dict[str, Any]
    ) -> Realized:
        ctx.client("stepfunctions").update_state_machine(
            stateMachineArn=record.physical_id,
            definition=self._definition(ctx, props),
            roleArn=props["RoleArn"],
        )
        return Realized(record.physical_id, record.attributes)

    def delete_stepfunctions_statemachine(self, ctx: Context, record: Resource) -> None:
        ctx.client("stepfunctions").delete_state_machine(stateMachineArn=record.physical_id)

    def _definition(self, ctx: Context, props: dict[str, Any]) -> str:
        text: str
        if "DefinitionS3Location" in props:
            location = props["DefinitionS3Location"]
            text = (
                ctx.client("s3")
                .get_object(Bucket=location["Bucket"], Key=location["Key"])["Body"]
                .read()
                .decode()
            )
        elif "DefinitionString" in props:
            text = str(props["DefinitionString"])
        else:
            text = json.dumps(props["Definition"])
        for key, value in (props.get("DefinitionSubstitutions") or {}).items():
            text = text.replace("${" + key + "}", str(value))
        try:
            json.loads(text)
        except ValueError as exc:
            raise ResourceFailed(
                f"{ctx.logical_id}: Invalid State Machine Definition: {exc}"
            ) from None
        return text

    def create_events_rule(self, ctx: Context, props: dict[str, Any]) -> Realized:
        name = props.get("Name") or ctx.name(64)
        self._put_rule(ctx, name, props)
        return Realized(name, {"Arn": ctx.arn("events", f"rule/{name}")})

    def update_events_rule(self, ctx: Context, record: Resource, props: dict[str, Any]) -> Realized:
        events = ctx.client("events")
        old_ids = [t["Id"] for t in record.properties.get("Targets", [])]
        if old_ids:
            events.remove_targets(Rule=record.physical_id, Ids=old_ids)
        self._put_rule(ctx, record.physical_id, props)
        return Realized(record.physical_id, record.attributes)

    def _put_rule(self, ctx: Context, name: str, props: dict[str, Any]) -> None:
        events = ctx.client("events")
        arguments: dict[str, Any] = {"Name": name, "State": props.get("State", "ENABLED")}
        if "EventPattern" in props:
            arguments["EventPattern"] = json.dumps(props["EventPattern"])
        if "ScheduleExpression" in props:
            arguments["ScheduleExpression"] = props["ScheduleExpression"]
        events.put_rule(**arguments)
        targets = [{"Id": t["Id"], "Arn": t["Arn"]} for t in props.get("Targets", [])]
        if targets:
            events.put_targets(Rule=name, Targets=targets)

    def delete_events_rule(self, ctx: Context, record: Resource) -> None:
        events = ctx.client("events")
        ids = [t["Id"] for t in record.properties.get("Targets", [])]
        if ids:
            events.remove_targets(Rule=record.physical_id, Ids=ids)
        events.delete_rule(Name=record.physical_id)

    # ------------------------------------------------------------------ alarms and CodeDeploy
    def create_cloudwatch_alarm(self, ctx: Context, props: dict[str, Any]) -> Realized:
        name = props.get("AlarmName") or ctx.name(255)
        self._put_alarm(ctx, name, props)
        return Realized(name, {"Arn": ctx.arn("cloudwatch", f"alarm:{name}")})

    def update_cloudwatch_alarm(
        self, ctx: Context, record: Resource, props: dict[str, Any]
    ) -> Realized:
        self._put_alarm(ctx, record.physical_id, props)
        return Realized(record.physical_id, record.attributes)

    def _put_alarm(self, ctx: Context, name: str, props: dict[str, Any]) -> None:
        arguments = {
            "AlarmName": name,
            "AlarmDescription": props.get("AlarmDescription", ""),
            "Namespace": props["Namespace"],
            "MetricName": props["MetricName"],
            "Dimensions": props.get("Dimensions", []),
            "Period": int(props.get("Period", 60)),
            "EvaluationPeriods": int(props.get("EvaluationPeriods", 1)),
            "Threshold": float(props["Threshold"]),
            "ComparisonOperator": props["ComparisonOperator"],
            "TreatMissingData": props.get("TreatMissingData", "missing"),
            "AlarmActions": props.get("AlarmActions", []),
        }
        if "ExtendedStatistic" in props:
            arguments["ExtendedStatistic"] = props["ExtendedStatistic"]
        else:
            arguments["Statistic"] = props.get("Statistic", "Average")
        ctx.client("cloudwatch").put_metric_alarm(**arguments)
        self.alarms.add(Alarm.from_properties(name, ctx.logical_id, props))

    def delete_cloudwatch_alarm(self, ctx: Context, record: Resource) -> None:
        ctx.client("cloudwatch").delete_alarms(AlarmNames=[record.physical_id])
        self.alarms.remove(record.physical_id)

    def create_codedeploy_application(self, ctx: Context, props: dict[str, Any]) -> Realized:
        name = props.get("ApplicationName") or ctx.name(100)
        ctx.client("codedeploy").create_application(
            applicationName=name, computePlatform=props.get("ComputePlatform", "Server")
        )
        return Realized(name)

    def delete_codedeploy_application(self, ctx: Context, record: Resource) -> None:
        _codedeploy_backend(self.settings).applications.pop(record.physical_id, None)

    def create_codedeploy_deploymentgroup(self, ctx: Context, props: dict[str, Any]) -> Realized:
        name = props.get("DeploymentGroupName") or ctx.name(100)
        self._put_group(ctx, name, props)
        return Realized(name)

    def update_codedeploy_deploymentgroup(
        self, ctx: Context, record: Resource, props: dict[str, Any]
    ) -> Realized:
        # moto has no UpdateDeploymentGroup: the group is made again under the same name
        groups = _codedeploy_backend(self.settings).deployment_groups
        groups.get(props["ApplicationName"], {}).pop(record.physical_id, None)
        self._put_group(ctx, record.physical_id, props)
        return Realized(record.physical_id)

    def _put_group(self, ctx: Context, name: str, props: dict[str, Any]) -> None:
        alarms = props.get("AlarmConfiguration", {})
        rollback = props.get("AutoRollbackConfiguration", {})
        style = props.get("DeploymentStyle", {})
        ctx.client("codedeploy").create_deployment_group(
            applicationName=props["ApplicationName"],
            deploymentGroupName=name,
            deploymentConfigName=props.get("DeploymentConfigName", "CodeDeployDefault.OneAtATime"),
            serviceRoleArn=props["ServiceRoleArn"],
            alarmConfiguration={
                "enabled": bool(alarms.get("Enabled", False)),
                "alarms": [{"name": a["Name"]} for a in alarms.get("Alarms", [])],
            },
            autoRollbackConfiguration={
                "enabled": bool(rollback.get("Enabled", False)),
                "events": rollback.get("Events", []),
            },
            deploymentStyle={
                "deploymentType": style.get("DeploymentType", "IN_PLACE"),
                "deploymentOption": style.get("DeploymentOption", "WITHOUT_TRAFFIC_CONTROL"),
            },
        )

    def delete_codedeploy_deploymentgroup(self, ctx: Context, record: Resource) -> None:
        groups = _codedeploy_backend(self.settings).deployment_groups
        groups.get(record.properties["ApplicationName"], {}).pop(record.physical_id, None)

    # ------------------------------------------------------------------ API Gateway
    def create_apigateway_restapi(self, ctx: Context, props: dict[str, Any]) -> Realized:
        api_id = "".join(secrets.choice(string.ascii_lowercase + string.digits) for _ in range(10))
        policy = self._resource_policy(ctx, api_id, props)
        routes = self._routes(ctx, api_id, props)
        self._set_policy(api_id, policy)
        return Realized(
            api_id, {"RootResourceId": uuid.uuid4().hex[:10], "RestApiId": api_id}, routes
        )

    def update_apigateway_restapi(
        self, ctx: Context, record: Resource, props: dict[str, Any]
    ) -> Realized:
        policy = self._resource_policy(ctx, record.physical_id, props)  # refused: nothing changes
        self.delete_apigateway_restapi(ctx, record)
        routes = self._routes(ctx, record.physical_id, props)
        self._set_policy(record.physical_id, policy)
        return Realized(record.physical_id, record.attributes, routes)

    def delete_apigateway_restapi(self, ctx: Context, record: Resource) -> None:
        for route in record.handle or []:
            if route in self.api.routes:
                self.api.routes.remove(route)
        self.api.policies.pop(record.physical_id, None)

    def _resource_policy(
        self, ctx: Context, api_id: str, props: dict[str, Any]
    ) -> ResourcePolicy | None:
        """The API's resource policy: the ``Policy`` property, or the OpenAPI body's
        ``x-amazon-apigateway-policy`` (where SAM writes ``Auth.ResourcePolicy``)."""
        body = props.get("Body") or {}
        document = props.get("Policy") or body.get("x-amazon-apigateway-policy")
        if not document:
            return None
        try:
            return ResourcePolicy.parse(
                document, region=self.settings.region, account=self.settings.account, api_id=api_id
            )
        except PolicyError as exc:
            raise ResourceFailed(f"{ctx.logical_id}: Invalid policy document: {exc}") from None

    def _set_policy(self, api_id: str, policy: ResourcePolicy | None) -> None:
        if policy is None:
            self.api.policies.pop(api_id, None)
        else:
            self.api.policies[api_id] = policy

    def _routes(self, ctx: Context, api_id: str, props: dict[str, Any]) -> list[Route]:
        """The API's routes, from its OpenAPI body (what SAM writes for ``Api`` events)."""
        body = props.get("Body") or {}
        stages = [
            r.get("Properties", {}).get("StageName")
            for r in ctx.stack.template["Resources"].values()
            if r["Type"] == "AWS::ApiGateway::Stage"
            and r.get("Properties", {}).get("RestApiId") == {"Ref": ctx.logical_id}
        ]
        self.api.binary_media_types = template_media_types(
            props.get("BinaryMediaTypes") or body.get("x-amazon-apigateway-binary-media-types", [])
        )
        default_security = body.get("security", [])
        routes = []
        for path, methods in (body.get("paths") or {}).items():
            for method, spec in methods.items():
                integration = spec.get("x-amazon-apigateway-integration", {})
                match = re.search(
                    r"functions/(arn:[^/]+)/invocations", str(integration.get("uri", ""))
                )
                if match is None:
                    continue
                function = match.group(1).split(":function:", 1)[1]
                name, _, qualifier = function.partition(":")
                security = spec.get("security", default_security)
                kinds = [k for s in security for k in s]
                for stage in stages or ["Prod"]:
                    routes.append(
                        Route(
                            method="ANY"
                            if method == "x-amazon-apigateway-any-method"
                            else method.upper(),
                            path=path,
                            function_name=name,
                            qualifier=qualifier or None,
                            authorizer="AWS_IAM" if "AWS_IAM" in kinds else "NONE",
                            api_name=str(props.get("Name", ctx.logical_id)),
                            stage=str(stage),
                            api_id=api_id,
                        )
                    )
        self.api.routes.extend(routes)
        return routes

    def create_apigateway_stage(self, ctx: Context, props: dict[str, Any]) -> Realized:
        name = str(props["StageName"])
        self.api.stages[(str(props["RestApiId"]), name)] = self._stage_settings(ctx, props)
        self.not_emulated[ctx.logical_id] = NOT_EMULATED["AWS::ApiGateway::Stage"]
        return Realized(name)

    def update_apigateway_stage(
        self, ctx: Context, record: Resource, props: dict[str, Any]
    ) -> Realized:
        self.api.stages[(str(props["RestApiId"]), record.physical_id)] = self._stage_settings(
            ctx, props
        )
        return Realized(record.physical_id, record.attributes)

    def delete_apigateway_stage(self, ctx: Context, record: Resource) -> None:
        self.api.stages.pop((str(record.properties["RestApiId"]), record.physical_id), None)

    def _stage_settings(self, ctx: Context, props: dict[str, Any]) -> StageSettings:
        """API Gateway writes a stage's logs (access logs, or execution logs from
        ``MethodSettings``) with the account's CloudWatch Logs role, and refuses the stage
        while the account has none."""
        try:
            access_log = AccessLogSetting.from_properties(props)
        except AccessLogError as exc:
            raise ResourceFailed(
                f"{ctx.logical_id}: {exc} (Service: ApiGateway, Status Code: 400)"
            ) from None
        execution_logs = any(
            str(method.get("LoggingLevel", "OFF")).upper() != "OFF"
            or str(method.get("DataTraceEnabled", "false")).lower() == "true"
            for method in props.get("MethodSettings") or []
        )
        account = (self.settings.account, self.settings.region)
        if (access_log or execution_logs) and account not in self.api.cloudwatch_roles:
            raise ResourceFailed(
                f"{ctx.logical_id}: CloudWatch Logs role ARN must be set in account settings to "
                "enable logging (Service: ApiGateway, Status Code: 400)"
            )
        return StageSettings(access_log)

    def create_apigateway_account(self, ctx: Context, props: dict[str, Any]) -> Realized:
        self._set_cloudwatch_role(ctx, props)
        return Realized(ctx.name())

    def update_apigateway_account(
        self, ctx: Context, record: Resource, props: dict[str, Any]
    ) -> Realized:
        self._set_cloudwatch_role(ctx, props)
        return Realized(record.physical_id, record.attributes)

    def delete_apigateway_account(self, ctx: Context, record: Resource) -> None:
        """Nothing: the settings belong to the account and Region, not to the stack."""

    def _set_cloudwatch_role(self, ctx: Context, props: dict[str, Any]) -> None:
        """API Gateway's account-wide CloudWatch Logs role: one API Gateway may assume."""
        account = (self.settings.account, self.settings.region)
        arn = props.get("CloudWatchRoleArn")
        if not arn:
            self.api.cloudwatch_roles.pop(account, None)
            return
        if not _trusts_api_gateway(ctx.client("iam"), str(arn)):
            raise ResourceFailed(
                f"{ctx.logical_id}: The role ARN does not have required permissions configured. "
                "Please grant trust permission for API Gateway and add the required role policy. "
                "(Service: ApiGateway, Status Code: 400)"
            )
        self.api.cloudwatch_roles[account] = str(arn)

    # ------------------------------------------------------------------ custom resources
    def _custom_response(self, request: Request) -> Response:
        request_id = request.path.rsplit("/", 1)[-1]
        self._custom_answers[request_id] = json.loads(request.get_data() or b"{}")
        wait = self._custom_waits.get(request_id)
        if wait is not None:
            wait.set()
        return Response("", status=200)

    def _custom(
        self, ctx: Context, kind: str, props: dict[str, Any], record: Resource | None
    ) -> Realized:
        request_id = str(uuid.uuid4())
        done = self._custom_waits[request_id] = threading.Event()
        event: dict[str, Any] = {
            "RequestType": kind,
            "ResponseURL": f"{self.api.origin}/_local/cfn-response/{request_id}",
            "StackId": ctx.stack.stack_id,
            "RequestId": request_id,
            "ResourceType": ctx.stack.template["Resources"]
            .get(ctx.logical_id, {})
            .get("Type", record.type if record else "Custom::Resource"),
            "LogicalResourceId": ctx.logical_id,
            "ResourceProperties": props,
        }
        if record is not None:
            event["PhysicalResourceId"] = record.physical_id
        if kind == "Update" and record is not None:
            event["OldResourceProperties"] = record.properties
        ctx.client("lambda").invoke(
            FunctionName=props["ServiceToken"],
            InvocationType="Event",
            Payload=json.dumps(event),
        )
        if not done.wait(max(60.0, self.settings.scaled(3600))):
            raise ResourceFailed(
                f"{ctx.logical_id}: Custom resource did not respond within the timeout"
            )
        answer = self._custom_answers.pop(request_id)
        self._custom_waits.pop(request_id, None)
        if answer.get("Status") != "SUCCESS":
            raise ResourceFailed(
                f"{ctx.logical_id}: Received response status [FAILED] from custom resource. "
                f"Message returned: {answer.get('Reason')}"
            )
        physical = answer.get("PhysicalResourceId") or (
            record.physical_id if record else request_id
        )
        return Realized(str(physical), dict(answer.get("Data") or {}))


# ---------------------------------------------------------------------------- helpers
def _method(kind: str) -> str:
    """``AWS::S3::Bucket`` -> ``s3_bucket``."""
    return "_".join(kind.split("::")[1:]).lower()


def _bucket_attributes(name: str) -> dict[str, Any]:
    return {
        "Arn": f"arn:aws:s3:::{name}",
        "DomainName": f"{name}.s3.amazonaws.com",
        "RegionalDomainName": f"{name}.s3.amazonaws.com",
    }


def _lifecycle_rule(rule: dict[str, Any]) -> dict[str, Any]:
    """A lifecycle rule as CloudFormation writes it (``AWS::S3::Bucket`` ``Rule``) in the shape
    S3's PutBucketLifecycleConfiguration takes."""
    converted: dict[str, Any] = {"Status": rule["Status"], "Filter": _lifecycle_filter(rule)}
    if "Id" in rule:
        converted["ID"] = rule["Id"]
    expiration: dict[str, Any] = {}
    if "ExpirationInDays" in rule:
        expiration["Days"] = int(rule["ExpirationInDays"])
    if "ExpirationDate" in rule:
        expiration["Date"] = rule["ExpirationDate"]
    if "ExpiredObjectDeleteMarker" in rule:
        expiration["ExpiredObjectDeleteMarker"] = _true(rule["ExpiredObjectDeleteMarker"])
    if expiration:
        converted["Expiration"] = expiration
    noncurrent = {k: int(v) for k, v in (rule.get("NoncurrentVersionExpiration") or {}).items()}
    if "NoncurrentVersionExpirationInDays" in rule:
        noncurrent["NoncurrentDays"] = int(rule["NoncurrentVersionExpirationInDays"])
    if noncurrent:
        converted["NoncurrentVersionExpiration"] = noncurrent
    transitions = rule.get("Transitions", []) + _as_list(rule.get("Transition", []))
    if transitions:
        converted["Transitions"] = [
            {"StorageClass": t["StorageClass"]}
            | ({"Days": int(t["TransitionInDays"])} if "TransitionInDays" in t else {})
            | ({"Date": t["TransitionDate"]} if "TransitionDate" in t else {})
            for t in transitions
        ]
    noncurrent_transitions = rule.get("NoncurrentVersionTransitions", []) + _as_list(
        rule.get("NoncurrentVersionTransition", [])
    )
    if noncurrent_transitions:
        converted["NoncurrentVersionTransitions"] = [
            {"StorageClass": t["StorageClass"], "NoncurrentDays": int(t["TransitionInDays"])}
            | (
                {"NewerNoncurrentVersions": int(t["NewerNoncurrentVersions"])}
                if "NewerNoncurrentVersions" in t
                else {}
            )
            for t in noncurrent_transitions
        ]
    if "AbortIncompleteMultipartUpload" in rule:
        days = int(rule["AbortIncompleteMultipartUpload"]["DaysAfterInitiation"])
        converted["AbortIncompleteMultipartUpload"] = {"DaysAfterInitiation": days}
    return converted


def _lifecycle_filter(rule: dict[str, Any]) -> dict[str, Any]:
    """The objects a rule applies to: one condition alone, several under ``And``, and with
    none every object (an empty prefix)."""
    conditions: dict[str, Any] = {}
    if "Prefix" in rule:
        conditions["Prefix"] = rule["Prefix"]
    for size in ("ObjectSizeGreaterThan", "ObjectSizeLessThan"):
        if size in rule:
            conditions[size] = int(rule[size])
    tags = [{"Key": t["Key"], "Value": t["Value"]} for t in rule.get("TagFilters", [])]
    if not tags and len(conditions) <= 1:
        return conditions or {"Prefix": ""}
    if len(tags) == 1 and not conditions:
        return {"Tag": tags[0]}
    return {"And": conditions | ({"Tags": tags} if tags else {})}


def _true(value: Any) -> bool:
    """A CloudFormation Boolean, which templates may write as a string."""
    return value is True or str(value).lower() == "true"


def _function_code(logical_id: str, folder: Path, props: dict[str, Any]) -> FunctionCode:
    return FunctionCode(
        logical_id,
        folder,
        str(props["Handler"]),
        int(props.get("MemorySize", 128)),
        int(props.get("Timeout", 3)),
        (props.get("DeadLetterConfig") or {}).get("TargetArn"),
    )


def _zip(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in files.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def _wait_for_update(lam: Any, name: str) -> None:
    for _ in range(100):
        if (
            lam.get_function_configuration(FunctionName=name).get("LastUpdateStatus")
            != "InProgress"
        ):
            return
        time.sleep(0.05)


def _ignore_missing(call: Callable[..., Any], **arguments: Any) -> None:
    try:
        call(**arguments)
    except Exception as exc:
        if "NoSuchEntity" not in type(exc).__name__ and "NoSuchEntity" not in str(exc):
            raise


def _trusts_api_gateway(iam: Any, role_arn: str) -> bool:
    """Whether the role's trust policy lets apigateway.amazonaws.com assume it."""
    try:
        document = iam.get_role(RoleName=role_arn.rsplit("/", 1)[-1])["Role"][
            "AssumeRolePolicyDocument"
        ]
    except iam.exceptions.NoSuchEntityException:
        return False
    if isinstance(document, str):
        document = json.loads(document)
    statements = document.get("Statement", [])
    for statement in statements if isinstance(statements, list) else [statements]:
        actions = statement.get("Action", [])
        services = (statement.get("Principal") or {}).get("Service", [])
        if (
            statement.get("Effect") == "Allow"
            and {"sts:AssumeRole", "sts:*", "*"} & set(_as_list(actions))
            and "apigateway.amazonaws.com" in _as_list(services)
        ):
            return True
    return False


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _lambda_backend(settings: LocalSettings) -> Any:
    """Moto's Lambda backend for the local account (the one its configuration picks)."""
    from moto.awslambda.utils import get_backend

    backend: Any = get_backend(settings.account, settings.region)
    return backend


def _codedeploy_backend(settings: LocalSettings) -> Any:
    from moto.codedeploy.models import codedeploy_backends

    backend: Any = codedeploy_backends[settings.account][settings.region]
    return backend


def resource_record(
    logical_id: str,
    kind: str,
    definition: dict[str, Any],
    props: dict[str, Any],
    update_policy: dict[str, Any],
    realized: Realized,
) -> Resource:
    """What a stack records of a resource an execution (or ``create_resource``) made."""
    return Resource(
        logical_id=logical_id,
        type=kind,
        physical_id=realized.physical_id,
        properties=props,
        attributes=dict(realized.attributes),
        deletion_policy=str(definition.get("DeletionPolicy", "Delete")),
        update_policy=update_policy,
        handle=realized.handle,
    )
