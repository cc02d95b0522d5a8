"""The local cloud's SageMaker as one object: its jobs, its endpoints and its monitoring
schedules, sharing the cloud's settings, activity feed, metrics and faults."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from safe_deploy.localcloud.metrics import MetricStore
from safe_deploy.localcloud.sagemaker.endpoints import EndpointHost
from safe_deploy.localcloud.sagemaker.jobs import JobRunner
from safe_deploy.localcloud.sagemaker.monitoring import MonitoringSchedules
from safe_deploy.localcloud.state import ActivityFeed, Faults, LocalSettings
from safe_deploy.localcloud.timeline import Recorder


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

    def __post_init__(self) -> None:
        self.jobs = JobRunner(self.settings, self.feed, self.timeline)
        self.endpoints = EndpointHost(
            self.settings, self.feed, self.metrics, self.faults, self.timeline
        )
        self.monitoring = MonitoringSchedules(self.settings, self.feed, self.endpoints)

    def run_schedule(self, name: str) -> dict[str, Any]:
        """One monitoring execution of schedule ``name``, now."""
        return self.monitoring.run_schedule(name)

    def scheduler(self) -> None:
        """SageMaker's clock (capture flushes, monitoring schedules), until :meth:`stop`."""
        self.monitoring.scheduler()

    def stop(self) -> None:
        self.monitoring.stop()
