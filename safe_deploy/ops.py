"""The pipeline's operations, the same against AWS and the local cloud: upload data, follow runs,
decide approvals, read the release state and the drift reports."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from pipeline_common.layout import RAW_PREFIX, monitoring_schedule_of
from pipeline_common.release import ReleaseCheck, ReleaseState, check_release, read_release

from safe_deploy.target import Target, TargetError


@dataclass(frozen=True)
class Uploaded:
    bucket: str
    key: str
    version_id: str | None


def upload_data(target: Target, path: Path, key: str | None = None) -> Uploaded:
    if not path.is_file():
        raise TargetError(f"{path}: no such file")
    bucket = target.output("DataBucketName")
    key = key or f"{RAW_PREFIX}{path.name}"
    if not key.startswith(RAW_PREFIX):
        raise TargetError(f"{key}: the pipeline only listens under {RAW_PREFIX}")
    s3 = target.client("s3")
    s3.upload_file(str(path), bucket, key)
    head = s3.head_object(Bucket=bucket, Key=key)
    return Uploaded(bucket, key, head.get("VersionId"))


@dataclass
class Run:
    name: str
    arn: str
    status: str
    started: datetime
    stopped: datetime | None
    step: str | None
    error: str | None = None
    cause: str | None = None
    approval: dict[str, Any] | None = None


def last_step(sfn: Any, arn: str) -> str | None:
    """The state the execution entered last (its current step while it runs)."""
    step = None
    for page in sfn.get_paginator("get_execution_history").paginate(executionArn=arn):
        for event in page["events"]:
            details = event.get("stateEnteredEventDetails")
            if details:
                step = str(details["name"])
    return step


def runs(target: Target, limit: int = 10) -> list[Run]:
    sfn = target.client("stepfunctions")
    arn = target.output("TrainingStateMachineArn")
    found = []
    for execution in sfn.list_executions(stateMachineArn=arn, maxResults=limit)["executions"]:
        described = sfn.describe_execution(executionArn=execution["executionArn"])
        run = Run(
            name=execution["name"],
            arn=execution["executionArn"],
            status=described["status"],
            started=described["startDate"],
            stopped=described.get("stopDate"),
            step=last_step(sfn, execution["executionArn"]),
            error=described.get("error"),
            cause=described.get("cause"),
        )
        run.approval = approval_of(target, run.arn)
        found.append(run)
    found.sort(key=lambda r: r.started, reverse=True)
    return found


def find_run(target: Target, name_or_arn: str) -> str:
    if name_or_arn.startswith("arn:"):
        return name_or_arn
    for run in runs(target, limit=100):
        if run.name == name_or_arn:
            return run.arn
    raise TargetError(f"no pipeline run named {name_or_arn}")


# What `status` shows of an approval (never the task token).
APPROVAL_FIELDS = (
    "approval_id",
    "model_id",
    "status",
    "created_at",
    "expires_at",
    "decided_by",
    "decided_at",
    "decided_via",
    "reason",
    "channels",
    "expiry_channels",
)


def approval_of(target: Target, execution_arn: str) -> dict[str, Any] | None:
    table = target.session.resource(
        "dynamodb", region_name=target.region, endpoint_url=target.endpoint_url
    ).Table(target.output("ApprovalsTableName"))
    items = table.query(
        IndexName="by-execution",
        KeyConditionExpression="execution_arn = :e",
        ExpressionAttributeValues={":e": execution_arn},
    ).get("Items", [])
    if not items:
        return None
    latest = max(items, key=lambda i: int(str(i["created_at"])))
    return {
        k: (int(str(v)) if hasattr(v, "to_integral_value") else v)
        for k, v in latest.items()
        if k in APPROVAL_FIELDS
    }


def decide(target: Target, execution: str, approve: bool, reason: str = "") -> dict[str, Any]:
    """``approve`` / ``reject`` through the API's IAM-authenticated operator route."""
    arn = find_run(target, execution)
    body = json.dumps(
        {"execution_arn": arn, "decision": "approve" if approve else "reject", "reason": reason}
    ).encode()
    response = target.signed(
        "POST", "/operator/decisions", body, {"Content-Type": "application/json"}
    )
    try:
        answer: dict[str, Any] = response.json()
    except ValueError:
        answer = {"message": response.text}
    if response.status_code == 403 and "explicit deny" in str(answer.get("Message", "")):
        raise TargetError(
            f"the approval API refused: {answer['Message']}. Only the principals in the stack's "
            "OperatorPrincipalArns parameter may decide through the API: use the approval link, "
            "or deploy with your role's ARN in OperatorPrincipalArns."
        )
    if response.status_code != 200:
        message = answer.get("message") or answer.get("Message") or response.text
        raise TargetError(f"the approval API refused: {message}")
    return answer


@dataclass
class Release:
    production_endpoint: str | None
    live_version: str
    routing: dict[str, float]
    champion: dict[str, Any]
    state: ReleaseState  # each live version's endpoint, the endpoints' status, the stack's
    check: ReleaseCheck  # whether live and the production record agree, and what to do if not
    deployments: list[dict[str, Any]] = field(default_factory=list)


def release(target: Target, deployments: int = 3) -> Release:
    ssm = target.client("ssm")
    state = read_release(
        target.describe_stack(),
        lambda_client=target.client("lambda"),
        ssm=ssm,
        sagemaker=target.client("sagemaker"),
    )
    champion = json.loads(
        ssm.get_parameter(Name=target.output("ChampionParameterName"))["Parameter"]["Value"] or "{}"
    )
    codedeploy = target.client("codedeploy")
    ids = codedeploy.list_deployments(
        applicationName=target.output("CodeDeployApplicationName"),
        deploymentGroupName=target.output("DeploymentGroupName"),
    ).get("deployments", [])
    history = []
    for deployment_id in ids:
        info = codedeploy.get_deployment(deploymentId=deployment_id)["deploymentInfo"]
        history.append(
            {
                "id": deployment_id,
                "status": info.get("status"),
                "created": info.get("createTime"),
                "config": info.get("deploymentConfigName"),
                "description": info.get("description"),
                "error": (info.get("errorInformation") or {}).get("message"),
            }
        )
    history.sort(key=lambda d: d["created"] or datetime.min, reverse=True)
    return Release(
        state.record,
        state.live[0].version,
        {v.version: v.weight for v in state.live[1:]},
        champion,
        state,
        check_release(state),
        history[:deployments],
    )


@dataclass
class DriftReport:
    endpoint: str
    schedule: str
    execution: dict[str, Any] | None
    violations: list[dict[str, str]]
    statistics: dict[str, Any] | None


def drift_report(target: Target) -> DriftReport:
    endpoint = release(target).production_endpoint
    if endpoint is None:
        raise TargetError("no model is in production, so nothing is monitored yet")
    schedule = monitoring_schedule_of(endpoint)
    sagemaker = target.client("sagemaker")
    executions = sagemaker.list_monitoring_executions(
        MonitoringScheduleName=schedule, SortBy="ScheduledTime", SortOrder="Descending"
    ).get("MonitoringExecutionSummaries", [])
    finished = [
        e for e in executions if e.get("MonitoringExecutionStatus", "").startswith("Completed")
    ]
    if not finished:
        return DriftReport(endpoint, schedule, executions[0] if executions else None, [], None)
    latest = finished[0]
    s3 = target.client("s3")
    prefix = latest.get("ResultS3Uri") or _result_uri(sagemaker, latest)
    bucket, _, key = prefix.removeprefix("s3://").partition("/")

    def read(name: str) -> Any:
        body = s3.get_object(Bucket=bucket, Key=f"{key.rstrip('/')}/{name}")["Body"].read()
        return json.loads(body)

    return DriftReport(
        endpoint,
        schedule,
        latest,
        read("constraint_violations.json")["violations"],
        read("statistics.json"),
    )


def _result_uri(sagemaker: Any, execution: dict[str, Any]) -> str:
    job = execution["ProcessingJobArn"].rsplit("/", 1)[-1]
    described = sagemaker.describe_processing_job(ProcessingJobName=job)
    return str(described["ProcessingOutputConfig"]["Outputs"][0]["S3Output"]["S3Uri"])
