"""Reading ``template.yaml`` the way CloudFormation does, for the local cloud.

The local cloud creates what the template declares (no second list of resources): this module
loads the YAML with CloudFormation's short tags, evaluates parameters and conditions, orders
resources by their references, and resolves intrinsic functions against local physical ids.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from graphlib import TopologicalSorter
from pathlib import Path
from typing import Any

import yaml

NO_VALUE = object()  # AWS::NoValue: the property disappears
DEFERRED_PROPERTIES = {"AWS::Serverless::Function": ("Events", "DeploymentPreference")}


class TemplateError(ValueError):
    """The template uses something the local cloud cannot evaluate."""


class _Loader(yaml.SafeLoader):  # type: ignore[misc]
    pass


def _tag(loader: yaml.Loader, suffix: str, node: yaml.Node) -> dict[str, Any]:
    name = "Ref" if suffix == "Ref" else f"Fn::{suffix}"
    if isinstance(node, yaml.ScalarNode):
        value: Any = loader.construct_scalar(node)
        if suffix == "GetAtt":
            value = str(value).split(".", 1)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)
    return {name: value}


_Loader.add_multi_constructor("!", _tag)


def parse_yaml(text: str) -> Any:
    """YAML with CloudFormation's short tags (``!Ref`` becomes ``{"Ref": ...}``)."""
    return yaml.load(text, Loader=_Loader)


def load(path: Path) -> dict[str, Any]:
    document = parse_yaml(path.read_text())
    if not isinstance(document, dict) or "Resources" not in document:
        raise TemplateError(f"{path}: not a CloudFormation template")
    return document


def references(value: Any) -> set[str]:
    """Logical ids a value refers to (Ref, GetAtt, and names inside Sub strings)."""
    found: set[str] = set()
    if isinstance(value, dict):
        for key, inner in value.items():
            if key == "Ref" and isinstance(inner, str):
                found.add(inner)
            elif key == "Fn::GetAtt":
                target = inner if isinstance(inner, list) else str(inner).split(".", 1)
                found.add(str(target[0]))
            elif key == "Fn::Sub":
                text = inner if isinstance(inner, str) else inner[0]
                found.update(m.split(".")[0] for m in re.findall(r"\$\{([^!}][^}]*)\}", text))
                if isinstance(inner, list):
                    found.update(references(inner[1]))
                    found -= set(inner[1])
            else:
                found.update(references(inner))
    elif isinstance(value, list):
        for inner in value:
            found.update(references(inner))
    return found


class Evaluator:
    """CloudFormation's evaluation of a template: parameters, conditions and intrinsic
    functions. What ``Ref`` and ``GetAtt`` give for a resource is the subclass's to say."""

    def __init__(
        self,
        template: dict[str, Any],
        parameter_overrides: Mapping[str, str] | None = None,
        pseudo: Mapping[str, Any] | None = None,
    ) -> None:
        self.template = template
        self.parameter_overrides = dict(parameter_overrides or {})
        self._pseudo = {"AWS::NoValue": NO_VALUE, "AWS::NotificationARNs": [], **(pseudo or {})}
        self.parameters = self._parameters()
        self.conditions: dict[str, bool] = {}

    # ---- what subclasses provide
    def physical(self, logical_id: str) -> Any:
        """What ``Ref`` gives for a resource."""
        raise TemplateError(f"Ref {logical_id}: no physical value")

    def attribute(self, logical_id: str, attribute: str) -> Any:
        """What ``GetAtt`` gives."""
        raise TemplateError(f"GetAtt {logical_id}.{attribute}: no value")

    # ---- parameters and conditions
    def _parameters(self) -> dict[str, Any]:
        values: dict[str, Any] = {}
        for name, spec in self.template.get("Parameters", {}).items():
            raw = self.parameter_overrides.get(name, spec.get("Default"))
            if raw is None:
                raise TemplateError(f"parameter {name} has no default and no value")
            if spec.get("Type") == "CommaDelimitedList":
                values[name] = [p.strip() for p in str(raw).split(",")] if str(raw) else [""]
            else:
                values[name] = str(raw)
        unknown = set(self.parameter_overrides) - set(values)
        if unknown:
            raise TemplateError(f"unknown parameter(s): {', '.join(sorted(unknown))}")
        return values

    def condition(self, name: str) -> bool:
        if name not in self.conditions:
            self.conditions[name] = bool(self.resolve(self.template["Conditions"][name]))
        return self.conditions[name]

    def active(self, logical_id: str) -> bool:
        resource = self.template["Resources"][logical_id]
        return "Condition" not in resource or self.condition(resource["Condition"])

    # ---- intrinsic functions
    def ref(self, name: str) -> Any:
        if name in self._pseudo:
            return self._pseudo[name]
        if name in self.parameters:
            return self.parameters[name]
        return self.physical(name)

    def _sub(self, text: str, extra: Mapping[str, Any]) -> str:
        def replace(match: re.Match[str]) -> str:
            expression = match.group(1)
            if expression.startswith("!"):
                return "${" + expression[1:] + "}"
            if expression in extra:
                return str(extra[expression])
            if "." in expression and not expression.startswith("AWS::"):
                logical_id, attribute = expression.split(".", 1)
                return str(self.attribute(logical_id, attribute))
            return str(self.ref(expression))

        return re.sub(r"\$\{([^}]+)\}", replace, text)

    def resolve(self, value: Any) -> Any:
        """Evaluate every intrinsic function in a value (``AWS::NoValue`` drops its key)."""
        if isinstance(value, list):
            items = [self.resolve(v) for v in value]
            return [v for v in items if v is not NO_VALUE]
        if not isinstance(value, dict):
            return value
        if len(value) == 1:
            ((key, arg),) = value.items()
            function = self._functions().get(key)
            if function is not None:
                return function(arg)
        out = {}
        for key, inner in value.items():
            resolved = self.resolve(inner)
            if resolved is not NO_VALUE:
                out[key] = resolved
        return out

    def _functions(self) -> dict[str, Callable[[Any], Any]]:
        def sub(arg: Any) -> str:
            if isinstance(arg, str):
                return self._sub(arg, {})
            text, variables = arg
            return self._sub(text, {k: self.resolve(v) for k, v in variables.items()})

        def join(arg: Any) -> str:
            separator, items = arg
            return str(separator).join(str(v) for v in self.resolve(items))

        def if_(arg: Any) -> Any:
            name, yes, no = arg
            return self.resolve(yes if self.condition(name) else no)

        def find_in_map(arg: Any) -> Any:
            table, top, second = (self.resolve(a) for a in arg)
            try:
                return self.template["Mappings"][table][top][second]
            except KeyError:
                raise TemplateError(f"FindInMap {table}/{top}/{second}: no such entry") from None

        def get_att(arg: Any) -> Any:
            logical_id, attribute = arg if isinstance(arg, list) else str(arg).split(".", 1)
            return self.attribute(logical_id, attribute)

        def select(arg: Any) -> Any:
            index, items = arg
            return self.resolve(items)[int(self.resolve(index))]

        def split(arg: Any) -> list[str]:
            separator, text = arg
            return str(self.resolve(text)).split(separator)

        return {
            "Ref": self.ref,
            "Fn::Sub": sub,
            "Fn::Join": join,
            "Fn::If": if_,
            "Fn::FindInMap": find_in_map,
            "Fn::GetAtt": get_att,
            "Fn::Select": select,
            "Fn::Split": split,
            "Fn::Equals": lambda arg: self.resolve(arg[0]) == self.resolve(arg[1]),
            "Fn::Not": lambda arg: not self.resolve(arg[0]),
            "Fn::And": lambda arg: all(self.resolve(a) for a in arg),
            "Fn::Or": lambda arg: any(self.resolve(a) for a in arg),
            "Condition": self.condition,
        }


class Stack(Evaluator):
    """The template evaluated for the local stack, with the physical values of what exists."""

    def __init__(
        self,
        template: dict[str, Any],
        name: str,
        region: str,
        account: str,
        parameter_overrides: Mapping[str, str] | None = None,
    ) -> None:
        self.name, self.region, self.account = name, region, account
        super().__init__(
            template,
            parameter_overrides,
            {
                "AWS::Region": region,
                "AWS::AccountId": account,
                "AWS::StackName": name,
                "AWS::StackId": f"arn:aws:cloudformation:{region}:{account}:stack/{name}/local",
                "AWS::Partition": "aws",
                "AWS::URLSuffix": "amazonaws.com",
            },
        )
        self.physical_ids: dict[str, str] = {}  # logical id -> Ref value
        self.attributes: dict[tuple[str, str], Any] = {}  # GetAtt values
        for condition in self.template.get("Conditions", {}):
            self.condition(condition)

    def physical(self, logical_id: str) -> Any:
        if logical_id not in self.physical_ids:
            raise TemplateError(f"Ref {logical_id}: not created (yet) in the local cloud")
        return self.physical_ids[logical_id]

    def attribute(self, logical_id: str, attribute: str) -> Any:
        key = (logical_id, attribute)
        if key not in self.attributes:
            raise TemplateError(
                f"GetAtt {logical_id}.{attribute}: not available in the local cloud"
            )
        return self.attributes[key]

    def pseudo(self, name: str) -> Any:
        return self._pseudo[name]

    # ---- ordering
    def creation_order(self) -> list[str]:
        """Resources in an order where everything a resource refers to exists before it.

        A SAM function's Events and DeploymentPreference become separate resources that are wired
        up after everything exists, so they do not order the function itself.
        """
        resources = self.template["Resources"]
        graph: dict[str, set[str]] = {}
        for logical_id, resource in resources.items():
            if not self.active(logical_id):
                continue
            properties = {
                k: v
                for k, v in resource.get("Properties", {}).items()
                if k not in DEFERRED_PROPERTIES.get(resource["Type"], ())
            }
            depends = resource.get("DependsOn", [])
            needs = references(properties) | set(
                depends if isinstance(depends, list) else [depends]
            )
            graph[logical_id] = {n for n in needs if n in resources and self.active(n)}
        return list(TopologicalSorter(graph).static_order())


def function_environment(template: Mapping[str, Any], properties: Mapping[str, Any]) -> Any:
    """A function's environment: Globals merged under its own, as SAM merges them."""
    globals_env = template.get("Globals", {}).get("Function", {}).get("Environment", {})
    merged = dict(globals_env.get("Variables", {}))
    merged.update(properties.get("Environment", {}).get("Variables", {}))
    return merged


def function_property(template: Mapping[str, Any], properties: Mapping[str, Any], name: str) -> Any:
    if name in properties:
        return properties[name]
    return template.get("Globals", {}).get("Function", {}).get(name)
