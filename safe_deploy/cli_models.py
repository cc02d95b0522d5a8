"""The model registry's commands: list its versions, and roll production back to one of them."""

from __future__ import annotations

import time

import click
from pipeline_common.registry import CODE_VERSION, SOURCE_KEY, SOURCE_VERSION, Package
from rich.table import Table
from rich.text import Text

from safe_deploy.cli_common import target_options, when
from safe_deploy.console import console
from safe_deploy.follow import Follower, Stop, traffic_hint
from safe_deploy.target import Target, TargetError

APPROVAL_STYLES = {"Approved": "green", "Rejected": "red", "PendingManualApproval": "yellow"}


def _rmse(value: float | None) -> str:
    return f"{value:.3f}" if value is not None else "-"


def production_period(package: Package, serving: bool) -> Text:
    """When the version last served: since/until as its metadata says; the version the champion
    parameter names is marked as the one serving now."""
    since, until = package.production_since, package.production_until
    if serving:
        return Text.assemble(("serves now", "bold green"), f" (since {when(since)})")
    if since is None:
        return Text("never" if until is None else f"until {when(until)}")
    if until is None or until < since:
        return Text(f"since {when(since)}, per the registry (not the champion)", style="yellow")
    return Text(f"{when(since)} to {when(until)}")


def models_table(packages: list[Package], serving_arn: str | None, group: str) -> Table:
    """One row per version, newest first; every value from AWS printed as text."""
    table = Table(title=Text(f"model registry {group}"), title_justify="left")
    for column in ("version", "model (run)", "RMSE val / test", "approval", "in production"):
        table.add_column(column, overflow="fold")
    table.add_column("data and code", overflow="fold")
    for package in packages:
        serving = package.arn == serving_arn
        approval = Text(package.status, style=APPROVAL_STYLES.get(package.status, ""))
        if package.approval_description:
            approval.append(f"\n{package.approval_description}", style="dim")
        data = package.metadata.get(SOURCE_KEY, "-")
        if package.metadata.get(SOURCE_VERSION) not in (None, "null"):
            data += f"\nversion {package.metadata[SOURCE_VERSION]}"
        code = package.metadata.get(CODE_VERSION, "-")
        table.add_row(
            Text(str(package.version), style="bold" if serving else ""),
            Text(f"{package.model_id or '-'}\n{when(package.created)}"),
            Text(f"{_rmse(package.validation_rmse)} / {_rmse(package.test_rmse)}"),
            approval,
            production_period(package, serving),
            Text(f"{data}\ncode {code}"),
        )
    return table


@click.command()
@target_options
def models(stack: str | None, region: str | None) -> None:
    """The model registry: every version (a candidate that passed the gate), its metrics, its
    approval, when it was in production, and which one serves now."""
    from safe_deploy import ops

    target = Target.of(stack, region)
    packages = ops.model_packages(target)
    group = target.output("ModelPackageGroupName")
    if not packages:
        console.print(
            f"the model registry {group} has no versions yet: a candidate becomes one when it "
            "passes the gate",
            markup=False,
        )
        return
    console.print(models_table(packages, ops.serving_package_arn(target), group))
    for name in ops.running_releases(target):
        console.print(Text.assemble(("releasing now: ", "yellow"), name))


@click.command()
@click.argument("version", type=int, required=False)
@click.option("--reason", required=True, help="Why production goes back (recorded).")
@click.option(
    "--wait/--no-wait",
    default=True,
    show_default=True,
    help="Follow the rollback until it needs client traffic or ends.",
)
@target_options
def rollback(
    version: int | None, reason: str, wait: bool, stack: str | None, region: str | None
) -> None:
    """Serve an earlier Approved version of the model registry again (default: the one that left
    production last), through the same path as a promotion: a green endpoint from its package,
    the release lock, the stack update, the canary, the hooks and the alarms. No retraining and
    no new approval; your IAM identity and the reason are recorded."""
    from safe_deploy import ops

    target = Target.of(stack, region)
    plan = ops.plan_rollback(target, version)
    package, serving = plan.package, plan.serving
    now = f"version {serving.version} ({serving.model_id})" if serving else "the current model"
    console.print(
        f"rolling production back from {now} to version {package.version} "
        f"({package.model_id}, validation RMSE {_rmse(package.validation_rmse)}, "
        f"{package.approval_description or package.status})",
        markup=False,
    )
    for name in plan.running:
        console.print(
            f"a release is under way ({name}): this rollback waits for the release lock, then "
            "replaces what it released",
            markup=False,
        )
    requested_by = ops.caller_arn(target)
    name = ops.start_rollback(target, plan, reason, requested_by)
    console.print(f"started {name}, as {requested_by}", markup=False)
    if not wait:
        console.print(f"follow it with `safe-deploy follow {name}`", markup=False)
        return
    show_rollback_stop(_follower(target).promotion(name), package)


def _follower(target: Target) -> Follower:
    started = time.monotonic()

    def say(message: str) -> None:
        console.print(f"{time.monotonic() - started:6.1f}s  {message}", markup=False)

    return Follower(target, say)


def show_rollback_stop(stop: Stop, package: Package) -> None:
    """What following the rollback found, and what comes next."""
    facts = stop.facts
    if stop.what == "traffic":
        console.print(traffic_hint(facts), markup=False)
    elif stop.what == "done":
        console.print(
            f"version {package.version} ({package.model_id}) serves production again: "
            "`safe-deploy models` shows it",
            markup=False,
        )
    elif stop.what == "failed":
        reason = " ".join(str(facts.get(k) or "") for k in ("error", "cause")).strip()
        raise TargetError(f"the rollback {facts.get('run')} failed: {reason}")
    else:
        console.print(
            f"{facts.get('run')} is still going; see `safe-deploy models` and `safe-deploy status`",
            markup=False,
        )
