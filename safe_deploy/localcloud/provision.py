"""Creating the template's resources in the local cloud, type by type.

Nothing here names a resource of this project: each CloudFormation or SAM type maps to the moto
calls that create it (and SAM's own conventions: a function's role, ``AutoPublishAlias``, the
CodeDeploy application and group of ``DeploymentPreference``, event sources, API routes).
Types with no local meaning (log groups, dashboards, Synthetics canaries, layers) are recorded as
not emulated, with a placeholder value, so references to them still resolve.
"""

from __future__ import annotations

import io
import json
import re
import secrets
import string
import threading
import uuid
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import boto3
from werkzeug.wrappers import Request, Response

from safe_deploy.localcloud.api import LocalApi, Route
from safe_deploy.localcloud.lambdas import FunctionCode, HandlerHost
from safe_deploy.localcloud.metrics import Alarm, Alarms
from safe_deploy.localcloud.state import ActivityFeed, LocalSettings
from safe_deploy.localcloud.template import Stack, function_environment, function_property

CODEDEPLOY_APPLICATION = "ServerlessDeploymentApplication"  # SAM's logical id for it
NOT_EMULATED = {
    "AWS::Logs::LogGroup": "log groups: function logs go to the local cloud's logs/ folder",
    "AWS::CloudWatch::Dashboard": "dashboards",
    "AWS::Synthetics::Canary": "Synthetics canaries (GET /health answers locally)",
    "AWS::Serverless::LayerVersion": "layers: handlers import pipeline_common from the project",
    "AWS::Lambda::Permission": "resource policies (not enforced locally)",
    "AWS::S3::BucketPolicy": "bucket policies (not enforced locally)",
    "AWS::SNS::Subscription": "email subscriptions (messages go to the outbox)",
}


def _suffix() -> str:
    return "".join(secrets.choice(string.ascii_uppercase + string.digits) for _ in range(12))


def _dummy_zip() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("app.py", "# the local cloud runs the project's handler in-process\n")
    return buffer.getvalue()


@dataclass
class Deployment:
    """A function's DeploymentPreference, as the local CodeDeploy needs it."""

    function_logical_id: str
    application: str
    group: str
    config_name: str
    alarms: list[str]
    hooks: dict[str, str]


@dataclass
class Provisioner:
    settings: LocalSettings
    stack: Stack
    host: HandlerHost
    api: LocalApi
    alarms: Alarms
    feed: ActivityFeed
    api_origin: str = ""
    not_emulated: dict[str, str] = field(default_factory=dict)
    functions: dict[str, str] = field(default_factory=dict)  # logical id -> function name
    deployments: list[Deployment] = field(default_factory=list)
    schedules: list[tuple[str, str]] = field(default_factory=list)  # (function name, expression)
    _custom_responses: dict[str, dict[str, Any]] = field(default_factory=dict)
    _custom_events: dict[str, threading.Event] = field(default_factory=dict)

    def client(self, service: str) -> Any:
        make: Callable[..., Any] = boto3.client
        return make(service, region_name=self.settings.region)

    @property
    def template(self) -> dict[str, Any]:
        return self.stack.template

    def localize(self, value: str) -> str:
        """API Gateway URLs of the template's APIs point at the local API server."""
        pattern = (
            rf"https://[a-z0-9]+\.execute-api\.{re.escape(self.settings.region)}\.amazonaws\.com"
        )
        return re.sub(pattern, self.api_origin, value) if self.api_origin else value

    def _local_value(self, name: str, value: str) -> str:
        """An environment value as the local cloud runs it: API URLs point at the local API and
        durations (``*_SECONDS``) follow the time scale, like every other wait."""
        if name.endswith("_SECONDS"):
            return f"{self.settings.scaled(float(value)):g}"
        return self.localize(value)

    def physical_name(self, logical_id: str) -> str:
        return f"{self.settings.stack_name}-{logical_id}-{_suffix()}"

    def arn(self, service: str, resource: str, region: bool = True) -> str:
        where = self.settings.region if region else ""
        return f"arn:aws:{service}:{where}:{self.settings.account}:{resource}"

    # ------------------------------------------------------------------ the run
    def create_all(self) -> None:
        self.api.local_routes["/_local/cfn-response/"] = self._cfn_response
        for logical_id in self.stack.creation_order():
            resource = self.template["Resources"][logical_id]
            kind = resource["Type"]
            create = self._creators().get(kind)
            if create is None and kind.startswith("Custom::"):
                create = self._custom
            if create is None:
                self.not_emulated[logical_id] = NOT_EMULATED.get(kind, kind)
                self.stack.physical_ids[logical_id] = f"local-{logical_id}"
                self.stack.attributes[(logical_id, "Arn")] = self.arn("local", logical_id)
                continue
            create(logical_id, resource.get("Properties", {}))
        for logical_id, resource in self.template["Resources"].items():
            if resource["Type"] == "AWS::Serverless::Function" and self.stack.active(logical_id):
                self._function_events(logical_id, resource["Properties"])
                if "DeploymentPreference" in resource["Properties"]:
                    self._deployment_preference(logical_id, resource["Properties"])

    def _creators(self) -> dict[str, Callable[[str, dict[str, Any]], None]]:
        return {
            "AWS::S3::Bucket": self._bucket,
            "AWS::DynamoDB::Table": self._table,
            "AWS::SSM::Parameter": self._parameter,
            "AWS::SecretsManager::Secret": self._secret,
            "AWS::SNS::Topic": self._topic,
            "AWS::IAM::Role": self._role,
            "AWS::Serverless::Function": self._function,
            "AWS::Serverless::StateMachine": self._state_machine,
            "AWS::Serverless::Api": self._rest_api,
            "AWS::CloudWatch::Alarm": self._alarm,
            "AWS::Events::Rule": self._rule,
        }

    # ------------------------------------------------------------------ storage and settings
    def _bucket(self, logical_id: str, props: dict[str, Any]) -> None:
        name = self.physical_name(logical_id).lower()[:63]
        s3 = self.client("s3")
        s3.create_bucket(Bucket=name)
        props = self.stack.resolve(props)
        if props.get("VersioningConfiguration", {}).get("Status") == "Enabled":
            s3.put_bucket_versioning(Bucket=name, VersioningConfiguration={"Status": "Enabled"})
        notification = props.get("NotificationConfiguration", {})
        if notification.get("EventBridgeConfiguration", {}).get("EventBridgeEnabled"):
            s3.put_bucket_notification_configuration(
                Bucket=name, NotificationConfiguration={"EventBridgeConfiguration": {}}
            )
        self.stack.physical_ids[logical_id] = name
        self.stack.attributes[(logical_id, "Arn")] = f"arn:aws:s3:::{name}"

    def _table(self, logical_id: str, props: dict[str, Any]) -> None:
        props = self.stack.resolve(props)
        name = self.physical_name(logical_id)
        dynamodb = self.client("dynamodb")
        arguments: dict[str, Any] = {
            "TableName": name,
            "AttributeDefinitions": props["AttributeDefinitions"],
            "KeySchema": props["KeySchema"],
            "BillingMode": props.get("BillingMode", "PAY_PER_REQUEST"),
        }
        if props.get("GlobalSecondaryIndexes"):
            arguments["GlobalSecondaryIndexes"] = props["GlobalSecondaryIndexes"]
        description = dynamodb.create_table(**arguments)["TableDescription"]
        ttl = props.get("TimeToLiveSpecification")
        if ttl:
            dynamodb.update_time_to_live(TableName=name, TimeToLiveSpecification=ttl)
        self.stack.physical_ids[logical_id] = name
        self.stack.attributes[(logical_id, "Arn")] = description["TableArn"]

    def _parameter(self, logical_id: str, props: dict[str, Any]) -> None:
        props = self.stack.resolve(props)
        name = props.get("Name") or f"CFN-{logical_id}-{_suffix()}"
        self.client("ssm").put_parameter(
            Name=name, Value=props["Value"], Type=props.get("Type", "String"), Overwrite=True
        )
        self.stack.physical_ids[logical_id] = name

    def _secret(self, logical_id: str, props: dict[str, Any]) -> None:
        props = self.stack.resolve(props)
        generate = props.get("GenerateSecretString", {})
        alphabet = string.ascii_letters + string.digits
        value = props.get("SecretString") or "".join(
            secrets.choice(alphabet) for _ in range(int(generate.get("PasswordLength", 32)))
        )
        arn = self.client("secretsmanager").create_secret(
            Name=f"{logical_id}-{_suffix()}", SecretString=value
        )["ARN"]
        self.stack.physical_ids[logical_id] = arn

    def _topic(self, logical_id: str, props: dict[str, Any]) -> None:
        name = self.physical_name(logical_id)
        arn = self.client("sns").create_topic(Name=name)["TopicArn"]
        self.stack.physical_ids[logical_id] = arn
        self.stack.attributes[(logical_id, "TopicName")] = name
        self.stack.attributes[(logical_id, "TopicArn")] = arn

    def _role(self, logical_id: str, props: dict[str, Any]) -> None:
        props = self.stack.resolve(props)
        name = self.physical_name(logical_id)[:64]
        iam = self.client("iam")
        role = iam.create_role(
            RoleName=name, AssumeRolePolicyDocument=json.dumps(props["AssumeRolePolicyDocument"])
        )["Role"]
        for policy in props.get("Policies", []):
            iam.put_role_policy(
                RoleName=name,
                PolicyName=policy["PolicyName"],
                PolicyDocument=json.dumps({"Version": "2012-10-17", **policy["PolicyDocument"]}),
            )
        self.stack.physical_ids[logical_id] = name
        self.stack.attributes[(logical_id, "Arn")] = role["Arn"]

    def _service_role(self, logical_id: str, service: str) -> str:
        document = {
            "Version": "2012-10-17",
            "Statement": [
                {"Effect": "Allow", "Principal": {"Service": service}, "Action": "sts:AssumeRole"}
            ],
        }
        name = self.physical_name(f"{logical_id}Role")[:64]
        role = self.client("iam").create_role(
            RoleName=name, AssumeRolePolicyDocument=json.dumps(document)
        )["Role"]
        return str(role["Arn"])

    # ------------------------------------------------------------------ compute
    def _function(self, logical_id: str, props: dict[str, Any]) -> None:
        environment = self.stack.resolve(function_environment(self.template, props))
        environment = {k: self._local_value(k, str(v)) for k, v in environment.items()}
        code_uri = self.settings.project_root / str(props["CodeUri"])
        handler = str(function_property(self.template, props, "Handler"))
        timeout = int(function_property(self.template, props, "Timeout") or 3)
        memory = int(function_property(self.template, props, "MemorySize") or 128)
        name = self.physical_name(logical_id)[:64]
        lam = self.client("lambda")
        created = lam.create_function(
            FunctionName=name,
            Runtime=str(function_property(self.template, props, "Runtime")),
            Role=self._service_role(logical_id, "lambda.amazonaws.com"),
            Handler=handler,
            Code={"ZipFile": _dummy_zip()},
            Timeout=timeout,
            MemorySize=memory,
            Environment={"Variables": environment},
        )
        self.host.register(name, FunctionCode(logical_id, code_uri, handler, memory, timeout))
        self.functions[logical_id] = name
        self.stack.physical_ids[logical_id] = name
        self.stack.attributes[(logical_id, "Arn")] = created["FunctionArn"]
        alias = props.get("AutoPublishAlias")
        if alias:
            version = lam.publish_version(FunctionName=name)["Version"]
            lam.create_alias(FunctionName=name, Name=alias, FunctionVersion=version)
            self.stack.physical_ids[f"{logical_id}Alias{alias}"] = (
                f"{created['FunctionArn']}:{alias}"
            )
        if "DeploymentPreference" in props:
            # SAM creates these; the template may refer to them by these logical ids.
            self.stack.physical_ids.setdefault(
                CODEDEPLOY_APPLICATION, self.physical_name(CODEDEPLOY_APPLICATION)
            )
            self.stack.physical_ids[f"{logical_id}DeploymentGroup"] = self.physical_name(
                f"{logical_id}DeploymentGroup"
            )

    def _function_events(self, logical_id: str, props: dict[str, Any]) -> None:
        name = self.functions[logical_id]
        arn = self.stack.attributes[(logical_id, "Arn")]
        alias = props.get("AutoPublishAlias")
        for event_id, event in props.get("Events", {}).items():
            kind, event_props = event["Type"], self.stack.resolve(event.get("Properties", {}))
            if kind == "EventBridgeRule":
                rule = f"{self.settings.stack_name}-{logical_id}{event_id}"[:64]
                events = self.client("events")
                events.put_rule(Name=rule, EventPattern=json.dumps(event_props["Pattern"]))
                events.put_targets(Rule=rule, Targets=[{"Id": logical_id, "Arn": arn}])
            elif kind == "Api":
                api_id = event["Properties"]["RestApiId"]["Ref"]
                api = self.template["Resources"][api_id]["Properties"]
                default = api.get("Auth", {}).get("DefaultAuthorizer", "NONE")
                authorizer = event_props.get("Auth", {}).get("Authorizer", default)
                self.api.routes.append(
                    Route(
                        method=event_props["Method"].upper(),
                        path=event_props["Path"],
                        function_name=name,
                        qualifier=alias,
                        authorizer=authorizer,
                        api_name=str(self.stack.resolve(api.get("Name", api_id))),
                        stage=api["StageName"],
                    )
                )
            elif kind == "Schedule":
                self.schedules.append((name, event_props["Schedule"]))
            else:
                self.not_emulated[f"{logical_id}.{event_id}"] = f"{kind} event sources"

    def _deployment_preference(self, logical_id: str, props: dict[str, Any]) -> None:
        preference = self.stack.resolve(props["DeploymentPreference"])
        application = self.stack.physical_ids[CODEDEPLOY_APPLICATION]
        group = self.stack.physical_ids[f"{logical_id}DeploymentGroup"]
        codedeploy = self.client("codedeploy")
        existing = codedeploy.list_applications()["applications"]
        if application not in existing:
            codedeploy.create_application(applicationName=application, computePlatform="Lambda")
        config = f"CodeDeployDefault.Lambda{preference['Type']}"
        alarms = list(preference.get("Alarms", []))
        codedeploy.create_deployment_group(
            applicationName=application,
            deploymentGroupName=group,
            deploymentConfigName=config,
            serviceRoleArn=preference.get("Role")
            or self._service_role(logical_id, "codedeploy.amazonaws.com"),
            deploymentStyle={
                "deploymentType": "BLUE_GREEN",
                "deploymentOption": "WITH_TRAFFIC_CONTROL",
            },
            alarmConfiguration={"enabled": bool(alarms), "alarms": [{"name": a} for a in alarms]},
            autoRollbackConfiguration={
                "enabled": True,
                "events": ["DEPLOYMENT_FAILURE", "DEPLOYMENT_STOP_ON_ALARM"],
            },
        )
        self.deployments.append(
            Deployment(
                logical_id, application, group, config, alarms, dict(preference.get("Hooks", {}))
            )
        )

    def _state_machine(self, logical_id: str, props: dict[str, Any]) -> None:
        definition = (self.settings.project_root / props["DefinitionUri"]).read_text()
        for key, value in self.stack.resolve(props.get("DefinitionSubstitutions", {})).items():
            definition = definition.replace("${" + key + "}", str(value))
        leftover = re.findall(r"\$\{[A-Za-z0-9]+\}", definition)
        if leftover:
            raise ValueError(f"{logical_id}: unsubstituted placeholders {sorted(set(leftover))}")
        name = self.physical_name(logical_id)[:80]
        arn = self.client("stepfunctions").create_state_machine(
            name=name,
            definition=definition,
            roleArn=self._service_role(logical_id, "states.amazonaws.com"),
        )["stateMachineArn"]
        self.stack.physical_ids[logical_id] = arn
        self.stack.attributes[(logical_id, "Name")] = name
        self.stack.attributes[(logical_id, "Arn")] = arn

    def _rest_api(self, logical_id: str, props: dict[str, Any]) -> None:
        self.stack.physical_ids[logical_id] = uuid.uuid4().hex[:10]
        self.stack.attributes[(logical_id, "RootResourceId")] = uuid.uuid4().hex[:10]

    def _alarm(self, logical_id: str, props: dict[str, Any]) -> None:
        props = self.stack.resolve(props)
        name = self.physical_name(logical_id)
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
        }
        if "ExtendedStatistic" in props:
            arguments["ExtendedStatistic"] = props["ExtendedStatistic"]
        else:
            arguments["Statistic"] = props.get("Statistic", "Sum")
        self.client("cloudwatch").put_metric_alarm(**arguments)
        self.alarms.add(Alarm.from_properties(name, logical_id, props))
        self.stack.physical_ids[logical_id] = name
        self.stack.attributes[(logical_id, "Arn")] = self.arn("cloudwatch", f"alarm:{name}")

    def _rule(self, logical_id: str, props: dict[str, Any]) -> None:
        props = self.stack.resolve(props)
        name = f"{self.settings.stack_name}-{logical_id}"[:64]
        events = self.client("events")
        events.put_rule(Name=name, EventPattern=json.dumps(props["EventPattern"]))
        targets = [{"Id": t["Id"], "Arn": t["Arn"]} for t in props.get("Targets", [])]
        if targets:
            events.put_targets(Rule=name, Targets=targets)
        self.stack.physical_ids[logical_id] = name
        self.stack.attributes[(logical_id, "Arn")] = self.arn("events", f"rule/{name}")

    # ------------------------------------------------------------------ custom resources
    def _cfn_response(self, request: Request) -> Response:
        request_id = request.path.rsplit("/", 1)[-1]
        self._custom_responses[request_id] = json.loads(request.get_data() or b"{}")
        if request_id in self._custom_events:
            self._custom_events[request_id].set()
        return Response("", status=200)

    def _custom(self, logical_id: str, props: dict[str, Any]) -> None:
        props = self.stack.resolve(props)
        request_id = str(uuid.uuid4())
        done = self._custom_events[request_id] = threading.Event()
        event = {
            "RequestType": "Create",
            "ResponseURL": f"{self.api.origin}/_local/cfn-response/{request_id}",
            "StackId": self.stack.pseudo("AWS::StackId"),
            "RequestId": request_id,
            "ResourceType": self.template["Resources"][logical_id]["Type"],
            "LogicalResourceId": logical_id,
            "ResourceProperties": props,
        }
        self.client("lambda").invoke(FunctionName=props["ServiceToken"], Payload=json.dumps(event))
        if not done.wait(60):
            raise RuntimeError(f"custom resource {logical_id} sent no response")
        answer = self._custom_responses[request_id]
        if answer.get("Status") != "SUCCESS":
            raise RuntimeError(f"custom resource {logical_id} failed: {answer.get('Reason')}")
        self.stack.physical_ids[logical_id] = answer.get("PhysicalResourceId", logical_id)
        for key, value in (answer.get("Data") or {}).items():
            self.stack.attributes[(logical_id, key)] = value


def outputs(stack: Stack) -> dict[str, str]:
    """The template's Outputs, resolved for the local stack."""
    values = {}
    for name, output in stack.template.get("Outputs", {}).items():
        if "Condition" in output and not stack.condition(output["Condition"]):
            continue
        values[name] = str(stack.resolve(output["Value"]))
    return values
