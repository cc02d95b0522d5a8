"""``safe-deploy demo``: the whole pipeline in the local cloud, as a story, or one failure scenario.

1. Month 1 lands in raw/ -> pipeline -> gate -> dev endpoint test -> approval link (outbox) ->
   approved -> first promotion -> production serves.
2. Month 2 -> retrain -> approved -> canary: ~10% of live traffic on green while it bakes ->
   post-traffic hook passes on green's capture -> 100% -> blue deleted.
3. Month 2's fares draw complaints: ``safe-deploy rollback`` puts month 1's model (its approved
   version in the model registry) back, through the same canary, hooks and alarms; no retraining
   and no new approval.
4. A person changes the predict code and runs the real ``sam deploy``: CloudFormation canaries
   it, the hooks compare the new code's answers with the current code's, the model stays.
5. Drifted traffic -> a monitoring run -> violations by feature.
6. A report folder (HTML and plots).

A failure scenario runs month 1 to production, then a month 2 that fails in one way; it must end
with blue serving, nothing orphaned, no failed client request, and a one-line explanation.
"""

from __future__ import annotations

import json
import re
import shutil
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

import requests
from pipeline_common.layout import ModelResources, execution_arn, monitoring_schedule_of
from pipeline_common.release import endpoint_status
from rich.text import Text

from model.stats import DEFAULT_COMPARISON_THRESHOLD
from model.synth import synth_trips, write_trips
from safe_deploy import ops, samcli
from safe_deploy.cli_models import models_table
from safe_deploy.cli_status import timeline_table
from safe_deploy.console import StageFailed, Stages, console
from safe_deploy.follow import History
from safe_deploy.localcloud.cloud import LocalCloud
from safe_deploy.localcloud.cloudformation.package import Packager, zip_folder
from safe_deploy.localcloud.state import LocalSettings
from safe_deploy.localcloud.timeline.stages import FROM_APPROVAL
from safe_deploy.localcloud.workdir import WorkdirError, claim, clear
from safe_deploy.report import Report, drift_png, save_json, traffic_split_png
from safe_deploy.scenarios import SCENARIO_PARAMETERS, SCENARIOS, Decision, Scenario
from safe_deploy.target import Target
from safe_deploy.traffic import Answer, LoadGenerator, client_rides

MONTH_ROWS = 120_000
REVISION_HEADER = "X-Predict-Revision"
ROLLBACK_REASON = "customers report month 2's fares are too high; month 1's model goes back"


def predict_revision(value: str) -> str:
    """A change a person might make to the predict function: every answer names the code's
    revision (appended to ``functions/predict/app.py``)."""
    return f'''

_serve = lambda_handler


def lambda_handler(event, context):  # type: ignore[no-redef]
    answer = _serve(event, context)
    answer.setdefault("headers", {{}})["{REVISION_HEADER}"] = "{value}"
    return answer
'''


# The demo's pace: a simulated minute in 0.6 real seconds, twice the local cloud's default. Its
# client is a program, and its waits for that client never go below CLIENT_WAIT_FLOOR.
DEMO_TIME_SCALE = 0.01
TRAINING_TIMEOUT = 180.0


# What each chapter found, as the report and summary.json show it (their field names are the
# summary's keys).
@dataclass(frozen=True)
class FirstPromotion:
    """Month 1's model, approved by a person and released to production."""

    model: str
    endpoint: str | None  # production's, once it serves
    sent: int  # client requests since it went live
    failed: int


@dataclass(frozen=True)
class CanaryRelease:
    """Month 2's model, released through the canary while clients called."""

    model: str
    blue: str | None  # the endpoint it replaced, now deleted
    green: str
    bake: dict[str, int]  # requests per endpoint while green baked
    green_share: float  # percent of the bake's requests green answered
    sent: int
    failed: int
    post_traffic: str | None  # the post-traffic hook's verdict
    # from the approval to the first traffic shift, projected on AWS's timings (docs/timeline.md)
    to_canary_aws_minutes: float | None = None


@dataclass(frozen=True)
class Rollback:
    """An approved version of the registry back in production, through the canary."""

    execution: str  # the deploy state machine's
    version: int
    model: str
    replaced: str | None  # the model that served before
    requested_by: str
    green: str
    blue: str | None
    sent: int
    failed: int
    steps: tuple[str, ...]  # the deploy execution's states, each once, in the order first entered


@dataclass(frozen=True)
class CodeDeploy:
    """A person's ``sam deploy`` of changed predict code, canaried, with the model unchanged."""

    serving: str | None
    revision: str | None  # what the new code answers in REVISION_HEADER
    hook: str | None  # the pre-traffic hook's verdict
    shifts: tuple[str, ...]  # CodeDeploy's traffic shifts


@dataclass(frozen=True)
class DriftCheck:
    """The monitoring run over drifted traffic."""

    violations: tuple[dict[str, str], ...]
    distances: dict[str, float]  # by feature


@dataclass(frozen=True)
class ScenarioOutcome:
    """A month 2 that failed as its scenario says, with blue still serving."""

    name: str
    run: ops.Run
    green: str
    sent: int  # client requests during the promotion and rollback (none unless it was approved)
    failed: int
    explanation: str


@dataclass
class Results:
    """The chapters that ran, in the story's order."""

    first: FirstPromotion | None = None
    canary: CanaryRelease | None = None
    rollback: Rollback | None = None
    code_deploy: CodeDeploy | None = None
    drift: DriftCheck | None = None
    scenario: ScenarioOutcome | None = None  # the latest


@dataclass
class Demo:
    cloud: LocalCloud
    target: Target
    stages: Stages
    workdir: Path
    auto_approve: bool = True
    data: Path | None = None
    report: Report = field(init=False)
    results: Results = field(init=False, default_factory=Results)
    seen_runs: set[str] = field(init=False, default_factory=set)  # each upload's run is a new one
    # each run's history as far as it was shown: following a run again goes on from there
    histories: dict[str, History] = field(init=False, default_factory=dict)

    def __post_init__(self) -> None:
        self.report = Report(self.workdir / "report")

    # ------------------------------------------------------------------ pieces
    def month(self, index: int, drift: str | None = None) -> Path:
        if self.data is not None and drift is None:
            return self.data
        path = self.workdir / "data" / f"green_tripdata_2018-{index:02d}.csv"
        write_trips(
            synth_trips(MONTH_ROWS, seed=index, drift=drift, month=f"2018-{index:02d}"), path
        )
        return path

    def traffic_rows(self, count: int, seed: int, drift: str | None = None) -> list[list[float]]:
        path = self.workdir / "data" / f"traffic-{seed}-{drift or 'plain'}.csv"
        write_trips(synth_trips(max(count * 2, 500), seed=seed, drift=drift, month="2018-03"), path)
        return client_rides(path, count)

    def upload(self, path: Path, key: str | None = None) -> str:
        uploaded = ops.upload_data(self.target, path, key)
        self.stages.say(f"uploaded {path.name} to s3://{uploaded.bucket}/{uploaded.key}")
        sfn = self.target.client("stepfunctions")
        machine = self.target.output("TrainingStateMachineArn")

        def new_run() -> str | None:
            executions = sfn.list_executions(stateMachineArn=machine, maxResults=20)
            return next(
                (
                    str(e["name"])
                    for e in executions["executions"]
                    if e["startDate"].timestamp() > time.time() - 60
                    and e["name"] not in self.seen_runs
                ),
                None,
            )

        name: str = self.cloud.wait_for(new_run, 30, what="the pipeline to start")
        self.seen_runs.add(name)
        self.stages.say(f"EventBridge started pipeline run {name}")
        return name

    def follow(self, model_id: str, until: Callable[[ops.Run], bool], timeout: float) -> ops.Run:
        """Print each step the run enters, once (following a run again goes on from where the
        last call stopped), until ``until`` holds or the run ends."""
        arn = ops.find_run(self.target, model_id)
        sfn = self.target.client("stepfunctions")
        history = self.histories.setdefault(arn, History(sfn, arn))
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            described = sfn.describe_execution(executionArn=arn)  # then every step to here
            for state in history.new_states():
                self.stages.say(f"  step: {state}")
            step = history.last_entered
            run = ops.Run(
                model_id,
                arn,
                described["status"],
                described["startDate"],
                described.get("stopDate"),
                step,
                described.get("error"),
                described.get("cause"),
            )
            if run.status != "RUNNING" or until(run):
                return run
            time.sleep(0.5)
        raise StageFailed("pipeline", f"run {model_id} did not get there within {timeout:.0f}s")

    def approval_link(self, model_id: str, timeout: float = 60.0) -> str:
        folder = self.cloud.outbox / "sns"

        def find() -> str | None:
            import json

            for path in sorted(folder.glob("*.json")):
                message = json.loads(path.read_text())
                if model_id in (message.get("subject") or "") and "Approve" in (
                    message.get("subject") or ""
                ):
                    found = re.search(r"(http://\S+/approvals/\S+)", message.get("message") or "")
                    if found:
                        return found.group(1)
            return None

        return str(self.cloud.wait_for(find, timeout, what="the approval request"))

    def decide_on_page(self, link: str, approve: bool, name: str, reason: str = "") -> None:
        page = requests.get(link, timeout=10)
        if page.status_code != 200 or "validation RMSE" not in page.text:
            raise StageFailed("approval", f"the approval page answered {page.status_code}")
        query = parse_qs(urlparse(link).query)
        answer = requests.post(
            link.split("?")[0],
            data={
                "expires": query["expires"][0],
                "sig": query["sig"][0],
                "decision": "approve" if approve else "reject",
                "name": name,
                "reason": reason,
            },
            timeout=10,
        )
        verb = "approved" if approve else "rejected"
        if answer.status_code != 200 or verb not in answer.text:
            raise StageFailed("approval", f"the decision was refused ({answer.status_code})")
        self.stages.say(f"{name} {verb} it on the approval page")

    def wait_for_decision(self, model_id: str) -> None:
        arn = ops.find_run(self.target, model_id)
        self.stages.say("open the link above and approve or reject (waiting)")
        self.cloud.wait_for(
            lambda: (
                (ops.approval_of(self.target, arn) or {}).get("status") not in (None, "PENDING")
            ),
            24 * 3600,
            interval=1.0,
            what="a decision",
        )

    def to_approval(self, model_id: str) -> str:
        run = self.follow(model_id, lambda r: r.step == "RequestApproval", TRAINING_TIMEOUT)
        if run.status != "RUNNING":
            raise StageFailed("pipeline", self.explain(run))
        link = self.approval_link(model_id)
        self.stages.say(f"approval link: {link}")
        for path in sorted(self.cloud.outbox.rglob("*.json")):
            if model_id in path.read_text():
                self.stages.say(f"  message in the outbox: {path.relative_to(self.cloud.outbox)}")
        return link

    def load(
        self,
        rows: list[list[float]],
        rate: float = 40.0,
        echo: Callable[[Answer], None] | None = None,
    ) -> LoadGenerator:
        return LoadGenerator(self.target, rows, rate=rate, workers=4, on_answer=echo).start()

    def finish(self, model_id: str) -> ops.Run:
        return self.follow(model_id, lambda r: False, TRAINING_TIMEOUT)

    @staticmethod
    def explain(run: ops.Run) -> str:
        if run.status == "SUCCEEDED":
            return f"run {run.name} succeeded"
        cause = (run.cause or "").strip().splitlines()[0] if run.cause else "no cause given"
        return f"run {run.name} ended {run.status} at {run.error}: {cause}"

    # ------------------------------------------------------------------ stage 1
    def first_model(self) -> FirstPromotion:
        with self.stages.stage(
            "month 1: upload, retrain, gate, dev test, approval, first promotion"
        ):
            model_id = self.upload(self.month(1))
            link = self.to_approval(model_id)
            shifts = len(self.cloud.feed.find("codedeploy", "100% of live"))
            if self.auto_approve:
                self.decide_on_page(link, True, "demo reviewer (--auto-approve)")
            else:
                self.wait_for_decision(model_id)
            # Clients arrive once the first model is live: the post-traffic hook waits for them.
            sfn = self.target.client("stepfunctions")
            run_arn = ops.find_run(self.target, model_id)
            self.cloud.wait_for(
                lambda: (
                    len(self.cloud.feed.find("codedeploy", "100% of live")) > shifts
                    or sfn.describe_execution(executionArn=run_arn)["status"] != "RUNNING"
                ),
                TRAINING_TIMEOUT,
                what="the first model to go live",
            )
            traffic = self.load(self.traffic_rows(400, seed=11), rate=30)
            run = self.finish(model_id)
            log = traffic.stop()
            if run.status != "SUCCEEDED":
                raise StageFailed("first promotion", self.explain(run))
            release = ops.release(self.target)
            self.stages.say(
                f"production serves {release.production_endpoint} "
                f"(live -> version {release.live_version}); "
                f"{log.sent} requests since it went live, {len(log.failed)} failed"
            )
            self.results.first = FirstPromotion(
                model_id, release.production_endpoint, log.sent, len(log.failed)
            )
            return self.results.first

    # ------------------------------------------------------------------ stage 2
    def canary(self) -> CanaryRelease:
        with self.stages.stage(
            "month 2: retrain, approve, canary 10% -> post-traffic hook -> 100%"
        ):
            blue = ops.release(self.target).production_endpoint
            key = None
            if self.data is not None:
                key = f"raw/{self.data.stem}-month2{self.data.suffix}"
            model_id = self.upload(self.month(2), key)
            link = self.to_approval(model_id)
            green = ModelResources(model_id).prod_endpoint
            shown = {"n": 0}

            def echo(answer: Answer) -> None:
                """Every request green answers while it bakes, and every 25th of the others."""
                shown["n"] += 1
                baking = bool(
                    self.cloud.feed.find("codedeploy", "10% of live")
                ) and not self.cloud.feed.find("codedeploy", "100% of live")
                if (answer.endpoint == green and baking) or shown["n"] % 25 == 0:
                    colour = "green" if answer.endpoint == green else "blue"
                    outcome = (
                        f"{answer.prediction:.2f}"
                        if answer.prediction is not None
                        else answer.error
                    )
                    self.stages.say(
                        Text.assemble(
                            f"  request {shown['n']:4d} -> ",
                            (answer.endpoint, colour),
                            f" {answer.status} {outcome}",
                        )
                    )

            traffic = self.load(self.traffic_rows(600, seed=12), rate=40, echo=echo)
            self.decide_on_page(
                link, True, "demo reviewer (--auto-approve)"
            ) if self.auto_approve else self.wait_for_decision(model_id)
            run = self.finish(model_id)
            log = traffic.stop()
            if run.status != "SUCCEEDED":
                raise StageFailed("canary", self.explain(run))
            feed = self.cloud.feed
            shift = feed.find("codedeploy", "10% of live")[-1]
            full = feed.find("codedeploy", "100% of live")[-1]
            during = log.by_endpoint(shift.at, full.at)
            total = sum(during.values()) or 1
            share = 100.0 * during.get(green, 0) / total
            self.stages.say(f"during the bake: {dict(during)} -> {share:.1f}% answered by green")
            verdicts = [a.message for a in feed.find("codedeploy", "AfterAllowTraffic:")]
            self.stages.say(f"post-traffic hook: {verdicts[-1] if verdicts else 'not run'}")
            hook_log = self._hook_summary("PostTrafficHook")
            if hook_log:
                self.stages.say(f"  hook verdict: {hook_log}")
            gone = self._endpoint_gone(blue) if blue else True
            self.stages.say(f"blue endpoint {blue} deleted: {gone}")
            self.stages.say(f"{log.sent} requests through the canary, {len(log.failed)} failed")
            if not gone or log.failed:
                raise StageFailed("canary", "blue was not retired or client requests failed")
            marks = {"10%": shift.at, "100%": full.at}
            traffic_split_png(
                log.snapshot(), green, self.report.folder / "traffic_split.png", marks
            )
            self.results.canary = CanaryRelease(
                model_id,
                blue,
                green,
                dict(during),
                share,
                log.sent,
                len(log.failed),
                hook_log,
                self.show_timeline(model_id),
            )
            return self.results.canary

    def show_timeline(self, model_id: str) -> float | None:
        """The run's stages, local and projected on AWS; returns the projected minutes from the
        approval to the first traffic shift."""
        timeline = self.cloud.timeline_of(model_id)
        console.print(timeline_table(timeline))
        stage = timeline.stage(FROM_APPROVAL)
        if stage is None or stage.projected is None:
            return None
        self.stages.say(
            f"{stage.name}: {stage.local:.1f} s here, {stage.projected / 60:.1f} min on AWS "
            "(projected; PromoteTestedEndpoint=true skips the green endpoint's creation)"
        )
        return round(stage.projected / 60, 2)

    # ------------------------------------------------------------------ stage 3
    def show_models(self) -> None:
        """``safe-deploy models``: the registry's versions, and which one serves now."""
        console.print(
            models_table(
                ops.model_packages(self.target),
                ops.serving_package_arn(self.target),
                self.target.output("ModelPackageGroupName"),
            )
        )

    def follow_release(self, name: str, timeout: float) -> tuple[dict[str, Any], list[str]]:
        """Print each step the deploy state machine's execution ``name`` enters, once, as
        ``follow`` prints a pipeline run's; its description once it ends, and those steps."""
        sfn = self.target.client("stepfunctions")
        arn = execution_arn(self.target.output("DeployStateMachineArn"), name)
        history = History(sfn, arn)
        steps: list[str] = []
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            described: dict[str, Any] = sfn.describe_execution(executionArn=arn)  # then its steps
            for state in history.new_states():
                self.stages.say(f"  step: {state}")
                steps.append(state)
            if described["status"] != "RUNNING":
                return described, steps
            time.sleep(0.5)
        raise StageFailed("rollback", f"{name} did not end within {timeout:.0f}s")

    def rollback(self) -> Rollback:
        """Production goes back to the model that served before, as ``safe-deploy rollback``
        does it: the deploy state machine releases its approved registry version, through the
        release lock, the stack update and CodeDeploy's canary, while clients keep calling."""
        with self.stages.stage(
            "rollback: month 2's fares draw complaints; month 1's model goes back, canaried"
        ):
            self.show_models()
            plan = ops.plan_rollback(self.target)
            package, serving = plan.package, plan.serving
            blue = ops.release(self.target).production_endpoint
            if package.model_id is None:
                raise StageFailed("rollback", f"version {package.version} names no model")
            green = ModelResources(package.model_id).prod_endpoint
            self.stages.say(
                f"$ safe-deploy rollback --reason {ROLLBACK_REASON!r}: version "
                f"{package.version} ({package.model_id}, {package.status}) replaces version "
                f"{serving.version if serving else '-'}; no retraining, no new approval"
            )
            requested_by = ops.caller_arn(self.target)
            since = len(self.cloud.feed.items)
            name = ops.start_rollback(self.target, plan, ROLLBACK_REASON, requested_by)
            self.stages.say(f"deploy state machine: {name}, requested by {requested_by}")
            # Clients keep calling: the post-traffic hook wants their requests on green's capture.
            traffic = self.load(self.traffic_rows(400, seed=14), rate=30)
            described, steps = self.follow_release(name, TRAINING_TIMEOUT)
            log = traffic.stop()
            for activity in self.cloud.feed.items[since:]:
                if activity.source == "codedeploy":
                    self.stages.say(f"  {activity.message}")
            if described["status"] != "SUCCEEDED":
                raise StageFailed(
                    "rollback", f"{name} {described['status']}: {described.get('cause')}"
                )
            release = ops.release(self.target)
            self.stages.say(
                f"production serves {release.production_endpoint} again "
                f"(live -> version {release.live_version}); {blue} deleted: "
                f"{self._endpoint_gone(blue) if blue else True}"
            )
            self.stages.say(
                f"{log.sent} client requests through the rollback, {len(log.failed)} failed"
            )
            self.show_models()
            if release.production_endpoint != green or log.failed:
                raise StageFailed("rollback", "production is not back on the earlier model")
            self.results.rollback = Rollback(
                execution=name,
                version=package.version,
                model=package.model_id,
                replaced=serving.model_id if serving else None,
                requested_by=requested_by,
                green=green,
                blue=blue,
                sent=log.sent,
                failed=len(log.failed),
                steps=tuple(steps),
            )
            return self.results.rollback

    # ------------------------------------------------------------------ stage 4
    def code_deploy(self, project_root: Path) -> CodeDeploy | None:
        """A person changes the predict function and deploys it with the real ``sam deploy``
        while a model serves: CloudFormation canaries the new code through CodeDeploy, the
        hooks compare its answers with the current code's, and the model does not change.
        ``None`` when the SAM CLI is missing: the chapter is skipped."""
        with self.stages.stage(
            "a person changes the predict code and runs sam deploy: canaried, same model"
        ):
            if samcli.find(project_root) is None:
                self.stages.say(f"{samcli.SAM} is missing (make tools): skipped")
                return None
            serving = ops.release(self.target).production_endpoint
            stack = self.cloud.settings.stack_name
            # What `sam build` would package: the handler, changed to say its revision.
            change = (self.workdir / "code-change").resolve()
            shutil.copytree(project_root / "functions" / "predict", change / "predict")
            app = change / "predict" / "app.py"
            app.write_text(app.read_text() + predict_revision("demo"))
            s3, bucket = self.target.client("s3"), f"{stack}-packages".lower()
            uri = Packager(project_root, s3, bucket).upload(zip_folder(change / "predict"), ".zip")
            body = self.target.client("cloudformation").get_template(StackName=stack)[
                "TemplateBody"
            ]
            template = body if isinstance(body, dict) else json.loads(body)
            template["Resources"]["PredictFunction"]["Properties"]["CodeUri"] = uri
            (change / "template.json").write_text(json.dumps(template))
            self.stages.say(f"$ sam deploy --template-file {change / 'template.json'} ...")
            since = len(self.cloud.feed.items)
            result = samcli.run(
                project_root,
                [
                    "deploy",
                    "--template-file",
                    str(change / "template.json"),
                    "--stack-name",
                    stack,
                    "--s3-bucket",
                    bucket,
                    "--capabilities",
                    "CAPABILITY_IAM",
                    "--no-confirm-changeset",
                    "--no-progressbar",
                ],
                cwd=change,
                cloud=self.cloud.client_environment(),
            )
            last = [line for line in result.stdout.splitlines() if line.strip()][-1:]
            self.stages.say(f"sam deploy: {last[0] if last else result.stderr.strip()}")
            if result.returncode != 0:
                raise StageFailed("sam deploy", result.stderr.strip() or "\n".join(last))
            for activity in self.cloud.feed.items[since:]:
                if activity.source == "codedeploy":
                    self.stages.say(f"  {activity.message}")
            verdict = self._hook_summary("PreTrafficHook")
            if verdict:
                self.stages.say(f"  hook verdict: {verdict}")
            answer = self.target.signed(
                "POST", "/predict", b"12.5,1,2.4", {"Content-Type": "text/csv"}
            )
            endpoint = answer.headers.get("X-SageMaker-Endpoint")
            revision = answer.headers.get(REVISION_HEADER)
            self.stages.say(
                f"a request now: {answer.status_code}, {REVISION_HEADER}: {revision}, "
                f"answered by {endpoint}"
            )
            if (answer.status_code, revision, endpoint) != (200, "demo", serving):
                raise StageFailed("sam deploy", "the new code does not serve the same model")
            shifts = tuple(
                a.message
                for a in self.cloud.feed.items[since:]
                if a.source == "codedeploy" and "% of live" in a.message
            )
            self.results.code_deploy = CodeDeploy(serving, revision, verdict, shifts)
            return self.results.code_deploy

    def _hook_summary(self, logical_id: str) -> str | None:
        import json

        for name in self.cloud.host.code:
            if logical_id in name:
                path = self.cloud.host.logs_dir / f"{name}.log"
                if path.exists():
                    for line in reversed(path.read_text().splitlines()):
                        if '"summary"' in line:
                            try:
                                return str(json.loads(line).get("summary"))
                            except ValueError:
                                return None
        return None

    def _endpoint_gone(self, name: str) -> bool:
        """Whether SageMaker no longer knows the endpoint; any other error is the run's."""
        return endpoint_status(self.target.client("sagemaker"), name) is None

    # ------------------------------------------------------------------ stage 5
    def drift(self) -> DriftCheck:
        with self.stages.stage("drift: longer trips in production traffic, then a monitoring run"):
            rows = self.traffic_rows(2000, seed=13, drift="longer-trips")
            sent = failed = 0
            for start in range(0, len(rows), 50):
                chunk = rows[start : start + 50]
                body = "\n".join(",".join(repr(v) for v in row) for row in chunk).encode()
                answer = self.target.signed("POST", "/predict", body, {"Content-Type": "text/csv"})
                sent += 1
                failed += int(answer.status_code != 200)
            self.stages.say(
                f"sent {len(rows):,} drifted trips in {sent} requests ({failed} failed)"
            )
            endpoint = ops.release(self.target).production_endpoint
            assert endpoint is not None
            execution = self.cloud.sagemaker.run_schedule(monitoring_schedule_of(endpoint))
            self.stages.say(f"monitoring execution: {execution['MonitoringExecutionStatus']}")
            report = ops.drift_report(self.target)
            distances = _distances(report.violations)
            for violation in report.violations:
                self.stages.say(
                    f"  {violation['feature_name']}: {violation['constraint_check_type']}: "
                    f"{violation['description']}"
                )
            self.cloud.wait_for(
                lambda: self.cloud.feed.find("outbox", "Drift on"),
                30,
                what="the drift notification",
            )
            self.stages.say(
                "drift check function published the violations (SNS message in the outbox)"
            )
            if not report.violations:
                raise StageFailed("drift", "the drifted traffic raised no violation")
            drift_png(
                distances, DEFAULT_COMPARISON_THRESHOLD, self.report.folder / "drift_by_feature.png"
            )
            self.results.drift = DriftCheck(tuple(report.violations), distances)
            return self.results.drift

    # ------------------------------------------------------------------ stage 6
    def write_report(self) -> Path:
        with self.stages.stage("report"):
            artifacts = self.target.output("ArtifactBucketName")
            s3 = self.target.client("s3")
            first, canary, drift = self.results.first, self.results.canary, self.results.drift
            for chapter in (first, canary):
                if chapter is not None:
                    model = chapter.model
                    key = f"{ModelResources(model).evaluation_prefix}actual_vs_predicted.png"
                    s3.download_file(
                        artifacts, key, str(self.report.folder / f"actual_vs_predicted_{model}.png")
                    )
            release = ops.release(self.target)
            self.report.text(
                "Production",
                [
                    f"endpoint: {release.production_endpoint}",
                    f"live alias: version {release.live_version}",
                    f"champion: {release.champion}",
                ],
            )
            if first is not None:
                self.report.image(
                    "First model: actual vs predicted (dev endpoint, test split)",
                    f"actual_vs_predicted_{first.model}.png",
                )
            if canary is not None:
                self.report.text(
                    "Canary",
                    [
                        f"blue {canary.blue} -> green {canary.green}",
                        f"during the bake: {canary.bake} ({canary.green_share:.1f}% on green)",
                        f"post-traffic hook: {canary.post_traffic}",
                        f"{canary.sent} client requests, {canary.failed} failed",
                    ],
                )
                self.report.image(
                    "Second model: actual vs predicted",
                    f"actual_vs_predicted_{canary.model}.png",
                )
                self.report.image(
                    "Traffic split over time",
                    "traffic_split.png",
                    "share of requests answered by the green endpoint",
                )
            self.report.table(
                "Model registry",
                ["version", "model", "approval", "in production since", "until"],
                [
                    (
                        str(p.version),
                        p.model_id or "-",
                        f"{p.status}: {p.approval_description}",
                        str(p.production_since or "-"),
                        str(p.production_until or "-"),
                    )
                    for p in ops.model_packages(self.target)
                ],
            )
            if drift is not None:
                self.report.table(
                    "Drift violations",
                    ["feature", "check", "description"],
                    [
                        (v["feature_name"], v["constraint_check_type"], v["description"])
                        for v in drift.violations
                    ],
                )
                self.report.image("Drift by feature", "drift_by_feature.png")
            save_json(self.report.folder / "summary.json", self.summary())
            path = self.report.write("safe-deploy demo")
            self.stages.say(f"report: {path}")
            return path

    def summary(self) -> dict[str, Any]:
        """summary.json: the pipeline runs the demo started, then what each chapter found."""
        chapters = {f.name: getattr(self.results, f.name) for f in fields(self.results)}
        return {"seen_runs": sorted(self.seen_runs)} | {
            name: asdict(found) for name, found in chapters.items() if found is not None
        }

    # ------------------------------------------------------------------ scenarios
    def scenario(self, name: str) -> ScenarioOutcome:
        blue = self.first_model()
        return self.failing_month(name, ModelResources(blue.model).prod_endpoint)

    def failing_month(self, name: str, blue: str) -> ScenarioOutcome:
        """A month 2 that fails as the scenario says, with its one-line explanation."""
        scenario = SCENARIOS[name]
        with self.stages.stage(f"scenario {name}: {scenario.description}"):
            traffic: LoadGenerator | None = None
            restore: tuple[str, str] | None = None  # the hyperparameters the scenario replaced
            if scenario.hyperparameters:
                ssm = self.target.client("ssm")
                parameter = self.target.output("HyperparametersParameterName")
                value = ssm.get_parameter(Name=parameter)["Parameter"]["Value"]
                bad = json.dumps(json.loads(value) | scenario.hyperparameters)
                ssm.put_parameter(Name=parameter, Value=bad, Overwrite=True)
                for key, given in scenario.hyperparameters.items():
                    self.stages.say(f"set the training hyperparameter {key} to {given!r}")
                restore = (parameter, value)
            month = self.month(2, drift=scenario.drift)
            model_id = self.upload(month, f"raw/month2-{name}.csv")
            green = ModelResources(model_id).prod_endpoint
            if scenario.decision is Decision.NONE:
                run = self.finish(model_id)
            else:
                link = self.to_approval(model_id)
                if scenario.decision is Decision.REJECT:
                    self.decide_on_page(link, False, "demo reviewer", "the plot looks wrong")
                elif scenario.decision is Decision.SILENCE:
                    self.stages.say("nobody answers; the approval window is 10 minutes (scaled)")
                else:
                    traffic = self.approve_with_fault(scenario, link, green)
                run = self.finish(model_id)
            log = traffic.stop() if traffic else None
            self.cloud.faults.clear()
            if restore is not None:
                parameter, value = restore
                self.target.client("ssm").put_parameter(Name=parameter, Value=value, Overwrite=True)
            explanation = self.explain(run)
            outcome = self.results.scenario = ScenarioOutcome(
                name,
                run,
                green,
                sent=log.sent if log else 0,
                failed=len(log.failed) if log else 0,
                explanation=explanation,
            )
            self.stages.say(explanation)
            self.check_blue_serving(blue)
            if log is not None:
                self.stages.say(
                    f"{log.sent} client requests during the promotion and rollback, "
                    f"{len(log.failed)} failed"
                )
                if log.failed:
                    first = log.failed[0]
                    raise StageFailed(
                        name,
                        f"{len(log.failed)} client requests failed; the first: {first.status} from "
                        f"{first.endpoint}: {first.error}",
                    )
            if run.status == "SUCCEEDED":
                raise StageFailed(
                    name, "the run succeeded, but the scenario should have stopped it"
                )
            if run.error != scenario.error or scenario.cause_holds not in (run.cause or ""):
                raise StageFailed(
                    name, f"the run stopped otherwise than the scenario says: {explanation}"
                )
            return outcome

    def approve_with_fault(self, scenario: Scenario, link: str, green: str) -> LoadGenerator:
        """Clients call, green gets the scenario's fault (once the pre-traffic hook passed it,
        when the fault is one that hook would see), and the reviewer approves."""
        fault = scenario.fault
        if fault is not None and not scenario.fault_after_pre_traffic:
            self.cloud.faults.inject(green, fault.value)
        traffic = self.load(self.traffic_rows(500, seed=21), rate=40)
        passed = len(self.cloud.feed.find("codedeploy", "BeforeAllowTraffic: Succeeded"))
        self.decide_on_page(link, True, "demo reviewer (--auto-approve)")
        if fault is not None and scenario.fault_after_pre_traffic:
            self.cloud.wait_for(
                lambda: (
                    len(self.cloud.feed.find("codedeploy", "BeforeAllowTraffic: Succeeded"))
                    > passed
                ),
                120,
                what="the pre-traffic hook",
            )
            self.cloud.faults.inject(green, fault.value)
            self.stages.say(f"{green} now fails every request")
        return traffic

    def check_blue_serving(self, blue: str) -> None:
        release = ops.release(self.target)
        if release.production_endpoint != blue or release.routing:
            raise StageFailed(
                "rollback",
                f"production is {release.production_endpoint}, routing {release.routing}",
            )
        sagemaker = self.target.client("sagemaker")
        endpoints = sorted(e["EndpointName"] for e in sagemaker.list_endpoints()["Endpoints"])
        configs = sorted(
            c["EndpointConfigName"] for c in sagemaker.list_endpoint_configs()["EndpointConfigs"]
        )
        models = sorted(m["ModelName"] for m in sagemaker.list_models()["Models"])
        schedules = sorted(
            s["MonitoringScheduleName"]
            for s in sagemaker.list_monitoring_schedules()["MonitoringScheduleSummaries"]
        )
        expected = ([blue], [blue], [blue], [monitoring_schedule_of(blue)])
        found = (endpoints, configs, models, schedules)
        if found != expected:
            raise StageFailed(
                "cleanup",
                f"left behind: endpoints {endpoints}, configs {configs}, "
                f"models {models}, schedules {schedules}",
            )
        self.stages.say(
            f"blue {blue} serves; nothing orphaned (1 endpoint, config, model, schedule)"
        )


def _distances(violations: list[dict[str, str]]) -> dict[str, float]:
    found: dict[str, float] = {}
    for violation in violations:
        match = re.search(r"distance: ([0-9.eE+-]+)", violation["description"])
        if match:
            found[violation["feature_name"]] = float(match.group(1))
    return found


DEFAULT_WORKDIR = Path("demo-output")
# What the demo of an earlier version, before work folders were marked, left in its folder.
DEMO_FILES = frozenset(
    {"cloud", "data", "report", "code-change", "local.json"}  # the demo's
    | {"raw", "prepared", "model", "baseline", "capture", "ground-truth", "monitoring", "traffic"}
)


def empty_workdir(workdir: Path) -> None:
    """The demo's folder, emptied: only a folder safe-deploy made (its marker), a new or empty
    one, or the default folder as an earlier version left it (holding only the demo's files);
    never one a running local cloud uses."""
    legacy = DEMO_FILES if workdir.resolve() == DEFAULT_WORKDIR.resolve() else frozenset()
    try:
        claim(workdir, "safe-deploy demo", legacy)
        clear(workdir)
    except WorkdirError as exc:
        raise StageFailed("work folder", str(exc)) from None


def run_demo(
    project_root: Path,
    workdir: Path,
    scenario: str | None = None,
    data: Path | None = None,
    auto_approve: bool = True,
    time_scale: float | None = None,
) -> Path | str:
    stages = Stages()
    empty_workdir(workdir)
    settings = LocalSettings(
        project_root=project_root,
        workdir=workdir / "cloud",
        parameter_overrides=dict(SCENARIO_PARAMETERS.get(scenario or "", {})),
    )
    settings.time_scale = DEMO_TIME_SCALE if time_scale is None else time_scale
    with stages.stage("start the local cloud (moto, the template's resources, the API)"):
        cloud = LocalCloud(settings).start()
    try:
        connection = workdir / "local.json"
        cloud.write_connection_file(connection)
        target = Target.local_cloud(connection)
        stages.say(
            f"AWS endpoint {cloud.aws_url}; API {cloud.endpoints.api}; outbox {cloud.outbox}"
        )
        demo = Demo(cloud, target, stages, workdir, auto_approve, data)
        if scenario is not None:
            return demo.scenario(scenario).explanation
        demo.first_model()
        demo.canary()
        demo.rollback()
        demo.code_deploy(project_root)
        demo.drift()
        return demo.write_report()
    finally:
        cloud.stop()
