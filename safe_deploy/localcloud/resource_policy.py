"""API Gateway resource policies: who may call ``execute-api:Invoke`` on which method of an API.

A policy is parsed once (``ResourcePolicy.parse``), refusing anything this module cannot evaluate
rather than guessing, then evaluated per request as AWS documents it:

- a statement applies when its principal, action, resource and every condition match; an applying
  ``Deny`` wins over any ``Allow`` (AWS, IAM User Guide, "Policy evaluation logic");
- the outcome depends on the route's authorization (AWS, API Gateway Developer Guide, "How API
  Gateway resource policies affect authorization workflow", tables A and B): a route with
  ``AWS_IAM`` and a caller of the API's own account is allowed unless a statement denies it (the
  caller's IAM policies are taken to allow, since the local cloud does not enforce IAM); a caller
  of another account, or an anonymous caller of a route without authorization, needs a statement
  that allows it.

Conditions: ``ArnLike``/``ArnEquals`` (the same test: each of the six ``:``-separated parts
matched with ``*`` and ``?``), ``StringEquals``, ``StringLike``, ``IpAddress`` and their negations,
on ``aws:PrincipalArn``, ``aws:PrincipalAccount``, ``aws:username`` and ``aws:SourceIp``. Several
values of one key match if any does; several keys and operators must all hold. A key absent from
the request (``aws:PrincipalArn`` of an anonymous caller) fails a positive operator and satisfies
a negated one (AWS, IAM User Guide, "IAM JSON policy elements: Condition operators").
"""

from __future__ import annotations

import ipaddress
import json
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from enum import Enum
from typing import Any

ACTION = "execute-api:Invoke"
SHORT_PREFIX = "execute-api:/"  # SAM's and the console's form, relative to the API


class PolicyError(ValueError):
    """A policy this module refuses: malformed, or using what it cannot evaluate."""


class Effect(Enum):
    ALLOW = "Allow"
    DENY = "Deny"
    NEITHER = "Neither"  # no statement applies: an implicit deny unless something else allows


@dataclass(frozen=True)
class Caller:
    """An authenticated principal, as the policy's context keys see it."""

    arn: str  # aws:PrincipalArn: a user's ARN, or a role's for its sessions
    account: str  # aws:PrincipalAccount
    username: str | None = None  # aws:username: IAM users only
    session_arn: str | None = None  # the role session's ARN (arn:aws:sts::...:assumed-role/...)

    @classmethod
    def from_arn(cls, arn: str) -> Caller:
        """A caller known by its ARN alone (``arn:aws:iam::123456789012:user/ann``)."""
        parts = arn.split(":", 5)
        if len(parts) != 6 or parts[0] != "arn":
            raise ValueError(f"not an ARN: {arn!r}")
        partition, service, account, resource = parts[1], parts[2], parts[4], parts[5]
        kind, _, name = resource.partition("/")
        if service == "sts" and kind == "assumed-role":  # a role session: the role is the principal
            role = name.split("/", 1)[0]
            return cls(f"arn:{partition}:iam::{account}:role/{role}", account, session_arn=arn)
        return cls(arn, account, name.rsplit("/", 1)[-1] if kind == "user" else None)

    @property
    def user_arn(self) -> str:
        """The name API Gateway gives the caller in its refusals."""
        return self.session_arn or self.arn


@dataclass(frozen=True)
class Invocation:
    """One request, as the policy sees it."""

    resource_arn: str  # arn:aws:execute-api:region:account:api-id/stage/METHOD/path
    source_ip: str
    caller: Caller | None = None  # None: anonymous

    def context(self, key: str) -> str | None:
        caller = self.caller
        values = {
            "aws:principalarn": caller.arn if caller else None,
            "aws:principalaccount": caller.account if caller else None,
            "aws:username": caller.username if caller else None,
            "aws:sourceip": self.source_ip,
        }
        return values[key]


def execute_api_arn(
    region: str, account: str, api_id: str, stage: str, method: str, path: str
) -> str:
    """The ARN a request is authorized against: ``.../api-id/v1/POST/operator/decisions``."""
    resource = f"{api_id}/{stage}/{method.upper()}/{path.lstrip('/')}"
    return f"arn:aws:execute-api:{region}:{account}:{resource}"


@dataclass(frozen=True)
class Verdict:
    allowed: bool
    explicit_deny: bool = False

    def message(self, invocation: Invocation) -> str:
        """API Gateway's 403 body text (``{"Message": ...}``) for a refused invocation."""
        user = invocation.caller.user_arn if invocation.caller else "anonymous"
        text = (
            f"User: {user} is not authorized to perform: {ACTION} on resource: "
            f"{invocation.resource_arn}"
        )
        return text + (" with an explicit deny" if self.explicit_deny else "")


# ---------------------------------------------------------------------------- matching
def _wildcard(pattern: str, case_sensitive: bool = True) -> re.Pattern[str]:
    regex = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.compile(regex, re.DOTALL if case_sensitive else re.DOTALL | re.IGNORECASE)


def _like(pattern: str, value: str, case_sensitive: bool = True) -> bool:
    return _wildcard(pattern, case_sensitive).fullmatch(value) is not None


def _arn_like(pattern: str, value: str) -> bool:
    """IAM's ARN match: the six ``:``-separated parts each matched on their own."""
    pattern_parts, value_parts = pattern.split(":", 5), value.split(":", 5)
    if len(value_parts) != 6:
        return False
    if len(pattern_parts) != 6:
        return _like(pattern, value)
    return all(_like(p, v) for p, v in zip(pattern_parts, value_parts, strict=True))


def _ip_in(network: str, value: str) -> bool:
    try:
        return ipaddress.ip_address(value) in ipaddress.ip_network(network, strict=False)
    except ValueError:
        return False


_MATCHERS: dict[str, Callable[[str, str], bool]] = {
    "ArnLike": _arn_like,
    "ArnEquals": _arn_like,  # IAM documents both with the same wildcard matching
    "StringEquals": lambda pattern, value: pattern == value,
    "StringLike": _like,
    "IpAddress": _ip_in,
}
OPERATORS: dict[str, tuple[str, bool]] = {  # operator -> (matcher, negated)
    "ArnLike": ("ArnLike", False),
    "ArnNotLike": ("ArnLike", True),
    "ArnEquals": ("ArnEquals", False),
    "ArnNotEquals": ("ArnEquals", True),
    "StringEquals": ("StringEquals", False),
    "StringNotEquals": ("StringEquals", True),
    "StringLike": ("StringLike", False),
    "StringNotLike": ("StringLike", True),
    "IpAddress": ("IpAddress", False),
    "NotIpAddress": ("IpAddress", True),
}
CONTEXT_KEYS = ("aws:principalarn", "aws:principalaccount", "aws:username", "aws:sourceip")


@dataclass(frozen=True)
class Condition:
    operator: str
    key: str  # lower case: condition keys are case-insensitive
    values: tuple[str, ...]

    def holds(self, invocation: Invocation) -> bool:
        matcher, negated = OPERATORS[self.operator]
        value = invocation.context(self.key)
        if value is None:
            return negated
        matched = any(_MATCHERS[matcher](pattern, value) for pattern in self.values)
        return not matched if negated else matched


@dataclass(frozen=True)
class Statement:
    effect: Effect
    principals: tuple[str, ...]  # "*", account ids, ARNs
    actions: tuple[str, ...]
    actions_negated: bool
    resources: tuple[str, ...]  # full ARNs, possibly with wildcards
    resources_negated: bool
    conditions: tuple[Condition, ...]

    def applies(self, invocation: Invocation) -> bool:
        return (
            self._principal_matches(invocation.caller)
            and self._matches(self.actions, self.actions_negated, ACTION, action=True)
            and self._matches(
                self.resources, self.resources_negated, invocation.resource_arn, action=False
            )
            and all(c.holds(invocation) for c in self.conditions)
        )

    def _principal_matches(self, caller: Caller | None) -> bool:
        if "*" in self.principals:
            return True
        if caller is None:
            return False
        names = {caller.arn, caller.account, f"arn:aws:iam::{caller.account}:root"}
        if caller.session_arn:
            names.add(caller.session_arn)
        return bool(names.intersection(self.principals))

    @staticmethod
    def _matches(patterns: Iterable[str], negated: bool, value: str, action: bool) -> bool:
        if action:
            matched = any(_like(p, value, case_sensitive=False) for p in patterns)
        else:
            matched = any(_arn_like(p, value) for p in patterns)
        return not matched if negated else matched


# ---------------------------------------------------------------------------- parsing
def _strings(value: Any, where: str) -> tuple[str, ...]:
    items = value if isinstance(value, list) else [value]
    out = []
    for item in items:
        if isinstance(item, bool):
            item = "true" if item else "false"
        elif isinstance(item, int | float):
            item = str(item)
        if not isinstance(item, str):
            raise PolicyError(f"{where}: expected a string or a list of strings, got {item!r}")
        if "${" in item:
            raise PolicyError(f"{where}: policy variables ({item!r}) are not evaluated locally")
        out.append(item)
    if not out:
        raise PolicyError(f"{where}: no value")
    return tuple(out)


def _one_of(raw: dict[str, Any], name: str, index: int) -> tuple[tuple[str, ...], bool]:
    plain, negated = raw.get(name), raw.get("Not" + name)
    if (plain is None) == (negated is None):
        raise PolicyError(f"Statement {index}: needs exactly one of {name} and Not{name}")
    value = plain if plain is not None else negated
    return _strings(value, f"Statement {index} {name}"), negated is not None


def _principals(raw: dict[str, Any], index: int) -> tuple[str, ...]:
    if "NotPrincipal" in raw:
        raise PolicyError(f"Statement {index}: NotPrincipal is not evaluated locally")
    principal = raw.get("Principal")
    if principal is None:
        raise PolicyError(f"Statement {index}: a resource policy statement needs a Principal")
    if principal == "*":
        return ("*",)
    if not isinstance(principal, dict):
        raise PolicyError(f'Statement {index}: Principal must be "*" or a map')
    names = _strings(principal["AWS"], f"Statement {index} Principal") if "AWS" in principal else ()
    for name in names:
        if name != "*" and ("*" in name or "?" in name):
            raise PolicyError(f"Statement {index}: invalid principal {name!r} (no wildcards)")
    # Service or federated principals never match an IAM or anonymous caller of the API.
    return names


def _conditions(raw: Any, index: int) -> tuple[Condition, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, dict):
        raise PolicyError(f"Statement {index}: Condition must be a map")
    out = []
    for operator, block in raw.items():
        if operator not in OPERATORS:
            raise PolicyError(
                f"Statement {index}: condition operator {operator!r} is not evaluated locally "
                f"(known: {', '.join(OPERATORS)})"
            )
        if not isinstance(block, dict) or not block:
            raise PolicyError(f"Statement {index}: {operator} must map condition keys to values")
        for key, values in block.items():
            if key.lower() not in CONTEXT_KEYS:
                raise PolicyError(
                    f"Statement {index}: condition key {key!r} is not evaluated locally "
                    "(known: aws:PrincipalArn, aws:PrincipalAccount, aws:username, aws:SourceIp)"
                )
            parsed = _strings(values, f"Statement {index} {operator} {key}")
            if OPERATORS[operator][0] == "IpAddress":
                for network in parsed:
                    try:
                        ipaddress.ip_network(network, strict=False)
                    except ValueError:
                        raise PolicyError(
                            f"Statement {index}: {network!r} is not an IP address or CIDR block"
                        ) from None
            out.append(Condition(operator, key.lower(), parsed))
    return tuple(out)


@dataclass(frozen=True)
class ResourcePolicy:
    statements: tuple[Statement, ...]

    @classmethod
    def parse(
        cls, document: dict[str, Any] | str, *, region: str, account: str, api_id: str
    ) -> ResourcePolicy:
        """A policy as API Gateway stores it: ``execute-api:/…`` resources made full ARNs of
        this API."""
        if isinstance(document, str):
            try:
                document = json.loads(document)
            except ValueError as exc:
                raise PolicyError(f"not JSON: {exc}") from None
        if not isinstance(document, dict):
            raise PolicyError("a policy document is a map")
        unknown = set(document) - {"Version", "Id", "Statement"}
        if unknown:
            raise PolicyError(f"unknown policy elements: {', '.join(sorted(unknown))}")
        raw_statements = document.get("Statement")
        if isinstance(raw_statements, dict):
            raw_statements = [raw_statements]
        if not isinstance(raw_statements, list) or not raw_statements:
            raise PolicyError("a policy needs at least one Statement")
        prefix = f"arn:aws:execute-api:{region}:{account}:{api_id}/"
        statements = []
        for index, raw in enumerate(raw_statements):
            if not isinstance(raw, dict):
                raise PolicyError(f"Statement {index}: a statement is a map")
            known = {
                "Sid", "Effect", "Principal", "NotPrincipal", "Action", "NotAction",
                "Resource", "NotResource", "Condition",
            }  # fmt: skip
            unknown = set(raw) - known
            if unknown:
                raise PolicyError(f"Statement {index}: unknown elements {sorted(unknown)}")
            try:
                effect = Effect(raw.get("Effect"))
            except ValueError:
                raise PolicyError(f"Statement {index}: Effect must be Allow or Deny") from None
            if effect is Effect.NEITHER:
                raise PolicyError(f"Statement {index}: Effect must be Allow or Deny")
            actions, actions_negated = _one_of(raw, "Action", index)
            resources, resources_negated = _one_of(raw, "Resource", index)
            statements.append(
                Statement(
                    effect=effect,
                    principals=_principals(raw, index),
                    actions=actions,
                    actions_negated=actions_negated,
                    resources=tuple(_full_resource(r, prefix, index) for r in resources),
                    resources_negated=resources_negated,
                    conditions=_conditions(raw.get("Condition"), index),
                )
            )
        return cls(tuple(statements))

    def effect(self, invocation: Invocation) -> Effect:
        applying = {s.effect for s in self.statements if s.applies(invocation)}
        if Effect.DENY in applying:
            return Effect.DENY
        return Effect.ALLOW if Effect.ALLOW in applying else Effect.NEITHER


def _full_resource(resource: str, prefix: str, index: int) -> str:
    if resource == "*" or resource.startswith("arn:"):
        return resource
    if resource.startswith(SHORT_PREFIX):
        return prefix + resource[len(SHORT_PREFIX) :]
    raise PolicyError(
        f"Statement {index}: resource {resource!r} is neither an ARN nor {SHORT_PREFIX}…"
    )


# ---------------------------------------------------------------------------- decisions
def authorize(
    policy: ResourcePolicy | None,
    invocation: Invocation,
    *,
    iam_authorized: bool,
    api_account: str,
) -> Verdict:
    """Whether API Gateway lets the invocation through (tables A and B of "How API Gateway
    resource policies affect authorization workflow")."""
    if policy is None:
        return Verdict(True)
    effect = policy.effect(invocation)
    if effect is Effect.DENY:
        return Verdict(False, explicit_deny=True)
    caller = invocation.caller
    if iam_authorized and caller is not None and caller.account == api_account:
        return Verdict(True)  # table A: the caller's IAM policy allows (IAM is not enforced)
    return Verdict(effect is Effect.ALLOW)


def evaluate_policy(
    document: dict[str, Any] | str,
    *,
    principal_arn: str | None,
    method: str,
    path: str,
    stage: str,
    authorization: str = "AWS_IAM",
    source_ip: str = "198.51.100.7",
    region: str = "us-east-1",
    account: str = "123456789012",
    api_id: str = "apiid12345",
) -> Verdict:
    """One call, from a policy document as a template holds it: may ``principal_arn`` (``None``
    for an anonymous caller) call ``method path`` on ``stage`` of the API? For tests of the
    template; the local API Gateway evaluates the same way."""
    policy = ResourcePolicy.parse(document, region=region, account=account, api_id=api_id)
    invocation = Invocation(
        execute_api_arn(region, account, api_id, stage, method, path),
        source_ip,
        Caller.from_arn(principal_arn) if principal_arn else None,
    )
    return authorize(
        policy, invocation, iam_authorized=authorization == "AWS_IAM", api_account=account
    )
