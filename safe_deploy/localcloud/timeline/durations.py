"""How long AWS takes for each wait the local cloud emulates: one table, each entry with its
source. ``docs/timeline.md`` shows the same table (a test holds the two together).

A duration is one of:

- ``FIXED``: AWS-typical seconds, from AWS's documentation, the seed's, or, where neither gives a
  number, a typical value with its basis (the source then starts with ``typical, not
  documented``);
- ``DECLARED``: what the run itself declares, exact on AWS too (a Wait state's ``Seconds``, the
  canary's minutes);
- ``MEASURED``: the same code runs locally as on AWS, so it lasts as long as it did locally;
- ``PERSON``: a person's wait, not projected.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

SEED = "https://github.com/aws-samples/amazon-sagemaker-safe-deployment-pipeline"
NOT_DOCUMENTED = "typical, not documented"


class Rule(Enum):
    FIXED = "AWS-typical"
    DECLARED = "as declared"
    MEASURED = "as measured locally"
    PERSON = "not projected"


@dataclass(frozen=True)
class AwsDuration:
    operation: str  # the name the local cloud records the wait under
    label: str  # short, for tables
    what: str  # what waits, in AWS's terms
    rule: Rule
    seconds: float | None  # FIXED only
    source: str  # a URL, or "typical, not documented: <basis>"

    @property
    def documented(self) -> bool:
        return not self.source.startswith(NOT_DOCUMENTED)


ENDPOINT = "sagemaker.endpoint"
JOB_STARTUP = "sagemaker.job-startup"
JOB_RUN = "sagemaker.job-run"
WAIT_STATE = "stepfunctions.wait"
STACK_UPDATE = "cloudformation.update"
STACK_UPDATE_START = "cloudformation.update-start"
STACK_CLEANUP = "cloudformation.cleanup"
STACK_ROLLBACK = "cloudformation.rollback"
DEPLOYMENT_START = "codedeploy.start"
HOOK = "codedeploy.hook"
CANARY_BAKE = "codedeploy.bake"
APPROVAL = "approval"
LOCAL_WORK = "local"

AWS_DURATIONS: tuple[AwsDuration, ...] = (
    AwsDuration(
        ENDPOINT,
        "endpoint creation",
        "SageMaker endpoint creation: CreateEndpoint to InService (instances launched, "
        "container and model loaded)",
        Rule.FIXED,
        600.0,
        f"{SEED} (the seed): notebook/mlops.ipynb, 'It can take up to 10 minutes for SageMaker "
        "to create an endpoint' and, of the production endpoint, 'This takes on average 10 "
        "minutes to deploy'; README.md, 'Launch Dev Endpoint: 10 minutes'",
    ),
    AwsDuration(
        JOB_STARTUP,
        "job start-up",
        "SageMaker training or processing job start-up: instances launched and prepared, the "
        "image downloaded, before the job's code runs",
        Rule.FIXED,
        240.0,
        f"{NOT_DOCUMENTED}: SageMaker names the start-up's stages (SecondaryStatus Starting: "
        "'Launching requested ML instances', 'Preparing the instances for training'; then "
        "'Downloading the training image', https://docs.aws.amazon.com/sagemaker/latest/"
        "APIReference/API_SecondaryStatusTransition.html) but not their length; the seed's "
        f"README ({SEED}) gives 'Model Training and Baseline: 5 minutes' for its two jobs run "
        "side by side, of which the XGBoost run on a month of trips is the smaller part",
    ),
    AwsDuration(
        JOB_RUN,
        "job run",
        "the job's own work: the project's model code, run as its container runs it",
        Rule.MEASURED,
        None,
        "the local run: the local cloud runs the same model/ code a SageMaker job runs "
        "(docs/timeline.md, 'What is left out': the container's own pip install)",
    ),
    AwsDuration(
        WAIT_STATE,
        "Wait state",
        "a Step Functions Wait state (the pipeline's polls of endpoints, the stack, the lock)",
        Rule.DECLARED,
        None,
        "https://docs.aws.amazon.com/step-functions/latest/dg/state-wait.html (a Wait state "
        "delays the execution for the time it specifies)",
    ),
    AwsDuration(
        STACK_UPDATE_START,
        "stack update start",
        "CloudFormation UpdateStack until the alias's CodeDeploy deployment starts: the SAM "
        "transform of the previous template, the predict function's new configuration and "
        "version",
        Rule.FIXED,
        60.0,
        f"{NOT_DOCUMENTED}: CloudFormation publishes no duration for an update; before the alias "
        "it updates the function's configuration (Lambda reports LastUpdateStatus InProgress "
        "until it applies, https://docs.aws.amazon.com/lambda/latest/dg/functions-states.html) "
        "and publishes a version, calls of seconds each; one minute is the allowance. The real "
        "one is in the stack's events: UPDATE_IN_PROGRESS of the stack to that of the alias",
    ),
    AwsDuration(
        STACK_UPDATE,
        "stack update",
        "the stack update's own resource work in the local cloud (the waits inside it are "
        "their own entries)",
        Rule.MEASURED,
        None,
        "the local run: the local cloud applies the change set's resource changes itself",
    ),
    AwsDuration(
        STACK_CLEANUP,
        "stack clean-up",
        "CloudFormation after the alias's deployment: UPDATE_COMPLETE_CLEANUP_IN_PROGRESS to "
        "UPDATE_COMPLETE",
        Rule.FIXED,
        30.0,
        f"{NOT_DOCUMENTED}: no published duration; half a minute is the allowance. The stack's "
        "events give the real one",
    ),
    AwsDuration(
        STACK_ROLLBACK,
        "stack rollback",
        "CloudFormation rolling an update back: UPDATE_ROLLBACK_IN_PROGRESS to "
        "UPDATE_ROLLBACK_COMPLETE (the function's previous configuration restored)",
        Rule.FIXED,
        60.0,
        f"{NOT_DOCUMENTED}: the rollback repeats the update's function work in reverse; the same "
        "one-minute allowance as the update's start",
    ),
    AwsDuration(
        DEPLOYMENT_START,
        "CodeDeploy start",
        "CodeDeploy from CreateDeployment to the BeforeAllowTraffic hook's invocation, with the "
        "hook function's cold start",
        Rule.FIXED,
        15.0,
        f"{NOT_DOCUMENTED}: CodeDeploy publishes no latency for a Lambda deployment's start; 15 s "
        "is the allowance. The real one is the BeforeAllowTraffic lifecycle event's startTime "
        "(GetDeploymentTarget) less the deployment's createTime",
    ),
    AwsDuration(
        HOOK,
        "hook",
        "a CodeDeploy lifecycle hook function's run (the post-traffic hook waits for client "
        "requests, which come as fast as the clients send them)",
        Rule.MEASURED,
        None,
        "the local run: the hook functions run in the local cloud as deployed",
    ),
    AwsDuration(
        CANARY_BAKE,
        "canary bake",
        "CodeDeploy's interval between the canary's first and second traffic shifts (5 minutes "
        "for Canary10Percent5Minutes, the template's DeploymentType)",
        Rule.DECLARED,
        None,
        "https://docs.aws.amazon.com/codedeploy/latest/userguide/deployment-configurations.html "
        "(CodeDeployDefault.LambdaCanary10Percent5Minutes: 'Shifts 10 percent of traffic in the "
        "first increment. The remaining 90 percent is deployed five minutes later.')",
    ),
    AwsDuration(
        APPROVAL,
        "a person",
        "a person deciding on the approval request",
        Rule.PERSON,
        None,
        "a person, not a service: shown as it was, never projected",
    ),
    AwsDuration(
        LOCAL_WORK,
        "other work",
        "everything else: Step Functions states, Lambda functions, the local cloud's own calls",
        Rule.MEASURED,
        None,
        "the local run: the same state machines and handlers run locally",
    ),
)

BY_OPERATION = {duration.operation: duration for duration in AWS_DURATIONS}


def aws_seconds(operation: str) -> float:
    """The AWS-typical seconds of a ``FIXED`` operation."""
    seconds = BY_OPERATION[operation].seconds
    if seconds is None:
        raise ValueError(f"{operation} has no fixed AWS duration")
    return seconds
