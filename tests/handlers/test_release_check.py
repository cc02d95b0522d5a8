"""release_check: every 15 minutes, the endpoint the live alias serves is compared with the
production record; the ReleaseMismatch metric (the alarm's) is 1 when they differ or it is down.

The stack is moto's CloudFormation: the template's parameters and the two outputs the check
reads, naming the predict function (versions published with the template's environment, as
CloudFormation publishes them, and its ``live`` alias) and the production record the fixtures
created from the template.
"""

from __future__ import annotations

import io
import json
import zipfile
from typing import TYPE_CHECKING, Any

import boto3
import pytest
from pipeline_common.layout import NO_ENDPOINT
from pipeline_common.release import (
    LIVE_ALIAS,
    PREDICT_FUNCTION_OUTPUT,
    PRODUCTION_PARAMETER_OUTPUT,
    ReleaseError,
)

from tests.handlers.support import (
    ACCOUNT,
    REGION,
    STACK_NAME,
    TEMPLATE,
    Cloud,
    FakeLambdaContext,
    Loader,
    alarm_metric,
    emf_metrics,
    load_event,
)

if TYPE_CHECKING:
    from mypy_boto3_cloudformation import CloudFormationClient

GREEN = "fare-9b5c86e7fd15-prod"
BLUE = "fare-2e71d0c94a5b-prod"
PREDICT = f"{STACK_NAME}-PredictFunction-7HX3KQ2LMZ0A"


def stack(cloud: Cloud, status: str = "UPDATE_COMPLETE", *, outputs: bool = True) -> None:
    """The application's stack as DescribeStacks shows it."""
    values = {
        PREDICT_FUNCTION_OUTPUT: PREDICT,
        PRODUCTION_PARAMETER_OUTPUT: cloud.ref("ProductionEndpointParameter"),
    }
    assert set(values) <= set(TEMPLATE["Outputs"])
    body = {
        "Parameters": TEMPLATE["Parameters"],
        "Resources": {"StandIn": {"Type": "AWS::SNS::Topic"}},  # moto wants a resource
        "Outputs": {k: {"Value": v} for k, v in values.items()} if outputs else {},
    }
    cloudformation: CloudFormationClient = boto3.client("cloudformation", region_name=REGION)
    stack_id = cloudformation.create_stack(StackName=STACK_NAME, TemplateBody=json.dumps(body))[
        "StackId"
    ]
    # moto's CloudFormation loads every moto service: imported by the tests that make a stack
    from moto.cloudformation.models import cloudformation_backends

    cloudformation_backends[ACCOUNT][REGION].stacks[stack_id].status = status


def _code(marker: str) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("app.py", f"# {marker}\n")
    return buffer.getvalue()


def live(
    cloud: Cloud, *endpoint_names: str, on: int = 0, weights: dict[int, float] | None = None
) -> None:
    """The predict function with one version per ``endpoint_names`` (its ENDPOINT_NAME; "" is
    the template's default), ``live`` on the one at index ``on``, shifting ``weights`` to others
    (by index) as a canary does."""
    environment = cloud.environment("predict")
    cloud.lambda_.create_function(
        FunctionName=PREDICT,
        Runtime="python3.12",
        Role=cloud.role_arn,
        Handler="app.lambda_handler",
        Code={"ZipFile": _code("predict")},
        Environment={"Variables": environment},
    )
    versions = []
    for endpoint_name in endpoint_names:
        cloud.lambda_.update_function_configuration(
            FunctionName=PREDICT,
            Environment={"Variables": environment | {"ENDPOINT_NAME": endpoint_name}},
        )
        versions.append(cloud.lambda_.publish_version(FunctionName=PREDICT)["Version"])
    routing = {versions[i]: w for i, w in (weights or {}).items()}
    cloud.lambda_.create_alias(
        FunctionName=PREDICT,
        Name=LIVE_ALIAS,
        FunctionVersion=versions[on],
        RoutingConfig={"AdditionalVersionWeights": routing},
    )


def record(cloud: Cloud, endpoint: str) -> None:
    cloud.set_parameter("ProductionEndpointParameter", endpoint)


def mismatch_metric(output: str) -> float:
    """The value the handler published for the alarm (in the alarm's namespace and dimensions)."""
    namespace, name, dimensions = alarm_metric("ReleaseMismatchAlarm")
    (metric,) = [m for m in emf_metrics(output) if m.name == name]
    assert (metric.namespace, metric.dimensions) == (namespace, dimensions)
    return metric.value


def log_lines(output: str) -> list[dict[str, Any]]:
    lines = [json.loads(line) for line in output.splitlines() if line.startswith("{")]
    return [line for line in lines if "level" in line]


def run(load_handler: Loader, context: FakeLambdaContext) -> dict[str, Any]:
    app = load_handler("release_check")
    result: dict[str, Any] = app.lambda_handler(load_event("release_check"), context)
    return result


# ---------------------------------------------------------------------------- the sample event
def test_the_sample_is_what_the_schedule_delivers() -> None:
    properties = TEMPLATE["Resources"]["ReleaseCheckFunction"]["Properties"]
    (trigger,) = properties["Events"].values()
    event = load_event("release_check")

    assert trigger["Type"] == "Schedule"
    assert trigger["Properties"]["Schedule"] == "rate(15 minutes)"
    assert (event["source"], event["detail-type"], event["detail"]) == (
        "aws.events",
        "Scheduled Event",
        {},
    )
    (rule,) = event["resources"]
    assert rule.startswith(f"arn:aws:events:{REGION}:{ACCOUNT}:rule/{STACK_NAME}-ReleaseCheck")


# ---------------------------------------------------------------------------- consistent
def test_a_consistent_release_is_a_zero_for_the_alarm(
    cloud: Cloud,
    load_handler: Loader,
    context: FakeLambdaContext,
    capsys: pytest.CaptureFixture[str],
) -> None:
    stack(cloud)
    live(cloud, GREEN)
    record(cloud, GREEN)
    cloud.endpoint(GREEN)

    result = run(load_handler, context)

    assert result["verdict"] == "consistent"
    assert (result["serving"], result["record"], result["problems"]) == (GREEN, GREEN, [])
    output = capsys.readouterr().out
    assert mismatch_metric(output) == 0.0
    (line,) = [x for x in log_lines(output) if x["message"].startswith("release")]
    assert line["level"] == "INFO"
    assert line["message"].startswith("release consistent: live (version 1) serves " + GREEN)


def test_no_model_yet_is_consistent(
    cloud: Cloud,
    load_handler: Loader,
    context: FakeLambdaContext,
    capsys: pytest.CaptureFixture[str],
) -> None:
    stack(cloud)
    live(cloud, "")  # the template's default: no endpoint of its own
    assert (
        cloud.ssm.get_parameter(Name=cloud.ref("ProductionEndpointParameter"))["Parameter"]["Value"]
        == NO_ENDPOINT
    )  # the template's initial record

    result = run(load_handler, context)

    assert result["verdict"] == "consistent"
    assert result["summary"] == "no model has been promoted yet"
    assert mismatch_metric(capsys.readouterr().out) == 0.0


# ---------------------------------------------------------------------------- inconsistent
def test_live_serving_an_endpoint_the_record_does_not_name_raises_the_metric(
    cloud: Cloud,
    load_handler: Loader,
    context: FakeLambdaContext,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """CloudFormation bound live to green, and the promotion stopped before it wrote the record."""
    stack(cloud)
    live(cloud, BLUE, GREEN, on=1)
    record(cloud, BLUE)
    cloud.endpoint(BLUE)
    cloud.endpoint(GREEN)
    parameter = cloud.ref("ProductionEndpointParameter")

    result = run(load_handler, context)

    assert result["verdict"] == "mismatch"
    assert result["problems"] == [
        f"live (version 2) serves {GREEN}, but the production record {parameter} names {BLUE}"
    ]
    output = capsys.readouterr().out
    assert mismatch_metric(output) == 1.0
    (line,) = [x for x in log_lines(output) if x["level"] == "ERROR"]
    assert line["message"] == "release inconsistent: " + result["problems"][0]
    assert line["problems"] == result["problems"]
    assert line["before_acting"].startswith("Act once no promotion is running")
    record_green, serve_blue_again = line["actions"]
    assert record_green["commands"] == [
        f"aws ssm put-parameter --name {parameter} --type String --overwrite --value {GREEN}"
    ]
    (update,) = serve_blue_again["commands"]
    assert update.startswith(f"aws cloudformation update-stack --stack-name {STACK_NAME} ")
    # every parameter of the stack is kept but the one a promotion changes
    assert f"ParameterKey=ServingEndpoint,ParameterValue={BLUE}" in update
    assert update.count("UsePreviousValue=true") == len(TEMPLATE["Parameters"]) - 1


def test_live_serving_a_deleted_endpoint_raises_the_metric(
    cloud: Cloud,
    load_handler: Loader,
    context: FakeLambdaContext,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Blue was deleted by hand while the record, and so live, still name it."""
    stack(cloud)
    live(cloud, "")
    record(cloud, BLUE)

    result = run(load_handler, context)

    assert result["verdict"] == "mismatch"
    assert result["problems"] == [
        f"{BLUE}, the endpoint live (version 1) serves, does not exist: predictions fail"
    ]
    assert mismatch_metric(capsys.readouterr().out) == 1.0


def test_an_endpoint_that_failed_raises_the_metric(
    cloud: Cloud,
    load_handler: Loader,
    context: FakeLambdaContext,
    capsys: pytest.CaptureFixture[str],
) -> None:
    stack(cloud)
    live(cloud, GREEN)
    record(cloud, GREEN)
    cloud.endpoint(GREEN, status="Failed")

    result = run(load_handler, context)

    assert result["problems"] == [
        f"{GREEN}, the endpoint live (version 1) serves, is Failed, not InService: predictions fail"
    ]
    assert mismatch_metric(capsys.readouterr().out) == 1.0


# ---------------------------------------------------------------------------- skipped
def test_a_canary_shifting_traffic_is_no_mismatch(
    cloud: Cloud,
    load_handler: Loader,
    context: FakeLambdaContext,
    capsys: pytest.CaptureFixture[str],
) -> None:
    stack(cloud)
    live(cloud, BLUE, GREEN, weights={1: 0.1})
    record(cloud, BLUE)
    cloud.endpoint(BLUE)
    cloud.endpoint(GREEN)

    result = run(load_handler, context)

    assert result["verdict"] == "in progress"
    assert result["summary"] == (
        f"live is shifting traffic: version 1 (90%) serves {BLUE}, version 2 (10%) serves {GREEN}"
    )
    assert mismatch_metric(capsys.readouterr().out) == 0.0


def test_nothing_is_read_past_the_stack_while_it_updates(
    cloud: Cloud,
    load_handler: Loader,
    context: FakeLambdaContext,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A promotion is a stack update: until it ends, live and the record may differ. (There is
    not even a predict function here: the check reads nothing else.)"""
    stack(cloud, "UPDATE_IN_PROGRESS")

    result = run(load_handler, context)

    assert result["verdict"] == "in progress"
    output = capsys.readouterr().out
    assert mismatch_metric(output) == 0.0
    (line,) = [x for x in log_lines(output) if x["message"].startswith("release")]
    assert (line["level"], line["message"]) == (
        "INFO",
        f"release check skipped: stack {STACK_NAME} is UPDATE_IN_PROGRESS: a deploy, promotion "
        "or rollback is running",
    )


def test_a_stack_without_the_outputs_fails_the_invocation(
    cloud: Cloud, load_handler: Loader, context: FakeLambdaContext
) -> None:
    stack(cloud, outputs=False)

    with pytest.raises(ReleaseError, match=f"has no output {PREDICT_FUNCTION_OUTPUT}"):
        run(load_handler, context)


# ---------------------------------------------------------------------------- who is told
def test_the_alarm_on_the_metric_tells_people() -> None:
    alarm = TEMPLATE["Resources"]["ReleaseMismatchAlarm"]["Properties"]
    dashboard = TEMPLATE["Resources"]["Dashboard"]["Properties"]["DashboardBody"]["Fn::Sub"][0]

    assert alarm["AlarmActions"] == [{"Ref": "NotificationTopic"}]
    assert (alarm["ComparisonOperator"], alarm["Threshold"]) == (
        "GreaterThanOrEqualToThreshold",
        1,
    )
    assert "${ReleaseMismatchAlarm.Arn}" in dashboard
