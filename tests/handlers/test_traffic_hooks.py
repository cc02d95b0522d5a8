"""pre_traffic_hook and post_traffic_hook: green found from the deployment, checked, and reported
to CodeDeploy on every path.

CodeDeploy is moto's (applications, groups, deployments, GetDeployment with the AppSpec), except
``PutLifecycleEventHookExecutionStatus``, which moto does not implement: :class:`HookReports`
answers it behind moto, so the handlers keep their real boto3 client. Where GetDeployment shows
only the AppSpec's sha256 (as AWS does for CloudFormation's deployments), the local cloud's
CodeDeploy answers it and GetApplicationRevision.
"""

from __future__ import annotations

import functools
import io
import json
import zipfile
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import yaml
from botocore.exceptions import ClientError
from moto.codedeploy import responses as codedeploy_responses
from moto.codedeploy.models import codedeploy_backends
from moto.codedeploy.responses import CodeDeployResponse
from moto.core.responses import ActionResult
from pipeline_common.capture import capture_key, capture_record
from pipeline_common.hooks import _appspec
from pipeline_common.layout import CAPTURE_PREFIX, VARIANT

from safe_deploy.localcloud import codedeploy as local_codedeploy
from tests.handlers.support import (
    ACCOUNT,
    REGION,
    STACK_NAME,
    TEMPLATE,
    Cloud,
    Endpoints,
    FakeLambdaContext,
    Loader,
    fare,
    load_event,
)

GREEN = "fare-9b5c86e7fd15-prod"
BLUE = "fare-2e71d0c94a5b-prod"
MINIMUM = int(TEMPLATE["Parameters"]["MinCapturedRequests"]["Default"])


@dataclass
class HookReports:
    """What the hooks told CodeDeploy: (deployment id, hook execution id, status)."""

    statuses: list[tuple[str, str, str]] = field(default_factory=list)

    def put(self, response: CodeDeployResponse) -> ActionResult:
        deployment_id = response._get_param("deploymentId")
        execution_id = response._get_param("lifecycleEventHookExecutionId")
        # as CodeDeploy does: DeploymentDoesNotExistException for an unknown deployment
        codedeploy_backends[ACCOUNT][REGION].get_deployment(deployment_id)
        self.statuses.append((deployment_id, execution_id, response._get_param("status")))
        return ActionResult({"lifecycleEventHookExecutionId": execution_id})


@pytest.fixture
def reports(cloud: Cloud, monkeypatch: pytest.MonkeyPatch) -> HookReports:
    recorded = HookReports()

    def put_lifecycle_event_hook_execution_status(response: CodeDeployResponse) -> ActionResult:
        return recorded.put(response)

    monkeypatch.setattr(
        CodeDeployResponse,
        "put_lifecycle_event_hook_execution_status",
        put_lifecycle_event_hook_execution_status,
        raising=False,
    )
    return recorded


def _code(marker: str) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("app.py", f"# {marker}\n")
    return buffer.getvalue()


def promotion(cloud: Cloud, green_endpoint: str | None) -> str:
    """What the deploy state machine does before CodeDeploy calls the hooks: the predict function
    (its template environment) at a blue version, a green version bound to ``green_endpoint``
    (``None``: a code change that carries no endpoint), and a deployment of SAM's group moving
    ``live`` from blue to green. Returns the deployment id."""
    function = f"{STACK_NAME}-PredictFunction-7HX3KQ2LMZ0A"
    environment = cloud.environment("predict")
    cloud.lambda_.create_function(
        FunctionName=function,
        Runtime="python3.12",
        Role=cloud.role_arn,
        Handler="app.lambda_handler",
        Code={"ZipFile": _code("blue")},
        Environment={"Variables": environment},
    )
    blue = cloud.lambda_.publish_version(FunctionName=function)["Version"]
    if green_endpoint is None:
        cloud.lambda_.update_function_code(FunctionName=function, ZipFile=_code("new code"))
    else:
        cloud.lambda_.update_function_configuration(
            FunctionName=function,
            Environment={"Variables": environment | {"ENDPOINT_NAME": green_endpoint}},
        )
    green = cloud.lambda_.publish_version(FunctionName=function)["Version"]
    assert green != blue
    if green_endpoint is not None:  # the deploy state machine holds the release lock
        cloud.dynamodb.put_item(
            TableName=cloud.ref("ReleaseTable"),
            Item={
                "name": {"S": "promotion"},
                "holder": {"S": "arn:aws:states:us-east-1:123456789012:execution:deploy:run"},
                "green": {"S": green_endpoint},
            },
        )

    application = f"{STACK_NAME}-ServerlessDeploymentApplication-1RZ8Q0V6TNM2D"
    group = f"{STACK_NAME}-PredictFunctionDeploymentGroup-5MZP0C1X8DQF"
    cloud.codedeploy.create_application(applicationName=application, computePlatform="Lambda")
    cloud.codedeploy.create_deployment_group(
        applicationName=application,
        deploymentGroupName=group,
        serviceRoleArn=cloud.role_arn,
        deploymentConfigName="CodeDeployDefault.LambdaCanary10Percent5Minutes",
        deploymentStyle={
            "deploymentType": "BLUE_GREEN",
            "deploymentOption": "WITH_TRAFFIC_CONTROL",
        },
    )
    appspec = {  # as the deploy state machine's BuildAppSpec writes it
        "version": 0.0,
        "Resources": [
            {
                "PredictFunction": {
                    "Type": "AWS::Lambda::Function",
                    "Properties": {
                        "Name": function,
                        "Alias": "live",
                        "CurrentVersion": blue,
                        "TargetVersion": green,
                    },
                }
            }
        ],
        "Hooks": [
            {"BeforeAllowTraffic": f"{STACK_NAME}-PreTrafficHookFunction-0GQ7ZC2WN4JY"},
            {"AfterAllowTraffic": f"{STACK_NAME}-PostTrafficHookFunction-9VD1TL6RP3KS"},
        ],
    }
    return cloud.codedeploy.create_deployment(
        applicationName=application,
        deploymentGroupName=group,
        revision={
            "revisionType": "AppSpecContent",
            "appSpecContent": {"content": json.dumps(appspec)},
        },
    )["deploymentId"]


def hook_event(name: str, deployment_id: str) -> dict[str, Any]:
    event = load_event(name)
    event["DeploymentId"] = deployment_id
    return event


def reported(reports: HookReports, event: dict[str, Any], status: str) -> bool:
    """The hook told CodeDeploy ``status``, once, for this hook execution."""
    return reports.statuses == [
        (event["DeploymentId"], event["LifecycleEventHookExecutionId"], status)
    ]


# ---------------------------------------------------------------- BeforeAllowTraffic


@pytest.fixture
def pre(cloud: Cloud, endpoints: Endpoints, reports: HookReports, load_handler: Loader) -> Any:
    cloud.set_parameter("ProductionEndpointParameter", BLUE)
    return load_handler("pre_traffic_hook")


def test_pre_traffic_passes_a_green_endpoint_that_is_ready(
    cloud: Cloud,
    endpoints: Endpoints,
    reports: HookReports,
    pre: Any,
    context: FakeLambdaContext,
) -> None:
    cloud.endpoint(GREEN)
    endpoints.serve(GREEN, BLUE)
    event = hook_event("pre_traffic_hook", promotion(cloud, GREEN))

    result = pre.lambda_handler(event, context)

    assert reported(reports, event, "Succeeded")
    assert result["status"] == "Succeeded"
    assert result["endpoint"] == GREEN
    assert f"a known ride costs {fare([12.0, 1.0, 2.5]):.2f}" in result["summary"]
    # the known ride went to green, marked as the hook's own call (not counted as API traffic)
    assert [(c.endpoint, c.inference_id) for c in endpoints.calls] == [
        (GREEN, f"hook-pre-{event['DeploymentId']}")
    ]


@dataclass
class Versions:
    """The predict function's versions as a code deploy's hooks call them: each answers the
    proxy event as the version's code would (moto's Lambda runs no code)."""

    answers: dict[str, Any] = field(default_factory=dict)  # version -> fares, or an exception
    events: list[tuple[str, dict[str, Any]]] = field(default_factory=list)

    def invoke(
        self, name: str, qualifier: str | None, body: Any, headers: Any, out: dict[str, str]
    ) -> bytes:
        version = str(qualifier or name.rsplit(":", 1)[-1])
        self.events.append((version, json.loads(body)))
        answer = self.answers[version]
        if isinstance(answer, Exception):  # the version's code raised: Lambda's function error
            out["x-amz-function-error"] = "Unhandled"
            return json.dumps(
                {"errorType": type(answer).__name__, "errorMessage": str(answer)}
            ).encode()
        return json.dumps(
            {"statusCode": 200, "body": "".join(f"{fare!r}\n" for fare in answer)}
        ).encode()


@pytest.fixture
def versions(monkeypatch: pytest.MonkeyPatch) -> Versions:
    from moto.awslambda.models import LambdaBackend
    from moto.awslambda.responses import LambdaResponse
    from moto.awslambda_simple.models import LambdaSimpleBackend

    from safe_deploy.localcloud import fixes

    recorded = Versions()
    # whichever backend moto's settings pick (a local cloud earlier in the run turns Docker off)
    monkeypatch.setattr(LambdaBackend, "invoke", recorded.invoke)
    monkeypatch.setattr(LambdaSimpleBackend, "invoke", recorded.invoke)
    monkeypatch.setattr(LambdaResponse, "invoke", fixes.lambda_invoke)  # honours ?Qualifier=
    return recorded


def test_pre_traffic_compares_new_code_with_current_code_on_the_same_model(
    cloud: Cloud,
    endpoints: Endpoints,
    reports: HookReports,
    pre: Any,
    context: FakeLambdaContext,
    versions: Versions,
) -> None:
    cloud.endpoint(BLUE)
    endpoints.serve(BLUE)
    versions.answers = {"1": [7.5, 4.0, 40.2, 21.0], "2": [7.5, 4.0, 40.2, 21.0]}
    event = hook_event("pre_traffic_hook", promotion(cloud, green_endpoint=None))

    result = pre.lambda_handler(event, context)

    assert reported(reports, event, "Succeeded")
    assert result["endpoint"] == BLUE
    assert "answers 4 known rides as version 1 does" in result["summary"]
    assert [v for v, _ in versions.events] == ["2", "1"]
    sent = versions.events[0][1]
    assert (sent["httpMethod"], sent["path"]) == ("POST", "/predict")
    assert sent["requestContext"]["requestId"].startswith("hook-")
    assert not endpoints.calls  # the hook sends no traffic to the endpoint itself


@pytest.mark.parametrize(
    ("new", "words"),
    [
        ([7.5, 4.0, 40.2, 99.0], "answered [7.5, 4.0, 40.2, 99.0]"),
        (RuntimeError("boom"), "version 2 failed: boom"),
    ],
)
def test_pre_traffic_fails_new_code_that_answers_otherwise(
    cloud: Cloud,
    endpoints: Endpoints,
    reports: HookReports,
    pre: Any,
    context: FakeLambdaContext,
    versions: Versions,
    new: Any,
    words: str,
) -> None:
    cloud.endpoint(BLUE)
    endpoints.serve(BLUE)
    versions.answers = {"1": [7.5, 4.0, 40.2, 21.0], "2": new}
    event = hook_event("pre_traffic_hook", promotion(cloud, green_endpoint=None))

    result = pre.lambda_handler(event, context)

    assert reported(reports, event, "Failed")
    assert words in result["summary"]


def test_pre_traffic_has_nothing_to_check_before_the_first_model(
    cloud: Cloud, reports: HookReports, pre: Any, context: FakeLambdaContext
) -> None:
    cloud.set_parameter("ProductionEndpointParameter", "none")
    event = hook_event("pre_traffic_hook", promotion(cloud, green_endpoint=None))

    result = pre.lambda_handler(event, context)

    assert reported(reports, event, "Succeeded")
    assert result["summary"] == "no model is in production yet: nothing to check"


def test_pre_traffic_refuses_an_endpoint_no_promotion_is_releasing(
    cloud: Cloud,
    endpoints: Endpoints,
    reports: HookReports,
    pre: Any,
    context: FakeLambdaContext,
) -> None:
    """A deploy whose samconfig.toml still names an old endpoint: production must not move."""
    cloud.endpoint(GREEN)
    endpoints.serve(GREEN)
    event = hook_event("pre_traffic_hook", promotion(cloud, green_endpoint=GREEN))
    cloud.dynamodb.delete_item(
        TableName=cloud.ref("ReleaseTable"), Key={"name": {"S": "promotion"}}
    )

    result = pre.lambda_handler(event, context)

    assert reported(reports, event, "Failed")
    assert "neither production" in result["summary"]
    assert "ServingEndpoint" in result["summary"]


def test_pre_traffic_fails_a_green_endpoint_that_is_not_in_service(
    cloud: Cloud,
    endpoints: Endpoints,
    reports: HookReports,
    pre: Any,
    context: FakeLambdaContext,
) -> None:
    cloud.endpoint(GREEN, status="Creating")
    endpoints.serve(GREEN)
    event = hook_event("pre_traffic_hook", promotion(cloud, GREEN))

    result = pre.lambda_handler(event, context)

    assert reported(reports, event, "Failed")
    assert result["summary"] == f"{GREEN} is Creating, not InService"
    assert endpoints.calls == []


@pytest.mark.parametrize(
    ("capture", "problem"),
    [
        ({}, "does not capture both input and output"),
        (
            {
                "EnableCapture": True,
                "InitialSamplingPercentage": 100,
                "DestinationS3Uri": "s3://capture/datacapture",
                "CaptureOptions": [{"CaptureMode": "Input"}],
            },
            "does not capture both input and output",
        ),
        (
            {
                "EnableCapture": True,
                "InitialSamplingPercentage": 20,
                "DestinationS3Uri": "s3://capture/datacapture",
                "CaptureOptions": [{"CaptureMode": "Input"}, {"CaptureMode": "Output"}],
            },
            "captures only 20% of requests",
        ),
    ],
    ids=["no-capture", "input-only", "sampled"],
)
def test_pre_traffic_fails_a_green_endpoint_that_does_not_capture_everything(
    cloud: Cloud,
    endpoints: Endpoints,
    reports: HookReports,
    pre: Any,
    context: FakeLambdaContext,
    capture: dict[str, Any],
    problem: str,
) -> None:
    cloud.endpoint(GREEN, capture=capture)
    endpoints.serve(GREEN)
    event = hook_event("pre_traffic_hook", promotion(cloud, GREEN))

    result = pre.lambda_handler(event, context)

    assert reported(reports, event, "Failed")
    assert result["summary"] == f"{GREEN} {problem}"


@pytest.mark.parametrize("answer", ["-4.5", "1250.0", "7.5\n8.5"], ids=["negative", "huge", "two"])
def test_pre_traffic_fails_an_implausible_answer_for_a_known_ride(
    cloud: Cloud,
    endpoints: Endpoints,
    reports: HookReports,
    pre: Any,
    context: FakeLambdaContext,
    answer: str,
) -> None:
    cloud.endpoint(GREEN)
    endpoints.answer(GREEN, lambda rows: answer)
    event = hook_event("pre_traffic_hook", promotion(cloud, GREEN))

    result = pre.lambda_handler(event, context)

    assert reported(reports, event, "Failed")
    assert result["summary"].startswith(f"{GREEN} answered [")
    assert result["summary"].endswith("for a known ride")


def test_pre_traffic_reports_failed_when_the_endpoint_errors(
    cloud: Cloud,
    endpoints: Endpoints,
    reports: HookReports,
    pre: Any,
    context: FakeLambdaContext,
) -> None:
    cloud.endpoint(GREEN)
    endpoints.fail(GREEN)
    event = hook_event("pre_traffic_hook", promotion(cloud, GREEN))

    result = pre.lambda_handler(event, context)

    assert reported(reports, event, "Failed")
    assert result["summary"].startswith("hook could not check the deployment: ModelError")


def test_pre_traffic_reports_failed_when_green_endpoint_does_not_exist(
    cloud: Cloud,
    endpoints: Endpoints,
    reports: HookReports,
    pre: Any,
    context: FakeLambdaContext,
) -> None:
    event = hook_event("pre_traffic_hook", promotion(cloud, GREEN))  # endpoint never created

    result = pre.lambda_handler(event, context)

    assert reported(reports, event, "Failed")
    assert result["summary"].startswith("hook could not check the deployment: ")


# ---------------------------------------------------------------- AfterAllowTraffic


def write_capture(
    cloud: Cloud,
    endpoint: str,
    inference_ids: list[str],
    *,
    extra_lines: tuple[str, ...] = (),
    written: datetime | None = None,
) -> None:
    """One capture file as SageMaker writes it: one record per inference id (plus raw lines)."""
    when = datetime.now(UTC)
    lines = [
        json.dumps(
            capture_record(
                "14.5,1.0,3.2",
                f"{fare([14.5, 1.0, 3.2])}\n",
                inference_time=when,
                inference_id=inference_id,
            )
        )
        for inference_id in inference_ids
    ]
    bucket = cloud.ref("CaptureBucket")
    key = capture_key(CAPTURE_PREFIX, endpoint, VARIANT, when)
    body = "\n".join([*lines, *extra_lines]) + "\n"
    cloud.s3.put_object(Bucket=bucket, Key=key, Body=body.encode())
    if written is not None:
        cloud.backdate(bucket, key, written)


def api_ids(count: int, prefix: str = "api") -> list[str]:
    return [f"{prefix}-8f1c2a4e-3b5d-4c6e-9f7a-{n:012d}" for n in range(count)]


@pytest.fixture
def post(cloud: Cloud, reports: HookReports, load_handler: Loader) -> Any:
    cloud.set_parameter("ProductionEndpointParameter", BLUE)
    # the template lets capture arrive for 4 minutes; a failing check here answers at once
    return load_handler("post_traffic_hook", CAPTURE_WAIT_SECONDS="0")


@pytest.fixture
def deployment(cloud: Cloud) -> str:
    """A promotion whose canary started ten minutes ago."""
    deployment_id = promotion(cloud, GREEN)
    cloud.deployment_started(deployment_id, datetime.now(UTC) - timedelta(minutes=10))
    return deployment_id


def test_post_traffic_passes_with_enough_api_requests_captured_on_green(
    cloud: Cloud, reports: HookReports, post: Any, deployment: str, context: FakeLambdaContext
) -> None:
    write_capture(cloud, GREEN, [*api_ids(MINIMUM), f"hook-pre-{deployment}"])
    event = hook_event("post_traffic_hook", deployment)

    result = post.lambda_handler(event, context)

    assert reported(reports, event, "Succeeded")
    assert result["endpoint"] == GREEN
    assert result["summary"] == (
        f"{MINIMUM} API requests among {MINIMUM + 1} well-formed records under "
        f"s3://{cloud.ref('CaptureBucket')}/{CAPTURE_PREFIX}/{GREEN}/"
    )


def test_post_traffic_does_not_count_health_checks_as_clients(
    cloud: Cloud, reports: HookReports, post: Any, deployment: str, context: FakeLambdaContext
) -> None:
    """/health is unauthenticated: anyone could make it count toward MinCapturedRequests. It no
    longer reaches an endpoint, and a health record in capture (an older predict version's) is
    still not a client."""
    write_capture(cloud, GREEN, [*api_ids(MINIMUM - 5), *api_ids(5, "health")])
    event = hook_event("post_traffic_hook", deployment)

    result = post.lambda_handler(event, context)

    assert reported(reports, event, "Failed")
    assert result["summary"] == (
        f"{MINIMUM - 5} API requests captured on {GREEN}; at least {MINIMUM} needed"
    )


def test_post_traffic_waits_for_capture_with_the_template_settings(
    cloud: Cloud,
    reports: HookReports,
    load_handler: Loader,
    deployment: str,
    context: FakeLambdaContext,
) -> None:
    cloud.set_parameter("ProductionEndpointParameter", BLUE)
    app = load_handler("post_traffic_hook")  # CAPTURE_WAIT_SECONDS as the template sets it
    write_capture(cloud, GREEN, api_ids(MINIMUM))
    event = hook_event("post_traffic_hook", deployment)

    assert app.lambda_handler(event, context)["status"] == "Succeeded"  # no wait once it passes
    assert reported(reports, event, "Succeeded")


def test_post_traffic_fails_with_too_few_api_requests(
    cloud: Cloud, reports: HookReports, post: Any, deployment: str, context: FakeLambdaContext
) -> None:
    write_capture(cloud, GREEN, api_ids(MINIMUM - 1))
    event = hook_event("post_traffic_hook", deployment)

    result = post.lambda_handler(event, context)

    assert reported(reports, event, "Failed")
    assert result["summary"] == (
        f"{MINIMUM - 1} API requests captured on {GREEN}; at least {MINIMUM} needed"
    )


def test_post_traffic_does_not_count_the_hooks_own_calls(
    cloud: Cloud, reports: HookReports, post: Any, deployment: str, context: FakeLambdaContext
) -> None:
    own_calls = [f"hook-pre-{deployment}"] * MINIMUM + [
        f"devtest-fare-9b5c86e7fd15-{n}" for n in range(5)
    ]
    write_capture(cloud, GREEN, own_calls)
    event = hook_event("post_traffic_hook", deployment)

    result = post.lambda_handler(event, context)

    assert reported(reports, event, "Failed")
    assert result["summary"].startswith(f"0 API requests captured on {GREEN}")


def test_post_traffic_ignores_capture_from_before_the_deployment(
    cloud: Cloud, reports: HookReports, post: Any, deployment: str, context: FakeLambdaContext
) -> None:
    an_hour_ago = datetime.now(UTC) - timedelta(hours=1)
    write_capture(cloud, GREEN, api_ids(MINIMUM * 2), written=an_hour_ago)
    event = hook_event("post_traffic_hook", deployment)

    result = post.lambda_handler(event, context)

    assert reported(reports, event, "Failed")
    assert result["summary"].startswith(
        f"no capture under s3://{cloud.ref('CaptureBucket')}/{CAPTURE_PREFIX}/{GREEN}/ since the "
        "deployment started"
    )


def test_post_traffic_counts_capture_written_in_the_second_the_deployment_started(
    cloud: Cloud, reports: HookReports, post: Any, context: FakeLambdaContext
) -> None:
    """S3 gives LastModified in whole seconds: a file written 0.4 s after a deployment that
    started at .5 s reads as written before it, unless the start is taken to the second."""
    deployment_id = promotion(cloud, GREEN)
    second = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=1)
    cloud.deployment_started(deployment_id, second + timedelta(microseconds=500_000))
    write_capture(cloud, GREEN, api_ids(MINIMUM), written=second + timedelta(microseconds=900_000))
    event = hook_event("post_traffic_hook", deployment_id)

    assert post.lambda_handler(event, context)["status"] == "Succeeded"
    assert reported(reports, event, "Succeeded")


def test_post_traffic_reads_only_green_s_own_capture(
    cloud: Cloud, reports: HookReports, post: Any, deployment: str, context: FakeLambdaContext
) -> None:
    # blue keeps serving (and capturing) 90% of the traffic during the canary
    write_capture(cloud, BLUE, api_ids(MINIMUM * 3))
    write_capture(cloud, f"{GREEN}-other", api_ids(MINIMUM))  # a name green's is a prefix of
    event = hook_event("post_traffic_hook", deployment)

    result = post.lambda_handler(event, context)

    assert reported(reports, event, "Failed")
    assert "no capture under" in result["summary"]


def test_post_traffic_fails_on_malformed_capture_records(
    cloud: Cloud, reports: HookReports, post: Any, deployment: str, context: FakeLambdaContext
) -> None:
    not_capture = json.dumps({"eventMetadata": {"eventId": "x", "inferenceTime": "now"}})
    garbled = capture_record("14.5,1.0,3.2", "not a fare", inference_time=datetime.now(UTC))
    write_capture(
        cloud,
        GREEN,
        api_ids(MINIMUM),
        extra_lines=('{"captureData": {"endpointIn', not_capture, json.dumps(garbled)),
    )
    event = hook_event("post_traffic_hook", deployment)

    result = post.lambda_handler(event, context)

    assert reported(reports, event, "Failed")
    assert result["summary"] == f"3 of {MINIMUM + 3} captured records are malformed"


def test_post_traffic_reports_failed_when_capture_cannot_be_read(
    cloud: Cloud,
    reports: HookReports,
    load_handler: Loader,
    deployment: str,
    context: FakeLambdaContext,
) -> None:
    cloud.set_parameter("ProductionEndpointParameter", BLUE)
    app = load_handler(
        "post_traffic_hook", CAPTURE_WAIT_SECONDS="0", CAPTURE_BUCKET="no-such-capture-bucket"
    )
    event = hook_event("post_traffic_hook", deployment)

    result = app.lambda_handler(event, context)

    assert reported(reports, event, "Failed")
    assert result["summary"].startswith("hook could not check the deployment: NoSuchBucket")


def test_a_hook_for_an_unknown_deployment_fails_the_invocation(
    cloud: Cloud, reports: HookReports, post: Any, context: FakeLambdaContext
) -> None:
    # it cannot report to CodeDeploy either: the Lambda error is what is left to see
    with pytest.raises(ClientError, match="DeploymentDoesNotExist"):
        post.lambda_handler(hook_event("post_traffic_hook", "d-NOSUCHONE"), context)
    assert reports.statuses == []


# ---------------------------------------------------------------- the AppSpec, either way
YAML_APPSPEC = """\
version: 0.0
Resources:
  - PredictFunction:
      Type: AWS::Lambda::Function
      Properties: {Name: fare-predict, Alias: live, CurrentVersion: '3', TargetVersion: '4'}
"""


@pytest.mark.parametrize("content", [YAML_APPSPEC, json.dumps(yaml.safe_load(YAML_APPSPEC))])
def test_an_appspec_is_read_as_json_or_as_yaml(content: str) -> None:
    properties = _appspec("d-1", content)["Resources"][0]["PredictFunction"]["Properties"]

    assert (properties["CurrentVersion"], properties["TargetVersion"]) == ("3", "4")


def test_an_appspec_that_is_neither_is_named_unreadable() -> None:
    with pytest.raises(ValueError, match="deployment d-1: unreadable AppSpec"):
        _appspec("d-1", "Resources: [unclosed")


@pytest.fixture(params=["content", "sha256-only"])
def appspec_in_get_deployment(
    request: pytest.FixtureRequest, cloud: Cloud, monkeypatch: pytest.MonkeyPatch
) -> str:
    """How GetDeployment shows the AppSpec: with its content (moto, and AWS for deployments
    created with it), or with its sha256 only, as AWS shows the deployments CloudFormation
    creates. Then the local cloud's CodeDeploy answers, GetApplicationRevision included (moto
    has none): the hook must ask for the content."""
    if request.param == "sha256-only":
        monkeypatch.setattr(
            codedeploy_responses,
            "_deployment_info",
            functools.partial(local_codedeploy.deployment_info, sha256_only=True),
        )
        monkeypatch.setattr(
            CodeDeployResponse,
            "get_application_revision",
            local_codedeploy.get_application_revision,
            raising=False,
        )
    return str(request.param)


def _shows_content(cloud: Cloud, deployment_id: str) -> bool:
    revision = cloud.codedeploy.get_deployment(deploymentId=deployment_id)["deploymentInfo"][
        "revision"
    ]
    return "content" in revision.get("appSpecContent", {})


def test_pre_traffic_finds_green_however_get_deployment_shows_the_appspec(
    cloud: Cloud,
    endpoints: Endpoints,
    reports: HookReports,
    appspec_in_get_deployment: str,
    pre: Any,
    context: FakeLambdaContext,
) -> None:
    cloud.endpoint(GREEN)
    endpoints.serve(GREEN, BLUE)
    event = hook_event("pre_traffic_hook", promotion(cloud, GREEN))
    assert _shows_content(cloud, event["DeploymentId"]) == (appspec_in_get_deployment == "content")

    result = pre.lambda_handler(event, context)

    assert reported(reports, event, "Succeeded"), result["summary"]
    assert result["endpoint"] == GREEN
    assert [c.endpoint for c in endpoints.calls] == [GREEN]


def test_post_traffic_finds_green_however_get_deployment_shows_the_appspec(
    cloud: Cloud,
    reports: HookReports,
    appspec_in_get_deployment: str,
    post: Any,
    deployment: str,
    context: FakeLambdaContext,
) -> None:
    write_capture(cloud, GREEN, api_ids(MINIMUM))
    write_capture(cloud, BLUE, api_ids(MINIMUM))
    event = hook_event("post_traffic_hook", deployment)
    assert _shows_content(cloud, deployment) == (appspec_in_get_deployment == "content")

    result = post.lambda_handler(event, context)

    assert reported(reports, event, "Succeeded"), result["summary"]
    assert result["endpoint"] == GREEN
