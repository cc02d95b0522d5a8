"""The process's environment as each thread of the local cloud sees it.

Lambda gives each function a process of its own; here functions are threads of one process, and so
are the CloudFormation engine and the rest of the local cloud. ``thread_environment`` shows
variables to one thread for a ``with`` block without ever changing what the other threads read
(a ``mock.patch.dict(os.environ)`` clears and refills the process's environment on its way out,
and a handler running meanwhile finds its settings gone).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator, MutableMapping
from contextlib import contextmanager

from safe_deploy.localcloud.patching import replace


class _ThreadEnvironment(MutableMapping[str, str]):
    """``os.environ`` with, in a thread inside ``thread_environment``, that block's variables on
    top. Reads and writes elsewhere go to the process's environment, unchanged; iteration takes a
    snapshot, so no reader ever sees the mapping change size under it."""

    def __init__(self, process: MutableMapping[str, str]) -> None:
        self.process = process
        self._local = threading.local()

    def _overlay(self) -> dict[str, str] | None:
        overlay: dict[str, str] | None = getattr(self._local, "overlay", None)
        return overlay

    def __getitem__(self, name: str) -> str:
        overlay = self._overlay()
        if overlay is not None and name in overlay:
            return overlay[name]
        return self.process[name]

    def __setitem__(self, name: str, value: str) -> None:
        overlay = self._overlay()
        if overlay is not None:
            overlay[name] = value
        else:
            self.process[name] = value

    def __delitem__(self, name: str) -> None:
        overlay = self._overlay()
        if overlay is not None and name in overlay:
            del overlay[name]
        else:
            del self.process[name]

    def __iter__(self) -> Iterator[str]:
        overlay = self._overlay() or {}
        return iter(list(dict.fromkeys([*list(self.process), *overlay])))

    def __len__(self) -> int:
        return len(list(iter(self)))

    def copy(self) -> dict[str, str]:
        return dict(self.items())

    @contextmanager
    def overlay(self, values: dict[str, str]) -> Iterator[None]:
        previous = self._overlay()
        self._local.overlay = {**(previous or {}), **values}
        try:
            yield
        finally:
            self._local.overlay = previous


_ENVIRONMENT_LOCK = threading.Lock()


@contextmanager
def thread_environment(values: dict[str, str]) -> Iterator[None]:
    """``os.environ`` shows ``values`` to this thread only, for the ``with`` block."""
    with _ENVIRONMENT_LOCK:
        if not isinstance(os.environ, _ThreadEnvironment):  # undone when the cloud stops
            replace(os, "environ", _ThreadEnvironment(os.environ))
        environment = os.environ
    assert isinstance(environment, _ThreadEnvironment)
    with environment.overlay(values):
        yield
