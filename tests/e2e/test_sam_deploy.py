"""A person deploys with the real SAM CLI into the local cloud, before and after models serve.

CloudFormation owns the predict function's ``live`` alias: a code deploy is canaried by CodeDeploy
with both hooks whether or not a model serves, and no deploy (plain, guided, or with a stale
``samconfig.toml``) changes which model serves. The tests run what the README says:
``sam build``, then ``sam deploy --config-env local`` with the local cloud's environment.
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest

from safe_deploy import ops
from safe_deploy.demo import REVISION_HEADER, Demo, predict_revision
from tests.e2e.conftest import Story, live_version_endpoint, sagemaker_resources
from tests.support_sam import built_project, run
from tests.support_template import load_sam


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return built_project(tmp_path_factory.mktemp("project"))


def sam_deploy(
    demo: Demo, project: Path, *arguments: str, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    return run(
        ["deploy", "--config-env", "local", "--no-progressbar", *arguments],
        cwd=project,
        cloud=demo.cloud,
        stdin=stdin,
    )


def stack_status(demo: Demo) -> str:
    cloudformation = demo.target.client("cloudformation")
    stack = cloudformation.describe_stacks(StackName=demo.cloud.settings.stack_name)["Stacks"][0]
    return str(stack["StackStatus"])


def serving(demo: Demo) -> str:
    """The endpoint the live alias serves: its version's own, or the production record's."""
    _, bound, routing = live_version_endpoint(demo)
    assert not routing.get("AdditionalVersionWeights"), "a deployment is still shifting"
    record = ops.release(demo.target).production_endpoint or "none"
    return bound or record


def hook_verdicts(demo: Demo, since: int) -> list[str]:
    return [a.message for a in demo.cloud.feed.items[since:] if a.source == "codedeploy"]


def said(result: subprocess.CompletedProcess[str]) -> str:
    return result.stdout[-6000:] + result.stderr[-3000:]


def failures(demo: Demo) -> list[str]:
    """The reasons of the stack's failed resources, newest first (what a person would read)."""
    events = demo.target.client("cloudformation").describe_stack_events(
        StackName=demo.cloud.settings.stack_name
    )["StackEvents"]
    return [
        f"{e['LogicalResourceId']}: {e.get('ResourceStatusReason')}"
        for e in events
        if e["ResourceStatus"].endswith("_FAILED")
    ]


def test_a_code_deploy_before_any_model_serves(demo: Demo, project: Path) -> None:
    """The first thing a new user does: deploy. No model exists; the hooks say so and pass."""
    since = len(demo.cloud.feed.items)
    result = sam_deploy(demo, project)
    assert result.returncode == 0, said(result)
    assert "Successfully created/updated stack" in result.stdout
    assert stack_status(demo) == "UPDATE_COMPLETE"
    verdicts = hook_verdicts(demo, since)
    assert any("BeforeAllowTraffic: Succeeded" in v for v in verdicts), verdicts
    assert any("AfterAllowTraffic: Succeeded" in v for v in verdicts), verdicts
    logs = "".join(p.read_text() for p in demo.cloud.host.logs_dir.glob("*TrafficHook*.log"))
    assert "no model is in production yet" in logs

    again = sam_deploy(demo, project)
    assert again.returncode == 0, said(again)
    assert "No changes to deploy" in again.stdout

    outputs = run(
        [
            "list",
            "stack-outputs",
            "--stack-name",
            demo.cloud.settings.stack_name,
            "--output",
            "json",
        ],
        cloud=demo.cloud,
    )
    assert outputs.returncode == 0, said(outputs)
    keys = {o["OutputKey"] for o in json.loads(outputs.stdout)}
    assert {"ApiUrl", "DataBucketName", "PredictFunctionName"} <= keys


def test_a_code_deploy_after_two_promotions_keeps_the_promoted_model(
    demo: Demo, story: Story, project: Path
) -> None:
    story.canary()
    promoted = serving(demo)
    assert promoted == ops.release(demo.target).production_endpoint
    version_before, _, _ = live_version_endpoint(demo)

    app = project / ".aws-sam" / "build" / "PredictFunction" / "app.py"
    app.write_text(app.read_text() + predict_revision("2"))
    since = len(demo.cloud.feed.items)
    result = sam_deploy(demo, project)
    assert result.returncode == 0, said(result)
    assert stack_status(demo) == "UPDATE_COMPLETE"

    version, _, _ = live_version_endpoint(demo)
    assert version != version_before
    assert serving(demo) == promoted == ops.release(demo.target).production_endpoint
    verdicts = hook_verdicts(demo, since)
    assert any("10% of live" in v for v in verdicts), "the new code was canaried"
    assert any("BeforeAllowTraffic: Succeeded" in v for v in verdicts), verdicts
    assert any("AfterAllowTraffic: Succeeded" in v for v in verdicts), verdicts
    answer = demo.target.signed("POST", "/predict", b"12.5,1,2.4", {"Content-Type": "text/csv"})
    assert answer.status_code == 200, answer.text
    assert answer.headers.get(REVISION_HEADER) == "2"
    assert answer.headers["X-SageMaker-Endpoint"] == promoted


def test_a_guided_deploy_accepting_the_defaults_keeps_the_model(
    demo: Demo, story: Story, project: Path
) -> None:
    story.first_model()  # a model serves
    promoted = serving(demo)
    parameters = len(load_sam()["Parameters"])
    # stack name, region, every parameter, then: confirm changes (N), allow role creation (Y),
    # disable rollback (N), save the arguments (Y), the file, the environment.
    answers = ["", ""] + [""] * parameters + ["", "", "", "", "", ""]
    result = sam_deploy(demo, project, "--guided", stdin="\n".join(answers) + "\n")
    assert result.returncode == 0, said(result)
    assert stack_status(demo) == "UPDATE_COMPLETE"
    assert serving(demo) == promoted == ops.release(demo.target).production_endpoint
    saved = (project / "samconfig.toml").read_text()
    assert "ServingEndpoint" in saved  # saved as the guided deploy sent it: empty


def test_a_stale_samconfig_never_changes_the_model(demo: Demo, story: Story, project: Path) -> None:
    story.canary()  # month 1's endpoint is retired
    promoted = serving(demo)
    retired = story.first_model().endpoint
    assert retired is not None
    assert retired != promoted
    config = project / "samconfig.toml"
    text = config.read_text()
    stale = f'ServingEndpoint=\\"{retired}\\"'
    if "ServingEndpoint=" in text:  # the guided deploy saved it (empty): someone edits it
        text = re.sub(r'ServingEndpoint=\\"[^"\\]*\\"', lambda _: stale, text)
    else:
        text = text.replace(
            "[local.deploy.parameters]\n",
            f'[local.deploy.parameters]\nparameter_overrides = "{stale}"\n',
        )
    config.write_text(text)
    assert retired in config.read_text()
    result = sam_deploy(demo, project)
    assert result.returncode != 0
    assert stack_status(demo) == "UPDATE_ROLLBACK_COMPLETE"
    assert "BeforeAllowTraffic" in said(result)
    assert serving(demo) == promoted == ops.release(demo.target).production_endpoint
    assert sagemaker_resources(demo)["endpoints"] == [promoted]


def test_sam_deploy_creates_a_new_stack_and_sam_delete_removes_it(
    demo: Demo, project: Path
) -> None:
    """A second stack of the application, created by the SAM CLI from nothing."""
    name = "safe-deploy-second"
    result = sam_deploy(demo, project, "--stack-name", name)
    assert result.returncode == 0, said(result)
    cloudformation = demo.target.client("cloudformation")
    stack = cloudformation.describe_stacks(StackName=name)["Stacks"][0]
    assert stack["StackStatus"] == "CREATE_COMPLETE"
    assert {o["OutputKey"] for o in stack["Outputs"]} >= {"ApiUrl", "PredictFunctionName"}
    deleted = run(["delete", "--stack-name", name, "--no-prompts"], cloud=demo.cloud)
    assert deleted.returncode == 0, said(deleted)
    gone = cloudformation.list_stacks(StackStatusFilter=["DELETE_COMPLETE"])["StackSummaries"]
    assert stack["StackId"] in {s["StackId"] for s in gone}


def test_sam_delete_removes_the_stack_and_keeps_the_data(demo: Demo) -> None:
    data = demo.target.output("DataBucketName")
    result = run(
        ["delete", "--stack-name", demo.cloud.settings.stack_name, "--no-prompts"],
        cloud=demo.cloud,
    )
    assert result.returncode == 0, said(result)
    cloudformation = demo.target.client("cloudformation")
    summaries = cloudformation.list_stacks(StackStatusFilter=["DELETE_COMPLETE"])
    assert demo.cloud.settings.stack_name in {s["StackName"] for s in summaries["StackSummaries"]}
    buckets = {b["Name"] for b in demo.target.client("s3").list_buckets()["Buckets"]}
    assert data in buckets  # DeletionPolicy: Retain
