"""What CloudFormation does to a submitted template before it creates anything: parse it, check
its parameters, apply the AWS::Serverless transform with the stack's real parameter values, and
order its resources by their references (refusing a cycle as CloudFormation does)."""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Mapping
from typing import Any

import yaml
from samtranslator.translator.managed_policy_translator import (  # type: ignore[import-untyped]
    ManagedPolicyLoader,
)

from safe_deploy.localcloud.cloudformation.model import CloudFormationError
from safe_deploy.localcloud.environment import thread_environment
from safe_deploy.localcloud.template import Evaluator, parse_yaml, references

SERVERLESS = "AWS::Serverless-2016-10-31"
# The translator's warnings about itself (a feature toggle it has no configuration for, its usage
# metrics left unpublished) say nothing of the template, and reached the demo's output.
TRANSLATOR_SELF_NOTES = (
    "samtranslator.feature_toggle.feature_toggle",
    "samtranslator.metrics.metrics",
)
for _logger in TRANSLATOR_SELF_NOTES:
    logging.getLogger(_logger).setLevel(logging.ERROR)
IAM_TYPES = ("AWS::IAM::",)

# AWS managed policies SAM may look up by name: the transform never calls IAM locally.
MANAGED_POLICIES = {
    "AWSLambdaBasicExecutionRole": (
        "arn:aws:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole"
    ),
    "AWSXrayWriteOnlyAccess": "arn:aws:iam::aws:policy/AWSXrayWriteOnlyAccess",
    "AWSLambdaRole": "arn:aws:iam::aws:policy/service-role/AWSLambdaRole",
}


class OfflinePolicyLoader(ManagedPolicyLoader):  # type: ignore[misc]
    """SAM's managed-policy lookup without IAM."""

    def __init__(self) -> None:
        pass

    def load(self) -> dict[str, str]:
        return dict(MANAGED_POLICIES)


def parse(body: str) -> dict[str, Any]:
    """A template body, JSON or YAML (with CloudFormation's short tags)."""
    try:
        document = json.loads(body)
    except ValueError:
        try:
            document = parse_yaml(body)
        except yaml.YAMLError as exc:
            raise CloudFormationError(
                f"Template format error: YAML not well-formed. {exc}"
            ) from None
    if not isinstance(document, dict):
        raise CloudFormationError("Template format error: JSON not well-formed.")
    if not isinstance(document.get("Resources"), dict) or not document["Resources"]:
        raise CloudFormationError(
            "Template format error: At least one Resources member must be defined."
        )
    return document


def transforms(template: Mapping[str, Any]) -> list[str]:
    value = template.get("Transform", [])
    return [value] if isinstance(value, str) else list(value)


def parameter_values(
    template: Mapping[str, Any],
    given: list[dict[str, Any]],
    previous: Mapping[str, str] | None,
) -> tuple[dict[str, str], set[str]]:
    """The stack's parameter values: given, previous (``UsePreviousValue``) or default, checked
    against the template's constraints with CloudFormation's messages."""
    declared: dict[str, Any] = template.get("Parameters", {}) or {}
    unknown = [p["ParameterKey"] for p in given if p["ParameterKey"] not in declared]
    if unknown:
        raise CloudFormationError(
            f"Parameters: [{', '.join(unknown)}] do not exist in the template"
        )
    by_key = {p["ParameterKey"]: p for p in given}
    values: dict[str, str] = {}
    missing = []
    for key, spec in declared.items():
        entry = by_key.get(key)
        if entry and entry.get("UsePreviousValue") in (True, "true", "True"):
            if previous is None or key not in previous:
                raise CloudFormationError(
                    f"Invalid input for parameter key {key}. Cannot specify usePreviousValue as "
                    "true for a parameter key not in the previous template"
                )
            values[key] = previous[key]
        elif entry and "ParameterValue" in entry:
            values[key] = str(entry["ParameterValue"])
        elif "Default" in spec:
            default = spec["Default"]
            values[key] = ",".join(map(str, default)) if isinstance(default, list) else str(default)
        else:
            missing.append(key)
    if missing:
        raise CloudFormationError(f"Parameters: [{', '.join(missing)}] must have values")
    for key, spec in declared.items():
        _check_parameter(key, spec, values[key])
    check_rules(template, values)
    no_echo = {k for k, spec in declared.items() if str(spec.get("NoEcho", "")).lower() == "true"}
    return values, no_echo


def check_rules(template: Mapping[str, Any], values: Mapping[str, str]) -> None:
    """The template's ``Rules``: a rule whose ``RuleCondition`` holds must pass each ``Assert``,
    or the operation is refused with the assertion's ``AssertDescription`` ("Rules" and
    "Rule functions" in the CloudFormation User Guide)."""
    declared: Mapping[str, Any] = template.get("Parameters", {}) or {}

    def value(node: Any) -> Any:
        if isinstance(node, dict) and len(node) == 1:
            ((name, arg),) = node.items()
            if name == "Ref":
                if arg not in declared:
                    raise CloudFormationError(
                        f"Template format error: Unresolved dependencies [{arg}] in the Rules block"
                    )
                text = values[arg]
                listed = str(declared[arg].get("Type", "")).startswith(
                    ("CommaDelimitedList", "List<")
                )
                return text.split(",") if listed else text
            if name == "Fn::Equals":
                left, right = (value(a) for a in arg)
                return str(left) == str(right) if not isinstance(left, list) else left == right
            if name == "Fn::Not":
                return not truth(arg[0])
            if name == "Fn::And":
                return all(truth(a) for a in arg)
            if name == "Fn::Or":
                return any(truth(a) for a in arg)
            if name == "Fn::Contains":
                options, item = value(arg[0]), value(arg[1])
                return item in options
            if name == "Fn::EachMemberEquals":
                items, item = value(arg[0]), value(arg[1])
                return all(i == item for i in items)
            if name == "Fn::EachMemberIn":
                items, options = value(arg[0]), value(arg[1])
                return all(i in options for i in items)
            raise CloudFormationError(
                f"Template format error: {name} is not supported in the Rules block"
            )
        if isinstance(node, list):
            return [value(n) for n in node]
        return node

    def truth(node: Any) -> bool:
        result = value(node)
        if not isinstance(result, bool):
            raise CloudFormationError(
                "Template format error: every Rules condition and assertion must be a boolean"
            )
        return result

    for rule in (template.get("Rules") or {}).values():
        if "RuleCondition" in rule and not truth(rule["RuleCondition"]):
            continue
        for assertion in rule.get("Assertions", []):
            if not truth(assertion["Assert"]):
                raise CloudFormationError(
                    str(assertion.get("AssertDescription") or "Template rule assertion failed")
                )


def _check_parameter(key: str, spec: Mapping[str, Any], value: str) -> None:
    allowed = spec.get("AllowedValues")
    if allowed is not None and value not in [str(a) for a in allowed]:
        raise CloudFormationError(f"Parameter '{key}' must be one of AllowedValues")
    pattern = spec.get("AllowedPattern")
    is_string = spec.get("Type", "String") == "String"
    if pattern is not None and is_string and re.fullmatch(str(pattern), value) is None:
        raise CloudFormationError(f"Parameter '{key}' must match pattern {pattern}")
    if spec.get("Type") == "Number":
        try:
            number = float(value)
        except ValueError:
            raise CloudFormationError(f"Parameter '{key}' must be a number") from None
        if "MinValue" in spec and number < float(spec["MinValue"]):
            raise CloudFormationError(
                f"Parameter '{key}' must be a number not less than {spec['MinValue']}"
            )
        if "MaxValue" in spec and number > float(spec["MaxValue"]):
            raise CloudFormationError(
                f"Parameter '{key}' must be a number not greater than {spec['MaxValue']}"
            )


def process(
    original: dict[str, Any], parameters: Mapping[str, str], pseudo: Mapping[str, str]
) -> dict[str, Any]:
    """The template CloudFormation creates resources from: the submitted one with its
    transforms applied, with the stack's parameter values (as CloudFormation runs them)."""
    names = transforms(original)
    unknown = [n for n in names if n != SERVERLESS]
    if unknown:
        raise CloudFormationError(f"Transform {unknown[0]} is not supported by the local cloud")
    if not names:
        copied: dict[str, Any] = json.loads(json.dumps(original))
        return copied
    from samtranslator.translator.transform import transform  # type: ignore[import-untyped]

    values: dict[str, Any] = dict(pseudo)
    values.update(parameters)
    # The translator finds its region in the environment; other threads (handlers serving
    # requests during a stack update) must not see the environment change under them.
    with thread_environment({"AWS_DEFAULT_REGION": pseudo["AWS::Region"]}):
        try:
            result = transform(json.loads(json.dumps(original)), values, OfflinePolicyLoader())
        except Exception as exc:  # the translator's own messages are CloudFormation's
            raise CloudFormationError(f"Transform {SERVERLESS} failed with: {exc}") from None
    processed: dict[str, Any] = json.loads(json.dumps(result))
    return processed


def required_capabilities(template: Mapping[str, Any]) -> list[str]:
    resources = template.get("Resources", {})
    iam = [r for r in resources.values() if str(r.get("Type", "")).startswith(IAM_TYPES)]
    if not iam:
        return []
    named = any(
        r.get("Properties", {}).get(k) for r in iam for k in ("RoleName", "UserName", "GroupName")
    )
    return ["CAPABILITY_NAMED_IAM"] if named else ["CAPABILITY_IAM"]


def dependencies(template: Mapping[str, Any], active: set[str]) -> dict[str, set[str]]:
    """Each active resource's references to other resources (Ref, GetAtt, Sub, DependsOn)."""
    resources = template["Resources"]
    graph: dict[str, set[str]] = {}
    for logical_id in active:
        resource = resources[logical_id]
        body = {k: v for k, v in resource.items() if k not in ("Type", "Condition", "DependsOn")}
        depends = resource.get("DependsOn", [])
        needs = references(body) | set(depends if isinstance(depends, list) else [depends])
        undefined = {n for n in needs if n not in resources and not n.startswith("AWS::")}
        undefined -= set(template.get("Parameters", {}) or {})
        if undefined:
            raise CloudFormationError(
                "Template format error: Unresolved resource dependencies "
                f"[{', '.join(sorted(undefined))}] in the Resources block of the template"
            )
        graph[logical_id] = {n for n in needs if n in active}
    return graph


def order(graph: Mapping[str, set[str]]) -> list[str]:
    """Creation order; a cycle is refused with CloudFormation's message, naming every resource
    on one (the strongly connected components with more than one member, or a self-reference)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    cyclic: list[str] = []
    result: list[str] = []
    counter = [0]

    def visit(node: str) -> None:  # Tarjan: components come out in dependency order
        index[node] = low[node] = counter[0]
        counter[0] += 1
        stack.append(node)
        on_stack.add(node)
        for needed in sorted(graph[node]):
            if needed not in index:
                visit(needed)
                low[node] = min(low[node], low[needed])
            elif needed in on_stack:
                low[node] = min(low[node], index[needed])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1 or node in graph[node]:
                cyclic.extend(component)
            result.extend(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    if cyclic:
        raise CloudFormationError(
            f"Circular dependency between resources: [{', '.join(sorted(cyclic))}]"
        )
    return result


class StackEvaluator(Evaluator):
    """The processed template evaluated for one stack: ``Ref`` and ``GetAtt`` give what its
    resources recorded."""

    def __init__(
        self,
        template: dict[str, Any],
        parameters: Mapping[str, str],
        pseudo: Mapping[str, Any],
        physical: Mapping[str, str],
        attributes: Mapping[str, Mapping[str, Any]],
    ) -> None:
        self._physical = physical
        self._attributes = attributes
        super().__init__(template, parameters, pseudo)

    def physical(self, logical_id: str) -> Any:
        if logical_id not in self._physical:
            raise CloudFormationError(
                "Template error: instance of Fn::GetAtt or Ref references undefined resource "
                f"{logical_id}"
            )
        return self._physical[logical_id]

    def attribute(self, logical_id: str, attribute: str) -> Any:
        values = self._attributes.get(logical_id, {})
        if attribute not in values:
            raise CloudFormationError(
                f"Template error: resource {logical_id} does not support attribute type "
                f"{attribute} in Fn::GetAtt"
            )
        return values[attribute]

    def active_resources(self) -> set[str]:
        return {r for r in self.template["Resources"] if self.active(r)}
