"""CodeDeploy for the local cloud: Lambda deployments run as the deployment group says.

moto records deployments but never runs them. Here a deployment runs BeforeAllowTraffic, shifts
the alias's routing weight (canary or linear steps), bakes while watching the group's alarms, goes
to 100%, runs AfterAllowTraffic, and rolls back automatically on a failed hook, an alarm or a
stop. ``GetDeployment``, ``GetApplicationRevision`` and ``PutLifecycleEventHookExecutionStatus``
answer like CodeDeploy.

What CodeDeploy refuses is refused here, the way CodeDeploy refuses it: a second deployment on a
busy group at the ``CreateDeployment`` call; an AppSpec that does not fit the function (its alias
is not on ``CurrentVersion``, a canary or linear shift from a version to itself, a function, alias
or version that does not exist) by failing the deployment as soon as it starts, before any hook
runs or any traffic moves.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import yaml
from moto.awslambda.exceptions import UnknownAliasException, UnknownFunctionException
from moto.awslambda.utils import get_backend as lambda_backend
from moto.codedeploy import responses as codedeploy_responses
from moto.codedeploy.exceptions import CodeDeployException
from moto.codedeploy.models import CodeDeployBackend
from moto.core.responses import ActionResult

from safe_deploy.localcloud.metrics import Alarms
from safe_deploy.localcloud.patching import replace
from safe_deploy.localcloud.state import ActivityFeed, LocalSettings
from safe_deploy.localcloud.timeline import Kind, Recorder, aws_seconds
from safe_deploy.localcloud.timeline.durations import CANARY_BAKE, DEPLOYMENT_START, HOOK

HOOK_TIMEOUT_SECONDS = 3600.0  # a hook may wait for client traffic: it is a wait for people
_CONFIG = re.compile(
    r"^CodeDeployDefault\.Lambda(Canary|Linear)(\d+)Percent(?:Every)?(\d+)Minutes?$"
)
# Statuses of a deployment that holds its group: CodeDeploy runs one deployment per group at a time.
ACTIVE = ("Created", "Queued", "InProgress", "Baking", "Ready")

# CodeDeploy's words for an AppSpec it will not deploy. SAM users whose alias had moved under
# CloudFormation saw the deployment (accepted by CreateDeployment) fail with: "The deployment
# failed because the AppSpec file that specifies the AWS Lambda deployment configuration is missing
# or has an invalid configuration. The Lambda function alias version does not match the current
# version in AppSpec file. (Error code: INVALID_LAMBDA_CONFIGURATION)"
# (https://github.com/aws/serverless-application-model/issues/291).
INVALID_APPSPEC = (
    "The deployment failed because the AppSpec file that specifies the AWS Lambda deployment "
    "configuration is missing or has an invalid configuration."
)
ALIAS_NOT_ON_CURRENT_VERSION = (
    "The Lambda function alias version does not match the current version in AppSpec file."
)


class _RolledBack(Exception):
    def __init__(self, code: str, message: str) -> None:
        self.code = code
        super().__init__(message)


class _Refused(Exception):
    """CodeDeploy fails the deployment before it touches anything: no hook, no traffic moved."""

    def __init__(self, code: str, message: str) -> None:
        self.code = code
        super().__init__(message)


def traffic_routing(config_name: str) -> tuple[str, int | None, int | None]:
    """``CodeDeployDefault.LambdaCanary10Percent5Minutes`` -> (TimeBasedCanary, 10, 5)."""
    if config_name in ("CodeDeployDefault.LambdaAllAtOnce", "", None):
        return "AllAtOnce", None, None
    match = _CONFIG.match(config_name)
    if match is None:
        raise ValueError(f"deployment config {config_name} is not a Lambda configuration")
    kind = "TimeBasedCanary" if match.group(1) == "Canary" else "TimeBasedLinear"
    return kind, int(match.group(2)), int(match.group(3))


# ---------------------------------------------------------------------------- the AppSpec
def appspec_text(revision: dict[str, Any]) -> str | None:
    """The AppSpec a revision carries inline (``AppSpecContent``, or the older ``String``)."""
    for kind in ("appSpecContent", "string"):
        content = (revision.get(kind) or {}).get("content")
        if content is not None:
            return str(content)
    return None


def appspec_sha256(revision: dict[str, Any]) -> str | None:
    """The revision's sha256 as given, else computed from its content."""
    for kind in ("appSpecContent", "string"):
        part = revision.get(kind) or {}
        if part.get("sha256"):
            return str(part["sha256"])
        if part.get("content") is not None:
            return hashlib.sha256(str(part["content"]).encode()).hexdigest()
    return None


@dataclass(frozen=True)
class LambdaAppSpec:
    function: str
    alias: str
    current: str
    target: str
    hooks: dict[str, str]

    @classmethod
    def parse(cls, text: str) -> LambdaAppSpec:
        """The first (only) ``AWS::Lambda::Function`` resource of an AppSpec, JSON or YAML."""
        try:
            content = yaml.safe_load(text)
            properties = next(iter(content["Resources"][0].values()))["Properties"]
            hooks = {k: v for hook in content.get("Hooks") or [] for k, v in hook.items()}
            return cls(
                str(properties["Name"]),
                str(properties["Alias"]),
                str(properties["CurrentVersion"]),
                str(properties["TargetVersion"]),
                hooks,
            )
        except (yaml.YAMLError, KeyError, IndexError, TypeError, AttributeError) as exc:
            # An AppSpec CodeDeploy cannot read fails the deployment with the message above (the
            # reason appended is the local cloud's; the code is the one issues/291 shows).
            raise _Refused(
                "INVALID_LAMBDA_CONFIGURATION", f"{INVALID_APPSPEC} {type(exc).__name__}: {exc}"
            ) from exc


def check_appspec(lam: Any, spec: LambdaAppSpec, config_name: str) -> None:
    """Raise :class:`_Refused` where CodeDeploy fails a Lambda deployment as it starts."""
    try:
        alias = lam.get_alias(spec.alias, spec.function)  # the function's, then the alias's
        for version in (spec.current, spec.target):
            lam.get_function(spec.function, version)
    except (UnknownFunctionException, UnknownAliasException) as exc:
        # A name CodeDeploy cannot find fails the deployment; the error code is the one
        # CodeDeploy's ErrorCode names for it, the wording Lambda's. Neither was seen on AWS.
        raise _Refused("INVALID_LAMBDA_FUNCTION", f"{INVALID_APPSPEC} {exc.message}") from exc
    if str(alias.function_version) != spec.current:
        # issues/291 above: the alias moved since the AppSpec was written.
        raise _Refused(
            "INVALID_LAMBDA_CONFIGURATION", f"{INVALID_APPSPEC} {ALIAS_NOT_ON_CURRENT_VERSION}"
        )
    if spec.target == spec.current and traffic_routing(config_name)[0] != "AllAtOnce":
        # CodeDeploy fails a canary or linear deployment from a version to itself with the bare
        # message, no reason appended; AllAtOnce accepts it
        # (https://github.com/terraform-aws-modules/terraform-aws-lambda/issues/82 and pull 85).
        # The error code was not shown there: the one the same message carries in issues/291.
        raise _Refused("INVALID_LAMBDA_CONFIGURATION", INVALID_APPSPEC)


# ---------------------------------------------------------------------------- running deployments
class CodeDeployEmulator:
    def __init__(
        self,
        settings: LocalSettings,
        feed: ActivityFeed,
        alarms: Alarms,
        timeline: Recorder | None = None,
    ) -> None:
        self.settings = settings
        self.feed = feed
        self.alarms = alarms
        self.timeline = timeline or Recorder()
        # On AWS, GetDeployment of the deployments CloudFormation creates for SAM's
        # DeploymentPreference carries the AppSpec's sha256 only; hooks then need
        # GetApplicationRevision. True answers that way for every deployment.
        self.get_deployment_sha256_only = False
        self._hooks: dict[str, threading.Event] = {}
        self._hook_status: dict[str, str] = {}
        self._lock = threading.Lock()
        self.creating = threading.Lock()  # check-then-create of a group's one deployment

    def hook_answered(self, execution_id: str, status: str) -> None:
        with self._lock:
            self._hook_status[execution_id] = status
            event = self._hooks.get(execution_id)
        if event is not None:
            event.set()

    def run(self, backend: CodeDeployBackend, deployment: Any) -> None:
        lam = lambda_backend(backend.account_id, backend.region_name)
        ident = deployment.deployment_id

        def say(message: str, **data: Any) -> None:
            self.feed.emit("codedeploy", f"{ident}: {message}", deployment=ident, **data)

        deployment.status = "InProgress"
        deployment.start_time = datetime.now(UTC)
        try:
            spec = LambdaAppSpec.parse(appspec_text(deployment.revision) or "")
            check_appspec(lam, spec, deployment.deployment_config_name)
        except _Refused as refused:
            deployment.error_information = {"code": refused.code, "message": str(refused)}
            deployment.status = "Failed"
            deployment.complete_time = datetime.now(UTC)
            say(f"Failed: {refused}", reason=str(refused))
            return
        self._shift(lam, deployment, spec, say)

    def _shift(
        self, lam: Any, deployment: Any, spec: LambdaAppSpec, say: Callable[..., None]
    ) -> None:
        function, alias, current, target = spec.function, spec.alias, spec.current, spec.target
        hooks = spec.hooks
        ident = deployment.deployment_id
        group = deployment.deployment_group
        alarm_config = group.alarm_configuration or {}
        alarm_names = (
            [a["name"] for a in alarm_config.get("alarms", [])]
            if alarm_config.get("enabled")
            else []
        )

        def route(weight: float) -> None:
            if weight >= 1.0:
                lam.update_alias(alias, function, target, None, {"AdditionalVersionWeights": {}})
            elif weight <= 0.0:
                lam.update_alias(alias, function, current, None, {"AdditionalVersionWeights": {}})
            else:
                lam.update_alias(
                    alias, function, current, None, {"AdditionalVersionWeights": {target: weight}}
                )
            self.timeline.shift(ident, weight)
            say(f"{weight:.0%} of {alias} traffic on version {target}", weight=weight)

        def run_hook(lifecycle: str) -> None:
            if lifecycle not in hooks:
                return
            with self.timeline.span(HOOK, lifecycle, Kind.WORK, stack=True):
                answer_hook(lifecycle)

        def answer_hook(lifecycle: str) -> None:
            execution_id = str(uuid.uuid4())
            answered = threading.Event()
            with self._lock:
                self._hooks[execution_id] = answered
            say(f"{lifecycle}: invoking {hooks[lifecycle]}", hook=lifecycle)
            lam.invoke(
                hooks[lifecycle],
                None,
                json.dumps({"DeploymentId": ident, "LifecycleEventHookExecutionId": execution_id}),
                {"X-Amz-Invocation-Type": "Event"},
                {},
            )
            if not answered.wait(self.settings.for_people(HOOK_TIMEOUT_SECONDS)):
                raise _RolledBack("HOOK_EXECUTION_FAILURE", f"{lifecycle} hook timed out")
            status = self._hook_status.get(execution_id)
            say(f"{lifecycle}: {status}", hook=lifecycle, status=status)
            if getattr(deployment, "stop_requested", False):
                raise _RolledBack("DEPLOYMENT_STOPPED", "The deployment was stopped")
            if status != "Succeeded":
                raise _RolledBack(
                    "HOOK_EXECUTION_FAILURE",
                    f"The deployment failed because the {lifecycle} lifecycle hook "
                    f"({hooks[lifecycle]}) reported {status}",
                )

        def bake(minutes: int) -> None:
            with self.timeline.span(
                CANARY_BAKE,
                ident,
                Kind.WAIT,
                projected=minutes * 60.0,
                expected=self.settings.scaled(minutes * 60),
                stack=True,
            ):
                watch(self.settings.scaled(minutes * 60))

        def watch(seconds: float) -> None:
            deadline = time.monotonic() + seconds
            while time.monotonic() < deadline:
                if getattr(deployment, "stop_requested", False):
                    raise _RolledBack("DEPLOYMENT_STOPPED", "The deployment was stopped")
                firing = [n for n in alarm_names if self.alarms.evaluate(n) == "ALARM"]
                if firing:
                    raise _RolledBack(
                        "ALARM_ACTIVE",
                        f"Deployment stopped because alarm(s) {', '.join(firing)} fired",
                    )
                time.sleep(min(0.1, max(0.01, deadline - time.monotonic())))

        kind, percent, minutes = traffic_routing(deployment.deployment_config_name)
        say(f"{deployment.deployment_config_name}: version {current} -> {target}")
        # CodeDeploy's own start, which the local cloud does not sleep for
        self.timeline.instant(DEPLOYMENT_START, ident, aws_seconds(DEPLOYMENT_START), stack=True)
        try:
            run_hook("BeforeAllowTraffic")
            if kind == "TimeBasedCanary" and percent and minutes:
                route(percent / 100)
                bake(minutes)
            elif kind == "TimeBasedLinear" and percent and minutes:
                for step in range(percent, 100, percent):
                    route(step / 100)
                    bake(minutes)
            route(1.0)
            run_hook("AfterAllowTraffic")
            deployment.status = "Succeeded"
            say("Succeeded")
        except Exception as exc:
            stopped = getattr(deployment, "stop_requested", False)
            route(0.0)
            code = exc.code if isinstance(exc, _RolledBack) else "INTERNAL_ERROR"
            deployment.error_information = {"code": code, "message": str(exc)}
            deployment.rollback_info = {
                "rollbackMessage": f"Automatic rollback: {alias} is back on version {current}"
            }
            deployment.status = "Stopped" if stopped else "Failed"
            say(f"{deployment.status}, rolled back: {exc}", reason=str(exc))
        deployment.complete_time = datetime.now(UTC)


# ---------------------------------------------------------------------------- the wire
_create_deployment = CodeDeployBackend.create_deployment
_deployment_info = codedeploy_responses._deployment_info


def deployment_info(deployment: Any, *, sha256_only: bool = False) -> dict[str, Any]:
    """``GetDeployment``'s ``deploymentInfo``: moto's, with the error and rollback CodeDeploy
    reports, and with ``sha256_only`` the AppSpec as CloudFormation's deployments show it on AWS
    (``{"appSpecContent": {"sha256": ...}}``, no content)."""
    described: dict[str, Any] = _deployment_info(deployment)
    if getattr(deployment, "error_information", None):
        described["errorInformation"] = deployment.error_information
    if getattr(deployment, "rollback_info", None):
        described["rollbackInfo"] = deployment.rollback_info
    digest = appspec_sha256(deployment.revision or {})
    if sha256_only and digest is not None:
        described["revision"] = {
            "revisionType": "AppSpecContent",
            "appSpecContent": {"sha256": digest},
        }
    return described


def get_application_revision(response: Any) -> ActionResult:
    """``GetApplicationRevision`` (moto has none) for the inline AppSpecs deployments were created
    with, found by sha256. The content comes back as a ``String`` revision: what hooks written
    against AWS read (``revision.string.content`` in seek-oss/aws-codedeploy-hooks,
    packages/infra/src/handlers/process/lambda/lambda.ts)."""
    backend: CodeDeployBackend = response.codedeploy_backend
    application_name = response._get_param("applicationName")
    backend.get_application(application_name)  # ApplicationDoesNotExistException
    digest = appspec_sha256(response._get_param("revision") or {})
    used = sorted(
        (
            d
            for d in backend.deployments.values()
            if d.application_name == application_name
            and digest is not None
            and appspec_sha256(d.revision or {}) == digest
        ),
        key=lambda d: d.create_time,
    )
    if not used:
        # The error code is CodeDeploy's (its API model); the wording is the local cloud's.
        raise CodeDeployException(
            "RevisionDoesNotExistException",
            f"No revision with sha256 {digest} is registered with application {application_name}",
        )
    return ActionResult(
        {
            "applicationName": application_name,
            "revision": {
                "revisionType": "String",
                "string": {"content": appspec_text(used[0].revision), "sha256": digest},
            },
            "revisionInfo": {
                "registerTime": used[0].create_time,
                "firstUsedTime": used[0].create_time,
                "lastUsedTime": used[-1].create_time,
            },
        }
    )


def install(emulator: CodeDeployEmulator) -> None:
    """Route moto's CodeDeploy to ``emulator`` (installing again replaces the previous one)."""

    def create(
        self: Any, application_name: str, deployment_group_name: str, *args: Any, **kwargs: Any
    ) -> str:
        with emulator.creating:  # two callers at once must not both find the group free
            running = [
                d.deployment_id
                for d in self.deployments.values()
                if d.application_name == application_name
                and d.deployment_group_name == deployment_group_name
                and d.status in ACTIVE
            ]
            if running:
                # AWS's words, as the CLI prints them: "An error occurred
                # (DeploymentLimitExceededException) when calling the CreateDeployment operation:
                # The Deployment Group 'x' already has an active Deployment 'd-id-x'"
                # (https://github.com/CircleCI-Public/aws-ecs-orb/issues/181; the pattern
                # webfactory/create-aws-codedeploy-deployment's src/action.js parses).
                raise CodeDeployException(
                    "DeploymentLimitExceededException",
                    f"The Deployment Group '{deployment_group_name}' already has an active "
                    f"Deployment '{running[0]}'",
                )
            deployment_id: str = _create_deployment(
                self, application_name, deployment_group_name, *args, **kwargs
            )
        deployment = self.deployments[deployment_id]
        threading.Thread(target=emulator.run, args=(self, deployment), daemon=True).start()
        return deployment_id

    def info(deployment: Any) -> dict[str, Any]:
        return deployment_info(deployment, sha256_only=emulator.get_deployment_sha256_only)

    def put_lifecycle_event_hook_execution_status(response: Any) -> Any:
        execution_id = response._get_param("lifecycleEventHookExecutionId")
        response.codedeploy_backend.get_deployment(response._get_param("deploymentId"))
        emulator.hook_answered(execution_id, response._get_param("status"))
        return ActionResult({"lifecycleEventHookExecutionId": execution_id})

    def get_deployment_config(response: Any) -> Any:
        name = response._get_param("deploymentConfigName")
        kind, percent, minutes = traffic_routing(name)
        routing: dict[str, Any] = {"type": kind}
        if kind == "TimeBasedCanary":
            routing["timeBasedCanary"] = {"canaryPercentage": percent, "canaryInterval": minutes}
        elif kind == "TimeBasedLinear":
            routing["timeBasedLinear"] = {"linearPercentage": percent, "linearInterval": minutes}
        return ActionResult(
            {
                "deploymentConfigInfo": {
                    "deploymentConfigName": name,
                    "computePlatform": "Lambda",
                    "trafficRoutingConfig": routing,
                }
            }
        )

    def stop_deployment(response: Any) -> Any:
        deployment = response.codedeploy_backend.get_deployment(response._get_param("deploymentId"))
        if deployment.status in ("Succeeded", "Failed", "Stopped"):
            raise CodeDeployException(
                "DeploymentAlreadyCompletedException",
                f"The deployment {deployment.deployment_id} has already completed.",
            )
        # Stopped once the deployment has rolled back, not before: whoever waits for the status
        # then finds the alias back on its version.
        deployment.stop_requested = True
        return ActionResult({"status": "Pending", "statusMessage": "Stopping the deployment"})

    replace(CodeDeployBackend, "create_deployment", create)
    replace(codedeploy_responses, "_deployment_info", info)
    response_class = codedeploy_responses.CodeDeployResponse
    replace(
        response_class,
        "put_lifecycle_event_hook_execution_status",
        put_lifecycle_event_hook_execution_status,
    )
    replace(response_class, "get_deployment_config", get_deployment_config)
    replace(response_class, "stop_deployment", stop_deployment)
    replace(response_class, "get_application_revision", get_application_revision)
