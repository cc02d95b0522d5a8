"""The API's callers in the CLI, against the API's resource policy: every route the CLI signs is
derived from its code (``Target.signed(method, path, ...)``), never listed by hand, and the
policy lets each kind of caller do only its own part. Deciding a release is the operators'
(``OperatorPrincipalArns``); a principal allowed ``execute-api:Invoke`` for ``/predict`` is
refused there, whatever its own IAM policy says."""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Any

import pytest

from safe_deploy.localcloud.resource_policy import evaluate_policy
from tests.support_template import (
    ACCOUNT,
    OPERATORS,
    REPO,
    Stack,
    sam_parameters_with_everything_on,
    transformed,
)

PREDICT_CLIENT = f"arn:aws:iam::{ACCOUNT}:role/fare-quotes-service"
DECIDING = {"/operator/decisions"}  # routes that change a release's state


def signed_calls(root: Path = REPO / "safe_deploy") -> set[tuple[str, str]]:
    """``(method, path)`` of every ``….signed("METHOD", "/path", …)`` call in the CLI's code."""
    calls = set()
    for source in sorted(root.rglob("*.py")):
        for node in ast.walk(ast.parse(source.read_text())):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr == "signed"
                and len(node.args) >= 2
                and all(isinstance(a, ast.Constant) for a in node.args[:2])
            ):
                method, path = (a.value for a in node.args[:2])  # type: ignore[attr-defined]
                calls.add((str(method), str(path)))
    return calls


@pytest.fixture(scope="module")
def policy() -> dict[str, Any]:
    parameters = sam_parameters_with_everything_on()
    template = transformed(parameters)
    stack = Stack(template, parameters)
    body = template["Resources"]["FaresApi"]["Properties"]["Body"]
    return dict(stack.resolve(body["x-amazon-apigateway-policy"]))


def test_the_cli_signs_the_routes_it_is_known_for() -> None:
    calls = signed_calls()
    assert ("POST", "/predict") in calls
    assert ("POST", "/operator/decisions") in calls


@pytest.mark.parametrize(("method", "path"), sorted(signed_calls()))
def test_each_signed_route_is_open_to_its_callers_only(
    policy: dict[str, Any], method: str, path: str
) -> None:
    for operator in OPERATORS.split(","):
        assert evaluate_policy(
            policy, principal_arn=operator, method=method, path=path, stage="v1"
        ).allowed, (operator, method, path)
    client = evaluate_policy(
        policy, principal_arn=PREDICT_CLIENT, method=method, path=path, stage="v1"
    )
    assert client.allowed is (path not in DECIDING), (method, path)


def test_a_new_signed_call_is_found(tmp_path: Path) -> None:
    (tmp_path / "cli.py").write_text(
        'def go(target):\n    return target.signed("DELETE", "/operator/runs", b"")\n'
    )
    assert signed_calls(tmp_path) == {("DELETE", "/operator/runs")}
