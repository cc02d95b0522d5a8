"""The local cloud: the real application (template, state machines, handlers, model code) on one
machine, with no AWS account.

moto, as a threaded server on 127.0.0.1, is the AWS API; the modules beside this one add, each in
one place, what moto does not do: Lambda handlers run in-process, SageMaker jobs and endpoints run
the model, CodeDeploy runs Lambda deployments, EventBridge reaches Lambda, alarms are evaluated,
the template's API is served, and notifications land in an outbox.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import requests
from aws_lambda_powertools.utilities.parameters.constants import DEFAULT_PROVIDERS
from moto.cloudwatch.models import cloudwatch_backends
from moto.server import ThreadedMotoServer
from moto.sqs.models import sqs_backends
from pipeline_common.layout import NO_ENDPOINT, monitoring_schedule_of
from werkzeug.wrappers import Request, Response

from safe_deploy.clients import ClientCache, forget_environment_clients
from safe_deploy.localcloud import (
    codedeploy,
    events,
    fixes,
    lambdas,
    patching,
    registry,
    sagemaker,
    stepfunctions,
)
from safe_deploy.localcloud.api import LOCAL_SECRET, LocalApi
from safe_deploy.localcloud.channels import LocalChannels, Outbox
from safe_deploy.localcloud.cloudformation import wire as cloudformation_wire
from safe_deploy.localcloud.cloudformation.engine import Engine
from safe_deploy.localcloud.cloudformation.package import Packager
from safe_deploy.localcloud.cloudformation.resources import Handlers
from safe_deploy.localcloud.codedeploy import CodeDeployEmulator
from safe_deploy.localcloud.inflight import InFlight, read_in_flight
from safe_deploy.localcloud.lambdas import HandlerHost
from safe_deploy.localcloud.metrics import Alarm, Alarms, MetricStore
from safe_deploy.localcloud.sagemaker import SageMakerEmulator
from safe_deploy.localcloud.state import ActivityFeed, Faults, LocalSettings
from safe_deploy.localcloud.template import Evaluator, load
from safe_deploy.localcloud.timeline import (
    TIMELINE_ROUTE,
    Recorder,
    RunNotFound,
    RunTimeline,
    local_timeline,
)
from safe_deploy.localcloud.workdir import Occupancy, StopRecord, occupy, write_whole

LOCAL_ACCESS_KEY = "local-operator"
LOCAL_OPERATOR_ARN = "arn:aws:iam::{}:user/" + LOCAL_ACCESS_KEY  # the local API's identity
_RUNNING: list[LocalCloud] = []  # moto's state is process-wide: one local cloud at a time


@dataclass
class Endpoints:
    """Where to point clients."""

    aws: str
    api: str
    outbox: Path


class LocalCloudBroken(RuntimeError):
    """A duty of the local cloud (alarms, the outbox, SageMaker's clock) stopped while it ran:
    what depends on it (a rollback on an alarm, a capture file) would never happen."""


class LocalCloud:
    def __init__(self, settings: LocalSettings) -> None:
        self.settings = settings
        self.feed = ActivityFeed()
        self.timeline = Recorder()  # every wait it emulates, with AWS's time for it
        self.metrics = MetricStore()
        self.faults = Faults()
        self.alarms = Alarms(self.metrics, settings, self.feed)
        self._threads_stop = threading.Event()
        self.broken: list[str] = []  # duties that stopped while the cloud ran: see check()
        self.broken_event = threading.Event()
        self._saved_env: dict[str, str] = {}
        self._clients = ClientCache()
        self._server: ThreadedMotoServer | None = None
        self.outputs: dict[str, str] = {}
        self.not_emulated: dict[str, str] = {}
        self.occupancy: Occupancy | None = None
        self.started_at: float | None = None  # set once the stack is up
        self.in_flight_at_stop: InFlight | None = None

    # ------------------------------------------------------------------ lifecycle
    def claim(self) -> Occupancy:
        """Take the work folder: refused unless it is ours (its marker, or new or empty) and no
        other local cloud uses it; what the previous local cloud left there is cleared (its
        state was in memory, and the folder's files alone would only mislead).
        ``occupancy.previous`` says what was discarded."""
        if self.occupancy is None:
            self.occupancy = occupy(self.settings.workdir, "the local cloud (safe-deploy local up)")
        return self.occupancy

    def start(self) -> LocalCloud:
        if _RUNNING:
            raise RuntimeError("a local cloud is already running in this process")
        self.claim()
        try:
            self._start_aws()
            _RUNNING.append(self)
            self._install_and_provision()
        except BaseException:
            self.stop()
            raise
        self.started_at = time.time()
        if self.occupancy is not None:
            self.occupancy.lock.update(
                started_at=self.started_at,
                aws_endpoint_url=self.aws_url,
                api_url=self.endpoints.api,
                time_scale=self.settings.time_scale,
            )
        return self

    def _start_aws(self) -> None:
        """moto's server on 127.0.0.1, with this process's environment pointing at it."""
        settings = self.settings
        self.outbox = settings.workdir / "outbox"
        self.outbox.mkdir(exist_ok=True)
        logging.getLogger("werkzeug").setLevel(logging.ERROR)  # no access log per AWS call
        logging.getLogger("moto").setLevel(logging.CRITICAL)  # failed states are reported as such
        warnings.filterwarnings("ignore", message="No application metrics to publish")
        self._server = ThreadedMotoServer(
            ip_address="127.0.0.1", port=settings.aws_port, verbose=False
        )
        self._server.start()
        host, port = self._server.get_host_and_port()
        self.aws_url = f"http://{host}:{port}"
        self._set_environment(
            {
                "AWS_ENDPOINT_URL": self.aws_url,
                "MOTO_PORT": str(port),
                "AWS_ACCESS_KEY_ID": LOCAL_ACCESS_KEY,
                "AWS_SECRET_ACCESS_KEY": LOCAL_SECRET,
                "AWS_SESSION_TOKEN": "",
                "AWS_DEFAULT_REGION": settings.region,
                "AWS_REGION": settings.region,
                "POWERTOOLS_TRACE_DISABLED": "true",
                "TZ": "UTC",
            }
        )
        os.environ.pop("AWS_SESSION_TOKEN", None)
        os.environ.pop("AWS_PROFILE", None)
        time.tzset()
        # Powertools keeps its parameter providers per process, each with a boto3 client bound to
        # the endpoint of its time: a new local cloud (a new moto port) starts them afresh.
        DEFAULT_PROVIDERS.clear()
        requests.post(f"{self.aws_url}/moto-api/reset", timeout=10)
        requests.post(
            f"{self.aws_url}/moto-api/config",
            json={
                "stepfunctions": {"execute_state_machine": True},
                "lambda": {"use_docker": False},
            },
            timeout=10,
        )

    def _set_environment(self, values: dict[str, str]) -> None:
        for key, value in values.items():
            if key not in self._saved_env:
                self._saved_env[key] = os.environ.get(key, "\0")
            os.environ[key] = value

    def _install_and_provision(self) -> None:
        settings = self.settings
        template = load(settings.template_path)
        self.api = LocalApi(settings, self.feed, self.metrics)
        self.api.start()
        self.channels = LocalChannels(Outbox(self.outbox, self.feed))
        parameters = dict(settings.parameter_overrides)
        if settings.local_channels:  # Slack and email reviewers, answered by the outbox
            parameters = self.channels.configure(self.client, self.api, parameters)
        # The local CLI's identity decides through the operator route (safe-deploy approve).
        parameters.setdefault("OperatorPrincipalArns", LOCAL_OPERATOR_ARN.format(settings.account))
        # Globals' environment (service name, metrics namespace) is read at run time too.
        globals_env = template.get("Globals", {}).get("Function", {}).get("Environment", {})
        evaluator = Evaluator(template, parameters, {"AWS::Region": settings.region})
        base_env = {
            k: str(evaluator.resolve(v)) for k, v in globals_env.get("Variables", {}).items()
        }
        self._set_environment(base_env)
        self.host = HandlerHost(settings, self.metrics, self.feed, base_env)
        self.sagemaker = SageMakerEmulator(
            settings, self.feed, self.metrics, self.faults, self.timeline
        )
        self.codedeploy = CodeDeployEmulator(settings, self.feed, self.alarms, self.timeline)
        # CloudFormation creates every deployment: AWS then shows only the AppSpec's sha256.
        self.codedeploy.get_deployment_sha256_only = True
        self.resources = Handlers(settings, self.host, self.api, self.alarms, self.feed)
        self.cloudformation = Engine(settings, self.resources, self.feed, self.timeline)
        fixes.install()
        stepfunctions.install(settings.time_scale, self.timeline)
        lambdas.install(self.host)
        sagemaker.install(self.sagemaker)
        registry.install()
        codedeploy.install(self.codedeploy)
        events.install(self.feed)
        cloudformation_wire.install(self.cloudformation)
        self._create_stack(parameters)
        self.api.local_routes["/_local/monitoring/run"] = self._run_monitoring
        self.api.local_routes[TIMELINE_ROUTE] = self._timeline
        self.alarms.on_alarm = self._alarm_actions
        self._subscribe_outbox()
        for name, duty in (
            ("SageMaker's clock (capture flushes, monitoring schedules)", self.sagemaker.scheduler),
            ("alarm evaluation", self._watch_alarms),
            ("the SNS outbox", self._drain_outbox),
        ):
            threading.Thread(target=self._keep, args=(name, duty), daemon=True).start()

    def _keep(self, name: str, duty: Callable[[], None]) -> None:
        """Runs a background duty. It ends quietly only when the cloud stops (the server going
        away then makes its last call fail); any other end is reported in the activity feed and
        fails whatever waits on the cloud (:meth:`check`)."""
        try:
            duty()
        except Exception as exc:
            if self._threads_stop.is_set():
                return
            reason = f"{name} stopped: {type(exc).__name__}: {exc}"
        else:
            if self._threads_stop.is_set():
                return
            reason = f"{name} ended while the local cloud runs"
        logging.getLogger(__name__).error("%s", reason, exc_info=True)
        self.broken.append(reason)
        self.feed.emit("local", reason)
        self.broken_event.set()

    def check(self) -> None:
        """Raises :class:`LocalCloudBroken` once a background duty has stopped."""
        if self.broken:
            raise LocalCloudBroken("the local cloud is broken: " + "; ".join(self.broken))

    def _create_stack(self, parameters: dict[str, str]) -> None:
        """The application's stack, made as ``sam deploy`` makes it: the template packaged to
        S3, a change set, its execution (one path for ``local up`` and the SAM CLI)."""
        settings = self.settings
        s3 = self.client("s3")
        bucket = f"{settings.stack_name}-packages".lower()
        s3.create_bucket(Bucket=bucket)
        body = Packager(settings.project_root, s3, bucket).package(settings.template_path)
        template_url = Packager(settings.project_root, s3, bucket).upload(
            body.encode(), ".template"
        )
        cloudformation = self.client("cloudformation")
        change_set = cloudformation.create_change_set(
            StackName=settings.stack_name,
            ChangeSetName="local-up",
            ChangeSetType="CREATE",
            TemplateURL=template_url.replace("s3://", f"{self.aws_url}/", 1),
            Parameters=[{"ParameterKey": k, "ParameterValue": v} for k, v in parameters.items()],
            Capabilities=["CAPABILITY_IAM", "CAPABILITY_AUTO_EXPAND"],
        )
        described = cloudformation.describe_change_set(ChangeSetName=change_set["Id"])
        if described["Status"] != "CREATE_COMPLETE":
            raise RuntimeError(f"the stack's change set failed: {described.get('StatusReason')}")
        cloudformation.execute_change_set(ChangeSetName=change_set["Id"])
        stack = self.cloudformation.wait(settings.stack_name, timeout=600)
        if stack.status != "CREATE_COMPLETE":
            failed = [e.reason for e in stack.events if e.status.endswith("_FAILED")]
            raise RuntimeError(f"stack {stack.name}: {stack.status}: {'; '.join(map(str, failed))}")
        self.not_emulated = self.resources.not_emulated
        self.outputs = {k: self.resources.localize(v) for k, (v, _) in stack.outputs.items()}

    def stop(self) -> None:
        """Stop everything and leave the work folder with a record of what was in flight."""
        if self.started_at is not None and self._server is not None:
            self.in_flight_at_stop = self.in_flight()
        self._threads_stop.set()
        if hasattr(self, "sagemaker"):
            self.sagemaker.stop()
        if hasattr(self, "api"):
            self.api.stop()
        if self._server is not None:
            self._server.stop()
            self._server = None
        for key, value in self._saved_env.items():
            if value == "\0":
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        self._saved_env.clear()
        self._clients.clear()
        forget_environment_clients()
        patching.restore_all()
        if self in _RUNNING:
            _RUNNING.remove(self)
        self._leave_workdir()

    def in_flight(self) -> InFlight | None:
        """What runs now; None when the AWS APIs do not say (the record then says unknown)."""
        try:
            return read_in_flight(self.client)
        except Exception as exc:  # a sick local cloud still stops; the record says unknown
            self.feed.emit("local", f"what was in flight could not be read: {exc}")
            return None

    def _leave_workdir(self) -> None:
        if self.occupancy is None:
            return
        if self.started_at is not None:
            record = StopRecord(time.time(), self.started_at, os.getpid(), self.in_flight_at_stop)
            self.occupancy.stopped(record)
        else:
            self.occupancy.lock.release()
        self.occupancy = None

    def __enter__(self) -> LocalCloud:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ------------------------------------------------------------------ what clients need
    @property
    def endpoints(self) -> Endpoints:
        return Endpoints(self.aws_url, self.outputs.get("ApiUrl", self.api.origin), self.outbox)

    def client(self, service: str) -> Any:
        make: Callable[..., Any] = boto3.client
        return self._clients.get(
            service,
            lambda: make(service, region_name=self.settings.region, endpoint_url=self.aws_url),
        )

    def client_environment(self) -> dict[str, str]:
        """What ``safe-deploy local env`` exports: a client's endpoint, region, credentials."""
        return {
            "AWS_ENDPOINT_URL": self.aws_url,
            "AWS_ACCESS_KEY_ID": LOCAL_ACCESS_KEY,
            "AWS_SECRET_ACCESS_KEY": LOCAL_SECRET,
            "AWS_DEFAULT_REGION": self.settings.region,
            "AWS_REGION": self.settings.region,
        }

    def write_connection_file(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(
            json.dumps(
                {
                    "aws_endpoint_url": self.aws_url,
                    "region": self.settings.region,
                    "api_url": self.endpoints.api,
                    "outbox": str(self.outbox),
                    "outputs": self.outputs,
                    "access_key": LOCAL_ACCESS_KEY,
                    "secret_key": LOCAL_SECRET,
                    "pid": os.getpid(),
                    "started_at": self.started_at,
                    "workdir": str(self.settings.workdir),
                    "logs": str(self.host.logs_dir),
                    "time_scale": self.settings.time_scale,
                },
                indent=2,
            )
        )

    def timeline_of(self, run: str) -> RunTimeline:
        """Run ``run``'s stages: local time, and the AWS time each would take (projected)."""
        return local_timeline(
            self.timeline,
            self.client("stepfunctions"),
            self.outputs["TrainingStateMachineArn"],
            self.outputs["DeployStateMachineArn"],
            run,
            self.settings.time_scale,
        )

    def _timeline(self, request: Request) -> Response:
        """``safe-deploy status``: a run's timeline (``/_local/timeline/<model id>``)."""
        run = request.path.removeprefix(TIMELINE_ROUTE).strip("/")
        try:
            if not run:
                raise RunNotFound(f"name a run: {TIMELINE_ROUTE}<model id>")
            timeline = self.timeline_of(run)
        except RunNotFound as exc:
            return Response(json.dumps({"message": str(exc)}), status=404)
        return Response(json.dumps(timeline.as_json()), content_type="application/json")

    def _run_monitoring(self, request: Request) -> Response:
        """``safe-deploy drift-report --run-now``: production's schedule, now."""
        parameter = self.outputs["ProductionEndpointParameterName"]
        endpoint = self.client("ssm").get_parameter(Name=parameter)["Parameter"]["Value"]
        if endpoint == NO_ENDPOINT:
            return Response(json.dumps({"message": "no model in production"}), status=409)
        execution = self.sagemaker.run_schedule(monitoring_schedule_of(endpoint))
        return Response(json.dumps(execution, default=str), content_type="application/json")

    # ------------------------------------------------------------------ background work
    def _alarm_actions(self, alarm: Alarm) -> None:
        """An alarm that went to ALARM tells its SNS topics, as CloudWatch does."""
        message = {
            "AlarmName": alarm.name,
            "AlarmDescription": alarm.description,
            "NewStateValue": "ALARM",
            "NewStateReason": "evaluated by the local cloud",
            "Trigger": {
                "MetricName": alarm.metric,
                "Namespace": alarm.namespace,
                "Dimensions": [{"name": k, "value": v} for k, v in alarm.dimensions.items()],
                "Threshold": alarm.threshold,
            },
        }
        subject = f'ALARM: "{alarm.name}" in {self.settings.region}'[:100]
        for topic in alarm.actions:
            if topic.startswith("arn:aws:sns:"):
                self.client("sns").publish(
                    TopicArn=topic, Subject=subject, Message=json.dumps(message)
                )

    def _sample_queues(self) -> None:
        """SQS's queue-depth metric for the queues alarms watch (SQS publishes it itself)."""
        names = {
            alarm.dimensions["QueueName"]
            for alarm in list(self.alarms.alarms.values())
            if alarm.namespace == "AWS/SQS" and "QueueName" in alarm.dimensions
        }
        backend = sqs_backends[self.settings.account][self.settings.region]
        for name in names:
            queue = backend.queues.get(name)
            if queue is not None:
                visible = queue.approximate_number_of_messages
                self.metrics.put(
                    "AWS/SQS",
                    "ApproximateNumberOfMessagesVisible",
                    {"QueueName": name},
                    visible,
                    "Count",
                )

    def _watch_alarms(self) -> None:
        cloudwatch = self.client("cloudwatch")
        store = cloudwatch_backends[self.settings.account][self.settings.region]
        kept = store.alarms
        while not self._threads_stop.wait(0.25):
            self._sample_queues()
            for name, state in self.alarms.evaluate_all().items():
                # CloudWatch changes an alarm's state when its evaluation changes it.
                alarm = kept.get(name)
                if alarm is None or alarm.state_value != state:
                    cloudwatch.set_alarm_state(
                        AlarmName=name, StateValue=state, StateReason="evaluated by the local cloud"
                    )
            # Into CloudWatch's store directly, as the services and EMF lines publish them:
            # through its API, each point was a request's worth of work twice over.
            by_namespace: dict[str, list[dict[str, Any]]] = {}
            for p in self.metrics.drain():
                by_namespace.setdefault(p.namespace, []).append(
                    {
                        "MetricName": p.name,
                        "Dimensions": [{"Name": k, "Value": v} for k, v in sorted(p.dimensions)],
                        "Value": p.value,
                        "Unit": p.unit,
                    }
                )
            for namespace, data in by_namespace.items():
                store.put_metric_data(namespace, data)

    def _subscribe_outbox(self) -> None:
        sns, sqs = self.client("sns"), self.client("sqs")
        self._outbox_queue = sqs.create_queue(QueueName="local-outbox")["QueueUrl"]
        queue_arn = sqs.get_queue_attributes(
            QueueUrl=self._outbox_queue, AttributeNames=["QueueArn"]
        )["Attributes"]["QueueArn"]
        for topic in sns.list_topics()["Topics"]:
            sns.subscribe(TopicArn=topic["TopicArn"], Protocol="sqs", Endpoint=queue_arn)

    def _drain_outbox(self) -> None:
        sqs = self.client("sqs")
        folder = self.outbox / "sns"
        folder.mkdir(exist_ok=True)
        count = 0
        while not self._threads_stop.is_set():
            messages = sqs.receive_message(  # a long poll: answered as soon as a message comes
                QueueUrl=self._outbox_queue, MaxNumberOfMessages=10, WaitTimeSeconds=1
            ).get("Messages", [])
            for message in messages:
                envelope = json.loads(message["Body"])
                count += 1
                record = {
                    "channel": "sns",
                    "topic": envelope.get("TopicArn"),
                    "subject": envelope.get("Subject"),
                    "message": envelope.get("Message"),
                    "timestamp": envelope.get("Timestamp"),
                }
                write_whole(folder / f"{count:04d}.json", json.dumps(record, indent=2))
                self.feed.emit("outbox", f"SNS: {record['subject']}", record=record)
                sqs.delete_message(
                    QueueUrl=self._outbox_queue, ReceiptHandle=message["ReceiptHandle"]
                )

    # ------------------------------------------------------------------ waiting
    def wait_for(
        self, condition: Any, timeout: float, interval: float = 0.1, what: str = "condition"
    ) -> Any:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.check()
            value = condition()
            if value:
                return value
            time.sleep(interval)
        raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}")
