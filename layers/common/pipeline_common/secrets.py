"""Signing keys from Secrets Manager: the current one signs, current and previous verify."""

from __future__ import annotations

import contextlib

from aws_lambda_powertools.utilities import parameters

KEY_CACHE_SECONDS = 300


def signing_key(secret_arn: str) -> str:
    return str(parameters.get_secret(secret_arn, max_age=KEY_CACHE_SECONDS))


def verifying_keys(secret_arn: str) -> list[str]:
    keys = [signing_key(secret_arn)]
    # Never rotated: there is no previous key.
    with contextlib.suppress(parameters.exceptions.GetParameterError):
        previous = parameters.get_secret(
            secret_arn, max_age=KEY_CACHE_SECONDS, VersionStage="AWSPREVIOUS"
        )
        keys.append(str(previous))
    return keys
