"""GetExecutionHistory pages as Step Functions pages it (API Reference, GetExecutionHistory):
``maxResults`` (default 100, at most 1000, 0 for the default), ``reverseOrder``, a ``nextToken``
while events remain, an InvalidToken for any other token, and ``includeExecutionData``. moto
answers every event, oldest first, whatever is asked; a client that read only the first page, or
trusted the order it asked for, worked on it and not on AWS.

moto runs in-process with its interpreter and the local cloud's fixes, as the local cloud runs it.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws

from safe_deploy import ops
from safe_deploy.follow import History
from safe_deploy.localcloud import fixes, patching
from tests.support import offline_aws

REGION = "us-east-1"
ROLE = "arn:aws:iam::123456789012:role/states"
STATES = 60
EVENTS = 2 * STATES + 2  # each Pass state is entered and exited; the execution starts and ends


def chain(states: int) -> dict[str, Any]:
    names = [f"Step{index:02d}" for index in range(states)]
    return {
        "StartAt": names[0],
        "States": {
            name: {"Type": "Pass", "Result": {"at": name}, "ResultPath": "$.last"}
            | ({"Next": names[index + 1]} if index + 1 < states else {"End": True})
            for index, name in enumerate(names)
        },
    }


@pytest.fixture(scope="module")
def finished() -> Iterator[tuple[Any, str]]:
    """A client and a finished execution of a chain of Pass states."""
    with pytest.MonkeyPatch.context() as monkeypatch:
        offline_aws(monkeypatch)
        with mock_aws(config={"stepfunctions": {"execute_state_machine": True}}):
            fixes.install()
            try:
                sfn = boto3.client("stepfunctions", region_name=REGION)
                machine = sfn.create_state_machine(
                    name="chain", definition=json.dumps(chain(STATES)), roleArn=ROLE
                )["stateMachineArn"]
                arn = sfn.start_execution(
                    stateMachineArn=machine, name="run-1", input='{"given": "yes"}'
                )["executionArn"]
                deadline = time.monotonic() + 60
                while sfn.describe_execution(executionArn=arn)["status"] == "RUNNING":
                    assert time.monotonic() < deadline, "the chain did not finish in 60 s"
                    time.sleep(0.05)
                yield sfn, arn
            finally:
                patching.restore_all()


def pages(sfn: Any, **request: Any) -> list[list[dict[str, Any]]]:
    found = []
    while True:
        page = sfn.get_execution_history(**request)
        found.append(page["events"])
        if "nextToken" not in page:
            return found
        request["nextToken"] = page["nextToken"]


def test_pages_follow_max_results_and_together_hold_every_event_once(
    finished: tuple[Any, str],
) -> None:
    sfn, arn = finished
    default = pages(sfn, executionArn=arn)
    assert [len(page) for page in default] == [100, EVENTS - 100]
    ids = [event["id"] for page in default for event in page]
    assert ids == list(range(1, EVENTS + 1))
    assert [len(p) for p in pages(sfn, executionArn=arn, maxResults=0)] == [100, EVENTS - 100]
    assert [len(p) for p in pages(sfn, executionArn=arn, maxResults=50)] == [50, 50, EVENTS - 100]
    whole = pages(sfn, executionArn=arn, maxResults=1000)
    assert [event["id"] for event in whole[0]] == ids
    paginator = sfn.get_paginator("get_execution_history")
    paged = paginator.paginate(executionArn=arn, PaginationConfig={"PageSize": 30})
    assert [event["id"] for page in paged for event in page["events"]] == ids


def test_reverse_order_gives_the_newest_first(finished: tuple[Any, str]) -> None:
    sfn, arn = finished
    newest = pages(sfn, executionArn=arn, reverseOrder=True, maxResults=7)
    ids = [event["id"] for page in newest for event in page]
    assert ids == list(range(EVENTS, 0, -1))
    assert newest[0][0]["type"] == "ExecutionSucceeded"


def test_a_token_is_good_only_for_the_call_it_continues(finished: tuple[Any, str]) -> None:
    sfn, arn = finished
    token = sfn.get_execution_history(executionArn=arn, maxResults=10)["nextToken"]
    for request in (
        {"executionArn": arn, "nextToken": "not-a-token"},
        {"executionArn": arn, "nextToken": token, "reverseOrder": True},
    ):
        with pytest.raises(ClientError) as refused:
            sfn.get_execution_history(**request)
        assert refused.value.response["Error"]["Code"] == "InvalidToken"


def test_more_than_a_thousand_per_page_is_refused(finished: tuple[Any, str]) -> None:
    sfn, arn = finished
    with pytest.raises(ClientError) as refused:
        sfn.get_execution_history(executionArn=arn, maxResults=1001)
    assert refused.value.response["Error"]["Code"] == "ValidationException"


def test_without_execution_data_events_carry_no_input_or_output(
    finished: tuple[Any, str],
) -> None:
    sfn, arn = finished
    full = sfn.get_execution_history(executionArn=arn, maxResults=3)["events"]
    bare = sfn.get_execution_history(executionArn=arn, maxResults=3, includeExecutionData=False)[
        "events"
    ]
    assert json.loads(full[0]["executionStartedEventDetails"]["input"]) == {"given": "yes"}
    assert "input" not in bare[0]["executionStartedEventDetails"]
    assert bare[0]["executionStartedEventDetails"]["roleArn"] == ROLE
    assert "input" not in bare[1]["stateEnteredEventDetails"]
    assert bare[1]["stateEnteredEventDetails"]["name"] == "Step00"


def test_the_commands_read_the_last_step_and_a_long_history_page_by_page(
    finished: tuple[Any, str],
) -> None:
    sfn, arn = finished
    assert ops.last_step(sfn, arn) == f"Step{STATES - 1:02d}"
    history = ops.ExecutionHistory(sfn, arn, max_pages=13, page_size=10)
    assert history.event(1) is not None  # the oldest event, thirteen pages back
    assert len(history.events) == EVENTS
    assert ops.ExecutionHistory(sfn, arn, max_pages=12, page_size=10).event(1) is None


def test_following_a_run_reports_every_state_once_in_order(finished: tuple[Any, str]) -> None:
    sfn, arn = finished
    history = History(sfn, arn)

    assert list(history.new_states()) == [f"Step{index:02d}" for index in range(STATES)]
    assert list(history.new_states()) == []
    assert history.last_entered == f"Step{STATES - 1:02d}"
    assert history.output_of("Step07")["last"] == {"at": "Step07"}


class _GrowingHistory:
    """A running execution's history as Step Functions pages it, newest first, counting what
    each poll reads."""

    def __init__(self, events: list[dict[str, Any]]) -> None:
        self.visible = 0
        self.events = events
        self.read = 0

    def get_paginator(self, operation: str) -> Any:
        assert operation == "get_execution_history"
        return self

    def paginate(
        self, executionArn: str, reverseOrder: bool, PaginationConfig: dict[str, int]
    ) -> Iterator[dict[str, Any]]:
        assert reverseOrder
        newest_first = self.events[: self.visible][::-1]
        size = PaginationConfig["PageSize"]
        for start in range(0, len(newest_first), size):
            page = newest_first[start : start + size]
            self.read += len(page)
            yield {"events": page}


def test_following_a_running_run_reads_only_what_is_new(finished: tuple[Any, str]) -> None:
    sfn, arn = finished
    events = [e for page in pages(sfn, executionArn=arn) for e in page]
    growing = _GrowingHistory(events)
    history = History(growing, arn)
    reported: list[str] = []

    before = 0
    for visible in (1, 2, 50, 51, 55, EVENTS, EVENTS):
        growing.visible, growing.read = visible, 0
        reported.extend(history.new_states())
        assert growing.read <= (visible - before) + History.PAGE, f"read {growing.read} events"
        before = visible

    assert reported == [f"Step{index:02d}" for index in range(STATES)]
    growing.visible, growing.read = EVENTS, 0
    assert list(history.new_states()) == []
    assert growing.read <= History.PAGE, "a poll with nothing new reads one page"


def test_the_demo_shows_each_step_once_when_it_follows_a_run_again(
    finished: tuple[Any, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The demo follows a run to its approval, then again to its end: the steps already shown
    are not shown again."""
    from safe_deploy.demo import Demo

    sfn, arn = finished
    said: list[str] = []
    monkeypatch.setattr(ops, "find_run", lambda target, model_id: arn)
    demo = SimpleNamespace(
        target=SimpleNamespace(client=lambda service: sfn),
        stages=SimpleNamespace(say=said.append),
        histories={},
    )

    first = Demo.follow(demo, "run-1", lambda run: False, 30)  # type: ignore[arg-type]
    again = Demo.follow(demo, "run-1", lambda run: False, 30)  # type: ignore[arg-type]

    assert said == [f"  step: Step{index:02d}" for index in range(STATES)]
    assert first.status == again.status == "SUCCEEDED"
    assert again.step == f"Step{STATES - 1:02d}"
