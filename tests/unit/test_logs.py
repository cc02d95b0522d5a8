"""``safe-deploy logs``: lines from CloudWatch Logs with when and which function, as written."""

from __future__ import annotations

import contextlib
import io
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import click
import pytest
from moto import mock_aws
from rich.console import Console

from safe_deploy import ops
from safe_deploy.cli_logs import follow_logs, parse_duration, render_line
from safe_deploy.target import Target

AT = datetime(2026, 12, 1, 9, 30, 5, 250000, tzinfo=UTC)


def line(message: str, at: datetime = AT, event_id: str = "1") -> ops.LogLine:
    return ops.LogLine(at, "PostTrafficHookFunction", message, "/aws/lambda/hook", event_id)


def shown(text: object) -> str:
    out = io.StringIO()
    Console(file=out, width=400, highlight=False, emoji=False).print(text)
    return out.getvalue().rstrip("\n")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("30s", timedelta(seconds=30)),
        ("15m", timedelta(minutes=15)),
        ("2h", timedelta(hours=2)),
        ("1d", timedelta(days=1)),
        ("1w", timedelta(weeks=1)),
    ],
)
def test_since_takes_a_number_and_a_unit(text: str, expected: timedelta) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize("text", ["15", "m", "ten minutes", "-5m", "1.5h"])
def test_a_since_that_is_no_duration_is_refused_with_examples(text: str) -> None:
    with pytest.raises(click.BadParameter, match="such as 30s, 15m, 2h or 1d"):
        parse_duration(text)


def test_a_line_shows_when_and_which_function() -> None:
    assert shown(render_line(line("START RequestId: 1 Version: 3"))) == (
        "2026-12-01 09:30:05.250 PostTrafficHookFunction START RequestId: 1 Version: 3"
    )


def test_a_powertools_line_shows_its_level_message_and_own_keys() -> None:
    record = {
        "level": "INFO",
        "location": "lambda_handler:41",
        "message": "post-traffic verdict",
        "timestamp": "2026-12-01 09:30:05,250+0000",
        "service": "safe-deploy",
        "function_arn": "arn:aws:lambda:us-east-1:123456789012:function:hook",
        "deployment_id": "d-ABC123456",
        "status": "Failed",
        "summary": "0 API requests captured on fare-1-prod; at least 20 needed",
        "counts": {"api": 0},
    }

    text = shown(render_line(line(json.dumps(record))))

    assert text.endswith(
        "INFO post-traffic verdict deployment_id=d-ABC123456 status=Failed "
        'summary=0 API requests captured on fare-1-prod; at least 20 needed counts={"api": 0}'
    )
    assert "lambda_handler:41" not in text
    assert "function_arn" not in text


def test_metric_lines_are_left_out() -> None:
    emf = {"_aws": {"CloudWatchMetrics": []}, "PipelineRunsStarted": [1.0]}
    assert render_line(line(json.dumps(emf))) is None


def test_a_line_that_looks_like_markup_is_printed_as_written() -> None:
    message = "upload skipped: raw/[red]jan[/red]/ :smile: [/]"
    assert shown(render_line(line(message))).endswith(message)


# ---------------------------------------------------------------------------- reading
@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[boto3.Session]:
    for name in ("AWS_ENDPOINT_URL", "AWS_PROFILE", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    with mock_aws():
        yield boto3.Session(region_name="us-east-1")


def put(logs: Any, function: str, lines: list[tuple[datetime, str]]) -> None:
    """Lines in a function's log group, as Lambda writes them: a stream per instance."""
    group = f"/aws/lambda/{function}"
    with contextlib.suppress(logs.exceptions.ResourceAlreadyExistsException):
        logs.create_log_group(logGroupName=group)
    stream = f"2026/12/01/[$LATEST]{len(lines):032x}"
    logs.create_log_stream(logGroupName=group, logStreamName=stream)
    logs.put_log_events(
        logGroupName=group,
        logStreamName=stream,
        logEvents=[{"timestamp": int(t.timestamp() * 1000), "message": m} for t, m in lines],
    )


def test_a_run_reads_every_function_line_that_mentions_it_once_in_time_order(
    aws: boto3.Session,
) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    logs = aws.client("logs")
    put(
        logs,
        "fares-Evaluate",
        [(now - timedelta(seconds=50), "gate verdict fare-1 passed")],
    )
    put(
        logs,
        "fares-PostTrafficHook",
        [
            (now - timedelta(seconds=40), "verdict d-1 on fare-1-prod: Failed"),  # both terms
            (now - timedelta(seconds=30), "verdict d-9 on fare-2-prod: Succeeded"),
        ],
    )
    put(logs, "fares-StartPipeline", [(now - timedelta(hours=2), "training started fare-1")])
    query = ops.LogQuery(
        {
            "EvaluateModelFunction": "fares-Evaluate",
            "PostTrafficHookFunction": "fares-PostTrafficHook",
            "StartPipelineFunction": "fares-StartPipeline",
            "DriftCheckFunction": "fares-NeverRan",  # no log group yet
        },
        now - timedelta(minutes=5),
        ("fare-1", "d-1"),
        run="fare-1",
    )

    found = ops.read_logs(Target("aws", "us-east-1", {}, aws), query)

    assert [(f.function, f.message) for f in found] == [
        ("EvaluateModelFunction", "gate verdict fare-1 passed"),
        ("PostTrafficHookFunction", "verdict d-1 on fare-1-prod: Failed"),
    ]


def test_follow_shows_each_new_line_once_until_stopped() -> None:
    batches = [
        [line("first", AT, "1")],
        [line("first", AT, "1"), line("second", AT + timedelta(seconds=1), "2")],
        [line("second", AT + timedelta(seconds=1), "2"), line("late", AT, "3")],
    ]
    asked: list[datetime] = []
    printed: list[str] = []

    def read(_query: ops.LogQuery, since: datetime) -> list[ops.LogLine]:
        asked.append(since)
        return batches[len(asked) - 1]

    query = ops.LogQuery({"PostTrafficHookFunction": "hook"}, AT - timedelta(hours=1))
    follow_logs(
        read,
        query,
        AT - timedelta(hours=1),
        set(),
        show=lambda lines: printed.extend(found.message for found in lines),
        stop=lambda: len(asked) == len(batches),
        interval=0,
    )

    assert printed == ["first", "second", "late"]
    # each poll starts a little before the newest line shown, so a late line still arrives
    assert AT - timedelta(minutes=5) < asked[2] < AT + timedelta(seconds=1)
