"""SageMaker's API in the local cloud: moto's request parsing and response serialization, with
job, endpoint and monitoring-schedule calls handed to :class:`SageMakerEmulator`, and a job or
endpoint name that exists refused as SageMaker refuses it."""

from __future__ import annotations

from typing import Any

from moto.core.responses import ActionResult, EmptyResult
from moto.sagemaker.exceptions import ValidationError
from moto.sagemaker.models import SageMakerModelBackend
from moto.sagemaker.responses import SageMakerResponse
from moto.sagemakerruntime.responses import SageMakerRuntimeResponse

from safe_deploy.localcloud.patching import replace
from safe_deploy.localcloud.sagemaker.emulator import SageMakerEmulator

_create_training_job = SageMakerModelBackend.create_training_job
_create_endpoint = SageMakerModelBackend.create_endpoint
_delete_endpoint = SageMakerModelBackend.delete_endpoint


def install(emulator: SageMakerEmulator) -> None:
    """Route moto's SageMaker to ``emulator`` (installing again replaces the previous one)."""
    jobs, endpoints, monitoring = emulator.jobs, emulator.endpoints, emulator.monitoring

    def training(self: Any, training_job_name: str, *args: Any, **kwargs: Any) -> Any:
        if training_job_name in self.training_jobs:
            raise ValidationError(
                message=f"Training job names must be unique: {training_job_name} exists."
            )
        job = _create_training_job(self, training_job_name, *args, **kwargs)
        job.training_job_status = job.secondary_status = "InProgress"
        job.final_metric_data_list = []
        emulator.background(training_job_name, lambda: jobs.run_training_job(job))
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
        # moto drops ProcessingResources; the job runner reads ClusterConfig.InstanceCount.
        job.processing_resources = response._get_param("ProcessingResources") or {}
        job.processing_job_status = "InProgress"
        emulator.background(name, lambda: jobs.run_processing_job(job))
        return ActionResult({"ProcessingJobArn": job.arn})

    def endpoint(self: Any, endpoint_name: str, endpoint_config_name: str, tags: Any) -> Any:
        if endpoint_name in self.endpoints:
            raise ValidationError(
                message=f"Cannot create already existing endpoint {endpoint_name}."
            )
        created = _create_endpoint(self, endpoint_name, endpoint_config_name, tags)
        created.endpoint_status = "Creating"
        emulator.background(endpoint_name, lambda: endpoints.start_endpoint(created))
        return created

    def delete(self: Any, endpoint_name: str) -> None:
        _delete_endpoint(self, endpoint_name)
        endpoints.stop_endpoint(endpoint_name)

    def invoke_endpoint(response: Any) -> Any:
        name = response.path.split("/")[2]
        headers = response.headers
        body, media, variant = endpoints.invoke(
            name,
            response.raw_body or b"",
            headers.get("Content-Type"),
            headers.get("Accept"),
            headers.get("X-Amzn-SageMaker-Inference-Id"),
        )
        return 200, {"Content-Type": media, "x-Amzn-Invoked-Production-Variant": variant}, body

    def create_monitoring_schedule(response: Any) -> Any:
        arn = monitoring.create_schedule(
            response._get_param("MonitoringScheduleName"),
            response._get_param("MonitoringScheduleConfig"),
        )
        return ActionResult({"MonitoringScheduleArn": arn})

    def describe_monitoring_schedule(response: Any) -> Any:
        return ActionResult(
            monitoring.describe_schedule(response._get_param("MonitoringScheduleName"))
        )

    def delete_monitoring_schedule(response: Any) -> Any:
        monitoring.delete_schedule(response._get_param("MonitoringScheduleName"))
        return EmptyResult()

    def list_monitoring_schedules(response: Any) -> Any:
        summaries = monitoring.schedule_summaries(response._get_param("EndpointName"))
        return ActionResult({"MonitoringScheduleSummaries": summaries})

    def list_monitoring_executions(response: Any) -> Any:
        runs = monitoring.execution_summaries(response._get_param("MonitoringScheduleName"))
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
