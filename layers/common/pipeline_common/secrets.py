"""Secrets Manager values the approval functions need, cached briefly.

The approval links' HMAC key: AWSCURRENT signs; AWSCURRENT and AWSPREVIOUS verify, so a link sent
just before a rotation (``aws secretsmanager put-secret-value``) still works. The Slack webhook
URL and signing secret are read the same way. Values never reach a log line.
"""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mypy_boto3_secretsmanager import SecretsManagerClient

CACHE_SECONDS = 300.0
CURRENT = "AWSCURRENT"
PREVIOUS = "AWSPREVIOUS"


class SecretReader:
    """Reads secret versions by stage, caching each for ``cache_seconds``."""

    def __init__(self, client: SecretsManagerClient, cache_seconds: float = CACHE_SECONDS) -> None:
        self.client = client
        self.cache_seconds = cache_seconds
        self._cache: dict[tuple[str, str], tuple[float, str | None]] = {}
        self._lock = threading.Lock()

    def value(self, secret_arn: str, stage: str = CURRENT, fresh: bool = False) -> str | None:
        """The secret's string at ``stage``; None when no version has that stage."""
        key = (secret_arn, stage)
        with self._lock:
            cached = self._cache.get(key)
        if cached is not None and not fresh and time.monotonic() - cached[0] < self.cache_seconds:
            return cached[1]
        try:
            found: str | None = self.client.get_secret_value(
                SecretId=secret_arn, VersionStage=stage
            )["SecretString"]
        except self.client.exceptions.ResourceNotFoundException:
            if stage == CURRENT:
                raise
            found = None  # never rotated: there is no previous version
        with self._lock:
            self._cache[key] = (time.monotonic(), found)
        return found

    def required(self, secret_arn: str) -> str:
        value = self.value(secret_arn)
        if not value:
            raise ValueError(f"secret {secret_arn} is empty")
        return value

    def signing_key(self, secret_arn: str) -> str:
        return self.required(secret_arn)

    def verifying_keys(self, secret_arn: str, fresh: bool = False) -> list[str]:
        keys = [self.value(secret_arn, CURRENT, fresh), self.value(secret_arn, PREVIOUS, fresh)]
        return list(dict.fromkeys(k for k in keys if k))
