"""The release: which endpoint serves production, and whether everything agrees on it.

Two things say which endpoint serves. The production record (an SSM parameter) names the endpoint
the pipeline promoted last; the predict function's ``live`` alias serves through a version whose
``ENDPOINT_NAME`` is its own endpoint, or, when that is empty, the record's (``serving.route``).
Once a release ends they must agree and that endpoint must be up. :func:`check_release` is the
comparison, pure, shared by ``safe-deploy status`` and the scheduled ``release_check`` function;
:func:`read_release` reads what it compares, with the clients it is given.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools.utilities import parameters
from botocore.exceptions import ClientError

from pipeline_common.layout import NO_ENDPOINT
from pipeline_common.serving import NoModelYet, route

if TYPE_CHECKING:
    from mypy_boto3_cloudformation import CloudFormationClient
    from mypy_boto3_lambda import LambdaClient
    from mypy_boto3_sagemaker import SageMakerClient
    from mypy_boto3_ssm import SSMClient

LIVE_ALIAS = "live"  # the template's AutoPublishAlias
SERVING_PARAMETER = "ServingEndpoint"  # the stack parameter a promotion changes
# Stack outputs the release is found through (the CLI finds everything else the same way).
PREDICT_FUNCTION_OUTPUT = "PredictFunctionName"
PRODUCTION_PARAMETER_OUTPUT = "ProductionEndpointParameterName"
# SageMaker answers InvokeEndpoint in these: an endpoint is "Updating" while auto scaling changes
# its instance count, and that must not read as an outage.
SERVING_STATUSES = frozenset({"InService", "Updating", "SystemUpdating"})


def production_reader(parameter_name: str, max_age_seconds: float = 0) -> Callable[[], str]:
    """A function that reads the production endpoint's name (cached ``max_age_seconds``)."""

    def production_endpoint() -> str:
        return str(parameters.get_parameter(parameter_name, max_age=int(max_age_seconds)))

    return production_endpoint


# ---------------------------------------------------------------------------- what is compared
@dataclass(frozen=True)
class LiveVersion:
    """A predict version the live alias sends traffic to."""

    version: str
    weight: float  # its share of live's traffic
    endpoint_name: str  # its ENDPOINT_NAME; "" serves the endpoint the production record names


@dataclass(frozen=True)
class ReleaseState:
    """What the release looks like now, as read from AWS (or the local cloud)."""

    stack_name: str
    stack_status: str
    production_parameter: str  # the SSM parameter's name
    production_record: str  # its value: an endpoint name, or NO_ENDPOINT before any promotion
    live: tuple[LiveVersion, ...]  # live's own version first, then any it shifts traffic to
    # the status of every endpoint the record and the versions name; None: it does not exist
    endpoints: Mapping[str, str | None] = field(default_factory=dict)
    stack_parameters: tuple[str, ...] = ()  # every parameter of the stack, by name

    @property
    def record(self) -> str | None:
        return None if self.production_record in (NO_ENDPOINT, "") else self.production_record

    @property
    def shifting(self) -> bool:
        """The alias has routing weights: a CodeDeploy deployment is moving traffic."""
        return len(self.live) > 1

    def serves(self, version: LiveVersion) -> str | None:
        return endpoint_served(version.endpoint_name, self.production_record)


def endpoint_served(endpoint_name: str, production_record: str) -> str | None:
    """The endpoint a predict version answers from: its own ``ENDPOINT_NAME``, else the one the
    production record names (None: nothing was promoted yet). The predict function's own rule."""
    try:
        return route(endpoint_name, production_record).endpoint
    except NoModelYet:
        return None


def stack_busy(status: str) -> bool:
    """CloudFormation is changing the stack: a deploy, a promotion or a rollback is running."""
    return status.endswith("_IN_PROGRESS")


# ---------------------------------------------------------------------------- the comparison
class Verdict(StrEnum):
    CONSISTENT = "consistent"
    IN_PROGRESS = "in progress"  # a release is under way: nothing to compare yet
    MISMATCH = "mismatch"


@dataclass(frozen=True)
class Action:
    """Something an operator does: what and why, and the commands, each one line to copy."""

    what: str
    commands: tuple[str, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        return {"what": self.what, "commands": list(self.commands)}


# A running promotion ends by writing the record and retiring an endpoint: acting before it ends
# would be undone, or undo it.
WAIT_FOR_PROMOTIONS = (
    "Act once no promotion is running (the deploy state machine has no running execution)."
)


@dataclass(frozen=True)
class ReleaseCheck:
    verdict: Verdict
    summary: str  # one line: what the release is
    problems: tuple[str, ...] = ()  # what differs
    actions: tuple[Action, ...] = ()  # what to do about it (once WAIT_FOR_PROMOTIONS holds)
    serving: str | None = None  # the endpoint live serves
    record: str | None = None  # the endpoint the production record names

    @property
    def mismatch(self) -> bool:
        return self.verdict is Verdict.MISMATCH

    def as_dict(self) -> dict[str, Any]:
        return {
            "verdict": self.verdict.value,
            "summary": self.summary,
            "serving": self.serving,
            "record": self.record,
            "problems": list(self.problems),
            "actions": [a.as_dict() for a in self.actions],
            **({"before_acting": WAIT_FOR_PROMOTIONS} if self.actions else {}),
        }


def busy(stack_name: str, stack_status: str) -> ReleaseCheck:
    return ReleaseCheck(
        Verdict.IN_PROGRESS,
        f"stack {stack_name} is {stack_status}: a deploy, promotion or rollback is running",
    )


def check_release(state: ReleaseState) -> ReleaseCheck:
    """Whether the endpoint live serves is the one the production record names, and is up.

    Nothing is compared while the stack changes or the alias shifts traffic (a canary): the
    release is between two consistent states then.
    """
    record = state.record
    if stack_busy(state.stack_status):
        return busy(state.stack_name, state.stack_status)
    if state.shifting:
        split = ", ".join(
            f"version {v.version} ({v.weight:.0%}) serves {state.serves(v) or 'no model'}"
            for v in state.live
        )
        return ReleaseCheck(
            Verdict.IN_PROGRESS, f"live is shifting traffic: {split}", record=record
        )
    if not state.live:
        raise ValueError("the live alias points at no version")
    live = state.live[0]
    serving = state.serves(live)
    if serving is None:
        return ReleaseCheck(Verdict.CONSISTENT, "no model has been promoted yet")
    status = state.endpoints.get(serving)
    up = status in SERVING_STATUSES
    problems = []
    if serving != record:
        problems.append(
            f"live (version {live.version}) serves {serving}, but the production record "
            f"{state.production_parameter} names {record or f'no endpoint ({NO_ENDPOINT})'}"
        )
    if not up:
        problems.append(
            f"{serving}, the endpoint live (version {live.version}) serves, "
            + ("does not exist" if status is None else f"is {status}, not InService")
            + ": predictions fail"
        )
    if not problems:
        return ReleaseCheck(
            Verdict.CONSISTENT,
            f"live (version {live.version}) serves {serving} ({status}), as the production "
            "record says",
            serving=serving,
            record=record,
        )
    return ReleaseCheck(
        Verdict.MISMATCH,
        "; ".join(problems),
        tuple(problems),
        _remedies(state, live, serving, up),
        serving=serving,
        record=record,
    )


def _remedies(state: ReleaseState, live: LiveVersion, serving: str, up: bool) -> tuple[Action, ...]:
    record = state.record
    working_record = record if record and state.endpoints.get(record) in SERVING_STATUSES else None
    if up:  # live serves a working endpoint the record does not name
        skipped = ["the champion record", f"{serving}'s monitoring schedule"]
        states = ["RecordChampion", "StartMonitoringGreen"]
        if working_record:
            skipped.append(f"retiring {working_record}")
            states.append("RetireBlue")
        keep = Action(
            f"If {serving} is the model you want in production, record it. A promotion that "
            f"stopped after its traffic shift also skipped {_and(skipped)}: do what "
            f"deploy.asl.json's {_and(states)} states do.",
            (_record_command(state, serving),),
        )
        if working_record is None:
            return (keep,)
        revert = Action(
            f"Or serve {working_record} again, the record's (a canary: send client traffic, the "
            "post-traffic hook waits for it).",
            (_serve_command(state, working_record),),
        )
        return keep, revert
    if working_record is not None:
        return (
            Action(
                f"Serve {working_record} again ({state.endpoints.get(working_record)}, the "
                "production record's; a canary: send client traffic, the post-traffic hook "
                "waits for it).",
                (_serve_command(state, working_record),),
            ),
        )
    promote = (
        "No endpoint the release names is up. Promote a new model (`safe-deploy upload-data "
        "FILE`, then approve the candidate), or record an InService endpoint ENDPOINT"
    )
    if not live.endpoint_name:  # live's version serves whatever the record names
        return (
            Action(
                f"{promote} (live's version has no endpoint of its own: it serves the record's).",
                (_record_command(state, "ENDPOINT"),),
            ),
        )
    return (
        Action(
            f"{promote}, then bind live to it (in that order: outside a promotion, the "
            "pre-traffic hook accepts only the endpoint the record names).",
            (_record_command(state, "ENDPOINT"), _serve_command(state, "ENDPOINT")),
        ),
    )


def _and(items: list[str]) -> str:
    return ", ".join(items[:-1]) + f" and {items[-1]}" if len(items) > 1 else "".join(items)


def _record_command(state: ReleaseState, endpoint: str) -> str:
    return (
        f"aws ssm put-parameter --name {state.production_parameter} --type String "
        f"--overwrite --value {endpoint}"
    )


def _serve_command(state: ReleaseState, endpoint: str) -> str:
    """The stack update a promotion makes (deploy.asl.json's UpdateStack): one parameter
    changed, every other one kept, as UpdateStack gives an unnamed parameter its default."""
    values = [f"ParameterKey={SERVING_PARAMETER},ParameterValue={endpoint}"] + [
        f"ParameterKey={name},UsePreviousValue=true"
        for name in state.stack_parameters
        if name != SERVING_PARAMETER
    ]
    return (
        f"aws cloudformation update-stack --stack-name {state.stack_name} --use-previous-template "
        f"--capabilities CAPABILITY_IAM CAPABILITY_AUTO_EXPAND --parameters {' '.join(values)}"
    )


# ---------------------------------------------------------------------------- reading it
class ReleaseError(RuntimeError):
    """The stack does not show what the release is read through."""


def describe_stack(cloudformation: CloudFormationClient, stack_name: str) -> dict[str, Any]:
    stack = cloudformation.describe_stacks(StackName=stack_name)["Stacks"][0]
    return dict(stack)


def read_release(
    stack: Mapping[str, Any],
    *,
    lambda_client: LambdaClient,
    ssm: SSMClient,
    sagemaker: SageMakerClient,
) -> ReleaseState:
    """The release of a stack (a DescribeStacks entry): the live alias, each of its versions'
    ENDPOINT_NAME, the production record, and every endpoint they name."""
    outputs = {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])}
    missing = {PREDICT_FUNCTION_OUTPUT, PRODUCTION_PARAMETER_OUTPUT} - set(outputs)
    if missing:
        raise ReleaseError(
            f"stack {stack['StackName']} ({stack['StackStatus']}) has no output "
            f"{', '.join(sorted(missing))}"
        )
    function = outputs[PREDICT_FUNCTION_OUTPUT]
    parameter = outputs[PRODUCTION_PARAMETER_OUTPUT]
    record = ssm.get_parameter(Name=parameter)["Parameter"]["Value"]
    alias = lambda_client.get_alias(FunctionName=function, Name=LIVE_ALIAS)
    weights = {
        str(version): float(weight)
        for version, weight in (
            (alias.get("RoutingConfig") or {}).get("AdditionalVersionWeights") or {}
        ).items()
    }
    shares = {str(alias["FunctionVersion"]): 1.0 - sum(weights.values()), **weights}
    live = []
    for version, weight in shares.items():
        configuration = lambda_client.get_function_configuration(
            FunctionName=function, Qualifier=version
        )
        variables = (configuration.get("Environment") or {}).get("Variables") or {}
        live.append(LiveVersion(version, weight, variables.get("ENDPOINT_NAME", "")))
    named = {endpoint_served(v.endpoint_name, record) for v in live}
    if record != NO_ENDPOINT:
        named.add(record)
    endpoints = {name: endpoint_status(sagemaker, name) for name in sorted(n for n in named if n)}
    return ReleaseState(
        stack_name=str(stack["StackName"]),
        stack_status=str(stack["StackStatus"]),
        production_parameter=parameter,
        production_record=record,
        live=tuple(live),
        endpoints=endpoints,
        stack_parameters=tuple(p["ParameterKey"] for p in stack.get("Parameters", [])),
    )


def endpoint_status(sagemaker: SageMakerClient, name: str) -> str | None:
    """An endpoint's status; None when it does not exist."""
    try:
        return str(sagemaker.describe_endpoint(EndpointName=name)["EndpointStatus"])
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") == "ValidationException":
            return None  # SageMaker's "Could not find endpoint"
        raise


def release_check(
    stack_name: str,
    *,
    cloudformation: CloudFormationClient,
    lambda_client: LambdaClient,
    ssm: SSMClient,
    sagemaker: SageMakerClient,
) -> ReleaseCheck:
    """The scheduled check: nothing is read past the stack while CloudFormation changes it."""
    stack = describe_stack(cloudformation, stack_name)
    status = str(stack["StackStatus"])
    if stack_busy(status):
        return busy(stack_name, status)
    state = read_release(stack, lambda_client=lambda_client, ssm=ssm, sagemaker=sagemaker)
    return check_release(state)
