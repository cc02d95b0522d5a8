"""CodeDeploy for the local cloud: Lambda deployments run as the deployment group says.

moto records deployments but never runs them. Here a deployment runs BeforeAllowTraffic, shifts
the alias's routing weight (canary or linear steps), bakes while watching the group's alarms, goes
to 100%, runs AfterAllowTraffic, and rolls back automatically on a failed hook, an alarm or a
stop. ``GetDeployment`` and ``PutLifecycleEventHookExecutionStatus`` answer like CodeDeploy.
"""

from __future__ import annotations

import json
import re
import threading
import time
import uuid
from datetime import UTC, datetime
from typing import Any

from moto.awslambda.utils import get_backend as lambda_backend
from moto.codedeploy import responses as codedeploy_responses
from moto.codedeploy.exceptions import CodeDeployException
from moto.codedeploy.models import CodeDeployBackend
from moto.core.responses import ActionResult

from safe_deploy.localcloud.metrics import Alarms
from safe_deploy.localcloud.patching import replace
from safe_deploy.localcloud.state import ActivityFeed, LocalSettings

HOOK_TIMEOUT_SECONDS = 3600.0
_CONFIG = re.compile(
    r"^CodeDeployDefault\.Lambda(Canary|Linear)(\d+)Percent(?:Every)?(\d+)Minutes?$"
)


class _RolledBack(Exception):
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


class CodeDeployEmulator:
    def __init__(self, settings: LocalSettings, feed: ActivityFeed, alarms: Alarms) -> None:
        self.settings = settings
        self.feed = feed
        self.alarms = alarms
        self._hooks: dict[str, threading.Event] = {}
        self._hook_status: dict[str, str] = {}
        self._lock = threading.Lock()

    def hook_answered(self, execution_id: str, status: str) -> None:
        with self._lock:
            self._hook_status[execution_id] = status
            event = self._hooks.get(execution_id)
        if event is not None:
            event.set()

    def run(self, backend: CodeDeployBackend, deployment: Any) -> None:
        lam = lambda_backend(backend.account_id, backend.region_name)
        content = json.loads(deployment.revision["appSpecContent"]["content"])
        properties = next(iter(content["Resources"][0].values()))["Properties"]
        hooks = {k: v for hook in content.get("Hooks", []) for k, v in hook.items()}
        function, alias = properties["Name"], properties["Alias"]
        current, target = str(properties["CurrentVersion"]), str(properties["TargetVersion"])
        group = deployment.deployment_group
        alarm_config = group.alarm_configuration or {}
        alarm_names = (
            [a["name"] for a in alarm_config.get("alarms", [])]
            if alarm_config.get("enabled")
            else []
        )
        ident = deployment.deployment_id

        def say(message: str, **data: Any) -> None:
            self.feed.emit("codedeploy", f"{ident}: {message}", deployment=ident, **data)

        def route(weight: float) -> None:
            if weight >= 1.0:
                lam.update_alias(alias, function, target, None, {"AdditionalVersionWeights": {}})
            elif weight <= 0.0:
                lam.update_alias(alias, function, current, None, {"AdditionalVersionWeights": {}})
            else:
                lam.update_alias(
                    alias, function, current, None, {"AdditionalVersionWeights": {target: weight}}
                )
            say(f"{weight:.0%} of {alias} traffic on version {target}", weight=weight)

        def run_hook(lifecycle: str) -> None:
            if lifecycle not in hooks:
                return
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
            if not answered.wait(self.settings.scaled(HOOK_TIMEOUT_SECONDS)):
                raise _RolledBack("HOOK_EXECUTION_FAILURE", f"{lifecycle} hook timed out")
            status = self._hook_status.get(execution_id)
            say(f"{lifecycle}: {status}", hook=lifecycle, status=status)
            if status != "Succeeded":
                raise _RolledBack(
                    "HOOK_EXECUTION_FAILURE",
                    f"The deployment failed because the {lifecycle} lifecycle hook "
                    f"({hooks[lifecycle]}) reported {status}",
                )

        def bake(minutes: int) -> None:
            deadline = time.monotonic() + self.settings.scaled(minutes * 60)
            while time.monotonic() < deadline:
                if deployment.status == "Stopped":
                    raise _RolledBack("DEPLOYMENT_STOPPED", "The deployment was stopped")
                firing = [n for n in alarm_names if self.alarms.evaluate(n) == "ALARM"]
                if firing:
                    raise _RolledBack(
                        "ALARM_ACTIVE",
                        f"Deployment stopped because alarm(s) {', '.join(firing)} fired",
                    )
                time.sleep(min(0.1, max(0.01, deadline - time.monotonic())))

        kind, percent, minutes = traffic_routing(deployment.deployment_config_name)
        deployment.status = "InProgress"
        deployment.start_time = datetime.now(UTC)
        say(f"{deployment.deployment_config_name}: version {current} -> {target}")
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
            stopped = deployment.status == "Stopped"
            route(0.0)
            code = exc.code if isinstance(exc, _RolledBack) else "INTERNAL_ERROR"
            deployment.error_information = {"code": code, "message": str(exc)}
            deployment.rollback_info = {
                "rollbackMessage": f"Automatic rollback: {alias} is back on version {current}"
            }
            deployment.status = "Stopped" if stopped else "Failed"
            say(f"{deployment.status}, rolled back: {exc}", reason=str(exc))
        deployment.complete_time = datetime.now(UTC)


_create_deployment = CodeDeployBackend.create_deployment
_deployment_info = codedeploy_responses._deployment_info


def install(emulator: CodeDeployEmulator) -> None:
    """Route moto's CodeDeploy to ``emulator`` (installing again replaces the previous one)."""

    def create(
        self: Any, application_name: str, deployment_group_name: str, *args: Any, **kwargs: Any
    ) -> str:
        running = [
            d.deployment_id
            for d in self.deployments.values()
            if d.application_name == application_name
            and d.deployment_group_name == deployment_group_name
            and d.status in ("Created", "Queued", "InProgress", "Ready")
        ]
        if running:
            raise CodeDeployException(
                "DeploymentLimitExceededException",
                f"The deployment group already has an active deployment: {running[0]}",
            )
        deployment_id: str = _create_deployment(
            self, application_name, deployment_group_name, *args, **kwargs
        )
        deployment = self.deployments[deployment_id]
        threading.Thread(target=emulator.run, args=(self, deployment), daemon=True).start()
        return deployment_id

    def info(deployment: Any) -> dict[str, Any]:
        described: dict[str, Any] = _deployment_info(deployment)
        if getattr(deployment, "error_information", None):
            described["errorInformation"] = deployment.error_information
        if getattr(deployment, "rollback_info", None):
            described["rollbackInfo"] = deployment.rollback_info
        return described

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
        deployment.status = "Stopped"
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
