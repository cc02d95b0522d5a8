"""Lambda for the local cloud: every invocation moto receives runs the real handler in-process.

Each function version is imported once, and every invocation runs, with the environment its
configuration holds (the template's, or what the deploy state machine published), so a version
bound to the green endpoint really is bound to it. Alias routing weights pick the version, as
Lambda does. What a handler prints (logs, EMF metrics) goes to CloudWatch Logs as Lambda sends
it (log group ``/aws/lambda/<function>``, a stream per version's instance) and to
``WORKDIR/logs/<function>.log``, and metrics reach the local CloudWatch.
"""

from __future__ import annotations

import importlib.util
import io
import json
import logging
import random
import sys
import threading
import time
import traceback
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType
from typing import Any, TextIO

from moto.awslambda.models import LambdaBackend
from moto.awslambda_simple.models import LambdaSimpleBackend
from moto.sqs.models import sqs_backends

from safe_deploy.localcloud.environment import thread_environment
from safe_deploy.localcloud.logs import put_lines
from safe_deploy.localcloud.metrics import MetricStore
from safe_deploy.localcloud.patching import replace
from safe_deploy.localcloud.state import ActivityFeed, LocalSettings

Handler = Callable[[dict[str, Any], Any], Any]


@dataclass(frozen=True)
class FunctionCode:
    logical_id: str
    code_dir: Path
    handler: str  # "app.lambda_handler"
    memory_mb: int
    timeout: int
    dead_letter_arn: str | None = None  # DeadLetterConfig.TargetArn: an SQS queue


def _own_modules(folder: Path) -> set[str]:
    """The top-level modules and packages of a function's own code in its folder: not the
    libraries bundled beside it (those a ``*.dist-info`` records), which this process already
    has from its own environment and must never import twice."""
    bundled = {
        line.split("/", 1)[0].split(",", 1)[0].removesuffix(".py")
        for record in folder.glob("*.dist-info/RECORD")
        for line in record.read_text().splitlines()
    }
    found = {
        p.stem if p.suffix == ".py" else p.name
        for p in folder.iterdir()
        if p.suffix == ".py" or (p / "__init__.py").exists()
    }
    return found - bundled


@contextmanager
def code_folder_importable(folder: Path) -> Iterator[None]:
    """As Lambda imports a handler, the modules beside ``app.py`` are importable. The folder
    goes last on ``sys.path``: the libraries bundled in it are this process's own, imported
    once. Many copies of a function (versions, tests) share the process, so each copy imports
    the modules shipped beside it and keeps them through its own references; afterwards the
    process gets back the modules it had under those names (a function may ship a copy of the
    project's own ``model`` package, whose exception classes the rest of the process catches)."""
    names = _own_modules(folder)

    def take() -> dict[str, ModuleType]:
        return {
            name: sys.modules.pop(name)
            for name in [n for n in list(sys.modules) if n.split(".", 1)[0] in names]
        }

    before = take()
    sys.path.append(str(folder))
    try:
        yield
    finally:
        sys.path.remove(str(folder))
        take()
        sys.modules.update(before)


# Lambda retries a failed asynchronous invocation twice, about one and then two minutes later,
# and then hands the event to the function's dead-letter queue ("Asynchronous invocation").
ASYNC_RETRY_DELAYS = (60.0, 120.0)


@dataclass
class LambdaContext:
    """What Powertools and handlers read from the Lambda context."""

    function_name: str
    function_version: str
    invoked_function_arn: str
    memory_limit_in_mb: int
    aws_request_id: str
    deadline: float
    log_group_name: str = ""
    log_stream_name: str = "local"

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self.deadline - time.time()) * 1000))


class _ThreadStdout(io.TextIOBase):
    """sys.stdout that sends a thread's writes to that thread's buffer while it runs a handler."""

    def __init__(self, real: TextIO) -> None:
        self.real = real
        self.local = threading.local()

    def write(self, text: str) -> int:
        buffer = getattr(self.local, "buffer", None)
        if buffer is not None:
            return int(buffer.write(text))
        return self.real.write(text)

    def flush(self) -> None:
        self.real.flush()

    @contextmanager
    def capture(self) -> Iterator[io.StringIO]:
        previous = getattr(self.local, "buffer", None)
        self.local.buffer = io.StringIO()
        try:
            yield self.local.buffer
        finally:
            self.local.buffer = previous


class HandlerHost:
    """Imports and runs the project's handlers."""

    def __init__(
        self,
        settings: LocalSettings,
        metrics: MetricStore,
        feed: ActivityFeed,
        base_env: dict[str, str],
    ) -> None:
        self.settings = settings
        self.metrics = metrics
        self.feed = feed
        self.base_env = base_env
        self.code: dict[str, FunctionCode] = {}  # function name -> $LATEST's code
        self.version_code: dict[tuple[str, str], FunctionCode] = {}  # published versions' code
        self._modules: dict[tuple[str, str, str], Handler] = {}
        self._import_lock = threading.Lock()
        self.logs_dir = settings.workdir / "logs"
        self.logs_dir.mkdir(parents=True, exist_ok=True)
        self._log_lock = threading.Lock()  # moto's log streams are not thread-safe either
        self._log_streams: dict[tuple[str, str], str] = {}  # (function, version) -> its stream
        if not isinstance(sys.stdout, _ThreadStdout):
            sys.stdout = _ThreadStdout(sys.stdout)
        self.stdout: _ThreadStdout = sys.stdout

    def register(self, function_name: str, code: FunctionCode) -> None:
        self.code[function_name] = code

    def published(self, function_name: str, version: str) -> None:
        """A version keeps the code $LATEST had when it was published, as Lambda's do."""
        latest = self.code.get(function_name)
        if latest is not None and (function_name, version) not in self.version_code:
            self.version_code[(function_name, version)] = latest

    def code_of(self, function_name: str, version: str) -> FunctionCode | None:
        return self.version_code.get((function_name, version)) or self.code.get(function_name)

    def _handler(
        self,
        function_name: str,
        environment: dict[str, str],
        code: FunctionCode,
        version: str = "$LATEST",
    ) -> Handler:
        key = (function_name, str(code.code_dir), json.dumps(environment, sort_keys=True))
        with self._import_lock:
            if key in self._modules:
                return self._modules[key]
            module_name, attribute = code.handler.rsplit(".", 1)
            path = code.code_dir / f"{module_name.replace('.', '/')}.py"
            unique = f"_local_{code.logical_id}_{len(self._modules)}"
            spec = importlib.util.spec_from_file_location(unique, path)
            if spec is None or spec.loader is None:
                raise ImportError(f"cannot load {path}")
            module: ModuleType = importlib.util.module_from_spec(spec)
            # Imported inside the invocation that first needs it (:meth:`run`), so with the
            # function's variables already shown to this thread.
            with code_folder_importable(path.parent):
                with self.stdout.capture() as out:
                    spec.loader.exec_module(module)
                self._keep_logs(function_name, out.getvalue(), version)
                self._route_logger()
            handler: Handler = getattr(module, attribute)
            self._modules[key] = handler
            return handler

    def _reclaim_stdout(self) -> None:
        """Handlers print (Powertools Metrics' EMF lines, tracebacks) to ``sys.stdout``; whoever
        replaced it since (pytest does between test phases) gets the router put back around it."""
        current = sys.stdout
        if current is not self.stdout:
            if not isinstance(current, _ThreadStdout):  # never a router around a router
                self.stdout.real = current
            sys.stdout = self.stdout

    def _route_logger(self) -> None:
        """Powertools' Logger binds its stream once per process, at its first import (which may
        have happened before this host, or under another one): point it at this host's stdout so
        each handler's log lines reach that function's log."""
        service = self.base_env.get("POWERTOOLS_SERVICE_NAME", "service_undefined")
        for handler in logging.getLogger(service).handlers:
            if type(handler) is logging.StreamHandler and handler.stream is not self.stdout:
                handler.setStream(self.stdout)

    def _keep_logs(self, function_name: str, text: str, version: str = "$LATEST") -> None:
        if not text:
            return
        for line in text.splitlines():
            self.metrics.ingest_emf(line)
        with self._log_lock:
            with (self.logs_dir / f"{function_name}.log").open("a") as log:
                log.write(text if text.endswith("\n") else text + "\n")
            self._ship_logs(function_name, version, text)
        if self.settings.verbose:
            self.stdout.real.write(text)

    def log_stream(self, function_name: str, version: str) -> str:
        """The stream a version's instance writes to, named as Lambda names them
        (``2026/12/01/[$LATEST]<32 hex>``): one per version here, where each version runs in
        one process."""
        key = (function_name, version)
        if key not in self._log_streams:
            day = datetime.now(UTC).strftime("%Y/%m/%d")
            # setdefault: two first invocations at once agree on one stream
            self._log_streams.setdefault(key, f"{day}/[{version}]{uuid.uuid4().hex}")
        return self._log_streams[key]

    def _ship_logs(self, function_name: str, version: str, text: str) -> None:
        """Each line as a log event in ``/aws/lambda/<function>``, the group created at first use
        as Lambda creates it, so ``aws logs tail`` and ``safe-deploy logs`` read it."""
        stream = self.log_stream(function_name, version)
        put_lines(self.settings, f"/aws/lambda/{function_name}", stream, text)

    def run(self, fn: Any, event: Any, alias: str | None) -> tuple[bytes, str | None]:
        """Invoke one version; returns the payload and the function error, if any."""
        code = self.code_of(fn.function_name, str(fn.version))
        if code is None:
            body = {"errorType": "ResourceNotFoundException", "errorMessage": "no local code"}
            return json.dumps(body).encode(), "Unhandled"
        self._reclaim_stdout()
        environment = dict(fn.environment_vars or {})
        context = LambdaContext(
            function_name=fn.function_name,
            function_version=str(fn.version),
            invoked_function_arn=fn.function_arn + (f":{alias}" if alias else ""),
            memory_limit_in_mb=code.memory_mb,
            aws_request_id=str(uuid.uuid4()),
            deadline=time.time() + code.timeout,
            log_group_name=f"/aws/lambda/{fn.function_name}",
            log_stream_name=self.log_stream(fn.function_name, str(fn.version)),
        )
        started = time.perf_counter()
        error: str | None = None
        # The function's variables for the whole invocation, in this thread: handlers and
        # their libraries read settings when called too (Powertools' metric namespace), and
        # the process's environment is not theirs to rely on (Lambda gives each function a
        # process of its own).
        with self.stdout.capture() as out, thread_environment({**self.base_env, **environment}):
            try:
                handler = self._handler(fn.function_name, environment, code, str(fn.version))
                result = handler(event, context)
                payload = json.dumps(result).encode()
            except Exception as exc:  # a handler's failure is the invocation's error
                error = "Unhandled"
                payload = json.dumps(
                    {
                        "errorType": type(exc).__name__,
                        "errorMessage": str(exc),
                        "stackTrace": traceback.format_tb(exc.__traceback__),
                    }
                ).encode()
                traceback.print_exc(file=out)
        self._keep_logs(fn.function_name, out.getvalue(), str(fn.version))
        self._lambda_metrics(fn, alias, error is not None, time.perf_counter() - started)
        return payload, error

    def run_async(self, fn: Any, event: Any, alias: str | None) -> None:
        """An ``Event`` invocation: retried as Lambda retries it, then dead-lettered."""
        code = self.code_of(fn.function_name, str(fn.version))
        payload, error = self.run(fn, event, alias)
        for delay in ASYNC_RETRY_DELAYS:
            if error is None:
                return
            time.sleep(self.settings.scaled(delay))
            payload, error = self.run(fn, event, alias)
        if error is None:
            return
        target = code.dead_letter_arn if code is not None else None
        message = _error_message(payload)
        if not target:
            self.feed.emit(
                "lambda",
                f"{fn.function_name}: an asynchronous event failed 3 times and is dropped "
                f"(no dead-letter queue): {message}",
                function=fn.function_name,
            )
            return
        self._dead_letter(target, event, message)
        self.feed.emit(
            "lambda",
            f"{fn.function_name}: an asynchronous event failed 3 times; kept in its dead-letter "
            f"queue {target.rsplit(':', 1)[-1]}: {message}",
            function=fn.function_name,
        )

    def _dead_letter(self, queue_arn: str, event: Any, message: str) -> None:
        """The event as Lambda's dead-letter message: the event, and why in its attributes."""
        _, _, _, region, account, name = queue_arn.split(":", 5)
        queue = sqs_backends[account][region].get_queue(name)
        attributes = {
            "RequestID": {"DataType": "String", "StringValue": str(uuid.uuid4())},
            "ErrorCode": {"DataType": "Number", "StringValue": "200"},
            "ErrorMessage": {"DataType": "String", "StringValue": message[:1000]},
        }
        sqs_backends[account][region].send_message(
            queue.name, json.dumps(event), message_attributes=attributes
        )

    def _lambda_metrics(self, fn: Any, alias: str | None, failed: bool, seconds: float) -> None:
        """Lambda's metric dimension sets: across all functions, by function, by alias, and by
        the version an alias ran (CloudWatch keeps each set as a metric of its own)."""
        dimension_sets: list[dict[str, str]] = [{}, {"FunctionName": fn.function_name}]
        if alias:
            resource = f"{fn.function_name}:{alias}"
            dimension_sets.append({"FunctionName": fn.function_name, "Resource": resource})
            dimension_sets.append(
                {
                    "FunctionName": fn.function_name,
                    "Resource": resource,
                    "ExecutedVersion": str(fn.version),
                }
            )
        for dims in dimension_sets:
            self.metrics.put("AWS/Lambda", "Invocations", dims, 1, "Count")
            self.metrics.put("AWS/Lambda", "Errors", dims, 1 if failed else 0, "Count")
            self.metrics.put("AWS/Lambda", "Duration", dims, seconds * 1000, "Milliseconds")


def _error_message(payload: bytes) -> str:
    try:
        body = json.loads(payload)
        return f"{body.get('errorType', 'Error')}: {body.get('errorMessage', '')}"
    except (ValueError, AttributeError):
        return payload.decode("utf-8", "replace")[:300]


def _resolve(backend: Any, function_name: str, qualifier: str | None) -> tuple[Any, str | None]:
    """The version an invocation runs, by the alias's routing weights; and the alias, if any."""
    name = function_name.split(":function:")[-1]
    if ":" in name:
        name, qualifier = name.split(":", 1)
    fn = backend.get_function(name, qualifier)  # unknown: ResourceNotFoundException
    if not qualifier or qualifier == "$LATEST" or qualifier.isdigit():
        return fn, None
    alias = backend.get_alias(qualifier, name)
    weights = (alias.routing_config or {}).get("AdditionalVersionWeights") or {}
    draw, total = random.random(), 0.0
    for version, weight in weights.items():
        total += float(weight)
        if draw < total:
            return backend.get_function(name, version), qualifier
    return fn, qualifier


class _ThreadValue:
    """A class attribute whose value is per thread (a data descriptor)."""

    def __init__(self, name: str, local: threading.local) -> None:
        self.name = name
        self.local = local

    def __get__(self, instance: Any, owner: Any = None) -> Any:
        try:
            return getattr(self.local, self.name)
        except AttributeError:
            raise AttributeError(self.name) from None

    def __set__(self, instance: Any, value: Any) -> None:
        setattr(self.local, self.name, value)


class _RouterState:
    """What ``api_gateway.BaseRouter`` names inside Powertools' module: the class, except that
    ``current_event`` and ``lambda_context`` are per thread."""

    def __init__(self, router: type, local: threading.local) -> None:
        object.__setattr__(self, "_router", router)
        object.__setattr__(self, "_local", local)

    def __getattr__(self, name: str) -> Any:
        if name in _PER_INVOCATION:
            return getattr(self._local, name)
        return getattr(self._router, name)

    def __setattr__(self, name: str, value: Any) -> None:
        if name in _PER_INVOCATION:
            setattr(self._local, name, value)
        else:
            setattr(self._router, name, value)


_PER_INVOCATION = ("current_event", "lambda_context")


def _invocations_keep_their_own_event() -> None:
    """Powertools' event handler keeps the request being resolved on a class
    (``BaseRouter.current_event = ...``), shared by every resolver in the process. Lambda runs one
    invocation per process at a time; here invocations run in threads of one process, so that
    state is made per thread, or concurrent requests (to one function or two) would read each
    other's headers and bodies."""
    from aws_lambda_powertools.event_handler import api_gateway

    router = api_gateway.BaseRouter
    if isinstance(router, _RouterState):
        return
    local = threading.local()
    for name in _PER_INVOCATION:
        replace(router, name, _ThreadValue(name, local))
    replace(api_gateway, "BaseRouter", _RouterState(router, local))


def install(host: HandlerHost) -> None:
    _invocations_keep_their_own_event()

    def invoke(
        self: Any,
        function_name: str,
        qualifier: str | None,
        body: Any,
        headers: Any,
        response_headers: dict[str, str],
    ) -> bytes:
        fn, alias = _resolve(self, function_name, qualifier)
        text = body.decode() if isinstance(body, bytes) else body
        event = json.loads(text) if text else {}
        response_headers["x-amz-executed-version"] = str(fn.version)
        kind = {k.lower(): v for k, v in dict(headers or {}).items()}.get("x-amz-invocation-type")
        if kind == "Event":
            threading.Thread(target=host.run_async, args=(fn, event, alias), daemon=True).start()
            return b""
        payload, error = host.run(fn, event, alias)
        if error:
            response_headers["x-amz-function-error"] = error
        return payload

    replace(LambdaSimpleBackend, "invoke", invoke)
    publish = LambdaBackend.publish_version

    def publish_version(self: Any, function_name: str, description: str = "") -> Any:
        fn = publish(self, function_name, description)
        if fn is not None:
            host.published(fn.function_name, str(fn.version))
        return fn

    replace(LambdaBackend, "publish_version", publish_version)
