"""Handler tests: each function's real ``app.py`` under moto, with the environment
``template.yaml`` gives it and the sample event from ``events/`` that ``sam local invoke`` takes.

- The resources a function's environment names (buckets, parameters, topic, table, secret, state
  machine, API) are created by the local cloud's own resource creators, from the template as its
  CloudFormation transforms and resolves it; the environment is the template's own (Globals merged
  under the function's), its ``!Ref``/``!Sub`` resolved to them.
- A handler reads its settings and builds its clients at import time, so each test imports it
  fresh, under a unique module name, after its environment is set.
- SageMaker's runtime is the one thing moto cannot do: :class:`Endpoints` answers
  ``InvokeEndpoint`` behind moto (the handler keeps its real boto3 client) with one fare per row,
  and records every call with its ``InferenceId``.
"""

from __future__ import annotations

import base64
import functools
import importlib.util
import io
import itertools
import json
import logging
import sys
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import unquote

import boto3
import pytest
from aws_lambda_powertools.utilities.parameters import SSMProvider
from aws_lambda_powertools.utilities.parameters.constants import DEFAULT_PROVIDERS
from moto import mock_aws
from moto.codedeploy.models import codedeploy_backends
from moto.core.exceptions import ServiceException
from moto.kms import models as kms_models
from moto.kms.utils import generate_private_key
from moto.s3.models import s3_backends
from moto.sagemaker.models import sagemaker_backends
from moto.sagemakerruntime.responses import SageMakerRuntimeResponse

from safe_deploy.localcloud.api import LocalApi
from safe_deploy.localcloud.cloudformation import model
from safe_deploy.localcloud.cloudformation import template as cfn_template
from safe_deploy.localcloud.cloudformation.engine import Engine
from safe_deploy.localcloud.cloudformation.resources import Handlers
from safe_deploy.localcloud.lambdas import code_folder_importable
from safe_deploy.localcloud.metrics import Alarms, MetricStore
from safe_deploy.localcloud.state import ActivityFeed, LocalSettings
from safe_deploy.localcloud.template import Stack, function_environment, load, references
from tests.support_template import for_translator

if TYPE_CHECKING:
    from mypy_boto3_codedeploy import CodeDeployClient
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_lambda import LambdaClient
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_sagemaker import SageMakerClient
    from mypy_boto3_secretsmanager import SecretsManagerClient
    from mypy_boto3_sns import SNSClient
    from mypy_boto3_sqs import SQSClient
    from mypy_boto3_ssm import SSMClient
    from mypy_boto3_stepfunctions import SFNClient

REPO = Path(__file__).resolve().parents[2]
EVENTS = REPO / "events"
TEMPLATE: dict[str, Any] = load(REPO / "template.yaml")
STACK_NAME = "safe-deploy"
REGION = "us-east-1"
ACCOUNT = "123456789012"  # moto's default account

# What the handler tests stand in for: functions (a test imports and calls one) with what belongs
# to them, and custom resources (a function answers them). A property naming one is left out of
# the resource that has it.
STOOD_IN = ("AWS::Lambda::", "Custom::", "AWS::CloudFormation::CustomResource")

# the stack's parameter values: the template's defaults
PARAMETERS, _ = cfn_template.parameter_values(TEMPLATE, [], None)

# function folder (events/<folder>.json) -> logical id, as the template declares them
FUNCTIONS: dict[str, str] = {
    str(resource["Properties"]["CodeUri"]).strip("/").split("/")[-1]: logical_id
    for logical_id, resource in TEMPLATE["Resources"].items()
    if resource["Type"] == "AWS::Serverless::Function"
}


def load_event(name: str) -> dict[str, Any]:
    """``events/<name>.json``, read afresh (tests change their copy)."""
    event: dict[str, Any] = json.loads((EVENTS / f"{name}.json").read_text())
    return event


# ---------------------------------------------------------------- the stack, in moto


@functools.cache
def _shared_session() -> boto3.Session:
    """One boto3 session for every test's clients (the handlers' included): botocore loads each
    service's model once per session, which is most of what creating a client costs."""
    return boto3.Session()


@functools.cache
def _client(service: str) -> Any:
    """The session's one client for ``service``: moto intercepts every client while a mock is
    active, so the tests, the handlers' settings and the resource creators share them."""
    make: Callable[..., Any] = _shared_session().client
    return make(service, region_name=REGION)


@dataclass(frozen=True)
class _Clients:
    s3: S3Client
    ssm: SSMClient
    sns: SNSClient
    sqs: SQSClient
    sfn: SFNClient
    sagemaker: SageMakerClient
    codedeploy: CodeDeployClient
    lambda_: LambdaClient
    dynamodb: DynamoDBClient
    secrets: SecretsManagerClient
    iam: Any


@functools.cache
def _clients() -> _Clients:
    """The tests' clients (the resource creators use the same ones)."""
    return _Clients(
        s3=_client("s3"),
        ssm=_client("ssm"),
        sns=_client("sns"),
        sqs=_client("sqs"),
        sfn=_client("stepfunctions"),
        sagemaker=_client("sagemaker"),
        codedeploy=_client("codedeploy"),
        lambda_=_client("lambda"),
        dynamodb=_client("dynamodb"),
        secrets=_client("secretsmanager"),
        iam=_client("iam"),
    )


def _suffix() -> str:
    return uuid.uuid4().hex[:12]


class _Creators(Handlers):
    """The local cloud's resource creators, on the session's clients (making a client costs more
    than most calls it makes)."""

    def client(self, service: str) -> Any:
        return _client(service)


@functools.cache
def _deployed_template(pseudo: tuple[tuple[str, str], ...]) -> str:
    """``template.yaml`` as the local cloud's CloudFormation creates it: its own transform applied
    with the stack's parameter values, the state machines' definitions inline and code at stand-in
    S3 locations (as ``sam validate`` hands the template over). JSON: each test's stack gets its
    own copy."""
    return json.dumps(cfn_template.process(for_translator(TEMPLATE), PARAMETERS, dict(pseudo)))


def _stand_ins(resources: dict[str, Any], value: Any) -> set[str]:
    """The resources ``value`` names that are of a kind the handler tests stand in for."""
    named = references(value) & set(resources)
    return {r for r in named if str(resources[r]["Type"]).startswith(STOOD_IN)}


class Cloud:
    """The resources the functions' environments refer to, made in moto by the local cloud's own
    resource creators when a test first names one (its function's environment or ``ref``), and
    each function's environment resolved against them.

    Names are the creators': stack, logical id and a random suffix, fresh in each test; a name the
    template gives (the training state machine's) is the template's, and moto starts each test
    empty."""

    def __init__(self, workdir: Path) -> None:
        self.stack = Stack(TEMPLATE, STACK_NAME, REGION, ACCOUNT)
        clients = _clients()
        self.s3 = clients.s3
        self.ssm = clients.ssm
        self.sns = clients.sns
        self.sqs = clients.sqs
        self.sfn = clients.sfn
        self.sagemaker = clients.sagemaker
        self.codedeploy = clients.codedeploy
        self.lambda_ = clients.lambda_
        self.iam = clients.iam
        self.dynamodb = clients.dynamodb
        self.secrets = clients.secrets
        # the role of what tests make themselves (models, functions, deployment groups)
        self.role_arn = self.iam.create_role(
            RoleName=f"{STACK_NAME}-role-{_suffix()}", AssumeRolePolicyDocument="{}"
        )["Role"]["Arn"]
        resources = TEMPLATE["Resources"]
        # every resource a function's environment names; each is made when a test first needs it
        self.needed: set[str] = set()
        for logical_id in FUNCTIONS.values():
            self.needed |= references(
                function_environment(TEMPLATE, resources[logical_id]["Properties"])
            )
        self.needed &= set(resources)
        # the stack as the local cloud's CloudFormation records it
        self.deployed = model.Stack(self.stack.pseudo("AWS::StackId"), STACK_NAME)
        self.left_out: dict[str, list[str]] = {}  # logical id -> properties naming a stand-in
        self._made: set[str] = set()
        settings = LocalSettings(
            REPO, workdir, stack_name=STACK_NAME, region=REGION, account=ACCOUNT
        )
        feed = ActivityFeed()
        api = LocalApi(settings, feed, MetricStore())
        self._creators = _Creators(settings, None, api, Alarms(MetricStore(), settings, feed), feed)
        self._engine = Engine(settings, self._creators, feed)
        self.deployed.parameters = dict(PARAMETERS)
        pseudo = tuple(sorted(self._engine.pseudo(self.deployed).items()))
        self.deployed.template = json.loads(_deployed_template(pseudo))
        evaluator = self._engine.evaluator(self.deployed, self.deployed.template, PARAMETERS)
        self._active = evaluator.active_resources()

    def make(self, logical_ids: set[str]) -> None:
        """Creates ``logical_ids`` and what their kept properties name (the state machine's role
        and log group, the topics' key), unless made already, in dependency order, each resolved
        as an execution resolves it and made by the creator an execution calls. A test makes only
        what it asks for: most handlers name two or three of the stack's resources."""
        deployed = self.deployed
        resources = deployed.template["Resources"]
        kept: dict[str, dict[str, Any]] = {}
        graph: dict[str, set[str]] = {}  # logical id -> what its kept properties name
        pending = sorted(logical_ids - self._made)
        while pending:
            logical_id = pending.pop()
            if logical_id in graph:
                continue
            props = resources[logical_id].get("Properties", {})
            left_out = sorted(k for k, v in props.items() if _stand_ins(resources, v))
            if left_out:
                self.left_out[logical_id] = left_out
            kept[logical_id] = {k: v for k, v in props.items() if k not in left_out}
            graph[logical_id] = references(kept[logical_id]) & self._active - self._made
            pending.extend(graph[logical_id])
        for logical_id in cfn_template.order(graph):
            evaluator = self._engine.evaluator(deployed, deployed.template, PARAMETERS)
            props = evaluator.resolve(kept[logical_id])
            record = self._creators.create_resource(deployed, logical_id, props)
            self._made.add(logical_id)
            if logical_id in self.needed:
                self.stack.physical_ids[logical_id] = record.physical_id
                for attribute, value in record.attributes.items():
                    self.stack.attributes[(logical_id, attribute)] = value

    def make_all(self) -> None:
        """Every resource some function's environment names."""
        self.make(self.needed)

    # ---- what the tests ask for
    def ref(self, logical_id: str) -> str:
        self.make({logical_id} & self.needed)
        return str(self.stack.ref(logical_id))

    def environment(self, function_dir: str) -> dict[str, str]:
        properties = TEMPLATE["Resources"][FUNCTIONS[function_dir]]["Properties"]
        environment = function_environment(TEMPLATE, properties)
        self.make(references(environment) & self.needed)
        resolved = self.stack.resolve(environment)
        return {key: str(value) for key, value in resolved.items()}

    def set_parameter(self, logical_id: str, value: str) -> None:
        self.ssm.put_parameter(Name=self.ref(logical_id), Value=value, Overwrite=True)

    def backdate(self, bucket: str, key: str, when: datetime) -> None:
        """S3 reports LastModified to the second: tests that need an order or an age between
        objects set it instead of sleeping."""
        stored = s3_backends[ACCOUNT]["aws"].buckets[bucket].keys[key]
        stored.last_modified = when.replace(tzinfo=None)

    def training_job(self, name: str, metrics: dict[str, float] | None = None) -> None:
        """A completed training job that reports ``metrics`` (moto reports only
        ``train:progress``, as a job whose algorithm emitted no metric would)."""
        self.sagemaker.create_training_job(
            TrainingJobName=name,
            AlgorithmSpecification={"TrainingImage": "xgboost:1.7-1", "TrainingInputMode": "File"},
            RoleArn=self.role_arn,
            OutputDataConfig={"S3OutputPath": f"s3://{self.ref('ArtifactBucket')}/runs/"},
            ResourceConfig={
                "InstanceType": "ml.m5.xlarge",
                "InstanceCount": 1,
                "VolumeSizeInGB": 10,
            },
            StoppingCondition={"MaxRuntimeInSeconds": 3600},
        )
        if metrics is not None:
            job = sagemaker_backends[ACCOUNT][REGION].training_jobs[name]
            job.final_metric_data_list = [
                {"MetricName": k, "Value": v, "Timestamp": job.creation_time}
                for k, v in metrics.items()
            ]

    def endpoint(
        self,
        name: str,
        *,
        capture: dict[str, Any] | None = None,
        status: str = "InService",
    ) -> None:
        """A SageMaker endpoint (model, config, endpoint) as the deploy state machine creates it;
        ``capture`` is the config's DataCaptureConfig (100% of input and output by default)."""
        self.sagemaker.create_model(
            ModelName=name,
            PrimaryContainer={"Image": "xgboost:1.7-1"},
            ExecutionRoleArn=self.role_arn,
        )
        config: dict[str, Any] = {
            "EndpointConfigName": name,
            "ProductionVariants": [
                {
                    "VariantName": "AllTraffic",
                    "ModelName": name,
                    "InitialInstanceCount": 1,
                    "InstanceType": "ml.m5.large",
                }
            ],
        }
        if capture is None:
            capture = {
                "EnableCapture": True,
                "InitialSamplingPercentage": 100,
                "DestinationS3Uri": f"s3://{self.ref('CaptureBucket')}/datacapture",
                "CaptureOptions": [{"CaptureMode": "Input"}, {"CaptureMode": "Output"}],
            }
        if capture:
            config["DataCaptureConfig"] = capture
        self.sagemaker.create_endpoint_config(**config)
        self.sagemaker.create_endpoint(EndpointName=name, EndpointConfigName=name)
        sagemaker_backends[ACCOUNT][REGION].endpoints[name].endpoint_status = status

    def deployment_started(self, deployment_id: str, when: datetime) -> None:
        """When CodeDeploy says the deployment was created (the post-traffic hook reads capture
        written since then)."""
        codedeploy_backends[ACCOUNT][REGION].deployments[deployment_id].create_time = when

    def subscribe_queue(self, topic_arn: str) -> str:
        """An SQS queue subscribed to ``topic_arn``: what was published can be read back."""
        url = self.sqs.create_queue(QueueName=f"inbox-{_suffix()}")["QueueUrl"]
        arn = self.sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])[
            "Attributes"
        ]["QueueArn"]
        self.sns.subscribe(TopicArn=topic_arn, Protocol="sqs", Endpoint=arn)
        return url

    def published(self, queue_url: str) -> list[dict[str, Any]]:
        """SNS notifications that reached the queue (Subject, Message, ...)."""
        messages = self.sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10).get(
            "Messages", []
        )
        return [json.loads(m["Body"]) for m in messages]


@functools.cache
def _private_key(key_spec: str) -> Any:
    """moto makes an RSA key for every KMS key, symmetric ones too (60 ms each); the handlers
    sign and verify nothing, so keys of one spec share one."""
    return generate_private_key(key_spec)


def offline_cloud(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Cloud]:
    """moto with the stack's resources; credentials and region as Lambda's runtime sets them."""
    monkeypatch.setattr(kms_models, "generate_private_key", _private_key)
    for name in (
        "AWS_PROFILE",
        "AWS_ENDPOINT_URL",
        "AWS_CONFIG_FILE",
        "AWS_SHARED_CREDENTIALS_FILE",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_SESSION_TOKEN", "testing")
    monkeypatch.setenv("AWS_REGION", REGION)
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    DEFAULT_PROVIDERS.clear()  # Powertools keeps parameter values (and their client) per process
    with mock_aws():
        boto3.DEFAULT_SESSION = _shared_session()  # moto puts its own value back on exit
        # what get_parameter would create, with an empty cache, on the shared session
        DEFAULT_PROVIDERS["ssm"] = SSMProvider(boto3_client=_clients().ssm)
        yield Cloud(tmp_path)
    DEFAULT_PROVIDERS.clear()


# ---------------------------------------------------------------- handlers, fresh


class _CurrentStdout(io.TextIOBase):
    """Writes to whatever ``sys.stdout`` is now (pytest swaps it per test; Powertools' log handler
    keeps the stream it was created with)."""

    def write(self, text: str) -> int:
        return sys.stdout.write(text)

    def flush(self) -> None:
        sys.stdout.flush()


Loader = Callable[..., ModuleType]
_counter = itertools.count()


def handler_loader(cloud: Cloud, monkeypatch: pytest.MonkeyPatch) -> Loader:
    """``load_handler("predict", ENDPOINT_NAME="...")``: the function's ``app`` module, imported
    fresh with the template's environment for it (plus what the call adds, as a version the
    pipeline publishes would have), which stays set while the test invokes it."""

    def load(function_dir: str, **overrides: str) -> ModuleType:
        environment = cloud.environment(function_dir) | overrides
        for key, value in environment.items():
            monkeypatch.setenv(key, value)
        # Logger, Tracer and Metrics read POWERTOOLS_* when created: once per function, as in Lambda
        monkeypatch.delitem(sys.modules, "pipeline_common.observability", raising=False)
        path = REPO / "functions" / function_dir / "app.py"
        name = f"_handler_{function_dir}_{next(_counter)}"
        spec = importlib.util.spec_from_file_location(name, path)
        assert spec is not None
        assert spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        monkeypatch.setitem(sys.modules, name, module)
        with code_folder_importable(path.parent):  # as Lambda and the local cloud import it
            spec.loader.exec_module(module)
        service = logging.getLogger(environment["POWERTOOLS_SERVICE_NAME"])
        for handler in service.handlers:
            if isinstance(handler, logging.StreamHandler):
                handler.setStream(_CurrentStdout())
        return module

    return load


@dataclass
class FakeLambdaContext:
    """What Powertools and the handlers read from Lambda's context object."""

    function_name: str = f"{STACK_NAME}-Function-Q8X2LM4KZ7TB"
    function_version: str = "$LATEST"
    invoked_function_arn: str = (
        f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{STACK_NAME}-Function-Q8X2LM4KZ7TB"
    )
    memory_limit_in_mb: int = 512
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    log_group_name: str = f"/aws/lambda/{STACK_NAME}-Function-Q8X2LM4KZ7TB"
    log_stream_name: str = "2026/11/26/[$LATEST]0f1e2d3c4b5a69788796a5b4c3d2e1f0"

    def get_remaining_time_in_millis(self) -> int:
        return 30_000


# ---------------------------------------------------------------- SageMaker runtime


class ModelError(ServiceException):  # type: ignore[misc]
    """What SageMaker's runtime answers when the model container fails."""

    code = "ModelError"


class UnknownEndpoint(ServiceException):  # type: ignore[misc]
    code = "ValidationError"


def fare(row: list[float]) -> float:
    """The stand-in model: a meter fare from duration (minutes) and distance (miles)."""
    duration, _passengers, distance = row
    return round(3.0 + 0.35 * duration + 2.0 * distance, 4)


@dataclass(frozen=True)
class Invocation:
    endpoint: str
    inference_id: str | None
    content_type: str | None
    accept: str | None
    body: str

    @property
    def rows(self) -> list[list[float]]:
        return [[float(v) for v in line.split(",")] for line in self.body.splitlines()]


class Answer(Protocol):
    def __call__(self, rows: list[list[float]]) -> str: ...


@dataclass
class Endpoints:
    """SageMaker endpoints as ``InvokeEndpoint`` sees them: each served one answers one fare per
    row (or what ``answers`` says); ``failing`` ones answer ModelError; others do not exist."""

    served: set[str] = field(default_factory=set)
    failing: set[str] = field(default_factory=set)
    answers: dict[str, Answer] = field(default_factory=dict)
    calls: list[Invocation] = field(default_factory=list)

    def serve(self, *names: str) -> None:
        self.served.update(names)

    def fail(self, *names: str) -> None:
        self.served.update(names)
        self.failing.update(names)

    def answer(self, name: str, answer: Answer) -> None:
        self.served.add(name)
        self.answers[name] = answer

    def to(self, endpoint: str) -> list[Invocation]:
        return [call for call in self.calls if call.endpoint == endpoint]

    def invoke(self, response: SageMakerRuntimeResponse) -> tuple[int, dict[str, str], str]:
        name = unquote(response.path.split("/")[2])
        raw = response.raw_body or b""
        body = raw.decode() if isinstance(raw, bytes) else str(raw)
        headers = response.headers
        call = Invocation(
            name,
            headers.get("X-Amzn-SageMaker-Inference-Id"),
            headers.get("Content-Type"),
            headers.get("Accept"),
            body,
        )
        self.calls.append(call)
        if name not in self.served:
            raise UnknownEndpoint(f"Endpoint {name} of account {ACCOUNT} not found.")
        if name in self.failing:
            raise ModelError(
                "Received server error (500) from primary with message "
                '"Internal Server Error". See the CloudWatch logs for details.'
            )
        answer = self.answers.get(name)
        text = answer(call.rows) if answer else "\n".join(repr(fare(r)) for r in call.rows)
        return 200, {"Content-Type": "text/csv; charset=utf-8"}, text


def stand_in_endpoints(cloud: Cloud, monkeypatch: pytest.MonkeyPatch) -> Endpoints:
    served = Endpoints()

    def invoke_endpoint(response: SageMakerRuntimeResponse) -> tuple[int, dict[str, str], str]:
        return served.invoke(response)

    monkeypatch.setattr(SageMakerRuntimeResponse, "invoke_endpoint", invoke_endpoint)
    return served


# ---------------------------------------------------------------- what handlers print


@dataclass(frozen=True)
class Metric:
    namespace: str
    name: str
    value: float
    dimensions: dict[str, str]
    metadata: dict[str, Any]


def emf_metrics(output: str) -> list[Metric]:
    """The CloudWatch embedded-metric-format documents among the printed lines."""
    found: list[Metric] = []
    for line in output.splitlines():
        if not line.startswith("{"):
            continue
        try:
            document = json.loads(line)
        except json.JSONDecodeError:
            continue
        if not isinstance(document, dict) or "_aws" not in document:
            continue
        for directive in document["_aws"]["CloudWatchMetrics"]:
            dimension_names = directive["Dimensions"][0] if directive["Dimensions"] else []
            dimensions = {d: str(document[d]) for d in dimension_names}
            declared = {m["Name"] for m in directive["Metrics"]}
            metadata = {
                k: v
                for k, v in document.items()
                if k != "_aws" and k not in declared and k not in dimension_names
            }
            for definition in directive["Metrics"]:
                values = document[definition["Name"]]
                for value in values if isinstance(values, list) else [values]:
                    found.append(
                        Metric(
                            directive["Namespace"],
                            definition["Name"],
                            float(value),
                            dimensions,
                            metadata,
                        )
                    )
    return found


def alarm_metric(logical_id: str) -> tuple[str, str, dict[str, str]]:
    """Namespace, metric name and dimensions an alarm of the template watches."""
    props = TEMPLATE["Resources"][logical_id]["Properties"]
    return (
        props["Namespace"],
        props["MetricName"],
        {d["Name"]: d["Value"] for d in props.get("Dimensions", [])},
    )


def api_body(answer: dict[str, Any]) -> str:
    """An API Gateway proxy answer's body as the client sees it."""
    body = answer.get("body") or ""
    return base64.b64decode(body).decode() if answer.get("isBase64Encoded") else str(body)
