"""A reviewer in a real browser: headless Chromium (Debian's ``chromium`` package, driven by
Playwright through its ``executable_path``; Playwright's own browsers are never downloaded) opens
the approval link from the local outbox, sees the metrics and the plot, types a name, presses
Approve, and the pipeline goes on to promote the model."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from model.prepare import trips_table
from model.schema import FEATURES
from model.synth import synth_trips, write_trips
from safe_deploy import ops
from safe_deploy.traffic import LoadGenerator
from tests.approvals.local import LocalPipeline, wait_for

pytestmark = pytest.mark.timeout(600)

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="module")
def browser_page(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    if not CHROMIUM.exists() or shutil.which(str(CHROMIUM)) is None:
        pytest.fail(
            f"the browser test needs Debian's Chromium at {CHROMIUM}, which is missing: "
            "install it with `apt-get update && apt-get install -y chromium` "
            "(.ci/run does this before `make test`)",
            pytrace=False,
        )
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(tmp_path_factory.mktemp("chromium-profile")),  # a fresh user-data-dir
            executable_path=str(CHROMIUM),
            headless=True,
            args=CHROMIUM_ARGS,
        )
        try:
            yield context.new_page()
        finally:
            context.close()


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalPipeline]:
    local = LocalPipeline.start(tmp_path_factory.mktemp("browser"))
    try:
        yield local
    finally:
        local.stop()


def traffic_rows(workdir: Path, count: int = 400) -> list[list[float]]:
    path = workdir / "data" / "traffic.csv"
    write_trips(synth_trips(count * 2, seed=52, month="2018-03"), path)
    table = trips_table(path).dropna()
    table = table[
        (table.duration_minutes > 0) & (table.trip_distance > 0) & (table.passenger_count > 0)
    ]
    rows: list[list[float]] = table[list(FEATURES)].head(count).to_numpy().tolist()
    return rows


def test_a_reviewer_approves_in_a_browser_and_the_model_is_promoted(
    pipeline: LocalPipeline, browser_page: Any
) -> None:
    execution = pipeline.upload("browser-month", seed=51)
    item = pipeline.wait_for_approval(execution)
    model_id = str(item["model_id"])
    link = pipeline.link_for(model_id)  # the Slack message's Approve button, from the outbox
    page = browser_page

    with page.expect_response(lambda r: "/plot.png?" in r.url, timeout=15_000) as plot_answer:
        response = page.goto(link)
    assert response is not None
    assert response.status == 200
    assert page.locator("h1").inner_text() == f"Promote model {model_id} to production?"
    evidence = page.locator("#evidence").inner_text()
    assert "validation RMSE" in evidence
    assert "test-set RMSE (dev endpoint)" in evidence
    assert f"{json.loads(item['evidence'])['validation_rmse']:.3f}" in evidence
    page.wait_for_function(
        "() => { const img = document.querySelector('#plot');"
        " return img && img.complete && img.naturalWidth > 0; }",
        timeout=15_000,
    )
    assert page.locator("#plot").evaluate("img => img.naturalWidth") >= 300
    # The plot came through the API's binary conversion (the function answers base64 with
    # isBase64Encoded), asked for with the browser's own Accept, whose first media type is not
    # image/png: API Gateway decodes only when that first type matches the binary media types.
    plot = plot_answer.value
    accept = plot.request.header_value("accept") or ""
    assert not accept.startswith("image/png"), accept
    assert plot.status == 200
    assert plot.header_value("content-type") == "image/png"
    assert plot.body().startswith(b"\x89PNG\r\n\x1a\n")
    assert (ops.approval_of(pipeline.target, execution) or {}).get("status") == "PENDING"

    shifts = len(pipeline.cloud.feed.find("codedeploy", "100% of live"))
    page.fill("input[name=name]", "Browser Reviewer")
    page.fill("textarea[name=reason]", "metrics and plot look right")
    page.click("button.approve")
    page.wait_for_selector("text=was approved", timeout=15_000)
    assert "Browser Reviewer" in page.locator("#decision").inner_text()

    # The pipeline goes on: a deploy execution, a CodeDeploy deployment, live on the new model.
    sfn = pipeline.target.client("stepfunctions")
    deploy_machine = pipeline.target.output("DeployStateMachineArn")
    wait_for(
        lambda: (
            model_id
            in [
                e["name"] for e in sfn.list_executions(stateMachineArn=deploy_machine)["executions"]
            ]
        ),
        60,
        "the promotion (deploy state machine) to start",
    )
    wait_for(
        lambda: len(pipeline.cloud.feed.find("codedeploy", "100% of live")) > shifts,
        180,
        "the new model to take live traffic",
    )
    # Clients arrive once it is live: the post-traffic hook wants their requests in its capture.
    traffic = LoadGenerator(pipeline.target, traffic_rows(pipeline.workdir), rate=30).start()
    try:
        ended = pipeline.wait_for_end(execution)
    finally:
        log = traffic.stop()

    assert ended["status"] == "SUCCEEDED", ended.get("cause")
    assert ops.release(pipeline.target).production_endpoint == f"{model_id}-prod"
    assert ops.release(pipeline.target).deployments[0]["status"] == "Succeeded"
    assert log.sent > 0
    assert not log.failed
    approval = ops.approval_of(pipeline.target, execution)
    assert approval is not None
    assert (approval["status"], approval["decided_by"], approval["decided_via"]) == (
        "APPROVED",
        "Browser Reviewer",
        "approval page",
    )
