"""The load generator and its summary: against a stub API on 127.0.0.1 and on answers made up
to the millisecond, so percentiles, failure counts and the rate verdict are checked exactly."""

from __future__ import annotations

import io
import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import boto3
import pytest
import requests
from click.testing import CliRunner
from rich.console import Console

from safe_deploy import cli_traffic
from safe_deploy.cli import main
from safe_deploy.cli_traffic import ProgressLines
from safe_deploy.target import Target, TargetError
from safe_deploy.traffic import (
    MAX_WORKERS,
    Answer,
    LoadGenerator,
    PoolReport,
    TrafficSummary,
    WorkerPool,
    auto_workers,
)

ROWS = [[12.0, 1.0, 2.5], [30.0, 2.0, 9.1]]


@dataclass(frozen=True)
class Reply:
    status: int = 200
    body: str = "17.25"
    endpoint: str | None = "fares-blue-prod"


class StubApi:
    """The API's /predict on 127.0.0.1: each request gets ``reply(index)`` after ``delay``
    seconds, plus ``per_request`` seconds for each request it is answering at the time (an API
    at its capacity). GET answers 200, as the local cloud's health check wants."""

    def __init__(
        self,
        reply: Callable[[int], Reply] = lambda _: Reply(),
        delay: float = 0.0,
        per_request: float = 0.0,
    ) -> None:
        self.reply = reply
        self.delay = delay
        self.per_request = per_request
        self.bodies: list[bytes] = []
        self.answering = 0
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.05,), daemon=True
        )

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    @property
    def received(self) -> int:
        with self._lock:
            return len(self.bodies)

    def target(self) -> Target:
        session = boto3.Session(
            aws_access_key_id="testing", aws_secret_access_key="testing", region_name="us-east-1"
        )
        return Target("stub API", "us-east-1", {"ApiUrl": self.url}, session)

    def __enter__(self) -> StubApi:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                self._send(Reply(200, "{}", None))

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                with stub._lock:
                    index = len(stub.bodies)
                    stub.bodies.append(body)
                    stub.answering += 1
                    busy = stub.answering
                time.sleep(stub.delay + stub.per_request * busy)
                with stub._lock:
                    stub.answering -= 1
                self._send(stub.reply(index))

            def _send(self, reply: Reply) -> None:
                data = reply.body.encode()
                self.send_response(reply.status)
                if reply.endpoint is not None:
                    self.send_header("X-SageMaker-Endpoint", reply.endpoint)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:
                """Quiet: the tests read what the generator recorded."""

        return Handler


@pytest.fixture
def api() -> Iterator[StubApi]:
    with StubApi() as stub:
        yield stub


def connect_cli(api: StubApi, folder: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Points the CLI's local-cloud target at the stub API, and works in ``folder``."""
    connection = folder / "local.json"
    connection.write_text(
        json.dumps(
            {
                "aws_endpoint_url": api.url,
                "region": "us-east-1",
                "access_key": "testing",
                "secret_key": "testing",
                "outputs": {"ApiUrl": api.url},
            }
        )
    )
    monkeypatch.setenv("SAFE_DEPLOY_LOCAL", str(connection))
    monkeypatch.delenv("SAFE_DEPLOY_STACK", raising=False)
    monkeypatch.chdir(folder)


def closed_port_target() -> Target:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    session = boto3.Session(
        aws_access_key_id="testing", aws_secret_access_key="testing", region_name="us-east-1"
    )
    return Target("nothing", "us-east-1", {"ApiUrl": f"http://127.0.0.1:{port}"}, session)


def answer(at: float, latency_ms: float, status: int = 200, endpoint: str = "blue") -> Answer:
    if status == 0:
        return Answer(at, 0, "-", latency_ms, None, "connection refused", "ConnectionError")
    if status != 200:
        return Answer(at, status, endpoint, latency_ms, None, f"answered {status}")
    return Answer(at, 200, endpoint, latency_ms, 17.25)


# --------------------------------------------------------------------------- against the stub API


def test_every_request_is_sent_signed_and_recorded_with_its_endpoint(api: StubApi) -> None:
    api.reply = lambda i: Reply(endpoint="green" if i % 4 == 0 else "blue")

    log = LoadGenerator(api.target(), ROWS, rate=200, limit=8).start().wait()

    assert api.received == 8
    assert set(api.bodies) == {b"12.0,1.0,2.5", b"30.0,2.0,9.1"}
    assert log.sent == 8
    assert not log.failed
    assert log.by_endpoint() == {"blue": 6, "green": 2}
    assert all(a.prediction == 17.25 and a.latency_ms > 0 for a in log.snapshot())


def test_failures_are_counted_by_status_with_the_first_message(api: StubApi) -> None:
    replies = {1: Reply(503, "no model is live yet", "none"), 3: Reply(502, "endpoint down")}
    api.reply = lambda i: replies.get(i, Reply())

    generator = LoadGenerator(api.target(), ROWS, rate=200, workers=1, limit=5)
    generator.start().wait()
    summary = generator.summary()

    assert summary.sent == 5
    assert summary.ok == 3
    assert summary.failures == {"HTTP 503": 1, "HTTP 502": 1}
    assert summary.first_error == {"HTTP 503": "no model is live yet", "HTTP 502": "endpoint down"}
    assert summary.endpoints == {"fares-blue-prod": 3}
    assert summary.endpoint_failures == {"none": 1, "fares-blue-prod": 1}
    lines = "\n".join(summary.lines())
    assert "failed           2 (40.0%): HTTP 503 x1, HTTP 502 x1" in lines
    assert "  HTTP 503: no model is live yet" in lines
    assert "fares-blue-prod 3 (100.0%) and 1 failed" in lines


def test_a_200_without_a_fare_is_a_failure(api: StubApi) -> None:
    api.reply = lambda _: Reply(200, "<html>gateway</html>")

    generator = LoadGenerator(api.target(), ROWS, rate=100, limit=2)
    generator.start().wait()

    assert generator.summary().failures == {"HTTP 200 without a fare": 2}


def test_no_answer_at_all_is_counted_by_transport_error() -> None:
    generator = LoadGenerator(closed_port_target(), ROWS, rate=100, limit=3)
    log = generator.start().wait()

    assert [a.status for a in log.snapshot()] == [0, 0, 0]
    summary = generator.summary()
    assert summary.failures == {"ConnectionError": 3}
    assert summary.latency is None
    assert "latency          no answers to measure" in summary.lines()
    assert "answered by      no endpoint answered" in summary.lines()


def test_busy_workers_bound_the_rate_and_the_summary_says_so() -> None:
    """Two workers and 50 ms a request cannot send more than 40/s: asked for 100, the run falls
    short and names the workers as the bound, with the count that would hold the rate."""
    with StubApi(delay=0.05) as api:
        generator = LoadGenerator(api.target(), ROWS, rate=100, workers=2, limit=12)
        generator.start().wait()
    summary = generator.summary()

    assert summary.rate_reached is not None
    assert summary.rate_reached < 50
    assert summary.fell_short
    reason = summary.shortfall()
    assert reason is not None
    assert summary.pool.size == 2
    assert "the 2 workers bound it" in reason
    assert "pass --workers" in reason
    rate_line = next(line for line in summary.lines() if line.startswith("rate"))
    assert f"{summary.rate_reached:.1f}/s reached of 100/s asked: fell short by" in rate_line
    assert f"  {reason}" in summary.lines()


def test_stop_ends_the_run_without_sending_a_backlog(api: StubApi) -> None:
    """Asked for more than two workers can send, the generator waits for a free worker instead
    of queueing: stopping it sends no more than what was already in flight."""
    api.delay = 0.02
    generator = LoadGenerator(api.target(), ROWS, rate=500, workers=2).start()
    while api.received < 5:
        time.sleep(0.005)
    at_stop = api.received

    log = generator.stop()

    assert api.received == log.sent
    assert log.sent <= at_stop + 2 * generator.workers


def test_an_error_in_a_worker_stops_the_run_and_is_raised() -> None:
    class Unsigned:
        def signed(self, *args: Any, **kwargs: Any) -> requests.Response:
            raise TargetError("no AWS credentials to sign API requests with")

    generator = LoadGenerator(Unsigned(), ROWS, rate=100, limit=50).start()

    with pytest.raises(TargetError, match="no AWS credentials"):
        generator.wait()


def test_without_a_worker_count_the_pool_grows_past_four_while_latency_holds() -> None:
    """At 80 ms a request four workers top out near 50/s: asked for 100, the pool grows."""
    with StubApi(delay=0.08) as api:
        generator = LoadGenerator(api.target(), ROWS, rate=100, limit=60)
        generator.start().wait()
    summary = generator.summary()

    assert summary.pool.size > 4
    assert not summary.pool.fixed
    assert summary.pool.size <= summary.pool.cap == auto_workers(100)
    assert auto_workers(1e6) == MAX_WORKERS


def test_an_api_that_slows_under_load_stops_the_growth_and_is_named() -> None:
    """An API that answers 50 requests a second however many come at once: more workers would
    only queue there; the pool stops growing and the summary says why."""
    with StubApi(per_request=0.02) as api:
        generator = LoadGenerator(api.target(), ROWS, rate=200, limit=40)
        generator.start().wait()
    summary = generator.summary()

    reason = summary.shortfall()
    assert reason is not None
    assert f"the {summary.pool.size} workers, grown until the API slowed down, bound it" in reason
    assert "it slows down under this load, and may be the bound" in reason
    assert summary.pool.size < summary.pool.cap


def test_the_pool_grows_on_an_answer_to_a_request_sent_since_it_last_grew() -> None:
    pool = WorkerPool(2, cap=10)
    first, second = pool.acquire(), pool.acquire()
    assert not pool.would_grow()  # no answer yet: nothing says the API can take more

    pool.release(first, 10.0)
    third, fourth = pool.acquire(), pool.acquire()  # the 4th found both busy

    assert pool.size == 3
    pool.release(second, 10.0)  # sent before the growth: says nothing of the new load
    pool.release(third, 10.0)
    assert not pool.would_grow()
    pool.release(fourth, 10.0)
    assert pool.would_grow()


def test_the_pool_stops_growing_once_the_api_slows_down() -> None:
    pool = WorkerPool(1, cap=10)
    first = pool.acquire()
    pool.release(first, 10.0)
    second, third = pool.acquire(), pool.acquire()
    assert pool.size == 2

    pool.release(third, 90.0)  # sent after the growth, and its latency doubles the best

    assert pool.report().slowed
    assert not pool.would_grow()
    pool.release(second, 10.0)
    assert pool.report().slowed  # one quick answer does not undo the slowdown


def test_a_fixed_pool_never_grows() -> None:
    pool = WorkerPool(1)
    pool.release(pool.acquire(), 10.0)
    pool.acquire()

    assert pool.report() == PoolReport(1, 1, fixed=True, best_ms=10.0, recent_ms=10.0)
    assert not pool.would_grow()


# --------------------------------------------------------------------------- on made-up answers


def test_latency_percentiles_are_of_the_answered_requests() -> None:
    answered = [answer(i / 100, float(ms)) for i, ms in enumerate(range(1, 101))]
    timed_out = [answer(1.0 + i / 100, 30_000.0, status=0) for i in range(3)]

    summary = TrafficSummary.of([*answered, *timed_out], 100, PoolReport(4, 4, fixed=True))

    assert summary.latency is not None
    assert (summary.latency.p50, summary.latency.p95, summary.latency.p99) == pytest.approx(
        (50.5, 95.05, 99.01)
    )
    assert "latency          p50 50 ms, p95 95 ms, p99 99 ms (of the 100 answered)" in (
        summary.lines()
    )


def test_a_run_on_pace_does_not_fall_short() -> None:
    answers = [answer(i / 10, 20.0) for i in range(21)]

    summary = TrafficSummary.of(answers, 10, PoolReport(4, 4, fixed=True))

    assert summary.rate_reached == pytest.approx(10.0)
    assert not summary.fell_short
    assert summary.shortfall() is None
    assert "rate             10.0/s reached of 10/s asked" in summary.lines()


def test_a_short_run_blamed_on_the_workers_when_they_held_it_back() -> None:
    answers = [answer(i / 50, 80.0) for i in range(50)]  # 50/s, 80 ms each

    pool = PoolReport(4, 4, fixed=True, waited=0.9, best_ms=78.0, recent_ms=80.0)

    summary = TrafficSummary.of(answers, 100, pool)

    reason = summary.shortfall()
    assert reason is not None
    assert "rate             50.0/s reached of 100/s asked: fell short by 50%" in summary.lines()
    assert reason.startswith("the 4 workers bound it: requests took 80 ms on average")
    assert "so 4 workers send at most 50.0/s; 100/s needs about 10 (pass --workers 10)" in reason


def test_a_short_run_names_the_api_when_it_slowed_down() -> None:
    answers = [answer(i / 50, 80.0) for i in range(50)]
    pool = PoolReport(4, 4, fixed=True, waited=0.9, best_ms=20.0, recent_ms=85.0)

    summary = TrafficSummary.of(answers, 100, pool)

    assert summary.shortfall() == (
        "the 4 workers bound it: requests took 80 ms on average, so 4 workers send at most "
        "50.0/s; 100/s needs about 10 (pass --workers 10). But the API answered in 20 ms at its "
        "best: it slows down under this load, and may be the bound, when more workers would "
        "only queue there"
    )


def test_a_short_run_with_idle_workers_blames_the_sender() -> None:
    answers = [answer(i / 50, 5.0) for i in range(50)]

    summary = TrafficSummary.of(answers, 100, PoolReport(8, 50, fixed=False, waited=0.0))

    reason = summary.shortfall()
    assert reason is not None
    assert "the sender itself could not keep the pace" in reason


def test_one_request_is_too_few_for_a_rate() -> None:
    summary = TrafficSummary.of([answer(0.0, 12.0)], 10, PoolReport(4, 4, fixed=True))

    assert summary.rate_reached is None
    assert not summary.fell_short
    assert "rate             10/s asked; too few requests to measure the rate reached" in (
        summary.lines()
    )


def test_the_split_by_endpoint_counts_ok_answers() -> None:
    answers = [answer(i, 10.0, endpoint="green" if i < 3 else "blue") for i in range(10)]

    refused = [answer(11, 10.0, 502, "green"), *(answer(12, 1.0, 503, "none") for _ in "ab")]

    summary = TrafficSummary.of([*answers, *refused], 10, PoolReport(4, 4, fixed=True))

    assert (
        "answered by      green 3 (30.0%) and 1 failed, blue 7 (70.0%), none: 2 failed"
        in summary.lines()
    )


# --------------------------------------------------------------------------- progress


def test_progress_lines_say_how_far_the_run_got() -> None:
    out = io.StringIO()
    progress = ProgressLines(3, Console(file=out, width=200), every=0.0)

    for outcome in (answer(0, 5.0), answer(0, 5.0, 503), answer(0, 5.0)):
        progress(outcome)

    lines = out.getvalue().splitlines()
    assert [line.split(",")[:2] for line in lines] == [
        ["1/3 done", " 0 failed"],
        ["2/3 done", " 1 failed"],
        ["3/3 done", " 1 failed"],
    ]


def test_progress_lines_wait_between_lines() -> None:
    out = io.StringIO()
    progress = ProgressLines(100, Console(file=out, width=200), every=3600.0)

    for _ in range(100):
        progress(answer(0, 5.0))

    assert out.getvalue() == ""


def test_the_command_shows_progress_on_stderr_and_the_summary_on_stdout(
    api: StubApi, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Not on a terminal (CI, a pipe): progress lines on stderr, no line per request."""
    connect_cli(api, tmp_path, monkeypatch)
    monkeypatch.setattr(cli_traffic, "PROGRESS_EVERY_S", 0.0)

    result = CliRunner().invoke(main, ["traffic", "--requests", "3", "--rate", "50"])

    assert result.exit_code == 0, result.output
    assert "3/3 done, 0 failed" in result.stderr
    assert result.stdout.splitlines()[:3] == [
        "traffic summary (local cloud, 4 workers, up to 25 as needed)",
        "  requests sent    3",
        "  answered OK      3 (100.0%)",
    ]
    assert "17.25" not in result.stdout
