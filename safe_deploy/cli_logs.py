"""``safe-deploy logs``: what the stack's functions logged, read from CloudWatch Logs, the same on
AWS and in the local cloud (whose functions log there as Lambda does)."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import click
from rich.text import Text

from safe_deploy.cli_common import target_options
from safe_deploy.console import console
from safe_deploy.target import Target

if TYPE_CHECKING:
    from safe_deploy.ops import LogLine, LogQuery

_DURATION = re.compile(r"^\s*(\d+)\s*([smhdw])\s*$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
# Powertools' JSON log keys that say nothing about what happened (who logged it, and how).
_ROUTINE_KEYS = frozenset(
    {
        "level",
        "message",
        "timestamp",
        "location",
        "service",
        "cold_start",
        "function_name",
        "function_memory_size",
        "function_arn",
        "function_request_id",
        "xray_trace_id",
        "sampling_rate",
    }
)
POLL_SECONDS = 2.0
# CloudWatch Logs may deliver a line after a newer one of another stream: each poll looks back
# this far before the newest line shown (lines already shown are skipped by their event id).
LOOKBACK = timedelta(seconds=30)
REFRESH_POLLS = 5  # a run's query is rebuilt this often: its promotion may start meanwhile


def parse_duration(text: str) -> timedelta:
    """``30s``, ``15m``, ``2h``, ``1d``, ``1w``."""
    found = _DURATION.match(text)
    if not found:
        raise click.BadParameter(f"{text!r}: give a number and a unit, such as 30s, 15m, 2h or 1d")
    return timedelta(**{_UNITS[found.group(2)]: int(found.group(1))})


@click.command()
@click.argument("what", metavar="RUN|FUNCTION")
@click.option("--follow", "-f", is_flag=True, help="Keep printing new lines until Ctrl-C.")
@click.option(
    "--since",
    metavar="DURATION",
    help="How far back: 30s, 15m, 2h, 1d. Default: a run's start; a function's last hour.",
)
@target_options
def logs(what: str, follow: bool, since: str | None, stack: str | None, region: str | None) -> None:
    """What the stack's functions logged. FUNCTION is a template logical id
    (PostTrafficHookFunction) or a function's name: its lines. RUN is a pipeline run (its name or
    ARN): the lines of every function that mention it or its promotion's deployments. Metric
    lines (CloudWatch embedded metric format) are left out."""
    from safe_deploy import ops

    target = Target.of(stack, region)
    start = datetime.now(UTC) - parse_duration(since) if since else None
    query = ops.log_query(target, what, start)
    console.print(_headline(query))
    lines = ops.read_logs(target, query)
    seen = {line.key for line in lines}
    print_lines(lines)
    if not lines and not follow:
        console.print("no log lines yet (a function's log group appears at its first run)")
    if not follow:
        return

    def refreshed(polls: int, current: LogQuery) -> LogQuery:
        if current.run is None or polls % REFRESH_POLLS:
            return current
        return ops.log_query(target, current.run, query.start)

    try:
        follow_logs(
            lambda q, since_time: ops.read_logs(target, q, since_time),
            query,
            max((line.timestamp for line in lines), default=query.start),
            seen,
            refresh=refreshed,
        )
    except KeyboardInterrupt:
        console.print()


def print_lines(lines: list[LogLine]) -> None:
    for line in lines:
        text = render_line(line)
        if text is not None:
            console.print(text)


def follow_logs(
    read: Callable[[LogQuery, datetime], list[LogLine]],
    query: LogQuery,
    since: datetime,
    seen: set[tuple[str, str]],
    *,
    refresh: Callable[[int, LogQuery], LogQuery] = lambda _polls, query: query,
    show: Callable[[list[LogLine]], None] = print_lines,
    stop: Callable[[], bool] = lambda: False,
    interval: float = POLL_SECONDS,
) -> None:
    """Poll for new lines until ``stop()`` holds (or Ctrl-C): each poll reads from a little
    before the newest line shown and shows only the events not shown yet."""
    polls = 0
    while not stop():
        time.sleep(interval)
        polls += 1
        query = refresh(polls, query)
        fresh = [line for line in read(query, since - LOOKBACK) if line.key not in seen]
        seen.update(line.key for line in fresh)
        show(fresh)
        since = max([since, *(line.timestamp for line in fresh)])


def render_line(line: LogLine) -> Text | None:
    """One line: when, which function, what it said. The message is data, never markup; a
    Powertools JSON line is shortened to its level, message and own keys; a metric line is
    ``None``."""
    record = _json_object(line.message)
    if record is not None and "_aws" in record:
        return None
    stamp = line.timestamp.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]
    return Text.assemble(
        (stamp, "dim"), " ", (line.function, "cyan"), " ", _message(line.message, record)
    )


def _json_object(message: str) -> dict[str, Any] | None:
    if not message.startswith("{"):
        return None
    try:
        record = json.loads(message)
    except ValueError:
        return None
    return record if isinstance(record, dict) else None


def _message(message: str, record: dict[str, Any] | None) -> str:
    if record is None or "message" not in record or "level" not in record:
        return message
    extras = " ".join(
        f"{key}={value if isinstance(value, str) else json.dumps(value)}"
        for key, value in record.items()
        if key not in _ROUTINE_KEYS
    )
    return f"{record['level']} {record['message']}" + (f" {extras}" if extras else "")


def _headline(query: LogQuery) -> Text:
    since = query.start.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    if query.run is None:
        ((label, function),) = query.functions.items()
        return Text(f"{label} (/aws/lambda/{function}) since {since}", style="bold")
    terms = ", ".join(query.terms)
    return Text(
        f"run {query.run}: lines of the stack's {len(query.functions)} functions that mention "
        f"{terms}, since {since}",
        style="bold",
    )
