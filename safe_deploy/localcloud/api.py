"""API Gateway for the local cloud: the template's API routes on 127.0.0.1.

Each request becomes a real API Gateway REST proxy event (v1) for the route's function; a function
with ``AutoPublishAlias`` is invoked through its alias, so the alias's routing weights pick the
version (the canary split). ``AWS_IAM`` routes check a SigV4 signature made with the local
credentials. The API's metrics (Count, 4XXError, 5XXError, Latency) reach the local CloudWatch.

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
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from moto.awslambda.utils import get_backend as lambda_backend
from werkzeug.serving import BaseWSGIServer, make_server
from werkzeug.wrappers import Request, Response

from safe_deploy.localcloud.metrics import MetricStore
from safe_deploy.localcloud.state import ActivityFeed, LocalSettings

LOCAL_SECRET = "testing"  # the local cloud's credentials: any access key, this secret


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

    @property
    def pattern(self) -> re.Pattern[str]:
        regex = re.sub(r"\\\{([^}]+)\\\}", r"(?P<\1>[^/]+)", re.escape(self.path))
        return re.compile(f"^{regex}$")


@dataclass
class LocalApi:
    settings: LocalSettings
    feed: ActivityFeed
    metrics: MetricStore
    routes: list[Route] = field(default_factory=list)
    binary_media_types: list[str] = field(default_factory=list)  # "image/png", "*/*"
    local_routes: dict[str, Callable[[Request], Response]] = field(default_factory=dict)
    _server: BaseWSGIServer | None = None

    @property
    def port(self) -> int:
        assert self._server is not None
        return int(self._server.server_port)

    @property
    def origin(self) -> str:
        return f"http://127.0.0.1:{self.port}"

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
        stage, _, path = request.path.lstrip("/").partition("/")
        path = "/" + path
        candidates = [r for r in self.routes if r.stage == stage and r.pattern.match(path)]
        if not candidates:
            return _json(403, {"message": "Missing Authentication Token"})
        route = next((r for r in candidates if r.method in (request.method, "ANY")), None)
        if route is None:
            return _json(403, {"message": "Missing Authentication Token"})
        started = time.perf_counter()
        response = self._invoke(route, request, path)
        dims = {"ApiName": route.api_name, "Stage": stage}
        self.metrics.put("AWS/ApiGateway", "Count", dims, 1, "Count")
        self.metrics.put(
            "AWS/ApiGateway", "4XXError", dims, int(400 <= response.status_code < 500), "Count"
        )
        self.metrics.put(
            "AWS/ApiGateway", "5XXError", dims, int(response.status_code >= 500), "Count"
        )
        self.metrics.put(
            "AWS/ApiGateway",
            "Latency",
            dims,
            (time.perf_counter() - started) * 1000,
            "Milliseconds",
        )
        return response

    def _identity(self, route: Route, request: Request) -> dict[str, Any] | Response:
        identity: dict[str, Any] = {
            "sourceIp": request.remote_addr or "127.0.0.1",
            "userAgent": request.headers.get("User-Agent", ""),
            "caller": None,
            "user": None,
            "userArn": None,
            "accessKey": None,
            "accountId": None,
        }
        if route.authorizer != "AWS_IAM":
            return identity
        verdict = verify_sigv4(request, self.settings.region)
        if isinstance(verdict, Response):
            return verdict
        access_key = verdict
        identity.update(
            accessKey=access_key,
            accountId=self.settings.account,
            caller=access_key,
            user=access_key,
            userArn=f"arn:aws:iam::{self.settings.account}:user/{access_key}",
        )
        return identity

    def _invoke(self, route: Route, request: Request, path: str) -> Response:
        identity = self._identity(route, request)
        if isinstance(identity, Response):
            return identity
        body, base64_encoded = request_body(
            request.get_data(), request.headers.get("Content-Type"), self.binary_media_types
        )
        match = route.pattern.match(path)
        headers = dict(request.headers.items())
        query = dict(request.args.items())
        event = {
            "resource": route.path,
            "path": path,
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
                "path": f"/{route.stage}{path}",
                "stage": route.stage,
                "requestId": str(uuid.uuid4()),
                "requestTimeEpoch": int(time.time() * 1000),
                "protocol": "HTTP/1.1",
                "accountId": self.settings.account,
                "apiId": route.api_name,
                "identity": identity,
            },
            "body": body,
            "isBase64Encoded": base64_encoded,
        }
        response_headers: dict[str, str] = {}
        backend = lambda_backend(self.settings.account, self.settings.region)
        payload = backend.invoke(
            route.function_name, route.qualifier, json.dumps(event), {}, response_headers
        )
        if response_headers.get("x-amz-function-error"):
            return _json(502, {"message": "Internal server error"})
        try:
            result = json.loads(payload)
            status = int(result["statusCode"])
        except (ValueError, KeyError, TypeError):
            return _json(502, {"message": "Internal server error"})
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
            return _json(500, {"message": "Internal server error"})
        return Response(content, status=status, headers=out_headers)


def _json(status: int, body: dict[str, Any]) -> Response:
    return Response(json.dumps(body), status=status, content_type="application/json")


_CREDENTIAL = re.compile(
    r"AWS4-HMAC-SHA256 Credential=(?P<key>[^/]+)/(?P<date>\d{8})/(?P<region>[^/]+)/"
    r"(?P<service>[^/]+)/aws4_request,\s*"
    r"SignedHeaders=(?P<signed>[^,]+),\s*Signature=(?P<signature>[0-9a-f]+)"
)


def verify_sigv4(request: Request, region: str) -> str | Response:
    """The caller's access key if the request carries a valid SigV4 signature for execute-api."""
    header = request.headers.get("Authorization", "")
    match = _CREDENTIAL.match(header)
    if match is None:
        return _json(403, {"message": "Missing Authentication Token"})
    amz_date = request.headers.get("X-Amz-Date", "")
    signed = match.group("signed").split(";")
    headers = {name: request.headers.get(name, "") for name in signed}
    url = request.url
    if request.headers.get("Host"):
        parts = urlsplit(url)
        url = parts._replace(netloc=request.headers["Host"]).geturl()
    aws_request = AWSRequest(
        method=request.method, url=url, data=request.get_data(), headers=headers
    )
    aws_request.context["timestamp"] = amz_date
    credentials = Credentials(
        match.group("key"), LOCAL_SECRET, request.headers.get("X-Amz-Security-Token")
    )
    signer = SigV4Auth(credentials, match.group("service"), match.group("region"))
    canonical = signer.canonical_request(aws_request)
    expected = signer.signature(signer.string_to_sign(aws_request, canonical), aws_request)
    if expected != match.group("signature") or match.group("region") != region:
        return _json(
            403,
            {
                "message": "The request signature we calculated does not match the signature "
                "you provided. Check your AWS Secret Access Key and signing method."
            },
        )
    return match.group("key")
