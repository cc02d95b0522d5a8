"""cfn-lint on what CloudFormation receives: ``template.yaml`` after ``sam package`` and the SAM
transform. ``sam validate --lint`` and cfn-lint on ``template.yaml`` check the template as written
and miss what only the transform creates, such as a dependency cycle through a function's role
or the API's body (CloudFormation refuses the first deploy of such a stack)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from cfnlint.api import ManualArgs, lint  # type: ignore[import-untyped]

from tests.support_template import (
    REGION,
    Template,
    load_sam,
    sam_parameters_with_everything_on,
    translate,
)

pytestmark = pytest.mark.slow  # cfn-lint's whole rule set, about 5 s a template

PARAMETER_SETS = {
    "defaults": {},
    "everything-on": sam_parameters_with_everything_on(),
}


def errors(template: Template) -> list[Any]:
    matches = lint(json.dumps(template), config=ManualArgs(regions=[REGION]))
    return [m for m in matches if m.rule.id.startswith("E")]


def describe(matches: list[Any]) -> str:
    return "\n".join(f"{m.rule.id} {'/'.join(map(str, m.path))}: {m.message}" for m in matches)


@pytest.mark.parametrize("name", sorted(PARAMETER_SETS))
def test_transformed_template_has_no_errors(name: str) -> None:
    template = translate(load_sam(), PARAMETER_SETS[name], packaged=True)
    found = errors(template)
    assert not found, describe(found)


def test_the_check_finds_a_cycle_put_back() -> None:
    """The approval API's callback policy naming the training machine by Ref closes the cycle
    machine -> RequestApprovalFunction -> FaresApi -> ApprovalApiFunction -> its role."""
    sam = load_sam()
    policies = sam["Resources"]["ApprovalApiFunction"]["Properties"]["Policies"]
    callback = next(
        s
        for p in policies
        if isinstance(p, dict) and "Statement" in p
        for s in p["Statement"]
        if s.get("Sid") == "AnswerTheWaitingTask"
    )
    callback["Resource"] = {"Ref": "TrainingStateMachine"}
    found = [m for m in errors(translate(sam, packaged=True)) if m.rule.id == "E3004"]
    cycle = {str(m.path[1]) for m in found}
    assert {"TrainingStateMachine", "ApprovalApiFunctionRole", "FaresApi"} <= cycle, describe(found)
