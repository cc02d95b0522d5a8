"""The operator commands: the same against a deployed stack (``--stack``) and the local cloud."""

from __future__ import annotations

import json
import os
import shlex
import signal
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click
import requests
from rich.markup import escape
from rich.table import Table

from safe_deploy.console import console
from safe_deploy.target import LOCAL_CONNECTION, Target, TargetError

if TYPE_CHECKING:
    from pipeline_common.release import ReleaseCheck, ReleaseState

F = TypeVar("F", bound=Callable[..., Any])


def target_options(command: F) -> F:
    command = click.option(
        "--region", envvar="AWS_REGION", help="Region of the stack (default: your AWS config)."
    )(command)
    return click.option(
        "--stack",
        envvar="SAFE_DEPLOY_STACK",
        help="A deployed stack's name; without it, the local cloud `safe-deploy local up` runs.",
    )(command)


def _when(value: Any) -> str:
    if value is None or value == "":
        return "-"
    if isinstance(value, int | float):
        value = datetime.fromtimestamp(float(value), UTC)
    if isinstance(value, datetime):
        return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    return str(value)


def register(main: click.Group) -> None:
    main.add_command(local)
    for command in (
        upload_data,
        status,
        approve,
        reject,
        rotate_approval_key,
        traffic,
        drift_report,
    ):
        main.add_command(command)


# ---------------------------------------------------------------------------- local cloud
@click.group()
def local() -> None:
    """The local cloud: the whole application offline, on this machine."""


@local.command("up")
@click.option(
    "--workdir",
    type=click.Path(path_type=Path),
    default=Path(".safe-deploy/cloud"),
    show_default=True,
)
@click.option(
    "--time-scale",
    type=float,
    default=None,
    help="Real seconds per simulated second (default 0.02: a minute lasts 1.2 s).",
)
@click.option("--aws-port", type=int, default=0, help="Port of the AWS endpoint (default: any).")
@click.option("--api-port", type=int, default=0, help="Port of the API (default: any).")
@click.option(
    "--parameter",
    "parameters",
    multiple=True,
    metavar="NAME=VALUE",
    help="Override a template parameter, as sam deploy --parameter-overrides would.",
)
@click.option("--quiet", is_flag=True, help="Do not print what the local cloud does.")
def local_up(
    workdir: Path,
    time_scale: float | None,
    aws_port: int,
    api_port: int,
    parameters: tuple[str, ...],
    quiet: bool,
) -> None:
    """Run the local cloud until stopped (Ctrl-C)."""
    from safe_deploy.cli import _project_root
    from safe_deploy.localcloud.cloud import LocalCloud
    from safe_deploy.localcloud.state import LocalSettings

    overrides = {}
    for item in parameters:
        name, sep, value = item.partition("=")
        if not sep:
            raise click.BadParameter(f"{item!r}: expected NAME=VALUE", param_hint="--parameter")
        overrides[name] = value
    settings = LocalSettings(
        project_root=_project_root(),
        workdir=workdir.resolve(),
        aws_port=aws_port,
        api_port=api_port,
        parameter_overrides=overrides,
    )
    if time_scale is not None:
        settings.time_scale = time_scale
    console.print("starting the local cloud ...")
    cloud = LocalCloud(settings).start()
    started = time.time()
    try:
        cloud.write_connection_file(LOCAL_CONNECTION)
        table = Table(title="local cloud", show_header=False)
        table.add_row("AWS endpoint", cloud.aws_url)
        table.add_row("API", cloud.endpoints.api)
        table.add_row("approval messages", str(cloud.outbox))
        table.add_row("function logs", str(cloud.host.logs_dir))
        table.add_row("credentials", "any access key; secret key 'testing' (region us-east-1)")
        table.add_row(
            "time scale", f"{settings.time_scale} (a minute lasts {60 * settings.time_scale:g}s)"
        )
        console.print(table)
        outputs = Table(title="stack outputs", show_header=False)
        outputs.add_column(no_wrap=True)
        outputs.add_column(overflow="fold")
        for key, value in cloud.outputs.items():
            outputs.add_row(key, escape(value))
        console.print(outputs)
        console.print(
            "Point boto3 or the AWS CLI at it: export AWS_ENDPOINT_URL="
            f"{cloud.aws_url} AWS_ACCESS_KEY_ID=local AWS_SECRET_ACCESS_KEY=testing "
            "AWS_DEFAULT_REGION=us-east-1"
        )
        console.print("Try: safe-deploy upload-data FILE, safe-deploy status. Ctrl-C stops.")
        if not quiet:
            cloud.feed.listen(
                lambda a: console.print(
                    f"[dim]{a.at - started:7.1f}s[/dim] [cyan]{a.source}[/cyan] {escape(a.message)}"
                )
            )
        stop = threading.Event()
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
        try:
            while not stop.wait(0.5):
                pass
        except KeyboardInterrupt:
            pass
    finally:
        LOCAL_CONNECTION.unlink(missing_ok=True)
        cloud.stop()
        console.print("local cloud stopped")


@local.command("env")
def local_env() -> None:
    """Shell exports that point the AWS CLI, boto3 and the SAM CLI at the running local cloud:
    eval "$(safe-deploy local env)"."""
    connection = Path(os.environ.get("SAFE_DEPLOY_LOCAL", str(LOCAL_CONNECTION)))
    if not connection.exists():
        raise TargetError(
            f"no local cloud is running ({connection} is missing): start one with "
            "`safe-deploy local up`"
        )
    data = json.loads(connection.read_text())
    values = {
        "AWS_ENDPOINT_URL": data["aws_endpoint_url"],
        "AWS_ACCESS_KEY_ID": data["access_key"],
        "AWS_SECRET_ACCESS_KEY": data["secret_key"],
        "AWS_DEFAULT_REGION": data["region"],
        "AWS_REGION": data["region"],
    }
    for key, value in values.items():
        click.echo(f"export {key}={shlex.quote(value)}")
    click.echo("unset AWS_PROFILE AWS_SESSION_TOKEN")


# ---------------------------------------------------------------------------- operations
@click.command("upload-data")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--key", help="Object key (default raw/<file name>); must be under raw/.")
@target_options
def upload_data(file: Path, key: str | None, stack: str | None, region: str | None) -> None:
    """Upload a TLC trip file under raw/: the pipeline starts on its own."""
    from safe_deploy import ops

    uploaded = ops.upload_data(Target.of(stack, region), file, key)
    console.print(
        f"uploaded to s3://{escape(uploaded.bucket)}/{escape(uploaded.key)} "
        f"(version {uploaded.version_id or '-'}); follow it with `safe-deploy status`"
    )


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
            f"at {_when(approval.get('decided_at'))}"
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
            _when(run.started),
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
                _when(d["created"]),
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


@click.command()
@click.argument("execution")
@click.option("--reason", default="", help="Recorded with the decision.")
@target_options
def approve(execution: str, reason: str, stack: str | None, region: str | None) -> None:
    """Approve the candidate of a pipeline run (name or ARN), as your IAM identity."""
    _decide(execution, True, reason, stack, region)


@click.command()
@click.argument("execution")
@click.option("--reason", default="", help="Recorded with the decision.")
@target_options
def reject(execution: str, reason: str, stack: str | None, region: str | None) -> None:
    """Reject the candidate of a pipeline run (name or ARN), as your IAM identity."""
    _decide(execution, False, reason, stack, region)


def _decide(
    execution: str, approved: bool, reason: str, stack: str | None, region: str | None
) -> None:
    from safe_deploy import ops

    answer = ops.decide(Target.of(stack, region), execution, approved, reason)
    verdict = str(answer.get("status", "")).lower()
    console.print(f"{escape(verdict)} by {escape(str(answer.get('decided_by')))}")


@click.command("rotate-approval-key")
@click.option(
    "--revoke-previous",
    is_flag=True,
    help="Also revoke the key being replaced: links signed with it stop opening at once.",
)
@target_options
def rotate_approval_key(revoke_previous: bool, stack: str | None, region: str | None) -> None:
    """A new key for the approval links; links sent before keep working unless revoked."""
    from botocore.exceptions import BotoCoreError, ClientError
    from pipeline_common.secrets import CURRENT, PREVIOUS, rotate_key

    target = Target.of(stack, region)
    arn = target.output("ApprovalSigningSecretArn")
    try:
        done = rotate_key(target.client("secretsmanager"), arn, revoke_previous)
    except (ClientError, BotoCoreError) as exc:
        raise TargetError(f"the signing key could not be rotated: {exc}") from None
    console.print(f"signing key {escape(arn)} ({target.name}):", highlight=False)
    console.print(f"  version {done.new_version} is {CURRENT}: it signs every new link")
    if done.replaced_version and done.revoked:
        console.print(
            f"  version {done.replaced_version} revoked ({PREVIOUS} removed): "
            "links signed with it no longer open"
        )
    elif done.replaced_version:
        console.print(
            f"  version {done.replaced_version} is {PREVIOUS}: links signed with it keep "
            "working until they expire"
        )
    if done.dropped_version:
        console.print(
            f"  version {done.dropped_version} (was {PREVIOUS}): links signed with it no longer "
            "open"
        )


@click.command()
@click.option("--requests", "count", default=50, show_default=True, type=click.IntRange(1, 100_000))
@click.option("--rate", default=10.0, show_default=True, help="Requests per second.")
@click.option(
    "--drift",
    type=click.Choice(["longer-trips", "more-passengers", "fare-inflation"]),
    help="Send drifted trips (for monitoring demos).",
)
@click.option("--seed", default=7, show_default=True)
@target_options
def traffic(
    count: int, rate: float, drift: str | None, seed: int, stack: str | None, region: str | None
) -> None:
    """Send requests through the API and show which endpoint answered each."""
    from model.synth import synth_trips, write_trips
    from safe_deploy.traffic import Answer, LoadGenerator, client_rides

    target = Target.of(stack, region)
    scratch = Path(".safe-deploy") / f"traffic-{seed}-{drift or 'plain'}.csv"
    write_trips(synth_trips(max(2 * count, 200), seed=seed, drift=drift), scratch)
    rows = client_rides(scratch, count)
    seen = {"n": 0}

    def show(answer: Answer) -> None:
        seen["n"] += 1
        outcome = f"{answer.prediction:.2f}" if answer.prediction is not None else answer.error
        console.print(
            f"{seen['n']:5d} {answer.status} {escape(answer.endpoint)} {escape(str(outcome))}",
            highlight=False,
        )

    log = (
        LoadGenerator(target, rows, rate=rate, workers=4, limit=len(rows), on_answer=show)
        .start()
        .wait()
    )
    counts = log.by_endpoint()
    console.print(
        f"{log.sent} sent, {len(log.failed)} failed; answered by: "
        + ", ".join(f"{k} {v} ({v / max(1, log.sent):.0%})" for k, v in counts.items())
    )


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
        f"({_when(execution.get('ScheduledTime'))})"
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
