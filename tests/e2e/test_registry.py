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
from dataclasses import dataclass
from typing import Any

import pytest
from click.testing import CliRunner, Result
from pipeline_common import registry
from pipeline_common.layout import execution_arn
from pipeline_common.registry import Package

from safe_deploy import ops
from safe_deploy.cli import main
from safe_deploy.demo import CanaryRelease, Demo, ScenarioOutcome
from safe_deploy.localcloud.cloud import LOCAL_OPERATOR_ARN
from safe_deploy.scenarios import SCENARIO_PARAMETERS
from safe_deploy.traffic import LoadGenerator, TrafficLog
from tests.e2e.conftest import Story, running_demo, sagemaker_resources, subject_arrives

HOLDING_THE_LOCK = {"UpdateStack", "WaitForUpdate", "DescribeUpdate", "UpdateDone"}
WAITING_FOR_THE_LOCK = {"ReadLockHolder", "DescribeLockHolder", "LockHolderRunning"}
WAITING_FOR_THE_LOCK |= {"WaitForReleaseLock", "AcquireReleaseLock"}
COMPLAINTS = "month 4 and 5 fares: complaints"


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Demo]:
    with running_demo(
        tmp_path_factory.mktemp("registry"), SCENARIO_PARAMETERS["approval-times-out"]
    ) as story:
        yield story


@dataclass(frozen=True)
class RollbackDuringPromotion:
    """Month 5's promotion and the rollback started while it held the release lock, as both
    ended."""

    fifth: str  # month 5's model
    promotion: str  # its deploy execution's ARN
    output: str  # what ``rollback --no-wait`` printed
    exit_code: int
    rollback: str  # the rollback's deploy execution ARN
    ended: dict[str, Any]  # the rollback's execution, described
    run: ops.Run  # month 5's training run
    log: TrafficLog  # the clients' requests throughout


@dataclass
class RegistryStory(Story):
    """The module's story: month 1 serves; month 2 is rejected, month 3 times out; month 4 is
    promoted; month 5 is being promoted when an operator rolls back to month 1."""

    second: ScenarioOutcome | None = None
    third: ScenarioOutcome | None = None
    fourth: CanaryRelease | None = None
    fifth: RollbackDuringPromotion | None = None

    @property
    def blue(self) -> str:
        return f"{self.first_model().model}-prod"

    def rejected(self) -> ScenarioOutcome:
        self.second = self.once(
            "month 2", self.second, lambda: self.demo.failing_month("approval-rejected", self.blue)
        )
        return self.second

    def timed_out(self) -> ScenarioOutcome:
        self.rejected()  # version 2
        self.third = self.once(
            "month 3", self.third, lambda: self.demo.failing_month("approval-times-out", self.blue)
        )
        return self.third

    def month_four(self) -> CanaryRelease:
        self.first_model()  # the version it replaces
        self.fourth = self.once("month 4", self.fourth, self.demo.canary)
        return self.fourth

    def rollback_during_promotion(self) -> RollbackDuringPromotion:
        self.month_four()  # the version the rollback replaces in the end
        self.fifth = self.once("month 5 and the rollback", self.fifth, self._race)
        return self.fifth

    def _race(self) -> RollbackDuringPromotion:
        """Month 5's promotion holds the release lock until the rollback asks for it: its
        post-traffic hook waits for client requests on green, and the clients arrive only once
        the rollback waits for the lock (however fast the promotion's other steps run)."""
        demo = self.demo
        fifth = demo.upload(demo.month(5))
        link = demo.to_approval(fifth)
        traffic: LoadGenerator | None = None
        try:
            demo.decide_on_page(link, True, "demo reviewer (--auto-approve)")
            sfn = demo.target.client("stepfunctions")
            machine = demo.target.output("DeployStateMachineArn")
            promotion = execution_arn(machine, fifth)
            demo.cloud.wait_for(
                lambda: _step(sfn, promotion) in HOLDING_THE_LOCK,
                180,
                what="month 5's promotion to hold the release lock",
            )
            result = command(demo, "rollback", "--reason", COMPLAINTS, "--no-wait")
            started = re.search(r"started (\S+),", " ".join(result.output.split()))
            if started is None:
                raise AssertionError(f"no rollback started ({result.exit_code}): {result.output}")
            rollback = execution_arn(machine, started.group(1))
            demo.cloud.wait_for(
                lambda: (
                    _step(sfn, rollback) in WAITING_FOR_THE_LOCK
                    or sfn.describe_execution(executionArn=rollback)["status"] != "RUNNING"
                ),
                60,
                what="the rollback to ask for the release lock",
            )
            traffic = demo.load(demo.traffic_rows(1200, seed=15), rate=30)
            ended = demo.cloud.wait_for(
                lambda: (lambda d: d if d["status"] != "RUNNING" else None)(
                    sfn.describe_execution(executionArn=rollback)
                ),
                360,
                what="the rollback to end",
            )
            run = demo.finish(fifth)
        finally:
            if traffic is not None:
                log = traffic.stop()
        return RollbackDuringPromotion(
            fifth, promotion, result.output, result.exit_code, rollback, ended, run, log
        )


@pytest.fixture(scope="module")
def story(demo: Demo) -> RegistryStory:
    return RegistryStory(demo)


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
    arn = execution_arn(demo.target.output("DeployStateMachineArn"), name)
    pages = sfn.get_paginator("get_execution_history").paginate(executionArn=arn)
    return [event for page in pages for event in page["events"]]


def entered(events: list[dict[str, Any]], state: str) -> list[Any]:
    return [
        e["timestamp"]
        for e in events
        if (e.get("stateEnteredEventDetails") or {}).get("name") == state
    ]


def exited(events: list[dict[str, Any]], state: str) -> list[Any]:
    return [
        e["timestamp"]
        for e in events
        if (e.get("stateExitedEventDetails") or {}).get("name") == state
    ]


def test_month_one_is_the_first_version_and_serves(demo: Demo, story: RegistryStory) -> None:
    model = story.first_model().model
    (version,) = versions(demo).values()
    assert (version.version, version.model_id, version.status) == (1, model, registry.APPROVED)
    assert version.in_production
    assert ops.serving_package_arn(demo.target) == version.arn


def test_there_is_no_earlier_model_to_roll_back_to_yet(demo: Demo, story: RegistryStory) -> None:
    first = story.first_model().model
    result = command(demo, "rollback", "--reason", "just checking")
    assert result.exit_code != 0
    assert "no earlier production model to roll back to" in result.output
    serving = " ".join(command(demo, "rollback", "1", "--reason", "again").output.split())
    assert f"version 1 (model {first}) serves production now" in serving
    assert len(deploy_executions(demo)) == 1, "only the first promotion ever ran"


def test_a_rejected_candidate_is_rejected_in_the_registry(demo: Demo, story: RegistryStory) -> None:
    model = story.rejected().run.name
    version = versions(demo)[model]
    assert version.version == 2
    assert version.status == registry.REJECTED
    assert version.approval_description == "rejected by demo reviewer: the plot looks wrong"
    assert version.metadata[registry.TEST_RMSE]  # it was tested before the person decided


def test_a_rollback_to_a_rejected_version_is_refused_with_why(
    demo: Demo, story: RegistryStory
) -> None:
    rejected = story.rejected().run.name
    before = len(deploy_executions(demo))

    result = command(demo, "rollback", "2", "--reason", "try the other one")

    assert result.exit_code != 0
    text = " ".join(result.output.split())
    assert f"version 2 (model {rejected}) is Rejected" in text
    assert "rejected by demo reviewer: the plot looks wrong" in text
    assert "only an Approved version can serve production" in text
    assert len(deploy_executions(demo)) == before, "nothing was started"
    assert ops.release(demo.target).production_endpoint == story.blue


def test_silence_rejects_the_candidate_in_the_registry(demo: Demo, story: RegistryStory) -> None:
    model = story.timed_out().run.name
    version = versions(demo)[model]
    assert version.version == 3
    assert version.status == registry.REJECTED
    assert version.approval_description == (
        "no decision within 600 seconds: the candidate is rejected"
    )


def test_month_four_is_promoted_and_month_one_leaves_production(
    demo: Demo, story: RegistryStory
) -> None:
    first, fourth = story.first_model().model, story.month_four().model
    found = versions(demo)
    assert found[fourth].in_production
    assert found[first].production_until is not None
    assert not found[first].in_production


def test_a_rollback_during_a_running_promotion_waits_for_it(
    demo: Demo, story: RegistryStory
) -> None:
    """Month 5 is approved and its promotion holds the release lock (its stack update is under
    way) when an operator rolls back: the rollback's green is made at once, then it waits for
    the lock; month 5 goes into production first, and the rollback then replaces it, through
    its own canary. Both are watched by client traffic; none fails."""
    first, fourth = story.first_model().model, story.month_four().model
    race = story.rollback_during_promotion()
    fifth, promotion, rollback = race.fifth, race.promotion, race.rollback
    sfn = demo.target.client("stepfunctions")

    assert race.exit_code == 0, race.output
    said = " ".join(race.output.split())
    assert f"to version 1 ({first}" in said
    assert f"a release is under way ({fifth}): this rollback waits for the release lock" in said
    name = re.search(r"started (\S+),", said)
    assert name is not None
    ended, run, log = race.ended, race.run, race.log

    assert ended["status"] == "SUCCEEDED", ended.get("cause")
    assert run.status == "SUCCEEDED", run.cause
    assert not log.failed, log.failed[:3]
    waited = history(demo, name.group(1))
    promoted = sfn.describe_execution(executionArn=promotion)
    path = [(e.get("stateEnteredEventDetails") or {}).get("name") for e in waited]
    assert entered(waited, "WaitForReleaseLock"), f"the rollback waited for the lock: {path}"
    (read_production,) = entered(waited, "ReadProduction")
    # month 5's release ends when its promotion gives the lock back (its execution records how
    # it promoted after that, and stops a moment later)
    pages = sfn.get_paginator("get_execution_history").paginate(executionArn=promotion)
    (released,) = exited([e for p in pages for e in p["events"]], "ReleaseLockAfterPromotion")
    assert read_production >= released, "it read production after month 5's release"
    assert entered(waited, "CreateGreenModel")[0] < promoted["stopDate"], "green was made at once"

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
    assert given["reason"] == COMPLAINTS
    assert given["from_model_package_arn"] == found[fourth].arn
    assert subject_arrives(demo.cloud, "Production rolled back to model", first)


def shows(output: str, phrase: str) -> bool:
    """A table shows ``phrase`` when its words appear in order: a cell wraps at spaces, and the
    lines of a row interleave the cells beside it."""
    words = [re.escape(word) for word in phrase.split()]
    return re.search(r"\b" + r".*?".join(words), output, re.DOTALL) is not None


def test_models_lists_every_version_and_the_one_serving(demo: Demo, story: RegistryStory) -> None:
    story.timed_out()  # versions 2 and 3
    story.rollback_during_promotion()  # versions 4 and 5, and version 1 serves
    first = story.first_model().model
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
    (month_one,) = [i for i, line in enumerate(lines) if first in line]
    assert serving == month_one, "the version serving now is month 1's"
    assert not ops.running_releases(demo.target)


def _step(sfn: Any, arn: str) -> str | None:
    try:
        return ops.last_step(sfn, arn)
    except sfn.exceptions.ExecutionDoesNotExist:
        return None
