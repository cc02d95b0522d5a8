"""The sample events are the ones the template's triggers would deliver (what ``sam local invoke
-e events/<function>.json`` and the handler tests use), and each reads as the typed event its
handler takes: a Powertools data class, or a ``pipeline_common.events`` model that has exactly the
fields the state machine sends."""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from aws_lambda_powertools.utilities.data_classes import (
    APIGatewayProxyEvent,
    CloudFormationCustomResourceEvent,
    CodeDeployLifecycleHookEvent,
    EventBridgeEvent,
    S3EventBridgeNotificationEvent,
)
from aws_lambda_powertools.utilities.parser import parse
from moto.events.models import EventPattern
from pipeline_common.evaluation import DevTestReport
from pipeline_common.events import (
    APPROVAL_TASK,
    ApprovalExpiryEvent,
    ApprovalRequestEvent,
    DevEndpointTestEvent,
    EvaluateModelEvent,
)
from pipeline_common.gate import Evaluation
from pipeline_common.pipeline import ALARM_STATE_CHANGE, RawObject, drift_salt, object_from_event
from pydantic import BaseModel, ValidationError

from safe_deploy.localcloud.template import Stack
from tests.handlers.support import (
    ACCOUNT,
    EVENTS,
    FUNCTIONS,
    REGION,
    REPO,
    TEMPLATE,
    FakeLambdaContext,
    Loader,
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


def _payloads() -> Iterator[tuple[str, str, dict[str, Any]]]:
    """Each ``lambda:invoke`` Payload in the ASL files, wired as the template wires them:
    (state machine, function folder, payload)."""
    by_logical_id = {logical_id: folder for folder, logical_id in FUNCTIONS.items()}
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
            yield machine, folder, parameters["Payload"]


def test_every_payload_a_state_machine_sends_has_a_sample() -> None:
    """Each Payload has the shape of one of the invoked function's samples."""
    checked = []
    for machine, folder, payload in _payloads():
        shape = {k.removesuffix(".$") for k in payload}
        constants = {k: v for k, v in payload.items() if not k.endswith(".$")}
        samples = [load_event(s) for s in SAMPLES if function_of(s) == folder]
        assert any(
            set(sample) == shape and all(sample[k] == v for k, v in constants.items())
            for sample in samples
        ), f"{machine} sends {folder} {sorted(shape)}: no events/{folder}*.json has that shape"
        checked.append(folder)
    assert {"evaluate_model", "test_dev_endpoint", "request_approval"} <= set(checked)


# ---------------------------------------------------------------- typed events


def _task_model(folder: str, payload: dict[str, Any]) -> type[BaseModel]:
    """The model a Task's payload is parsed into by its function's handler."""
    if folder == "request_approval":
        return ApprovalExpiryEvent if payload.get("action") == "expire" else ApprovalRequestEvent
    models: dict[str, type[BaseModel]] = {
        "evaluate_model": EvaluateModelEvent,
        "test_dev_endpoint": DevEndpointTestEvent,
    }
    return models[folder]


def test_task_payload_models_have_exactly_the_fields_the_asl_sends() -> None:
    for machine, folder, payload in _payloads():
        model = _task_model(folder, payload)
        sent = {k.removesuffix(".$") for k in payload}
        assert set(model.model_fields) == sent, f"{machine} -> {folder}: {model.__name__}"


def test_the_approval_sample_passes_on_what_the_gate_and_the_dev_test_answer() -> None:
    """RequestApproval's ``evaluation`` and ``test`` are evaluate_model's and test_dev_endpoint's
    answers as they return them, so the sample parsing means those answers parse."""
    sample = load_event("request_approval")

    assert set(sample["evaluation"]) == {f.name for f in dataclasses.fields(Evaluation)}
    assert set(sample["test"]) == {f.name for f in dataclasses.fields(DevTestReport)}


def _start_pipeline(event: dict[str, Any]) -> RawObject | str:
    trigger = EventBridgeEvent(event)
    if trigger.detail_type == ALARM_STATE_CHANGE:
        return drift_salt(trigger)
    return object_from_event(S3EventBridgeNotificationEvent(event))


def _drift_check(event: dict[str, Any]) -> tuple[str, str]:
    detail = S3EventBridgeNotificationEvent(event).detail
    return detail.bucket.name, detail.object["key"]


def _hook(event: dict[str, Any]) -> tuple[str, str]:
    hook = CodeDeployLifecycleHookEvent(event)
    return hook.deployment_id, hook.lifecycle_event_hook_execution_id


def _custom_resource(event: dict[str, Any]) -> tuple[str, ...]:
    request = CloudFormationCustomResourceEvent(event)
    properties = request.resource_properties
    return (
        request.request_type,
        request.response_url,
        request.stack_id,
        request.request_id,
        request.logical_resource_id,
        properties["Bucket"],
        properties["Prefix"],
    )


def _scheduled(event: dict[str, Any]) -> tuple[str, str, list[str]]:
    scheduled = EventBridgeEvent(event)
    return scheduled.source, scheduled.detail_type, scheduled.resources


def _api(event: dict[str, Any]) -> tuple[str, str, str]:
    request = APIGatewayProxyEvent(event)
    return request.http_method, request.path, request.request_context.stage


# function folder -> its sample read as its handler reads it (the data class it wraps the event in,
# or the model Powertools' parser validates it into), every attribute the handler uses touched.
READ_AS_HANDLER: dict[str, Callable[[dict[str, Any]], object]] = {
    "start_pipeline": _start_pipeline,
    "drift_check": _drift_check,
    "pre_traffic_hook": _hook,
    "post_traffic_hook": _hook,
    "publish_model_code": _custom_resource,
    "release_check": _scheduled,
    "predict": _api,
    "approval_api": _api,
    "evaluate_model": lambda event: parse(event, model=EvaluateModelEvent),
    "test_dev_endpoint": lambda event: parse(event, model=DevEndpointTestEvent),
    "request_approval": APPROVAL_TASK.validate_python,  # what event_parser(model=...) runs
}


def test_every_function_reads_its_event_typed() -> None:
    assert sorted(READ_AS_HANDLER) == sorted(FUNCTIONS)


@pytest.mark.parametrize("sample", SAMPLES)
def test_every_sample_parses_into_its_handlers_event_type(sample: str) -> None:
    read = READ_AS_HANDLER[function_of(sample)](load_event(sample))

    assert read
    if sample == "start_pipeline":
        assert read == RawObject(
            "safe-deploy-databucket-k2v7x9q4m1zd",
            "raw/green_tripdata_2018-02.csv",
            "Xq3mT1n8vO2hbZk5cL0pR9sY7wA4eJ6u",
            68494316,
            "4c3a0f6b8e2d7f1a9b5c0e3d6f2a8b71-9",
        )
    if sample == "start_pipeline_drift_alarm":
        assert read == "drift@2026-11-26T14:00:21Z"
    if sample == "request_approval":
        assert isinstance(read, ApprovalRequestEvent)
        assert read.evaluation.validation_rmse == 4.812
        assert read.test.plot_key.endswith("actual_vs_predicted.png")
    if sample == "request_approval_expire":
        assert isinstance(read, ApprovalExpiryEvent)


@pytest.mark.parametrize(
    ("sample", "missing"),
    [
        ("evaluate_model", "training_job"),
        ("test_dev_endpoint", "endpoint_name"),
        ("request_approval", "test"),
        ("request_approval_expire", "execution_arn"),
    ],
)
def test_a_payload_the_asl_would_not_send_fails_the_task_without_echoing_it(
    sample: str,
    missing: str,
    load_handler: Loader,
    context: FakeLambdaContext,
) -> None:
    """The Task's Catch (and the failure notification) gets a ValidationError naming the field;
    the payload, which for the approval request holds the task token, is never in it."""
    app = load_handler(function_of(sample))
    event = load_event(sample)
    del event[missing]

    with pytest.raises(ValidationError, match=rf"{missing}\n\s+Field required") as raised:
        app.lambda_handler(event, context)

    message = str(raised.value)
    assert "input_value" not in message
    for value in event.values():
        if isinstance(value, str) and len(value) > 8:
            assert value[:8] not in message  # pydantic shortens what it echoes


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
