"""The API under fuzz: over ten thousand requests, built by Hypothesis, to every route the local
cloud serves and to paths it does not, with a model in production and an approval waiting for a
person. No request may get a 5xx or no answer; every 4xx says what is wrong; bad input (no or an
altered signature, an altered link, a method or path no route declares) is refused; and nothing
changes: approvals, the release lock, the production record, pipeline runs, endpoints, the live
alias.

``FUZZ_REQUESTS`` sets how many requests (default 10,240, spread evenly over the targets);
``FUZZ_SEED`` picks another fixed set of them. The count, the answers by status and the file that
lists the distinct failing requests are printed at the end of pytest's report.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from safe_deploy import ops
from safe_deploy.demo import Demo
from tests.e2e.conftest import running_demo
from tests.security.harness import (
    LET_THROUGH,
    SERVER_ERROR,
    SILENT_REFUSAL,
    SUMMARY,
    Exchange,
    Tally,
    as_json,
    describe,
    find_causes,
    fuzz,
    last_exception,
    problems,
    release_state,
    stage,
    state_changes,
)
from tests.security.strategies import Probe, World, targets

REQUESTS = int(os.environ.get("FUZZ_REQUESTS", "10240"))
SEED = int(os.environ.get("FUZZ_SEED", "0"))

# Staging (two pipeline runs) takes about a minute; the fuzz sends about 60 requests a second.
pytestmark = pytest.mark.timeout(600 + REQUESTS // 10)


@dataclass
class Staged:
    world: World
    demo: Demo


@dataclass
class Fuzzed:
    tally: Tally
    per_target: int
    before: dict[str, Any]
    after: dict[str, Any]


@pytest.fixture(scope="module")
def staged(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Staged]:
    """A local cloud with a model in production and a candidate waiting for a person."""
    with running_demo(tmp_path_factory.mktemp("fuzz")) as demo:
        yield Staged(stage(demo), demo)


@pytest.fixture(scope="module")
def fuzzed(
    staged: Staged, request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Fuzzed:
    world = staged.world
    per_target = math.ceil(REQUESTS / len(targets(world)))
    before = release_state(staged.demo.target)
    started = time.monotonic()
    tally = fuzz(world, per_target, SEED)
    wall = time.monotonic() - started
    after = release_state(staged.demo.target)
    find_causes(world, tally.failing(SERVER_ERROR), staged.demo.cloud.host.logs_dir)

    report = tmp_path_factory.mktemp("fuzz-report") / "failing-requests.json"
    report.write_text(json.dumps([as_json(f) for f in tally.failures.values()], indent=2))
    request.config.stash[SUMMARY] = [
        tally.summary(len(world.routes), wall),
        *tally.per_target(),
        f"{len(tally.failures)} distinct failing requests, listed in {report}",
    ]
    return Fuzzed(tally, per_target, before, after)


# ---------------------------------------------------------------- the fuzz
def test_every_route_and_unknown_paths_get_their_share(staged: Staged, fuzzed: Fuzzed) -> None:
    sent = {label: sum(statuses.values()) for label, statuses in fuzzed.tally.by_target.items()}
    assert sent == {t.label: fuzzed.per_target for t in targets(staged.world)}
    assert fuzzed.tally.sent >= REQUESTS


def test_no_request_gets_a_5xx_or_no_answer(fuzzed: Fuzzed) -> None:
    failures = fuzzed.tally.failing(SERVER_ERROR)
    assert not failures, "\n" + describe(failures)


def test_every_4xx_says_what_is_wrong(fuzzed: Fuzzed) -> None:
    failures = fuzzed.tally.failing(SILENT_REFUSAL)
    assert not failures, "\n" + describe(failures)


def test_bad_input_is_refused(fuzzed: Fuzzed) -> None:
    failures = fuzzed.tally.failing(LET_THROUGH)
    assert not failures, "\n" + describe(failures)


def test_signed_requests_reach_the_functions(staged: Staged, fuzzed: Fuzzed) -> None:
    """A good share of the validly signed requests get past the API's signature check: the
    signed fuzz tests the functions, not only the gateway. (Not all of them: the local API
    refuses some signed query strings that AWS accepts; the summary counts them.)"""
    iam = [f"{r.method} {r.path}" for r in staged.world.routes if r.authorizer == "AWS_IAM"]
    assert iam
    for label in iam:
        assert fuzzed.tally.signed[label] > 0, label
        assert fuzzed.tally.let_through[label] >= fuzzed.tally.signed[label] / 4, label


def test_the_fuzz_changes_no_state(fuzzed: Fuzzed) -> None:
    assert state_changes(fuzzed.before, fuzzed.after) == []


def test_the_pending_approval_is_still_pending(staged: Staged, fuzzed: Fuzzed) -> None:
    pending = staged.world.pending
    assert fuzzed.before["approvals"][pending.approval_id]["status"] == "PENDING"
    approval = ops.approval_of(staged.demo.target, pending.execution_arn)
    assert approval is not None
    assert approval["status"] == "PENDING"


# ---------------------------------------------------------------- the judge (no local cloud)
def exchange(
    status: int,
    body: bytes = b'{"message": "Internal server error"}',
    content_type: str = "application/json",
    method: str = "POST",
    must_refuse: str = "",
    api_refuses: str = "",
    error_type: str = "",
    request_body: bytes = b"\x00",
) -> Exchange:
    probe = Probe(
        target="POST /approvals/{approval_id}",
        method=method,
        path="/v1/approvals/abc",
        query="",
        headers=(("Content-Type", "image/png"),),
        body=request_body,
        body_kind="bytes",
        auth="none",
        must_refuse=must_refuse or api_refuses,
        api_refuses=api_refuses,
    )
    return Exchange(probe, status, content_type, body, 0.01, error_type=error_type)


def kinds(answer: Exchange) -> list[str]:
    return [p.kind for p in problems(answer)]


def test_the_judge_flags_a_502_and_no_answer() -> None:
    assert kinds(exchange(502)) == [SERVER_ERROR]
    assert kinds(exchange(0, b"", "")) == [SERVER_ERROR]


def test_the_judge_flags_a_4xx_that_does_not_say_why() -> None:
    assert kinds(exchange(400, b"{}")) == [SILENT_REFUSAL]
    assert kinds(exchange(400, b'["message"]')) == [SILENT_REFUSAL]
    assert kinds(exchange(403, b"<html><body></body></html>", "text/html")) == [SILENT_REFUSAL]
    assert kinds(exchange(404, b"", "text/plain")) == [SILENT_REFUSAL]
    assert kinds(exchange(415, b"\x89PNG", "image/png")) == [SILENT_REFUSAL]


def test_the_judge_flags_bad_input_let_through() -> None:
    assert kinds(exchange(200, b"ok", "text/plain", must_refuse="unsigned")) == [LET_THROUGH]
    # a forged signature the API let through: the function's own 400 does not excuse it
    forged = exchange(400, b'{"message": "send a JSON body"}', api_refuses="forged signature")
    assert kinds(forged) == [LET_THROUGH]


def test_the_judge_passes_refusals_by_the_api_itself() -> None:
    missing = b'{"message": "Missing Authentication Token"}'
    refused = exchange(403, missing, api_refuses="unsigned")
    named = exchange(403, b'{"message": "x"}', api_refuses="forged", error_type="Denied")
    head = exchange(403, b"", method="HEAD", api_refuses="no route")
    assert kinds(refused) == kinds(named) == kinds(head) == []


def test_the_judge_passes_refusals_that_say_why() -> None:
    assert kinds(exchange(403, b'{"message": "Missing Authentication Token"}')) == []
    denied = b'{"Message": "User: anonymous is not authorized to perform: execute-api:Invoke"}'
    assert kinds(exchange(403, denied)) == []
    page = b"<!doctype html><title>Method not allowed</title><h1>Method not allowed</h1>"
    assert kinds(exchange(405, page, "text/html; charset=utf-8", must_refuse="PUT")) == []
    assert kinds(exchange(405, b"", "text/html", method="HEAD", must_refuse="HEAD")) == []
    assert kinds(exchange(200, b"12.5", "text/csv")) == []


def test_the_tally_counts_each_kind_of_failure_once_with_its_smallest_request() -> None:
    tally = Tally()
    for size in (30, 3, 12):
        tally.add(exchange(502, request_body=b"\xff" * size))
    tally.add(exchange(403))

    (failure,) = tally.failing(SERVER_ERROR)
    assert failure.count == 3
    assert failure.smallest.probe.body == b"\xff" * 3
    assert tally.by_status == {502: 3, 403: 1}
    assert "answered 502 x3" in describe([failure])


def test_a_decided_approval_is_a_change_of_state() -> None:
    before = {"approvals": {"a1": {"status": "PENDING"}}, "endpoints": {"e": "InService"}}
    after = {"approvals": {"a1": {"status": "APPROVED"}}, "endpoints": {"e": "InService"}}
    assert state_changes(before, after) == [
        "approvals: a1: {'status': 'PENDING'} -> {'status': 'APPROVED'}"
    ]
    assert state_changes(before, before) == []


def test_the_cause_of_a_failure_is_read_from_the_function_log() -> None:
    log = """{"level": "INFO", "message": "request refused"}
Traceback (most recent call last):
  File "/repo/safe_deploy/localcloud/lambdas.py", line 211, in run
    result = self._handler(fn.function_name, environment, code)(event, context)
  File "/work/cloud/code/2e437e64d58af197/app.py", line 140, in decide
    form = {k: v[0] for k, v in parse_qs(app.current_event.decoded_body or "").items()}
  File "/usr/lib/python3.11/base64.py", line 88, in b64decode
    return binascii.a2b_base64(s, strict_mode=validate)
UnicodeDecodeError: 'utf-8' codec can't decode byte 0x91 in position 0: invalid start byte
"""
    assert last_exception(log) == (
        "UnicodeDecodeError: 'utf-8' codec can't decode byte 0x91 in position 0: invalid start "
        "byte (raised in python3.11/base64.py:88 in b64decode, from app.py:140 in decide)"
    )
    assert last_exception('{"level": "INFO"}') == ""
