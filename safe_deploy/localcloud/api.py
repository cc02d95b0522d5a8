"""API Gateway for the local cloud: the template's API routes on 127.0.0.1.

Each request becomes a real API Gateway REST proxy event (v1) for the route's function; a function
with ``AutoPublishAlias`` is invoked through its alias, so the alias's routing weights pick the
version (the canary split). The API's metrics (Count, 4XXError, 5XXError, Latency) reach the local
CloudWatch. What API Gateway refuses, the local API refuses, in API Gateway's words:

- ``AWS_IAM`` routes need a SigV4 signature as API Gateway checks it (``sigv4``); the event's
  ``requestContext.identity`` names the signer (``userArn``, ``caller``, ``user``, ``accessKey``,
  ``accountId``): a user or role session of moto's IAM, or the local catch-all principal
  ``user/<access key>`` signing with ``LOCAL_SECRET``;
- an API's resource policy is enforced on every route (``resource_policy``): 403
  ``{"Message": "User: ... is not authorized to perform: execute-api:Invoke on resource: ..."}``;
- a function with reserved concurrency answers more concurrent requests than it reserves with
  Lambda's throttle, which API Gateway turns into a 500 ``Internal server error`` (AWS Lambda
  Developer Guide, "Handling Lambda errors with an API Gateway API": an invocation Lambda rejects
  is a 500). Only requests through this API are counted, not direct invocations;
- a stage with ``AccessLogSetting`` gets one line per request, refused ones included
  (``access_log``).

Payloads are converted by the API's ``binaryMediaTypes`` as a REST API with Lambda proxy
integration converts them (AWS, "Binary media types for REST APIs in API Gateway" and "Content
type conversions in API Gateway"):

- a request body whose ``Content-Type`` matches reaches Lambda base64-encoded with
  ``isBase64Encoded: true``; any other body reaches it as UTF-8 text;
- a response with ``isBase64Encoded: true`` is decoded to bytes only when the *first* media type
  of the request's ``Accept`` header matches; otherwise the client gets the base64 text as is.
  A body that does not decode is a configuration error: 500.

An entry may use ``*`` for the type or the subtype (``image/*``, ``*/*``); the request's own value
is taken literally, so ``Accept: */*`` matches ``*/*`` but not ``image/png``.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import secrets
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from moto.awslambda.utils import get_backend as lambda_backend
from werkzeug.serving import BaseWSGIServer, make_server
from werkzeug.wrappers import Request, Response

from safe_deploy.localcloud.access_log import AccessLogSetting, AccessLogWriter, render
from safe_deploy.localcloud.metrics import MetricStore
from safe_deploy.localcloud.resource_policy import (
    Invocation,
    ResourcePolicy,
    authorize,
    execute_api_arn,
)
from safe_deploy.localcloud.sigv4 import Principal, Refusal, authenticate, find_principal
from safe_deploy.localcloud.state import ActivityFeed, LocalSettings

LOCAL_SECRET = "testing"  # the local cloud's credentials: any access key, this secret
INTERNAL_ERROR = "Internal server error"


def template_media_types(values: list[Any]) -> list[str]:
    """A template's ``BinaryMediaTypes`` (``image~1png``: ``~1`` stands for ``/``) as API Gateway
    holds them (``image/png``)."""
    return [str(value).replace("~1", "/") for value in values]


def _first_media_type(header: str | None) -> str:
    """``image/avif,image/*;q=0.8`` -> ``image/avif``: API Gateway honours only the first."""
    return (header or "").split(",", 1)[0].split(";", 1)[0].strip().lower()


def is_binary(header: str | None, binary_media_types: list[str]) -> bool:
    """Whether a request's ``Content-Type`` or ``Accept`` header matches the API's binary types."""
    kind, slash, subtype = _first_media_type(header).partition("/")
    if not (kind and slash and subtype):
        return False
    for entry in binary_media_types:
        entry_kind, _, entry_subtype = entry.strip().lower().partition("/")
        if entry_kind in ("*", kind) and entry_subtype in ("*", subtype):
            return True
    return False


def request_body(
    raw: bytes, content_type: str | None, binary_media_types: list[str]
) -> tuple[str | None, bool]:
    """The proxy event's ``body`` and ``isBase64Encoded`` for a request's raw body."""
    if not raw:
        return None, False
    if is_binary(content_type, binary_media_types):
        return base64.b64encode(raw).decode("ascii"), True
    return raw.decode("utf-8", errors="replace"), False


class NotBase64(ValueError):
    """A proxy response flagged ``isBase64Encoded`` whose body is not base64."""


def response_body(body: str, base64_encoded: bool, accept: str | None, types: list[str]) -> bytes:
    """What the client receives for a proxy response's ``body``: decoded only for a binary
    ``Accept``; otherwise the text as the function wrote it (base64 included)."""
    if not (base64_encoded and is_binary(accept, types)):
        return body.encode()
    try:
        return base64.b64decode(body)
    except binascii.Error as error:
        raise NotBase64(str(error)) from error


@dataclass(frozen=True)
class Route:
    method: str
    path: str  # "/approvals/{approval_id}"
    function_name: str
    qualifier: str | None
    authorizer: str  # "NONE" or "AWS_IAM"
    api_name: str
    stage: str
    api_id: str = ""  # the RestApi's physical id: resource policies and stages are per API

    @property
    def pattern(self) -> re.Pattern[str]:
        regex = re.sub(r"\\\{([^}]+)\\\}", r"(?P<\1>[^/]+)", re.escape(self.path))
        return re.compile(f"^{regex}$")

    @property
    def api(self) -> str:
        return self.api_id or self.api_name


@dataclass(frozen=True)
class StageSettings:
    """What an ``AWS::ApiGateway::Stage`` sets that the local API acts on."""

    access_log: AccessLogSetting | None = None


@dataclass
class Exchange:
    """One request as API Gateway sees it: what its access log line and metrics are made of."""

    request: Request
    request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    extended_request_id: str = field(
        default_factory=lambda: base64.b64encode(secrets.token_bytes(12)).decode()
    )
    received: float = field(default_factory=time.time)
    clock_start: float = field(default_factory=time.perf_counter)
    stage: str = ""
    path: str = "/"
    route: Route | None = None
    identity: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    integration_latency_ms: int | None = None
    integration_status: int | None = None
    status: int = 0
    response_length: int = 0
    latency_ms: float = 0.0

    def finish(self, response: Response) -> None:
        self.status = response.status_code
        self.response_length = len(response.get_data())
        self.latency_ms = (time.perf_counter() - self.clock_start) * 1000

    def variables(self) -> dict[str, object]:
        """``$context`` variables by name (``identity.sourceIp``)."""
        received = datetime.fromtimestamp(self.received, UTC)
        route = self.route
        values: dict[str, object] = {
            "requestId": self.request_id,
            "extendedRequestId": self.extended_request_id,
            "httpMethod": self.request.method,
            "resourcePath": route.path if route else None,
            "path": f"/{self.stage}{self.path}",
            "stage": self.stage,
            "apiId": route.api if route else None,
            "status": self.status,
            "protocol": self.request.environ.get("SERVER_PROTOCOL", "HTTP/1.1"),
            "domainName": self.request.host,
            "requestTime": received.strftime("%d/%b/%Y:%H:%M:%S +0000"),
            "requestTimeEpoch": int(self.received * 1000),
            "responseLength": self.response_length,
            "responseLatency": int(self.latency_ms),
            "integrationLatency": self.integration_latency_ms,
            "integration.latency": self.integration_latency_ms,
            "integrationStatus": self.integration_status,
            "integration.status": self.integration_status,
            "error.message": self.error,
            "error.messageString": json.dumps(self.error) if self.error else None,
        }
        for name, value in self.identity.items():
            values[f"identity.{name}"] = value
        return values


class ConcurrencyGate:
    """Invocations in flight per function, held to the function's reserved concurrency."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._in_flight: dict[str, int] = {}

    @contextmanager
    def slot(self, function: str, limit: int | None) -> Iterator[bool]:
        """Yields whether the invocation may run (``False``: Lambda throttles it)."""
        with self._lock:
            running = self._in_flight.get(function, 0)
            admitted = limit is None or running < limit
            if admitted:
                self._in_flight[function] = running + 1
        try:
            yield admitted
        finally:
            if admitted:
                with self._lock:
                    self._in_flight[function] -= 1


@dataclass
class LocalApi:
    settings: LocalSettings
    feed: ActivityFeed
    metrics: MetricStore
    routes: list[Route] = field(default_factory=list)
    binary_media_types: list[str] = field(default_factory=list)  # "image/png", "*/*"
    local_routes: dict[str, Callable[[Request], Response]] = field(default_factory=dict)
    policies: dict[str, ResourcePolicy] = field(default_factory=dict)  # by API id
    stages: dict[tuple[str, str], StageSettings] = field(default_factory=dict)  # (API id, stage)
    # API Gateway's account settings: (account, region) -> the CloudWatch Logs role ARN
    cloudwatch_roles: dict[tuple[str, str], str] = field(default_factory=dict)
    reserved_concurrency: dict[str, int] = field(default_factory=dict)  # function name -> units
    clock: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))
    _server: BaseWSGIServer | None = None
    _gate: ConcurrencyGate = field(default_factory=ConcurrencyGate)
    _access_logs: AccessLogWriter = field(default_factory=AccessLogWriter)

    @property
    def port(self) -> int:
        assert self._server is not None
        return int(self._server.server_port)

    @property
    def origin(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def hosts(self) -> list[str]:
        """The names this API answers to (``Host``), the canonical one first."""
        if self._server is None:
            raise RuntimeError("the local API is not serving: it has no host to sign for")
        return [f"127.0.0.1:{self.port}", f"localhost:{self.port}"]

    def base_url(self, stage: str) -> str:
        return f"{self.origin}/{stage}"

    def start(self) -> None:
        self._server = make_server("127.0.0.1", self.settings.api_port, self._wsgi, threaded=True)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    def _wsgi(self, environ: dict[str, Any], start_response: Any) -> Any:
        request = Request(environ)
        response = self.handle(request)
        return response(environ, start_response)

    def handle(self, request: Request) -> Response:
        for prefix, handler in self.local_routes.items():
            if request.path.startswith(prefix):
                return handler(request)
        exchange = Exchange(request)
        response = self._serve(request, exchange)
        exchange.finish(response)
        if exchange.route is not None:
            self._record_metrics(exchange)
        self._log_access(exchange)
        return response

    # ------------------------------------------------------------------ the request's way
    def _serve(self, request: Request, exchange: Exchange) -> Response:
        stage, _, rest = request.path.lstrip("/").partition("/")
        exchange.stage, exchange.path = stage, "/" + rest
        exchange.identity = {
            "sourceIp": request.remote_addr or "127.0.0.1",
            "userAgent": request.headers.get("User-Agent", ""),
            "caller": None,
            "user": None,
            "userArn": None,
            "accessKey": None,
            "accountId": None,
        }
        candidates = [r for r in self.routes if r.stage == stage and r.pattern.match(exchange.path)]
        route = next((r for r in candidates if r.method in (request.method, "ANY")), None)
        if route is None:
            return self._refuse(
                exchange, "MissingAuthenticationTokenException", "Missing Authentication Token"
            )
        exchange.route = route
        principal: Principal | None = None
        if route.authorizer == "AWS_IAM":
            verdict = self._authenticate(request)
            if isinstance(verdict, Refusal):
                return self._refuse(exchange, verdict.error_type, verdict.message)
            principal = verdict
            exchange.identity.update(
                accessKey=principal.access_key,
                accountId=principal.account,
                caller=principal.caller_id,
                user=principal.caller_id,
                userArn=principal.user_arn,
            )
        settings = self.settings
        invocation = Invocation(
            execute_api_arn(
                settings.region, settings.account, route.api, stage, request.method, exchange.path
            ),
            exchange.identity["sourceIp"],
            principal.caller if principal else None,
        )
        decision = authorize(
            self.policies.get(route.api),
            invocation,
            iam_authorized=principal is not None,
            api_account=settings.account,
        )
        if not decision.allowed:
            return self._refuse(
                exchange, "AccessDeniedException", decision.message(invocation), key="Message"
            )
        return self._invoke(route, request, exchange)

    def _authenticate(self, request: Request) -> Principal | Refusal:
        settings = self.settings
        return authenticate(
            request,
            region=settings.region,
            hosts=self.hosts,
            now=self.clock(),
            principal_of=lambda key: find_principal(
                key, account=settings.account, local_secret=LOCAL_SECRET
            ),
        )

    def _refuse(
        self, exchange: Exchange, error_type: str, message: str, key: str = "message"
    ) -> Response:
        exchange.error = message
        return _json(403, {key: message}, {"x-amzn-ErrorType": error_type})

    def _invoke(self, route: Route, request: Request, exchange: Exchange) -> Response:
        body, base64_encoded = request_body(
            request.get_data(), request.headers.get("Content-Type"), self.binary_media_types
        )
        match = route.pattern.match(exchange.path)
        headers = dict(request.headers.items())
        query = dict(request.args.items())
        event = {
            "resource": route.path,
            "path": exchange.path,
            "httpMethod": request.method,
            "headers": headers,
            "multiValueHeaders": {k: request.headers.getlist(k) for k in headers},
            "queryStringParameters": query or None,
            "multiValueQueryStringParameters": {k: request.args.getlist(k) for k in query} or None,
            "pathParameters": match.groupdict() if match and match.groupdict() else None,
            "stageVariables": None,
            "requestContext": {
                "resourcePath": route.path,
                "httpMethod": request.method,
                "path": f"/{route.stage}{exchange.path}",
                "stage": route.stage,
                "requestId": exchange.request_id,
                "extendedRequestId": exchange.extended_request_id,
                "requestTimeEpoch": int(exchange.received * 1000),
                "protocol": request.environ.get("SERVER_PROTOCOL", "HTTP/1.1"),
                "domainName": request.host,
                "accountId": self.settings.account,
                "apiId": route.api,
                "identity": dict(exchange.identity),
            },
            "body": body,
            "isBase64Encoded": base64_encoded,
        }
        response_headers: dict[str, str] = {}
        backend = lambda_backend(self.settings.account, self.settings.region)
        reserved = self.reserved_concurrency.get(route.function_name)
        with self._gate.slot(route.function_name, reserved) as admitted:
            if not admitted:  # Lambda's 429, which API Gateway answers with a 500
                exchange.integration_status = 429
                exchange.error = INTERNAL_ERROR
                self.feed.emit(
                    "api",
                    f"{route.function_name} throttled: more than its reserved concurrency "
                    f"({reserved}) in flight",
                )
                return _json(500, {"message": INTERNAL_ERROR})
            started = time.perf_counter()
            payload = backend.invoke(
                route.function_name, route.qualifier, json.dumps(event), {}, response_headers
            )
            exchange.integration_latency_ms = int((time.perf_counter() - started) * 1000)
        exchange.integration_status = 200
        if response_headers.get("x-amz-function-error"):
            exchange.error = INTERNAL_ERROR
            return _json(502, {"message": INTERNAL_ERROR})
        try:
            result = json.loads(payload)
            status = int(result["statusCode"])
        except (ValueError, KeyError, TypeError):
            exchange.error = INTERNAL_ERROR
            return _json(502, {"message": INTERNAL_ERROR})
        out_headers = dict(result.get("headers") or {})
        for name, values in (result.get("multiValueHeaders") or {}).items():
            out_headers[name] = ", ".join(values)
        try:
            content = response_body(
                result.get("body") or "",
                bool(result.get("isBase64Encoded")),
                request.headers.get("Accept"),
                self.binary_media_types,
            )
        except NotBase64:
            exchange.error = INTERNAL_ERROR
            return _json(500, {"message": INTERNAL_ERROR})
        return Response(content, status=status, headers=out_headers)

    # ------------------------------------------------------------------ what it leaves behind
    def _record_metrics(self, exchange: Exchange) -> None:
        assert exchange.route is not None
        dims = {"ApiName": exchange.route.api_name, "Stage": exchange.stage}
        status = exchange.status
        self.metrics.put("AWS/ApiGateway", "Count", dims, 1, "Count")
        self.metrics.put("AWS/ApiGateway", "4XXError", dims, int(400 <= status < 500), "Count")
        self.metrics.put("AWS/ApiGateway", "5XXError", dims, int(status >= 500), "Count")
        self.metrics.put("AWS/ApiGateway", "Latency", dims, exchange.latency_ms, "Milliseconds")

    def _stage_settings(self, exchange: Exchange) -> StageSettings | None:
        if exchange.route is not None:
            return self.stages.get((exchange.route.api, exchange.stage))
        # no route: the stage is known by its name alone
        return next((s for (_, name), s in self.stages.items() if name == exchange.stage), None)

    def _log_access(self, exchange: Exchange) -> None:
        stage = self._stage_settings(exchange)
        if stage is None or stage.access_log is None:
            return
        setting = stage.access_log
        api = exchange.route.api if exchange.route else "unrouted"
        self._access_logs.write(
            setting,
            f"{api}_{exchange.stage}",
            int(exchange.received * 1000),
            render(setting.format, exchange.variables()),
        )


def _json(status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> Response:
    return Response(
        json.dumps(body), status=status, content_type="application/json", headers=headers
    )
