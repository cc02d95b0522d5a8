"""Promotions and code deploys in any order, in the local cloud, with the real SAM CLI.

CloudFormation runs one update per stack and the pipeline's release lock runs one promotion at a
time, so nothing races: every release ends with ``live`` on a version whose endpoint is the
production record, and no endpoint left behind.
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import requests

from safe_deploy import ops
from safe_deploy.demo import REVISION_HEADER, Demo, predict_revision
from tests.e2e.conftest import Story, live_version_endpoint, sagemaker_resources
from tests.e2e.test_sam_deploy import (
    failures,
    said,
    sam_deploy,
    serving,
    stack_status,
)
from tests.support_sam import built_project

ROWS = "12.5,1,2.4"
LONG_CANARY = "Canary10Percent30Minutes"


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return built_project(tmp_path_factory.mktemp("project"))


def consistent(demo: Demo) -> str:
    """``live`` serves the production record's endpoint, and it is the only one."""
    record = ops.release(demo.target).production_endpoint
    assert record not in (None, "", "none")
    assert serving(demo) == record
    assert sagemaker_resources(demo)["endpoints"] == [record]
    return record


def wait_for_stack(demo: Demo, status: str, timeout: float = 120) -> None:
    demo.cloud.wait_for(lambda: stack_status(demo) == status, timeout, what=f"the stack {status}")


def revision(demo: Demo) -> str | None:
    answer = demo.target.signed("POST", "/predict", ROWS.encode(), {"Content-Type": "text/csv"})
    assert answer.status_code == 200, answer.text
    return answer.headers.get(REVISION_HEADER)


def change_predict(project: Path, value: str) -> None:
    app = project / ".aws-sam" / "build" / "PredictFunction" / "app.py"
    text = app.read_text().split("\n\n_serve = lambda_handler")[0]
    app.write_text(text + predict_revision(value))


def test_the_first_promotion_is_not_rolled_back_by_noise(demo: Demo, story: Story) -> None:
    """Before any model, /health answers 503 to anyone: the API-wide 5xx count is no reason to
    roll a promotion back, so it is not one of the rollback alarms."""
    health = f"{demo.target.api_url}/health"
    stop, answers = threading.Event(), []

    def hammer() -> None:
        while not stop.is_set():
            answers.append(requests.get(health, timeout=10).status_code)
            time.sleep(0.02)

    noise = threading.Thread(target=hammer, daemon=True)
    noise.start()
    try:
        story.first_model()
    finally:
        stop.set()
        noise.join()
    assert 503 in answers
    consistent(demo)


def test_three_simultaneous_approvals_end_consistent(demo: Demo, story: Story) -> None:
    story.first_model()  # the clients are served throughout: a model is in production
    models = [demo.upload(demo.month(index)) for index in (2, 3, 4)]
    links = [demo.to_approval(model) for model in models]
    traffic = demo.load(demo.traffic_rows(3000, seed=21), rate=40)
    try:
        with ThreadPoolExecutor(3) as pool:  # within the same second
            list(pool.map(lambda link: demo.decide_on_page(link, True, "three reviewers"), links))
        runs = [demo.finish(model) for model in models]
    finally:
        log = traffic.stop()
    assert [run.status for run in runs] == ["SUCCEEDED"] * 3, [demo.explain(r) for r in runs]
    assert consistent(demo) in {f"{model}-prod" for model in models}
    assert not log.failed


def test_a_code_deploy_during_a_promotion_is_refused_and_then_goes_through(
    demo: Demo, project: Path
) -> None:
    # A person lengthens the canary (36 s here: long enough for their next deploy to meet a
    # promotion's update); the artifacts are then in S3, so that deploy starts at once.
    warm = sam_deploy(demo, project, "--parameter-overrides", f"DeploymentType={LONG_CANARY}")
    assert warm.returncode == 0, said(warm) + "\n".join(failures(demo))
    model = demo.upload(demo.month(5))
    link = demo.to_approval(model)
    change_predict(project, "3")
    traffic = demo.load(demo.traffic_rows(2000, seed=22), rate=40)
    try:
        demo.decide_on_page(link, True, "reviewer")
        wait_for_stack(demo, "UPDATE_IN_PROGRESS")
        refused = sam_deploy(demo, project)
        assert refused.returncode != 0, said(refused)
        assert "can not be updated" in said(refused), "\n".join(failures(demo))
        run = demo.finish(model)
    finally:
        traffic.stop()
    assert run.status == "SUCCEEDED", demo.explain(run)
    assert consistent(demo) == f"{model}-prod"

    again = sam_deploy(
        demo, project, "--parameter-overrides", "DeploymentType=Canary10Percent5Minutes"
    )
    assert again.returncode == 0, said(again) + "\n".join(failures(demo))
    assert consistent(demo) == f"{model}-prod"
    assert revision(demo) == "3"


def test_a_promotion_during_a_code_deploy_waits_its_turn(demo: Demo, project: Path) -> None:
    model = demo.upload(demo.month(6))
    link = demo.to_approval(model)
    change_predict(project, "4")
    deploys: list[int] = []
    person = threading.Thread(target=lambda: deploys.append(sam_deploy(demo, project).returncode))
    traffic = demo.load(demo.traffic_rows(2000, seed=23), rate=40)
    try:
        person.start()
        wait_for_stack(demo, "UPDATE_IN_PROGRESS")
        demo.decide_on_page(link, True, "reviewer")
        person.join(timeout=600)
        run = demo.finish(model)
    finally:
        traffic.stop()
    assert deploys == [0]
    assert run.status == "SUCCEEDED", demo.explain(run)
    assert consistent(demo) == f"{model}-prod"
    assert revision(demo) == "4"  # the promotion kept the person's code (UsePreviousTemplate)


def test_layer_and_model_code_changes_reach_where_they_belong(demo: Demo, project: Path) -> None:
    build = project / ".aws-sam" / "build"
    layout = build / "CommonLayer" / "python" / "pipeline_common" / "layout.py"
    layout.write_text(layout.read_text() + "\n# a layer change\n")
    prepare = build / "PublishModelCodeFunction" / "model" / "prepare.py"
    prepare.write_text(prepare.read_text() + "\n# a model code change\n")
    cloudformation = demo.target.client("cloudformation")

    def model_code() -> str:
        detail = cloudformation.describe_stack_resource(
            StackName=demo.cloud.settings.stack_name, LogicalResourceId="ModelCode"
        )["StackResourceDetail"]
        return str(detail["PhysicalResourceId"])

    before = model_code()
    version_before, _, _ = live_version_endpoint(demo)
    since = len(demo.cloud.feed.items)
    result = sam_deploy(demo, project)
    assert result.returncode == 0, said(result)

    shifts = [a.message for a in demo.cloud.feed.items[since:] if "10% of live" in a.message]
    assert shifts, "the layer change was canaried"
    assert live_version_endpoint(demo)[0] != version_before
    after = model_code()
    assert after != before
    bucket, _, prefix = after.removeprefix("s3://").partition("/")
    code = demo.target.client("s3").get_object(Bucket=bucket, Key=f"{prefix}model/prepare.py")
    assert b"# a model code change" in code["Body"].read()

    model = demo.upload(demo.month(7))
    sagemaker = demo.target.client("sagemaker")

    def prepared() -> dict[str, Any] | None:  # the run's first steps come before the job
        try:
            found: dict[str, Any] = sagemaker.describe_processing_job(
                ProcessingJobName=f"{model}-prepare"
            )
        except sagemaker.exceptions.ClientError:
            return None
        return found

    job = demo.cloud.wait_for(prepared, 300, what=f"{model}'s PrepareData job")
    inputs = {i["InputName"]: i["S3Input"]["S3Uri"] for i in job["ProcessingInputs"]}
    assert inputs["code"].rstrip("/") == after.rstrip("/")
