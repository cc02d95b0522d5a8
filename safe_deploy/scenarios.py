"""The demo's failure scenarios, in one registry: what goes wrong in each, how the demo arranges
it, what a person decides, and how the run must end. The demo (``safe-deploy demo --scenario``),
the end-to-end tests and the README's table all read it; a test checks the README agrees."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum


class Decision(StrEnum):
    """What the reviewer does with month 2's approval request."""

    NONE = "none"  # the run stops before it asks anyone
    APPROVE = "approve"
    REJECT = "reject"
    SILENCE = "silence"  # nobody answers: the approval window closes


class Fault(StrEnum):
    """What green does wrong (``LocalCloud.faults``)."""

    IMPLAUSIBLE = "implausible"  # answers a fare no ride costs: the pre-traffic hook refuses it
    ERRORS = "errors"  # fails every request once traffic reaches it: the alarm rolls back
    NO_CAPTURE = "no-capture"  # serves but writes no capture: the post-traffic hook fails


@dataclass(frozen=True)
class Scenario:
    name: str
    description: str  # the stage line: what goes wrong
    goes_wrong: str  # the README's "what goes wrong"
    ends: str  # the README's "how it ends"
    error: str  # the run's error
    cause_holds: str  # words the run's cause holds
    decision: Decision
    parameters: dict[str, str] = field(default_factory=dict)  # stack parameter overrides
    hyperparameters: dict[str, str] = field(default_factory=dict)  # set in SSM before month 2
    drift: str | None = None  # month 2's synthetic drift
    fault: Fault | None = None
    # the fault starts once the pre-traffic hook passed (green must pass it to get traffic)
    fault_after_pre_traffic: bool = False

    @property
    def needs_traffic(self) -> bool:
        """Clients call while green is released: a canary and its rollback are watched."""
        return self.decision is Decision.APPROVE

    @property
    def registered(self) -> bool:
        """The candidate passed the gate, so the model registry has a version of it."""
        return self.error not in ("TrainingJobFailed", "ModelRejected")


REGISTRY: tuple[Scenario, ...] = (
    Scenario(
        "training-fails",
        "month 2's training job is given a hyperparameter XGBoost refuses",
        "a hyperparameter XGBoost refuses",
        "`TrainingJobFailed: ClientError: hyperparameter eta='fast' is not a number`",
        "TrainingJobFailed",
        "eta",
        Decision.NONE,
        hyperparameters={"eta": "fast"},
    ),
    Scenario(
        "gate-rejects",
        "month 2 has 35% fare inflation: fares far above what production expects",
        "month 2 has 35% fare inflation",
        "`ModelRejected: for the same trips fares are 32% higher than the production model "
        "… expects …; review the data`",
        "ModelRejected",
        "higher than the production model",
        Decision.NONE,
        drift="fare-inflation",
    ),
    Scenario(
        "approval-rejected",
        "the reviewer rejects month 2's model on the approval page",
        "the reviewer rejects on the page",
        "`ApprovalRejected: rejected by demo reviewer: …`",
        "ApprovalRejected",
        "rejected by demo reviewer",
        Decision.REJECT,
    ),
    Scenario(
        "approval-times-out",
        "nobody answers month 2's approval request",
        "nobody answers (10 min, scaled)",
        "`ApprovalTimedOut`; the dev endpoint is deleted and reviewers are told",
        "ApprovalTimedOut",
        "no decision within 600 seconds",
        Decision.SILENCE,
        parameters={"ApprovalTimeoutSeconds": "600"},
    ),
    Scenario(
        "pre-traffic-fails",
        "green answers an implausible fare to the pre-traffic hook",
        "green answers an implausible fare",
        "CodeDeploy fails the `BeforeAllowTraffic` hook; no traffic ever reaches green",
        "DeploymentFailed",
        "BeforeAllowTraffic",
        Decision.APPROVE,
        fault=Fault.IMPLAUSIBLE,
    ),
    Scenario(
        "green-errors",
        "green fails requests during the canary bake: the alarm rolls back",
        "green fails requests while it bakes",
        "the candidate-errors alarm fires and CodeDeploy rolls back; clients are answered by blue",
        "DeploymentFailed",
        "CandidateEndpointErrorsAlarm",
        Decision.APPROVE,
        fault=Fault.ERRORS,
        fault_after_pre_traffic=True,
    ),
    Scenario(
        "no-capture",
        "green serves but writes no capture: the post-traffic hook fails",
        "green serves but writes no capture",
        "the `AfterAllowTraffic` hook fails and CodeDeploy rolls back",
        "DeploymentFailed",
        "AfterAllowTraffic",
        Decision.APPROVE,
        fault=Fault.NO_CAPTURE,
    ),
)
SCENARIOS: dict[str, Scenario] = {s.name: s for s in REGISTRY}
# what a scenario's stack is deployed with, beside the template's defaults
SCENARIO_PARAMETERS = {s.name: s.parameters for s in REGISTRY if s.parameters}


def readme_table() -> list[str]:
    """The README's table of scenarios, as its lines."""
    return [
        "| scenario | what goes wrong | how it ends |",
        "|---|---|---|",
        *(f"| `{s.name}` | {s.goes_wrong} | {s.ends} |" for s in REGISTRY),
    ]
