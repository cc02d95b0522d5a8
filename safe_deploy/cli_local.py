"""safe-deploy local: the local cloud's life cycle."""

from __future__ import annotations

import json
import os
import shlex
import signal
import threading
import time
from pathlib import Path

import click
from rich.markup import escape
from rich.table import Table

from safe_deploy.cli_common import project_root
from safe_deploy.console import console
from safe_deploy.target import LOCAL_CONNECTION, TargetError


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
    from safe_deploy.localcloud.cloud import LocalCloud
    from safe_deploy.localcloud.state import LocalSettings

    overrides = {}
    for item in parameters:
        name, sep, value = item.partition("=")
        if not sep:
            raise click.BadParameter(f"{item!r}: expected NAME=VALUE", param_hint="--parameter")
        overrides[name] = value
    settings = LocalSettings(
        project_root=project_root(),
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
