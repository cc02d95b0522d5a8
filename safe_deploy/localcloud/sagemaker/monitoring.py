"""Model Monitor for the local cloud: data-quality monitoring schedules, kept here (moto has none)
and run once per scaled hour or on demand.

An execution checks the capture an endpoint wrote since the last one against the schedule's
baseline with ``model.monitor``, writes Model Monitor's result files where AWS writes them (the
violations file last) and is recorded as the processing job it is on AWS. The same clock flushes
endpoints' capture on SageMaker's cadence.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from moto.sagemaker.exceptions import ValidationError

from safe_deploy.localcloud.sagemaker.endpoints import CAPTURE_FLUSH_SECONDS, EndpointHost
from safe_deploy.localcloud.sagemaker.utils import (
    download_prefix,
    s3_client,
    sagemaker_backend,
    split_uri,
    upload_folder,
    workspace,
)
from safe_deploy.localcloud.state import ActivityFeed, LocalSettings

MONITORING_PERIOD_SECONDS = 3600.0
SUMMARY_KEYS = (
    "MonitoringScheduleName",
    "MonitoringScheduleArn",
    "CreationTime",
    "LastModifiedTime",
    "MonitoringScheduleStatus",
    "EndpointName",
    "MonitoringType",
)


@dataclass
class MonitoringSchedules:
    """The monitoring schedules by name, their executions, and the clock that runs them."""

    settings: LocalSettings
    feed: ActivityFeed
    endpoints: EndpointHost
    schedules: dict[str, dict[str, Any]] = field(default_factory=dict)
    executions: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    stopping: threading.Event = field(default_factory=threading.Event)  # SageMaker's

    @property
    def backend(self) -> Any:
        return sagemaker_backend(self.settings)

    def create_schedule(self, name: str, config: dict[str, Any]) -> str:
        region, account = self.settings.region, self.settings.account
        arn = f"arn:aws:sagemaker:{region}:{account}:monitoring-schedule/{name}"
        with self._lock:
            if name in self.schedules:
                raise ValidationError(message=f"Monitoring schedule {name} already exists.")
            now = datetime.now(UTC)
            self.schedules[name] = {
                "MonitoringScheduleArn": arn,
                "MonitoringScheduleName": name,
                "MonitoringScheduleStatus": "Scheduled",
                "MonitoringType": "DataQuality",
                "CreationTime": now,
                "LastModifiedTime": now,
                "MonitoringScheduleConfig": config,
                "EndpointName": self._schedule_endpoint(config),
                "_last_run": time.time(),
                "_window_start": now,  # each run analyses the capture written since the last
            }
            self.executions[name] = []
        self.feed.emit("sagemaker", f"monitoring schedule {name} created", schedule=name)
        return arn

    @staticmethod
    def _schedule_endpoint(config: dict[str, Any]) -> str:
        inputs = config["MonitoringJobDefinition"]["MonitoringInputs"]
        return str(inputs[0]["EndpointInput"]["EndpointName"])

    def delete_schedule(self, name: str) -> None:
        with self._lock:
            if self.schedules.pop(name, None) is None:
                raise ValidationError(message=f"Monitoring schedule {name} does not exist.")
        self.feed.emit("sagemaker", f"monitoring schedule {name} deleted", schedule=name)

    def describe_schedule(self, name: str) -> dict[str, Any]:
        with self._lock:
            schedule = self.schedules.get(name)
            if schedule is None:
                raise ValidationError(message=f"Monitoring schedule {name} does not exist.")
            described = {k: v for k, v in schedule.items() if not k.startswith("_")}
            runs = self.executions.get(name) or []
        if runs:
            described["LastMonitoringExecutionSummary"] = runs[-1]
        return described

    def schedule_summaries(self, endpoint_name: str | None) -> list[dict[str, Any]]:
        """``ListMonitoringSchedules``: every schedule, or those of one endpoint."""
        with self._lock:
            names = list(self.schedules)
        summaries = []
        for name in names:
            described = self.describe_schedule(name)
            if endpoint_name and described["EndpointName"] != endpoint_name:
                continue
            summaries.append({k: described[k] for k in SUMMARY_KEYS})
        return summaries

    def execution_summaries(self, name: str | None) -> list[dict[str, Any]]:
        """``ListMonitoringExecutions``: every schedule's executions, or one's, newest first."""
        with self._lock:
            runs = [
                dict(r) for s, rs in self.executions.items() if not name or s == name for r in rs
            ]
        runs.sort(key=lambda r: r["ScheduledTime"], reverse=True)
        return runs

    def run_schedule(self, name: str) -> dict[str, Any]:
        """One monitoring execution: the capture since the last run against the baseline."""
        from model.monitor import VIOLATIONS_FILE, monitor

        schedule = self.describe_schedule(name)
        definition = schedule["MonitoringScheduleConfig"]["MonitoringJobDefinition"]
        endpoint = schedule["EndpointName"]
        scheduled = datetime.now(UTC)
        execution: dict[str, Any] = {
            "MonitoringScheduleName": name,
            "ScheduledTime": scheduled,
            "CreationTime": scheduled,
            "LastModifiedTime": scheduled,
            "EndpointName": endpoint,
            "MonitoringType": "DataQuality",
        }
        try:
            self.endpoints.flush_all()
            folder = workspace(self.settings, "monitoring", name)
            baseline = folder / "baseline"
            for resource, file in (
                ("ConstraintsResource", "constraints.json"),
                ("StatisticsResource", "statistics.json"),
            ):
                bucket, key = split_uri(definition["BaselineConfig"][resource]["S3Uri"])
                baseline.mkdir(exist_ok=True)
                s3_client().download_file(bucket, key, str(baseline / file))
            capture_uri = self.endpoints.capture_destination(endpoint)
            captured = folder / "capture"
            with self._lock:
                last_run = self.schedules[name]["_window_start"] if name in self.schedules else None
            if capture_uri:
                download_prefix(f"{capture_uri.rstrip('/')}/{endpoint}/", captured, since=last_run)
            files = sorted(captured.rglob("*.jsonl"))
            if not files:
                execution["MonitoringExecutionStatus"] = "Failed"
                execution["FailureReason"] = f"No capture for {endpoint} to analyse."
            else:
                result = folder / "result"
                report = monitor(baseline, files, result)
                output = definition["MonitoringOutputConfig"]["MonitoringOutputs"][0]["S3Output"][
                    "S3Uri"
                ]
                target = f"{output.rstrip('/')}/{name}/{scheduled:%Y/%m/%d/%H}"
                # the violations file last: its arrival is what the drift check listens for
                violations = result / VIOLATIONS_FILE
                keep = violations.read_bytes()
                violations.unlink()
                upload_folder(result, target)
                bucket, key = split_uri(f"{target}/{VIOLATIONS_FILE}")
                s3_client().put_object(Bucket=bucket, Key=key, Body=keep)
                execution["MonitoringExecutionStatus"] = (
                    "CompletedWithViolations" if report.violations else "Completed"
                )
                execution["ProcessingJobArn"] = self._record_monitoring_job(
                    f"{name}-{scheduled:%Y%m%d%H%M%S}", definition, target
                )
                drifted = ", ".join(report.drifted_features) or "nothing"
                self.feed.emit(
                    "sagemaker",
                    f"monitoring {name}: {report.rows} rows, drift on {drifted}",
                    schedule=name,
                    violations=len(report.violations),
                )
        except Exception as exc:
            execution["MonitoringExecutionStatus"] = "Failed"
            execution["FailureReason"] = str(exc)
        with self._lock:
            if name in self.schedules:
                self.schedules[name]["_last_run"] = time.time()
                self.schedules[name]["_window_start"] = scheduled
            self.executions.setdefault(name, []).append(execution)
        return execution

    def _record_monitoring_job(self, job_name: str, definition: dict[str, Any], result: str) -> str:
        """A monitoring execution is a processing job on AWS; record it as one."""
        job = self.backend.create_processing_job(
            app_specification=definition["MonitoringAppSpecification"],
            experiment_config={},
            network_config={},
            processing_inputs=[],
            processing_job_name=job_name,
            processing_output_config={
                "Outputs": [
                    {
                        "OutputName": "monitoring_output",
                        "S3Output": {
                            "S3Uri": result,
                            "LocalPath": "/opt/ml/processing/output",
                            "S3UploadMode": "EndOfJob",
                        },
                    }
                ]
            },
            role_arn=definition["RoleArn"],
            stopping_condition=definition.get("StoppingCondition", {}),
            tags=[],
        )
        return str(job.arn)

    def scheduler(self) -> None:
        """Runs every schedule once per scaled hour, and flushes capture on SageMaker's cadence."""
        while not self.stopping.wait(max(0.2, self.settings.scaled(CAPTURE_FLUSH_SECONDS) / 2)):
            self.endpoints.flush_all()
            period = self.settings.scaled(MONITORING_PERIOD_SECONDS)
            with self._lock:
                due = [
                    n for n, s in self.schedules.items() if time.time() - s["_last_run"] >= period
                ]
            for name in due:
                self.run_schedule(name)
