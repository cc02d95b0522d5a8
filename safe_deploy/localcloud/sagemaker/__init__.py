"""SageMaker for the local cloud: jobs that run the project's model code (``jobs``), endpoints
that serve the trained model and write data capture (``endpoints``), and Model Monitor schedules
(``monitoring``), held together by ``SageMakerEmulator`` (``emulator``) behind moto's SageMaker API
(``wiring``)."""

from safe_deploy.localcloud.sagemaker.emulator import SageMakerEmulator
from safe_deploy.localcloud.sagemaker.endpoints import (
    CAPTURE_FLUSH_SECONDS,
    ENDPOINT_STARTUP_SECONDS,
    ModelError,
)
from safe_deploy.localcloud.sagemaker.jobs import JOB_STARTUP_SECONDS, SEE_JOB_LOGS, JobFailed
from safe_deploy.localcloud.sagemaker.monitoring import MONITORING_PERIOD_SECONDS
from safe_deploy.localcloud.sagemaker.utils import download_prefix, upload_folder
from safe_deploy.localcloud.sagemaker.wiring import install

__all__ = [
    "CAPTURE_FLUSH_SECONDS",
    "ENDPOINT_STARTUP_SECONDS",
    "JOB_STARTUP_SECONDS",
    "MONITORING_PERIOD_SECONDS",
    "SEE_JOB_LOGS",
    "JobFailed",
    "ModelError",
    "SageMakerEmulator",
    "download_prefix",
    "install",
    "upload_folder",
]
