"""Commands that move a release: upload data, decide approvals, rotate the link key."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import click
from pipeline_common.layout import is_rollback
from rich.markup import escape

from safe_deploy.cli_common import target_options
from safe_deploy.console import console
from safe_deploy.follow import (
    Follower,
    Stop,
    newest_run,
    run_name_for_upload,
    the_pending_run,
    traffic_hint,
)
from safe_deploy.target import Target, TargetError


def _follower(target: Target) -> Follower:
    started = time.monotonic()

    def say(message: str) -> None:
        console.print(f"{time.monotonic() - started:6.1f}s  {message}", markup=False)

    return Follower(target, say)


WAIT_OPTION = click.option(
    "--wait/--no-wait",
    default=True,
    show_default=True,
    help="Follow the pipeline until the next thing it needs from you.",
)


@click.command("upload-data")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--key", help="Object key (default raw/<file name>); must be under raw/.")
@WAIT_OPTION
@target_options
def upload_data(
    file: Path, key: str | None, wait: bool, stack: str | None, region: str | None
) -> None:
    """Upload a TLC trip file under raw/: the pipeline starts on its own.

    Then follows the run it started, step by step, until the candidate waits for approval
    (showing its metrics and the gate's verdict) or the run stops (showing why)."""
    from safe_deploy import ops

    target = Target.of(stack, region)
    uploaded = ops.upload_data(target, file, key)
    name = run_name_for_upload(target, uploaded.bucket, uploaded.key, uploaded.version_id)
    console.print(
        f"uploaded to s3://{uploaded.bucket}/{uploaded.key} "
        f"(version {uploaded.version_id or '-'}); run {name}",
        markup=False,
    )
    if not wait:
        console.print("follow it with `safe-deploy status`", markup=False)
        return
    _show_stop(_follower(target).run(name))


@click.command()
@click.argument("execution", required=False)
@click.option("--reason", default="", help="Recorded with the decision.")
@WAIT_OPTION
@target_options
def approve(
    execution: str | None, reason: str, wait: bool, stack: str | None, region: str | None
) -> None:
    """Approve the candidate of a pipeline run (name or ARN; default: the one run awaiting
    approval), as your IAM identity. Then follows the promotion until it needs client traffic
    or ends."""
    target = Target.of(stack, region)
    name = _decide(target, execution, True, reason)
    if wait:
        _show_stop(_follower(target).promotion(name))


@click.command()
@click.argument("run", required=False)
@target_options
def follow(run: str | None, stack: str | None, region: str | None) -> None:
    """Follow a run (default: the newest) step by step, through its promotion, until it waits
    for approval or ends; or a rollback (its deploy execution's name), to its end."""
    target = Target.of(stack, region)
    name = (run or newest_run(target)).rsplit(":", 1)[-1]
    follower = _follower(target)
    if is_rollback(name):
        _show_stop(follower.promotion(name, stop_for_traffic=False))
    else:
        _show_stop(follower.run(name, through_promotion=True))


@click.command()
@click.argument("execution", required=False)
@click.option("--reason", default="", help="Recorded with the decision.")
@target_options
def reject(execution: str | None, reason: str, stack: str | None, region: str | None) -> None:
    """Reject the candidate of a pipeline run (name or ARN; default: the one run awaiting
    approval), as your IAM identity."""
    _decide(Target.of(stack, region), execution, False, reason)


def _decide(target: Target, execution: str | None, approved: bool, reason: str) -> str:
    """Decide, print who decided, and return the run's name."""
    from safe_deploy import ops

    execution = execution or the_pending_run(target)
    answer = ops.decide(target, execution, approved, reason)
    verdict = str(answer.get("status", "")).lower()
    name = execution.rsplit(":", 1)[-1]
    console.print(f"{name}: {verdict} by {answer.get('decided_by')}", markup=False)
    return name


def _show_stop(stop: Stop) -> None:
    """What following found, and the command that comes next."""
    facts = stop.facts
    run = facts.get("run", "")
    if stop.what == "approval":
        _show_candidate(facts)
        console.print(
            f"{run} waits for approval: `safe-deploy approve --reason TEXT` or "
            "`safe-deploy reject --reason TEXT` (or open the link sent to the reviewers)",
            markup=False,
        )
    elif stop.what == "traffic":
        console.print(traffic_hint(facts), markup=False)
    elif stop.what == "done" and facts.get("promotion"):
        console.print(f"{run} is in production: `safe-deploy status` shows it", markup=False)
    elif stop.what == "done":
        console.print(f"{run} succeeded", markup=False)
    elif stop.what == "failed":
        reason = " ".join(str(facts.get(k) or "") for k in ("error", "cause")).strip()
        raise TargetError(f"{run} {str(facts.get('status', 'failed')).lower()}: {reason}")
    elif stop.what == "missing":
        raise TargetError(
            f"no {'promotion' if facts.get('promotion') else 'run'} {run} started: see "
            "`safe-deploy status`"
        )
    else:
        console.print(f"{run} is still going; follow it with `safe-deploy status`", markup=False)


def _show_candidate(facts: dict[str, Any]) -> None:
    evaluation = facts.get("evaluation") or {}
    test = facts.get("test") or {}
    if "validation_rmse" in evaluation:
        console.print(f"  validation RMSE {evaluation['validation_rmse']:.3f}", markup=False)
    summary = evaluation.get("summary") or evaluation.get("reason")
    if summary:
        console.print(f"  gate: {summary}", markup=False)
    report = test.get("test", {}).get("report", {})
    if isinstance(report.get("rmse"), int | float):
        console.print(
            f"  the dev endpoint's RMSE on {report.get('rows', 'the')} test trips "
            f"{report['rmse']:.3f}",
            markup=False,
        )


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
