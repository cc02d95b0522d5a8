"""SageMaker endpoints for the local cloud: each loads the trained model from its
``ModelDataUrl``, answers ``InvokeEndpoint`` with real predictions and writes data capture in
SageMaker's format and S3 layout.

moto answers ``InvokeEndpoint`` with canned bodies. Here an endpoint is InService after a scaled
start-up, the faults set on it (``errors``, ``implausible``, ``no-capture``) apply, each call puts
the ``AWS/SageMaker`` invocation metrics, and capture is buffered and flushed on SageMaker's
cadence (and when the endpoint is deleted).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson
from moto.core.exceptions import ServiceException
from moto.sagemaker.exceptions import ValidationError
from pipeline_common.capture import capture_key, capture_record
from pipeline_common.layout import CAPTURE_PREFIX
from pipeline_common.payload import PayloadError

from model.serve import FareModel
from safe_deploy.localcloud import registry
from safe_deploy.localcloud.metrics import MetricStore
from safe_deploy.localcloud.sagemaker.utils import (
    s3_client,
    sagemaker_backend,
    split_uri,
    workspace,
)
from safe_deploy.localcloud.state import ActivityFeed, Faults, LocalSettings
from safe_deploy.localcloud.timeline import Kind, Recorder, aws_seconds
from safe_deploy.localcloud.timeline.durations import ENDPOINT

# What an ml.m5.large takes, before the time scale: shorter than AWS's typical creation (the
# timeline's table) to keep the demo short; the projected timeline counts AWS's.
ENDPOINT_STARTUP_SECONDS = 120.0
CAPTURE_FLUSH_SECONDS = 60.0


class ModelError(ServiceException):  # type: ignore[misc]
    """The runtime's ModelError (HTTP 424): the model container answered with an error."""

    code = "ModelError"

    def __init__(self, message: str, original_status: int = 500) -> None:
        super().__init__(message)
        self.OriginalStatusCode = original_status
        self.OriginalMessage = message


@dataclass
class _Endpoint:
    """An endpoint in service: its model, and the capture not yet flushed."""

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


@dataclass
class EndpointHost:
    """The endpoints that serve a model, by name."""

    settings: LocalSettings
    feed: ActivityFeed
    metrics: MetricStore
    faults: Faults
    timeline: Recorder = field(default_factory=Recorder)
    served: dict[str, _Endpoint] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    stopping: threading.Event = field(default_factory=threading.Event)

    @property
    def backend(self) -> Any:
        return sagemaker_backend(self.settings)

    def start_endpoint(self, endpoint: Any) -> None:
        """Creating until in service (or failed): an emulated wait, in the timeline with the time
        AWS takes to create an endpoint."""
        startup = self.settings.scaled(ENDPOINT_STARTUP_SECONDS)
        with self.timeline.span(
            ENDPOINT,
            endpoint.endpoint_name,
            Kind.WAIT,
            projected=aws_seconds(ENDPOINT),
            expected=startup,
        ):
            self._start_endpoint(endpoint, startup)

    def _start_endpoint(self, endpoint: Any, startup: float) -> None:
        name = endpoint.endpoint_name
        if self.stopping.wait(startup):
            return  # the local cloud stopped: the endpoint never came into service
        try:
            config = self.backend.describe_endpoint_config(endpoint.endpoint_config_name)
            variant = config["ProductionVariants"][0]
            model = self.backend.describe_model(variant["ModelName"]).response_object
            container = model.get("PrimaryContainer") or (model.get("Containers") or [{}])[0]
            data_url = registry.model_data_url(self.backend, container)
            folder = workspace(self.settings, "endpoints", name)
            bucket, key = split_uri(data_url)
            s3_client().download_file(bucket, key, str(folder / "model.tar.gz"))
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
            self.served[name] = served
        if self.backend.endpoints.get(name) is endpoint:
            endpoint.endpoint_status = "InService"
            self.feed.emit("sagemaker", f"endpoint {name} is InService", endpoint=name)

    def stop_endpoint(self, name: str) -> None:
        with self._lock:
            served = self.served.pop(name, None)
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
            served = self.served.get(name)
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

    def capture_destination(self, name: str) -> str | None:
        """The endpoint's capture ``DestinationS3Uri``; None while it is not in service."""
        with self._lock:
            served = self.served.get(name)
        if served is None:
            return None
        uri: str | None = served.capture["DestinationS3Uri"]
        return uri

    def flush_capture(self, served: _Endpoint) -> None:
        lines = served.take()
        if not lines:
            return
        bucket, prefix = split_uri(served.capture["DestinationS3Uri"])
        key = capture_key(prefix or CAPTURE_PREFIX, served.name, served.variant, datetime.now(UTC))
        s3_client().put_object(Bucket=bucket, Key=key, Body=b"".join(lines))

    def flush_all(self) -> None:
        with self._lock:
            served = list(self.served.values())
        for endpoint in served:
            self.flush_capture(endpoint)
