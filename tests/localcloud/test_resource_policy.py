"""API Gateway resource policies evaluated as AWS documents them: an explicit deny wins; an
``AWS_IAM`` route lets a caller of the API's account through unless a statement denies it, while
a caller of another account, or an anonymous caller of a route without authorization, needs a
statement that allows it (API Gateway Developer Guide, "How API Gateway resource policies affect
authorization workflow", tables A and B); condition operators hold or fail as the IAM User Guide's
"Condition operators" says, absent keys included. What the module cannot evaluate it refuses.
"""

from __future__ import annotations

from typing import Any

import pytest

from safe_deploy.localcloud.resource_policy import (
    Caller,
    Effect,
    Invocation,
    PolicyError,
    ResourcePolicy,
    evaluate_policy,
    execute_api_arn,
)

ACCOUNT = "123456789012"
OPERATOR = f"arn:aws:iam::{ACCOUNT}:user/operator"
RELEASE_ROLE = f"arn:aws:iam::{ACCOUNT}:role/release"
PREDICT_ONLY = f"arn:aws:iam::{ACCOUNT}:user/predict-client"
OTHER_ACCOUNT_USER = "arn:aws:iam::210987654321:user/partner"


def planned_policy(operators: Any) -> dict[str, Any]:
    """The policy the template is to carry (``Auth.ResourcePolicy.CustomStatements``), as SAM
    writes it into the API's OpenAPI body."""
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": "*",
                "Action": "execute-api:Invoke",
                "Resource": "execute-api:/*",
            },
            {
                "Effect": "Deny",
                "Principal": "*",
                "Action": "execute-api:Invoke",
                "Resource": "execute-api:/*/POST/operator/decisions",
                "Condition": {"ArnNotLike": {"aws:PrincipalArn": operators}},
            },
        ],
    }


def allowed(
    document: dict[str, Any] | str, principal: str | None, method: str, path: str, **kw: Any
) -> bool:
    return evaluate_policy(
        document, principal_arn=principal, method=method, path=path, stage="v1", **kw
    ).allowed


# ---------------------------------------------------------------- the planned policy
@pytest.mark.parametrize("operator", [OPERATOR, RELEASE_ROLE])
def test_a_listed_operator_may_decide(operator: str) -> None:
    assert allowed(
        planned_policy([OPERATOR, RELEASE_ROLE]), operator, "POST", "/operator/decisions"
    )


def test_a_predict_only_principal_is_refused_decisions_but_may_predict() -> None:
    policy = planned_policy([OPERATOR])
    verdict = evaluate_policy(
        policy, principal_arn=PREDICT_ONLY, method="POST", path="/operator/decisions", stage="v1"
    )
    assert (verdict.allowed, verdict.explicit_deny) == (False, True)
    assert allowed(policy, PREDICT_ONLY, "POST", "/predict")
    assert allowed(policy, PREDICT_ONLY, "GET", "/operator/decisions")  # only POST is denied


def test_a_session_of_a_listed_role_may_decide() -> None:
    session = f"arn:aws:sts::{ACCOUNT}:assumed-role/release/ci-run-42"
    assert allowed(planned_policy([RELEASE_ROLE]), session, "POST", "/operator/decisions")


def test_with_no_operators_configured_nobody_may_decide() -> None:
    """``CommaDelimitedList`` with an empty default gives ``[""]``: a pattern no ARN matches."""
    policy = planned_policy([""])
    for principal in (OPERATOR, PREDICT_ONLY):
        assert not allowed(policy, principal, "POST", "/operator/decisions")
        assert allowed(policy, principal, "POST", "/predict")


def test_an_anonymous_caller_is_denied_decisions_and_allowed_elsewhere() -> None:
    """aws:PrincipalArn is absent for an anonymous caller: ArnNotLike holds, the Deny applies."""
    policy = planned_policy([OPERATOR])
    verdict = evaluate_policy(
        policy,
        principal_arn=None,
        method="POST",
        path="/operator/decisions",
        stage="v1",
        authorization="NONE",
    )
    assert (verdict.allowed, verdict.explicit_deny) == (False, True)
    assert allowed(policy, None, "GET", "/approvals/abc", authorization="NONE")


def test_the_refusal_reads_as_api_gateways() -> None:
    invocation = Invocation(
        execute_api_arn("us-east-1", ACCOUNT, "a1b2c3", "v1", "POST", "/operator/decisions"),
        "203.0.113.9",
        Caller.from_arn(PREDICT_ONLY),
    )
    policy = ResourcePolicy.parse(
        planned_policy([OPERATOR]), region="us-east-1", account=ACCOUNT, api_id="a1b2c3"
    )
    assert policy.effect(invocation) is Effect.DENY
    verdict = evaluate_policy(
        planned_policy([OPERATOR]),
        principal_arn=PREDICT_ONLY,
        method="POST",
        path="/operator/decisions",
        stage="v1",
        api_id="a1b2c3",
    )
    assert verdict.message(invocation) == (
        f"User: {PREDICT_ONLY} is not authorized to perform: execute-api:Invoke on resource: "
        f"arn:aws:execute-api:us-east-1:{ACCOUNT}:a1b2c3/v1/POST/operator/decisions "
        "with an explicit deny"
    )


# ---------------------------------------------------------------- tables A and B
ONLY_OPERATOR = {
    "Statement": [
        {
            "Effect": "Allow",
            "Principal": {"AWS": OPERATOR},
            "Action": "execute-api:Invoke",
            "Resource": "execute-api:/*",
        }
    ]
}


def test_same_account_iam_callers_need_no_allow_but_others_do() -> None:
    """Table A: IAM allows (locally, any valid signature), so silence lets them through; table B:
    another account's caller needs the resource policy to allow; a route without
    authorization needs it for everyone."""
    assert allowed(ONLY_OPERATOR, PREDICT_ONLY, "GET", "/predict")
    assert not allowed(ONLY_OPERATOR, OTHER_ACCOUNT_USER, "GET", "/predict")
    assert not allowed(ONLY_OPERATOR, None, "GET", "/predict", authorization="NONE")
    verdict = evaluate_policy(
        ONLY_OPERATOR, principal_arn=None, method="GET", path="/predict", stage="v1",
        authorization="NONE",
    )  # fmt: skip
    assert (verdict.allowed, verdict.explicit_deny) == (False, False)  # implicit: no "explicit"


def test_another_accounts_caller_passes_when_the_policy_names_its_account() -> None:
    policy = {
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"AWS": ["210987654321"]},
                "Action": "execute-api:*",
                "Resource": "*",
            }
        ]
    }
    assert allowed(policy, OTHER_ACCOUNT_USER, "GET", "/predict")
    root = {**policy["Statement"][0], "Principal": {"AWS": "arn:aws:iam::210987654321:root"}}
    assert allowed({"Statement": [root]}, OTHER_ACCOUNT_USER, "GET", "/predict")


# ---------------------------------------------------------------- elements and operators
def statement(**overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "Effect": "Deny",
        "Principal": "*",
        "Action": "execute-api:Invoke",
        "Resource": "execute-api:/*",
    }
    base.update(overrides)
    return {"Statement": [base]}


def denied(document: dict[str, Any], principal: str | None = PREDICT_ONLY, **kw: Any) -> bool:
    kw.setdefault("method", "GET")
    kw.setdefault("path", "/predict")
    verdict = evaluate_policy(document, principal_arn=principal, stage="v1", **kw)
    return verdict.explicit_deny


@pytest.mark.parametrize(
    ("resource", "applies"),
    [
        ("execute-api:/v1/GET/predict", True),
        ("execute-api:/*/GET/*", True),
        ("execute-api:/v?/GET/predict", True),
        ("execute-api:/v1/POST/*", False),
        ("execute-api:/prod/*", False),
        (f"arn:aws:execute-api:us-east-1:{ACCOUNT}:apiid12345/v1/GET/predict", True),
        (f"arn:aws:execute-api:*:{ACCOUNT}:*/*/GET/*", True),
        (f"arn:aws:execute-api:eu-west-1:{ACCOUNT}:*/*", False),
        ("arn:aws:execute-api:us-east-1:999999999999:*", False),
        ("*", True),
    ],
)
def test_resources_match_by_short_or_full_arn_with_wildcards(resource: str, applies: bool) -> None:
    assert denied(statement(Resource=resource)) is applies


def test_not_resource_and_not_action_apply_to_everything_else() -> None:
    assert not denied(statement(Resource=None, NotResource="execute-api:/*/GET/predict"))
    assert denied(statement(Resource=None, NotResource="execute-api:/*/POST/*"))
    assert not denied(statement(Action=None, NotAction="execute-api:*"))
    assert denied(statement(Action=None, NotAction="execute-api:ManageConnections"))
    assert denied(statement(Action="EXECUTE-API:invoke"))  # actions are case-insensitive


def test_a_principal_must_match_the_caller() -> None:
    assert denied(statement(Principal={"AWS": PREDICT_ONLY}))
    assert not denied(statement(Principal={"AWS": OPERATOR}))
    assert denied(statement(Principal={"AWS": ACCOUNT}))
    assert denied(statement(Principal={"AWS": "*"}), principal=None, authorization="NONE")
    assert not denied(statement(Principal={"AWS": ACCOUNT}), principal=None, authorization="NONE")
    assert not denied(statement(Principal={"Service": "lambda.amazonaws.com"}))


@pytest.mark.parametrize(
    ("condition", "applies"),
    [
        ({"ArnLike": {"aws:PrincipalArn": f"arn:aws:iam::{ACCOUNT}:user/predict-*"}}, True),
        ({"ArnLike": {"aws:PrincipalArn": "arn:aws:iam::*:user/pre?ict-client"}}, True),
        ({"ArnLike": {"aws:PrincipalArn": f"arn:aws:iam::{ACCOUNT}:role/*"}}, False),
        ({"ArnEquals": {"aws:PrincipalArn": PREDICT_ONLY}}, True),
        ({"ArnNotEquals": {"aws:PrincipalArn": PREDICT_ONLY}}, False),
        ({"ArnNotLike": {"aws:PrincipalArn": [OPERATOR, PREDICT_ONLY]}}, False),  # any of them
        ({"ArnLike": {"aws:PrincipalArn": [OPERATOR, PREDICT_ONLY]}}, True),
        ({"StringEquals": {"aws:username": "predict-client"}}, True),
        ({"StringEquals": {"aws:username": "Predict-Client"}}, False),  # case-sensitive
        ({"StringNotEquals": {"aws:username": "operator"}}, True),
        ({"StringLike": {"aws:username": "predict-*"}}, True),
        ({"StringNotLike": {"aws:username": ["predict-*", "x"]}}, False),
        ({"StringEquals": {"aws:PrincipalAccount": ACCOUNT}}, True),
        ({"StringEquals": {"AWS:PRINCIPALACCOUNT": "210987654321"}}, False),  # keys: any case
        ({"IpAddress": {"aws:SourceIp": "198.51.100.0/24"}}, True),
        ({"IpAddress": {"aws:SourceIp": ["10.0.0.0/8", "198.51.100.7"]}}, True),
        ({"NotIpAddress": {"aws:SourceIp": "198.51.100.0/24"}}, False),
        ({"NotIpAddress": {"aws:SourceIp": "203.0.113.0/24"}}, True),
        (  # operators and keys must all hold
            {
                "IpAddress": {"aws:SourceIp": "198.51.100.0/24"},
                "StringEquals": {"aws:username": "operator"},
            },
            False,
        ),
    ],
)
def test_condition_operators(condition: dict[str, Any], applies: bool) -> None:
    assert denied(statement(Condition=condition), source_ip="198.51.100.7") is applies


@pytest.mark.parametrize(
    ("condition", "applies"),
    [
        ({"StringEquals": {"aws:username": "anything"}}, False),
        ({"StringNotEquals": {"aws:username": "anything"}}, True),
        ({"ArnLike": {"aws:PrincipalArn": "*"}}, False),
        ({"ArnNotLike": {"aws:PrincipalArn": "arn:*"}}, True),
        ({"StringNotLike": {"aws:PrincipalAccount": "*"}}, True),
    ],
)
def test_an_absent_key_fails_a_positive_operator_and_satisfies_a_negated_one(
    condition: dict[str, Any], applies: bool
) -> None:
    """An anonymous caller has no aws:PrincipalArn, account or username."""
    assert denied(statement(Condition=condition), principal=None, authorization="NONE") is applies


def test_a_role_session_has_no_username_and_its_role_as_principal_arn() -> None:
    session = f"arn:aws:sts::{ACCOUNT}:assumed-role/release/run"
    no_user = statement(Condition={"StringNotLike": {"aws:username": "*"}})
    assert denied(no_user, principal=session)
    role = statement(Condition={"ArnEquals": {"aws:PrincipalArn": RELEASE_ROLE}})
    assert denied(role, principal=session)


# ---------------------------------------------------------------- what is refused
@pytest.mark.parametrize(
    ("document", "reason"),
    [
        (statement(Condition={"StringEqualsIfExists": {"aws:username": "x"}}), "operator"),
        (statement(Condition={"ForAnyValue:StringLike": {"aws:username": "x"}}), "operator"),
        (statement(Condition={"DateGreaterThan": {"aws:CurrentTime": "2020-01-01"}}), "operator"),
        (statement(Condition={"StringEquals": {"aws:SourceVpce": "vpce-1"}}), "key"),
        (statement(Condition={"ArnLike": {"aws:SourceArn": "arn:*"}}), "key"),
        (statement(Condition={"IpAddress": {"aws:SourceIp": "not-a-network"}}), "CIDR"),
        (statement(Resource="execute-api:/${aws:username}/*"), "variables"),
        (statement(Effect="Maybe"), "Effect"),
        (statement(Principal=None), "Principal"),
        (statement(Principal={"AWS": "arn:aws:iam::*:user/x"}), "wildcards"),
        (statement(NotPrincipal={"AWS": OPERATOR}), "NotPrincipal"),
        (statement(NotAction="execute-api:Invoke"), "exactly one"),
        (statement(Resource={"Fn::Sub": "execute-api:/*"}), "string"),
        (statement(Resource="lambda:/*"), "neither an ARN"),
        ({"Statement": []}, "at least one"),
        ("{not json", "JSON"),
    ],
)
def test_what_cannot_be_evaluated_is_refused_never_allowed(
    document: dict[str, Any] | str, reason: str
) -> None:
    if isinstance(document, dict):
        statements = document["Statement"]
        document = {
            "Statement": [{k: v for k, v in s.items() if v is not None} for s in statements]
        }
    with pytest.raises(PolicyError, match=reason):
        ResourcePolicy.parse(document, region="us-east-1", account=ACCOUNT, api_id="a1")


def test_a_policy_may_come_as_json_text() -> None:
    import json

    text = json.dumps(planned_policy([OPERATOR]))
    assert not allowed(text, PREDICT_ONLY, "POST", "/operator/decisions")
