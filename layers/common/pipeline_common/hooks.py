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

import yaml

from pipeline_common.capture import CaptureFormatError, capture_prefix, parse_record
from pipeline_common.layout import CAPTURE_PREFIX, NO_ENDPOINT
from pipeline_common.payload import CSV, parse_predictions, to_csv
from pipeline_common.serving import HEALTH_ROW, plausible

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.data_classes import CodeDeployLifecycleHookEvent
    from mypy_boto3_codedeploy import CodeDeployClient
    from mypy_boto3_codedeploy.type_defs import DeploymentInfoTypeDef
    from mypy_boto3_lambda import LambdaClient
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_sagemaker import SageMakerClient
    from mypy_boto3_sagemaker_runtime import SageMakerRuntimeClient


# The predict function's InferenceIds for requests from outside: clients and the API canary.
CLIENT_INFERENCE_PREFIXES = ("api-", "health-")


@dataclass(frozen=True)
class Green:
    function_name: str
    target_version: str
    endpoint: str
    deployment_started: datetime


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


def find_green(
    codedeploy: CodeDeployClient,
    lambda_client: LambdaClient,
    deployment_id: str,
    production: Callable[[], str],
) -> Green:
    """The endpoint the deployment's target version serves."""
    info = codedeploy.get_deployment(deploymentId=deployment_id)["deploymentInfo"]
    content = deployment_appspec(codedeploy, info)
    try:
        # The pipeline's deployments carry JSON; CloudFormation's (sam deploy) may carry YAML.
        appspec = yaml.safe_load(content)
    except yaml.YAMLError as exc:
        raise ValueError(f"deployment {deployment_id}: unreadable AppSpec ({exc})") from exc
    resource = next(iter(appspec["Resources"][0].values()))["Properties"]
    name, target = resource["Name"], str(resource["TargetVersion"])
    configuration = lambda_client.get_function_configuration(FunctionName=name, Qualifier=target)
    variables = configuration.get("Environment", {}).get("Variables", {})
    endpoint = variables.get("ENDPOINT_NAME") or production()
    if not endpoint or endpoint == NO_ENDPOINT:
        raise ValueError(f"version {target} of {name} has no endpoint and none is in production")
    return Green(name, target, endpoint, info["createTime"])


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
        if (exchange.inference_id or "").startswith(CLIENT_INFERENCE_PREFIXES):
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
) -> dict[str, Any]:
    """Find green, check it, and report to CodeDeploy whatever happens."""
    deployment_id = event.deployment_id
    execution_id = event.lifecycle_event_hook_execution_id
    passed, summary, endpoint = False, "", None
    try:
        green = find_green(codedeploy, lambda_client, deployment_id, production)
        endpoint = green.endpoint
        verdict = check(green)
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
