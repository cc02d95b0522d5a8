"""SageMaker for the local cloud: jobs that run the project's model code, endpoints that serve the
trained model and write data capture, and Model Monitor schedules.

moto records SageMaker calls but runs nothing (jobs are Completed at once with nothing written,
endpoints answer canned bodies). Here:

- training jobs run ``model.train`` under an ``/opt/ml``-style folder with the job's channels and
  hyperparameters, upload ``model.tar.gz`` and report ``FinalMetricDataList``;
- processing jobs run by image: the scikit-learn image with ``model.prepare`` (PrepareData), the
  XGBoost image with ``model.compare`` (Compare), the Model Monitor analyzer (baselining
  ``model.baseline``, monitoring ``model.monitor``);
- endpoints load the model from ``ModelDataUrl``, answer ``InvokeEndpoint`` with real predictions
  and write capture in SageMaker's format and S3 layout;
- monitoring schedules run on a scaled hourly clock (or on demand) and write Model Monitor's
  result files where AWS writes them.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
import tarfile
import threading
import time
import traceback
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import boto3
import orjson
from moto.core.exceptions import ServiceException
from moto.core.responses import ActionResult, EmptyResult
from moto.sagemaker.exceptions import ValidationError
from moto.sagemaker.models import SageMakerModelBackend, sagemaker_backends
from moto.sagemaker.responses import SageMakerResponse
from moto.sagemakerruntime.responses import SageMakerRuntimeResponse
from pipeline_common.capture import capture_key, capture_record
from pipeline_common.layout import CAPTURE_PREFIX
from pipeline_common.payload import PayloadError

from model.errors import EXIT_MESSAGE
from model.serve import FareModel
from safe_deploy.localcloud import registry
from safe_deploy.localcloud.logs import PROCESSING_JOBS, put_lines
from safe_deploy.localcloud.metrics import MetricStore
from safe_deploy.localcloud.patching import replace
from safe_deploy.localcloud.state import ActivityFeed, Faults, LocalSettings

ENDPOINT_STARTUP_SECONDS = 120.0  # what an ml.m5.large takes, before the time scale
JOB_STARTUP_SECONDS = 60.0
CAPTURE_FLUSH_SECONDS = 60.0
MONITORING_PERIOD_SECONDS = 3600.0
# A processing job whose container exits non-zero fails with these words; the container's own
# reason is in its ExitMessage (/opt/ml/output/message) and its CloudWatch log stream.
SEE_JOB_LOGS = "See job logs for more information"


class ModelError(ServiceException):  # type: ignore[misc]
    """The runtime's ModelError (HTTP 424): the model container answered with an error."""

    code = "ModelError"

    def __init__(self, message: str, original_status: int = 500) -> None:
        super().__init__(message)
        self.OriginalStatusCode = original_status
        self.OriginalMessage = message


def _s3() -> Any:
    return boto3.client("s3")


def _split(uri: str) -> tuple[str, str]:
    parsed = urlparse(uri)
    return parsed.netloc, parsed.path.lstrip("/")


def download_prefix(uri: str, target: Path, since: datetime | None = None) -> int:
    """Objects under an S3 prefix (or one key) into a folder; the job's input channel."""
    bucket, prefix = _split(uri)
    s3 = _s3()
    count = 0
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for item in page.get("Contents", []):
            key = item["Key"]
            if key.endswith("/") or (since is not None and item["LastModified"] < since):
                continue
            relative = key[len(prefix) :].lstrip("/") or Path(key).name
            destination = target / relative
            destination.parent.mkdir(parents=True, exist_ok=True)
            s3.download_file(bucket, key, str(destination))
            count += 1
    return count


def upload_folder(folder: Path, uri: str) -> int:
    bucket, prefix = _split(uri)
    s3 = _s3()
    count = 0
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        key = f"{prefix.rstrip('/')}/{path.relative_to(folder)}".lstrip("/")
        s3.upload_file(str(path), bucket, key)
        count += 1
    return count


# ---------------------------------------------------------------------------- jobs
class JobFailed(Exception):
    """The job's own failure; the message becomes its FailureReason."""


@dataclass
class SageMakerEmulator:
    settings: LocalSettings
    feed: ActivityFeed
    metrics: MetricStore
    faults: Faults
    endpoints: dict[str, _Endpoint] = field(default_factory=dict)
    schedules: dict[str, dict[str, Any]] = field(default_factory=dict)
    executions: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _stop: threading.Event = field(default_factory=threading.Event)

    @property
    def backend(self) -> Any:
        return sagemaker_backends[self.settings.account][self.settings.region]

    def _workspace(self, kind: str, name: str) -> Path:
        path = self.settings.workdir / "sagemaker" / kind / f"{name}-{uuid.uuid4().hex[:6]}"
        path.mkdir(parents=True)
        return path

    def _start(self, target: Callable[[], None]) -> None:
        threading.Thread(target=target, daemon=True).start()

    def _startup_delay(self) -> None:
        time.sleep(self.settings.scaled(JOB_STARTUP_SECONDS))

    # training ---------------------------------------------------------------
    def run_training_job(self, job: Any) -> None:
        from model.train import METRICS_FILE, MODEL_FILE, run_container

        name = job.training_job_name
        self.feed.emit("sagemaker", f"training job {name} started", job=name)
        root = self._workspace("training", name) / "opt" / "ml"
        try:
            self._startup_delay()
            config = root / "input" / "config"
            config.mkdir(parents=True)
            (config / "hyperparameters.json").write_text(json.dumps(job.hyper_parameters or {}))
            for channel in job.input_data_config:
                uri = channel["DataSource"]["S3DataSource"]["S3Uri"]
                if not download_prefix(uri, root / "input" / "data" / channel["ChannelName"]):
                    raise JobFailed(
                        f"ClientError: channel {channel['ChannelName']}: no data at {uri}"
                    )
            lines: list[str] = []
            code = run_container(root, progress=lines.append)
            (root.parent / "training.log").write_text("\n".join(lines))
            if code != 0:
                reason = (root / "output" / "failure").read_text().splitlines()[0]
                raise JobFailed(reason)
            archive = root / "output" / "model.tar.gz"
            with tarfile.open(archive, "w:gz") as tar:
                tar.add(root / "model" / MODEL_FILE, arcname=MODEL_FILE)
            target = job.model_artifacts["S3ModelArtifacts"]
            bucket, key = _split(target)
            _s3().upload_file(str(archive), bucket, key)
            report = json.loads((root / "output" / METRICS_FILE).read_text())
            now = datetime.now(UTC)
            job.final_metric_data_list = [
                {"MetricName": metric, "Value": value, "Timestamp": now}
                for metric, value in report["final_metrics"].items()
            ]
            job.training_end_time = now
            job.secondary_status = job.training_job_status = "Completed"
            metrics = ", ".join(f"{k} {v:.3f}" for k, v in report["final_metrics"].items())
            self.feed.emit("sagemaker", f"training job {name} completed: {metrics}", job=name)
        except Exception as exc:
            self._fail(job, "training_job_status", exc)

    def _fail(self, job: Any, status_attribute: str, exc: Exception) -> None:
        reason = str(exc) if isinstance(exc, JobFailed) else f"AlgorithmError: {exc}"
        job.failure_reason = reason
        setattr(job, status_attribute, "Failed")
        if hasattr(job, "secondary_status"):
            job.secondary_status = "Failed"
        name = getattr(job, "training_job_name", None) or getattr(job, "processing_job_name", "")
        self.feed.emit("sagemaker", f"job {name} failed: {reason}", job=name)
        if not isinstance(exc, JobFailed):
            log = self.settings.workdir / "logs" / "sagemaker-jobs.log"
            with log.open("a") as out:
                out.write(f"{name}\n{traceback.format_exc()}\n")

    # processing -------------------------------------------------------------
    def run_processing_job(self, job: Any) -> None:
        name = job.processing_job_name
        self.feed.emit("sagemaker", f"processing job {name} started", job=name)
        root = self._workspace("processing", name)
        try:
            self._startup_delay()

            def local(container_path: str) -> Path:
                return root / container_path.lstrip("/")

            for item in job.processing_inputs or []:
                source = item["S3Input"]
                download_prefix(source["S3Uri"], local(source["LocalPath"]))
            self._run_processing_container(job, local)
            for output in job.processing_output_config.get("Outputs", []):
                target = output["S3Output"]
                folder = local(target["LocalPath"])
                if folder.exists():
                    upload_folder(folder, target["S3Uri"])
            job.processing_end_time = datetime.now(UTC)
            job.processing_job_status = "Completed"
            self.feed.emit("sagemaker", f"processing job {name} completed", job=name)
        except Exception as exc:
            self._fail(job, "processing_job_status", exc)

    def _run_processing_container(self, job: Any, local: Callable[[str], Path]) -> None:
        spec = job.app_specification
        image = spec.get("ImageUri", "")
        environment = getattr(job, "environment", None) or {}
        command = " ".join(
            [*spec.get("ContainerEntrypoint", []), *spec.get("ContainerArguments", [])]
        )
        if "sagemaker-scikit-learn" in image and "model.prepare" in command:
            self._run_script(job, "model.prepare", command, local)
        elif "sagemaker-xgboost" in image and "model.compare" in command:
            self._run_script(job, "model.compare", command, local)
        elif "sagemaker-model-monitor-analyzer" in image:
            self._run_analyzer(environment, local)
        else:
            raise JobFailed(f"ClientError: image {image} (command {command!r}) is not emulated")

    def _run_script(
        self, job: Any, module: str, command: str, local: Callable[[str], Path]
    ) -> None:
        """A processing script run as its container runs it: a process of its own, with the job's
        environment and the code the job was given (its ``/opt/ml`` paths mapped to the job's
        folder), its output in the job's CloudWatch log stream, and on failure what SageMaker
        says: a generic FailureReason, the script's own words only in ExitMessage and the log."""

        def mapped(value: str) -> str:
            return str(local(value)) if value.startswith("/opt/ml/") else value

        arguments = [mapped(word) for word in shlex.split(command.split(module, 1)[1])]
        message = local(str(EXIT_MESSAGE))
        environment = {
            **os.environ,
            **{k: mapped(str(v)) for k, v in (getattr(job, "environment", None) or {}).items()},
        }
        done = subprocess.run(
            [sys.executable, "-m", module, *arguments, "--message-file", str(message)],
            env=environment,
            capture_output=True,
            text=True,
            check=False,
        )

        def as_in_the_container(text: str) -> str:
            return text.replace(str(local("/")).rstrip("/"), "")

        name = job.processing_job_name
        stream = f"{name}/algo-1-{int(time.time())}"
        put_lines(
            self.settings, PROCESSING_JOBS, stream, as_in_the_container(done.stdout + done.stderr)
        )
        if message.exists():
            text = message.read_bytes()[:1024].decode(errors="replace")
            job.exit_message = as_in_the_container(text)
        if done.returncode != 0:
            raise JobFailed(f"AlgorithmError: {SEE_JOB_LOGS}")

    def _run_analyzer(self, environment: dict[str, str], local: Callable[[str], Path]) -> None:
        from model.baseline import baseline

        source = local(environment["dataset_source"])
        files = sorted(p for p in source.rglob("*.csv")) if source.is_dir() else [source]
        if not files:
            raise JobFailed(f"ClientError: no CSV dataset under {environment['dataset_source']}")
        baseline(files[0], local(environment.get("output_path", "/opt/ml/processing/output")))

    # endpoints ----------------------------------------------------------------
    def start_endpoint(self, endpoint: Any) -> None:
        name = endpoint.endpoint_name
        time.sleep(self.settings.scaled(ENDPOINT_STARTUP_SECONDS))
        try:
            config = self.backend.describe_endpoint_config(endpoint.endpoint_config_name)
            variant = config["ProductionVariants"][0]
            model = self.backend.describe_model(variant["ModelName"]).response_object
            container = model.get("PrimaryContainer") or (model.get("Containers") or [{}])[0]
            data_url = registry.model_data_url(self.backend, container)
            folder = self._workspace("endpoints", name)
            bucket, key = _split(data_url)
            _s3().download_file(bucket, key, str(folder / "model.tar.gz"))
            served = _Endpoint(
                name=name,
                variant=variant["VariantName"],
                model=FareModel.load(folder / "model.tar.gz"),
                capture=config.get("DataCaptureConfig") or {},
            )
        except Exception as exc:
            endpoint.endpoint_status = "Failed"
            endpoint.failure_reason = f"The model could not be loaded: {exc}"
            self.feed.emit("sagemaker", f"endpoint {name} failed: {exc}", endpoint=name)
            return
        with self._lock:
            self.endpoints[name] = served
        if self.backend.endpoints.get(name) is endpoint:
            endpoint.endpoint_status = "InService"
            self.feed.emit("sagemaker", f"endpoint {name} is InService", endpoint=name)

    def stop_endpoint(self, name: str) -> None:
        with self._lock:
            served = self.endpoints.pop(name, None)
        if served is not None:
            self.flush_capture(served)
            self.feed.emit("sagemaker", f"endpoint {name} deleted", endpoint=name)

    def invoke(
        self,
        name: str,
        body: bytes,
        content_type: str | None,
        accept: str | None,
        inference_id: str | None,
    ) -> tuple[bytes, str, str]:
        with self._lock:
            served = self.endpoints.get(name)
        if served is None:
            raise ValidationError(
                message=f"Endpoint {name} of account {self.settings.account} not found."
            )
        faults = self.faults.for_endpoint(name)
        started = time.perf_counter()
        dims = {"EndpointName": name, "VariantName": served.variant}
        if "errors" in faults:
            self.metrics.put("AWS/SageMaker", "Invocation5XXErrors", dims, 1, "Count")
            raise ModelError(
                "Received server error (500) from primary: the model container crashed"
            )
        try:
            answer, media = served.model.invoke(body, content_type, accept)
        except PayloadError as exc:
            self.metrics.put("AWS/SageMaker", "Invocation4XXErrors", dims, 1, "Count")
            raise ModelError(f"Received client error (400) from primary: {exc}", 400) from exc
        if "implausible" in faults:
            answer = b"\n".join(b"-999.0" for _ in answer.decode().splitlines()) + b"\n"
        latency_ms = (time.perf_counter() - started) * 1000
        self.metrics.put("AWS/SageMaker", "Invocations", dims, 1, "Count")
        self.metrics.put("AWS/SageMaker", "ModelLatency", dims, latency_ms * 1000, "Microseconds")
        if served.capture.get("EnableCapture") and "no-capture" not in faults:
            served.record(body, answer, content_type or "text/csv", media, inference_id)
            if served.due(self.settings.scaled(CAPTURE_FLUSH_SECONDS)):
                self.flush_capture(served)
        return answer, media, served.variant

    def flush_capture(self, served: _Endpoint) -> None:
        lines = served.take()
        if not lines:
            return
        bucket, prefix = _split(served.capture["DestinationS3Uri"])
        key = capture_key(prefix or CAPTURE_PREFIX, served.name, served.variant, datetime.now(UTC))
        _s3().put_object(Bucket=bucket, Key=key, Body=b"".join(lines))

    def flush_all(self) -> None:
        with self._lock:
            served = list(self.endpoints.values())
        for endpoint in served:
            self.flush_capture(endpoint)

    # monitoring ---------------------------------------------------------------
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
            self.flush_all()
            folder = self._workspace("monitoring", name)
            baseline = folder / "baseline"
            for resource, file in (
                ("ConstraintsResource", "constraints.json"),
                ("StatisticsResource", "statistics.json"),
            ):
                bucket, key = _split(definition["BaselineConfig"][resource]["S3Uri"])
                baseline.mkdir(exist_ok=True)
                _s3().download_file(bucket, key, str(baseline / file))
            capture_uri = None
            with self._lock:
                served = self.endpoints.get(endpoint)
            if served is not None:
                capture_uri = served.capture["DestinationS3Uri"]
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
                bucket, key = _split(f"{target}/{VIOLATIONS_FILE}")
                _s3().put_object(Bucket=bucket, Key=key, Body=keep)
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
        while not self._stop.wait(max(0.2, self.settings.scaled(CAPTURE_FLUSH_SECONDS) / 2)):
            self.flush_all()
            period = self.settings.scaled(MONITORING_PERIOD_SECONDS)
            with self._lock:
                due = [
                    n for n, s in self.schedules.items() if time.time() - s["_last_run"] >= period
                ]
            for name in due:
                self.run_schedule(name)

    def stop(self) -> None:
        self._stop.set()


@dataclass
class _Endpoint:
    name: str
    variant: str
    model: FareModel
    capture: dict[str, Any]
    _buffer: list[bytes] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _since: float = field(default_factory=time.monotonic)

    def record(
        self, body: bytes, answer: bytes, content_type: str, media: str, inference_id: str | None
    ) -> None:
        line = orjson.dumps(
            capture_record(
                body.decode("utf-8", errors="replace"),
                answer.decode(),
                inference_time=datetime.now(UTC),
                inference_id=inference_id,
                input_content_type=content_type,
                output_content_type=media,
            )
        )
        with self._lock:
            self._buffer.append(line + b"\n")

    def due(self, interval: float) -> bool:
        return time.monotonic() - self._since >= interval

    def take(self) -> list[bytes]:
        with self._lock:
            lines, self._buffer = self._buffer, []
            self._since = time.monotonic()
        return lines


_create_training_job = SageMakerModelBackend.create_training_job
_create_endpoint = SageMakerModelBackend.create_endpoint
_delete_endpoint = SageMakerModelBackend.delete_endpoint


def install(emulator: SageMakerEmulator) -> None:
    """Route moto's SageMaker to ``emulator`` (installing again replaces the previous one)."""

    def training(self: Any, training_job_name: str, *args: Any, **kwargs: Any) -> Any:
        if training_job_name in self.training_jobs:
            raise ValidationError(
                message=f"Training job names must be unique: {training_job_name} exists."
            )
        job = _create_training_job(self, training_job_name, *args, **kwargs)
        job.training_job_status = job.secondary_status = "InProgress"
        job.final_metric_data_list = []
        emulator._start(lambda: emulator.run_training_job(job))
        return job

    def processing(response: Any) -> Any:
        name = response._get_param("ProcessingJobName")
        if name in response.sagemaker_backend.processing_jobs:
            raise ValidationError(message=f"Processing job names must be unique: {name} exists.")
        job = response.sagemaker_backend.create_processing_job(
            app_specification=response._get_param("AppSpecification"),
            experiment_config=response._get_param("ExperimentConfig"),
            network_config=response._get_param("NetworkConfig"),
            processing_inputs=response._get_param("ProcessingInputs"),
            processing_job_name=name,
            processing_output_config=response._get_param("ProcessingOutputConfig"),
            role_arn=response._get_param("RoleArn"),
            stopping_condition=response._get_param("StoppingCondition"),
            tags=response._get_param("Tags"),
        )
        job.environment = response._get_param("Environment") or {}
        job.processing_job_status = "InProgress"
        emulator._start(lambda: emulator.run_processing_job(job))
        return ActionResult({"ProcessingJobArn": job.arn})

    def endpoint(self: Any, endpoint_name: str, endpoint_config_name: str, tags: Any) -> Any:
        if endpoint_name in self.endpoints:
            raise ValidationError(
                message=f"Cannot create already existing endpoint {endpoint_name}."
            )
        created = _create_endpoint(self, endpoint_name, endpoint_config_name, tags)
        created.endpoint_status = "Creating"
        emulator._start(lambda: emulator.start_endpoint(created))
        return created

    def delete(self: Any, endpoint_name: str) -> None:
        _delete_endpoint(self, endpoint_name)
        emulator.stop_endpoint(endpoint_name)

    def invoke_endpoint(response: Any) -> Any:
        name = response.path.split("/")[2]
        headers = response.headers
        body, media, variant = emulator.invoke(
            name,
            response.raw_body or b"",
            headers.get("Content-Type"),
            headers.get("Accept"),
            headers.get("X-Amzn-SageMaker-Inference-Id"),
        )
        return 200, {"Content-Type": media, "x-Amzn-Invoked-Production-Variant": variant}, body

    def create_monitoring_schedule(response: Any) -> Any:
        arn = emulator.create_schedule(
            response._get_param("MonitoringScheduleName"),
            response._get_param("MonitoringScheduleConfig"),
        )
        return ActionResult({"MonitoringScheduleArn": arn})

    def describe_monitoring_schedule(response: Any) -> Any:
        return ActionResult(
            emulator.describe_schedule(response._get_param("MonitoringScheduleName"))
        )

    def delete_monitoring_schedule(response: Any) -> Any:
        emulator.delete_schedule(response._get_param("MonitoringScheduleName"))
        return EmptyResult()

    def list_monitoring_schedules(response: Any) -> Any:
        endpoint_name = response._get_param("EndpointName")
        with emulator._lock:
            names = list(emulator.schedules)
        summaries = []
        for name in names:
            described = emulator.describe_schedule(name)
            if endpoint_name and described["EndpointName"] != endpoint_name:
                continue
            summaries.append(
                {
                    k: described[k]
                    for k in (
                        "MonitoringScheduleName",
                        "MonitoringScheduleArn",
                        "CreationTime",
                        "LastModifiedTime",
                        "MonitoringScheduleStatus",
                        "EndpointName",
                        "MonitoringType",
                    )
                }
            )
        return ActionResult({"MonitoringScheduleSummaries": summaries})

    def list_monitoring_executions(response: Any) -> Any:
        name = response._get_param("MonitoringScheduleName")
        with emulator._lock:
            runs = [
                dict(r)
                for s, rs in emulator.executions.items()
                if not name or s == name
                for r in rs
            ]
        runs.sort(key=lambda r: r["ScheduledTime"], reverse=True)
        return ActionResult({"MonitoringExecutionSummaries": runs})

    replace(SageMakerModelBackend, "create_training_job", training)
    replace(SageMakerModelBackend, "create_endpoint", endpoint)
    replace(SageMakerModelBackend, "delete_endpoint", delete)
    replace(SageMakerResponse, "create_processing_job", processing)
    replace(SageMakerResponse, "create_monitoring_schedule", create_monitoring_schedule)
    replace(SageMakerResponse, "describe_monitoring_schedule", describe_monitoring_schedule)
    replace(SageMakerResponse, "delete_monitoring_schedule", delete_monitoring_schedule)
    replace(SageMakerResponse, "list_monitoring_schedules", list_monitoring_schedules)
    replace(SageMakerResponse, "list_monitoring_executions", list_monitoring_executions)
    replace(SageMakerRuntimeResponse, "invoke_endpoint", invoke_endpoint)
