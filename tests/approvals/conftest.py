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
    for name in ("AWS_ENDPOINT_URL", "AWS_PROFILE", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    with mock_aws():
        yield


@pytest.fixture
def table(aws: None) -> Any:
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


@pytest.fixture
def store(table: Any) -> ApprovalStore:
    return ApprovalStore(table)
