"""The local cloud's SageMaker as one object: its jobs, its endpoints and its monitoring
schedules, sharing the cloud's settings, activity feed, metrics and faults."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from safe_deploy.localcloud.metrics import MetricStore
from safe_deploy.localcloud.sagemaker.endpoints import EndpointHost
from safe_deploy.localcloud.sagemaker.jobs import JobRunner
from safe_deploy.localcloud.sagemaker.monitoring import MonitoringSchedules
from safe_deploy.localcloud.state import ActivityFeed, Faults, LocalSettings
from safe_deploy.localcloud.timeline import Recorder

STOP_TIMEOUT = 60.0  # a job's own code in this process (training on one host) is not interrupted


@dataclass
class SageMakerEmulator:
    settings: LocalSettings
    feed: ActivityFeed
    metrics: MetricStore
    faults: Faults
    timeline: Recorder = field(default_factory=Recorder)
    jobs: JobRunner = field(init=False)
    endpoints: EndpointHost = field(init=False)
    monitoring: MonitoringSchedules = field(init=False)

    # Set once, when the cloud stops: jobs, endpoints and schedules all watch it.
    stopping: threading.Event = field(init=False, default_factory=threading.Event)
    _work: set[threading.Thread] = field(init=False, default_factory=set)
    _lock: threading.Lock = field(init=False, default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self.jobs = JobRunner(self.settings, self.feed, self.timeline, stopping=self.stopping)
        self.endpoints = EndpointHost(
            self.settings,
            self.feed,
            self.metrics,
            self.faults,
            self.timeline,
            stopping=self.stopping,
        )
        self.monitoring = MonitoringSchedules(
            self.settings, self.feed, self.endpoints, stopping=self.stopping
        )

    def background(self, name: str, work: Callable[[], None]) -> None:
        """``work`` (a job, an endpoint's start-up) on a thread of its own, which :meth:`stop`
        ends and waits for."""

        def run() -> None:
            try:
                work()
            finally:
                with self._lock:
                    self._work.discard(threading.current_thread())

        thread = threading.Thread(target=run, name=name, daemon=True)
        with self._lock:
            self._work.add(thread)
        thread.start()

    def run_schedule(self, name: str) -> dict[str, Any]:
        """One monitoring execution of schedule ``name``, now."""
        return self.monitoring.run_schedule(name)

    def scheduler(self) -> None:
        """SageMaker's clock (capture flushes, monitoring schedules), until :meth:`stop`."""
        self.monitoring.scheduler()

    def stop(self, timeout: float = STOP_TIMEOUT) -> None:
        """Stop SageMaker's clock and end its work: jobs fail (their processes are killed),
        endpoints still starting never serve, and every thread doing such work is waited for.
        None may outlive the cloud: once the cloud's environment is gone, its calls would go to
        AWS. A thread still busy after ``timeout`` seconds (a job's own code running in this
        process) is named in the activity feed."""
        self.jobs.stop()  # sets ``stopping``, then kills the jobs' processes
        deadline = time.monotonic() + timeout
        with self._lock:
            work = list(self._work)
        for thread in work:
            thread.join(max(0.0, deadline - time.monotonic()))
        left = sorted(thread.name for thread in work if thread.is_alive())
        if left:
            self.feed.emit("sagemaker", f"still running after the cloud stopped: {', '.join(left)}")
