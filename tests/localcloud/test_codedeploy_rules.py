"""The local CodeDeploy refuses what CodeDeploy refuses, the way CodeDeploy does (DESIGN.md §7).

moto runs in-process (Docker-less Lambda) with the local CodeDeploy installed, as the local cloud
installs it: the tests call ``CreateDeployment`` through boto3 and the emulator runs what CodeDeploy
accepted. The predict-like function has three published versions and its ``live`` alias.

- A second deployment on a busy group is refused at the call (``DeploymentLimitExceededException``).
- An AppSpec that does not fit the function is accepted by the call, and the deployment fails as
  soon as it starts (status ``Failed``, an ``errorInformation`` code and message), before any hook
  runs or any traffic moves: that is where CodeDeploy reports it.
"""

from __future__ import annotations

import functools
import hashlib
import io
import json
import time
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws

from safe_deploy.localcloud import codedeploy, patching
from safe_deploy.localcloud.codedeploy import ACTIVE, CodeDeployEmulator
from safe_deploy.localcloud.metrics import Alarms, MetricStore
from safe_deploy.localcloud.state import ActivityFeed, LocalSettings

REPO = Path(__file__).resolve().parents[2]
REGION = "us-east-1"
FUNCTION = "safe-deploy-PredictFunction-7HX3KQ2LMZ0A"
APPLICATION = "safe-deploy-ServerlessDeploymentApplication-1RZ8Q0V6TNM2D"
GROUP = "safe-deploy-PredictFunctionDeploymentGroup-5MZP0C1X8DQF"
PRE_HOOK = "safe-deploy-PreTrafficHookFunction-0GQ7ZC2WN4JY"
ALL_AT_ONCE = "CodeDeployDefault.LambdaAllAtOnce"
CANARY = "CodeDeployDefault.LambdaCanary10Percent5Minutes"

INVALID_APPSPEC = (
    "The deployment failed because the AppSpec file that specifies the AWS Lambda deployment "
    "configuration is missing or has an invalid configuration."
)


def appspec(current: str, target: str, *, function: str = FUNCTION, alias: str = "live") -> str:
    """An AppSpec as the deploy state machine (and CloudFormation) write them, with a hook."""
    return json.dumps(
        {
            "version": 0.0,
            "Resources": [
                {
                    "PredictFunction": {
                        "Type": "AWS::Lambda::Function",
                        "Properties": {
                            "Name": function,
                            "Alias": alias,
                            "CurrentVersion": current,
                            "TargetVersion": target,
                        },
                    }
                }
            ],
            "Hooks": [{"BeforeAllowTraffic": PRE_HOOK}],
        }
    )


def _zip(marker: str) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("app.py", f"# {marker}\n")
    return buffer.getvalue()


@dataclass
class Local:
    settings: LocalSettings
    feed: ActivityFeed
    emulator: CodeDeployEmulator
    codedeploy: Any
    lambda_: Any
    versions: list[str]

    def deploy(self, content: str, config: str = ALL_AT_ONCE) -> str:
        deployment_id: str = self.codedeploy.create_deployment(
            applicationName=APPLICATION,
            deploymentGroupName=GROUP,
            deploymentConfigName=config,
            revision={"revisionType": "AppSpecContent", "appSpecContent": {"content": content}},
        )["deploymentId"]
        return deployment_id

    def info(self, deployment_id: str) -> dict[str, Any]:
        info: dict[str, Any] = self.codedeploy.get_deployment(deploymentId=deployment_id)[
            "deploymentInfo"
        ]
        return info

    def finished(self, deployment_id: str, timeout: float = 10.0) -> dict[str, Any]:
        """The deployment once it has ended (the emulator runs it in the background)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            info = self.info(deployment_id)
            if info["status"] not in ACTIVE:
                return info
            time.sleep(0.01)
        raise AssertionError(f"deployment {deployment_id} still {info['status']} after {timeout}s")

    def alias(self) -> tuple[str, dict[str, float]]:
        """The version ``live`` points to, and its extra routing weights."""
        alias = self.lambda_.get_alias(FunctionName=FUNCTION, Name="live")
        weights = (alias.get("RoutingConfig") or {}).get("AdditionalVersionWeights") or {}
        return str(alias["FunctionVersion"]), dict(weights)

    def hooks_invoked(self) -> list[str]:
        return [a.message for a in self.feed.find("codedeploy", "invoking")]


@functools.cache
def _session() -> boto3.Session:
    """One session for every test's clients: botocore loads each service's model once per
    session, which is most of what making a client costs."""
    return boto3.Session()


@pytest.fixture
def local(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Local]:
    for name in ("AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_CONFIG_FILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    # A minute of canary bake is 6 ms; the hook timeout (an hour) 0.36 s.
    settings = LocalSettings(project_root=REPO, workdir=tmp_path, time_scale=0.0001)
    feed = ActivityFeed()
    emulator = CodeDeployEmulator(settings, feed, Alarms(MetricStore(), settings, feed))
    with mock_aws(config={"lambda": {"use_docker": False}}):
        codedeploy.install(emulator)
        try:
            yield _stack(settings, feed, emulator)
        finally:
            patching.restore_all()


def _stack(settings: LocalSettings, feed: ActivityFeed, emulator: CodeDeployEmulator) -> Local:
    iam = _session().client("iam", region_name=REGION)
    role = iam.create_role(RoleName="predict", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
    lam = _session().client("lambda", region_name=REGION)
    lam.create_function(
        FunctionName=FUNCTION,
        Runtime="python3.12",
        Role=role,
        Handler="app.lambda_handler",
        Code={"ZipFile": _zip("v1")},
    )
    versions = []
    for n in range(1, 4):
        lam.update_function_configuration(
            FunctionName=FUNCTION, Environment={"Variables": {"ENDPOINT_NAME": f"fare-{n}-prod"}}
        )
        versions.append(lam.publish_version(FunctionName=FUNCTION)["Version"])
    lam.create_alias(FunctionName=FUNCTION, Name="live", FunctionVersion=versions[0])
    cd = _session().client("codedeploy", region_name=REGION)
    cd.create_application(applicationName=APPLICATION, computePlatform="Lambda")
    cd.create_deployment_group(
        applicationName=APPLICATION,
        deploymentGroupName=GROUP,
        serviceRoleArn=role,
        deploymentConfigName=CANARY,
        deploymentStyle={
            "deploymentType": "BLUE_GREEN",
            "deploymentOption": "WITH_TRAFFIC_CONTROL",
        },
    )
    return Local(settings, feed, emulator, cd, lam, versions)


# ---------------------------------------------------------------- what CodeDeploy accepts
@pytest.mark.parametrize("config", [ALL_AT_ONCE, CANARY])
def test_a_valid_appspec_moves_the_alias(local: Local, config: str) -> None:
    blue, green, _ = local.versions
    spec = json.loads(appspec(blue, green))
    del spec["Hooks"]  # no hook to answer: nothing else to wait for
    deployment_id = local.deploy(json.dumps(spec), config)

    info = local.finished(deployment_id)

    assert info["status"] == "Succeeded", info.get("errorInformation")
    assert local.alias() == (green, {})
    if config == CANARY:  # the canary step came first
        assert local.feed.find("codedeploy", f"10% of live traffic on version {green}")


# ---------------------------------------------------------------- refused at CreateDeployment
def test_a_second_deployment_on_a_busy_group_is_refused(local: Local) -> None:
    blue, green, _ = local.versions
    local.settings.time_scale = 1.0  # the canary now bakes five real minutes: the group is busy
    spec = json.loads(appspec(blue, green))
    del spec["Hooks"]
    first = local.deploy(json.dumps(spec), CANARY)
    deadline = time.monotonic() + 10
    while local.alias() != (blue, {green: 0.1}) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert local.alias() == (blue, {green: 0.1})

    with pytest.raises(ClientError) as refused:
        local.deploy(appspec(blue, green))

    error = refused.value.response["Error"]
    assert error["Code"] == "DeploymentLimitExceededException"
    assert (
        error["Message"]
        == f"The Deployment Group '{GROUP}' already has an active Deployment '{first}'"
    )
    assert (
        len(
            local.codedeploy.list_deployments(
                applicationName=APPLICATION, deploymentGroupName=GROUP
            )["deployments"]
        )
        == 1
    )

    # once the first has ended (stopped and rolled back), the group takes a new one
    local.codedeploy.stop_deployment(deploymentId=first)
    assert local.finished(first)["status"] == "Stopped"
    assert local.alias() == (blue, {})
    local.settings.time_scale = 0.0001
    spec["Hooks"] = []
    assert local.finished(local.deploy(json.dumps(spec)))["status"] == "Succeeded"


# ---------------------------------------------------------------- failed as the deployment starts
def _failed_before_touching_anything(local: Local, info: dict[str, Any]) -> dict[str, str]:
    assert info["status"] == "Failed"
    assert local.alias() == (local.versions[0], {})  # no traffic moved
    assert local.hooks_invoked() == []  # BeforeAllowTraffic never ran
    error: dict[str, str] = info["errorInformation"]
    return error


def test_an_appspec_whose_current_version_is_not_the_alias_s_fails(local: Local) -> None:
    """CloudFormation recorded green as current, but the alias is (back) on blue."""
    _blue, green, newer = local.versions

    deployment_id = local.deploy(appspec(green, newer))  # accepted by the call
    info = local.finished(deployment_id)

    assert _failed_before_touching_anything(local, info) == {
        "code": "INVALID_LAMBDA_CONFIGURATION",
        "message": f"{INVALID_APPSPEC} The Lambda function alias version does not match the "
        "current version in AppSpec file.",
    }


def test_a_canary_from_a_version_to_itself_fails(local: Local) -> None:
    blue = local.versions[0]

    info = local.finished(local.deploy(appspec(blue, blue), CANARY))

    assert _failed_before_touching_anything(local, info) == {
        "code": "INVALID_LAMBDA_CONFIGURATION",
        "message": INVALID_APPSPEC,
    }


def test_all_at_once_from_a_version_to_itself_is_accepted(local: Local) -> None:
    blue = local.versions[0]
    spec = json.loads(appspec(blue, blue))
    del spec["Hooks"]

    info = local.finished(local.deploy(json.dumps(spec), ALL_AT_ONCE))

    assert info["status"] == "Succeeded", info.get("errorInformation")
    assert local.alias() == (blue, {})


@pytest.mark.parametrize(
    ("names", "missing"),
    [
        ({"function": "no-such-function"}, "Function not found"),
        ({"alias": "staging"}, "Cannot find alias"),
        (
            {"target": "99"},
            f"Function not found: arn:aws:lambda:{REGION}:123456789012:function:{FUNCTION}:99",
        ),
        (
            {"current": "98"},
            f"Function not found: arn:aws:lambda:{REGION}:123456789012:function:{FUNCTION}:98",
        ),
    ],
    ids=["function", "alias", "target-version", "current-version"],
)
def test_an_appspec_naming_what_does_not_exist_fails(
    local: Local, names: dict[str, str], missing: str
) -> None:
    blue, green, _ = local.versions
    current, target = names.pop("current", blue), names.pop("target", green)

    info = local.finished(local.deploy(appspec(current, target, **names)))

    error = _failed_before_touching_anything(local, info)
    assert error["message"].startswith(INVALID_APPSPEC)
    assert missing in error["message"]


def test_an_unreadable_appspec_fails(local: Local) -> None:
    info = local.finished(local.deploy('{"version": 0.0, "Resources": ['))

    assert _failed_before_touching_anything(local, info)["message"].startswith(INVALID_APPSPEC)


# ---------------------------------------------------------------- the AppSpec in GetDeployment
def test_get_deployment_carries_the_appspec_content_by_default(local: Local) -> None:
    blue, green, _ = local.versions
    spec = json.loads(appspec(blue, green))
    del spec["Hooks"]
    content = json.dumps(spec)

    info = local.finished(local.deploy(content))

    assert info["revision"]["appSpecContent"]["content"] == content


def test_get_deployment_can_answer_with_the_sha256_only_as_for_cloudformation(
    local: Local,
) -> None:
    """As AWS answers for the deployments CloudFormation creates: the content then comes from
    GetApplicationRevision, as a String revision."""
    local.emulator.get_deployment_sha256_only = True
    blue, green, _ = local.versions
    spec = json.loads(appspec(blue, green))
    del spec["Hooks"]
    content = json.dumps(spec)
    sha256 = hashlib.sha256(content.encode()).hexdigest()

    info = local.finished(local.deploy(content))

    assert info["revision"] == {
        "revisionType": "AppSpecContent",
        "appSpecContent": {"sha256": sha256},
    }
    stored = local.codedeploy.get_application_revision(
        applicationName=APPLICATION, revision=info["revision"]
    )
    assert stored["applicationName"] == APPLICATION
    assert stored["revision"] == {
        "revisionType": "String",
        "string": {"content": content, "sha256": sha256},
    }
    assert stored["revisionInfo"]["registerTime"] == info["createTime"]


def test_get_application_revision_refuses_a_revision_never_deployed(local: Local) -> None:
    with pytest.raises(ClientError) as refused:
        local.codedeploy.get_application_revision(
            applicationName=APPLICATION,
            revision={"revisionType": "AppSpecContent", "appSpecContent": {"sha256": "0" * 64}},
        )
    assert refused.value.response["Error"]["Code"] == "RevisionDoesNotExistException"
    with pytest.raises(ClientError) as no_application:
        local.codedeploy.get_application_revision(
            applicationName="no-such-application",
            revision={"revisionType": "AppSpecContent", "appSpecContent": {"sha256": "0" * 64}},
        )
    assert no_application.value.response["Error"]["Code"] == "ApplicationDoesNotExistException"
