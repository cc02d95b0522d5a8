"""CodeDeploy lifecycle hooks of the predict alias (DESIGN.md §3).

Hooks learn which endpoint is green from the deployment itself: GetDeployment (and
GetApplicationRevision where it gives only the AppSpec's sha256), the AppSpec's target version,
that version's configuration. They report to CodeDeploy on every path.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal

from pipeline_common.capture import CaptureFormatError, capture_prefix, parse_record
from pipeline_common.layout import CAPTURE_PREFIX, NO_ENDPOINT
from pipeline_common.payload import CSV, parse_predictions, to_csv
from pipeline_common.serving import HEALTH_ROW, plausible

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.data_classes import CodeDeployLifecycleHookEvent
    from mypy_boto3_codedeploy import CodeDeployClient
    from mypy_boto3_codedeploy.type_defs import DeploymentInfoTypeDef
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_lambda import LambdaClient
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_sagemaker import SageMakerClient
    from mypy_boto3_sagemaker_runtime import SageMakerRuntimeClient


# The predict function's InferenceIds for clients' requests. /health never invokes an endpoint
# (it is unauthenticated: it must not count as a client, nor reach capture and drift).
CLIENT_INFERENCE_PREFIXES = ("api-",)
HOOK_INFERENCE_PREFIX = "api-hook-"  # a code deploy's hooks call the versions as the API does
RELEASE_LOCK = {"name": {"S": "promotion"}}  # the deploy state machine's lock item


# Known rides a code deploy's hooks send to the new and the current version alike.
KNOWN_RIDES = [*HEALTH_ROW, [4.0, 1.0, 0.7], [35.0, 2.0, 11.5], [22.0, 4.0, 6.0]]
FARE_TOLERANCE = 1e-6  # the same model must give the same fare, whatever the code around it


@dataclass(frozen=True)
class Green:
    """What a deployment moves ``live`` to: the target version, the endpoint it serves (its own
    ``ENDPOINT_NAME``, or production's when it has none; empty when there is no model yet), and
    the same for the version it replaces."""

    function_name: str
    target_version: str
    endpoint: str
    deployment_started: datetime
    current_version: str = ""
    current_endpoint: str = ""

    @property
    def kind(self) -> Literal["no-model", "code", "model"]:
        """``model``: a promotion (a new endpoint); ``code``: the same model, new code or
        configuration; ``no-model``: a deploy before any model was promoted."""
        if not self.endpoint:
            return "no-model"
        return "code" if self.endpoint == self.current_endpoint else "model"


@dataclass
class Verdict:
    problems: list[str] = field(default_factory=list)
    facts: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return not self.problems

    def summary(self) -> str:
        return "; ".join(self.problems or self.facts)


def _inline_appspec(revision: Mapping[str, Any]) -> str | None:
    for kind in ("appSpecContent", "string"):
        content = (revision.get(kind) or {}).get("content")
        if content:
            return str(content)
    return None


def deployment_appspec(codedeploy: CodeDeployClient, info: DeploymentInfoTypeDef) -> str:
    """The AppSpec of a deployment. GetDeployment carries its content for deployments created
    with it; for those CloudFormation creates (SAM's DeploymentPreference) AWS gives only its
    sha256, and GetApplicationRevision gives the content, as a ``String`` revision."""
    revision = info.get("revision") or {}
    content = _inline_appspec(revision)
    if content is not None:
        return content
    stored = codedeploy.get_application_revision(
        applicationName=info["applicationName"], revision=revision
    )["revision"]
    content = _inline_appspec(stored)
    if content is None:
        raise ValueError(f"deployment {info['deploymentId']}: its revision holds no AppSpec")
    return content


def _appspec(deployment_id: str, content: str) -> Any:
    """The pipeline's deployments carry JSON; CloudFormation's (sam deploy) may carry YAML, whose
    parser is imported only then (the hooks' cold start does without it)."""
    try:
        return json.loads(content)
    except ValueError:
        pass
    import yaml

    try:
        return yaml.safe_load(content)
    except yaml.YAMLError as exc:
        raise ValueError(f"deployment {deployment_id}: unreadable AppSpec ({exc})") from exc


def find_green(
    codedeploy: CodeDeployClient,
    lambda_client: LambdaClient,
    deployment_id: str,
    production: Callable[[], str],
) -> Green:
    """The endpoint the deployment's target version serves."""
    info = codedeploy.get_deployment(deploymentId=deployment_id)["deploymentInfo"]
    content = deployment_appspec(codedeploy, info)
    appspec = _appspec(deployment_id, content)
    resource = next(iter(appspec["Resources"][0].values()))["Properties"]
    name, target = resource["Name"], str(resource["TargetVersion"])
    current = str(resource["CurrentVersion"])

    def serves(version: str) -> str:
        configuration = lambda_client.get_function_configuration(
            FunctionName=name, Qualifier=version
        )
        variables = configuration.get("Environment", {}).get("Variables", {})
        endpoint = variables.get("ENDPOINT_NAME") or production()
        return "" if endpoint == NO_ENDPOINT else endpoint

    return Green(name, target, serves(target), info["createTime"], current, serves(current))


def promotion_in_flight(dynamodb: DynamoDBClient, table: str) -> str | None:
    """The green endpoint of the promotion holding the release lock, if one does."""
    item = dynamodb.get_item(TableName=table, Key=RELEASE_LOCK, ConsistentRead=True).get("Item")
    return str(item["green"]["S"]) if item and "green" in item else None


def stale_binding(green: Green, production: str, in_flight: str | None) -> str | None:
    """Why a promotion's endpoint is not one the pipeline is promoting, if it is not: a deploy
    that names an endpoint itself (an old ``ServingEndpoint`` in ``samconfig.toml``) would
    otherwise move production to it."""
    if green.endpoint in (production, in_flight):
        return None
    return (
        f"version {green.target_version} is bound to {green.endpoint}, which is neither "
        f"production ({production or 'none'}) nor the promotion in flight "
        f"({in_flight or 'none'}): deploy without a ServingEndpoint value (remove it from "
        "samconfig.toml's parameter_overrides); promotions set it"
    )


def predict_event(rows: list[list[float]], request_id: str) -> dict[str, Any]:
    """An API Gateway proxy event for ``POST /predict``, as the hooks send it to a version."""
    return {
        "resource": "/predict",
        "path": "/predict",
        "httpMethod": "POST",
        "headers": {"Content-Type": CSV, "Accept": CSV},
        "multiValueHeaders": {},
        "queryStringParameters": None,
        "pathParameters": None,
        "requestContext": {
            "requestId": request_id,
            "resourcePath": "/predict",
            "httpMethod": "POST",
            "path": "/v1/predict",
            "stage": "v1",
            "identity": {"sourceIp": "127.0.0.1", "userArn": "codedeploy-hook"},
        },
        "body": to_csv(rows),
        "isBase64Encoded": False,
    }


def _fares(lambda_client: LambdaClient, green: Green, version: str, marker: str) -> list[float]:
    response = lambda_client.invoke(
        FunctionName=green.function_name,
        Qualifier=version,
        Payload=json.dumps(predict_event(KNOWN_RIDES, marker)).encode(),
    )
    payload = json.loads(response["Payload"].read() or b"{}")
    if response.get("FunctionError"):
        raise ValueError(f"version {version} failed: {payload.get('errorMessage', payload)}")
    if payload.get("statusCode") != 200:
        raise ValueError(
            f"version {version} answered {payload.get('statusCode')}: {payload.get('body')}"
        )
    return parse_predictions(str(payload.get("body", "")))


def compare_versions(green: Green, lambda_client: LambdaClient, marker: str) -> Verdict:
    """A code deploy serves the same model: the new version must answer known rides as the
    current one does. No client traffic is needed."""
    verdict = Verdict()
    answers = {}
    for label, version in (("new", green.target_version), ("current", green.current_version)):
        try:
            answers[label] = _fares(lambda_client, green, version, f"{marker}-{label}")
        except ValueError as exc:
            verdict.problems.append(str(exc))
    if verdict.problems:
        return verdict
    new, current = answers["new"], answers["current"]
    if len(new) != len(current) or any(
        abs(a - b) > FARE_TOLERANCE for a, b in zip(new, current, strict=False)
    ):
        verdict.problems.append(
            f"version {green.target_version} answered {new} for known rides, version "
            f"{green.current_version} answered {current}"
        )
    else:
        verdict.facts.append(
            f"code deploy on {green.endpoint}: version {green.target_version} answers "
            f"{len(new)} known rides as version {green.current_version} does"
        )
    return verdict


def pre_traffic_checks(
    green: Green, sagemaker: SageMakerClient, runtime: SageMakerRuntimeClient, marker: str
) -> Verdict:
    verdict = Verdict()
    endpoint = sagemaker.describe_endpoint(EndpointName=green.endpoint)
    if endpoint["EndpointStatus"] != "InService":
        verdict.problems.append(f"{green.endpoint} is {endpoint['EndpointStatus']}, not InService")
        return verdict
    verdict.facts.append(f"{green.endpoint} is InService")
    config = sagemaker.describe_endpoint_config(EndpointConfigName=endpoint["EndpointConfigName"])
    capture = config.get("DataCaptureConfig") or {}
    modes = {option["CaptureMode"] for option in capture.get("CaptureOptions", [])}
    if not capture.get("EnableCapture") or modes != {"Input", "Output"}:
        verdict.problems.append(f"{green.endpoint} does not capture both input and output")
    elif capture.get("InitialSamplingPercentage", 0) < 100:
        verdict.problems.append(
            f"{green.endpoint} captures only {capture['InitialSamplingPercentage']}% of requests"
        )
    else:
        verdict.facts.append("captures 100% of input and output")
    answer = runtime.invoke_endpoint(
        EndpointName=green.endpoint,
        ContentType=CSV,
        Accept=CSV,
        Body=to_csv(HEALTH_ROW).encode(),
        InferenceId=marker,
    )
    predictions = parse_predictions(answer["Body"].read())
    if len(predictions) != 1 or not plausible(predictions[0]):
        verdict.problems.append(f"{green.endpoint} answered {predictions} for a known ride")
    else:
        verdict.facts.append(f"a known ride costs {predictions[0]:.2f}")
    return verdict


def _capture_lines(s3: S3Client, bucket: str, prefix: str, since: datetime) -> Iterable[bytes]:
    """The lines of the capture files written since ``since``. S3 gives ``LastModified`` in
    whole seconds, so a file written in the same second as ``since`` counts."""
    since = since.replace(microsecond=0)
    paginator = s3.get_paginator("list_objects_v2")
    for page in paginator.paginate(Bucket=bucket, Prefix=prefix):
        for item in page.get("Contents", []):
            if item["LastModified"] < since:
                continue
            body = s3.get_object(Bucket=bucket, Key=item["Key"])["Body"].read()
            yield from (line for line in body.splitlines() if line.strip())


def post_traffic_checks(
    green: Green,
    s3: S3Client,
    bucket: str,
    minimum: int,
    wait_seconds: float = 0.0,
    poll_seconds: float = 15.0,
    sleep: Callable[[float], None] = time.sleep,
) -> Verdict:
    """Green's own capture, written since the deployment started, well formed, with enough
    records of real API requests (not the hooks' own calls). Capture arrives in files written
    every few minutes, so the check is repeated until it passes or ``wait_seconds`` is spent."""
    deadline = time.monotonic() + wait_seconds
    while True:
        verdict = _post_traffic_once(green, s3, bucket, minimum)
        if verdict.passed or time.monotonic() + poll_seconds > deadline:
            return verdict
        sleep(poll_seconds)


def _post_traffic_once(green: Green, s3: S3Client, bucket: str, minimum: int) -> Verdict:
    verdict = Verdict()
    prefix = capture_prefix(CAPTURE_PREFIX, green.endpoint)
    records = api_records = malformed = 0
    for line in _capture_lines(s3, bucket, prefix, green.deployment_started):
        records += 1
        try:
            exchange = parse_record(json.loads(line))
            parse_predictions(exchange.output_data)
        except (CaptureFormatError, ValueError):  # JSONDecodeError is a ValueError
            malformed += 1
            continue
        inference_id = exchange.inference_id or ""
        if inference_id.startswith(CLIENT_INFERENCE_PREFIXES) and not inference_id.startswith(
            HOOK_INFERENCE_PREFIX
        ):
            api_records += 1
    where = f"s3://{bucket}/{prefix}"
    if records == 0:
        verdict.problems.append(f"no capture under {where} since the deployment started")
    if malformed:
        verdict.problems.append(f"{malformed} of {records} captured records are malformed")
    if api_records < minimum:
        verdict.problems.append(
            f"{api_records} API requests captured on {green.endpoint}; at least {minimum} needed"
        )
    well_formed = records - malformed
    verdict.facts.append(
        f"{api_records} API requests among {well_formed} well-formed records under {where}"
    )
    return verdict


def _served(endpoint: str) -> str:
    return "" if endpoint == NO_ENDPOINT else endpoint


def report(
    codedeploy: CodeDeployClient, deployment_id: str, execution_id: str, passed: bool
) -> str:
    status: Literal["Succeeded", "Failed"] = "Succeeded" if passed else "Failed"
    codedeploy.put_lifecycle_event_hook_execution_status(
        deploymentId=deployment_id, lifecycleEventHookExecutionId=execution_id, status=status
    )
    return status


def run_hook(
    event: CodeDeployLifecycleHookEvent,
    check: Callable[[Green], Verdict],
    *,
    codedeploy: CodeDeployClient,
    lambda_client: LambdaClient,
    production: Callable[[], str],
    in_flight: Callable[[], str | None] | None = None,
) -> dict[str, Any]:
    """Find what the deployment releases, check it as its kind needs, and report to CodeDeploy
    whatever happens: a promotion's green with ``check``; a code deploy by comparing the new
    version's answers with the current one's; nothing before the first model."""
    deployment_id = event.deployment_id
    execution_id = event.lifecycle_event_hook_execution_id
    passed, summary, endpoint = False, "", None
    try:
        green = find_green(codedeploy, lambda_client, deployment_id, production)
        endpoint = green.endpoint or None
        if green.kind == "no-model":
            verdict = Verdict(facts=["no model is in production yet: nothing to check"])
        elif green.kind == "code":
            verdict = compare_versions(green, lambda_client, f"hook-{deployment_id}")
        else:
            stale = (
                stale_binding(green, _served(production()), in_flight())
                if in_flight is not None
                else None
            )
            verdict = Verdict(problems=[stale]) if stale else check(green)
        passed, summary = verdict.passed, verdict.summary()
    except Exception as exc:  # the hook's own failure is a failed check, and is reported
        summary = f"hook could not check the deployment: {type(exc).__name__}: {exc}"
    finally:
        status = report(codedeploy, deployment_id, execution_id, passed)
    return {
        "deployment_id": deployment_id,
        "endpoint": endpoint,
        "status": status,
        "summary": summary,
    }
