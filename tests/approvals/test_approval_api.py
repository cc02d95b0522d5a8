"""The approval API handler on moto, where the local cloud cannot show it: a stack without a Slack
signing secret, and a key rotated while the function still caches the old one."""

from __future__ import annotations

import importlib.util
import json
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any
from urllib.parse import urlencode

import boto3
import pytest
from pipeline_common.approvals import ApprovalStore, signature

from tests.approvals.conftest import REGION, TOKEN

APP = Path(__file__).resolve().parents[2] / "functions" / "approval_api" / "app.py"


@dataclass
class Context:
    function_name: str = "ApprovalApiFunction"
    memory_limit_in_mb: int = 512
    invoked_function_arn: str = f"arn:aws:lambda:{REGION}:123456789012:function:ApprovalApiFunction"
    aws_request_id: str = "6f1c0e3a-0000-4000-8000-000000000000"


def handler(monkeypatch: pytest.MonkeyPatch, **environment: str) -> ModuleType:
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
    spec.loader.exec_module(module)
    return module


def request(method: str, path: str, resource: str, **extra: Any) -> dict[str, Any]:
    return {
        "resource": resource,
        "path": path,
        "httpMethod": method,
        "headers": extra.pop("headers", {}),
        "queryStringParameters": extra.pop("query", None),
        "pathParameters": extra.pop("path_parameters", None),
        "requestContext": {
            "stage": "v1",
            "resourcePath": resource,
            "httpMethod": method,
            "requestId": "r",
            "identity": {"sourceIp": "203.0.113.15"},
        },
        "body": extra.pop("body", None),
        "isBase64Encoded": False,
    }


def test_slack_interactivity_is_off_without_a_signing_secret(
    monkeypatch: pytest.MonkeyPatch, table: Any
) -> None:
    manager = boto3.client("secretsmanager", region_name=REGION)
    key = manager.create_secret(Name="signing", SecretString="k" * 64)["ARN"]
    app = handler(
        monkeypatch,
        APPROVALS_TABLE=table.name,
        SIGNING_SECRET_ARN=key,
        SLACK_SIGNING_SECRET_ARN="",
    )
    body = urlencode({"payload": json.dumps({"type": "block_actions"})})

    answer = app.lambda_handler(
        request("POST", "/slack/interactions", "/slack/interactions", body=body), Context()
    )

    assert answer["statusCode"] == 404
    assert "not enabled" in json.loads(answer["body"])["message"]


def test_a_link_signed_with_a_key_rotated_after_the_cache_filled_still_opens(
    monkeypatch: pytest.MonkeyPatch, table: Any
) -> None:
    manager = boto3.client("secretsmanager", region_name=REGION)
    arn = manager.create_secret(Name="signing", SecretString="old-key" * 8)["ARN"]
    app = handler(monkeypatch, APPROVALS_TABLE=table.name, SIGNING_SECRET_ARN=arn)
    approval = ApprovalStore(table).create(
        execution_arn="arn:aws:states:us-east-1:123456789012:execution:T:fare-abc",
        model_id="fare-abc",
        task_token=TOKEN,
        evidence={"validation_rmse": 3.1},
        timeout_seconds=3600,
        now=time.time(),
    )
    path = f"/approvals/{approval.approval_id}"

    def open_link(key: str) -> dict[str, Any]:
        sig = signature(approval.approval_id, approval.expires_at, key)
        event = request(
            "GET",
            path,
            "/approvals/{approval_id}",
            query={"expires": str(approval.expires_at), "sig": sig},
            path_parameters={"approval_id": approval.approval_id},
        )
        answer: dict[str, Any] = app.lambda_handler(event, Context())
        return answer

    assert open_link("old-key" * 8)["statusCode"] == 200  # the function now caches the old key
    manager.put_secret_value(SecretId=arn, SecretString="new-key" * 8)

    opened = open_link("new-key" * 8)  # signed by a request function that read the new key

    assert opened["statusCode"] == 200
    assert "Promote model fare-abc to production?" in opened["body"]
    assert open_link("old-key" * 8)["statusCode"] == 200  # AWSPREVIOUS still verifies
    assert open_link("forged-key" * 8)["statusCode"] == 403
    assert TOKEN not in json.dumps(opened)
