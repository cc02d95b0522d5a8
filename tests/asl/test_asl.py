"""Static checks of the state machines' ASL files, as deployed (DESIGN.md §3, §9)."""

from __future__ import annotations

import json
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.support_asl import (
    PLACEHOLDER,
    STATES_PREFIX,
    Machine,
    integration_call,
    integration_output,
    machines,
    output_shape,
    result_paths,
    scopes,
    select,
    tasks,
    timestamp_members,
    transitions,
)
from tests.support_code import available_services, service_model
from tests.support_iam import definition
from tests.support_template import REPO, Stack, load_sam, transformed

MACHINES = machines(load_sam())
VALIDATOR = REPO / "node_modules" / ".bin" / "asl-validator"

REGION = re.compile(r"\b(?:us|eu|ap|sa|ca|me|af|il|mx|cn)(?:-gov|-iso[a-z]?)?-[a-z]+-\d\b")
ACCOUNT_ID = re.compile(r"(?<![\d.])\d{12}(?![\d.])")


def _ids(machine: Machine) -> str:
    return machine.logical_id


@pytest.fixture(params=MACHINES, ids=_ids)
def machine(request: pytest.FixtureRequest) -> Machine:
    found: Machine = request.param
    return found


def test_both_state_machines_are_checked() -> None:
    assert {m.logical_id for m in MACHINES} == {"TrainingStateMachine", "DeployStateMachine"}


def test_placeholders_are_the_definition_substitutions(machine: Machine) -> None:
    used = set(PLACEHOLDER.findall(machine.text))
    given = set(machine.substitutions)
    assert not used - given, f"placeholders with no DefinitionSubstitutions entry: {used - given}"
    assert not given - used, f"DefinitionSubstitutions the ASL never uses: {given - used}"


def test_every_transition_names_a_state_of_its_scope(machine: Machine) -> None:
    problems = []
    for scope in scopes(machine.definition):
        names = set(scope.states)
        if scope.start_at not in names:
            problems.append(f"{scope.path}: StartAt {scope.start_at} is not a state here")
        for name, state in scope.states.items():
            problems += [
                f"{scope.path}: {name}.{field} -> {target}: no such state in this scope"
                for field, target in transitions(state)
                if target not in names
            ]
    assert not problems, "\n".join(problems)


def test_every_state_is_reachable(machine: Machine) -> None:
    unreachable = []
    for scope in scopes(machine.definition):
        seen, stack = set(), [scope.start_at]
        while stack:
            name = stack.pop()
            if name in seen or name not in scope.states:
                continue
            seen.add(name)
            stack += [target for _, target in transitions(scope.states[name])]
        unreachable += [f"{scope.path}: {n}" for n in scope.states if n not in seen]
    assert not unreachable, f"states no path reaches: {unreachable}"


def test_every_task_retries_and_catches(machine: Machine) -> None:
    bare = [
        f"{path}: {'Retry' if not state.get('Retry') else 'Catch'} missing or empty"
        for path, state in tasks(machine.definition)
        if not state.get("Retry") or not state.get("Catch")
    ]
    assert not bare, "\n".join(bare)


def test_a_cause_is_read_as_json_only_after_a_job_or_execution_failed(machine: Machine) -> None:
    """In a Catch, States.TaskFailed matches every error a Task reports but States.Timeout: the
    call's own errors too (a quota, a name in use), whose Cause is plain text. Parsing that
    Cause is a States.Runtime error, which no Catch takes: the run would end without telling
    anyone or deleting its dev endpoint. Only a rule that asks for both ``$.failure.Error ==
    States.TaskFailed`` and a Cause that opens as a JSON object may lead to a state that parses
    it (tests/asl/test_failure_kinds.py runs those rules)."""
    task_failed = {"Variable": "$.failure.Error", "StringEquals": "States.TaskFailed"}
    an_object = {"Variable": "$.failure.Cause", "StringMatches": "{*"}
    wrong = []
    for scope in scopes(machine.definition):
        parsers = {
            name
            for name, state in scope.states.items()
            if "States.StringToJson($.failure.Cause)" in json.dumps(state.get("Parameters", {}))
        }
        for name, state in scope.states.items():
            for index, rule in enumerate(state.get("Choices", [])):
                conditions = rule.get("And", [])
                guarded = task_failed in conditions and an_object in conditions
                if rule["Next"] in parsers and not guarded:
                    wrong.append(f"{scope.path}: {name}.Choices[{index}] -> {rule['Next']}")
            for field_name, target in transitions(state):
                if target in parsers and not field_name.startswith("Choices"):
                    wrong.append(f"{scope.path}: {name}.{field_name} -> {target}")
    assert not wrong, "reach a state that parses $.failure.Cause unguarded:\n" + "\n".join(wrong)


def test_every_task_calls_a_real_api(machine: Machine) -> None:
    """A misspelled API in a Resource is only found when the state runs."""
    unknown = []
    for path, state in tasks(machine.definition):
        call = integration_call(state["Resource"])
        if call is None:
            unknown.append(f"{path}: {state['Resource']} is not a service integration")
            continue
        service, operation = call
        if service not in available_services() or (
            operation not in service_model(service).operation_names
        ):
            unknown.append(f"{path}: {state['Resource']} names no {service} API {operation}")
    assert not unknown, "\n".join(unknown)


def test_callbacks_time_out(machine: Machine) -> None:
    """A task waiting for a person must end on silence (DESIGN.md §5)."""
    waiting = [
        path
        for path, state in tasks(machine.definition)
        if state["Resource"].endswith(".waitForTaskToken")
        and not ({"TimeoutSeconds", "TimeoutSecondsPath"} & state.keys())
    ]
    assert not waiting, f"callback tasks that can wait forever: {waiting}"


def _strings(value: Any, path: str = "$") -> list[tuple[str, str]]:
    if isinstance(value, dict):
        found = []
        for key, inner in value.items():
            found.append((f"{path} (key)", key))
            found += _strings(inner, f"{path}.{key}")
        return found
    if isinstance(value, list):
        return [s for i, inner in enumerate(value) for s in _strings(inner, f"{path}[{i}]")]
    return [(path, value)] if isinstance(value, str) else []


def test_no_literal_arns_regions_or_accounts(machine: Machine) -> None:
    """Everything that differs between accounts and regions comes in through a placeholder;
    only Step Functions' own integration ARNs (``arn:aws:states:::...``) are written out."""
    problems = []
    for where, text in _strings(machine.definition):
        if where.endswith(".Resource") and text.startswith(STATES_PREFIX):
            continue
        bare = PLACEHOLDER.sub("", text)
        for what, pattern in (
            ("an ARN", re.compile(r"arn:")),
            ("a region", REGION),
            ("an account id", ACCOUNT_ID),
        ):
            if pattern.search(bare):
                problems.append(f"{where}: {what} in {text!r}")
    assert not problems, "\n".join(problems)


def _tasks_with_outputs() -> list[Any]:
    params = []
    for machine in MACHINES:
        for path, state in tasks(machine.definition):
            output = integration_output(state["Resource"])
            if output is not None:
                params.append(pytest.param(state, output, id=f"{machine.logical_id}:{path}"))
    return params


def _datetime_tasks() -> list[Any]:
    return [p for p in _tasks_with_outputs() if timestamp_members(output_shape(*p.values[1]))]


@pytest.mark.parametrize(("state", "output"), _datetime_tasks())
def test_datetime_results_are_trimmed(state: dict[str, Any], output: tuple[str, str]) -> None:
    """These calls return datetimes, which Step Functions cannot carry on as JSON state (and
    which break moto's describe_execution): each such Task keeps only what it needs."""
    assert "ResultSelector" in state or ("ResultPath" in state and state["ResultPath"] is None), (
        f"{output[1]} returns {timestamp_members(output_shape(*output))}: add a ResultSelector"
    )


@pytest.mark.parametrize(("state", "output"), _tasks_with_outputs())
def test_result_selectors_select_what_the_call_returns(
    state: dict[str, Any], output: tuple[str, str]
) -> None:
    service, operation = output
    shape = output_shape(service, operation)
    for path in result_paths(state.get("ResultSelector", {})):
        try:
            selected = select(shape, path, service, operation)
        except KeyError:
            pytest.fail(f"ResultSelector reads {path}, which {service} {operation} does not return")
        if selected != "opaque" and not isinstance(selected, str):
            assert not timestamp_members(selected), f"{path} selects datetimes"


def test_the_datetime_check_sees_datetimes() -> None:
    """The trimming check is only as good as its reading of botocore's shapes."""
    assert timestamp_members(output_shape("sagemaker", "DescribeTrainingJob"))
    assert "$.DeploymentInfo.CreateTime" in timestamp_members(
        output_shape("codedeploy", "GetDeployment")
    )
    assert not timestamp_members(output_shape("lambda", "Invoke"))
    assert not timestamp_members(output_shape("sns", "Publish"))
    assert {p.id for p in _datetime_tasks()} >= {
        "TrainingStateMachine:PrepareData",
        "TrainingStateMachine:TrainAndBaseline[0]/Train",
        "DeployStateMachine:DescribeUpdate",
        "DeployStateMachine:DescribeGreen",
    }


# ---------------------------------------------------------------------------- asl-validator
VALIDATE_MANY = Path(__file__).with_name("validate_many.js")


def _deployed(machine: Machine) -> dict[str, Any]:
    """The definition as the stack deploys it: placeholders filled in with the values
    DefinitionSubstitutions give an (imaginary) stack."""
    return definition(load_sam(), Stack(transformed()), machine.logical_id)


def _broken() -> dict[str, Any]:
    broken: dict[str, Any] = json.loads(MACHINES[0].text)
    first = broken["States"][broken["StartAt"]]
    first["Next"] = "NoSuchState"
    return broken


@dataclass(frozen=True)
class Validated:
    """asl-validator's verdict on one file: ``output`` is what its CLI prints for it."""

    path: Path
    valid: bool
    output: str


@pytest.fixture(scope="module")
def validated(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Validated]:
    """Every definition this module validates, by name (a machine's id for its file, the
    id with ``:deployed`` for its deployed definition, ``broken``), in one node process:
    starting node and loading the validator is most of the cost of one CLI run."""
    if not VALIDATOR.exists():
        pytest.skip("node_modules/.bin/asl-validator is missing: run `make tools`")
    folder = tmp_path_factory.mktemp("asl")
    paths = {m.logical_id: m.path for m in MACHINES}
    for name, document in [
        *((f"{m.logical_id}:deployed", _deployed(m)) for m in MACHINES),
        ("broken", _broken()),
    ]:
        paths[name] = folder / f"{name.replace(':', '.')}.json"
        paths[name].write_text(json.dumps(document))
    result = subprocess.run(
        ["node", str(VALIDATE_MANY), *map(str, paths.values())],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    verdicts = json.loads(result.stdout)
    return {
        name: Validated(path, verdicts[str(path)]["valid"], verdicts[str(path)]["output"])
        for name, path in paths.items()
    }


def test_asl_validator_accepts_the_files(machine: Machine, validated: dict[str, Validated]) -> None:
    result = validated[machine.logical_id]
    assert result.path == machine.path
    assert result.valid, result.output


def test_asl_validator_accepts_the_deployed_definitions(
    machine: Machine, validated: dict[str, Validated]
) -> None:
    result = validated[f"{machine.logical_id}:deployed"]
    assert json.loads(result.path.read_text()) == _deployed(machine)
    assert not PLACEHOLDER.search(result.path.read_text())
    assert result.valid, result.output


def test_asl_validator_rejects_a_broken_definition(validated: dict[str, Validated]) -> None:
    result = validated["broken"]
    assert json.loads(result.path.read_text()) == _broken()
    assert not result.valid
    assert "NoSuchState" in result.output
