"""Functions in the local cloud log to CloudWatch Logs as on Lambda: ``/aws/lambda/<function>``,
a stream per instance. So `aws logs filter-log-events` / `aws logs tail` and `safe-deploy logs`
read them, and the files under WORKDIR/logs stay."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from safe_deploy import ops
from safe_deploy.cli import main
from safe_deploy.cli_logs import follow_logs
from safe_deploy.localcloud.cloud import LocalCloud
from safe_deploy.localcloud.state import LocalSettings
from safe_deploy.target import Target

ROOT = Path(__file__).resolve().parents[2]
FOLDER = "raw/[red]jan[/red] :smile:/"  # a folder marker whose name looks like markup
STREAM = re.compile(r"^\d{4}/\d{2}/\d{2}/\[\$LATEST\][0-9a-f]{32}$")


@pytest.fixture(scope="module")
def cloud(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCloud]:
    workdir = tmp_path_factory.mktemp("logs")
    settings = LocalSettings(project_root=ROOT, workdir=workdir / "cloud", local_channels=False)
    cloud = LocalCloud(settings).start()
    cloud.write_connection_file(workdir / "local.json")
    try:
        yield cloud
    finally:
        cloud.stop()


@pytest.fixture(scope="module")
def connection(cloud: LocalCloud) -> Path:
    return cloud.settings.workdir.parent / "local.json"


def start_pipeline(cloud: LocalCloud) -> str:
    return str(
        cloud.client("cloudformation").describe_stack_resource(
            StackName=cloud.settings.stack_name, LogicalResourceId="StartPipelineFunction"
        )["StackResourceDetail"]["PhysicalResourceId"]
    )


def folder_marker_event(cloud: LocalCloud, key: str) -> bytes:
    event: dict[str, Any] = json.loads((ROOT / "events" / "start_pipeline.json").read_text())
    event["detail"]["bucket"]["name"] = cloud.outputs["DataBucketName"]
    event["detail"]["object"].update({"key": key, "size": 0})
    return json.dumps(event).encode()


def invoke(cloud: LocalCloud, key: str = FOLDER, kind: str = "RequestResponse") -> None:
    answer = cloud.client("lambda").invoke(
        FunctionName=start_pipeline(cloud),
        InvocationType=kind,
        Payload=folder_marker_event(cloud, key),
    )
    assert "FunctionError" not in answer, answer["Payload"].read()


def logs_command(connection: Path, *args: str) -> Result:
    return CliRunner().invoke(main, ["logs", *args], env={"SAFE_DEPLOY_LOCAL": str(connection)})


def test_a_function_logs_to_its_log_group_as_lambda_does(cloud: LocalCloud) -> None:
    invoke(cloud)
    function = start_pipeline(cloud)
    group = f"/aws/lambda/{function}"
    logs = cloud.client("logs")

    assert group in [g["logGroupName"] for g in logs.describe_log_groups()["logGroups"]]
    described = logs.describe_log_streams(logGroupName=group)["logStreams"]
    streams = [stream["logStreamName"] for stream in described]
    assert streams
    assert all(STREAM.match(stream) for stream in streams), streams
    found = logs.filter_log_events(logGroupName=group, filterPattern='"upload skipped"')["events"]
    skipped = [json.loads(e["message"]) for e in found]
    assert any(line["key"] == FOLDER for line in skipped), skipped
    assert "upload skipped" in (cloud.settings.workdir / "logs" / f"{function}.log").read_text()


def test_logs_shows_a_function_lines_by_its_logical_id_or_its_name(
    cloud: LocalCloud, connection: Path
) -> None:
    invoke(cloud)

    for name in ("StartPipelineFunction", start_pipeline(cloud)):
        result = logs_command(connection, name, "--since", "10m")

        assert result.exit_code == 0, result.output
        (skipped, *_) = [ln for ln in result.stdout.splitlines() if "upload skipped" in ln]
        assert re.match(
            r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3} StartPipelineFunction INFO ", skipped
        )
        assert f"key={FOLDER}" in skipped  # as written: never read as markup or emoji


def test_logs_of_a_name_that_is_neither_function_nor_run_says_what_is(
    connection: Path,
) -> None:
    result = logs_command(connection, "NoSuchFunction")

    assert result.exit_code != 0
    assert "NoSuchFunction is neither a function of the stack" in result.output
    assert "PostTrafficHookFunction" in result.output


def test_follow_shows_a_line_logged_after_it_started(cloud: LocalCloud, connection: Path) -> None:
    target = Target.local_cloud(connection)
    query = ops.log_query(target, "StartPipelineFunction", None)
    before = ops.read_logs(target, query)
    marker = f"raw/followed-{time.time_ns()}/"
    printed: list[str] = []
    deadline = time.monotonic() + 60

    invoke(cloud, marker, kind="Event")  # runs in the background, as Lambda's async invocations
    follow_logs(
        lambda q, since: ops.read_logs(target, q, since),
        query,
        max((line.timestamp for line in before), default=datetime.now(UTC)),
        {line.key for line in before},
        show=lambda lines: printed.extend(line.message for line in lines),
        stop=lambda: any(marker in m for m in printed) or time.monotonic() > deadline,
        interval=0.2,
    )

    assert [m for m in printed if marker in m], printed
    assert not any(FOLDER in m for m in printed), "a line shown before is not shown again"
