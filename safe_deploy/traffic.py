"""Client traffic through the API: a bounded load generator that records which endpoint answered
each request (the ``X-SageMaker-Endpoint`` header), as the original traffic-watching loop did,
and a summary that says what the run reached: failures, latency, rate, endpoints."""

from __future__ import annotations

import math
import statistics
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import requests

Row = Sequence[float]

# Without --workers the pool starts with MIN_WORKERS and grows while every worker is busy, up to
# enough for the rate asked at this latency (Little's law: in flight = rate x latency)...
LATENCY_BUDGET_S = 0.5
MIN_WORKERS = 4
MAX_WORKERS = 128
# ... unless the API has slowed down: its recent latency (a moving average of this weight) above
# this multiple of the best it showed. More requests at once would then only queue at the API; a
# local cloud on two cores answered 78/s with 4 workers and 25/s with 50.
RECENT_WEIGHT = 0.2
SLOWED = 2.0
# Below this share of the rate asked, the summary says the run fell short: timer jitter stays
# well inside it, a real bound (busy workers, a slow sender) does not.
SHORTFALL = 0.95
NO_ENDPOINT = "-"


class Signer(Protocol):
    """What the generator needs of a target: a signed API request (``Target.signed``)."""

    def signed(
        self,
        method: str,
        path: str,
        body: bytes = b"",
        headers: dict[str, str] | None = None,
        timeout: float = 30.0,
    ) -> requests.Response: ...


def client_rides(trips: Path, count: int) -> list[list[float]]:
    """The first ``count`` rides of a trips file that a client would ask a fare for: the
    features of the rides preparation keeps (predict refuses, with 422, rows outside the model's
    training data)."""
    from model.prepare import trips_table
    from model.schema import DURATION_RANGE, FEATURES, TRIP_DISTANCE_RANGE

    table = trips_table(trips).dropna()
    (short, long), (near, far) = DURATION_RANGE, TRIP_DISTANCE_RANGE
    table = table[
        table.duration_minutes.between(short, long, inclusive="neither")
        & table.trip_distance.between(near, far, inclusive="neither")
        & (table.passenger_count > 0)
    ]
    rows: list[list[float]] = table[list(FEATURES)].head(count).to_numpy().tolist()
    return rows


def auto_workers(rate: float) -> int:
    """The most workers a pool grows to for ``rate`` requests a second."""
    return min(MAX_WORKERS, max(MIN_WORKERS, math.ceil(rate * LATENCY_BUDGET_S)))


@dataclass(frozen=True)
class Answer:
    at: float
    status: int  # 0: no HTTP answer came back
    endpoint: str
    latency_ms: float
    prediction: float | None
    error: str | None = None
    transport_error: str | None = None  # the exception's name when no HTTP answer came back

    @property
    def ok(self) -> bool:
        return self.status == 200 and self.error is None

    @property
    def failure(self) -> str | None:
        """How the request failed, as the summary groups failures; None when it did not."""
        if self.ok:
            return None
        if self.status == 0:
            return self.transport_error or "transport error"
        if self.status == 200:
            return "HTTP 200 without a fare"
        return f"HTTP {self.status}"


@dataclass
class TrafficLog:
    answers: list[Answer] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, answer: Answer) -> None:
        with self._lock:
            self.answers.append(answer)

    def snapshot(self) -> list[Answer]:
        with self._lock:
            return list(self.answers)

    @property
    def sent(self) -> int:
        return len(self.snapshot())

    @property
    def failed(self) -> list[Answer]:
        return [a for a in self.snapshot() if not a.ok]

    def by_endpoint(self, since: float = 0.0, until: float = float("inf")) -> Counter[str]:
        return Counter(a.endpoint for a in self.snapshot() if since <= a.at < until and a.ok)


def predict_once(target: Signer, row: Row) -> Answer:
    body = ",".join(repr(float(v)) for v in row).encode()
    started = time.perf_counter()
    at = time.time()
    try:
        response = target.signed(
            "POST", "/predict", body, {"Content-Type": "text/csv", "Accept": "text/csv"}, timeout=30
        )
    except requests.RequestException as exc:
        latency = (time.perf_counter() - started) * 1000
        return Answer(at, 0, NO_ENDPOINT, latency, None, str(exc), type(exc).__name__)
    latency = (time.perf_counter() - started) * 1000
    endpoint = response.headers.get("X-SageMaker-Endpoint", NO_ENDPOINT)
    if response.status_code != 200:
        return Answer(at, response.status_code, endpoint, latency, None, response.text[:200])
    try:
        fare = float(response.text.split()[0])
    except (IndexError, ValueError):
        return Answer(at, 200, endpoint, latency, None, f"not a fare: {response.text[:200]!r}")
    return Answer(at, 200, endpoint, latency, fare)


@dataclass(frozen=True)
class PoolReport:
    """How the workers fared: how many, whether they could grow, how long the schedule waited
    for one, and the API's latency at its best and at the end (moving averages, ms)."""

    size: int
    cap: int
    fixed: bool
    waited: float = 0.0
    best_ms: float | None = None
    recent_ms: float | None = None

    @property
    def slowed(self) -> bool:
        """Whether the API answered markedly slower under this load than at its best."""
        if self.best_ms is None or self.recent_ms is None:
            return False
        return self.recent_ms > SLOWED * self.best_ms


class WorkerPool:
    """How many requests may be in flight: a fixed number, or one more each time a request is
    due with every worker busy, up to ``cap``, while the API keeps its latency (see ``SLOWED``).
    Each growth waits for an answer to a request sent since the last, so the latency it goes by
    is the one under the new load. A pool that cannot grow makes the schedule wait, and counts
    the wait."""

    def __init__(self, size: int, cap: int | None = None) -> None:
        self.size = size
        self.cap = size if cap is None else max(size, cap)
        self.fixed = cap is None
        self.in_flight = 0
        self.waited = 0.0
        self.best_ms: float | None = None
        self.recent_ms: float | None = None
        self._sent = 0
        self._grown_after = 0  # requests sent when the pool last grew
        self._answered_since_growth = False
        self._ready = threading.Condition()

    def acquire(self) -> int:
        """Waits for a free worker (or grows the pool); returns the request's number."""
        with self._ready:
            if self.in_flight >= self.size and self.would_grow():
                self.size += 1
                self._grown_after = self._sent
                self._answered_since_growth = False
            if self.in_flight >= self.size:
                waiting = time.monotonic()
                self._ready.wait_for(lambda: self.in_flight < self.size)
                self.waited += time.monotonic() - waiting
            self.in_flight += 1
            self._sent += 1
            return self._sent

    def release(self, request: int, latency_ms: float | None) -> None:
        """Frees request ``request``'s worker; ``latency_ms`` when the API answered it."""
        with self._ready:
            self.in_flight -= 1
            if latency_ms is not None:
                recent = self.recent_ms
                self.recent_ms = (
                    latency_ms if recent is None else recent + RECENT_WEIGHT * (latency_ms - recent)
                )
                best = self.best_ms
                self.best_ms = self.recent_ms if best is None else min(best, self.recent_ms)
                self._answered_since_growth |= request > self._grown_after
            self._ready.notify()

    def would_grow(self) -> bool:
        """Whether a request due with every worker busy gets one more worker: only on the API's
        word, an answer to a request sent since the last growth, and not slower than at its
        best."""
        return self.size < self.cap and self._answered_since_growth and not self.report().slowed

    def report(self) -> PoolReport:
        return PoolReport(
            self.size, self.cap, self.fixed, self.waited, self.best_ms, self.recent_ms
        )


class LoadGenerator:
    """Sends requests at up to ``rate`` a second from a pool of workers until stopped (or
    ``limit`` sent). The rate is a ceiling: when every worker is busy the next request waits for
    one instead of queueing, and a late schedule starts again from now instead of bursting.
    ``workers`` fixes the pool's size; without it the pool grows as :class:`WorkerPool` says."""

    def __init__(
        self,
        target: Signer,
        rows: Sequence[Row],
        rate: float = 40.0,
        workers: int | None = None,
        limit: int | None = None,
        on_answer: Callable[[Answer], None] | None = None,
    ) -> None:
        if not rows:
            raise ValueError("no rows to send")
        if rate <= 0:
            raise ValueError(f"the rate must be positive, not {rate}")
        self.target = target
        self.rows = rows
        self.rate = rate
        self.pool = (
            WorkerPool(MIN_WORKERS, auto_workers(rate)) if workers is None else WorkerPool(workers)
        )
        self.limit = limit
        self.on_answer = on_answer
        self.log = TrafficLog()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._crash: Exception | None = None

    def _rows(self) -> Iterator[Row]:
        index = 0
        while True:
            yield self.rows[index % len(self.rows)]
            index += 1

    @property
    def workers(self) -> int:
        """Workers now (a growing pool never shrinks: the most it reached)."""
        return self.pool.size

    def _run(self) -> None:
        interval = 1.0 / self.rate
        rows = self._rows()
        # Threads start only when none is idle: a pool that never grows never runs more.
        with ThreadPoolExecutor(self.pool.cap, thread_name_prefix="traffic") as threads:
            sent = 0
            next_at = time.monotonic()
            while not self._stop.is_set() and (self.limit is None or sent < self.limit):
                request = self.pool.acquire()
                if self._stop.is_set():
                    break
                now = time.monotonic()
                if now - next_at > interval:
                    next_at = now
                threads.submit(self._guarded, self._one, next(rows), request)
                sent += 1
                next_at += interval
                self._stop.wait(max(0.0, next_at - time.monotonic()))

    def _one(self, row: Row, request: int) -> None:
        latency: float | None = None
        try:
            answer = predict_once(self.target, row)
            latency = answer.latency_ms if answer.status else None  # the API's, when it answered
            self.log.add(answer)
            if self.on_answer is not None:
                self.on_answer(answer)
        finally:
            self.pool.release(request, latency)

    def _guarded(self, work: Callable[..., None], *args: object) -> None:
        """Runs ``work``; an unexpected error stops the run and is raised by ``stop``/``wait``
        rather than dying unseen in a worker thread."""
        try:
            work(*args)
        except Exception as exc:
            self._crash = self._crash or exc
            self._stop.set()

    def start(self) -> LoadGenerator:
        self._thread = threading.Thread(target=self._guarded, args=(self._run,), daemon=True)
        self._thread.start()
        return self

    def stop(self) -> TrafficLog:
        self._stop.set()
        return self.wait()

    def wait(self) -> TrafficLog:
        if self._thread is not None:
            self._thread.join()
        if self._crash is not None:
            raise self._crash
        return self.log

    def summary(self) -> TrafficSummary:
        return TrafficSummary.of(self.log.snapshot(), self.rate, self.pool.report())


@dataclass(frozen=True)
class Latency:
    p50: float
    p95: float
    p99: float
    answered: int


@dataclass(frozen=True)
class TrafficSummary:
    """What a run of the load generator reached, for people: see :meth:`lines`."""

    sent: int
    ok: int
    failures: Counter[str]  # "HTTP 503", "ConnectTimeout", ... -> requests
    first_error: dict[str, str]  # the first message of each kind of failure
    latency: Latency | None  # of the requests the API answered, in ms
    busy_ms: float | None  # mean time a request held a worker, answered or not
    rate_asked: float
    rate_reached: float | None  # None: too few requests to measure one
    pool: PoolReport
    endpoints: Counter[str]  # endpoint -> requests answered OK
    endpoint_failures: Counter[str]  # endpoint -> requests that failed with its header

    @classmethod
    def of(
        cls,
        answers: Sequence[Answer],
        rate_asked: float,
        pool: PoolReport,
    ) -> TrafficSummary:
        failed = [a for a in answers if not a.ok]
        first_error: dict[str, str] = {}
        for answer in sorted(failed, key=lambda a: a.at):
            first_error.setdefault(str(answer.failure), answer.error or "")
        answered = [a.latency_ms for a in answers if a.status != 0]
        return cls(
            sent=len(answers),
            ok=len(answers) - len(failed),
            failures=Counter(str(a.failure) for a in failed),
            first_error=first_error,
            latency=_latency(answered),
            busy_ms=statistics.fmean(a.latency_ms for a in answers) if answers else None,
            rate_asked=rate_asked,
            rate_reached=_rate(answers),
            pool=pool,
            endpoints=Counter(a.endpoint for a in answers if a.ok),
            endpoint_failures=Counter(
                a.endpoint for a in failed if a.status != 0 and a.endpoint != NO_ENDPOINT
            ),
        )

    @property
    def fell_short(self) -> bool:
        return self.rate_reached is not None and self.rate_reached < SHORTFALL * self.rate_asked

    def shortfall(self) -> str | None:
        """Why the run fell short of the rate asked, when it did: the workers when the schedule
        lost most of its time waiting for a free one (and whether the API slowed down under that
        load, when more workers would only queue there); otherwise the sender itself."""
        if not self.fell_short or self.rate_reached is None:
            return None
        lost = (self.sent - 1) * (1 / self.rate_reached - 1 / self.rate_asked)
        if not self.busy_ms or self.pool.waited < lost / 2:
            return (
                "the workers were never all busy for long, so the sender itself could not keep "
                "the pace (this machine's CPU, or signing requests faster than it can)"
            )
        return self._workers_bound(self.busy_ms)

    def _workers_bound(self, busy_ms: float) -> str:
        pool, asked = self.pool, _per_second(self.rate_asked)
        slowed = pool.best_ms is not None and busy_ms > SLOWED * pool.best_ms
        # A quarter more than the mean needs: latency varies, and a worker short stalls the rate.
        needed = max(pool.size + 1, math.ceil(1.25 * self.rate_asked * busy_ms / 1000))
        advice = (
            f"pass --workers {needed}"
            if needed <= MAX_WORKERS
            else f"more than {MAX_WORKERS} workers would be needed: send from several clients"
        )
        grown = ""
        if not pool.fixed:
            grown = (
                f", the most it runs for {asked},"
                if pool.size >= pool.cap
                else ", grown until the API slowed down,"
                if slowed
                else ", grown one at a time as answers came back,"
            )
        reason = (
            f"the {pool.size} workers{grown} bound it: requests took {busy_ms:.0f} ms "
            f"on average, so {pool.size} workers send at most {pool.size * 1000 / busy_ms:.1f}/s; "
            f"{asked} needs about {needed} ({advice})"
        )
        if slowed:
            reason += (
                f". But the API answered in {pool.best_ms:.0f} ms at its best: it slows down "
                "under this load, and may be the bound, when more workers would only queue there"
            )
        return reason

    def lines(self) -> list[str]:
        """The summary as plain lines (they hold endpoint names and error messages: print them
        as text, never as markup)."""
        return [
            f"requests sent    {self.sent:,}",
            f"answered OK      {self.ok:,}{_share(self.ok, self.sent)}",
            f"failed           {self._failures()}",
            *(f"  {kind}: {message}" for kind, message in self.first_error.items() if message),
            f"latency          {self._latency()}",
            f"rate             {self._rate()}",
            *(f"  {reason}" for reason in [self.shortfall()] if reason),
            f"answered by      {self._endpoints()}",
        ]

    def _failures(self) -> str:
        if not self.failures:
            return "none"
        kinds = ", ".join(f"{kind} x{count:,}" for kind, count in self.failures.most_common())
        failed = sum(self.failures.values())
        return f"{failed:,}{_share(failed, self.sent)}: {kinds}"

    def _latency(self) -> str:
        if self.latency is None:
            return "no answers to measure"
        late = self.latency
        shown = f"p50 {late.p50:.0f} ms, p95 {late.p95:.0f} ms, p99 {late.p99:.0f} ms"
        return (
            shown if late.answered == self.sent else f"{shown} (of the {late.answered:,} answered)"
        )

    def _rate(self) -> str:
        asked = _per_second(self.rate_asked)
        if self.rate_reached is None:
            return f"{asked} asked; too few requests to measure the rate reached"
        reached = f"{self.rate_reached:.1f}/s reached of {asked} asked"
        if not self.fell_short:
            return reached
        return f"{reached}: fell short by {1 - self.rate_reached / self.rate_asked:.0%}"

    def _endpoints(self) -> str:
        if not self.endpoints and not self.endpoint_failures:
            return "no endpoint answered"
        parts = []
        for endpoint in dict.fromkeys([*self.endpoints, *self.endpoint_failures]):
            name = "(no endpoint header)" if endpoint == NO_ENDPOINT else endpoint
            ok, failed = self.endpoints[endpoint], self.endpoint_failures[endpoint]
            if not ok:
                parts.append(f"{name}: {failed:,} failed")
                continue
            part = f"{name} {ok:,}{_share(ok, self.ok)}"
            parts.append(f"{part} and {failed:,} failed" if failed else part)
        return ", ".join(parts)


def _latency(latencies_ms: Sequence[float]) -> Latency | None:
    if not latencies_ms:
        return None
    import numpy as np  # here, not at the top: the CLI starts without numpy

    p50, p95, p99 = np.percentile(latencies_ms, [50, 95, 99])
    return Latency(float(p50), float(p95), float(p99), len(latencies_ms))


def _rate(answers: Sequence[Answer]) -> float | None:
    """Requests a second between the first request sent and the last: n requests sent on time
    span n - 1 intervals."""
    if len(answers) < 2:
        return None
    times = [a.at for a in answers]
    span = max(times) - min(times)
    return (len(answers) - 1) / span if span > 0 else None


def _share(part: int, whole: int) -> str:
    return f" ({part / whole:.1%})" if whole else ""


def _per_second(rate: float) -> str:
    return f"{rate:g}/s"
