"""The tested endpoint's rights follow its name: ``<model id>-dev`` by default, ``<model id>-prod``
with ``PromoteTestedEndpoint``, when the deploy state machine adopts it as green. The names are
read from the state machines as deployed (their ``States.Format`` strings with the template's
substitutions filled in), so a suffix changed in the ASL or the template alone fails here; the
cross-check in test_iam.py cannot see it, because these names are built from the execution's
input."""

from __future__ import annotations

import re
from typing import Any

import pytest

from tests.support_iam import Need, allows, definition, role_of, role_policy
from tests.support_template import Stack, arn, load_sam, transformed

SAM = load_sam()
MODEL_ID = "fares-0123456789ab"
TESTED_STATES = ("CreateDevModel", "CreateDevEndpointConfig", "CreateDevEndpoint")
MANAGE = (
    "sagemaker:CreateModel",
    "sagemaker:CreateEndpointConfig",
    "sagemaker:CreateEndpoint",
    "sagemaker:DescribeEndpoint",
    "sagemaker:DeleteEndpoint",
    "sagemaker:DeleteEndpointConfig",
    "sagemaker:DeleteModel",
)


def _stack(promote: str) -> Stack:
    parameters = {"PromoteTestedEndpoint": promote, "NamePrefix": "fares"}
    return Stack(transformed(parameters), parameters)


def _candidate_states(stack: Stack) -> dict[str, Any]:
    document = definition(SAM, stack, "TrainingStateMachine")
    states: dict[str, Any] = document["States"]["Candidate"]["Branches"][0]["States"]
    return states


def _name(expression: str) -> str:
    """``States.Format('{}-x', $.model_id)`` for this test's model id."""
    match = re.fullmatch(r"States\.Format\('(\{\}-[a-z]+)', \$\.model_id\)", expression)
    assert match, expression
    return match[1].replace("{}", MODEL_ID)


def _tested_names(stack: Stack) -> set[str]:
    states = _candidate_states(stack)
    parameters = [states[name]["Parameters"] for name in TESTED_STATES]
    names = {_name(v) for p in parameters for k, v in p.items() if k.endswith("Name.$")}
    names.add(_name(states["TestDevEndpoint"]["Parameters"]["Payload"]["endpoint_name.$"]))
    return names


def _allowed(stack: Stack, principal: str, action: str, resource: str) -> bool:
    return allows(role_policy(stack, role_of(stack.template, principal)), Need(action, resource))


def _resources(name: str) -> dict[str, str]:
    return {
        "sagemaker:CreateModel": arn("sagemaker", f"model/{name}"),
        "sagemaker:DeleteModel": arn("sagemaker", f"model/{name}"),
        "sagemaker:CreateEndpointConfig": arn("sagemaker", f"endpoint-config/{name}"),
        "sagemaker:DeleteEndpointConfig": arn("sagemaker", f"endpoint-config/{name}"),
        "sagemaker:CreateEndpoint": arn("sagemaker", f"endpoint/{name}"),
        "sagemaker:DescribeEndpoint": arn("sagemaker", f"endpoint/{name}"),
        "sagemaker:DeleteEndpoint": arn("sagemaker", f"endpoint/{name}"),
    }


@pytest.mark.parametrize(("promote", "suffix"), [("false", "dev"), ("true", "prod")])
def test_the_training_machine_may_make_test_and_delete_the_endpoint_it_names(
    promote: str, suffix: str
) -> None:
    stack = _stack(promote)
    assert _tested_names(stack) == {f"{MODEL_ID}-{suffix}"}
    name = f"{MODEL_ID}-{suffix}"
    for action, resource in _resources(name).items():
        assert _allowed(stack, "TrainingStateMachine", action, resource), (action, resource)
    endpoint = arn("sagemaker", f"endpoint/{name}")
    assert _allowed(stack, "TestDevEndpointFunction", "sagemaker:InvokeEndpoint", endpoint)


@pytest.mark.parametrize(("promote", "other"), [("false", "prod"), ("true", "dev")])
def test_the_training_machine_may_not_touch_the_other_suffix(promote: str, other: str) -> None:
    """Least privilege: by default the training machine cannot change a production endpoint."""
    stack = _stack(promote)
    for action, resource in _resources(f"{MODEL_ID}-{other}").items():
        assert not _allowed(stack, "TrainingStateMachine", action, resource), (action, resource)
    endpoint = arn("sagemaker", f"endpoint/{MODEL_ID}-{other}")
    assert not _allowed(stack, "TestDevEndpointFunction", "sagemaker:InvokeEndpoint", endpoint)


def test_the_adopted_endpoint_is_one_the_deploy_machine_may_run_and_delete() -> None:
    """Green is ``<model id>-prod`` in the deploy machine (its Configure state); an adopted one
    must carry that name, or the promotion could neither scale, monitor nor delete it."""
    stack = _stack("true")
    (tested,) = _tested_names(stack)
    configure = definition(SAM, stack, "DeployStateMachine")["States"]["Configure"]
    assert _name(configure["Parameters"]["green.$"]) == tested
    for action in ("sagemaker:DescribeEndpoint", "sagemaker:DeleteEndpoint"):
        assert _allowed(stack, "DeployStateMachine", action, arn("sagemaker", f"endpoint/{tested}"))


@pytest.mark.parametrize(("promote", "instances"), [("false", 1), ("true", 3)])
def test_the_tested_endpoint_has_productions_size_only_when_it_will_serve(
    promote: str, instances: int
) -> None:
    parameters = {"PromoteTestedEndpoint": promote, "ProdMinInstances": "3"}
    stack = Stack(transformed(parameters), parameters)
    config = _candidate_states(stack)["CreateDevEndpointConfig"]["Parameters"]
    (variant,) = config["ProductionVariants"]
    count = variant["InitialInstanceCount.$"]
    assert count == f"States.StringToJson('{instances}')"
    assert config["DataCaptureConfig"]["EnableCapture"] is True
