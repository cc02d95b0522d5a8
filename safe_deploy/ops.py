"""The pipeline's operations, the same against AWS and the local cloud: upload data, follow runs
(and explain why one stopped), decide approvals, read the release state, the drift reports and
the functions' logs."""

from __future__ import annotations

import json
import re
import time
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path, PurePosixPath
from typing import Any, cast

import requests
import yaml
from botocore.exceptions import ClientError
from pipeline_common import registry
from pipeline_common.layout import RAW_PREFIX, execution_arn, monitoring_schedule_of, rollback_name
from pipeline_common.registry import Package, champion_pointer, fit_metadata
from pipeline_common.release import ReleaseCheck, ReleaseState, check_release, read_release

from safe_deploy.localcloud.timeline import TIMELINE_ROUTE, RunNotFound, RunTimeline
from safe_deploy.localcloud.timeline.history import deployment_shifts, run_boundaries
from safe_deploy.localcloud.timeline.stages import AWS, derive
from safe_deploy.target import Target, TargetError


@dataclass(frozen=True)
class Uploaded:
    bucket: str
    key: str
    version_id: str | None


def upload_data(target: Target, path: Path, key: str | None = None) -> Uploaded:
    if not path.is_file():
        raise TargetError(f"{path}: no such file")
    if path.stat().st_size == 0:  # refused here, before it costs a run that can only fail
        raise TargetError(
            f"{path} is empty (0 bytes): nothing to train on, so nothing was uploaded"
        )
    bucket = target.output("DataBucketName")
    key = key or f"{RAW_PREFIX}{path.name}"
    if not key.startswith(RAW_PREFIX):
        raise TargetError(f"{key}: the pipeline only listens under {RAW_PREFIX}")
    s3 = target.client("s3")
    s3.upload_file(str(path), bucket, key)
    head = s3.head_object(Bucket=bucket, Key=key)
    return Uploaded(bucket, key, head.get("VersionId"))


# ---------------------------------------------------------------------------- runs
@dataclass(frozen=True)
class Failure:
    """Why a run stopped, root cause first: ``reasons[0]`` is what went wrong (a hook's verdict,
    the data file's problem), each later line who reported it, ending with the run's own cause."""

    error: str
    reasons: tuple[str, ...]


@dataclass
class Run:
    name: str
    arn: str
    status: str
    started: datetime
    stopped: datetime | None
    step: str | None  # the state entered last (the current one while the run is RUNNING)
    error: str | None = None
    cause: str | None = None
    approval: dict[str, Any] | None = None
    source: dict[str, Any] = field(default_factory=dict)  # bucket, key, version_id: the upload
    data: dict[str, Any] = field(default_factory=dict)  # the training window (start_training)
    trigger: str | None = None  # "new data" or "drift alarm"
    failed_at: str | None = None  # the state that failed, not the failure handling after it
    promotion_step: str | None = None  # while DeployToProduction runs: the deploy machine's step
    evaluation: dict[str, Any] | None = None  # the gate's output ($.gate.evaluation)
    test: dict[str, Any] | None = None  # the dev endpoint test's report
    failure: Failure | None = None


# A history page: AWS returns up to 1000 events, newest first with reverseOrder (the local cloud
# pages the same way). A run's current step and its candidate's metrics are within the newest page
# or two, so no run costs its whole history. A server that answers every event in one page,
# oldest first, as moto itself does, is still read right: pages are sorted and de-duplicated.
HISTORY_PAGE = 100
HISTORY_PAGES = 5
LAST_STEP_PAGE = 10
# The states a training run enters once something failed (catch handlers, cleanup,
# notification): the state that failed is the last one before them.
FAILURE_HANDLING = re.compile(
    r"Fail|Notify|Delete|Outcome|Unprefixed|Reason|ExitMessage|Expire|TimedOut"
)


class ExecutionHistory:
    """An execution's events, newest first, read a page at a time and only as far as asked."""

    def __init__(
        self, sfn: Any, arn: str, max_pages: int = HISTORY_PAGES, page_size: int = HISTORY_PAGE
    ) -> None:
        self.sfn = sfn
        self.arn = arn
        self.max_pages = max_pages
        self.page_size = page_size  # the same on every page, as a nextToken requires
        self.events: dict[int, dict[str, Any]] = {}
        self.newest_first_ids: list[int] = []
        self._token: str | None = None
        self._pages = 0
        self._exhausted = False

    def _read_page(self) -> bool:
        if self._exhausted or self._pages >= self.max_pages:
            return False
        request: dict[str, Any] = {
            "executionArn": self.arn,
            "reverseOrder": True,
            "maxResults": self.page_size,
        }
        if self._token:
            request["nextToken"] = self._token
        page = self.sfn.get_execution_history(**request)
        self._pages += 1
        self._token = page.get("nextToken")
        self._exhausted = not self._token
        for event in page["events"]:  # newest first, no page repeating another's
            self.events[event["id"]] = event
            self.newest_first_ids.append(event["id"])
        return bool(page["events"])

    def newest_first(self) -> Iterator[dict[str, Any]]:
        index = 0
        while index < len(self.newest_first_ids) or self._read_page():
            while index < len(self.newest_first_ids):
                yield self.events[self.newest_first_ids[index]]
                index += 1

    def event(self, event_id: int) -> dict[str, Any] | None:
        while event_id not in self.events:
            if not self._read_page():
                return None
        return self.events[event_id]


def _entered(event: dict[str, Any]) -> str | None:
    details = event.get("stateEnteredEventDetails")
    return str(details["name"]) if details else None


def current_step(history: ExecutionHistory) -> str | None:
    """The state the execution entered last."""
    return next((name for e in history.newest_first() if (name := _entered(e))), None)


def failed_state(history: ExecutionHistory) -> str | None:
    """The state whose failure ended the run, found by walking back from the last event along
    ``previousEventId`` (the causal chain, which in a Parallel leads into the failing branch)
    past the failure handling states."""
    event = next(history.newest_first(), None)
    for _ in range(HISTORY_PAGE * HISTORY_PAGES):
        if event is None:
            return None
        name = _entered(event)
        if name and not FAILURE_HANDLING.search(name):
            return name
        previous = int(event.get("previousEventId") or 0)
        event = history.event(previous) if previous else None
    return None


def _json(text: Any) -> Any:
    try:
        return json.loads(text) if isinstance(text, str) else None
    except ValueError:
        return None


def candidate_in(document: Any) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    """The gate's evaluation and the dev endpoint test's report in a state's input or output
    (``gate.evaluation``/``test.report`` inside the candidate branch, ``candidate.*`` after it)."""
    if not isinstance(document, dict):
        return None, None
    candidate = document.get("candidate") or {}
    evaluation = (document.get("gate") or {}).get("evaluation") or candidate.get("evaluation")
    test = (document.get("test") or {}).get("report") or candidate.get("test")
    return (
        evaluation if isinstance(evaluation, dict) else None,
        test if isinstance(test, dict) else None,
    )


def candidate_from_history(
    history: ExecutionHistory,
) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    """The newest state input or output that carries the candidate's evaluation."""
    for event in history.newest_first():
        details = event.get("stateEnteredEventDetails") or event.get("stateExitedEventDetails")
        if not details:
            continue
        evaluation, test = candidate_in(_json(details.get("input") or details.get("output")))
        if evaluation is not None:
            return evaluation, test
    return None, None


def last_step(sfn: Any, arn: str) -> str | None:
    """The state the execution entered last (its current step while it runs): read from the
    newest few events, which nearly always name it (followers ask several times a second)."""
    return current_step(
        ExecutionHistory(
            sfn, arn, max_pages=HISTORY_PAGE // LAST_STEP_PAGE, page_size=LAST_STEP_PAGE
        )
    )


def describe_run(target: Target, sfn: Any, name: str, arn: str) -> Run:
    """One run as ``status`` shows it: where it came from, where it is, what it made, and why it
    stopped. Reads the execution, the newest of its history, and for a failed promotion the
    deployment and its hooks' logs."""
    described = sfn.describe_execution(executionArn=arn)
    given = _json(described.get("input")) or {}
    run = Run(
        name=name,
        arn=arn,
        status=described["status"],
        started=described["startDate"],
        stopped=described.get("stopDate"),
        step=None,
        error=described.get("error"),
        cause=described.get("cause"),
        source=dict(given.get("source") or {}),
        data=dict(given.get("data") or {}),
        trigger=given.get("reason"),
    )
    run.evaluation, run.test = candidate_in(_json(described.get("output")))
    run.approval = approval_of(target, run.arn)
    if run.status == "SUCCEEDED":  # its output holds the candidate: no history to read
        return run
    history = ExecutionHistory(sfn, arn)
    run.step = current_step(history)
    if run.evaluation is None:
        run.evaluation, run.test = candidate_from_history(history)
    if run.status == "RUNNING" and run.step == "DeployToProduction":
        run.promotion_step = _promotion_step(target, sfn, run.name)
    if run.status in ("FAILED", "TIMED_OUT", "ABORTED"):
        run.failed_at = failed_state(history)
        run.failure = explain_failure(target, run)
    return run


def runs(target: Target, limit: int = 10) -> list[Run]:
    sfn = target.client("stepfunctions")
    arn = target.output("TrainingStateMachineArn")
    found = [
        describe_run(target, sfn, execution["name"], execution["executionArn"])
        for execution in sfn.list_executions(stateMachineArn=arn, maxResults=limit)["executions"]
    ]
    found.sort(key=lambda r: r.started, reverse=True)
    return found


def find_run(target: Target, name_or_arn: str) -> str:
    """A run's execution ARN from its name (the model id) or its ARN; a name that is no run of
    the training state machine is an error that says so."""
    if name_or_arn.startswith("arn:"):
        return name_or_arn
    sfn = target.client("stepfunctions")
    arn = execution_arn(target.output("TrainingStateMachineArn"), name_or_arn)
    try:
        sfn.describe_execution(executionArn=arn)
    except (sfn.exceptions.ExecutionDoesNotExist, sfn.exceptions.InvalidArn):
        raise TargetError(f"no pipeline run named {name_or_arn}") from None
    return arn


def _promotion_step(target: Target, sfn: Any, name: str) -> str | None:
    arn = execution_arn(target.output("DeployStateMachineArn"), name)
    try:
        return last_step(sfn, arn)
    except sfn.exceptions.ExecutionDoesNotExist:
        return None


# ---------------------------------------------------------------------------- why a run stopped
# A path inside a SageMaker container (or the local cloud's copy of one) to the raw input: the
# run's source object, which is what a person uploaded and recognises.
_RAW_INPUT = "/opt/ml/processing/input/raw/"
_FAILURE_KIND = re.compile(r"^(AlgorithmError|ClientError|InternalServerError|CapacityError): ")


def plain_cause(cause: str | None, source: dict[str, Any]) -> tuple[str, str | None]:
    """A cause as a person reads it, and the kind of failure it was reported as.

    A Lambda error's cause is its JSON payload (errorType, errorMessage, then the stack trace):
    the message is the cause. A SageMaker job's names the container's copy of the upload (a long
    path) where the upload's own key says which file.
    """
    if not cause:
        return "no cause given", None
    payload = _json(cause)
    if isinstance(payload, dict) and "errorMessage" in payload:
        return str(payload["errorMessage"]), str(payload.get("errorType") or "") or None
    key = str(source.get("key") or "")
    if key:
        name = re.escape(PurePosixPath(key).name)
        cause = re.sub(rf"\S*{re.escape(_RAW_INPUT)}{name}", lambda _m: key, cause)
    kind = _FAILURE_KIND.match(cause)
    if kind:
        return cause[kind.end() :], kind.group(1)
    return cause, None


# What Step Functions leaves unsaid: these end without an error of the run's own.
NO_CAUSE = {
    "ABORTED": "the execution was stopped (StopExecution)",
    "TIMED_OUT": "the execution ran longer than its state machine's TimeoutSeconds",
}


def explain_failure(target: Target, run: Run) -> Failure:
    """Why the run stopped, root cause first. A failed promotion is explained by the deployment
    that rolled it back and, below that, by the hook that said no: its verdict is in its log,
    because CodeDeploy's PutLifecycleEventHookExecutionStatus carries only Succeeded/Failed."""
    error = run.error or run.status
    cause, kind = plain_cause(run.cause, run.source)
    if not run.cause and run.status in NO_CAUSE:
        cause = NO_CAUSE[run.status]
    reported = f"reported as {error}" + (f" ({kind})" if kind else "")
    if run.failed_at:
        reported += f" at {run.failed_at}"
    promoting = run.failed_at == "DeployToProduction" or run.error == "DeploymentFailed"
    deeper = promotion_failure(target, run) if promoting else []
    return Failure(error, tuple(dict.fromkeys([*deeper, cause, reported])))


@dataclass(frozen=True)
class Deployment:
    """A CodeDeploy deployment of the predict function's alias, as a promotion's failure needs."""

    id: str
    status: str
    created: datetime
    message: str  # errorInformation.message: why CodeDeploy stopped it
    hooks: dict[str, str]  # lifecycle event -> the hook function's name, from the AppSpec


def promotion_deployments(
    target: Target, run_name: str, with_hooks: bool = True
) -> list[Deployment]:
    """The deployments the run's promotion (the deploy execution named after the run) created:
    those of the stack's deployment group created while that execution ran; ``with_hooks``
    reads each one's AppSpec for its hook functions."""
    sfn = target.client("stepfunctions")
    arn = execution_arn(target.output("DeployStateMachineArn"), run_name)
    try:
        described = sfn.describe_execution(executionArn=arn)
    except sfn.exceptions.ExecutionDoesNotExist:
        return []
    began: datetime = described["startDate"]
    ended: datetime = described.get("stopDate") or datetime.now(began.tzinfo)
    codedeploy = target.client("codedeploy")
    ids: list[str] = []
    for page in codedeploy.get_paginator("list_deployments").paginate(
        applicationName=target.output("CodeDeployApplicationName"),
        deploymentGroupName=target.output("DeploymentGroupName"),
    ):
        ids.extend(page.get("deployments", []))
    found = []
    for start in range(0, len(ids), 25):  # BatchGetDeployments takes 25 at a time
        infos = codedeploy.batch_get_deployments(deploymentIds=ids[start : start + 25])
        for info in infos.get("deploymentsInfo", []):
            created = info.get("createTime")
            if created is None or not began <= created <= ended:
                continue
            found.append(
                Deployment(
                    id=info["deploymentId"],
                    status=str(info.get("status")),
                    created=created,
                    message=str((info.get("errorInformation") or {}).get("message") or ""),
                    hooks=_hooks_of(codedeploy, info) if with_hooks else {},
                )
            )
    return sorted(found, key=lambda d: d.created)


def _hooks_of(codedeploy: Any, info: dict[str, Any]) -> dict[str, str]:
    from pipeline_common.hooks import deployment_appspec

    try:
        appspec = yaml.safe_load(deployment_appspec(codedeploy, cast(Any, info)))
    except (ValueError, yaml.YAMLError, ClientError):
        return {}
    hooks: dict[str, str] = {}
    for entry in (appspec or {}).get("Hooks") or []:
        if isinstance(entry, dict):
            hooks.update({str(k): str(v) for k, v in entry.items()})
    return hooks


def promotion_failure(target: Target, run: Run) -> list[str]:
    """Root cause first: each failed deployment's hook verdict, then CodeDeploy's message."""
    reasons: list[str] = []
    for deployment in promotion_deployments(target, run.name):
        if deployment.status not in ("Failed", "Stopped"):
            continue
        named = [event for event in deployment.hooks if event in deployment.message]
        for event in named or list(deployment.hooks):
            function = deployment.hooks[event]
            try:
                verdict = hook_verdict(target, function, deployment.id, deployment.created)
            except ClientError as exc:
                code = exc.response.get("Error", {}).get("Code", "an error")
                reasons.append(f"the {event} hook's log could not be read ({code})")
                continue
            if verdict:
                reasons.append(f"{verdict} (the {event} hook, {function})")
        if deployment.message and deployment.message not in (run.cause or ""):
            reasons.append(f"CodeDeploy deployment {deployment.id}: {deployment.message}")
    return reasons


def hook_verdict(target: Target, function: str, deployment_id: str, since: datetime) -> str | None:
    """A hook's failed verdict on a deployment, from its log: the hooks log one JSON line per
    deployment with ``deployment_id``, ``status`` and ``summary``."""
    for line in filter_log_lines(target, function, deployment_id, since):
        record = _json(line.message)
        if (
            isinstance(record, dict)
            and record.get("deployment_id") == deployment_id
            and record.get("status") == "Failed"
            and record.get("summary")
        ):
            return str(record["summary"])
    return None


# ---------------------------------------------------------------------------- logs
# Lambda writes each function's output to this log group (created at the function's first run).
LAMBDA_LOG_GROUP = "/aws/lambda/{}"
FUNCTION_TYPE = "AWS::Lambda::Function"
LOG_PAGES = 20  # FilterLogEvents pages read per log group and term


@dataclass(frozen=True)
class LogLine:
    timestamp: datetime
    function: str  # the template's logical id where known, else the function's name
    message: str
    group: str
    event_id: str

    @property
    def key(self) -> tuple[str, str]:
        """What makes a line one event: its group and CloudWatch Logs' event id."""
        return self.group, self.event_id


@dataclass(frozen=True)
class LogQuery:
    """Which log groups to read, from when, and the terms a line must hold (any one of them;
    none: every line)."""

    functions: dict[str, str]  # label -> function name
    start: datetime
    terms: tuple[str, ...] = ()
    run: str | None = None


def stack_functions(target: Target) -> dict[str, str]:
    """The stack's Lambda functions: logical id -> physical name."""
    cloudformation = target.client("cloudformation")
    stack = target.describe_stack()
    functions: dict[str, str] = {}
    for page in cloudformation.get_paginator("list_stack_resources").paginate(
        StackName=stack.get("StackId") or stack["StackName"]
    ):
        for resource in page.get("StackResourceSummaries", []):
            if resource["ResourceType"] == FUNCTION_TYPE and resource.get("PhysicalResourceId"):
                functions[resource["LogicalResourceId"]] = resource["PhysicalResourceId"]
    return functions


def log_query(target: Target, what: str, since: datetime | None) -> LogQuery:
    """``what`` is a function (a logical id such as ``PostTrafficHookFunction``, or its name) or a
    pipeline run (an execution name or ARN): the lines of every function that mention the run,
    its model id or the deployments of its promotion."""
    functions = stack_functions(target)
    for logical_id, name in functions.items():
        if what in (logical_id, name):
            return LogQuery({logical_id: name}, since or datetime.now(UTC) - DEFAULT_LOG_WINDOW)
    try:
        arn = find_run(target, what)
    except TargetError:
        raise TargetError(
            f"{what} is neither a function of the stack ({', '.join(sorted(functions))}) nor a "
            "pipeline run (see `safe-deploy status`)"
        ) from None
    described = target.client("stepfunctions").describe_execution(executionArn=arn)
    name = str(described["name"])
    deployments = [d.id for d in promotion_deployments(target, name, with_hooks=False)]
    # Its upload is handled moments before the execution's start date: a minute of slack.
    start = since or described["startDate"] - timedelta(minutes=1)
    return LogQuery(functions, start, (name, *deployments), run=name)


DEFAULT_LOG_WINDOW = timedelta(hours=1)


def read_logs(target: Target, query: LogQuery, start: datetime | None = None) -> list[LogLine]:
    """Every matching line since ``start`` (default: the query's), oldest first."""
    since = start or query.start
    found: dict[tuple[str, str], LogLine] = {}
    for label, function in query.functions.items():
        for term in query.terms or (None,):
            for line in filter_log_lines(target, function, term, since, label):
                found.setdefault(line.key, line)
    return sorted(found.values(), key=lambda line: line.timestamp)


def filter_log_lines(
    target: Target, function: str, term: str | None, since: datetime, label: str | None = None
) -> Iterator[LogLine]:
    """FilterLogEvents on the function's log group: lines holding ``term`` (quoted, so ids with
    dashes match as a whole), none if the group does not exist yet (the function never ran)."""
    logs = target.client("logs")
    group = LAMBDA_LOG_GROUP.format(function)
    request: dict[str, Any] = {
        "logGroupName": group,
        "startTime": int(since.timestamp() * 1000),
    }
    if term:
        request["filterPattern"] = json.dumps(term)
    for _ in range(LOG_PAGES):
        try:
            page = logs.filter_log_events(**request)
        except logs.exceptions.ResourceNotFoundException:
            return
        for event in page.get("events", []):
            yield LogLine(
                timestamp=datetime.fromtimestamp(event["timestamp"] / 1000, UTC),
                function=label or function,
                message=str(event.get("message", "")).rstrip("\n"),
                group=group,
                event_id=str(event.get("eventId", "")),
            )
        token = page.get("nextToken")
        if not token:
            return
        request["nextToken"] = token


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
    champion = champion_of(
        target,
        ssm.get_parameter(Name=target.output("ChampionParameterName"))["Parameter"]["Value"],
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


# ---------------------------------------------------------------------------- the model registry
def champion_of(target: Target, parameter_value: str) -> dict[str, Any]:
    """The production model's record: read from its registry version when the champion parameter
    points at one (a record from before the registry holds its metrics itself)."""
    arn = champion_pointer(parameter_value)
    if arn is None:
        record: dict[str, Any] = json.loads(parameter_value or "{}")
        return record
    try:
        described = target.client("sagemaker").describe_model_package(ModelPackageName=arn)
        return registry.champion_record(described)
    except (ClientError, ValueError) as exc:  # status still shows the rest of the release
        return {"model_package_arn": arn, "model_id": f"unreadable ({exc})"}


def serving_package_arn(target: Target) -> str | None:
    """The registry version the champion parameter says serves production."""
    parameter = target.output("ChampionParameterName")
    value = target.client("ssm").get_parameter(Name=parameter)["Parameter"]["Value"]
    return champion_pointer(value)


def model_packages(target: Target) -> list[Package]:
    """Every version of the stack's model package group, newest first. ListModelPackages answers
    summaries only: each version's metadata, metrics and artifact come from
    DescribeModelPackage."""
    sagemaker = target.client("sagemaker")
    arns: list[str] = []
    for page in sagemaker.get_paginator("list_model_packages").paginate(
        ModelPackageGroupName=target.output("ModelPackageGroupName")
    ):
        arns += [str(s["ModelPackageArn"]) for s in page.get("ModelPackageSummaryList", [])]
    packages = [
        Package.from_description(sagemaker.describe_model_package(ModelPackageName=arn))
        for arn in arns
    ]
    return sorted(packages, key=lambda p: p.version, reverse=True)


def running_releases(target: Target) -> list[str]:
    """The deploy state machine's running executions: promotions and rollbacks under way."""
    sfn = target.client("stepfunctions")
    found = sfn.list_executions(
        stateMachineArn=target.output("DeployStateMachineArn"), statusFilter="RUNNING"
    )["executions"]
    return [str(e["name"]) for e in found]


@dataclass(frozen=True)
class RollbackPlan:
    """What ``rollback`` would do: serve ``package`` again in place of ``serving``; ``running``
    are the releases under way that it waits for (the release lock serialises them)."""

    package: Package
    serving: Package | None
    running: list[str]


ROLLBACK_REASON_LIMIT = 500  # as long as an approval's reason
# Characters a reason may not hold (as approvals refuse them): control and format characters,
# lone surrogates, line and paragraph separators.
_UNSEEN = frozenset({"Cc", "Cf", "Cs", "Zl", "Zp"})


def plan_rollback(target: Target, version: int | None = None) -> RollbackPlan:
    """The version to roll back to: ``version``, or the one that left production last. Refused,
    with the reason, when it is not Approved, serves already, or is being released now."""
    group = target.output("ModelPackageGroupName")
    packages = model_packages(target)
    if not packages:
        raise TargetError(
            f"the model registry ({group}) has no versions yet: nothing to roll back to"
        )
    serving_arn = serving_package_arn(target)
    serving = next((p for p in packages if p.arn == serving_arn), None)
    package = (
        _previous_production(packages, serving_arn, group)
        if version is None
        else _version(packages, version, group)
    )
    _refuse_unreleasable(package, serving_arn)
    running = running_releases(target)
    same = [name for name in running if package.model_id and name.startswith(package.model_id)]
    if same:
        raise TargetError(
            f"version {package.version} (model {package.model_id}) is being released now "
            f"({', '.join(same)}): wait for it, then see `safe-deploy models`"
        )
    return RollbackPlan(package, serving, running)


def _previous_production(packages: list[Package], serving_arn: str | None, group: str) -> Package:
    """The version that left production last: what served before the one serving now."""
    earlier = [p for p in packages if p.arn != serving_arn and p.production_until is not None]
    if not earlier:
        raise TargetError(
            "no earlier production model to roll back to: no other version of "
            f"{group} has left production (`safe-deploy models` lists them)"
        )
    return max(earlier, key=lambda p: p.production_until or datetime.min.replace(tzinfo=UTC))


def _version(packages: list[Package], version: int, group: str) -> Package:
    found = next((p for p in packages if p.version == version), None)
    if found is None:
        known = ", ".join(str(p.version) for p in sorted(packages, key=lambda p: p.version))
        raise TargetError(f"{group} has no version {version} (versions: {known})")
    return found


def _refuse_unreleasable(package: Package, serving_arn: str | None) -> None:
    if package.arn == serving_arn:
        raise TargetError(
            f"version {package.version} (model {package.model_id}) serves production now: "
            "there is nothing to roll back"
        )
    if package.status != registry.APPROVED:
        why = package.approval_description or "no decision recorded"
        raise TargetError(
            f"version {package.version} (model {package.model_id}) is {package.status} "
            f"({why}): only an Approved version can serve production"
        )
    if not package.model_id:
        raise TargetError(f"version {package.version} records no model_id: it cannot be released")


def caller_arn(target: Target) -> str:
    """Who is asking, as IAM knows them (recorded with the rollback)."""
    return str(target.client("sts").get_caller_identity()["Arn"])


def start_rollback(target: Target, plan: RollbackPlan, reason: str, requested_by: str) -> str:
    """Start the deploy state machine on the earlier version, as a promotion of it: green from
    the package, the release lock, the stack update and its canary. Returns the execution's
    name; the registry records who asked and why (in the metadata's character set; the
    execution's input keeps them as given)."""
    cleaned = " ".join(reason.split())
    if not cleaned:
        raise TargetError("a rollback needs a reason (--reason TEXT): it is recorded")
    if len(cleaned) > ROLLBACK_REASON_LIMIT:
        raise TargetError(f"a reason has at most {ROLLBACK_REASON_LIMIT} characters")
    hidden = next((c for c in cleaned if unicodedata.category(c) in _UNSEEN), None)
    if hidden is not None:
        raise TargetError(
            f"the reason contains U+{ord(hidden):04X}, an invisible or control character that "
            "could hide or reorder what others read: type it plainly"
        )
    package = plan.package
    name = rollback_name(str(package.model_id), datetime.now(UTC))
    execution_input = {
        "model_id": package.model_id,
        "model_package_arn": package.arn,
        "rollback": {
            "requested_by": requested_by,
            "reason": cleaned,
            "from_model_package_arn": plan.serving.arn if plan.serving else None,
            "record": {
                registry.ROLLED_BACK_BY: fit_metadata(requested_by),
                registry.ROLLBACK_REASON: fit_metadata(cleaned),
            },
        },
    }
    sfn = target.client("stepfunctions")
    try:
        sfn.start_execution(
            stateMachineArn=target.output("DeployStateMachineArn"),
            name=name,
            input=json.dumps(execution_input),
        )
    except sfn.exceptions.ExecutionAlreadyExists:
        raise TargetError(
            f"a rollback named {name} was started a moment ago: see `safe-deploy models`"
        ) from None
    return name


# ---------------------------------------------------------------------------- timeline
def run_timeline(target: Target, run_name: str) -> RunTimeline:
    """A run's stages. From the local cloud, local time beside the projected AWS time of each
    (its ``/_local/timeline`` route: the projection needs the waits it recorded). From AWS, AWS's
    own times: the run's execution histories and its promotion's CodeDeploy lifecycle events."""
    if target.local:
        origin = target.api_url.rsplit("/", 1)[0]
        answer = requests.get(f"{origin}{TIMELINE_ROUTE}{run_name}", timeout=30)
        if answer.status_code == 404:
            raise TargetError(f"no pipeline run named {run_name}")
        if answer.status_code != 200:
            raise TargetError(f"the local cloud could not build the timeline: {answer.text}")
        return RunTimeline.from_json(answer.json())
    try:
        bounds = run_boundaries(
            target.client("stepfunctions"),
            target.output("TrainingStateMachineArn"),
            target.output("DeployStateMachineArn"),
            run_name,
        )
    except RunNotFound as exc:
        raise TargetError(str(exc)) from None
    codedeploy = target.client("codedeploy")
    shifts = [
        shift
        for deployment in promotion_deployments(target, run_name, with_hooks=False)
        for shift in deployment_shifts(codedeploy, deployment.id)
    ]
    return derive(run_name, bounds, [], shifts, time.time(), source=AWS)
