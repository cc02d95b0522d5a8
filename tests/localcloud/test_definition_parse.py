"""A state machine's definition is parsed once, not at every execution start, and executions of
one definition still run apart: each with its own input, its own Map iterations and its own
output. moto runs in-process with its interpreter and the local cloud's fixes."""

from __future__ import annotations

import json
import time
from typing import Any

import boto3
import pytest
from moto import mock_aws
from moto.stepfunctions.parser.asl.parse.asl_parser import AmazonStateLanguageParser

from safe_deploy.localcloud import fixes, patching
from tests.support import offline_aws

ROLE = "arn:aws:iam::123456789012:role/states"
DEFINITION = {
    "StartAt": "EachMonth",
    "States": {
        "EachMonth": {
            "Type": "Map",
            "ItemsPath": "$.months",
            "ItemProcessor": {
                "ProcessorConfig": {"Mode": "INLINE"},
                "StartAt": "Name",
                "States": {
                    "Name": {
                        "Type": "Pass",
                        "Parameters": {"key.$": "States.Format('trips/{}.parquet', $)"},
                        "End": True,
                    }
                },
            },
            "ResultPath": "$.keys",
            "Next": "Enough",
        },
        "Enough": {
            "Type": "Choice",
            "Choices": [
                {"Variable": "$.months[2]", "IsPresent": True, "Next": "Train"},
            ],
            "Default": "TooFew",
        },
        "Train": {"Type": "Pass", "Result": "train", "ResultPath": "$.next", "End": True},
        "TooFew": {"Type": "Pass", "Result": "wait", "ResultPath": "$.next", "End": True},
    },
}


def test_executions_of_one_definition_share_its_parse_and_nothing_else(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    offline_aws(monkeypatch)
    parses: list[str] = []
    parse = AmazonStateLanguageParser.parse

    def counted(definition: str) -> Any:
        parses.append(definition)
        return parse(definition)

    with mock_aws(config={"stepfunctions": {"execute_state_machine": True}}):
        fixes.install()
        try:
            sfn = boto3.client("stepfunctions", region_name="us-east-1")
            machine = sfn.create_state_machine(
                name="months", definition=json.dumps(DEFINITION), roleArn=ROLE
            )["stateMachineArn"]
            monkeypatch.setattr(AmazonStateLanguageParser, "parse", staticmethod(counted))
            inputs = {f"run-{n}": [f"2024-{m:02d}" for m in range(1, n + 1)] for n in range(1, 7)}
            arns = {
                name: sfn.start_execution(
                    stateMachineArn=machine, name=name, input=json.dumps({"months": months})
                )["executionArn"]
                for name, months in inputs.items()
            }
            outputs = {name: _output(sfn, arn) for name, arn in arns.items()}
        finally:
            patching.restore_all()

    assert len(parses) == 1, "the definition was parsed at every execution start"
    for name, months in inputs.items():
        assert outputs[name] == {
            "months": months,
            "keys": [{"key": f"trips/{month}.parquet"} for month in months],
            "next": "train" if len(months) >= 3 else "wait",
        }


def _output(sfn: Any, arn: str) -> Any:
    deadline = time.monotonic() + 60
    while (described := sfn.describe_execution(executionArn=arn))["status"] == "RUNNING":
        assert time.monotonic() < deadline, f"{arn} did not finish in 60 s"
        time.sleep(0.05)
    assert described["status"] == "SUCCEEDED", described
    return json.loads(described["output"])
