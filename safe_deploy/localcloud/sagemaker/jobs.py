"""SageMaker jobs for the local cloud: each runs the project's ``model/`` code under an
``/opt/ml``-style folder of its own.

moto records jobs but runs nothing (they are Completed at once with nothing written). Here:

- training jobs run ``model.train`` with the job's channels and hyperparameters, upload
  ``model.tar.gz`` and report ``FinalMetricDataList``;
- processing jobs run by image: the scikit-learn image with ``model.prepare`` (PrepareData), the
  XGBoost image with ``model.compare`` (Compare), the Model Monitor analyzer with
  ``model.baseline`` (baselining).

A failed job reports what SageMaker reports: a FailureReason and, for a processing script, its
ExitMessage and CloudWatch log stream.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
import tarfile
import time
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from model.errors import EXIT_MESSAGE
from safe_deploy.localcloud.logs import PROCESSING_JOBS, put_lines
from safe_deploy.localcloud.sagemaker.utils import (
    download_prefix,
    s3_client,
    split_uri,
    upload_folder,
    workspace,
)
from safe_deploy.localcloud.state import ActivityFeed, LocalSettings
from safe_deploy.localcloud.timeline import Kind, Recorder, aws_seconds
from safe_deploy.localcloud.timeline.durations import JOB_RUN, JOB_STARTUP

JOB_STARTUP_SECONDS = 60.0
# A processing job whose container exits non-zero fails with these words; the container's own
# reason is in its ExitMessage (/opt/ml/output/message) and its CloudWatch log stream.
SEE_JOB_LOGS = "See job logs for more information"


class JobFailed(Exception):
    """The job's own failure; the message becomes its FailureReason."""


@dataclass
class JobRunner:
    """Runs the jobs moto records, each to Completed or Failed on the job's own record."""

    settings: LocalSettings
    feed: ActivityFeed
    timeline: Recorder = field(default_factory=Recorder)

    @contextmanager
    def _started(self, name: str) -> Iterator[None]:
        """The job's start-up, an emulated wait (its AWS time in the timeline), then its run: the
        job's own code, as long as it takes."""
        startup = self.settings.scaled(JOB_STARTUP_SECONDS)
        with self.timeline.span(
            JOB_STARTUP, name, Kind.WAIT, projected=aws_seconds(JOB_STARTUP), expected=startup
        ):
            time.sleep(startup)
        with self.timeline.span(JOB_RUN, name, Kind.WORK):
            yield

    # training ---------------------------------------------------------------
    def run_training_job(self, job: Any) -> None:
        from model.train import METRICS_FILE, MODEL_FILE, run_container

        name = job.training_job_name
        self.feed.emit("sagemaker", f"training job {name} started", job=name)
        root = workspace(self.settings, "training", name) / "opt" / "ml"
        try:
            with self._started(name):
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
                bucket, key = split_uri(target)
                s3_client().upload_file(str(archive), bucket, key)
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
        root = workspace(self.settings, "processing", name)
        try:
            with self._started(name):

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
            self.run_script(job, "model.prepare", command, local)
        elif "sagemaker-xgboost" in image and "model.compare" in command:
            self.run_script(job, "model.compare", command, local)
        elif "sagemaker-model-monitor-analyzer" in image:
            self._run_analyzer(environment, local)
        else:
            raise JobFailed(f"ClientError: image {image} (command {command!r}) is not emulated")

    def run_script(self, job: Any, module: str, command: str, local: Callable[[str], Path]) -> None:
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
