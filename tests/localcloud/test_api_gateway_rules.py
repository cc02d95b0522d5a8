"""The local API Gateway refuses what API Gateway refuses, deployed through the local
CloudFormation: SigV4 as API Gateway checks it, the caller in ``requestContext.identity``, the
API's resource policy on every route, access logs in CloudWatch Logs (refusals included), the
account's CloudWatch Logs role before any stage logs, and Lambda's reserved concurrency.

Sources for each message are in the modules' docstrings (``sigv4``, ``resource_policy``,
``access_log``, ``api``) and the resource handlers.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.client import HTTPMessage
from pathlib import Path
from typing import Any

import pytest
import requests
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from safe_deploy.localcloud import api as api_module
from safe_deploy.localcloud.access_log import AccessLogError, AccessLogSetting, render
from safe_deploy.localcloud.api import LOCAL_SECRET, LocalApi, Route
from safe_deploy.localcloud.cloud import LOCAL_ACCESS_KEY, LocalCloud
from safe_deploy.localcloud.metrics import MetricStore
from safe_deploy.localcloud.resource_policy import ResourcePolicy
from safe_deploy.localcloud.state import ActivityFeed, LocalSettings
from tests.localcloud.test_resource_policy import planned_policy as policy_with_operators

ROOT = Path(__file__).resolve().parents[2]
STAGE = "rules"  # not the application's stage: the local API keys routes by stage and path
REGION = "us-east-1"
ACCOUNT = "123456789012"
TIMESTAMP = "%Y%m%dT%H%M%SZ"
ACCESS_LOG_FORMAT = json.dumps(
    {
        "requestId": "$context.requestId",
        "extendedRequestId": "$context.extendedRequestId",
        "httpMethod": "$context.httpMethod",
        "resourcePath": "$context.resourcePath",
        "path": "$context.path",
        "status": "$context.status",
        "sourceIp": "$context.identity.sourceIp",
        "caller": "$context.identity.caller",
        "userArn": "$context.identity.userArn",
        "userAgent": "$context.identity.userAgent",
        "requestTime": "$context.requestTime",
        "requestTimeEpoch": "$context.requestTimeEpoch",
        "responseLength": "$context.responseLength",
        "protocol": "$context.protocol",
        "error": "$context.error.message",
        "integrationLatency": "$context.integrationLatency",
        "responseLatency": "$context.responseLatency",
        "unknown": "$context.noSuchVariable",
    }
)
ECHO = """
import json
def handler(event, context):
    body = {"identity": event["requestContext"]["identity"], "path": event["path"]}
    return {"statusCode": 200, "headers": {"Content-Type": "application/json"},
            "body": json.dumps(body)}
"""
TRUST_LAMBDA = {
    "Statement": [
        {
            "Effect": "Allow",
            "Principal": {"Service": "lambda.amazonaws.com"},
            "Action": "sts:AssumeRole",
        }
    ]
}
TRUST_API_GATEWAY = {
    "Statement": [
        {
            "Effect": "Allow",
            "Principal": {"Service": ["apigateway.amazonaws.com"]},
            "Action": "sts:AssumeRole",
        }
    ]
}


def integration(function: str) -> dict[str, Any]:
    return {
        "type": "aws_proxy",
        "httpMethod": "POST",
        "uri": {
            "Fn::Sub": "arn:aws:apigateway:${AWS::Region}:lambda:path/2015-03-31/functions/"
            "${" + function + ".Arn}/invocations"
        },
    }


def method(function: str, iam: bool) -> dict[str, Any]:
    spec: dict[str, Any] = {"x-amazon-apigateway-integration": integration(function)}
    spec["security"] = [{"AWS_IAM": []}] if iam else []
    return spec


def api_template(
    *, account_role: bool = True, access_log: bool = True, policy: dict[str, Any] | None = None
) -> dict[str, Any]:
    """An API as SAM writes one (OpenAPI body, resource policy inside it), its stage with access
    logs, API Gateway's account settings and the function behind the routes."""
    resources: dict[str, Any] = {
        "FunctionRole": {
            "Type": "AWS::IAM::Role",
            "Properties": {"AssumeRolePolicyDocument": TRUST_LAMBDA},
        },
        "EchoFunction": {
            "Type": "AWS::Lambda::Function",
            "Properties": {
                "Runtime": "python3.12",
                "Handler": "index.handler",
                "Role": {"Fn::GetAtt": ["FunctionRole", "Arn"]},
                "Code": {"ZipFile": ECHO},
            },
        },
        "AccessLogs": {"Type": "AWS::Logs::LogGroup"},
        "Api": {
            "Type": "AWS::ApiGateway::RestApi",
            "Properties": {
                "Name": {"Fn::Sub": "${AWS::StackName}-api"},
                "BinaryMediaTypes": ["*~1*"],  # as the application's API: the setting is shared
                "Body": {
                    "openapi": "3.0.1",
                    "paths": {
                        "/operator/decisions": {"post": method("EchoFunction", iam=True)},
                        "/predict": {"post": method("EchoFunction", iam=True)},
                        "/public": {"get": method("EchoFunction", iam=False)},
                    },
                    **({"x-amazon-apigateway-policy": policy} if policy else {}),
                },
            },
        },
        "ApiStage": {
            "Type": "AWS::ApiGateway::Stage",
            "Properties": {"RestApiId": {"Ref": "Api"}, "StageName": STAGE},
        },
    }
    if access_log:
        resources["ApiStage"]["Properties"]["AccessLogSetting"] = {
            "DestinationArn": {"Fn::GetAtt": ["AccessLogs", "Arn"]},
            "Format": ACCESS_LOG_FORMAT,
        }
    if account_role:
        resources["LogsRole"] = {
            "Type": "AWS::IAM::Role",
            "Properties": {"AssumeRolePolicyDocument": TRUST_API_GATEWAY},
        }
        resources["ApiAccount"] = {
            "Type": "AWS::ApiGateway::Account",
            "Properties": {"CloudWatchRoleArn": {"Fn::GetAtt": ["LogsRole", "Arn"]}},
        }
        resources["ApiStage"]["DependsOn"] = "ApiAccount"
    return {
        "Parameters": {"Operators": {"Type": "CommaDelimitedList", "Default": ""}},
        "Resources": resources,
        "Outputs": {
            "ApiId": {"Value": {"Ref": "Api"}},
            "LogGroup": {"Value": {"Ref": "AccessLogs"}},
        },
    }


def planned_policy() -> dict[str, Any]:
    """The template's policy, with the operators from a parameter of the test stack."""
    return policy_with_operators({"Ref": "Operators"})


# ---------------------------------------------------------------- deploying
def wait(cloud: LocalCloud, name: str) -> dict[str, Any]:
    cfn = cloud.client("cloudformation")
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        stack: dict[str, Any] = cfn.describe_stacks(StackName=name)["Stacks"][0]
        if not stack["StackStatus"].endswith("IN_PROGRESS"):
            return stack
        time.sleep(0.05)
    raise TimeoutError(name)


def deploy(cloud: LocalCloud, template: dict[str, Any], **parameters: str) -> dict[str, Any]:
    """A new stack, made as ``sam deploy`` makes it; its final description."""
    name = "rules-" + uuid.uuid4().hex[:8]
    cfn = cloud.client("cloudformation")
    change_set = cfn.create_change_set(
        StackName=name,
        ChangeSetName="create",
        ChangeSetType="CREATE",
        TemplateBody=json.dumps(template),
        Capabilities=["CAPABILITY_IAM"],
        Parameters=[{"ParameterKey": k, "ParameterValue": v} for k, v in parameters.items()],
    )
    cfn.execute_change_set(ChangeSetName=change_set["Id"])
    return wait(cloud, name)


def failure(cloud: LocalCloud, stack: dict[str, Any]) -> str:
    events = cloud.client("cloudformation").describe_stack_events(StackName=stack["StackId"])
    reasons = [
        f"{e['LogicalResourceId']}: {e.get('ResourceStatusReason')}"
        for e in events["StackEvents"]
        if e["ResourceStatus"] == "CREATE_FAILED"
    ]
    return "\n".join(reasons)


@pytest.fixture(scope="module")
def cloud(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCloud]:
    settings = LocalSettings(
        project_root=ROOT, workdir=tmp_path_factory.mktemp("apigw") / "cloud", local_channels=False
    )
    with LocalCloud(settings) as running:
        yield running


@pytest.fixture(scope="module")
def keys(cloud: LocalCloud) -> dict[str, dict[str, str]]:
    """IAM users of the local account and their access keys."""
    iam = cloud.client("iam")
    out = {}
    for user in ("operator", "predict-client"):
        iam.create_user(UserName=user)
        key = iam.create_access_key(UserName=user)["AccessKey"]
        out[user] = {
            "key": key["AccessKeyId"],
            "secret": key["SecretAccessKey"],
            "arn": iam.get_user(UserName=user)["User"]["Arn"],
            "id": iam.get_user(UserName=user)["User"]["UserId"],
        }
    return out


@pytest.fixture(scope="module")
def stack(cloud: LocalCloud, keys: dict[str, dict[str, str]]) -> dict[str, str]:
    described = deploy(
        cloud, api_template(policy=planned_policy()), Operators=keys["operator"]["arn"]
    )
    assert described["StackStatus"] == "CREATE_COMPLETE", failure(cloud, described)
    return {o["OutputKey"]: o["OutputValue"] for o in described["Outputs"]}


# ---------------------------------------------------------------- signing
class Signer(SigV4Auth):
    """botocore's signer, with the faults a test needs: another scope date, no signed host."""

    def __init__(
        self,
        credentials: Credentials,
        service: str,
        region: str,
        scope_date: str | None,
        sign_host: bool,
    ) -> None:
        super().__init__(credentials, service, region)
        self.scope_date = scope_date
        self.sign_host = sign_host

    def headers_to_sign(self, request: AWSRequest) -> HTTPMessage:
        headers = super().headers_to_sign(request)
        if not self.sign_host:
            del headers["host"]
        return headers

    def credential_scope(self, request: AWSRequest) -> str:
        scope = super().credential_scope(request)
        return scope if self.scope_date is None else self.scope_date + scope[8:]


def sign(
    url: str,
    *,
    body: bytes = b"",
    key: str = LOCAL_ACCESS_KEY,
    secret: str = LOCAL_SECRET,
    token: str | None = None,
    service: str = "execute-api",
    region: str = REGION,
    when: datetime | timedelta | None = None,
    scope_date: str | None = None,
    sign_host: bool = True,
    host: str | None = None,
) -> dict[str, str]:
    """The headers of a POST to ``url`` signed as a client would sign it, or with one fault."""
    if isinstance(when, timedelta):  # an offset from the moment of signing
        when = datetime.now(UTC) + when
    stamp = (when or datetime.now(UTC)).strftime(TIMESTAMP)
    signed_url = url if host is None else url.replace(url.split("/")[2], host, 1)
    request = AWSRequest(method="POST", url=signed_url, data=body)
    request.context["timestamp"] = stamp
    request.headers["X-Amz-Date"] = stamp
    if host is not None:
        request.headers["Host"] = host
    if token:
        request.headers["X-Amz-Security-Token"] = token
    signer = Signer(Credentials(key, secret, token), service, region, scope_date, sign_host)
    string_to_sign = signer.string_to_sign(request, signer.canonical_request(request))
    signature = signer.signature(string_to_sign, request)
    signed_headers = signer.signed_headers(signer.headers_to_sign(request))
    request.headers["Authorization"] = (
        f"AWS4-HMAC-SHA256 Credential={key}/{signer.credential_scope(request)}, "
        f"SignedHeaders={signed_headers}, Signature={signature}"
    )
    return dict(request.headers.items())


def post(url: str, headers: dict[str, str], body: bytes = b"") -> requests.Response:
    return requests.post(url, data=body, headers=headers, timeout=30)


def url(cloud: LocalCloud, path: str, host: str | None = None) -> str:
    return f"http://{host or f'127.0.0.1:{cloud.api.port}'}/{STAGE}{path}"


# ---------------------------------------------------------------- SigV4
def test_a_signed_request_reaches_the_function_as_the_local_operator(
    cloud: LocalCloud, stack: dict[str, str]
) -> None:
    target = url(cloud, "/predict")
    answer = post(target, sign(target))
    assert answer.status_code == 200, answer.text
    assert answer.json()["identity"] | {"sourceIp": None, "userAgent": None} == {
        "sourceIp": None,
        "userAgent": None,
        "accessKey": LOCAL_ACCESS_KEY,
        "accountId": ACCOUNT,
        "caller": LOCAL_ACCESS_KEY,
        "user": LOCAL_ACCESS_KEY,
        "userArn": f"arn:aws:iam::{ACCOUNT}:user/{LOCAL_ACCESS_KEY}",
    }
    by_name = url(cloud, "/predict", host=f"localhost:{cloud.api.port}")
    assert post(by_name, sign(by_name)).status_code == 200


def test_an_unsigned_request_is_missing_its_token(cloud: LocalCloud, stack: dict[str, str]) -> None:
    answer = requests.post(url(cloud, "/predict"), timeout=30)
    assert (answer.status_code, answer.json()) == (
        403,
        {"message": "Missing Authentication Token"},
    )
    assert answer.headers["x-amzn-ErrorType"] == "MissingAuthenticationTokenException"


def now_minus(**delta: float) -> datetime:
    return datetime.now(UTC) - timedelta(**delta)


@pytest.mark.parametrize(
    ("fault", "message"),
    [
        ({"service": "lambda"}, "Credential should be scoped to correct service: 'execute-api'. "),
        (
            {"region": "eu-west-1"},
            "Credential should be scoped to a valid region, not 'eu-west-1'. ",
        ),
        ({"when": timedelta(days=-3)}, "Signature expired: "),
        ({"when": timedelta(minutes=6)}, "Signature not yet current: "),
        ({"scope_date": "20200101"}, "Date in Credential scope does not match YYYYMMDD"),
        (
            {"sign_host": False},
            "'Host' or ':authority' must be a 'SignedHeader' in the AWS Authorization.",
        ),
        ({"secret": "not-the-secret"}, "The request signature we calculated does not match"),
    ],
)
def test_signatures_api_gateway_refuses(
    cloud: LocalCloud, stack: dict[str, str], fault: dict[str, Any], message: str
) -> None:
    target = url(cloud, "/predict")
    answer = post(target, sign(target, **fault))
    assert answer.status_code == 403
    assert answer.json()["message"].startswith(message)


def test_the_signing_window_is_five_minutes_either_way(
    cloud: LocalCloud, stack: dict[str, str]
) -> None:
    target = url(cloud, "/predict")
    for minutes in (4, -4):
        assert post(target, sign(target, when=now_minus(minutes=minutes))).status_code == 200
    expired = post(target, sign(target, when=now_minus(minutes=6))).json()["message"]
    assert expired.endswith(" - 5 min.)")


def test_the_date_must_be_there_and_in_basic_format(
    cloud: LocalCloud, stack: dict[str, str]
) -> None:
    target = url(cloud, "/predict")
    headers = sign(target)
    del headers["X-Amz-Date"]
    answer = post(target, headers).json()["message"]
    assert answer.startswith(
        "Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header. "
        "Authorization=AWS4-HMAC-SHA256 Credential="
    )
    headers = sign(target)
    headers["X-Amz-Date"] = "2024-01-02T03:04:05Z"
    assert post(target, headers).json()["message"] == (
        "Date must be in ISO-8601 'basic format'. Got '2024-01-02T03:04:05Z'. "
        "See http://en.wikipedia.org/wiki/ISO_8601"
    )


def test_a_signature_for_another_host_or_body_does_not_match(
    cloud: LocalCloud, stack: dict[str, str]
) -> None:
    target = url(cloud, "/predict")
    other_host = "abc123.execute-api.us-east-1.amazonaws.com"
    headers = sign(target, host=other_host)
    sent_to_it = post(target, headers)  # with its Host header: not this API's
    assert sent_to_it.status_code == 403
    assert sent_to_it.json()["message"] == "Forbidden"
    headers.pop("Host")  # signed for the other host, sent to this one
    foreign = post(target, headers)
    assert foreign.status_code == 403
    message = foreign.json()["message"]
    assert message.startswith("The request signature we calculated does not match")
    assert f"host:127.0.0.1:{cloud.api.port}" in message  # the canonical request AWS computed
    tampered = post(target, sign(target, body=b'{"amount": 1}'), body=b'{"amount": 1000}')
    assert tampered.status_code == 403


def test_a_request_sent_with_a_foreign_host_header_never_reaches_the_api(
    cloud: LocalCloud, stack: dict[str, str]
) -> None:
    target = url(cloud, "/predict")
    headers = sign(target)
    answer = requests.post(target, headers={**headers, "Host": "example.com"}, timeout=30)
    assert answer.status_code == 403
    assert answer.json()["message"] == "Forbidden"


@pytest.mark.parametrize("query", ["a=%28", "a=%C3%A9&b=%2F%21", "z=1&a=b%20c"])
def test_a_query_signed_as_sent_matches_as_aws_canonicalizes_it(
    cloud: LocalCloud, stack: dict[str, str], query: str
) -> None:
    """AWS decodes each name and value and encodes them again strictly: a client that signed
    its percent-escaped query as it sends it is accepted."""
    target = url(cloud, f"/predict?{query}")
    answer = post(target, sign(target))
    assert answer.status_code == 200, answer.text


def test_an_iam_users_key_signs_with_its_own_secret(
    cloud: LocalCloud, stack: dict[str, str], keys: dict[str, dict[str, str]]
) -> None:
    user = keys["predict-client"]
    target = url(cloud, "/predict")
    answer = post(target, sign(target, key=user["key"], secret=user["secret"]))
    assert answer.status_code == 200, answer.text
    identity = answer.json()["identity"]
    assert identity["userArn"] == user["arn"] == f"arn:aws:iam::{ACCOUNT}:user/predict-client"
    assert (identity["caller"], identity["user"]) == (user["id"], user["id"])
    assert (identity["accessKey"], identity["accountId"]) == (user["key"], ACCOUNT)
    # the catch-all secret does not sign for a key IAM knows
    assert post(target, sign(target, key=user["key"])).status_code == 403


def test_an_inactive_key_is_an_invalid_token(cloud: LocalCloud, stack: dict[str, str]) -> None:
    iam = cloud.client("iam")
    iam.create_user(UserName="former")
    key = iam.create_access_key(UserName="former")["AccessKey"]
    iam.update_access_key(UserName="former", AccessKeyId=key["AccessKeyId"], Status="Inactive")
    target = url(cloud, "/predict")
    answer = post(target, sign(target, key=key["AccessKeyId"], secret=key["SecretAccessKey"]))
    assert (answer.status_code, answer.json()["message"]) == (
        403,
        "The security token included in the request is invalid.",
    )


def test_a_role_session_signs_with_its_token(cloud: LocalCloud, stack: dict[str, str]) -> None:
    role = cloud.client("iam").create_role(
        RoleName="release", AssumeRolePolicyDocument=json.dumps(TRUST_LAMBDA)
    )["Role"]
    credentials = cloud.client("sts").assume_role(RoleArn=role["Arn"], RoleSessionName="ci")[
        "Credentials"
    ]
    target = url(cloud, "/predict")
    session = {"key": credentials["AccessKeyId"], "secret": credentials["SecretAccessKey"]}
    answer = post(target, sign(target, token=credentials["SessionToken"], **session))
    assert answer.status_code == 200, answer.text
    identity = answer.json()["identity"]
    assert identity["userArn"] == f"arn:aws:sts::{ACCOUNT}:assumed-role/release/ci"
    assert identity["caller"].endswith(":ci")
    assert post(target, sign(target, **session)).status_code == 403  # no token


# ---------------------------------------------------------------- the resource policy
def test_only_listed_operators_may_post_decisions(
    cloud: LocalCloud, stack: dict[str, str], keys: dict[str, dict[str, str]]
) -> None:
    target = url(cloud, "/operator/decisions")
    operator, client = keys["operator"], keys["predict-client"]
    allowed = post(target, sign(target, key=operator["key"], secret=operator["secret"]))
    assert allowed.status_code == 200, allowed.text
    refused = post(target, sign(target, key=client["key"], secret=client["secret"]))
    assert refused.status_code == 403
    assert refused.headers["x-amzn-ErrorType"] == "AccessDeniedException"
    resource = (
        f"arn:aws:execute-api:{REGION}:{ACCOUNT}:{stack['ApiId']}/{STAGE}/POST/operator/decisions"
    )
    assert refused.json() == {
        "Message": f"User: {client['arn']} is not authorized to perform: execute-api:Invoke on "
        f"resource: {resource} with an explicit deny"
    }
    # the local CLI's catch-all principal is no operator either
    assert post(target, sign(target)).status_code == 403
    predict = url(cloud, "/predict")
    assert post(predict, sign(predict, key=client["key"], secret=client["secret"])).ok


def test_an_anonymous_caller_needs_the_policy_to_allow_it(
    cloud: LocalCloud, stack: dict[str, str]
) -> None:
    assert requests.get(url(cloud, "/public"), timeout=30).status_code == 200  # Allow "*"
    only_iam = {
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"AWS": ACCOUNT},
                "Action": "execute-api:Invoke",
                "Resource": "execute-api:/*",
            }
        ]
    }
    policies = cloud.api.policies
    saved = policies[stack["ApiId"]]
    policies[stack["ApiId"]] = ResourcePolicy.parse(
        only_iam, region=REGION, account=ACCOUNT, api_id=stack["ApiId"]
    )
    try:
        refused = requests.get(url(cloud, "/public"), timeout=30)
    finally:
        policies[stack["ApiId"]] = saved
    assert refused.status_code == 403
    assert refused.json()["Message"].startswith("User: anonymous is not authorized")
    assert not refused.json()["Message"].endswith("explicit deny")


def test_an_api_whose_policy_cannot_be_evaluated_is_not_created(cloud: LocalCloud) -> None:
    policy = planned_policy()
    policy["Statement"][1]["Condition"] = {"StringEqualsIfExists": {"aws:username": "x"}}
    described = deploy(cloud, api_template(policy=policy, access_log=False))
    assert described["StackStatus"] == "ROLLBACK_COMPLETE"
    assert "Api: Invalid policy document: " in failure(cloud, described)
    assert "StringEqualsIfExists" in failure(cloud, described)


# ---------------------------------------------------------------- access logs
def log_lines(cloud: LocalCloud, group: str) -> list[dict[str, Any]]:
    events = cloud.client("logs").filter_log_events(logGroupName=group)["events"]
    return [json.loads(e["message"]) for e in events]


def test_every_request_refused_or_not_is_logged_in_the_stages_format(
    cloud: LocalCloud, stack: dict[str, str], keys: dict[str, dict[str, str]]
) -> None:
    client = keys["predict-client"]
    agent = 'curl/8 "quoted"\tand tabbed'
    target = url(cloud, "/predict")
    served = post(
        target, sign(target, key=client["key"], secret=client["secret"]) | {"User-Agent": agent}
    )
    decisions = url(cloud, "/operator/decisions")
    denied = post(decisions, sign(decisions, key=client["key"], secret=client["secret"]))
    requests.post(target, timeout=30)  # unsigned

    lines = {
        (line["status"], line["resourcePath"], line["userArn"]): line
        for line in log_lines(cloud, stack["LogGroup"])
    }
    ok = lines[("200", "/predict", client["arn"])]
    assert ok["userAgent"] == agent  # JSON-escaped: the line still parses
    assert (ok["caller"], ok["httpMethod"], ok["path"]) == (
        client["id"],
        "POST",
        f"/{STAGE}/predict",
    )
    assert (ok["error"], ok["unknown"]) == ("-", "-")
    assert int(ok["responseLength"]) == len(served.content)
    assert (ok["protocol"], ok["sourceIp"]) == ("HTTP/1.1", "127.0.0.1")
    assert int(ok["integrationLatency"]) >= 0
    assert int(ok["responseLatency"]) >= int(ok["integrationLatency"])
    received = datetime.strptime(ok["requestTime"], "%d/%b/%Y:%H:%M:%S +0000").replace(tzinfo=UTC)
    assert abs(received.timestamp() * 1000 - int(ok["requestTimeEpoch"])) < 1000

    refused = lines[("403", "/operator/decisions", client["arn"])]
    assert refused["error"] == denied.json()["Message"]
    assert refused["integrationLatency"] == "-"  # the function was never called
    anonymous = lines[("403", "/predict", "-")]
    assert (anonymous["error"], anonymous["caller"]) == ("Missing Authentication Token", "-")


def test_a_logging_stage_needs_the_accounts_cloudwatch_role(cloud: LocalCloud) -> None:
    roles = cloud.api.cloudwatch_roles
    saved = dict(roles)
    roles.clear()  # an account where no stack has set it yet
    try:
        described = deploy(cloud, api_template(account_role=False))
    finally:
        roles.update(saved)
    assert described["StackStatus"] == "ROLLBACK_COMPLETE"
    assert (
        "ApiStage: CloudWatch Logs role ARN must be set in account settings to enable logging"
        in failure(cloud, described)
    )


def test_the_cloudwatch_role_must_trust_api_gateway(cloud: LocalCloud) -> None:
    template = api_template()
    template["Resources"]["LogsRole"]["Properties"]["AssumeRolePolicyDocument"] = TRUST_LAMBDA
    described = deploy(cloud, template)
    assert described["StackStatus"] == "ROLLBACK_COMPLETE"
    assert (
        "ApiAccount: The role ARN does not have required permissions configured. Please grant "
        "trust permission for API Gateway" in failure(cloud, described)
    )


def test_an_access_log_format_must_name_the_request_id(cloud: LocalCloud) -> None:
    template = api_template()
    template["Resources"]["ApiStage"]["Properties"]["AccessLogSetting"]["Format"] = (
        '{"status": "$context.status"}'
    )
    described = deploy(cloud, template)
    assert described["StackStatus"] == "ROLLBACK_COMPLETE"
    assert "$context.requestId" in failure(cloud, described)


# ---------------------------------------------------------------- reserved concurrency
def reserved_elsewhere(cloud: LocalCloud) -> int:
    lam = cloud.client("lambda")
    total = 0
    for page in lam.get_paginator("list_functions").paginate():
        for function in page["Functions"]:
            concurrency = lam.get_function(FunctionName=function["FunctionName"]).get("Concurrency")
            total += int((concurrency or {}).get("ReservedConcurrentExecutions", 0))
    return total


def function_template(reserved: int) -> dict[str, Any]:
    template = api_template(access_log=False, account_role=False)
    template["Resources"]["EchoFunction"]["Properties"]["ReservedConcurrentExecutions"] = reserved
    return template


def test_reservations_must_leave_one_hundred_unreserved(cloud: LocalCloud) -> None:
    room = 1000 - reserved_elsewhere(cloud) - 100
    too_many = deploy(cloud, function_template(room + 1))
    assert too_many.get("StackStatus") == "ROLLBACK_COMPLETE"
    assert (
        "EchoFunction: Specified ReservedConcurrentExecutions for function decreases account's "
        "UnreservedConcurrentExecution below its minimum value of [100]."
    ) in failure(cloud, too_many)
    just_enough = deploy(cloud, function_template(room))
    assert just_enough["StackStatus"] == "CREATE_COMPLETE", failure(cloud, just_enough)
    name = cloud.client("cloudformation").describe_stack_resource(
        StackName=just_enough["StackId"], LogicalResourceId="EchoFunction"
    )["StackResourceDetail"]["PhysicalResourceId"]
    assert cloud.client("lambda").get_function(FunctionName=name)["Concurrency"] == {
        "ReservedConcurrentExecutions": room
    }
    cloud.client("cloudformation").delete_stack(StackName=just_enough["StackId"])
    assert wait(cloud, just_enough["StackId"])["StackStatus"] == "DELETE_COMPLETE"
    assert reserved_elsewhere(cloud) == 1000 - 100 - room  # the reservation went with it


class BlockingLambda:
    """Moto's Lambda backend as the API sees it: each invocation waits to be released."""

    def __init__(self) -> None:
        self.running = threading.Semaphore(0)
        self.release = threading.Event()

    def invoke(self, *args: Any) -> str:
        self.running.release()
        assert self.release.wait(30)
        return json.dumps({"statusCode": 200, "body": "done"})


def test_requests_beyond_the_reserved_concurrency_are_throttled(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Lambda throttles (429) the invocation; API Gateway answers a 500 for it."""
    function = BlockingLambda()
    monkeypatch.setattr(api_module, "lambda_backend", lambda account, region: function)
    gateway = LocalApi(LocalSettings(tmp_path, tmp_path), ActivityFeed(), MetricStore())
    gateway.routes.append(Route("GET", "/slow", "slow", None, "NONE", "test", "v1", "api1"))
    gateway.reserved_concurrency["slow"] = 1
    gateway.start()
    try:
        target = f"{gateway.origin}/v1/slow"
        first: list[requests.Response] = []
        in_flight = threading.Thread(target=lambda: first.append(requests.get(target, timeout=30)))
        in_flight.start()
        assert function.running.acquire(timeout=30)  # the first request holds the one unit
        throttled = requests.get(target, timeout=30)
        assert (throttled.status_code, throttled.json()) == (
            500,
            {"message": "Internal server error"},
        )
        function.release.set()
        in_flight.join(30)
        assert first[0].status_code == 200
        assert requests.get(target, timeout=30).status_code == 200  # the unit is free again
        gateway.reserved_concurrency["slow"] = 0  # a function reserved 0 never runs
        assert requests.get(target, timeout=30).status_code == 500
    finally:
        gateway.stop()


# ---------------------------------------------------------------- the access log format
def test_a_plain_format_is_written_as_is_and_unknown_variables_as_a_dash() -> None:
    clf = "$context.identity.sourceIp $context.identity.caller [$context.requestTime] "
    clf += '"$context.httpMethod $context.resourcePath" $context.status $context.requestId.'
    values = {
        "identity.sourceIp": "127.0.0.1",
        "requestTime": "02/Jan/2024:03:04:05 +0000",
        "httpMethod": "GET",
        "resourcePath": '/a"b',
        "status": 200,
        "requestId": "r-1",
    }
    assert render(clf, values) == ('127.0.0.1 - [02/Jan/2024:03:04:05 +0000] "GET /a"b" 200 r-1.')
    assert render('{"x": "$context.resourcePath"}', values) == '{"x": "/a\\"b"}'


def test_a_format_without_the_request_id_is_refused() -> None:
    arn = f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:api-access:*"
    setting = {"AccessLogSetting": {"DestinationArn": arn, "Format": "$context.requestIdx"}}
    with pytest.raises(AccessLogError, match=r"\$context.requestId"):
        AccessLogSetting.from_properties(setting)
    setting["AccessLogSetting"]["Format"] = "$context.extendedRequestId $context.status"
    parsed = AccessLogSetting.from_properties(setting)
    assert parsed is not None
    assert (parsed.log_group, parsed.region, parsed.account) == ("api-access", REGION, ACCOUNT)
