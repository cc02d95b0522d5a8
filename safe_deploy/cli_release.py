"""Commands that move a release: upload data, decide approvals, rotate the link key."""

from __future__ import annotations

from pathlib import Path

import click
from rich.markup import escape

from safe_deploy.cli_common import target_options
from safe_deploy.console import console
from safe_deploy.target import Target, TargetError


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
