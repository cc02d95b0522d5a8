"""Following the pipeline while a person waits: an upload's run up to the moment it needs a
decision, and a promotion up to the moment it needs client traffic.

``upload-data`` and ``approve`` use these, so a scripted session (the README's) moves on exactly
when the next command has something to act on, and a person sees each step as it happens.
The same calls work against AWS and the local cloud: Step Functions histories, the approvals
table, the ``live`` alias and CodeDeploy's deployments.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from botocore.exceptions import ClientError
from pipeline_common.layout import execution_arn, is_rollback, model_id_for

from safe_deploy.target import Target, TargetError

LIVE_ALIAS = "live"
PROMOTION_STATE = "DeployToProduction"  # the training run's state that runs the deploy machine
ACTIVE_DEPLOYMENTS = ["Created", "Queued", "InProgress", "Baking", "Ready"]


def run_name_for_upload(target: Target, bucket: str, key: str, version_id: str | None) -> str:
    """The run an upload starts is named after the object version (start_pipeline's rule)."""
    return model_id_for(target.output("NamePrefix"), bucket, key, version_id)


@dataclass
class Stop:
    """Why following ended: ``what`` is one of ``approval``, ``traffic``, ``done``, ``failed``,
    ``missing``, ``gave-up``; ``facts`` are what the person should see next."""

    what: str
    facts: dict[str, Any] = field(default_factory=dict)


class History:
    """An execution's history, reporting each state when first entered. Each poll reads only the
    events since the last one: newest first, a page at a time, down to the last event it saw
    (Step Functions numbers an execution's events from 1, in order)."""

    PAGE = 20

    def __init__(self, sfn: Any, arn: str) -> None:
        self.sfn = sfn
        self.arn = arn
        self.seen: set[str] = set()
        self.outputs: dict[str, Any] = {}
        self.last_id = 0
        self.last_entered: str | None = None  # the state the execution is in, or ended in

    def _new_events(self) -> list[dict[str, Any]]:
        newer: list[dict[str, Any]] = []
        pages = self.sfn.get_paginator("get_execution_history").paginate(
            executionArn=self.arn, reverseOrder=True, PaginationConfig={"PageSize": self.PAGE}
        )
        for page in pages:
            fresh = [e for e in page["events"] if int(e["id"]) > self.last_id]
            newer.extend(fresh)
            if len(fresh) < len(page["events"]):
                break
        newer.sort(key=lambda e: int(e["id"]))
        if newer:
            self.last_id = int(newer[-1]["id"])
        return newer

    def new_states(self) -> Iterator[str]:
        for event in self._new_events():
            exited = event.get("stateExitedEventDetails")
            if exited and "output" in exited:
                self.outputs[exited["name"]] = exited["output"]
            entered = event.get("stateEnteredEventDetails")
            if entered:
                self.last_entered = str(entered["name"])
            if entered and entered["name"] not in self.seen:
                self.seen.add(entered["name"])
                yield str(entered["name"])

    def output_of(self, state: str) -> dict[str, Any]:
        try:
            value = json.loads(self.outputs.get(state) or "{}")
        except ValueError:
            return {}
        return value if isinstance(value, dict) else {}


class Follower:
    """Polls the pipeline and tells ``say`` each step; returns a ``Stop`` saying what is next."""

    def __init__(
        self,
        target: Target,
        say: Callable[[str], None],
        poll_seconds: float = 1.0,
        timeout_seconds: float = 3600.0,
    ) -> None:
        self.target = target
        self.say = say
        self.poll = poll_seconds
        self.timeout = timeout_seconds
        self.sfn = target.client("stepfunctions")

    # ------------------------------------------------------------------ a run up to approval
    def run(
        self, name: str, appear_seconds: float = 120.0, through_promotion: bool = False
    ) -> Stop:
        """The training run ``name`` until it waits for approval, fails or ends; with
        ``through_promotion``, a run that reaches its promotion is followed to the end of it."""
        arn = execution_arn(self.target.output("TrainingStateMachineArn"), name)
        if not self._wait_for_execution(arn, appear_seconds):
            return Stop("missing", {"run": name})
        history = History(self.sfn, arn)
        deadline = time.monotonic() + self.timeout
        while time.monotonic() < deadline:
            described = self.sfn.describe_execution(executionArn=arn)  # then every state to here
            for state in history.new_states():
                self.say(f"{name}: {state}")
            if through_promotion and PROMOTION_STATE in history.seen:
                return self.promotion(name, appear_seconds, stop_for_traffic=False)
            if described["status"] != "RUNNING":
                return self._ended(name, described)
            approval = self._pending_approval(arn)
            if approval is not None:
                evaluation = history.output_of("Evaluate").get("gate", {}).get("evaluation", {})
                test = history.output_of("TestDevEndpoint")
                return Stop(
                    "approval",
                    {"run": name, "approval": approval, "evaluation": evaluation, "test": test},
                )
            time.sleep(self.poll)
        return Stop("gave-up", {"run": name})

    def _wait_for_execution(self, arn: str, seconds: float) -> bool:
        deadline = time.monotonic() + seconds
        while True:
            try:
                self.sfn.describe_execution(executionArn=arn)
                return True
            except ClientError as exc:
                if exc.response["Error"]["Code"] != "ExecutionDoesNotExist":
                    raise
            if time.monotonic() >= deadline:
                return False
            time.sleep(self.poll)

    def _pending_approval(self, execution_arn: str) -> dict[str, Any] | None:
        from safe_deploy import ops

        approval = ops.approval_of(self.target, execution_arn)
        return approval if approval and approval.get("status") == "PENDING" else None

    def _ended(self, name: str, described: dict[str, Any]) -> Stop:
        status = str(described["status"])
        facts = {
            "run": name,
            "status": status,
            "error": described.get("error"),
            "cause": described.get("cause"),
        }
        return Stop("done" if status == "SUCCEEDED" else "failed", facts)

    # ------------------------------------------------------------------ a promotion
    def promotion(
        self, name: str, appear_seconds: float = 120.0, stop_for_traffic: bool = True
    ) -> Stop:
        """The promotion of run ``name`` until it needs client traffic, fails or ends.

        The post-traffic hook judges green by its own capture of client requests, so once
        CodeDeploy has moved ``live`` to the new version and the deployment is still running,
        the person's next step is to send traffic: following stops there (or, with
        ``stop_for_traffic=False``, says so once and goes on to the end).
        """
        deploy_arn = execution_arn(self.target.output("DeployStateMachineArn"), name)
        lam = self.target.client("lambda")
        function = self.target.output("PredictFunctionName")
        before = self._alias(lam, function)
        if not self._wait_for_execution(deploy_arn, appear_seconds):
            if is_rollback(name):  # no training run of its name
                return Stop("missing", {"run": name, "promotion": True})
            training = self.sfn.describe_execution(
                executionArn=execution_arn(self.target.output("TrainingStateMachineArn"), name)
            )
            if training["status"] != "RUNNING":
                return self._ended(name, training)
            return Stop("missing", {"run": name, "promotion": True})
        history = History(self.sfn, deploy_arn)
        shown = before
        told = False
        deadline = time.monotonic() + self.timeout
        while time.monotonic() < deadline:
            described = self.sfn.describe_execution(executionArn=deploy_arn)
            for state in history.new_states():
                self.say(f"promotion: {state}")
            alias = self._alias(lam, function)
            if alias != shown:
                self.say(f"live: {_routing(alias)}")
                shown = alias
            if described["status"] != "RUNNING":
                ended = self._ended(name, described)
                ended.facts["promotion"] = True
                return ended
            if not told and alias[0] != before[0] and not alias[1] and self._deployment_running():
                needs = Stop("traffic", {"run": name, **self._hook_needs()})
                if stop_for_traffic:
                    return needs
                self.say(traffic_hint(needs.facts))
                told = True
            time.sleep(self.poll)
        return Stop("gave-up", {"run": name, "promotion": True})

    @staticmethod
    def _alias(lam: Any, function: str) -> tuple[str, dict[str, float]]:
        alias = lam.get_alias(FunctionName=function, Name=LIVE_ALIAS)
        weights = (alias.get("RoutingConfig") or {}).get("AdditionalVersionWeights") or {}
        return str(alias["FunctionVersion"]), {str(k): float(v) for k, v in weights.items()}

    def _deployment_running(self) -> bool:
        codedeploy = self.target.client("codedeploy")
        running = codedeploy.list_deployments(
            applicationName=self.target.output("CodeDeployApplicationName"),
            deploymentGroupName=self.target.output("DeploymentGroupName"),
            includeOnlyStatuses=ACTIVE_DEPLOYMENTS,
        ).get("deployments", [])
        return bool(running)

    def _hook_needs(self) -> dict[str, Any]:
        """How many client requests the post-traffic hook wants, and how long it waits."""
        needs: dict[str, Any] = {}
        stack = self.target.describe_stack()
        for parameter in stack.get("Parameters", []):
            if parameter["ParameterKey"] == "MinCapturedRequests":
                needs["requests"] = int(parameter["ParameterValue"])
        try:
            resource = self.target.client("cloudformation").describe_stack_resource(
                StackName=stack["StackName"], LogicalResourceId="PostTrafficHookFunction"
            )["StackResourceDetail"]
            configuration = self.target.client("lambda").get_function_configuration(
                FunctionName=resource["PhysicalResourceId"]
            )
            wait = configuration["Environment"]["Variables"]["CAPTURE_WAIT_SECONDS"]
            needs["wait_seconds"] = float(wait)
        except (ClientError, KeyError, ValueError):
            pass  # the message then leaves the wait out
        return needs


def traffic_hint(facts: dict[str, Any]) -> str:
    """What the post-traffic hook waits for, and the command that gives it."""
    wants = facts.get("requests")
    within = facts.get("wait_seconds")
    return (
        f"{facts.get('run', '')}: the new model takes all of live's traffic, and the post-traffic "
        f"hook now checks its capture: it needs {wants if wants is not None else 'some'} client "
        "requests through the API"
        + (f" within {_duration(within)}" if within is not None else "")
        + ". Send them: `safe-deploy traffic --requests 100`"
    )


def _duration(seconds: float) -> str:
    return f"{seconds / 60:g} min" if seconds >= 120 else f"{seconds:g} s"


def newest_run(target: Target) -> str:
    """The name of the most recent training run."""
    executions = target.client("stepfunctions").list_executions(
        stateMachineArn=target.output("TrainingStateMachineArn"), maxResults=1
    )["executions"]
    if not executions:
        raise TargetError("no pipeline run yet: upload data with `safe-deploy upload-data FILE`")
    return str(executions[0]["name"])


def _routing(alias: tuple[str, dict[str, float]]) -> str:
    version, weights = alias
    if not weights:
        return f"version {version} takes all traffic"
    extra = ", ".join(f"version {v} {w:.0%}" for v, w in weights.items())
    return f"version {version} {1 - sum(weights.values()):.0%}, {extra}"


def pending_runs(target: Target, limit: int = 20) -> list[str]:
    """Names of the recent runs whose candidate waits for a decision."""
    from safe_deploy import ops

    sfn = target.client("stepfunctions")
    names = []
    for execution in sfn.list_executions(
        stateMachineArn=target.output("TrainingStateMachineArn"),
        statusFilter="RUNNING",
        maxResults=limit,
    )["executions"]:
        approval = ops.approval_of(target, execution["executionArn"])
        if approval and approval.get("status") == "PENDING":
            names.append(str(execution["name"]))
    return names


def the_pending_run(target: Target) -> str:
    """The one run awaiting a decision; refuses when there is none or more than one."""
    names = pending_runs(target)
    if not names:
        raise TargetError("no run is waiting for approval (see `safe-deploy status`)")
    if len(names) > 1:
        raise TargetError(
            f"{len(names)} runs are waiting for approval ({', '.join(names)}): name the one "
            "to decide"
        )
    return names[0]
