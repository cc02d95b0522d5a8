"""The demo story in the local cloud: S3 upload to a canaried, monitored production model. Each
test tells the story as far as it needs (``Story``), so it passes alone as in order."""

from __future__ import annotations

import json

from pipeline_common import registry
from pipeline_common.capture import parse_record
from pipeline_common.layout import execution_arn

from safe_deploy import ops
from safe_deploy.demo import ROLLBACK_REASON, Demo
from safe_deploy.localcloud.cloud import LOCAL_OPERATOR_ARN
from tests.e2e.conftest import (
    Story,
    live_version_endpoint,
    outbox,
    sagemaker_resources,
    subject_arrives,
)
from tests.support import metric_sum


def test_first_model_reaches_production_through_a_person(demo: Demo, story: Story) -> None:
    first = story.first_model()
    model = first.model
    endpoint = f"{model}-prod"

    release = ops.release(demo.target)
    assert release.production_endpoint == endpoint
    assert release.champion["model_id"] == model
    _, bound, routing = live_version_endpoint(demo)
    assert bound == endpoint
    assert not routing.get("AdditionalVersionWeights")
    resources = sagemaker_resources(demo)
    assert resources["endpoints"] == [endpoint], "the dev endpoint must be gone"
    assert resources["schedules"] == [f"{endpoint}-monitor"]

    approval = ops.approval_of(demo.target, ops.find_run(demo.target, model))
    assert approval is not None
    assert approval["status"] == "APPROVED"
    assert approval["decided_by"] == "demo reviewer (--auto-approve)"
    assert subject_arrives(demo.cloud, "Approve fare model", model)
    assert subject_arrives(demo.cloud, f"Model {model} is in production")
    assert first.failed == 0


def test_second_model_is_canaried_then_takes_all_traffic(demo: Demo, story: Story) -> None:
    canary = story.canary()
    model = canary.model
    green, blue = f"{model}-prod", f"{story.first_model().model}-prod"

    assert 3.0 <= canary.green_share <= 25.0, canary.bake
    assert canary.failed == 0
    assert canary.sent > 100
    assert "API requests" in (canary.post_traffic or "")
    assert demo.cloud.feed.find("codedeploy", "AfterAllowTraffic: Succeeded")
    # green is made after the approval: AWS's 10 minutes of endpoint creation come before traffic
    assert canary.to_canary_aws_minutes is not None
    assert 10.0 <= canary.to_canary_aws_minutes <= 15.0, canary.to_canary_aws_minutes

    version, bound, routing = live_version_endpoint(demo)
    assert bound == green
    assert not routing.get("AdditionalVersionWeights")
    # What an operator reads in CloudWatch: the requests green's version answered through live.
    function = demo.target.output("PredictFunctionName")
    dimensions = [
        ("FunctionName", function),
        ("Resource", f"{function}:live"),
        ("ExecutedVersion", version),
    ]
    cloudwatch = demo.target.client("cloudwatch")
    answered = metric_sum(cloudwatch, "AWS/Lambda", "Invocations", dimensions)
    assert answered >= canary.bake[green] > 0, (answered, canary.bake)
    resources = sagemaker_resources(demo)
    assert resources == {
        "endpoints": [green],
        "configs": [green],
        "models": [green],
        "schedules": [f"{green}-monitor"],
    }, f"blue {blue} must be retired"

    s3 = demo.target.client("s3")
    bucket = demo.target.output("CaptureBucketName")
    keys = [
        o["Key"]
        for page in s3.get_paginator("list_objects_v2").paginate(
            Bucket=bucket, Prefix=f"datacapture/{green}/AllTraffic/"
        )
        for o in page.get("Contents", [])
    ]
    assert keys
    # <prefix>/<endpoint>/<variant>/yyyy/mm/dd/hh/<file>.jsonl, as SageMaker lays capture out
    assert all(k.endswith(".jsonl") and k.count("/") == 7 for k in keys), keys[:3]
    records = [
        parse_record(json.loads(line))
        for key in keys
        for line in s3.get_object(Bucket=bucket, Key=key)["Body"].read().splitlines()
    ]
    client_records = [r for r in records if (r.inference_id or "").startswith("api-")]
    assert len(client_records) >= 20
    assert all(len(r.input_data.split(",")) == 3 for r in client_records)
    assert all(float(r.output_data.strip()) > 0 for r in client_records)


def test_each_promoted_candidate_is_an_approved_version_of_the_registry(
    demo: Demo, story: Story
) -> None:
    first, second = story.first_model().model, story.canary().model
    packages = {p.model_id: p for p in ops.model_packages(demo.target)}
    assert set(packages) == {first, second}
    for model in (first, second):
        package = packages[model]
        assert package.status == registry.APPROVED
        assert package.approval_description == "approved by demo reviewer (--auto-approve)"
        assert package.validation_rmse is not None
        assert package.test_rmse is not None
        assert package.model_data_url == (
            f"s3://{demo.target.output('ArtifactBucketName')}/runs/{model}/model/"
            f"{model}-train/output/model.tar.gz"
        )
        assert package.baseline["statistics"].endswith(f"runs/{model}/baseline/statistics.json")
        assert package.metadata[registry.SOURCE_KEY].startswith("raw/")
    assert packages[second].in_production
    assert packages[first].production_until is not None
    assert not packages[first].in_production
    assert ops.serving_package_arn(demo.target) == packages[second].arn


def test_production_rolls_back_to_month_one_through_the_canary(demo: Demo, story: Story) -> None:
    """``rollback`` without a version: the one that left production last (month 1's) serves
    again, released by the deploy state machine from its package through CodeDeploy's canary
    and the hooks, while clients call; month 2's endpoint is retired, nothing retrained."""
    first, second = story.first_model().model, story.canary().model
    shifted = len(demo.cloud.feed.find("codedeploy", "100% of live"))
    trainings = len(demo.cloud.feed.find("sagemaker", "training job"))

    chapter = story.rollback()
    name = chapter.execution

    assert (chapter.model, chapter.replaced) == (first, second)
    assert chapter.failed == 0
    assert chapter.sent > 20
    # the demo showed every state the release went through, once each, from its first
    steps = chapter.steps
    assert steps[0] == "ReadRelease"
    assert len(set(steps)) == len(steps), steps
    release_path = ["AcquireReleaseLock", "UpdateStack", "WaitForUpdate", "DescribeUpdate"]
    release_path += ["RecordProductionEndpoint", "MarkRollback", "RetireBlue", "NotifyRolledBack"]
    release_path += ["Promoted"]
    assert [step for step in steps if step in release_path] == release_path, steps
    release = ops.release(demo.target)
    assert release.production_endpoint == f"{first}-prod"
    assert release.champion["model_id"] == first
    _, bound, routing = live_version_endpoint(demo)
    assert bound == f"{first}-prod"
    assert not routing.get("AdditionalVersionWeights")
    assert sagemaker_resources(demo) == {
        "endpoints": [f"{first}-prod"],
        "configs": [f"{first}-prod"],
        "models": [f"{first}-prod"],
        "schedules": [f"{first}-prod-monitor"],
    }
    feed = demo.cloud.feed
    assert len(feed.find("codedeploy", "100% of live")) == shifted + 1
    assert (
        feed.find("codedeploy", "10% of live")[-1].at
        < feed.find("codedeploy", "100% of live")[-1].at
    )
    assert feed.find("codedeploy", "AfterAllowTraffic: Succeeded")
    assert len(feed.find("sagemaker", "training job")) == trainings  # no retraining

    packages = {p.model_id: p for p in ops.model_packages(demo.target)}
    back, replaced = packages[first], packages[second]
    assert back.in_production
    assert not replaced.in_production
    assert replaced.production_until is not None
    assert back.production_since is not None
    assert replaced.production_until >= back.production_since
    operator = LOCAL_OPERATOR_ARN.format(demo.cloud.settings.account)
    assert back.metadata[registry.ROLLED_BACK_BY] == operator
    assert back.metadata[registry.ROLLBACK_REASON] == registry.fit_metadata(ROLLBACK_REASON)
    assert ops.serving_package_arn(demo.target) == back.arn
    sfn = demo.target.client("stepfunctions")
    execution = sfn.describe_execution(
        executionArn=execution_arn(demo.target.output("DeployStateMachineArn"), name)
    )
    given = json.loads(execution["input"])["rollback"]
    assert (given["requested_by"], given["reason"]) == (operator, ROLLBACK_REASON)
    assert subject_arrives(demo.cloud, "Production rolled back to model", first)


def test_a_persons_code_deploy_is_canaried_and_keeps_the_model(demo: Demo, story: Story) -> None:
    """The demo's chapter with the real ``sam deploy``: the new code goes through CodeDeploy's
    canary (10%, then 100%), the hooks compare its answers with the current code's, and the
    model serving does not change."""
    story.first_model()  # a model serves
    serving = ops.release(demo.target).production_endpoint
    chapter = story.code_deploy()
    assert chapter.serving == serving == ops.release(demo.target).production_endpoint
    assert chapter.revision == "demo"
    assert any("10% of live" in s for s in chapter.shifts), chapter.shifts
    assert any("100% of live" in s for s in chapter.shifts), chapter.shifts
    assert "as version" in (chapter.hook or ""), chapter.hook


def test_drifted_traffic_is_reported_by_feature(demo: Demo, story: Story) -> None:
    violations = story.drift().violations
    drifted = {
        v["feature_name"]
        for v in violations
        if v["constraint_check_type"] == "baseline_drift_check"
    }
    assert {"trip_distance", "duration_minutes"} <= drifted
    assert "passenger_count" not in drifted
    subject_arrives(demo.cloud, "Drift on")
    messages = [m for m in outbox(demo.cloud) if (m.get("subject") or "").startswith("Drift on")]
    assert messages
    assert "trip_distance" in messages[-1]["message"]


def test_report_folder_has_the_summary_and_plots(story: Story) -> None:
    page = story.report()
    folder = page.parent
    assert page.name == "index.html"
    assert "Traffic split over time" in page.read_text()
    for plot in ("traffic_split.png", "drift_by_feature.png"):
        assert (folder / plot).read_bytes().startswith(b"\x89PNG")
    assert len(list(folder.glob("actual_vs_predicted_*.png"))) == 2
    summary = json.loads((folder / "summary.json").read_text())
    assert story.first_model().model in summary["seen_runs"]
    assert summary["canary"]["model"] == story.canary().model
    assert summary["drift"]["violations"]
