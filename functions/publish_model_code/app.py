"""Custom resource: copies the model code bundled with this function to the artifact bucket.

The PrepareData processing job runs ``model/`` from there. Objects go under a content hash, so
each deploy's jobs use exactly the code of that deploy.
"""

from __future__ import annotations

import hashlib
import json
import urllib.request
from pathlib import Path

import boto3
from aws_lambda_powertools.utilities.data_classes import (
    CloudFormationCustomResourceEvent,
    event_source,
)
from aws_lambda_powertools.utilities.typing import LambdaContext
from pipeline_common.observability import logger

S3 = boto3.client("s3")
# sam build bundles model/ beside this file; run from the source tree, it is the project's model/.
BUNDLE = next(
    (
        p
        for p in (Path(__file__).parent / "model", Path(__file__).parents[2] / "model")
        if p.is_dir()
    ),
    Path(__file__).parent / "model",
)


def bundle_files() -> list[Path]:
    """The model code, without what tools leave in a source tree (caches, dot-folders), so the
    local cloud publishes what ``sam build`` bundles and the hash changes only with the code."""
    return sorted(
        p
        for p in BUNDLE.rglob("*")
        if p.is_file()
        and not any(
            part == "__pycache__" or part.startswith(".") for part in p.relative_to(BUNDLE).parts
        )
    )


def content_hash(files: list[Path]) -> str:
    digest = hashlib.sha256()
    for path in files:
        digest.update(str(path.relative_to(BUNDLE)).encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def publish(bucket: str, prefix: str) -> str:
    files = bundle_files()
    if not files:
        raise RuntimeError(f"no model code bundled under {BUNDLE}")
    root = f"{prefix.strip('/')}/{content_hash(files)}/"
    for path in files:
        S3.upload_file(str(path), bucket, f"{root}model/{path.relative_to(BUNDLE)}")
    return f"s3://{bucket}/{root}"


def answer(
    event: CloudFormationCustomResourceEvent, status: str, data: dict[str, str], reason: str = ""
) -> None:
    body = json.dumps(
        {
            "Status": status,
            "Reason": (reason or "see the function's logs")[:1000],  # responses are < 4 KiB
            "PhysicalResourceId": data.get("S3Uri", event.physical_resource_id or "model-code"),
            "StackId": event.stack_id,
            "RequestId": event.request_id,
            "LogicalResourceId": event.logical_resource_id,
            "Data": data,
        }
    ).encode()
    request = urllib.request.Request(
        event.response_url, data=body, method="PUT", headers={"Content-Type": ""}
    )
    with urllib.request.urlopen(request, timeout=30):
        pass


@logger.inject_lambda_context
@event_source(data_class=CloudFormationCustomResourceEvent)
def lambda_handler(event: CloudFormationCustomResourceEvent, context: LambdaContext) -> None:
    try:
        if event.request_type == "Delete":
            answer(event, "SUCCESS", {})  # kept: jobs of past runs may still point at it
            return
        props = event.resource_properties
        uri = publish(props["Bucket"], props.get("Prefix", "code/"))
        logger.info("model code published", extra={"uri": uri})
        answer(event, "SUCCESS", {"S3Uri": uri})
    except Exception as exc:
        logger.exception("model code not published")
        answer(event, "FAILED", {}, reason=f"{type(exc).__name__}: {exc}")
