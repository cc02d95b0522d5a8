"""``PromoteTestedEndpoint``: the endpoint the dev test ran on becomes production's green, so no new
endpoint starts between a person's approval and the canary; a candidate that is not promoted
leaves nothing running."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from pipeline_common.layout import ModelResources, execution_arn

from safe_deploy import ops
from safe_deploy.demo import Demo
from tests.e2e.conftest import running_demo, sagemaker_resources

PROMOTE = {"PromoteTestedEndpoint": "true", "ProdMinInstances": "2", "ProdMaxInstances": "3"}


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Demo]:
    with running_demo(tmp_path_factory.mktemp("promote-tested"), PROMOTE) as story:
        yield story


@pytest.fixture(scope="module")
def first(demo: Demo) -> str:
    return demo.first_model().model


def _events(demo: Demo, machine_output: str, name: str) -> list[dict[str, Any]]:
    sfn = demo.target.client("stepfunctions")
    arn = execution_arn(demo.target.output(machine_output), name)
    pages = sfn.get_paginator("get_execution_history").paginate(executionArn=arn)
    return [event for page in pages for event in page["events"]]


def _entered(events: list[dict[str, Any]]) -> list[str]:
    return [
        e["stateEnteredEventDetails"]["name"] for e in events if "stateEnteredEventDetails" in e
    ]


def _scheduled(events: list[dict[str, Any]], resource: str) -> list[dict[str, Any]]:
    return [
        json.loads(e["taskScheduledEventDetails"]["parameters"])
        for e in events
        if e.get("taskScheduledEventDetails", {}).get("resource") == resource
    ]


def test_the_tested_endpoint_is_made_at_productions_size_and_becomes_green(
    demo: Demo, first: str
) -> None:
    endpoint = ModelResources(first).prod_endpoint
    training = _events(demo, "TrainingStateMachineArn", first)
    (config,) = _scheduled(training, "createEndpointConfig")
    (variant,) = config["ProductionVariants"]
    assert config["EndpointConfigName"] == endpoint
    assert variant["InitialInstanceCount"] == 2
    assert config["DataCaptureConfig"]["EnableCapture"] is True
    tested = _scheduled(training, "invoke")
    assert {p["Payload"].get("endpoint_name") for p in tested} >= {endpoint}
    assert "DeleteDevEndpoint" not in _entered(training)

    deploy = _entered(_events(demo, "DeployStateMachineArn", first))
    assert "GreenTested" in deploy
    assert not {"CreateGreenModel", "CreateGreenEndpointConfig", "CreateGreenEndpoint"} & set(
        deploy
    ), deploy
    assert deploy.index("DescribeGreen") < deploy.index("UpdateStack")
    assert ops.release(demo.target).production_endpoint == endpoint
    resources = sagemaker_resources(demo)
    assert resources["endpoints"] == [endpoint]
    assert resources["schedules"] == [f"{endpoint}-monitor"]


def test_a_rejected_candidates_tested_endpoint_is_deleted(demo: Demo, first: str) -> None:
    blue = ModelResources(first).prod_endpoint
    outcome = demo.failing_month("approval-rejected", blue)
    rejected = ModelResources(outcome.run.name).prod_endpoint
    training = _events(demo, "TrainingStateMachineArn", outcome.run.name)
    assert {"KeepTestedEndpoint", "DeleteDevEndpoint"} <= set(_entered(training))
    (deleted,) = _scheduled(training, "deleteEndpoint")
    assert deleted["EndpointName"] == rejected
    resources = sagemaker_resources(demo)
    assert resources["endpoints"] == [blue]
    assert resources["configs"] == [blue]
    assert resources["models"] == [blue]
    assert ops.release(demo.target).production_endpoint == blue
