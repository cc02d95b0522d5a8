"""The model registry end to end, in the local cloud: every candidate that passes the gate is a
version whose approval status follows the person (or the silence), ``rollback`` refuses a version
that is not Approved, and a rollback asked for during a running promotion waits for it behind the
release lock, then goes through the canary.

One local cloud for the module, whose approval window is ten scaled minutes (the timeout
scenario's), and one story: month 1 serves; month 2 is rejected, month 3 times out; month 4 is
promoted; month 5 is being promoted when an operator rolls back to month 1.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import pytest
from click.testing import CliRunner, Result
from pipeline_common import registry
from pipeline_common.registry import Package

from safe_deploy import ops
from safe_deploy.cli import main
from safe_deploy.demo import SCENARIO_PARAMETERS, Demo
from safe_deploy.localcloud.cloud import LOCAL_OPERATOR_ARN
from tests.e2e.conftest import sagemaker_resources, start_demo, subject_arrives

STATE: dict[str, Any] = {}
HOLDING_THE_LOCK = {"UpdateStack", "WaitForUpdate", "DescribeUpdate", "UpdateDone"}


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Demo]:
    cloud, story = start_demo(
        tmp_path_factory.mktemp("registry"), SCENARIO_PARAMETERS["approval-times-out"]
    )
    try:
        yield story
    finally:
        cloud.stop()


def command(demo: Demo, *args: str) -> Result:
    connection = str(demo.workdir / "local.json")
    return CliRunner().invoke(main, list(args), env={"SAFE_DEPLOY_LOCAL": connection})


def versions(demo: Demo) -> dict[str, Package]:
    return {str(p.model_id): p for p in ops.model_packages(demo.target)}


def deploy_executions(demo: Demo) -> list[dict[str, Any]]:
    sfn = demo.target.client("stepfunctions")
    found: list[dict[str, Any]] = sfn.list_executions(
        stateMachineArn=demo.target.output("DeployStateMachineArn")
    )["executions"]
    return found


def history(demo: Demo, name: str) -> list[dict[str, Any]]:
    sfn = demo.target.client("stepfunctions")
    arn = ops.execution_arn(demo.target.output("DeployStateMachineArn"), name)
    events: list[dict[str, Any]] = sfn.get_execution_history(executionArn=arn)["events"]
    return events


def entered(events: list[dict[str, Any]], state: str) -> list[Any]:
    return [
        e["timestamp"]
        for e in events
        if (e.get("stateEnteredEventDetails") or {}).get("name") == state
    ]


def test_month_one_is_the_first_version_and_serves(demo: Demo) -> None:
    model = demo.first_model()
    STATE["first"], STATE["blue"] = model, f"{model}-prod"
    (version,) = versions(demo).values()
    assert (version.version, version.model_id, version.status) == (1, model, registry.APPROVED)
    assert version.in_production
    assert ops.serving_package_arn(demo.target) == version.arn


def test_there_is_no_earlier_model_to_roll_back_to_yet(demo: Demo) -> None:
    result = command(demo, "rollback", "--reason", "just checking")
    assert result.exit_code != 0
    assert "no earlier production model to roll back to" in result.output
    serving = " ".join(command(demo, "rollback", "1", "--reason", "again").output.split())
    assert f"version 1 (model {STATE['first']}) serves production now" in serving
    assert len(deploy_executions(demo)) == 1, "only the first promotion ever ran"


def test_a_rejected_candidate_is_rejected_in_the_registry(demo: Demo) -> None:
    demo.failing_month("approval-rejected", STATE["blue"])
    model = demo.notes["scenario"]["run"].name
    STATE["rejected"] = model
    version = versions(demo)[model]
    assert version.version == 2
    assert version.status == registry.REJECTED
    assert version.approval_description == "rejected by demo reviewer: the plot looks wrong"
    assert version.metadata[registry.TEST_RMSE]  # it was tested before the person decided


def test_a_rollback_to_a_rejected_version_is_refused_with_why(demo: Demo) -> None:
    before = len(deploy_executions(demo))

    result = command(demo, "rollback", "2", "--reason", "try the other one")

    assert result.exit_code != 0
    text = " ".join(result.output.split())
    assert f"version 2 (model {STATE['rejected']}) is Rejected" in text
    assert "rejected by demo reviewer: the plot looks wrong" in text
    assert "only an Approved version can serve production" in text
    assert len(deploy_executions(demo)) == before, "nothing was started"
    assert ops.release(demo.target).production_endpoint == STATE["blue"]


def test_silence_rejects_the_candidate_in_the_registry(demo: Demo) -> None:
    demo.failing_month("approval-times-out", STATE["blue"])
    model = demo.notes["scenario"]["run"].name
    version = versions(demo)[model]
    assert version.version == 3
    assert version.status == registry.REJECTED
    assert version.approval_description == (
        "no decision within 600 seconds: the candidate is rejected"
    )


def test_month_four_is_promoted_and_month_one_leaves_production(demo: Demo) -> None:
    STATE["fourth"] = demo.canary()
    found = versions(demo)
    assert found[STATE["fourth"]].in_production
    assert found[STATE["first"]].production_until is not None
    assert not found[STATE["first"]].in_production


def test_a_rollback_during_a_running_promotion_waits_for_it(demo: Demo) -> None:
    """Month 5 is approved and its promotion holds the release lock (its stack update is under
    way) when an operator rolls back: the rollback's green is made at once, then it waits for
    the lock; month 5 goes into production first, and the rollback then replaces it, through
    its own canary. Both are watched by client traffic; none fails."""
    fifth = demo.upload(demo.month(5))
    link = demo.to_approval(fifth)
    traffic = demo.load(demo.traffic_rows(1200, seed=15), rate=30)
    try:
        demo.decide_on_page(link, True, "demo reviewer (--auto-approve)")
        sfn = demo.target.client("stepfunctions")
        promotion = ops.execution_arn(demo.target.output("DeployStateMachineArn"), fifth)
        demo.cloud.wait_for(
            lambda: _step(sfn, promotion) in HOLDING_THE_LOCK,
            180,
            what="month 5's promotion to hold the release lock",
        )

        result = command(
            demo, "rollback", "--reason", "month 4 and 5 fares: complaints", "--no-wait"
        )

        assert result.exit_code == 0, result.output
        said = " ".join(result.output.split())
        assert f"to version 1 ({STATE['first']}" in said
        assert f"a release is under way ({fifth}): this rollback waits for the release lock" in said
        name = re.search(r"started (\S+),", said)
        assert name is not None
        rollback = ops.execution_arn(demo.target.output("DeployStateMachineArn"), name.group(1))
        ended = demo.cloud.wait_for(
            lambda: (lambda d: d if d["status"] != "RUNNING" else None)(
                sfn.describe_execution(executionArn=rollback)
            ),
            360,
            what="the rollback to end",
        )
        run = demo.finish(fifth)
    finally:
        log = traffic.stop()

    assert ended["status"] == "SUCCEEDED", ended.get("cause")
    assert run.status == "SUCCEEDED", run.cause
    assert not log.failed, log.failed[:3]
    waited = history(demo, name.group(1))
    promoted = sfn.describe_execution(executionArn=promotion)
    assert entered(waited, "WaitForReleaseLock"), "the rollback waited for the lock"
    (read_production,) = entered(waited, "ReadProduction")
    assert read_production >= promoted["stopDate"], "it read production after month 5's release"
    assert entered(waited, "CreateGreenModel")[0] < promoted["stopDate"], "green was made at once"

    first, fourth = STATE["first"], STATE["fourth"]
    assert ops.release(demo.target).production_endpoint == f"{first}-prod"
    assert sagemaker_resources(demo)["endpoints"] == [f"{first}-prod"]
    found = versions(demo)
    assert found[first].in_production
    assert ops.serving_package_arn(demo.target) == found[first].arn
    served = found[fifth]
    assert served.production_since is not None
    assert served.production_until is not None
    assert served.production_since <= served.production_until
    fourth_until = found[fourth].production_until
    assert fourth_until is not None
    assert fourth_until <= served.production_until
    operator = LOCAL_OPERATOR_ARN.format(demo.cloud.settings.account)
    assert found[first].metadata[registry.ROLLED_BACK_BY] == operator
    given = json.loads(sfn.describe_execution(executionArn=rollback)["input"])["rollback"]
    assert given["reason"] == "month 4 and 5 fares: complaints"
    assert given["from_model_package_arn"] == found[fourth].arn
    assert subject_arrives(demo.cloud, "Production rolled back to model", first)
    STATE["fifth"] = fifth


def shows(output: str, phrase: str) -> bool:
    """A table shows ``phrase`` when its words appear in order: a cell wraps at spaces, and the
    lines of a row interleave the cells beside it."""
    words = [re.escape(word) for word in phrase.split()]
    return re.search(r"\b" + r".*?".join(words), output, re.DOTALL) is not None


def test_models_lists_every_version_and_the_one_serving(demo: Demo) -> None:
    result = command(demo, "models")

    assert result.exit_code == 0, result.output
    output = result.output
    group = demo.target.output("ModelPackageGroupName")
    assert f"model registry {group}" in output
    rows = {p.version: p for p in ops.model_packages(demo.target)}
    assert sorted(rows) == [1, 2, 3, 4, 5]
    for version in rows.values():
        assert str(version.model_id) in output
    assert shows(output, "Rejected rejected by demo reviewer: the plot looks wrong")
    assert shows(output, "Rejected no decision within 600 seconds: the candidate is rejected")
    assert shows(output, "Approved approved by demo reviewer (--auto-approve)")
    assert output.count("serves") == 1
    lines = output.splitlines()
    (serving,) = [i for i, line in enumerate(lines) if "serves" in line]
    (first,) = [i for i, line in enumerate(lines) if STATE["first"] in line]
    assert serving == first, "the version serving now is month 1's"
    assert not ops.running_releases(demo.target)


def _step(sfn: Any, arn: str) -> str | None:
    try:
        return ops.last_step(sfn, arn)
    except sfn.exceptions.ExecutionDoesNotExist:
        return None
