"""Approvals: the store on moto's DynamoDB (the table as ``template.yaml`` declares it) and the
signing-key secret on moto's Secrets Manager, for the unit tests; the end-to-end modules start
their own local cloud."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws
from pipeline_common.approvals import ApprovalStore

from safe_deploy.localcloud.template import load

REPO = Path(__file__).resolve().parents[2]
REGION = "us-east-1"
TOKEN = "AQCEAAAAKgAAAAMAAAAAAAAAAfakeTaskTokenForUnitTests0123456789abcdefghijklmnopqrstuvwxyz"


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    _moto_environment(monkeypatch)
    with mock_aws():
        yield


def create_table() -> Any:
    """The approvals table, created from its declaration in ``template.yaml``."""
    props = load(REPO / "template.yaml")["Resources"]["ApprovalsTable"]["Properties"]
    dynamodb = boto3.resource("dynamodb", region_name=REGION)
    return dynamodb.create_table(
        TableName="approvals",
        AttributeDefinitions=props["AttributeDefinitions"],
        KeySchema=props["KeySchema"],
        GlobalSecondaryIndexes=props["GlobalSecondaryIndexes"],
        BillingMode=props["BillingMode"],
    )


def _moto_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("AWS_ENDPOINT_URL", "AWS_PROFILE", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)


@pytest.fixture
def table(aws: None) -> Any:
    return create_table()


@pytest.fixture
def store(table: Any) -> ApprovalStore:
    return ApprovalStore(table)


@pytest.fixture
def slack(tmp_path: Path) -> Iterator[Any]:
    """The local cloud's Slack on a port of its own (see ``tests/approvals/api.py``)."""
    from tests.approvals.api import local_slack

    with local_slack(tmp_path / "outbox") as running:
        yield running


@pytest.fixture
def fresh_world(monkeypatch: pytest.MonkeyPatch, table: Any, slack: Any) -> Any:
    """The approval API in moto, all its own: a pending approval, Slack on, two kinds of
    approver (for tests that rotate keys or watch caches)."""
    from tests.approvals.api import make_world

    return make_world(monkeypatch, table, slack)


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """``fresh_world``, shared by a module's tests (see ``world``)."""
    from tests.approvals.api import local_slack, make_world

    with pytest.MonkeyPatch.context() as monkeypatch:
        _moto_environment(monkeypatch)
        with mock_aws(), local_slack(tmp_path_factory.mktemp("outbox")) as running:
            yield make_world(monkeypatch, create_table(), running)


@pytest.fixture
def world(deployment: Any) -> Any:
    """The module's deployment with a new pending approval, Step Functions' record emptied."""
    deployment.renew()
    return deployment
