"""The request function on moto, with the sample event ``sam local invoke`` uses: the links it
sends are signed with the key the secret holds now, never a cached one that was revoked since."""

from __future__ import annotations

import importlib.util
import json
import uuid
from pathlib import Path
from types import ModuleType
from typing import Any
from urllib.parse import parse_qs, urlsplit

import boto3
import pytest
from pipeline_common.approvals import verify
from pipeline_common.secrets import rotate_key

from tests.approvals.api import Context
from tests.approvals.conftest import REGION

REPO = Path(__file__).resolve().parents[2]
APP = REPO / "functions" / "request_approval" / "app.py"
BASE = "https://abc.execute-api.us-east-1.amazonaws.com/v1"


def load(monkeypatch: pytest.MonkeyPatch, **environment: str) -> ModuleType:
    for name, value in {
        "POWERTOOLS_SERVICE_NAME": "safe-deploy",
        "POWERTOOLS_METRICS_NAMESPACE": "SafeDeploy",
        "POWERTOOLS_TRACE_DISABLED": "true",
        "API_BASE_URL": BASE,
        **environment,
    }.items():
        monkeypatch.setenv(name, value)
    spec = importlib.util.spec_from_file_location(f"request_approval_{uuid.uuid4().hex}", APP)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def sample(execution: str) -> dict[str, Any]:
    event: dict[str, Any] = json.loads((REPO / "events" / "request_approval.json").read_text())
    event["execution_arn"] = event["execution_arn"].rsplit(":", 1)[0] + f":{execution}"
    event["model_id"] = execution
    return event


def test_links_are_signed_with_the_key_the_secret_holds_now(
    monkeypatch: pytest.MonkeyPatch, table: Any
) -> None:
    manager = boto3.client("secretsmanager", region_name=REGION)
    arn = manager.create_secret(Name="signing", SecretString="first-key" * 7)["ARN"]
    sns, sqs = boto3.client("sns", region_name=REGION), boto3.client("sqs", region_name=REGION)
    topic = sns.create_topic(Name="approvers")["TopicArn"]
    queue = sqs.create_queue(QueueName="approver-inbox")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])
    sns.subscribe(
        TopicArn=topic,
        Protocol="sqs",
        Endpoint=queue_arn["Attributes"]["QueueArn"],
        Attributes={"RawMessageDelivery": "true"},
    )
    app = load(monkeypatch, APPROVALS_TABLE=table.name, SIGNING_SECRET_ARN=arn, TOPIC_ARN=topic)

    app.lambda_handler(sample("fare-first"), Context())  # the function caches the key now
    rotate_key(manager, arn, revoke_previous=True)  # ... which no longer verifies anything
    app.lambda_handler(sample("fare-second"), Context())

    messages = sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10)["Messages"]
    (text,) = [m["Body"] for m in messages if "fare-second" in m["Body"]]
    link = urlsplit(text.split("Review and decide: ", 1)[1].split()[0])
    query = {k: v[0] for k, v in parse_qs(link.query).items()}
    current = manager.get_secret_value(SecretId=arn)["SecretString"]
    approval_id = link.path.rsplit("/", 1)[-1]
    assert verify(approval_id, query["expires"], query["sig"], [current], 0) > 0
