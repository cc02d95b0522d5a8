"""Client traffic through the API: a bounded load generator that records which endpoint answered
each request (the ``X-SageMaker-Endpoint`` header), as the original traffic-watching loop did."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import requests

from safe_deploy.target import Target

Row = Sequence[float]


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


@dataclass(frozen=True)
class Answer:
    at: float
    status: int
    endpoint: str
    latency_ms: float
    prediction: float | None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.status == 200


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


def predict_once(target: Target, row: Row) -> Answer:
    body = ",".join(repr(float(v)) for v in row).encode()
    started = time.perf_counter()
    at = time.time()
    try:
        response = target.signed(
            "POST", "/predict", body, {"Content-Type": "text/csv", "Accept": "text/csv"}, timeout=30
        )
    except requests.RequestException as exc:
        return Answer(at, 0, "-", (time.perf_counter() - started) * 1000, None, str(exc))
    latency = (time.perf_counter() - started) * 1000
    endpoint = response.headers.get("X-SageMaker-Endpoint", "-")
    if response.status_code != 200:
        return Answer(at, response.status_code, endpoint, latency, None, response.text[:200])
    return Answer(at, 200, endpoint, latency, float(response.text.split()[0]))


class LoadGenerator:
    """Sends requests at a bounded rate from a few threads until stopped (or ``limit`` sent)."""

    def __init__(
        self,
        target: Target,
        rows: Sequence[Row],
        rate: float = 40.0,
        workers: int = 4,
        limit: int | None = None,
        on_answer: Callable[[Answer], None] | None = None,
    ) -> None:
        self.target = target
        self.rows = rows
        self.rate = rate
        self.workers = workers
        self.limit = limit
        self.on_answer = on_answer
        self.log = TrafficLog()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _rows(self) -> Iterator[Row]:
        index = 0
        while True:
            yield self.rows[index % len(self.rows)]
            index += 1

    def _run(self) -> None:
        interval = 1.0 / self.rate
        rows = self._rows()
        with ThreadPoolExecutor(self.workers) as pool:
            sent = 0
            next_at = time.monotonic()
            while not self._stop.is_set() and (self.limit is None or sent < self.limit):
                row = next(rows)
                pool.submit(self._one, row)
                sent += 1
                next_at += interval
                self._stop.wait(max(0.0, next_at - time.monotonic()))

    def _one(self, row: Row) -> None:
        answer = predict_once(self.target, row)
        self.log.add(answer)
        if self.on_answer is not None:
            self.on_answer(answer)

    def start(self) -> LoadGenerator:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> TrafficLog:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        return self.log

    def wait(self) -> TrafficLog:
        if self._thread is not None:
            self._thread.join()
        return self.log
