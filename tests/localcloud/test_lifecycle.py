"""The local cloud's life cycle, through the real command line in other processes, as a user
runs it: ``local up --detach``, one local cloud per folder, ``local status``, ``local down``, what
the next start says it discarded, and Ctrl-C (SIGINT) when there is no terminal."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from model.synth import synth_trips, write_trips
from safe_deploy import ops
from safe_deploy.localcloud.workdir import STOP_RECORD, probe
from safe_deploy.target import Target

ROOT = Path(__file__).resolve().parents[2]
SAFE_DEPLOY = Path(sys.executable).with_name("safe-deploy")
COMMAND_TIMEOUT = 300.0


class Cli:
    """``safe-deploy`` in its own process, from the project folder, with a connection file of
    this test's own (never the project's ``.safe-deploy/local.json``)."""

    def __init__(self, tmp_path: Path) -> None:
        self.connection = tmp_path / "local.json"
        self.env = {
            k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "SAFE_DEPLOY_"))
        }
        self.env["SAFE_DEPLOY_LOCAL"] = str(self.connection)
        self.workdirs: list[Path] = []

    def __call__(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(SAFE_DEPLOY), *args],
            cwd=ROOT,
            env=self.env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=COMMAND_TIMEOUT,
        )

    def connection_data(self) -> dict[str, Any]:
        data: dict[str, Any] = json.loads(self.connection.read_text())
        return data

    def stop_all(self) -> None:
        """Whatever a failed test left running is killed, never left behind."""
        for folder in self.workdirs:
            holder = probe(folder)
            if holder is not None and holder.pid:
                os.kill(holder.pid, signal.SIGKILL)


@pytest.fixture
def cli(tmp_path: Path) -> Iterator[Cli]:
    runner = Cli(tmp_path)
    try:
        yield runner
    finally:
        runner.stop_all()


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat")
    return not stat.exists() or stat.read_text().rsplit(")", 1)[-1].split()[0] != "Z"


def wait_for(condition: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.25)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")


def start_a_run(cli: Cli, tmp_path: Path) -> str:
    """A month uploaded under raw/: its run trains and then waits for a person's approval."""
    month = tmp_path / "jan.csv"
    write_trips(synth_trips(3_000, seed=3, month="2018-01"), month)
    ops.upload_data(Target.local_cloud(cli.connection), month)

    def waiting_run() -> str | None:
        status = cli("local", "status")
        found = re.search(r"run (fare-[0-9a-f]+) \(\S+\) at RequestApproval", status.stdout)
        return found.group(1) if found else None

    return str(wait_for(waiting_run, 120, "the run to wait for approval"))


def test_a_detached_local_cloud_from_up_to_down_and_what_the_next_start_discards(
    cli: Cli, tmp_path: Path
) -> None:
    workdir = tmp_path / "cloud"
    cli.workdirs.append(workdir)

    up = cli("local", "up", "--detach", "--workdir", str(workdir), "--quiet")
    assert up.returncode == 0, up.stdout + up.stderr
    first = cli.connection_data()
    pid, endpoint = first["pid"], first["aws_endpoint_url"]
    assert f"AWS endpoint      │ {endpoint}" in up.stdout
    assert f"running in the background as pid {pid}" in up.stdout
    assert alive(pid)
    assert requests.get(f"{endpoint}/moto-api/", timeout=5).ok  # it outlives the command

    second = cli("local", "up", "--detach", "--workdir", str(workdir), "--quiet")
    assert second.returncode == 1
    assert f"pid {pid}" in second.stderr
    assert endpoint in second.stderr
    assert alive(pid)
    assert cli.connection_data()["pid"] == pid  # the first one is still the one to talk to

    run = start_a_run(cli, tmp_path)
    status = cli("local", "status")
    assert status.returncode == 0
    for shown in (
        "local cloud: running",
        f"│ pid             │ {pid}",
        endpoint,
        first["api_url"],
        str(workdir),
        "0.02 (a minute lasts 1.2s)",
        f"run {run}",
        f"endpoint {run}-dev InService",
    ):
        assert shown in status.stdout, shown

    down = cli("local", "down")
    assert down.returncode == 0, down.stdout + down.stderr
    assert f"run {run} (" in down.stdout
    assert f"at RequestApproval\n  endpoint {run}-dev InService" in down.stdout
    assert f"local cloud stopped (pid {pid})" in down.stdout
    assert not alive(pid)
    assert not cli.connection.exists()
    assert probe(workdir) is None
    assert "no local cloud is running" in cli("local", "down").stdout

    again = cli("local", "up", "--detach", "--workdir", str(workdir), "--quiet")
    assert again.returncode == 0, again.stdout + again.stderr
    assert (
        f"with 1 run in flight: {run}; 1 endpoint InService: {run}-dev) kept its state in "
        "memory only; starting empty"
    ) in again.stdout
    assert cli.connection_data()["pid"] != pid
    assert cli("local", "down").returncode == 0
    assert not cli.connection.exists()


def test_sigint_without_a_terminal_stops_a_foreground_local_cloud_cleanly(
    cli: Cli, tmp_path: Path
) -> None:
    """A non-interactive shell starts ``local up &`` with SIGINT ignored; it must still stop
    cleanly on SIGINT, as it does on SIGTERM."""
    workdir = tmp_path / "cloud"
    cli.workdirs.append(workdir)
    log = tmp_path / "up.log"
    as_a_background_job = (
        "import os, signal, sys; signal.signal(signal.SIGINT, signal.SIG_IGN); "
        "os.execv(sys.argv[1], sys.argv[1:])"
    )
    up = ["local", "up", "--workdir", str(workdir), "--quiet"]
    with log.open("w") as output:
        process = subprocess.Popen(
            [sys.executable, "-c", as_a_background_job, str(SAFE_DEPLOY), *up],
            cwd=ROOT,
            env=cli.env,
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        wait_for(
            lambda: cli.connection.exists() and cli.connection_data()["pid"] == process.pid,
            COMMAND_TIMEOUT,
            "the local cloud to be ready",
        )
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=60) == 0, log.read_text()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()

    printed = log.read_text()
    assert "stopping the local cloud ..." in printed
    assert "in flight: nothing" in printed
    assert "local cloud stopped" in printed
    assert not cli.connection.exists()
    assert probe(workdir) is None
    record = json.loads((workdir / STOP_RECORD).read_text())
    assert record["pid"] == process.pid
    assert record["in_flight"] == {"executions": [], "deployments": [], "endpoints": []}
