"""Stopping the local cloud ends SageMaker's work with it: a job's process is killed and its job
fails saying why, and the thread that ran it is gone before ``stop`` returns. A thread left behind
would go on calling S3 after the cloud's environment was restored, that is AWS itself."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from types import SimpleNamespace

from safe_deploy.localcloud.metrics import MetricStore
from safe_deploy.localcloud.sagemaker.emulator import SageMakerEmulator
from safe_deploy.localcloud.sagemaker.jobs import STOPPED
from safe_deploy.localcloud.state import ActivityFeed, Faults, LocalSettings
from tests.support import REPO

JOB = "fare-1-prepare"


def hanging_prepare_job(tmp_path: Path) -> SimpleNamespace:
    """PrepareData's container whose interpreter hangs as it starts (a ``sitecustomize`` on its
    path sleeps), so that the job is certainly running when the cloud stops."""
    hang = tmp_path / "hang"
    hang.mkdir()
    (hang / "sitecustomize.py").write_text("import time\ntime.sleep(600)\n")
    return SimpleNamespace(
        processing_job_name=JOB,
        app_specification={
            "ImageUri": "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-scikit-learn:1.2-1",
            "ContainerEntrypoint": ["python3", "-m", "model.prepare"],
        },
        environment={"PYTHONPATH": str(hang)},
        processing_inputs=[],
        processing_output_config={"Outputs": []},
        processing_resources={},
        processing_job_status="InProgress",
    )


def test_stop_kills_a_running_job_and_waits_for_its_thread(tmp_path: Path) -> None:
    settings = LocalSettings(REPO, tmp_path / "work", time_scale=0)
    (settings.workdir / "logs").mkdir(parents=True)
    feed = ActivityFeed()
    emulator = SageMakerEmulator(settings, feed, MetricStore(), Faults())
    job = hanging_prepare_job(tmp_path)
    processes = emulator.jobs._processes

    emulator.background(JOB, lambda: emulator.jobs.run_processing_job(job))
    deadline = time.monotonic() + 30
    while not processes:
        assert time.monotonic() < deadline, "the job's process did not start"
        time.sleep(0.05)
    (process,) = list(processes)

    started = time.monotonic()
    emulator.stop(timeout=30)

    assert time.monotonic() - started < 20  # the process was killed, not waited out
    assert process.poll() is not None
    assert not [t for t in threading.enumerate() if t.name == JOB and t.is_alive()]
    assert job.processing_job_status == "Failed"
    assert STOPPED in job.failure_reason
    assert feed.find("sagemaker", STOPPED)


def test_a_job_asked_for_after_stop_fails_without_running(tmp_path: Path) -> None:
    settings = LocalSettings(REPO, tmp_path / "work", time_scale=0)
    (settings.workdir / "logs").mkdir(parents=True)
    emulator = SageMakerEmulator(settings, ActivityFeed(), MetricStore(), Faults())
    emulator.stop()
    job = hanging_prepare_job(tmp_path)

    emulator.background(JOB, lambda: emulator.jobs.run_processing_job(job))
    emulator.stop(timeout=10)

    assert job.processing_job_status == "Failed"
    assert STOPPED in job.failure_reason
    assert not emulator.jobs._processes


def test_stop_ends_sagemakers_clock_and_the_endpoints_still_starting(tmp_path: Path) -> None:
    settings = LocalSettings(REPO, tmp_path / "work", time_scale=1.0)  # AWS's own minutes
    (settings.workdir / "logs").mkdir(parents=True)
    emulator = SageMakerEmulator(settings, ActivityFeed(), MetricStore(), Faults())
    clock = threading.Thread(target=emulator.scheduler, name="sagemaker-clock")
    clock.start()
    endpoint = SimpleNamespace(endpoint_name="fare-1-prod", endpoint_config_name="fare-1-prod")
    emulator.background("fare-1-prod", lambda: emulator.endpoints.start_endpoint(endpoint))
    time.sleep(0.2)

    started = time.monotonic()
    emulator.stop(timeout=10)
    clock.join(5)

    assert time.monotonic() - started < 5, "stop waited out a wait it should have ended"
    assert not clock.is_alive()
    assert not [t for t in threading.enumerate() if t.name == "fare-1-prod" and t.is_alive()]
    assert "fare-1-prod" not in emulator.endpoints.served, "an endpoint served after the stop"
