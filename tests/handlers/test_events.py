"""The sample events are the ones the template's triggers would deliver (what ``sam local invoke
-e events/<function>.json`` and the handler tests use)."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from moto.events.models import EventPattern

from safe_deploy.localcloud.template import Stack
from tests.handlers.conftest import (
    ACCOUNT,
    EVENTS,
    FUNCTIONS,
    REGION,
    REPO,
    TEMPLATE,
    load_event,
)

SAMPLES = sorted(p.stem for p in EVENTS.glob("*.json"))


def function_of(sample: str) -> str:
    """``predict_bad_csv`` -> ``predict``: the longest function folder the name starts with."""
    owners = [f for f in FUNCTIONS if sample == f or sample.startswith(f"{f}_")]
    assert owners, f"events/{sample}.json belongs to no function of the template"
    return max(owners, key=len)


def triggers(function_dir: str) -> dict[str, dict[str, Any]]:
    return dict(TEMPLATE["Resources"][FUNCTIONS[function_dir]]["Properties"].get("Events", {}))


def test_every_function_has_a_sample_event() -> None:
    assert sorted(f for f in FUNCTIONS if not (EVENTS / f"{f}.json").exists()) == []


@pytest.mark.parametrize("sample", SAMPLES)
def test_every_sample_is_json_of_a_function(sample: str) -> None:
    assert isinstance(json.loads((EVENTS / f"{sample}.json").read_text()), dict)
    function_of(sample)


def _pattern_for(function_dir: str, event: dict[str, Any]) -> dict[str, Any]:
    """The function's EventBridge rule pattern, its bucket Ref resolved to the sample's bucket."""
    stack = Stack(TEMPLATE, "safe-deploy", REGION, ACCOUNT)
    stack.physical_ids.update(
        dict.fromkeys(TEMPLATE["Resources"], event["detail"]["bucket"]["name"])
    )
    rules = [t for t in triggers(function_dir).values() if t["Type"] == "EventBridgeRule"]
    (rule,) = rules
    pattern: dict[str, Any] = stack.resolve(rule["Properties"]["Pattern"])
    return pattern


@pytest.mark.parametrize("sample", ["start_pipeline", "drift_check"])
def test_s3_samples_match_the_rule_that_delivers_them(sample: str) -> None:
    event = load_event(sample)

    pattern = _pattern_for(sample, event)

    assert EventPattern(None, pattern).matches_event(event)
    other = json.loads(json.dumps(event))
    other["detail"]["object"]["key"] = "elsewhere/" + other["detail"]["object"]["key"]
    assert not EventPattern(None, pattern).matches_event(other)  # the pattern does filter


def test_the_drift_alarm_sample_matches_the_retraining_rule() -> None:
    event = load_event("start_pipeline_drift_alarm")
    stack = Stack(
        TEMPLATE,
        "safe-deploy",
        REGION,
        ACCOUNT,
        parameter_overrides={"DriftRetrainingEnabled": "true"},
    )
    stack.attributes[("DriftAlarm", "Arn")] = event["resources"][0]
    rule = TEMPLATE["Resources"]["RetrainOnDriftRule"]

    pattern = stack.resolve(rule["Properties"]["EventPattern"])

    assert EventPattern(None, pattern).matches_event(event)
    assert rule["Properties"]["Targets"][0]["Arn"] == {
        "Fn::GetAtt": ["StartPipelineFunction", "Arn"]
    }


def _route_matches(template_path: str, path: str) -> bool:
    regex = re.sub(r"\\\{[^}]+\\\}", "[^/]+", re.escape(template_path))
    return re.fullmatch(regex, path) is not None


@pytest.mark.parametrize("sample", [s for s in SAMPLES if "httpMethod" in load_event(s)], ids=str)
def test_api_samples_are_routes_of_their_function(sample: str) -> None:
    event = load_event(sample)
    routes = [t["Properties"] for t in triggers(function_of(sample)).values() if t["Type"] == "Api"]

    matching = [
        r
        for r in routes
        if r["Method"].upper() in (event["httpMethod"], "ANY")
        and _route_matches(r["Path"], event["path"])
        and r["Path"] == event["resource"]
    ]

    assert matching, f"{event['httpMethod']} {event['path']} is no route of {function_of(sample)}"
    context = event["requestContext"]
    assert context["stage"] == TEMPLATE["Resources"]["FaresApi"]["Properties"]["StageName"]
    assert context["path"] == f"/{context['stage']}{event['path']}"
    assert context["resourcePath"] == event["resource"]
    assert {k: [v] for k, v in event["headers"].items()} == event["multiValueHeaders"]
    iam = any(r.get("Auth", {}).get("Authorizer") == "AWS_IAM" for r in matching)
    assert (context["identity"]["userArn"] is not None) == iam  # SigV4 callers have an identity


@pytest.mark.parametrize("sample", ["pre_traffic_hook", "post_traffic_hook"])
def test_hook_samples_are_what_codedeploy_sends(sample: str) -> None:
    event = load_event(sample)

    assert set(event) == {"DeploymentId", "LifecycleEventHookExecutionId"}
    assert re.fullmatch(r"d-[A-Z0-9]{9}", event["DeploymentId"])


def test_every_payload_a_state_machine_sends_has_a_sample() -> None:
    """Each ``lambda:invoke`` Payload in the ASL files (wired as the template wires them) has the
    shape of one of the invoked function's samples."""
    by_logical_id = {logical_id: folder for folder, logical_id in FUNCTIONS.items()}
    checked = []
    for machine, resource in TEMPLATE["Resources"].items():
        if resource["Type"] != "AWS::Serverless::StateMachine":
            continue
        substitutions = resource["Properties"].get("DefinitionSubstitutions", {})
        definition = json.loads((REPO / resource["Properties"]["DefinitionUri"]).read_text())
        for state in _states(definition):
            parameters = state.get("Parameters", {})
            if "Payload" not in parameters:
                continue
            placeholder = re.fullmatch(r"\$\{(\w+)\}", str(parameters.get("FunctionName", "")))
            assert placeholder, f"{machine}: a Payload for {parameters.get('FunctionName')}"
            folder = by_logical_id[substitutions[placeholder.group(1)]["Fn::GetAtt"][0]]
            shape = {k.removesuffix(".$") for k in parameters["Payload"]}
            constants = {k: v for k, v in parameters["Payload"].items() if not k.endswith(".$")}
            samples = [load_event(s) for s in SAMPLES if function_of(s) == folder]
            assert any(
                set(sample) == shape and all(sample[k] == v for k, v in constants.items())
                for sample in samples
            ), f"{machine} sends {folder} {sorted(shape)}: no events/{folder}*.json has that shape"
            checked.append(folder)
    assert {"evaluate_model", "test_dev_endpoint", "request_approval"} <= set(checked)


def _states(node: Any) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    if isinstance(node, dict):
        for state in node.get("States", {}).values():
            found.append(state)
            for branch in state.get("Branches", []):
                found += _states(branch)
            for inner in (state.get("Iterator"), state.get("ItemProcessor")):
                found += _states(inner)
    return found
