"""Step Functions for the local cloud: moto's interpreter runs the project's ASL files unchanged.

Three additions make it behave like AWS for this pipeline: service integrations map parameters and
results between ASL's PascalCase and the SDK (moto leaves that out, which breaks
``states:startExecution`` and camel-case APIs such as CodeDeploy); SageMaker gets the optimised
integration including ``.sync`` jobs; and every Wait, Retry interval and task timeout is scaled by
the local cloud's one time setting (each Wait state also goes into its projected AWS timeline).
"""

from __future__ import annotations

import datetime
import time
import types
from collections.abc import Callable
from functools import cache
from typing import Any

from botocore import xform_name
from botocore.exceptions import ClientError
from botocore.response import StreamingBody
from botocore.session import get_session
from moto.stepfunctions.parser.api import HistoryEventType, TaskFailedEventDetails
from moto.stepfunctions.parser.asl.component.common.error_name.custom_error_name import (
    CustomErrorName,
)
from moto.stepfunctions.parser.asl.component.common.error_name.failure_event import (
    FailureEvent,
    FailureEventException,
)
from moto.stepfunctions.parser.asl.component.common.error_name.states_error_name import (
    StatesErrorName,
)
from moto.stepfunctions.parser.asl.component.common.error_name.states_error_name_type import (
    StatesErrorNameType,
)
from moto.stepfunctions.parser.asl.component.common.retry import retrier_decl
from moto.stepfunctions.parser.asl.component.common.timeouts.timeout import Timeout
from moto.stepfunctions.parser.asl.component.state.exec.state_task import state_task_factory
from moto.stepfunctions.parser.asl.component.state.exec.state_task.service import (
    state_task_service as _service,
)
from moto.stepfunctions.parser.asl.component.state.exec.state_task.service import (
    state_task_service_aws_sdk,
    state_task_service_callback,
    state_task_service_factory,
)
from moto.stepfunctions.parser.asl.component.state.exec.state_task.service import (
    state_task_service_callback as _callback,
)
from moto.stepfunctions.parser.asl.component.state.exec.state_task.service.resource import (
    ResourceCondition,
)
from moto.stepfunctions.parser.asl.component.state.wait.wait_function.wait_function import (
    WaitFunction,
)
from moto.stepfunctions.parser.asl.eval.event.event_detail import EventDetails
from moto.stepfunctions.parser.asl.utils import boto_client
from moto.stepfunctions.parser.asl.utils.boto_client import boto_client_for
from moto.stepfunctions.parser.asl.utils.encoding import to_json_str

from safe_deploy.clients import ClientCache
from safe_deploy.localcloud.patching import replace
from safe_deploy.localcloud.timeline import Kind, Recorder
from safe_deploy.localcloud.timeline.durations import WAIT_STATE

StateTaskService = _service.StateTaskService

_SESSION = get_session()

# Error-name prefixes of aws-sdk integrations, as AWS spells them.
AWS_SDK_ERROR_PREFIXES = {
    "lambda": "Lambda",
    "sagemaker": "SageMaker",
    "s3": "S3",
    "ssm": "Ssm",
    "sns": "Sns",
    "sqs": "Sqs",
    "codedeploy": "CodeDeploy",
    "sfn": "Sfn",
    "dynamodb": "DynamoDb",
    "eventbridge": "EventBridge",
    "cloudwatch": "CloudWatch",
    "applicationautoscaling": "ApplicationAutoScaling",
    "iam": "Iam",
}


def plain(value: Any) -> Any:
    """Datetimes, streams and bytes as the JSON strings Step Functions hands on."""
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain(v) for v in value]
    if isinstance(value, datetime.datetime | datetime.date):
        return value.isoformat()
    if isinstance(value, StreamingBody):
        return value.read().decode("utf-8", errors="replace")
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    return value


@cache
def _operation(service: str, action: str) -> Any:
    try:
        model = _SESSION.get_service_model(service)
    except Exception:
        return None
    for name in model.operation_names:
        if xform_name(name) == action:
            return model.operation_model(name)
    return None


def _normalise_parameters(
    self: Any, parameters: Any, boto_service_name: Any = None, service_action_name: Any = None
) -> None:
    operation = _operation(
        self._get_boto_service_name(boto_service_name),
        self._get_boto_service_action(service_action_name),
    )
    if operation is not None and operation.input_shape is not None:
        self._to_boto_request(parameters, operation.input_shape)


def _normalise_response(
    self: Any, response: Any, boto_service_name: Any = None, service_action_name: Any = None
) -> None:
    operation = _operation(
        self._get_boto_service_name(boto_service_name),
        self._get_boto_service_action(service_action_name),
    )
    if operation is not None and operation.output_shape is not None:
        self._from_boto_response(response, operation.output_shape)
    cleaned = plain(response)
    response.clear()
    response.update(cleaned)


# ---------------------------------------------------------------------------- SageMaker
_SYNC = {
    "create_training_job": ("describe_training_job", "TrainingJobName", "TrainingJobStatus"),
    "create_processing_job": (
        "describe_processing_job",
        "ProcessingJobName",
        "ProcessingJobStatus",
    ),
    "create_transform_job": ("describe_transform_job", "TransformJobName", "TransformJobStatus"),
}
_OPTIMISED = {
    "create_model",
    "create_endpoint_config",
    "create_endpoint",
    "update_endpoint",
    "create_training_job",
    "create_processing_job",
    "create_transform_job",
    "create_hyper_parameter_tuning_job",
    "create_labeling_job",
    "stop_training_job",
    "add_tags",
}


class StateTaskServiceSageMaker(_callback.StateTaskServiceCallback):  # type: ignore[misc]
    """``arn:aws:states:::sagemaker:*``, request-response and ``.sync`` (polls ``Describe*``)."""

    def __init__(self) -> None:
        super().__init__(
            supported_integration_patterns={
                ResourceCondition.WaitForTaskToken,
                ResourceCondition.Sync,
            }
        )

    def _validate_service_integration_is_supported(self) -> None:
        action = self._get_boto_service_action()
        if action not in _OPTIMISED:
            raise ValueError(f"The resource provided {self.resource.resource_arn} not recognized.")
        if self.resource.condition == ResourceCondition.Sync and action not in _SYNC:
            raise ValueError(f"Unsupported .sync for {self.resource.resource_arn}")

    def _client(self, region: str, credentials: Any) -> Any:
        return boto_client_for(service="sagemaker", region=region, state_credentials=credentials)

    def _eval_service_task(
        self,
        env: Any,
        resource_runtime_part: Any,
        normalised_parameters: Any,
        state_credentials: Any,
    ) -> None:
        client = self._client(resource_runtime_part.region, state_credentials)
        response = getattr(client, self._get_boto_service_action())(**normalised_parameters)
        response.pop("ResponseMetadata", None)
        env.stack.append(plain(response))

    def _from_error(self, env: Any, ex: Exception) -> Any:
        if not isinstance(ex, ClientError):
            return super()._from_error(env=env, ex=ex)
        code = ex.response["Error"]["Code"]
        if code in ("ValidationException", "ValidationError"):
            error = "SageMaker.AmazonSageMakerException"
        else:
            error = f"SageMaker.{code}" + ("" if code.endswith("Exception") else "Exception")
        status = ex.response["ResponseMetadata"]["HTTPStatusCode"]
        cause = (
            f"{ex.response['Error']['Message']} (Service: AmazonSageMaker; "
            f"Status Code: {status}; Error Code: {code})"
        )
        return FailureEvent(
            env=env,
            error_name=CustomErrorName(error),
            event_type=HistoryEventType.TaskFailed,
            event_details=EventDetails(
                taskFailedEventDetails=TaskFailedEventDetails(
                    error=error,
                    cause=cause,
                    resource=self._get_sfn_resource(),
                    resourceType=self._get_sfn_resource_type(),
                )
            ),
        )

    def _build_sync_resolver(
        self,
        env: Any,
        resource_runtime_part: Any,
        normalised_parameters: Any,
        state_credentials: Any,
    ) -> Callable[[], Any]:
        env.stack.pop()  # the Create* answer; .sync answers with the final Describe*
        describe, name_key, status_key = _SYNC[self._get_boto_service_action()]
        client = self._client(resource_runtime_part.region, state_credentials)
        name = normalised_parameters[name_key]

        def resolve() -> Any:
            described = getattr(client, describe)(**{name_key: name})
            described.pop("ResponseMetadata", None)
            status = described[status_key]
            if status in ("InProgress", "Stopping"):
                return None
            described = plain(described)
            if status == "Completed":
                return described
            raise FailureEventException(
                FailureEvent(
                    env=env,
                    error_name=StatesErrorName(typ=StatesErrorNameType.StatesTaskFailed),
                    event_type=HistoryEventType.TaskFailed,
                    event_details=EventDetails(
                        taskFailedEventDetails=TaskFailedEventDetails(
                            resource=self._get_sfn_resource(),
                            resourceType=self._get_sfn_resource_type(),
                            error=StatesErrorNameType.StatesTaskFailed.to_name(),
                            cause=to_json_str(described),
                        )
                    ),
                )
            )

        return resolve


_service_for = state_task_service_factory.state_task_service_for


def _state_task_service_for(service_name: str) -> Any:
    if service_name == "sagemaker":
        return StateTaskServiceSageMaker()
    return _service_for(service_name)


class _SharedClients:
    """What moto's Step Functions sees as ``boto3`` when it makes a client for a task: one
    client per service, region and endpoint (it made one for every task and every poll of a
    ``.sync`` job; its settings never change)."""

    def __init__(self) -> None:
        self._clients = ClientCache()

    def client(self, service_name: str, region_name: str, **settings: Any) -> Any:
        import boto3

        make: Callable[..., Any] = boto3.client
        key = (service_name, region_name, settings.get("endpoint_url"))
        return self._clients.get(
            key, lambda: make(service_name=service_name, region_name=region_name, **settings)
        )


# ---------------------------------------------------------------------------- time
def install(scale: float, timeline: Recorder | None = None) -> None:
    """Install the integrations and scale every wait by ``scale``; each Wait state goes into
    ``timeline`` with its declared seconds, what it lasts on AWS."""
    recorder = timeline or Recorder()
    replace(StateTaskService, "_normalise_parameters", _normalise_parameters)
    replace(StateTaskService, "_normalise_response", _normalise_response)
    state_task_service_aws_sdk._SERVICE_ERROR_NAMES.update(AWS_SDK_ERROR_PREFIXES)
    # aws-sdk service names that differ from boto3's
    overrides = {
        **StateTaskService._SERVICE_NAME_SFN_TO_BOTO_OVERRIDES,
        "applicationautoscaling": "application-autoscaling",
        "sagemakerruntime": "sagemaker-runtime",
    }
    replace(StateTaskService, "_SERVICE_NAME_SFN_TO_BOTO_OVERRIDES", overrides)
    replace(state_task_factory, "state_task_service_for", _state_task_service_for)
    replace(
        state_task_service_callback, "_DELAY_SECONDS_SYNC_CONDITION_CHECK", max(0.05, 5 * scale)
    )

    def wait_interval(self: Any, env: Any, wait_seconds: float) -> None:
        context = env.states.context_object.context_object_data
        with recorder.span(
            WAIT_STATE,
            str(context.get("State", {}).get("Name", "Wait")),
            Kind.POLL,
            projected=max(0.0, float(wait_seconds)),
            expected=max(0.0, float(wait_seconds)) * scale,
            run=str(context["Execution"]["Name"]),
        ):
            wait_scaled(env, wait_seconds)

    def wait_scaled(env: Any, wait_seconds: float) -> None:
        deadline = time.monotonic() + max(0.0, float(wait_seconds)) * scale
        while env.is_running():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return
            env.program_state_event.wait(remaining)

    def timeout_eval(self: Any, env: Any) -> None:
        seconds = self._eval_seconds(env=env)
        env.stack.append(seconds if self.is_default_value() else seconds * scale)

    replace(WaitFunction, "_wait_interval", wait_interval)
    replace(boto_client, "boto3", _SharedClients())
    replace(Timeout, "_eval_body", timeout_eval)
    replace(
        retrier_decl,
        "time",
        types.SimpleNamespace(sleep=lambda seconds: time.sleep(seconds * scale)),
    )
