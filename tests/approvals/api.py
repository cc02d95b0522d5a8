"""The approval API's handler on moto, for the tests that need no local cloud.

The function is loaded as Lambda loads it (its module-level clients made inside moto), events are
built as API Gateway builds them (the local cloud's own conversion: with ``BinaryMediaTypes``
``*/*`` every body with a Content-Type arrives base64-encoded), and Slack is the local cloud's
Slack (its Web API and the ``response_url`` outbox) on a port of its own. Step Functions is a
recorder: moto's would refuse the made-up task token, and a test asks whether it was told at all.
"""

from __future__ import annotations

import importlib.util
import json
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import boto3
import pytest
from pipeline_common.approvals import REVIEW, Approval, ApprovalStore, signature
from pipeline_common.slack import request_signature
from werkzeug.serving import make_server
from werkzeug.wrappers import Request

from safe_deploy.localcloud.api import request_body
from safe_deploy.localcloud.channels import (
    LOCAL_APPROVER,
    LOCAL_APPROVER_GROUP,
    LOCAL_TEAM,
    LocalChannels,
    Outbox,
)
from safe_deploy.localcloud.lambdas import code_folder_importable
from safe_deploy.localcloud.state import ActivityFeed
from tests.approvals.conftest import REGION, TOKEN

APP = Path(__file__).resolve().parents[2] / "functions" / "approval_api" / "app.py"
EXECUTION = "arn:aws:states:us-east-1:123456789012:execution:training:fare-abc"  # + a suffix
BINARY_MEDIA_TYPES = ["*/*"]  # the API's, as template.yaml declares it


@dataclass
class Context:
    function_name: str = "ApprovalApiFunction"
    memory_limit_in_mb: int = 512
    invoked_function_arn: str = f"arn:aws:lambda:{REGION}:123456789012:function:ApprovalApiFunction"
    aws_request_id: str = "6f1c0e3a-0000-4000-8000-000000000000"


def load(monkeypatch: pytest.MonkeyPatch, **environment: str) -> ModuleType:
    """``functions/approval_api/app.py`` with this environment, freshly imported."""
    for name, value in {
        "POWERTOOLS_SERVICE_NAME": "safe-deploy",
        "POWERTOOLS_METRICS_NAMESPACE": "SafeDeploy",
        "POWERTOOLS_TRACE_DISABLED": "true",
        "ARTIFACT_BUCKET": "artifacts",
        **environment,
    }.items():
        monkeypatch.setenv(name, value)
    spec = importlib.util.spec_from_file_location(f"approval_api_{uuid.uuid4().hex}", APP)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    with code_folder_importable(APP.parent):  # as Lambda and the local cloud import it
        spec.loader.exec_module(module)
    return module


def event(
    method: str,
    path: str,
    resource: str | None = None,
    *,
    headers: dict[str, str] | None = None,
    query: dict[str, str] | None = None,
    body: bytes | None = None,
    identity: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A REST API proxy event; ``resource`` defaults to the route ``path`` matches."""
    headers = dict(headers or {})
    content_type = next((v for k, v in headers.items() if k.lower() == "content-type"), None)
    encoded, base64_encoded = request_body(body or b"", content_type, BINARY_MEDIA_TYPES)
    parts = path.strip("/").split("/")
    if resource is None:
        resource = path
        if parts[0] == "approvals" and len(parts) >= 2:
            resource = "/approvals/{approval_id}" + ("/plot.png" if len(parts) == 3 else "")
    return {
        "resource": resource,
        "path": path,
        "httpMethod": method,
        "headers": headers,
        "queryStringParameters": query or None,
        "pathParameters": {"approval_id": parts[1]} if "{approval_id}" in resource else None,
        "requestContext": {
            "stage": "v1",
            "resourcePath": resource,
            "httpMethod": method,
            "requestId": "r",
            "identity": {"sourceIp": "203.0.113.15", **(identity or {})},
        },
        "body": encoded,
        "isBase64Encoded": base64_encoded,
    }


class StepFunctions:
    """Step Functions as the approval API uses it, recording every call."""

    class exceptions:  # boto3 names it so
        class TaskTimedOut(Exception):
            pass

        class TaskDoesNotExist(Exception):
            pass

        class InvalidToken(Exception):
            pass

    def __init__(self) -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []

    def send_task_success(self, **kwargs: Any) -> None:
        self.calls.append(("send_task_success", kwargs))

    def send_task_failure(self, **kwargs: Any) -> None:
        self.calls.append(("send_task_failure", kwargs))


class LocalSlack:
    """The local cloud's Slack (Web API, webhook and ``response_url`` outbox) on its own port."""

    def __init__(self, folder: Path) -> None:
        self.channels = LocalChannels(Outbox(folder, ActivityFeed()))
        self._server = make_server(
            "127.0.0.1", 0, Request.application(self.channels.handle_slack), threaded=True
        )
        self.origin = f"http://127.0.0.1:{self._server.server_port}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        self.folder = folder

    @property
    def api_url(self) -> str:
        return f"{self.origin}/_local/slack/api"

    @property
    def response_url(self) -> str:
        return f"{self.origin}/_local/slack/response/{LOCAL_TEAM}/1/abc"

    def responses(self) -> list[dict[str, Any]]:
        """What the approval API posted to ``response_url``, oldest first."""
        found = [json.loads(p.read_text()) for p in sorted((self.folder / "slack").glob("*.json"))]
        return [m["message"] for m in found if m["via"] == "response_url"]

    def stop(self) -> None:
        self._server.shutdown()
        self._thread.join(timeout=5)


@contextmanager
def local_slack(folder: Path) -> Iterator[LocalSlack]:
    slack = LocalSlack(folder)
    try:
        yield slack
    finally:
        slack.stop()


@dataclass
class World:
    """A deployed approval API in moto: a pending approval, its keys, Slack, Step Functions."""

    app: ModuleType
    table: Any
    approval: Approval
    link_key: str
    slack_secret: str
    slack: LocalSlack
    sfn: StepFunctions
    signing_secret_arn: str
    answers: list[dict[str, Any]] = field(default_factory=list)

    def renew(self) -> None:
        """A new pending approval to decide (or not); Step Functions' record emptied."""
        self.approval = new_approval(self.table)
        self.sfn.calls.clear()
        self.answers.clear()

    def call(self, request: dict[str, Any]) -> dict[str, Any]:
        answer: dict[str, Any] = self.app.lambda_handler(request, Context())
        self.answers.append(answer)
        return answer

    def status(self) -> str:
        item = self.table.get_item(Key={"approval_id": self.approval.approval_id})["Item"]
        return str(item["status"])

    def link_fields(self, approval_id: str | None = None, purpose: str = REVIEW) -> dict[str, str]:
        approval_id = approval_id or self.approval.approval_id
        expires = self.approval.expires_at
        return {
            "expires": str(expires),
            "sig": signature(approval_id, expires, self.link_key, purpose),
        }

    def slack_headers(self, body: bytes, age: float = 0) -> dict[str, str]:
        timestamp = str(int(time.time() - age))
        return {
            "Content-Type": "application/x-www-form-urlencoded",
            "X-Slack-Request-Timestamp": timestamp,
            "X-Slack-Signature": request_signature(self.slack_secret, timestamp, body),
        }


def make_world(
    monkeypatch: pytest.MonkeyPatch, table: Any, slack: LocalSlack, **environment: str
) -> World:
    manager = boto3.client("secretsmanager", region_name=REGION)
    link_key = "link-key-" + uuid.uuid4().hex
    slack_secret = "slack-secret-" + uuid.uuid4().hex
    suffix = uuid.uuid4().hex[:8]
    signing_arn = manager.create_secret(Name=f"signing-{suffix}", SecretString=link_key)["ARN"]
    slack_arn = manager.create_secret(Name=f"slack-{suffix}", SecretString=slack_secret)["ARN"]
    token_arn = manager.create_secret(
        Name=f"bot-{suffix}", SecretString=slack.channels.slack_api.bot_token
    )["ARN"]
    app = load(
        monkeypatch,
        **{
            "APPROVALS_TABLE": table.name,
            "SIGNING_SECRET_ARN": signing_arn,
            "SLACK_SIGNING_SECRET_ARN": slack_arn,
            "SLACK_TEAM_ID": LOCAL_TEAM,
            "SLACK_APPROVER_IDS": LOCAL_APPROVER,
            "SLACK_APPROVER_GROUP": LOCAL_APPROVER_GROUP,
            "SLACK_BOT_TOKEN_SECRET_ARN": token_arn,
            "SLACK_API_URL": slack.api_url,
            **environment,
        },
    )
    sfn = StepFunctions()
    app.SFN = sfn  # type: ignore[attr-defined]
    return World(app, table, new_approval(table), link_key, slack_secret, slack, sfn, signing_arn)


def new_approval(table: Any) -> Approval:
    """A pending approval, of a run of its own."""
    return ApprovalStore(table).create(
        execution_arn=f"{EXECUTION}-{uuid.uuid4().hex[:8]}",
        model_id="fare-abc",
        task_token=TOKEN,
        evidence={"validation_rmse": 3.1},
        timeout_seconds=3600,
        now=time.time(),
    )


def slack_payload(
    world: World,
    value: str,
    *,
    user: str = LOCAL_APPROVER,
    team: str = LOCAL_TEAM,
    name: str = "carol",
) -> bytes:
    from urllib.parse import urlencode

    payload = {
        "type": "block_actions",
        "user": {"id": user, "username": name, "team_id": team},
        "team": {"id": team, "domain": "fares"},
        "actions": [{"action_id": value.split(":")[0], "value": value, "type": "button"}],
        "response_url": world.slack.response_url,
    }
    return urlencode({"payload": json.dumps(payload)}).encode()


def header(answer: dict[str, Any], name: str) -> str:
    """A header of a proxy answer (Powertools writes REST answers' as ``multiValueHeaders``)."""
    for key, values in (answer.get("multiValueHeaders") or {}).items():
        if key.lower() == name.lower():
            return ", ".join(values)
    for key, value in (answer.get("headers") or {}).items():
        if key.lower() == name.lower():
            return str(value)
    return ""


def message_of(answer: dict[str, Any]) -> str:
    """What a refusal tells a person: JSON's ``message``, or an HTML page's heading."""
    content_type = header(answer, "Content-Type")
    body = answer.get("body") or ""
    if content_type.startswith("application/json"):
        document = json.loads(body)
        return str(document.get("message", "")) if isinstance(document, dict) else ""
    if content_type.startswith("text/html"):
        return body.split("<h1>", 1)[1].split("</h1>", 1)[0] if "<h1>" in body else ""
    return ""
