"""What every piece of the local cloud shares: settings, the clock, the activity feed, faults."""

from __future__ import annotations

import fnmatch
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ACCOUNT = "123456789012"
REGION = "us-east-1"
DEFAULT_TIME_SCALE = 0.02  # one simulated minute passes in 1.2 real seconds
CLIENT_WAIT_FLOOR = 30.0  # real seconds: the least any wait for clients lasts (for_people)


@dataclass
class LocalSettings:
    """How the local cloud runs; ``time_scale`` shrinks every wait (ASL Wait states, Retry
    intervals, task timeouts, CodeDeploy bakes, endpoint start-up, monitoring schedules)."""

    project_root: Path
    workdir: Path
    time_scale: float = DEFAULT_TIME_SCALE
    stack_name: str = "safe-deploy-local"
    region: str = REGION
    account: str = ACCOUNT
    parameter_overrides: dict[str, str] = field(default_factory=dict)
    local_channels: bool = True  # approvals also go to Slack and email (both land in the outbox)
    aws_port: int = 0  # 0: any free port
    api_port: int = 0
    verbose: bool = False
    # Waits for people and their clients (the post-traffic hook's wait for client requests) run
    # in real seconds: a person following the README has minutes, not 4.8 s, to send traffic.
    human_pace: bool = False

    @property
    def template_path(self) -> Path:
        return self.project_root / "template.yaml"

    def scaled(self, seconds: float) -> float:
        return max(0.0, seconds * self.time_scale)

    def for_people(self, seconds: float) -> float:
        """A wait that ends when a person or a client acts: as long as on AWS at human pace.
        Otherwise (the demo's client is a program) scaled like every other wait, but never
        below ``CLIENT_WAIT_FLOOR`` real seconds: a client on a loaded machine still needs time
        to be answered, and a wait that ends early when its clients come costs nothing more."""
        if self.human_pace:
            return max(0.0, seconds)
        return max(self.scaled(seconds), min(seconds, CLIENT_WAIT_FLOOR))


@dataclass(frozen=True)
class Activity:
    """Something the local cloud did that a person watching would want to know."""

    at: float
    source: str
    message: str
    data: dict[str, Any]


class ActivityFeed:
    """A thread-safe feed of what happened; the demo and ``local up`` print it."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.items: list[Activity] = []
        self._listeners: list[Callable[[Activity], None]] = []

    def emit(self, source: str, message: str, **data: Any) -> None:
        item = Activity(time.time(), source, message, data)
        with self._lock:
            self.items.append(item)
            listeners = list(self._listeners)
        for listener in listeners:
            listener(item)

    def listen(self, listener: Callable[[Activity], None]) -> Callable[[], None]:
        with self._lock:
            self._listeners.append(listener)

        def stop() -> None:
            with self._lock:
                if listener in self._listeners:
                    self._listeners.remove(listener)

        return stop

    def find(self, source: str | None = None, contains: str = "") -> list[Activity]:
        with self._lock:
            return [
                a
                for a in self.items
                if (source is None or a.source == source) and contains in a.message
            ]


class Faults:
    """Failures injected on purpose (the demo's failure scenarios): endpoint name patterns to a
    fault. ``errors``: every invocation fails with a model error; ``implausible``: answers a
    negative fare; ``no-capture``: serves but never writes data capture."""

    KINDS = ("errors", "implausible", "no-capture")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._faults: dict[str, str] = {}

    def inject(self, endpoint_pattern: str, kind: str) -> None:
        if kind not in self.KINDS:
            raise ValueError(f"unknown fault {kind!r}; choose from {', '.join(self.KINDS)}")
        with self._lock:
            self._faults[endpoint_pattern] = kind

    def clear(self) -> None:
        with self._lock:
            self._faults.clear()

    def for_endpoint(self, endpoint: str) -> set[str]:
        with self._lock:
            return {k for p, k in self._faults.items() if fnmatch.fnmatch(endpoint, p)}
