"""The handler tests' fixtures; what they build is in :mod:`tests.handlers.support`.

They import it when a test first asks for them: pytest loads every conftest in the process that
hands tests to the workers too, which runs none of them and should not pay for moto and the local
cloud (about 2 s) before any worker starts.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from tests.handlers.support import Cloud, Endpoints, FakeLambdaContext, Loader


@pytest.fixture
def cloud(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Cloud]:
    """moto with the stack's resources; credentials and region as Lambda's runtime sets them."""
    from tests.handlers.support import offline_cloud

    yield from offline_cloud(monkeypatch, tmp_path)


@pytest.fixture
def load_handler(cloud: Cloud, monkeypatch: pytest.MonkeyPatch) -> Loader:
    """``load_handler("predict", ENDPOINT_NAME="...")``: the function's ``app`` module, imported
    fresh with the template's environment for it."""
    from tests.handlers.support import handler_loader

    return handler_loader(cloud, monkeypatch)


@pytest.fixture
def context() -> FakeLambdaContext:
    from tests.handlers.support import FakeLambdaContext

    return FakeLambdaContext()


@pytest.fixture
def endpoints(cloud: Cloud, monkeypatch: pytest.MonkeyPatch) -> Endpoints:
    """SageMaker's runtime behind moto: one fare per row, every call recorded."""
    from tests.handlers.support import stand_in_endpoints

    return stand_in_endpoints(cloud, monkeypatch)
