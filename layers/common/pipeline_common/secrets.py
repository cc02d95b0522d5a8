"""Secrets Manager values the approval functions need, cached briefly; and the rotation of the
approval links' key.

The approval links' HMAC key: AWSCURRENT signs; AWSCURRENT and AWSPREVIOUS verify, so a link sent
just before a rotation still works. Taking a version's stage away revokes it, and no cache
outlives that: a signature that verifies with a cached key counts only once a fresh read shows
the key still holds its stage. A signature that no cached key verifies (a forgery, or a key newer
than the cache) may fetch fresh keys at most every ``refresh_seconds``, so forged requests cannot
drive Secrets Manager calls. The Slack secrets are read the same way. Values never reach a log
line, an error message or the terminal.
"""

from __future__ import annotations

import secrets
import string
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mypy_boto3_secretsmanager import SecretsManagerClient

CACHE_SECONDS = 300.0
REFRESH_SECONDS = (
    30.0  # after a rotation, an unknown signature fetches fresh keys at most this often
)
CURRENT = "AWSCURRENT"
PREVIOUS = "AWSPREVIOUS"
VERIFYING = (CURRENT, PREVIOUS)
KEY_LENGTH = 64
_KEY_ALPHABET = string.ascii_letters + string.digits  # as the template's GenerateSecretString


class SecretReader:
    """Reads secret versions by stage, caching each for ``cache_seconds``."""

    def __init__(
        self,
        client: SecretsManagerClient,
        cache_seconds: float = CACHE_SECONDS,
        refresh_seconds: float = REFRESH_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.client = client
        self.cache_seconds = cache_seconds
        self.refresh_seconds = refresh_seconds
        self.clock = clock
        self._cache: dict[tuple[str, str], tuple[float, str | None]] = {}
        self._last_refresh: dict[str, float] = {}
        self._lock = threading.Lock()

    def value(self, secret_arn: str, stage: str = CURRENT, fresh: bool = False) -> str | None:
        """The secret's string at ``stage``; None when no version has that stage."""
        key = (secret_arn, stage)
        with self._lock:
            cached = self._cache.get(key)
        if cached is not None and not fresh and self.clock() - cached[0] < self.cache_seconds:
            return cached[1]
        try:
            found: str | None = self.client.get_secret_value(
                SecretId=secret_arn, VersionStage=stage
            )["SecretString"]
        except self.client.exceptions.ResourceNotFoundException:
            if stage == CURRENT:
                raise
            found = None  # never rotated, or the previous version was revoked
        with self._lock:
            self._cache[key] = (self.clock(), found)
        return found

    def required(self, secret_arn: str) -> str:
        value = self.value(secret_arn)
        if not value:
            raise ValueError(f"secret {secret_arn} is empty")
        return value

    def signing_key(self, secret_arn: str, fresh: bool = False) -> str:
        value = self.value(secret_arn, CURRENT, fresh)
        if not value:
            raise ValueError(f"secret {secret_arn} is empty")
        return value

    def verifying_keys(self, secret_arn: str, fresh: bool = False) -> list[str]:
        keys = [self.value(secret_arn, stage, fresh) for stage in VERIFYING]
        return list(dict.fromkeys(k for k in keys if k))

    def verified(
        self,
        secret_arn: str,
        accepts: Callable[[str], bool],
        stages: Sequence[str] = VERIFYING,
    ) -> bool:
        """Whether a value the secret holds *now* at one of ``stages`` is one ``accepts`` takes
        (``accepts`` checks a signature with a candidate key).

        The cache only decides whether a fresh read may be made: at once when a cached key
        accepts (a genuine signature, to be confirmed), else at most every ``refresh_seconds``.
        """
        cached = [self.value(secret_arn, stage) for stage in stages]
        if not any(v and accepts(v) for v in cached) and not self._may_refresh(secret_arn):
            return False
        fresh = [self.value(secret_arn, stage, fresh=True) for stage in stages]
        return any(v and accepts(v) for v in fresh)

    def _may_refresh(self, secret_arn: str) -> bool:
        with self._lock:
            last = self._last_refresh.get(secret_arn)
            if last is not None and self.clock() - last < self.refresh_seconds:
                return False
            self._last_refresh[secret_arn] = self.clock()
            return True


# ---------------------------------------------------------------- rotation (the operator's CLI)
@dataclass(frozen=True)
class Rotation:
    """What a rotation did; version ids only, never a key."""

    secret_arn: str
    new_version: str  # AWSCURRENT now: it signs every new link
    replaced_version: str | None  # was AWSCURRENT: AWSPREVIOUS now, unless revoked
    dropped_version: str | None  # was AWSPREVIOUS: its links no longer verify
    revoked: bool  # the replaced version lost AWSPREVIOUS too: its links no longer verify


def new_key(length: int = KEY_LENGTH) -> str:
    return "".join(secrets.choice(_KEY_ALPHABET) for _ in range(length))


def rotate_key(
    client: SecretsManagerClient, secret_arn: str, revoke_previous: bool = False
) -> Rotation:
    """A new random key becomes AWSCURRENT; the key it replaces becomes AWSPREVIOUS (links sent
    before still verify) or, with ``revoke_previous``, loses every stage (they stop at once)."""
    stages = client.describe_secret(SecretId=secret_arn).get("VersionIdsToStages", {})
    current = next((v for v, s in stages.items() if CURRENT in s), None)
    previous = next((v for v, s in stages.items() if PREVIOUS in s and v != current), None)
    new_version = client.put_secret_value(
        SecretId=secret_arn, ClientRequestToken=str(uuid.uuid4()), SecretString=new_key()
    )["VersionId"]
    revoked = bool(revoke_previous and current)
    if revoked:
        client.update_secret_version_stage(
            SecretId=secret_arn, VersionStage=PREVIOUS, RemoveFromVersionId=str(current)
        )
    return Rotation(secret_arn, new_version, current, previous, revoked)
