"""Where a run's stages begin, read through the AWS APIs (the local cloud's or AWS's own): the
training and deploy executions' histories, and on AWS the promotion's CodeDeploy lifecycle
events for its traffic shifts."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import datetime
from typing import Any

from botocore.exceptions import ClientError
from pipeline_common.layout import execution_arn

from safe_deploy.localcloud.timeline.recorder import Shift
from safe_deploy.localcloud.timeline.stages import Boundaries

GATE_STATE = "Evaluate"  # the gate: the candidate's verdict (training.asl.json)
APPROVAL_STATE = "RequestApproval"  # the person's wait (.waitForTaskToken)
HISTORY_PAGE = 1000  # Step Functions' largest page


class RunNotFound(LookupError):
    """No training execution has the run's name."""


def _seconds(moment: datetime | None) -> float | None:
    return moment.timestamp() if moment is not None else None


def _events(sfn: Any, arn: str) -> Iterator[dict[str, Any]]:
    request: dict[str, Any] = {"executionArn": arn, "maxResults": HISTORY_PAGE}
    while True:
        page = sfn.get_execution_history(**request)
        yield from page["events"]
        if not page.get("nextToken"):
            return
        request["nextToken"] = page["nextToken"]


def _describe(sfn: Any, arn: str) -> dict[str, Any] | None:
    try:
        described: dict[str, Any] = sfn.describe_execution(executionArn=arn)
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") == "ExecutionDoesNotExist":
            return None
        raise
    return described


def run_boundaries(sfn: Any, training_machine: str, deploy_machine: str, run: str) -> Boundaries:
    """The run's training execution from start to end, with the moments its gate began, its
    approval was asked for and decided, and its promotion (the deploy execution of the same
    name) ran."""
    training = _describe(sfn, execution_arn(training_machine, run))
    if training is None:
        raise RunNotFound(f"no pipeline run named {run}")
    entered = [
        (str(event["stateEnteredEventDetails"]["name"]), event["timestamp"])
        for event in _events(sfn, training["executionArn"])
        if event.get("stateEnteredEventDetails")
    ]
    gate = next((at for name, at in entered if name == GATE_STATE), None)
    asked = [index for index, (name, _) in enumerate(entered) if name == APPROVAL_STATE]
    requested = entered[asked[-1]][1] if asked else None
    decided = entered[asked[-1] + 1][1] if asked and asked[-1] + 1 < len(entered) else None
    promotion = _describe(sfn, execution_arn(deploy_machine, run))
    return Boundaries(
        started=training["startDate"].timestamp(),
        ended=_seconds(training.get("stopDate")),
        gate=_seconds(gate),
        approval_requested=_seconds(requested),
        decided=_seconds(decided),
        promotion_started=_seconds(promotion["startDate"]) if promotion else None,
        promotion_ended=_seconds(promotion.get("stopDate")) if promotion else None,
    )


_FIRST_SHIFT = re.compile(r"(?:Canary|Linear)(\d+)Percent")


def first_shift_weight(config_name: str) -> float:
    """The share of traffic a deployment configuration moves first (``AllAtOnce``: all)."""
    match = _FIRST_SHIFT.search(config_name)
    return int(match.group(1)) / 100 if match else 1.0


def deployment_shifts(codedeploy: Any, deployment_id: str) -> list[Shift]:
    """A Lambda deployment's traffic shifts from its ``AllowTraffic`` lifecycle event: traffic
    starts moving when it starts and is all on the new version (or back on the old) when it
    ends. Empty where CodeDeploy does not say."""
    info = codedeploy.get_deployment(deploymentId=deployment_id)["deploymentInfo"]
    first = first_shift_weight(str(info.get("deploymentConfigName") or ""))
    shifts = []
    targets = codedeploy.list_deployment_targets(deploymentId=deployment_id).get("targetIds", [])
    for target_id in targets:
        target = codedeploy.get_deployment_target(deploymentId=deployment_id, targetId=target_id)
        events = ((target.get("deploymentTarget") or {}).get("lambdaTarget") or {}).get(
            "lifecycleEvents"
        ) or []
        for event in events:
            if event.get("lifecycleEventName") != "AllowTraffic" or not event.get("startTime"):
                continue
            shifts.append(Shift(event["startTime"].timestamp(), deployment_id, first))
            if event.get("endTime") and event.get("status") in ("Succeeded", "Failed"):
                weight = 1.0 if event["status"] == "Succeeded" else 0.0
                shifts.append(Shift(event["endTime"].timestamp(), deployment_id, weight))
    return shifts
