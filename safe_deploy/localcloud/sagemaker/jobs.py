"""SageMaker jobs for the local cloud: each runs the project's ``model/`` code under an
``/opt/ml``-style folder of its own.

moto records jobs but runs nothing (they are Completed at once with nothing written). Here:

- training jobs run ``model.train`` with the job's channels and hyperparameters, upload
  ``model.tar.gz`` and report ``FinalMetricDataList``; a job with ``InstanceCount`` N > 1 runs N
  worker processes, hosts ``algo-1`` … ``algo-N`` (see ``JobRunner.run_training_job``);
- processing jobs run by image: the scikit-learn image with ``model.prepare`` (PrepareData), the
  XGBoost image with ``model.compare`` (Compare), the Model Monitor analyzer with
  ``model.baseline`` (baselining); a PrepareData job with ``InstanceCount`` N > 1 runs
  ``model.prepare`` on N hosts, each on its share of the input
  (``JobRunner._run_processing_hosts``).

A failed job reports what SageMaker reports: a FailureReason and, for a processing script, its
ExitMessage and CloudWatch log stream.
"""

from __future__ import annotations

import json
import os
import queue
import shlex
import socket
import subprocess
import sys
import tarfile
import threading
import time
import traceback
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from model.errors import EXIT_MESSAGE
from safe_deploy.localcloud.logs import PROCESSING_JOBS, put_lines
from safe_deploy.localcloud.sagemaker.utils import (
    download_objects,
    download_prefix,
    list_objects,
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
# Where a processing container finds its hosts: ``current_host`` and ``hosts``.
RESOURCE_CONFIG = "/opt/ml/config/resourceconfig.json"


STOPPED = "the local cloud stopped while the job ran"


class JobFailed(Exception):
    """The job's own failure; the message becomes its FailureReason."""


@dataclass
class JobRunner:
    """Runs the jobs moto records, each to Completed or Failed on the job's own record."""

    settings: LocalSettings
    feed: ActivityFeed
    timeline: Recorder = field(default_factory=Recorder)
    stopping: threading.Event = field(default_factory=threading.Event)
    _processes: set[subprocess.Popen[Any]] = field(default_factory=set)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def stop(self) -> None:
        """End every job now: a job still starting fails, and the processes of those running
        are killed (their jobs fail as the cloud stopped)."""
        self.stopping.set()
        with self._lock:
            running = list(self._processes)
        for process in running:
            if process.poll() is None:
                process.kill()

    @contextmanager
    def _process(self, command: list[str], **options: Any) -> Iterator[subprocess.Popen[Any]]:
        """A job's process, which :meth:`stop` kills; it is waited for when the block ends."""
        with self._lock:
            if self.stopping.is_set():
                raise JobFailed(f"InternalServerError: {STOPPED}")
            process = subprocess.Popen(command, **options)
            self._processes.add(process)
        try:
            yield process
        finally:
            if process.poll() is None:
                process.kill()
            process.wait()
            with self._lock:
                self._processes.discard(process)
        if self.stopping.is_set():
            raise JobFailed(f"InternalServerError: {STOPPED}")

    @contextmanager
    def _started(self, name: str) -> Iterator[None]:
        """The job's start-up, an emulated wait (its AWS time in the timeline), then its run: the
        job's own code, as long as it takes."""
        startup = self.settings.scaled(JOB_STARTUP_SECONDS)
        with self.timeline.span(
            JOB_STARTUP, name, Kind.WAIT, projected=aws_seconds(JOB_STARTUP), expected=startup
        ):
            if self.stopping.wait(startup):
                raise JobFailed(f"InternalServerError: {STOPPED}")
        with self.timeline.span(JOB_RUN, name, Kind.WORK):
            yield

    # training ---------------------------------------------------------------
    def run_training_job(self, job: Any) -> None:
        """One host runs ``model.train`` in this process; N > 1 hosts (``InstanceCount``) run as
        N processes joined by XGBoost's collective (``_run_cluster``). Either way the first
        host's model and metrics are the job's."""
        from model.train import METRICS_FILE, MODEL_FILE, run_container

        name = job.training_job_name
        self.feed.emit("sagemaker", f"training job {name} started", job=name)
        folder = workspace(self.settings, "training", name)
        root = folder / "opt" / "ml"
        instances = int((job.resource_config or {}).get("InstanceCount", 1))
        try:
            with self._started(name):
                if instances > 1:
                    root = self._run_cluster(job, folder, instances)
                else:
                    config = root / "input" / "config"
                    config.mkdir(parents=True)
                    hyperparameters = json.dumps(job.hyper_parameters or {})
                    (config / "hyperparameters.json").write_text(hyperparameters)
                    for channel in job.input_data_config:
                        uri = channel["DataSource"]["S3DataSource"]["S3Uri"]
                        data = root / "input" / "data" / channel["ChannelName"]
                        if not download_prefix(uri, data):
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

    def _run_cluster(self, job: Any, folder: Path, instances: int) -> Path:
        """The job on hosts ``algo-1`` … ``algo-N``: each a ``python -m model.train`` process
        with an ``/opt/ml`` root of its own (``<folder>/<host>/opt/ml``) holding
        ``resourceconfig.json``, the hyperparameters and its channels. A ``FullyReplicated``
        channel is copied whole to every host; a ``ShardedByS3Key`` channel's objects, in key
        order, are dealt round-robin (object i to host i mod N), and a channel that would leave a
        host without an object fails the job before any host starts. The first host runs the
        collective's tracker, at the address every host finds in ``DMLC_TRACKER_URI`` /
        ``DMLC_TRACKER_PORT``; each host gets its share of the cores (``OMP_NUM_THREADS``), as
        each SageMaker host has its own. The job waits for every host and fails with the first
        failed host's reason (the others are then stopped: on SageMaker a failed host fails the
        job). Returns the first host's root, which holds the model and metrics."""
        hosts = [f"algo-{index}" for index in range(1, instances + 1)]
        roots = {host: folder / host / "opt" / "ml" for host in hosts}
        for host, root in roots.items():
            config = root / "input" / "config"
            config.mkdir(parents=True)
            (config / "hyperparameters.json").write_text(json.dumps(job.hyper_parameters or {}))
            resources = {"current_host": host, "hosts": hosts, "network_interface_name": "eth0"}
            (config / "resourceconfig.json").write_text(json.dumps(resources))
        for channel in job.input_data_config:
            source = channel["DataSource"]["S3DataSource"]
            channel_name, uri = channel["ChannelName"], source["S3Uri"]
            keys = list_objects(uri)
            if not keys:
                raise JobFailed(f"ClientError: channel {channel_name}: no data at {uri}")
            sharded = source.get("S3DataDistributionType") == "ShardedByS3Key"
            if sharded and len(keys) < instances:
                raise JobFailed(
                    f"ClientError: channel {channel_name}: ShardedByS3Key deals the"
                    f" {len(keys)} object(s) at {uri} to {instances} instances, so"
                    f" {', '.join(hosts[len(keys) :])} would get no data; use at most"
                    f" {len(keys)} instances or more objects"
                )
            shards = deal(keys, instances, source.get("S3DataDistributionType"))
            for host, shard in zip(hosts, shards, strict=True):
                download_objects(uri, shard, roots[host] / "input" / "data" / channel_name)
        failed = self._run_hosts(roots)
        if failed is not None:
            host, code = failed
            failure = roots[host] / "output" / "failure"
            lines = failure.read_text().splitlines() if failure.exists() else []
            reason = lines[0] if lines else f"AlgorithmError: exit code {code}"
            raise JobFailed(f"{reason} (on {host})")
        return roots[hosts[0]]

    def _run_hosts(self, roots: dict[str, Path]) -> tuple[str, int] | None:
        """Each host's worker process until all have exited; the first to fail and its exit
        code, or None. The first failure stops the other hosts: they would wait on it."""
        environment = {
            **os.environ,
            "DMLC_TRACKER_URI": "127.0.0.1",
            "DMLC_TRACKER_PORT": str(_free_port()),
            "OMP_NUM_THREADS": str(max(1, (os.cpu_count() or 1) // len(roots))),
        }
        exited: queue.Queue[tuple[str, int]] = queue.Queue()
        workers: dict[str, subprocess.Popen[bytes]] = {}
        with ExitStack() as running:
            for host, root in roots.items():
                with (root.parent / "training.log").open("wb") as log:
                    workers[host] = running.enter_context(
                        self._process(
                            [sys.executable, "-m", "model.train", "--root", str(root)],
                            env=environment,
                            stdout=log,
                            stderr=subprocess.STDOUT,
                        )
                    )
                threading.Thread(
                    target=lambda h=host, w=workers[host]: exited.put((h, w.wait())),
                    name=f"training-{host}",
                    daemon=True,
                ).start()
            failed = None
            for _ in workers:
                host, code = exited.get()
                if code != 0 and failed is None:
                    failed = (host, code)
                    for other in workers.values():
                        if other.poll() is None:
                            other.kill()
            return failed

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
        """The job's container on one host in a folder of its own; with ``InstanceCount`` N > 1
        (``ProcessingResources.ClusterConfig``), on N hosts (``_run_processing_hosts``)."""
        name = job.processing_job_name
        self.feed.emit("sagemaker", f"processing job {name} started", job=name)
        root = workspace(self.settings, "processing", name)
        cluster = (getattr(job, "processing_resources", None) or {}).get("ClusterConfig", {})
        instances = int(cluster.get("InstanceCount", 1))
        try:
            with self._started(name):
                if instances > 1:
                    locals_ = self._run_processing_hosts(job, root, instances)
                else:
                    local = _mapped_under(root)
                    for item in job.processing_inputs or []:
                        source = item["S3Input"]
                        download_prefix(source["S3Uri"], local(source["LocalPath"]))
                    self._run_processing_container(job, local)
                    locals_ = [local]
                for local in locals_:
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

    def _run_processing_hosts(
        self, job: Any, folder: Path, instances: int
    ) -> list[Callable[[str], Path]]:
        """The job on hosts ``algo-1`` … ``algo-N``, each with a root of its own
        (``<folder>/<host>``, where its ``/opt/ml`` paths are) holding
        ``/opt/ml/config/resourceconfig.json``. A ``ShardedByS3Key`` input's objects, in key
        order, are dealt round-robin (object i to host i mod N), as for a training channel; a
        host dealt none gets an empty folder, as on SageMaker. A ``FullyReplicated`` input is
        copied whole to every host. The hosts run at once; the job waits for all of them and
        fails if any does, with that host's ExitMessage. Only PrepareData's ``model.prepare``
        is written to run on several hosts; another script there is refused. Returns each
        host's path mapping, for the uploads."""
        spec = job.app_specification
        command = " ".join(
            [*spec.get("ContainerEntrypoint", []), *spec.get("ContainerArguments", [])]
        )
        if not (
            "sagemaker-scikit-learn" in spec.get("ImageUri", "") and "model.prepare" in command
        ):
            raise JobFailed(
                f"ClientError: InstanceCount {instances} is emulated for model.prepare only,"
                f" not {command!r}"
            )
        hosts = [f"algo-{index}" for index in range(1, instances + 1)]
        locals_ = {host: _mapped_under(folder / host) for host in hosts}
        for host, local in locals_.items():
            config = local(RESOURCE_CONFIG)
            config.parent.mkdir(parents=True)
            config.write_text(json.dumps({"current_host": host, "hosts": hosts}))
        for item in job.processing_inputs or []:
            source = item["S3Input"]
            keys = list_objects(source["S3Uri"])
            shards = deal(keys, instances, source.get("S3DataDistributionType"))
            for host, shard in zip(hosts, shards, strict=True):
                target = locals_[host](source["LocalPath"])
                target.mkdir(parents=True, exist_ok=True)
                download_objects(source["S3Uri"], shard, target)

        def run(host: str) -> JobFailed | None:
            local = locals_[host]
            extra = ["--resource-config", str(local(RESOURCE_CONFIG))]
            try:
                self.run_script(job, "model.prepare", command, local, host=host, extra=extra)
            except JobFailed as exc:
                return exc
            return None

        prefix = f"{job.processing_job_name}-"
        with ThreadPoolExecutor(instances, thread_name_prefix=prefix) as pool:
            outcomes = dict(zip(hosts, pool.map(run, hosts), strict=True))
        failed = [(host, exc) for host, exc in outcomes.items() if exc is not None]
        if failed:
            host, exc = failed[0]
            # The hosts ran at once: the ExitMessage is the first failed host's, whichever
            # finished last.
            message = locals_[host](str(EXIT_MESSAGE))
            if message.exists():
                text = message.read_bytes()[:1024].decode(errors="replace")
                job.exit_message = text.replace(str(folder / host), "")
            raise exc
        return list(locals_.values())

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

    def run_script(
        self,
        job: Any,
        module: str,
        command: str,
        local: Callable[[str], Path],
        host: str = "algo-1",
        extra: Sequence[str] = (),
    ) -> None:
        """A processing script run as its container runs it: a process of its own, with the job's
        environment and the code the job was given (its ``/opt/ml`` paths mapped to the job's
        folder), its output in the host's CloudWatch log stream, and on failure what SageMaker
        says: a generic FailureReason, the script's own words only in ExitMessage and the log.
        ``extra`` arguments stand for what the container finds without being told (its
        ``resourceconfig.json``) at the paths the local cloud put them."""

        def mapped(value: str) -> str:
            return str(local(value)) if value.startswith("/opt/ml/") else value

        arguments = [mapped(word) for word in shlex.split(command.split(module, 1)[1])]
        message = local(str(EXIT_MESSAGE))
        environment = {
            **os.environ,
            **{k: mapped(str(v)) for k, v in (getattr(job, "environment", None) or {}).items()},
        }
        with self._process(
            [sys.executable, "-m", module, *arguments, *extra, "--message-file", str(message)],
            env=environment,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        ) as process:
            stdout, stderr = process.communicate()

        def as_in_the_container(text: str) -> str:
            return text.replace(str(local("/")).rstrip("/"), "")

        name = job.processing_job_name
        stream = f"{name}/{host}-{int(time.time())}"
        put_lines(self.settings, PROCESSING_JOBS, stream, as_in_the_container(stdout + stderr))
        if message.exists():
            text = message.read_bytes()[:1024].decode(errors="replace")
            job.exit_message = as_in_the_container(text)
        if process.returncode != 0:
            raise JobFailed(f"AlgorithmError: {SEE_JOB_LOGS}")

    def _run_analyzer(self, environment: dict[str, str], local: Callable[[str], Path]) -> None:
        from model.baseline import baseline

        # Every CSV under the dataset, as the analyzer reads every object of its input prefix:
        # baseline.csv, or the baseline/<host>.csv of a PrepareData job on several instances.
        source = local(environment["dataset_source"])
        files = sorted(p for p in source.rglob("*.csv")) if source.is_dir() else [source]
        if not files:
            raise JobFailed(f"ClientError: no CSV dataset under {environment['dataset_source']}")
        baseline(files, local(environment.get("output_path", "/opt/ml/processing/output")))


def deal(keys: list[str], instances: int, distribution: str | None) -> list[list[str]]:
    """Each host's objects of an input: ``ShardedByS3Key`` deals them in key order, object i to
    host i mod N (AWS documents only "about 1/N" each); ``FullyReplicated`` gives all to every
    host."""
    if distribution == "ShardedByS3Key":
        return [keys[index::instances] for index in range(instances)]
    return [keys] * instances


def _mapped_under(root: Path) -> Callable[[str], Path]:
    """Where a container path (``/opt/ml/...``) is in a host's folder."""

    def local(container_path: str) -> Path:
        return root / container_path.lstrip("/")

    return local


def _free_port() -> int:
    """A TCP port on the loopback interface that nothing listens on now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port
