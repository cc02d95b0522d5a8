"""What the local cloud waited for, as it happened: spans of local time, each with the seconds
AWS would take for it, and the traffic shifts CodeDeploy made.

A span is one of four kinds:

- ``WAIT``: a wait the local cloud emulates by sleeping a scaled AWS duration (an endpoint's
  creation, a job's start-up, a canary's bake); on AWS it takes ``projected`` seconds;
- ``POLL``: a Step Functions Wait state; on AWS it takes its declared seconds, but it only waits
  for something else (an endpoint, the stack), so it counts only while nothing else is under way;
- ``WORK``: real work that takes as long on AWS as locally (a job's code, a hook, the stack
  update's own calls);
- ``INSTANT``: an AWS wait the local cloud does not sleep for (CloudFormation's and CodeDeploy's
  own start-up); AWS spends ``projected`` seconds at that point.

Spans name their run when they know it (a Wait state's execution), else their subject (SageMaker
names every job and endpoint after its run) or, for the stack's CloudFormation and CodeDeploy
work, nothing: those belong to the run whose promotion was under way.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from enum import Enum


class Kind(Enum):
    WAIT = "wait"
    POLL = "poll"
    WORK = "work"
    INSTANT = "instant"


@dataclass
class Span:
    operation: str  # a key of durations.AWS_DURATIONS
    subject: str  # the job, endpoint, state, deployment or stack
    kind: Kind
    start: float  # epoch seconds
    end: float | None = None  # None while under way
    projected: float | None = None  # AWS seconds for WAIT, POLL and INSTANT
    expected: float | None = None  # the local seconds a WAIT or POLL is meant to last
    run: str | None = None  # the run (model id) it belongs to, when known
    stack: bool = False  # the stack's own work: belongs to the run being promoted

    def local(self, now: float) -> float:
        return max(0.0, (self.end if self.end is not None else now) - self.start)

    def rate(self, now: float) -> float:
        """Projected seconds per local second while the span is under way."""
        if self.projected is None:
            return 1.0
        spent = self.local(now)
        if self.end is None and self.expected:  # not over yet: as fast as it is meant to go
            spent = max(spent, self.expected)
        return self.projected / spent if spent > 0 else 1.0


@dataclass(frozen=True)
class Shift:
    """CodeDeploy moved the alias: ``weight`` of its traffic is on the new version."""

    at: float
    deployment: str
    weight: float


@dataclass
class Recorder:
    """The local cloud's record of its waits, shared by its emulators (thread safe)."""

    clock: Callable[[], float] = time.time
    spans: list[Span] = field(default_factory=list)
    shifts: list[Shift] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def begin(
        self,
        operation: str,
        subject: str,
        kind: Kind,
        *,
        projected: float | None = None,
        expected: float | None = None,
        run: str | None = None,
        stack: bool = False,
    ) -> Span:
        span = Span(operation, subject, kind, self.clock(), None, projected, expected, run, stack)
        with self._lock:
            self.spans.append(span)
        return span

    def end(self, span: Span) -> None:
        with self._lock:
            span.end = self.clock()

    @contextmanager
    def span(
        self,
        operation: str,
        subject: str,
        kind: Kind,
        *,
        projected: float | None = None,
        expected: float | None = None,
        run: str | None = None,
        stack: bool = False,
    ) -> Iterator[Span]:
        span = self.begin(
            operation,
            subject,
            kind,
            projected=projected,
            expected=expected,
            run=run,
            stack=stack,
        )
        try:
            yield span
        finally:
            self.end(span)

    def instant(
        self, operation: str, subject: str, projected: float, *, stack: bool = False
    ) -> None:
        now = self.clock()
        with self._lock:
            self.spans.append(
                Span(operation, subject, Kind.INSTANT, now, now, projected, None, None, stack)
            )

    def shift(self, deployment: str, weight: float) -> None:
        with self._lock:
            self.shifts.append(Shift(self.clock(), deployment, weight))

    def snapshot(self) -> tuple[list[Span], list[Shift]]:
        """Copies of everything recorded so far (spans under way stay open)."""
        with self._lock:
            return [replace(span) for span in self.spans], list(self.shifts)
