"""boto3 clients made once and shared.

Making a client loads and parses its service's model and builds its event hooks: about 10 ms of
CPU each time, a tenth of the local cloud's whole CPU when its pollers, provisioner and Step
Functions integrations made one per call. A client is safe to share between threads; making one
from a shared session is not, so clients are made under a lock.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable
from typing import Any


class ClientCache:
    """Clients by key, each made by the first caller that asks for it."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._made: dict[Hashable, Any] = {}

    def get(self, key: Hashable, make: Callable[[], Any]) -> Any:
        with self._lock:
            found = self._made.get(key)
            if found is None:
                found = self._made[key] = make()
            return found

    def clear(self) -> None:
        with self._lock:
            self._made.clear()


_BY_ENVIRONMENT = ClientCache()


def environment_client(service: str, region: str | None = None) -> Any:
    """``boto3.client(service, region_name=region)``, shared for as long as the environment that
    configures it (``AWS_ENDPOINT_URL*``, region, credentials) is the same."""
    import os

    import boto3

    configured = tuple(
        sorted((name, value) for name, value in os.environ.items() if name.startswith("AWS_"))
    )
    make: Callable[..., Any] = boto3.client
    return _BY_ENVIRONMENT.get(
        (service, region, configured), lambda: make(service, region_name=region)
    )


def forget_environment_clients() -> None:
    """Drop the shared clients (their endpoint has gone)."""
    _BY_ENVIRONMENT.clear()
