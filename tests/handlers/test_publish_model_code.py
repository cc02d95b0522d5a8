"""publish_model_code: the custom resource that puts model/ where the PrepareData job reads it,
and always answers CloudFormation (a custom resource that never answers hangs the stack for an
hour)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from tests.handlers.support import REPO, Cloud, FakeLambdaContext, Loader, load_event

MODEL_FILES = sorted(
    str(p.relative_to(REPO / "model"))
    for p in [*(REPO / "model").glob("*.py"), REPO / "model" / "requirements.txt"]
)  # what the function's Makefile bundles


@dataclass
class CloudFormationResponses:
    """A stand-in for the pre-signed S3 URL CloudFormation waits on."""

    url: str = ""
    received: list[dict[str, Any]] = field(default_factory=list)

    @property
    def only(self) -> dict[str, Any]:
        (response,) = self.received
        return response


@pytest.fixture
def response_url() -> Iterator[CloudFormationResponses]:
    responses = CloudFormationResponses()

    class Handler(BaseHTTPRequestHandler):
        def do_PUT(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            responses.received.append(
                {
                    "path": self.path,
                    "content_type": self.headers.get("Content-Type"),
                    "body": json.loads(body),
                }
            )
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    responses.url = f"http://127.0.0.1:{server.server_address[1]}/cloudformation-response"
    yield responses
    server.shutdown()
    server.server_close()
    thread.join()


def custom_resource_event(
    name: str, cloud: Cloud, responses: CloudFormationResponses, bucket: str | None = None
) -> dict[str, Any]:
    event = load_event(name)
    event["ResponseURL"] = f"{responses.url}?X-Amz-Signature=0a9b8c"
    event["ResourceProperties"]["Bucket"] = bucket or cloud.ref("ArtifactBucket")
    return event


def test_create_publishes_the_model_code_under_its_hash_and_answers_success(
    cloud: Cloud,
    load_handler: Loader,
    context: FakeLambdaContext,
    response_url: CloudFormationResponses,
) -> None:
    app = load_handler("publish_model_code")
    event = custom_resource_event("publish_model_code", cloud, response_url)
    bucket = event["ResourceProperties"]["Bucket"]

    assert app.lambda_handler(event, context) is None

    answer = response_url.only
    assert answer["path"] == "/cloudformation-response?X-Amz-Signature=0a9b8c"
    assert answer["content_type"] == ""  # what the pre-signed URL was signed for
    body = answer["body"]
    assert body["Status"] == "SUCCESS"
    uri = body["Data"]["S3Uri"]
    assert body["PhysicalResourceId"] == uri
    assert {k: body[k] for k in ("StackId", "RequestId", "LogicalResourceId")} == {
        k: event[k] for k in ("StackId", "RequestId", "LogicalResourceId")
    }
    assert uri.startswith(f"s3://{bucket}/code/")
    root = uri.removeprefix(f"s3://{bucket}/")
    listed = cloud.s3.list_objects_v2(Bucket=bucket, Prefix=root)
    assert sorted(o["Key"].removeprefix(f"{root}model/") for o in listed["Contents"]) == MODEL_FILES
    published = cloud.s3.get_object(Bucket=bucket, Key=f"{root}model/prepare.py")["Body"].read()
    assert published == (REPO / "model" / "prepare.py").read_bytes()


def test_the_same_code_publishes_to_the_same_place(
    cloud: Cloud,
    load_handler: Loader,
    context: FakeLambdaContext,
    response_url: CloudFormationResponses,
) -> None:
    app = load_handler("publish_model_code")
    create = custom_resource_event("publish_model_code", cloud, response_url)
    update = create | {"RequestType": "Update", "PhysicalResourceId": "s3://old/code/0/"}

    app.lambda_handler(create, context)
    app.lambda_handler(update, context)

    first, second = (r["body"] for r in response_url.received)
    assert second["Status"] == "SUCCESS"
    assert second["Data"]["S3Uri"] == first["Data"]["S3Uri"]


def test_a_missing_bucket_answers_failed_with_the_reason(
    cloud: Cloud,
    load_handler: Loader,
    context: FakeLambdaContext,
    response_url: CloudFormationResponses,
) -> None:
    app = load_handler("publish_model_code")
    event = custom_resource_event("publish_model_code", cloud, response_url, "no-such-bucket")

    app.lambda_handler(event, context)  # answered, not raised: CloudFormation would wait an hour

    body = response_url.only["body"]
    assert body["Status"] == "FAILED"
    assert "NoSuchBucket" in body["Reason"]
    assert body["Data"] == {}
    assert body["PhysicalResourceId"] == "model-code"


def test_a_failed_update_keeps_the_physical_id(
    cloud: Cloud,
    load_handler: Loader,
    context: FakeLambdaContext,
    response_url: CloudFormationResponses,
) -> None:
    app = load_handler("publish_model_code")
    previous = "s3://old-bucket/code/5e0c2b9a7d41f683/"
    event = custom_resource_event("publish_model_code", cloud, response_url, "no-such-bucket") | {
        "RequestType": "Update",
        "PhysicalResourceId": previous,
    }

    app.lambda_handler(event, context)

    body = response_url.only["body"]
    assert (body["Status"], body["PhysicalResourceId"]) == ("FAILED", previous)


def test_delete_answers_success_and_keeps_the_code(
    cloud: Cloud,
    load_handler: Loader,
    context: FakeLambdaContext,
    response_url: CloudFormationResponses,
) -> None:
    app = load_handler("publish_model_code")
    event = custom_resource_event("publish_model_code_delete", cloud, response_url)

    app.lambda_handler(event, context)

    body = response_url.only["body"]
    assert body["Status"] == "SUCCESS"
    assert body["PhysicalResourceId"] == event["PhysicalResourceId"]
    listed = cloud.s3.list_objects_v2(Bucket=event["ResourceProperties"]["Bucket"])
    assert listed["KeyCount"] == 0  # nothing uploaded, nothing deleted
