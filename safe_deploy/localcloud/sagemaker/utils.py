"""What SageMaker's jobs, endpoints and monitoring share: S3 as their containers see it (a prefix
downloaded into a folder, a folder uploaded), a work folder of their own, and moto's backend."""

from __future__ import annotations

import uuid
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from moto.sagemaker.models import sagemaker_backends

from safe_deploy.clients import environment_client
from safe_deploy.localcloud.state import LocalSettings


def s3_client() -> Any:
    return environment_client("s3")


def split_uri(uri: str) -> tuple[str, str]:
    """``s3://bucket/key`` as bucket and key."""
    parsed = urlparse(uri)
    return parsed.netloc, parsed.path.lstrip("/")


def download_prefix(uri: str, target: Path, since: datetime | None = None) -> int:
    """Objects under an S3 prefix (or one key) into a folder; the job's input channel."""
    return download_objects(uri, list_objects(uri, since), target)


def list_objects(uri: str, since: datetime | None = None) -> list[str]:
    """The keys of the objects under an S3 prefix (or the one key), in key order."""
    bucket, prefix = split_uri(uri)
    keys = []
    for page in s3_client().get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for item in page.get("Contents", []):
            key = item["Key"]
            if key.endswith("/") or (since is not None and item["LastModified"] < since):
                continue
            keys.append(key)
    return keys


def download_objects(uri: str, keys: list[str], target: Path) -> int:
    """Some of the objects under the prefix ``uri`` into a folder, by their keys below it."""
    bucket, prefix = split_uri(uri)
    s3 = s3_client()
    for key in keys:
        destination = target / _below(prefix, key)
        destination.parent.mkdir(parents=True, exist_ok=True)
        s3.download_file(bucket, key, str(destination))
    return len(keys)


def _below(prefix: str, key: str) -> str:
    """Where an object under ``prefix`` lands in the channel's folder. A prefix that ends within a
    name (``prepared/train`` matching ``prepared/train.csv``) counts from its folder, so the file
    keeps its own name (``train.csv``, as SageMaker names it) instead of the rest of it (``.csv``,
    what the SageMaker SDK's local mode does: sagemaker-python-sdk#3612)."""
    rest = key[len(prefix) :]
    if rest and not rest.startswith("/"):
        rest = key[len(prefix.rpartition("/")[0]) :]
    return rest.lstrip("/") or Path(key).name


def upload_folder(folder: Path, uri: str) -> int:
    bucket, prefix = split_uri(uri)
    s3 = s3_client()
    count = 0
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        key = f"{prefix.rstrip('/')}/{path.relative_to(folder)}".lstrip("/")
        s3.upload_file(str(path), bucket, key)
        count += 1
    return count


def workspace(settings: LocalSettings, kind: str, name: str) -> Path:
    """A new folder under ``WORKDIR/sagemaker/<kind>`` for one job, endpoint or execution."""
    path = settings.workdir / "sagemaker" / kind / f"{name}-{uuid.uuid4().hex[:6]}"
    path.mkdir(parents=True)
    return path


def sagemaker_backend(settings: LocalSettings) -> Any:
    return sagemaker_backends[settings.account][settings.region]
