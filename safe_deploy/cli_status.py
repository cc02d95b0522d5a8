"""Commands that read the pipeline: runs, production, drift."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import click
import requests
from botocore.exceptions import ClientError
from rich.markup import escape
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from safe_deploy.cli_common import target_options, when
from safe_deploy.console import console
from safe_deploy.target import Target, TargetError

if TYPE_CHECKING:
    from pipeline_common.release import ReleaseCheck, ReleaseState

    from safe_deploy import ops
    from safe_deploy.localcloud.timeline import RunTimeline
    from safe_deploy.localcloud.timeline.stages import Part


@click.command()
@click.option("--runs", "limit", default=5, show_default=True, help="How many recent runs.")
@click.option(
    "--timeline",
    "timeline_run",
    metavar="RUN",
    help="Whose stages to time (default: the newest run's).",
)
@target_options
def status(limit: int, timeline_run: str | None, stack: str | None, region: str | None) -> None:
    """Pipeline runs (source, step, candidate, why they stopped), a run's stages and their time
    (on the local cloud beside the projected AWS time), production, the last deployments."""
    from pipeline_common.release import Verdict

    from safe_deploy import ops

    target = Target.of(stack, region)
    runs = ops.runs(target, limit)
    print_runs(runs, target.name)
    if timeline_run or runs:
        print_timeline(target, timeline_run or runs[0].name)
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
        production.add_row("model", escape(production_model(release.champion)))
    colour = {Verdict.CONSISTENT: "green", Verdict.IN_PROGRESS: "yellow"}.get(check.verdict, "red")
    production.add_row(
        "check", f"[{colour}]{check.verdict.value}[/{colour}]: {escape(check.summary)}"
    )
    console.print(production)
    if release.deployments:
        deployments = Table(title="last deployments")
        for column in ("deployment", "status", "config", "created", "note"):
            deployments.add_column(column, overflow="fold")  # wrapped, never cut to "…"
        for d in release.deployments:
            deployments.add_row(
                Text(d["id"]),
                Text(d["status"] or "-"),
                Text(d["config"] or "-"),
                Text(when(d["created"])),
                Text(d["error"] or d["description"] or ""),
            )
        console.print(deployments)
    if check.mismatch:  # last, where it cannot be missed
        _warn_inconsistent(check)


STATUS_COLOURS = {"SUCCEEDED": "green", "FAILED": "red", "RUNNING": "yellow"}
MIN_PART_SECONDS = 3.0  # the timeline names parts from 0.1 min up
# The stack and its deployment are the same in every stage: only a job, an endpoint, a Wait state
# or a hook says something about where the time went.
_SUBJECT_SHOWN = ("sagemaker.", "stepfunctions.", "codedeploy.hook")


def print_timeline(target: Target, run_name: str) -> None:
    """Run ``run_name``'s stages as a table: local time and projected AWS minutes on the local
    cloud, AWS's own times on AWS. A timeline that cannot be read says why, and status goes on."""
    from safe_deploy import ops

    try:
        timeline = ops.run_timeline(target, run_name)
    except (TargetError, ClientError, requests.RequestException) as exc:
        console.print(Text(f"no timeline for {run_name}: {exc}", style="yellow"))
        return
    console.print(timeline_table(timeline))


def timeline_table(timeline: RunTimeline) -> Table:
    """A run's stages: what each took locally and, projected, on AWS, with what the projected
    time went to; the total leaves out the person's wait, which is never projected."""
    from safe_deploy.localcloud.timeline.stages import LOCAL

    local = timeline.source == LOCAL
    table = Table(title=f"timeline of {timeline.model_id}", title_justify="left")
    table.add_column("stage", overflow="fold")
    table.add_column("local" if local else "AWS", justify="right", no_wrap=True)
    if local:
        table.add_column("AWS, projected", justify="right", no_wrap=True)
        table.add_column("what the AWS time went to", overflow="fold")
    for stage in timeline.stages:
        name = Text(stage.name)
        if stage.note:
            name.append(f" ({stage.note})", style="dim")
        row: list[Text] = [name, Text(_elapsed(stage.local))]
        if local:
            if stage.person:
                row += [Text("a person", style="dim"), Text("not projected", style="dim")]
            else:
                parts = [_part(p) for p in stage.parts if p.projected >= MIN_PART_SECONDS]
                row += [Text(_minutes(stage.projected)), Text("; ".join(parts[:4]), style="dim")]
        table.add_row(*row)
    total = [Text("total", style="bold"), Text(_elapsed(timeline.total_local), style="bold")]
    if local:
        total += [
            Text(_minutes(timeline.total_projected), style="bold"),
            Text("without the person's wait", style="dim"),
        ]
    table.add_row(*total, end_section=True)
    if local:
        scale = f"time scale {timeline.time_scale:g}; " if timeline.time_scale else ""
        table.caption = (
            f"local cloud at {scale}AWS times projected from each emulated wait's AWS-typical "
            "duration (docs/timeline.md)"
        )
    else:
        table.caption = (
            "AWS's own times, from the run's execution histories and its CodeDeploy deployment"
        )
    return table


def _part(part: Part) -> str:
    from safe_deploy.localcloud.timeline.durations import BY_OPERATION

    label = BY_OPERATION[part.operation].label
    if part.subject and part.operation.startswith(_SUBJECT_SHOWN):
        label = f"{label} {part.subject}"
    return f"{label} {_minutes(part.projected)}"


def _elapsed(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.1f} s"
    if seconds < 3600:
        return f"{int(seconds // 60)} min {int(seconds % 60):02d} s"
    return f"{int(seconds // 3600)} h {int(seconds % 3600 // 60):02d} min"


def _minutes(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds / 60:.1f} min"


def print_runs(runs: list[ops.Run], where: str) -> None:
    """One block per run: what a person needs to follow it or to decide on it, every value from
    AWS shown as text (never as markup) and wrapped, never cut."""
    console.print(Text(f"pipeline runs ({where})", style="bold"))
    if not runs:
        console.print("no runs yet: upload a trip file with `safe-deploy upload-data FILE`")
    for run in runs:
        console.print(run_block(run))


def run_block(run: ops.Run) -> Panel:
    rows = Table.grid(padding=(0, 1))
    rows.add_column(style="dim", no_wrap=True)
    rows.add_column(overflow="fold")
    rows.add_row("source", Text(_source(run)))
    if run.data.get("months", 1) > 1:  # one month is the source alone
        rows.add_row("data", Text(_data(run.data)))
    rows.add_row(
        "started",
        Text(when(run.started) + (f", stopped {when(run.stopped)}" if run.stopped else "")),
    )
    if run.status == "RUNNING":
        step = " > ".join(s for s in (run.step, run.promotion_step) if s)
        rows.add_row("step", Text(step or "-"))
    elif run.failed_at:
        rows.add_row("failed at", Text(run.failed_at))
    if run.evaluation or run.test:
        rows.add_row("candidate", Text(_metrics(run.evaluation or {}, run.test or {})))
    if run.evaluation:
        rows.add_row("gate", _verdict(run.evaluation))
    if run.approval:
        rows.add_row("approval", Text(_approval(run.approval)))
    if run.failure:
        rows.add_row("why it stopped", _why(run.failure))
    colour = STATUS_COLOURS.get(run.status, "white")
    title = Text.assemble((run.name, "bold"), "  ", (run.status, colour))
    return Panel(rows, title=title, title_align="left", border_style=colour)


def _source(run: ops.Run) -> str:
    source = run.source
    if not source.get("key"):
        return "-"
    text = f"s3://{source.get('bucket', '?')}/{source['key']}"
    if source.get("version_id"):
        text += f", version {source['version_id']}"
    return text + (f" ({run.trigger})" if run.trigger else "")


def _data(data: dict[str, Any]) -> str:
    """The files the run prepared and trained on: months, then each key at its version."""
    months = data.get("months_covered") or []
    head = f"{data.get('months', 1)}-month window"
    if months:
        head += f": {', '.join(months)}"
    lines = [f"{head} ({data.get('note', '')})"]
    for file in data.get("files", []):
        version = f", version {file['version_id']}" if file.get("version_id") else ""
        lines.append(f"  {file.get('key')}{version}")
    return "\n".join(lines)


def production_model(champion: dict[str, Any]) -> str:
    """The model serving production, with its model registry version when the record points at
    one (``safe-deploy models`` lists it; ``rollback`` names it)."""
    parts = []
    if champion.get("model_package_version"):
        parts.append(f"registry version {champion['model_package_version']}")
    parts.append(f"validation RMSE {_number(champion.get('validation_rmse'))}")
    return f"{champion.get('model_id')} ({', '.join(parts)})"


def _number(value: Any) -> str:
    try:
        return f"{float(value):.3f}"
    except (TypeError, ValueError):
        return str(value)


def _metrics(evaluation: dict[str, Any], test: dict[str, Any]) -> str:
    """The candidate's numbers, each only where the run has it (the gate's output grows keys)."""
    parts = []
    if evaluation.get("validation_rmse") is not None:
        part = f"validation RMSE {_number(evaluation['validation_rmse'])}"
        if evaluation.get("train_rmse") is not None:
            part += f" (train {_number(evaluation['train_rmse'])})"
        if evaluation.get("champion_rmse_same_rows") is not None:
            part += (
                f", production's {_number(evaluation['champion_rmse_same_rows'])} on the same "
                f"{evaluation.get('rows_compared', '')} rows"
            )
        elif evaluation.get("champion_rmse") is not None:
            part += f", production's {_number(evaluation['champion_rmse'])} on its own month"
        parts.append(part)
    if test.get("rmse") is not None:
        part = f"dev endpoint test RMSE {_number(test['rmse'])}"
        if test.get("mae") is not None:
            part += f", MAE {_number(test['mae'])}"
        if test.get("rows") is not None:
            part += f" on {test['rows']} rows"
        parts.append(part)
    return "; ".join(parts) or "-"


def _verdict(evaluation: dict[str, Any]) -> Text:
    passed = evaluation.get("passed")
    word, colour = (
        ("passed", "green")
        if passed is True
        else ("rejected", "red")
        if passed is False
        else ("no verdict", "yellow")
    )
    why = evaluation.get("summary") or evaluation.get("reason") or ""
    return Text.assemble((word, colour), f": {why}" if why else "")


def _approval(approval: dict[str, Any]) -> str:
    status = str(approval.get("status") or "-").lower()
    if approval.get("decided_by"):
        text = f"{status} by {approval['decided_by']} at {when(approval.get('decided_at'))}"
        return text + (f": {approval['reason']}" if approval.get("reason") else "")
    if status == "pending" and approval.get("expires_at"):
        return f"pending until {when(approval['expires_at'])}"
    return status


def _why(failure: ops.Failure) -> Text:
    """The root cause on its own line, in full; below it, dimmed, who reported it."""
    text = Text(failure.reasons[0] if failure.reasons else failure.error, style="bold red")
    for reason in failure.reasons[1:]:
        text.append("\n← " + reason, style="dim")
    return text


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
        f"({when(execution.get('ScheduledTime'))})",
        markup=False,
    )
    if report.statistics:
        console.print(f"{report.statistics['dataset']['item_count']:,} captured rows analysed")
    table = Table(title="violations by feature")
    for column in ("feature", "check", "description"):
        table.add_column(column)
    for violation in report.violations:
        table.add_row(
            Text(violation["feature_name"]),
            Text(violation["constraint_check_type"]),
            Text(violation["description"]),
        )
    console.print(table if report.violations else "no violations")
