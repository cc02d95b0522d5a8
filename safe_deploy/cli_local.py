"""safe-deploy local: the local cloud's life cycle (up, down, status, env).

One local cloud per work folder (its lock) and per connection file (the operator commands find it
there). It keeps its state in memory only: stopping it loses every run, deployment and endpoint,
so ``down`` and ``status`` say what is in flight, a stopping local cloud writes that down in its
folder, and the next start says what it did not keep.
"""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any, NoReturn

import click
import requests
from botocore.config import Config
from rich.markup import escape
from rich.table import Table

from safe_deploy.cli_common import project_root
from safe_deploy.console import StageFailed, console, errors
from safe_deploy.localcloud.inflight import InFlight, read_in_flight
from safe_deploy.localcloud.workdir import (
    LOCAL_CLOUD_FILES,
    LOG,
    StopRecord,
    WorkdirBusy,
    WorkdirError,
    claim,
    look_back,
    probe,
    stale_holder,
    when,
)
from safe_deploy.target import Target, TargetError, local_connection_path

if TYPE_CHECKING:  # the local cloud's modules load only when one starts
    from safe_deploy.localcloud.cloud import LocalCloud

DEFAULT_WORKDIR = Path(".safe-deploy") / "cloud"
READY_TIMEOUT = 600.0  # seconds a detached local cloud may take to answer
STOP_TIMEOUT = 60.0
LOG_TAIL_LINES = 40
CHILD_ENTRY = "from safe_deploy.cli import main; main(prog_name='safe-deploy')"


def say(message: str) -> None:
    """Printed as it is: paths, names and ARNs are never read as markup."""
    console.print(message, markup=False)


@click.group()
def local() -> None:
    """The local cloud: the whole application offline, on this machine."""


# ---------------------------------------------------------------------------- finding it
@dataclass
class Running:
    """A local cloud whose process is alive, as its connection file or its lock describes it."""

    pid: int
    workdir: Path | None
    started_at: float | None
    aws_endpoint_url: str | None
    api_url: str | None
    time_scale: float | None
    connection: Path | None  # None: found by its folder's lock, before it wrote the file

    def describe(self) -> str:
        endpoint = self.aws_endpoint_url or "not answering yet: still starting"
        return (
            f"pid {self.pid}, AWS endpoint {endpoint}, work folder {self.workdir or 'unknown'}, "
            f"started {when(self.started_at)}"
        )


def _read_connection(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _pid_alive(pid: int) -> bool:
    """Whether ``pid`` is a live process (a zombie is not: it has exited)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rsplit(")", 1)[-1].split()[0] != "Z"


def _from_connection(connection: Path) -> Running | None:
    """The local cloud the connection file names, if it still runs: its folder's lock is held
    by the pid the file names (a file an earlier version wrote names no folder: its pid alone)."""
    data = _read_connection(connection)
    if data is None or not isinstance(data.get("pid"), int):
        return None
    pid = int(data["pid"])
    folder = data.get("workdir")
    if folder is not None:
        holder = probe(Path(folder))
        if holder is None or holder.pid != pid:
            return None
    elif not _pid_alive(pid):
        return None
    return Running(
        pid,
        Path(folder) if folder else None,
        data.get("started_at"),
        data.get("aws_endpoint_url"),
        data.get("api_url"),
        data.get("time_scale"),
        connection,
    )


def _from_lock(folder: Path) -> Running | None:
    holder = probe(folder)
    if holder is None:
        return None
    return Running(
        holder.pid,
        folder,
        holder.started_at,
        holder.aws_endpoint_url,
        holder.api_url,
        holder.time_scale,
        None,
    )


def find_running(connection: Path, workdir: Path | None) -> Running | None:
    """The running local cloud: the one the connection file names, else the one that holds the
    work folder (``--workdir``, or the default folder)."""
    folder = (workdir or DEFAULT_WORKDIR).resolve()
    running = _from_connection(connection)
    if running is not None and (workdir is None or running.workdir == folder):
        return running
    return _from_lock(folder)


def _stale_connection(connection: Path) -> str | None:
    """A note about a connection file that names no running local cloud, or None."""
    data = _read_connection(connection)
    if data is None or _from_connection(connection) is not None:
        return None
    return f"{connection} names pid {data.get('pid')}, which no longer runs a local cloud"


# ---------------------------------------------------------------------------- what is in flight
def _in_flight_of(running: Running) -> InFlight | None:
    """What the running local cloud has in flight, read through its AWS endpoint; None when it
    does not answer (still starting, or stuck)."""
    if running.connection is None:
        return None
    try:
        target = Target.local_cloud(running.connection)
    except TargetError:
        return None
    config = Config(retries={"max_attempts": 1}, connect_timeout=3, read_timeout=30)

    def client(service: str) -> Any:
        make: Callable[..., Any] = target.session.client
        return make(
            service, region_name=target.region, endpoint_url=target.endpoint_url, config=config
        )

    try:
        return read_in_flight(client)
    except Exception as exc:  # the report is best effort; stopping must not depend on it
        errors.print(f"what is in flight could not be read: {exc}", markup=False)
        return None


def _print_in_flight(in_flight: InFlight | None) -> None:
    if in_flight is None:
        say("in flight: unknown (the AWS endpoint does not answer)")
        return
    if in_flight.empty:
        say("in flight: nothing")
        return
    say("in flight:")
    for execution in in_flight.executions:
        step = f" at {execution.step}" if execution.step else ""
        say(f"  run {execution.name} ({execution.state_machine}){step}")
    for deployment in in_flight.deployments:
        say(f"  deployment {deployment.id} {deployment.status} (group {deployment.group})")
    for endpoint in in_flight.endpoints:
        say(f"  endpoint {endpoint} InService")


# ---------------------------------------------------------------------------- up
def _overrides(parameters: tuple[str, ...]) -> dict[str, str]:
    overrides = {}
    for item in parameters:
        name, sep, value = item.partition("=")
        if not sep:
            raise click.BadParameter(f"{item!r}: expected NAME=VALUE", param_hint="--parameter")
        overrides[name] = value
    return overrides


def _refuse_if_running(connection: Path) -> None:
    """One local cloud per connection file: a second would take the operator commands over."""
    running = _from_connection(connection)
    if running is not None:
        raise TargetError(
            f"a local cloud is already running ({running.describe()}); "
            "`safe-deploy local down` stops it (or give a second one its own connection file: "
            "SAFE_DEPLOY_LOCAL=PATH)"
        )
    stale = _stale_connection(connection)
    if stale is not None:
        say(f"{stale}: it will be replaced")


def _claim_folder(workdir: Path) -> None:
    """The work folder must be ours (the marker rule); the default folder, as an earlier
    version left it (unmarked, holding only the local cloud's own files), is taken over."""
    legacy = LOCAL_CLOUD_FILES if workdir == DEFAULT_WORKDIR.resolve() else frozenset()
    try:
        claim(workdir, "the local cloud (safe-deploy local up)", legacy)
    except WorkdirError as exc:
        raise TargetError(str(exc)) from None


def _print_endpoints(data: dict[str, Any]) -> None:
    """What clients need, from the connection file (the same for ``up`` and ``up --detach``)."""
    scale = float(data["time_scale"])
    table = Table(title="local cloud", show_header=False)
    table.add_column(no_wrap=True)
    table.add_column(overflow="fold")
    for name, value in (
        ("AWS endpoint", data["aws_endpoint_url"]),
        ("API", data["api_url"]),
        ("approval messages", data["outbox"]),
        ("function logs", data["logs"]),
        ("work folder", data["workdir"]),
        ("credentials", "any access key; secret key 'testing' (region us-east-1)"),
        ("time scale", f"{scale} (a minute lasts {60 * scale:g}s)"),
        ("pid", str(data["pid"])),
    ):
        table.add_row(name, escape(str(value)))
    console.print(table)
    outputs = Table(title="stack outputs", show_header=False)
    outputs.add_column(no_wrap=True)
    outputs.add_column(overflow="fold")
    for key, value in data["outputs"].items():
        outputs.add_row(escape(key), escape(str(value)))
    console.print(outputs)
    say(
        f"Point boto3 or the AWS CLI at it: export AWS_ENDPOINT_URL={data['aws_endpoint_url']} "
        "AWS_ACCESS_KEY_ID=local AWS_SECRET_ACCESS_KEY=testing AWS_DEFAULT_REGION=us-east-1"
    )


@local.command("up")
@click.option(
    "--workdir",
    type=click.Path(path_type=Path),
    default=DEFAULT_WORKDIR,
    show_default=True,
    help="The local cloud's folder: new, empty, or one safe-deploy made (it clears it).",
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
@click.option(
    "--detach",
    is_flag=True,
    help="Run in the background (output in the work folder's local-up.log); return once ready.",
)
def local_up(
    workdir: Path,
    time_scale: float | None,
    aws_port: int,
    api_port: int,
    parameters: tuple[str, ...],
    quiet: bool,
    detach: bool,
) -> None:
    """Run the local cloud until stopped (Ctrl-C or `local down`); --detach: in the background.

    One local cloud per work folder. It keeps its state in memory only: a start begins empty,
    and says what the previous local cloud had in flight when it stopped."""
    overrides = _overrides(parameters)
    workdir = workdir.resolve()
    connection = local_connection_path()
    _refuse_if_running(connection)
    _claim_folder(workdir)
    if detach:
        _detach(workdir, connection, time_scale, aws_port, api_port, parameters, quiet)
    else:
        _serve(workdir, connection, time_scale, aws_port, api_port, overrides, quiet)


# ---------------------------------------------------------------------------- up, in the foreground
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def _already_stopping(signum: int, frame: FrameType | None) -> None:
    os.write(2, b"already stopping the local cloud\n")


def _hold_signals() -> None:
    """From here on the stop runs to its end: a further signal is only acknowledged."""
    for number in STOP_SIGNALS:
        signal.signal(number, _already_stopping)


@contextmanager
def _stop_on_signals() -> Iterator[None]:
    """SIGINT and SIGTERM both stop the local cloud cleanly, with or without a terminal: a job
    started with ``&`` by a non-interactive shell inherits SIGINT ignored, so Python would never
    raise KeyboardInterrupt for it. The first signal interrupts; later ones wait for the stop."""

    def interrupt(signum: int, frame: FrameType | None) -> None:
        _hold_signals()
        raise KeyboardInterrupt

    previous = {number: signal.signal(number, interrupt) for number in STOP_SIGNALS}
    try:
        yield
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)


def _serve(
    workdir: Path,
    connection: Path,
    time_scale: float | None,
    aws_port: int,
    api_port: int,
    overrides: dict[str, str],
    quiet: bool,
) -> None:
    from safe_deploy.localcloud.cloud import LocalCloud
    from safe_deploy.localcloud.state import LocalSettings

    settings = LocalSettings(
        project_root=project_root(),
        workdir=workdir,
        aws_port=aws_port,
        api_port=api_port,
        parameter_overrides=overrides,
        human_pace=True,  # a person drives this one: waits for people and clients keep their length
    )
    if time_scale is not None:
        settings.time_scale = time_scale
    cloud = LocalCloud(settings)
    try:
        occupancy = cloud.claim()
    except WorkdirError as exc:
        raise TargetError(str(exc)) from None
    for note in (occupancy.took_over, occupancy.previous):
        if note:
            say(note)
    say(f"starting the local cloud in {workdir} ...")
    with _stop_on_signals():
        try:
            cloud.start()
        except KeyboardInterrupt:
            raise TargetError("stopped before the local cloud was ready") from None
        except RuntimeError as exc:  # the stack failed, as CloudFormation says
            raise TargetError(f"the local cloud did not start: {exc}") from None
        _run_until_stopped(cloud, connection, quiet)


def _run_until_stopped(cloud: LocalCloud, connection: Path, quiet: bool) -> None:
    started = time.time()
    unlisten: Callable[[], None] | None = None
    try:
        cloud.write_connection_file(connection)
        _print_endpoints(json.loads(connection.read_text()))
        say(
            "Try: safe-deploy upload-data FILE, safe-deploy status. "
            "Ctrl-C or `safe-deploy local down` stops it."
        )
        if not quiet:
            unlisten = cloud.feed.listen(
                lambda a: console.print(
                    f"[dim]{a.at - started:7.1f}s[/dim] [cyan]{escape(a.source)}[/cyan] "
                    f"{escape(a.message)}"
                )
            )
        cloud.broken_event.wait()
        raise StageFailed("local up", "; ".join(cloud.broken))
    except KeyboardInterrupt:
        pass
    finally:
        _hold_signals()
        if unlisten is not None:
            unlisten()
        say("stopping the local cloud ...")
        data = _read_connection(connection)
        if data is not None and data.get("pid") == os.getpid():
            connection.unlink(missing_ok=True)
        cloud.stop()
        _print_in_flight(cloud.in_flight_at_stop)
        say(
            "local cloud stopped; it kept its state in memory only "
            f"(what was in flight is noted in {cloud.settings.workdir})"
        )


# ---------------------------------------------------------------------------- up --detach
def _detach(
    workdir: Path,
    connection: Path,
    time_scale: float | None,
    aws_port: int,
    api_port: int,
    parameters: tuple[str, ...],
    quiet: bool,
) -> None:
    """The same ``local up`` in a background process of its own session, its output in the work
    folder's log; returns once its connection file is written and its AWS endpoint answers."""
    holder = probe(workdir)
    if holder is not None:
        raise TargetError(str(WorkdirBusy(workdir, holder)))
    stale = stale_holder(workdir)
    if stale is not None:
        say(f"a stale lock names pid {stale.pid}, which is gone: it will be taken over")
    previous = look_back(workdir, stale)
    if previous:
        say(previous)
    args = ["local", "up", "--workdir", str(workdir), "--aws-port", str(aws_port)]
    args += ["--api-port", str(api_port)]
    if time_scale is not None:
        args += ["--time-scale", repr(time_scale)]
    for item in parameters:
        args += ["--parameter", item]
    if quiet:
        args.append("--quiet")
    log = workdir / LOG
    environment = dict(os.environ, SAFE_DEPLOY_LOCAL=str(connection.resolve()))
    say(f"starting the local cloud in the background (log: {log}) ...")
    with log.open("w") as output:
        child = subprocess.Popen(
            [sys.executable, "-c", CHILD_ENTRY, *args],
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env=environment,
        )
    data = _wait_until_ready(child, connection, READY_TIMEOUT)
    if data is None:
        _report_failed_start(child, log)
    _print_endpoints(data)
    say(
        f"running in the background as pid {child.pid}; `safe-deploy local status` shows it, "
        "`safe-deploy local down` stops it"
    )


def _answers(url: str) -> bool:
    try:
        requests.get(url + "/moto-api/", timeout=2)
    except requests.RequestException:
        return False
    return True


def _wait_until_ready(
    child: subprocess.Popen[bytes], connection: Path, timeout: float
) -> dict[str, Any] | None:
    """The child's connection data once it answers; None if it exits or takes too long."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and child.poll() is None:
        data = _read_connection(connection)
        if (
            data is not None
            and data.get("pid") == child.pid
            and _answers(str(data["aws_endpoint_url"]))
        ):
            return data
        time.sleep(0.25)
    return None


def _report_failed_start(child: subprocess.Popen[bytes], log: Path) -> NoReturn:
    code = child.poll()
    if code is None:  # too slow: it must not linger unseen
        _stop_process(child.pid, STOP_TIMEOUT)
        child.poll()
        reason = f"was not ready within {READY_TIMEOUT:.0f}s and was stopped"
    else:
        reason = f"exited with code {code} before it was ready"
    lines = log.read_text(errors="replace").splitlines()[-LOG_TAIL_LINES:]
    console.file.flush()
    errors.print(f"the last lines of {log}:", markup=False)
    for line in lines:
        errors.print(f"  {line}", markup=False)
    raise TargetError(f"the local cloud {reason}; its log is {log}")


# ---------------------------------------------------------------------------- down
def _wait_gone(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while _pid_alive(pid):
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.1)
    return True


def _stop_process(pid: int, timeout: float) -> bool:
    """SIGTERM, then SIGKILL after ``timeout``; False if it had to be killed."""
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return True
    if _wait_gone(pid, timeout):
        return True
    say(f"pid {pid} did not stop within {timeout:g}s: killing it")
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        return True
    _wait_gone(pid, 10.0)
    return False


workdir_option = click.option(
    "--workdir",
    type=click.Path(path_type=Path),
    default=None,
    help=f"The local cloud's folder (default: the one the connection file names, else "
    f"{DEFAULT_WORKDIR}).",
)


@local.command("down")
@workdir_option
@click.option(
    "--timeout",
    type=float,
    default=STOP_TIMEOUT,
    show_default=True,
    help="Seconds to wait for a clean stop before killing it.",
)
def local_down(workdir: Path | None, timeout: float) -> None:
    """Stop the running local cloud, saying first what it had in flight."""
    connection = local_connection_path()
    running = find_running(connection, workdir)
    if running is None:
        stale = _stale_connection(connection)
        if stale is not None:
            connection.unlink(missing_ok=True)
            say(f"{stale}: removed it")
        say("no local cloud is running")
        return
    if not running.pid:
        raise TargetError(
            f"a local cloud is starting in {running.workdir} and has not written its pid yet; "
            "try again in a moment"
        )
    say(f"stopping the local cloud ({running.describe()})")
    in_flight = _in_flight_of(running)
    _print_in_flight(in_flight)
    if not _stop_process(running.pid, timeout):
        _after_kill(running, in_flight)
    say(f"local cloud stopped (pid {running.pid}); its state was in memory only and is gone")


def _after_kill(running: Running, in_flight: InFlight | None) -> None:
    """A killed local cloud could not clean up: its connection file goes, and its folder gets
    the stop record it could not write."""
    if running.connection is not None:
        data = _read_connection(running.connection)
        if data is not None and data.get("pid") == running.pid:
            running.connection.unlink(missing_ok=True)
    if running.workdir is not None and running.started_at is not None:
        record = StopRecord(time.time(), running.started_at, running.pid, in_flight)
        record.write(running.workdir)


# ---------------------------------------------------------------------------- status
@local.command("status")
@workdir_option
def local_status(workdir: Path | None) -> None:
    """Whether the local cloud runs, and what it has in flight.

    Shows its pid, since when, the AWS endpoint, the API URL, the work folder and the time
    scale; with none running, when the last one stopped and what it had in flight."""
    connection = local_connection_path()
    running = find_running(connection, workdir)
    if running is None:
        say("no local cloud is running")
        stale = _stale_connection(connection)
        if stale is not None:
            say(stale)
        folder = (workdir or DEFAULT_WORKDIR).resolve()
        record = StopRecord.read(folder)
        if record is not None:
            held = record.in_flight.summary() if record.in_flight else "what was in flight unknown"
            say(
                f"the last one in {folder} stopped at {when(record.stopped_at)}, with {held}; "
                "its state was in memory only"
            )
        return
    table = Table(title="local cloud: running", show_header=False)
    table.add_column(no_wrap=True)
    table.add_column(overflow="fold")
    scale = running.time_scale
    for name, value in (
        ("pid", running.pid or "unknown (starting)"),
        ("since", when(running.started_at)),
        ("AWS endpoint", running.aws_endpoint_url or "not answering yet (starting)"),
        ("API", running.api_url or "-"),
        ("work folder", running.workdir or "-"),
        ("time scale", f"{scale} (a minute lasts {60 * scale:g}s)" if scale else "-"),
        ("connection file", running.connection or "not written yet (starting)"),
    ):
        table.add_row(name, escape(str(value)))
    console.print(table)
    _print_in_flight(_in_flight_of(running))


# ---------------------------------------------------------------------------- env
@local.command("env")
def local_env() -> None:
    """Shell exports that point the AWS CLI, boto3 and the SAM CLI at the running local cloud:
    eval "$(safe-deploy local env)"."""
    connection = local_connection_path()
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
