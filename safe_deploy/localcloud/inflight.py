"""What a local cloud has in flight: pipeline runs, deployments, endpoints.

The local cloud keeps its state in memory, so stopping it loses all of this. ``local down`` and
``local status`` show it first, and a stopped local cloud writes it down, so that the next start
can say plainly what it did not keep. It is read through the AWS APIs alone, the same way from the
local cloud's own process and from another one.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

# CodeDeploy's statuses of a deployment that has not finished.
DEPLOYMENT_ACTIVE = ("Created", "Queued", "InProgress", "Baking", "Ready")


@dataclass(frozen=True)
class Execution:
    name: str
    state_machine: str
    step: str | None  # the state it entered last


@dataclass(frozen=True)
class Deployment:
    id: str
    status: str
    group: str


@dataclass
class InFlight:
    executions: list[Execution] = field(default_factory=list)
    deployments: list[Deployment] = field(default_factory=list)
    endpoints: list[str] = field(default_factory=list)  # InService

    @property
    def empty(self) -> bool:
        return not (self.executions or self.deployments or self.endpoints)

    def summary(self) -> str:
        """One phrase: "1 run in flight: fare-...; 2 endpoints InService: ..."."""
        if self.empty:
            return "nothing in flight"
        parts = []
        if self.executions:
            parts.append(
                _count(len(self.executions), "run")
                + " in flight: "
                + ", ".join(e.name for e in self.executions)
            )
        if self.deployments:
            parts.append(
                _count(len(self.deployments), "deployment")
                + " in progress: "
                + ", ".join(d.id for d in self.deployments)
            )
        if self.endpoints:
            parts.append(
                _count(len(self.endpoints), "endpoint") + " InService: " + ", ".join(self.endpoints)
            )
        return "; ".join(parts)

    def to_json(self) -> dict[str, Any]:
        return {
            "executions": [vars(e) for e in self.executions],
            "deployments": [vars(d) for d in self.deployments],
            "endpoints": list(self.endpoints),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> InFlight:
        return cls(
            [Execution(**e) for e in data.get("executions", [])],
            [Deployment(**d) for d in data.get("deployments", [])],
            list(data.get("endpoints", [])),
        )


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


def read_in_flight(client: Callable[[str], Any]) -> InFlight:
    """What runs now, through ``client(service)``: boto3 clients of the local cloud."""
    return InFlight(
        running_executions(client("stepfunctions")),
        active_deployments(client("codedeploy")),
        endpoints_in_service(client("sagemaker")),
    )


def running_executions(sfn: Any) -> list[Execution]:
    found = []
    for page in sfn.get_paginator("list_state_machines").paginate():
        for machine in page["stateMachines"]:
            for listed in sfn.get_paginator("list_executions").paginate(
                stateMachineArn=machine["stateMachineArn"], statusFilter="RUNNING"
            ):
                for execution in listed["executions"]:
                    step = _last_step(sfn, execution["executionArn"])
                    found.append(Execution(execution["name"], machine["name"], step))
    return found


def _last_step(sfn: Any, arn: str) -> str | None:
    """The state the execution entered last: its current step."""
    step = None
    for page in sfn.get_paginator("get_execution_history").paginate(executionArn=arn):
        for event in page["events"]:
            details = event.get("stateEnteredEventDetails")
            if details:
                step = str(details["name"])
    return step


def active_deployments(codedeploy: Any) -> list[Deployment]:
    ids = codedeploy.list_deployments(includeOnlyStatuses=list(DEPLOYMENT_ACTIVE)).get(
        "deployments", []
    )
    found = []
    for deployment_id in ids:
        info = codedeploy.get_deployment(deploymentId=deployment_id)["deploymentInfo"]
        if info.get("status") in DEPLOYMENT_ACTIVE:
            found.append(
                Deployment(deployment_id, str(info["status"]), str(info.get("deploymentGroupName")))
            )
    return found


def endpoints_in_service(sagemaker: Any) -> list[str]:
    names: list[str] = []
    for page in sagemaker.get_paginator("list_endpoints").paginate(StatusEquals="InService"):
        names.extend(str(e["EndpointName"]) for e in page["Endpoints"])
    return sorted(names)
