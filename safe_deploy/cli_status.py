"""Commands that read the pipeline: runs, production, drift."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click
import requests
from rich.markup import escape
from rich.table import Table

from safe_deploy.cli_common import target_options, when
from safe_deploy.console import console
from safe_deploy.target import Target, TargetError

if TYPE_CHECKING:
    from pipeline_common.release import ReleaseCheck, ReleaseState


@click.command()
@click.option("--runs", "limit", default=5, show_default=True, help="How many recent runs.")
@target_options
def status(limit: int, stack: str | None, region: str | None) -> None:
    """Pipeline runs and their current step, production, the last deployments."""
    from pipeline_common.release import Verdict

    from safe_deploy import ops

    target = Target.of(stack, region)
    runs = Table(title=f"pipeline runs ({target.name})")
    for column in ("run", "status", "step", "started", "approval", "why it stopped"):
        runs.add_column(column)
    for run in ops.runs(target, limit):
        approval = run.approval or {}
        decided = (
            f"{approval.get('status', '').lower()} by {approval.get('decided_by')} "
            f"at {when(approval.get('decided_at'))}"
            if approval.get("decided_by")
            else (approval.get("status", "-") or "-").lower()
        )
        why = f"{run.error}: {(run.cause or '').splitlines()[0][:120]}" if run.error else ""
        colour = {"SUCCEEDED": "green", "FAILED": "red", "RUNNING": "yellow"}.get(
            run.status, "white"
        )
        runs.add_row(
            run.name,
            f"[{colour}]{run.status}[/{colour}]",
            escape(run.step or "-"),
            when(run.started),
            escape(decided),
            escape(why),
        )
    console.print(runs)
    release = ops.release(target)
    production = Table(title="production", show_header=False)
    state, check = release.state, release.check
    production.add_row("stack", f"{escape(state.stack_name)}: {_stack_status(state.stack_status)}")
    production.add_row(
        "production record",
        f"{escape(state.record or 'none yet')}{_endpoint_status(state, state.record)} "
        f"[dim](SSM {escape(state.production_parameter)})[/dim]",
    )
    for index, version in enumerate(state.live):
        serves = state.serves(version)
        source = "its own" if version.endpoint_name else "the record's"
        production.add_row(
            "live alias" if index == 0 else "",
            f"version {escape(version.version)} ({version.weight:.0%}) serves "
            + (
                f"{escape(serves)} ({source}){_endpoint_status(state, serves)}"
                if serves
                else "no model yet"
            ),
        )
    if release.champion:
        production.add_row(
            "model",
            f"{release.champion.get('model_id')} (validation RMSE "
            f"{release.champion.get('validation_rmse', float('nan')):.3f})",
        )
    colour = {Verdict.CONSISTENT: "green", Verdict.IN_PROGRESS: "yellow"}.get(check.verdict, "red")
    production.add_row(
        "check", f"[{colour}]{check.verdict.value}[/{colour}]: {escape(check.summary)}"
    )
    console.print(production)
    if release.deployments:
        deployments = Table(title="last deployments")
        for column in ("deployment", "status", "config", "created", "note"):
            deployments.add_column(column)
        for d in release.deployments:
            deployments.add_row(
                d["id"],
                d["status"] or "-",
                d["config"] or "-",
                when(d["created"]),
                escape(d["error"] or d["description"] or ""),
            )
        console.print(deployments)
    if check.mismatch:  # last, where it cannot be missed
        _warn_inconsistent(check)


def _stack_status(status: str) -> str:
    if status.endswith("_FAILED"):
        return f"[bold red]{escape(status)}[/bold red]"
    if status.endswith("_IN_PROGRESS") or "ROLLBACK" in status:
        return f"[yellow]{escape(status)}[/yellow]"
    return f"[green]{escape(status)}[/green]"


def _endpoint_status(state: ReleaseState, endpoint: str | None) -> str:
    from pipeline_common.release import SERVING_STATUSES

    if endpoint is None or endpoint not in state.endpoints:
        return ""
    status = state.endpoints[endpoint]
    if status is None:
        return ", [bold red]does not exist[/bold red]"
    colour = "green" if status in SERVING_STATUSES else "bold red"
    return f", [{colour}]{escape(status)}[/{colour}]"


def _warn_inconsistent(check: ReleaseCheck) -> None:
    """Loud, with every command on a line of its own (soft-wrapped, so it copies whole)."""
    from pipeline_common.release import WAIT_FOR_PROMOTIONS

    console.rule("[bold red]RELEASE INCONSISTENT[/bold red]", style="red")
    for problem in check.problems:
        console.print(f"[bold red]✗ {escape(problem)}[/bold red]")
    console.print(f"[bold]What to do.[/bold] {escape(WAIT_FOR_PROMOTIONS)}")
    for number, action in enumerate(check.actions, 1):
        console.print(f"  {number}. {escape(action.what)}")
        for command in action.commands:
            console.print(f"     [cyan]{escape(command)}[/cyan]")
    console.rule(style="red")


@click.command("drift-report")
@click.option("--run-now", is_flag=True, help="Local cloud only: run the monitoring schedule now.")
@target_options
def drift_report(run_now: bool, stack: str | None, region: str | None) -> None:
    """The latest Model Monitor result of production: violations by feature."""
    from safe_deploy import ops

    target = Target.of(stack, region)
    if run_now:
        if not target.local:
            raise TargetError(
                "--run-now works against the local cloud; on AWS the schedule runs hourly"
            )
        origin = target.api_url.rsplit("/", 1)[0]
        answer = requests.post(f"{origin}/_local/monitoring/run", timeout=300)
        if answer.status_code != 200:
            raise TargetError(
                f"the local cloud could not run the monitoring schedule: {answer.text}"
            )
    report = ops.drift_report(target)
    execution = report.execution or {}
    console.print(
        f"endpoint {report.endpoint}, schedule {report.schedule}: "
        f"{execution.get('MonitoringExecutionStatus', 'no run yet')} "
        f"({when(execution.get('ScheduledTime'))})"
    )
    if report.statistics:
        console.print(f"{report.statistics['dataset']['item_count']:,} captured rows analysed")
    table = Table(title="violations by feature")
    for column in ("feature", "check", "description"):
        table.add_column(column)
    for violation in report.violations:
        table.add_row(
            violation["feature_name"],
            violation["constraint_check_type"],
            escape(violation["description"]),
        )
    console.print(table if report.violations else "no violations")
