"""Reading the state machines' ASL files: their states in every scope, and what each Task's
integration returns (botocore's output shape of the call behind it)."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from botocore.model import Shape

from tests.support_code import sdk_service, service_model
from tests.support_template import REPO, Template, resources_of_type

STATES_PREFIX = "arn:aws:states:::"
PLACEHOLDER = re.compile(r"\$\{([^}]*)\}")
# The calls whose output a Task state receives, for Step Functions' optimized integrations.
SYNC_OUTPUTS = {
    ("sagemaker", "createTrainingJob"): ("sagemaker", "DescribeTrainingJob"),
    ("sagemaker", "createProcessingJob"): ("sagemaker", "DescribeProcessingJob"),
    ("sagemaker", "createTransformJob"): ("sagemaker", "DescribeTransformJob"),
    ("states", "startExecution"): ("stepfunctions", "DescribeExecution"),
}
INTEGRATION_SERVICES = {"states": "stepfunctions", "sfn": "stepfunctions"}
# Members whose value is a JSON document the integration parses (a path may go inside them).
JSON_MEMBERS = {("lambda", "Invoke", "Payload"), ("stepfunctions", "DescribeExecution", "Output")}


@dataclass(frozen=True)
class Machine:
    logical_id: str
    path: Path
    substitutions: tuple[str, ...]  # DefinitionSubstitutions keys

    @property
    def text(self) -> str:
        return self.path.read_text()

    @property
    def definition(self) -> dict[str, Any]:
        document: dict[str, Any] = json.loads(self.text)
        return document


def machines(sam: Template) -> list[Machine]:
    found = []
    for logical_id, resource in resources_of_type(sam, "AWS::Serverless::StateMachine").items():
        props = resource["Properties"]
        found.append(
            Machine(
                logical_id,
                REPO / props["DefinitionUri"],
                tuple(props.get("DefinitionSubstitutions", {})),
            )
        )
    return found


@dataclass(frozen=True)
class Scope:
    """One ``States`` map: the top level, a Parallel branch or a Map's processor."""

    path: str
    start_at: str
    states: Mapping[str, Any]


def scopes(document: Mapping[str, Any], path: str = "") -> Iterator[Scope]:
    yield Scope(path or "(top)", document["StartAt"], document["States"])
    for name, state in document["States"].items():
        for index, branch in enumerate(state.get("Branches", [])):
            yield from scopes(branch, f"{path}{name}[{index}]/")
        processor = state.get("ItemProcessor") or state.get("Iterator")
        if processor:
            yield from scopes(processor, f"{path}{name}/")


def tasks(document: Mapping[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """Every Task state in every scope, as ("scope/Name", state)."""
    for scope in scopes(document):
        prefix = "" if scope.path == "(top)" else scope.path
        for name, state in scope.states.items():
            if state["Type"] == "Task":
                yield f"{prefix}{name}", state


def transitions(state: Mapping[str, Any]) -> Iterator[tuple[str, str]]:
    """(field, target) for every transition a state names."""
    if "Next" in state:
        yield "Next", state["Next"]
    if "Default" in state:
        yield "Default", state["Default"]
    for index, rule in enumerate(state.get("Choices", [])):
        yield f"Choices[{index}].Next", rule["Next"]
    for index, catcher in enumerate(state.get("Catch", [])):
        yield f"Catch[{index}].Next", catcher["Next"]


# ---------------------------------------------------------------------------- outputs
def integration_output(resource: str) -> tuple[str, str] | None:
    """(botocore service, operation) whose output a Task with this Resource receives; None
    when the output is not an AWS API's (a callback's token answer) or the API is unknown."""
    found = _integration_call(resource)
    if found is None or found[1] not in service_model(found[0]).operation_names:
        return None
    return found


def integration_call(resource: str) -> tuple[str, str] | None:
    """The (botocore service, operation) a Task's ``Resource`` names, output aside."""
    if not resource.startswith(STATES_PREFIX):
        return None
    integration, _, call = resource.removeprefix(STATES_PREFIX).partition(":")
    if integration == "aws-sdk":
        sdk, _, api = call.partition(":")
        return sdk_service(sdk), _pascal(api.partition(".")[0])
    service = INTEGRATION_SERVICES.get(integration, integration)
    return service, _pascal(call.partition(".")[0])


def _integration_call(resource: str) -> tuple[str, str] | None:
    if not resource.startswith(STATES_PREFIX):
        return None
    integration, _, call = resource.removeprefix(STATES_PREFIX).partition(":")
    if integration == "aws-sdk":
        sdk, _, api = call.partition(":")
        api, _, pattern = api.partition(".")
        if pattern == "waitForTaskToken":
            return None
        return sdk_service(sdk), api[:1].upper() + api[1:]
    api, _, pattern = call.partition(".")
    if pattern == "waitForTaskToken":
        return None
    if pattern.startswith("sync"):
        return SYNC_OUTPUTS.get((integration, api))
    service = INTEGRATION_SERVICES.get(integration, integration)
    return service, api[:1].upper() + api[1:]


def output_shape(service: str, operation: str) -> Shape | None:
    shape: Shape | None = service_model(service).operation_model(operation).output_shape
    return shape


def timestamp_members(
    shape: Shape | None, path: str = "$", seen: frozenset[str] = frozenset()
) -> list[str]:
    """Paths (as a Task sees them, PascalCase) of the datetimes inside ``shape``."""
    if shape is None or shape.name in seen:
        return []
    seen = seen | {shape.name}
    if shape.type_name == "timestamp":
        return [path]
    found: list[str] = []
    if shape.type_name == "structure":
        for name, member in shape.members.items():  # type: ignore[attr-defined]
            found += timestamp_members(member, f"{path}.{_pascal(name)}", seen)
    elif shape.type_name == "list":
        found += timestamp_members(shape.member, f"{path}[*]", seen)  # type: ignore[attr-defined]
    elif shape.type_name == "map":
        found += timestamp_members(shape.value, f"{path}.*", seen)  # type: ignore[attr-defined]
    return found


def _pascal(name: str) -> str:
    return name[:1].upper() + name[1:]


# A path's members, list indexes and filters (``[?(@.Status == 'FAILED')]`` selects list items).
PATH_TOKEN = re.compile(r"(?<!\$)\$((?:\.[A-Za-z0-9_]+|\[\d+\]|\[\?\([^)]*\)\])*)")


def result_paths(value: Any) -> Iterator[str]:
    """The JSONPaths (into the task's result) a ResultSelector uses."""
    if isinstance(value, Mapping):
        for key, inner in value.items():
            if key.endswith(".$") and isinstance(inner, str):
                for match in PATH_TOKEN.finditer(inner):
                    yield "$" + match.group(1)
            else:
                yield from result_paths(inner)


def select(shape: Shape | None, path: str, service: str, operation: str) -> Shape | str | None:
    """The shape ``path`` selects in an output; ``"opaque"`` past a member that holds a JSON
    document; raises KeyError for a member the output does not have."""
    current = shape
    for token in re.findall(r"\.([A-Za-z0-9_]+)|\[(\d+|\?\([^)]*\))\]", path):
        name, index = token
        if current is None:
            raise KeyError(path)
        if index:
            if current.type_name != "list":
                raise KeyError(path)
            current = current.member  # type: ignore[attr-defined]
            continue
        if current.type_name == "map":  # any key: the map's values
            current = current.value  # type: ignore[attr-defined]
            continue
        if current.type_name != "structure":
            raise KeyError(path)
        members = {_pascal(m): (m, s) for m, s in current.members.items()}  # type: ignore[attr-defined]
        if name not in members:
            raise KeyError(path)
        member, current = members[name]
        if (service, operation, _pascal(member)) in JSON_MEMBERS:
            return "opaque"
    return current
