"""Sending the fuzz's probes to the local API over HTTP, judging each answer, counting them, and
the release state the fuzz must leave as it found it.

The judge (``problems``) is a plain function of one exchange, so a test can show it failing on a
made-up 502 without a local cloud.
"""

from __future__ import annotations

import json
import re
import time
import warnings
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from email.message import Message
from pathlib import Path
from typing import Any
from urllib.parse import unquote_to_bytes

import pytest
import requests
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from hypothesis import HealthCheck, Phase, given, seed, settings
from hypothesis.errors import HypothesisDeprecationWarning
from pipeline_common.approvals import signed_query
from pipeline_common.slack import request_signature
from werkzeug.test import EnvironBuilder
from werkzeug.wrappers import Request

from safe_deploy import ops
from safe_deploy.demo import TRAINING_TIMEOUT, Demo
from safe_deploy.localcloud.api import LocalApi
from safe_deploy.target import Target as Stack
from tests.security.strategies import KnownApproval, Probe, Target, World, probes, targets

TIMEOUT = 120.0  # seconds: a 3 MB body through the local cloud takes well under that
SUMMARY = pytest.StashKey[list[str]]()  # lines for the terminal report (see conftest.py)


# ---------------------------------------------------------------- the stage
def stage(demo: Demo) -> World:
    """A model in production (so /predict answers from it) and a second candidate waiting for a
    person (so the approval routes have a live link), in the demo's local cloud."""
    first = demo.first_model().model
    second = demo.upload(demo.month(2))
    waiting = demo.follow(second, lambda run: run.step == "RequestApproval", TRAINING_TIMEOUT)
    if waiting.status != "RUNNING":
        raise RuntimeError(f"the second run did not ask for approval: {demo.explain(waiting)}")
    decided, pending = _approval(demo, first), _approval(demo, second)
    manager = demo.target.client("secretsmanager")
    arn = demo.target.output("ApprovalSigningSecretArn")
    link_key = str(manager.get_secret_value(SecretId=arn)["SecretString"])
    # the strategies sign links themselves, with this key: the page opens with one of them
    query = signed_query(pending.approval_id, pending.expires, link_key)
    page = requests.get(
        f"{demo.target.api_url}/approvals/{pending.approval_id}?{query}", timeout=30
    )
    if page.status_code != 200:
        raise RuntimeError(f"a link signed with the stack's key got {page.status_code}")
    cloud = demo.cloud
    credentials = cloud.client_environment()
    return World(
        origin=cloud.api.origin,
        region=credentials["AWS_REGION"],
        access_key=credentials["AWS_ACCESS_KEY_ID"],
        secret_key=credentials["AWS_SECRET_ACCESS_KEY"],
        link_key=link_key,
        slack_secret=cloud.channels.signing_secret,
        pending=pending,
        decided=decided,
        routes=tuple(cloud.api.routes),
        local_prefixes=tuple(cloud.api.local_routes),
    )


def _approval(demo: Demo, model_id: str) -> KnownApproval:
    """The run's approval, once its request went out on every channel."""
    arn = ops.find_run(demo.target, model_id)

    def asked() -> dict[str, Any] | None:
        approval = ops.approval_of(demo.target, arn)
        return approval if approval and approval.get("channels") else None

    approval = demo.cloud.wait_for(asked, 60, what=f"the approval request of {model_id}")
    return KnownApproval(str(approval["approval_id"]), arn, int(approval["expires_at"]))


# ---------------------------------------------------------------- sending
@dataclass(frozen=True)
class Exchange:
    probe: Probe
    status: int  # 0: no HTTP answer at all
    content_type: str
    body: bytes
    seconds: float
    error: str = ""  # why there was no answer
    error_type: str = ""  # x-amzn-ErrorType: API Gateway refused it itself


Sender = Callable[[requests.Session, World, Probe], Exchange]


def send(session: requests.Session, world: World, probe: Probe) -> Exchange:
    url = world.origin + probe.path + (f"?{probe.query}" if probe.query else "")
    headers, body, url = sign(world, probe, dict(probe.headers), probe.body, url)
    started = time.perf_counter()
    try:
        response = session.request(
            probe.method,
            url,
            data=body,
            headers=headers,
            allow_redirects=False,
            timeout=TIMEOUT,
        )
    except requests.RequestException as error:
        return Exchange(probe, 0, "", b"", time.perf_counter() - started, repr(error))
    return Exchange(
        probe,
        response.status_code,
        response.headers.get("Content-Type", ""),
        response.content,
        time.perf_counter() - started,
        error_type=response.headers.get("x-amzn-ErrorType", ""),
    )


def through_handle(api: LocalApi) -> Sender:
    """A sender that skips HTTP: each request, built as werkzeug's server builds it, goes to
    ``LocalApi.handle`` (to measure what HTTP costs; the fuzz itself goes over HTTP)."""

    def send_directly(session: requests.Session, world: World, probe: Probe) -> Exchange:
        url = world.origin + probe.path + (f"?{probe.query}" if probe.query else "")
        headers, body, url = sign(world, probe, dict(probe.headers), probe.body, url)
        path, _, query = url.removeprefix(world.origin).partition("?")
        started = time.perf_counter()
        environ = EnvironBuilder(
            base_url=world.origin,
            query_string=query,
            method=probe.method,
            headers=list(headers.items()),
            data=body,
        ).get_environ()
        # as werkzeug's server sets it (the builder would read "//x" as a host)
        environ["PATH_INFO"] = unquote_to_bytes(path).decode("latin-1")
        response = api.handle(Request(environ))
        return Exchange(
            probe,
            response.status_code,
            response.headers.get("Content-Type", ""),
            response.get_data(),
            time.perf_counter() - started,
            error_type=response.headers.get("x-amzn-ErrorType", ""),
        )

    return send_directly


def sign(
    world: World, probe: Probe, headers: dict[str, str], body: bytes, url: str
) -> tuple[dict[str, str], bytes, str]:
    """Headers, body and URL as sent: signed as ``probe.auth`` says, and altered after if it says
    ``tampered``."""
    family, _, tampering = probe.auth.partition(": ")
    if family.startswith("sigv4"):
        return _sigv4(world, probe.method, url, body, headers, tampering)
    if family.startswith("slack"):
        return _slack(world, body, headers, tampering), body, url
    return headers, body, url


def _sigv4(
    world: World, method: str, url: str, body: bytes, headers: dict[str, str], tampering: str
) -> tuple[dict[str, str], bytes, str]:
    secret = world.secret_key + ("x" if tampering == "secret" else "")
    region = "eu-west-3" if tampering == "region" else world.region
    service = "s3" if tampering == "service" else "execute-api"
    request = AWSRequest(method=method, url=url, data=body, headers=headers)
    SigV4Auth(Credentials(world.access_key, secret), service, region).add_auth(request)
    signed = dict(request.headers.items())
    if tampering == "body":
        body += b"\n"
    elif tampering == "signature":
        value = signed["Authorization"]
        signed["Authorization"] = value[:-1] + ("0" if value[-1] != "0" else "1")
    elif tampering == "date":
        signed["X-Amz-Date"] = "20200101T000000Z"
    elif tampering == "query":
        url += ("&" if "?" in url else "?") + "added=after-signing"
    elif tampering == "signed header":
        signed["Host"] = "example.com"
    return signed, body, url


def _slack(world: World, body: bytes, headers: dict[str, str], tampering: str) -> dict[str, str]:
    now = int(time.time())
    timestamp = str(
        now - 600 if tampering == "stale" else now + 600 if tampering == "future" else now
    )
    secret = world.slack_secret + ("x" if tampering == "secret" else "")
    signature = request_signature(secret, timestamp, body + (b"&" if tampering == "body" else b""))
    if tampering == "signature":
        signature = "v0=" + "0" * 64
    if tampering == "junk timestamp":
        timestamp = "9" * 5_000
    signed = {**headers, "X-Slack-Request-Timestamp": timestamp, "X-Slack-Signature": signature}
    if tampering == "no timestamp":
        del signed["X-Slack-Request-Timestamp"]
    if tampering == "no signature":
        del signed["X-Slack-Signature"]
    return signed


# ---------------------------------------------------------------- judging
SIGNATURE_MISMATCH = "The request signature we calculated"
# API Gateway's own refusals: no route (or no signature), a wrong signature, a resource policy
GATEWAY_REFUSALS = ("Missing Authentication Token", SIGNATURE_MISMATCH, "is not authorized to")


def media_type(content_type: str) -> str:
    message = Message()
    message["Content-Type"] = content_type
    return message.get_content_type() if content_type else ""


def message_of(exchange: Exchange) -> str:
    """What an answer tells a person: a JSON object's ``message`` (API Gateway writes ``Message``
    when a resource policy denies), an HTML page's title or heading, or a text body."""
    text = exchange.body.decode("utf-8", errors="replace").strip()
    kind = media_type(exchange.content_type)
    if kind == "application/json" or kind.endswith("+json"):
        try:
            document = json.loads(text)
        except ValueError:
            return ""
        message = None
        if isinstance(document, dict):
            message = document.get("message", document.get("Message"))
        return message.strip() if isinstance(message, str) else ""
    if kind == "text/html":
        found = re.search(r"<(title|h1)[^>]*>(.*?)</\1>", text, re.IGNORECASE | re.DOTALL)
        return re.sub(r"<[^>]+>", "", found.group(2)).strip() if found else ""
    return text if kind.startswith("text/") else ""


SERVER_ERROR = "5xx or no answer"
SILENT_REFUSAL = "4xx without a message"
LET_THROUGH = "bad input let through"


@dataclass(frozen=True)
class Problem:
    kind: str  # SERVER_ERROR, SILENT_REFUSAL or LET_THROUGH
    text: str


def problems(exchange: Exchange) -> list[Problem]:
    """What is wrong with an answer: none at all, a 5xx, a 4xx that does not say why (a HEAD
    answer has no body to say it in), or bad input let through: answered below 400, or passed
    on to a function when API Gateway itself must refuse it."""
    status, probe = exchange.status, exchange.probe
    if status == 0:
        return [Problem(SERVER_ERROR, f"no answer ({exchange.error.split('(', 1)[0]})")]
    found = []
    if status >= 500:
        found.append(Problem(SERVER_ERROR, f"answered {status}"))
    elif 400 <= status < 500 and probe.method != "HEAD" and not message_of(exchange):
        found.append(Problem(SILENT_REFUSAL, f"answered {status} without a message"))
    if probe.must_refuse and status < 400:
        found.append(Problem(LET_THROUGH, f"answered {status} to bad input: {probe.must_refuse}"))
    elif probe.api_refuses and passed_the_gateway(exchange):
        reason = probe.api_refuses
        found.append(Problem(LET_THROUGH, f"reached a function ({status}) with {reason}"))
    return found


def passed_the_gateway(exchange: Exchange) -> bool:
    """Whether a request reached a function: API Gateway did not refuse it itself (its refusals
    are 403s that name an ``x-amzn-ErrorType``, or, from a local API that does not name it yet,
    one of its messages; a HEAD answer has no message: its 403 is the API's)."""
    if exchange.status != 403:
        return True
    if exchange.error_type:
        return False
    message = message_of(exchange)
    return bool(message) and not any(text in message for text in GATEWAY_REFUSALS)


def signature_refused(exchange: Exchange) -> bool:
    return exchange.status == 403 and SIGNATURE_MISMATCH in message_of(exchange)


# ---------------------------------------------------------------- counting
@dataclass
class Failure:
    """One kind of failing request: how many, with which content types, and the smallest."""

    problem: Problem
    count: int
    content_types: Counter[str]
    smallest: Exchange
    cause: str = ""  # what the function logged when the smallest request was sent again


@dataclass
class Tally:
    sent: int = 0
    seconds: float = 0.0
    by_status: Counter[int] = field(default_factory=Counter)
    by_target: dict[str, Counter[int]] = field(default_factory=dict)
    # target -> requests validly signed with SigV4, with a method the route declares
    signed: Counter[str] = field(default_factory=Counter)
    let_through: Counter[str] = field(default_factory=Counter)  # ... that reached the function
    signature_refused: Counter[str] = field(default_factory=Counter)  # ... refused as forged
    failures: dict[tuple[str, ...], Failure] = field(default_factory=dict)

    def add(self, exchange: Exchange) -> None:
        probe = exchange.probe
        self.sent += 1
        self.seconds += exchange.seconds
        self.by_status[exchange.status] += 1
        self.by_target.setdefault(probe.target, Counter())[exchange.status] += 1
        if probe.auth == "sigv4" and probe.target.startswith(f"{probe.method} "):
            self.signed[probe.target] += 1
            self.let_through[probe.target] += passed_the_gateway(exchange)
            self.signature_refused[probe.target] += signature_refused(exchange)
        for problem in problems(exchange):
            # what a kind of failure depends on: the request, or only how it was signed
            key: tuple[str, ...]
            if problem.kind == LET_THROUGH and probe.api_refuses:
                key = (probe.target, probe.auth, problem.kind)
            else:
                key = (probe.target, probe.method, probe.body_kind, probe.auth_family, problem.kind)
            failure = self.failures.get(key)
            if failure is None:
                self.failures[key] = Failure(
                    problem, 1, Counter([probe.content_type or "-"]), exchange
                )
                continue
            failure.count += 1
            failure.content_types[probe.content_type or "-"] += 1
            if len(probe.body) < len(failure.smallest.probe.body):
                failure.problem, failure.smallest = problem, exchange

    def failing(self, kind: str) -> list[Failure]:
        return [f for f in self.failures.values() if f.problem.kind == kind]

    def summary(self, routes: int, wall_seconds: float) -> str:
        server_errors = sum(
            n for status, n in self.by_status.items() if status >= 500 or status == 0
        )
        statuses = dict(sorted(self.by_status.items()))
        return (
            f"fuzz: {self.sent:,} requests over {routes} routes and unknown paths in "
            f"{wall_seconds:.0f} s ({self.sent / max(wall_seconds, 1e-9):.0f}/s, "
            f"{self.seconds:.0f} s of it waiting for answers), "
            f"{server_errors:,} answers >= 500 or none, by status: {statuses}"
        )

    def per_target(self) -> list[str]:
        lines = []
        for target, statuses in self.by_target.items():
            signed = (
                f"; signed {self.signed[target]:,}: {self.let_through[target]:,} reached the "
                f"function, {self.signature_refused[target]:,} refused as wrongly signed"
                if self.signed[target]
                else ""
            )
            lines.append(
                f"  {target}: {sum(statuses.values()):,}{signed}; {dict(sorted(statuses.items()))}"
            )
        return lines


def describe(failures: Iterable[Failure]) -> str:
    """The distinct failing requests, each with its smallest example, for a person to replay."""
    lines = []
    for failure in sorted(failures, key=lambda f: (f.smallest.probe.target, -f.count)):
        probe = failure.smallest.probe
        types = ", ".join(f"{t!r}" for t, _ in failure.content_types.most_common(4))
        more = len(failure.content_types) - 4
        grouped_by_signature = failure.problem.kind == LET_THROUGH and probe.api_refuses
        request = (
            f"any request, auth {probe.auth!r}"
            if grouped_by_signature
            else f"{probe.method} {probe.body_kind} body, auth {probe.auth_family}"
        )
        lines.append(
            f"{probe.target}: {request}: {failure.problem.text} x{failure.count} "
            f"(content types {types}{f' and {more} more' if more > 0 else ''})"
        )
        lines.append(f"    smallest: {example(failure.smallest)}")
        if failure.cause:
            lines.append(f"    cause: {failure.cause}")
    return "\n".join(lines)


def example(exchange: Exchange) -> str:
    probe = exchange.probe
    body = probe.body if len(probe.body) <= 120 else probe.body[:120] + b"..."
    answer = exchange.body[:160].decode("utf-8", errors="replace") or exchange.error[:160]
    query = f"?{probe.query[:80]}" if probe.query else ""
    return (
        f"{probe.method} {probe.path[:80]}{query} Content-Type {probe.content_type!r} "
        f"auth {probe.auth!r} body {body!r} ({len(probe.body):,} bytes) -> {exchange.status} "
        f"{answer!r}"
    )


def as_json(failure: Failure) -> dict[str, Any]:
    probe = failure.smallest.probe
    return {
        "target": probe.target,
        "problem": failure.problem.kind,
        "detail": failure.problem.text,
        "count": failure.count,
        "cause": failure.cause,
        "content_types": dict(failure.content_types),
        "smallest": {
            "method": probe.method,
            "path": probe.path,
            "query": probe.query,
            "headers": dict(probe.headers),
            "auth": probe.auth,
            "body_kind": probe.body_kind,
            "body": probe.body[:4_096].decode("latin-1"),
            "body_bytes": len(probe.body),
            "status": failure.smallest.status,
            "answer": failure.smallest.body.decode("utf-8", errors="replace"),
        },
    }


# ---------------------------------------------------------------- running
def fuzz(
    world: World,
    per_target: int,
    base_seed: int = 0,
    send_one: Sender = send,
) -> Tally:
    """``per_target`` probes at each target, drawn by Hypothesis from a fixed seed per target,
    so a run sends the same requests again. Answers are judged after the run, not during it:
    Hypothesis would stop at the first failure and shrink it, and the point is the whole list."""
    tally = Tally()
    with requests.Session() as session, warnings.catch_warnings():
        # The local cloud's own threads (boto3's retries, moto) use `random` while Hypothesis
        # draws, which Hypothesis takes for a strategy using it.
        warnings.filterwarnings(
            "ignore", "Do not use the `random` module", HypothesisDeprecationWarning
        )
        session.headers.clear()  # no default Accept, User-Agent or Accept-Encoding
        for index, target in enumerate(targets(world)):
            _fuzz_target(world, target, per_target, base_seed + index, session, tally, send_one)
    return tally


def _fuzz_target(
    world: World,
    target: Target,
    examples: int,
    target_seed: int,
    session: requests.Session,
    tally: Tally,
    send_one: Sender,
) -> None:
    @seed(target_seed)
    @settings(
        max_examples=examples,
        deadline=None,
        derandomize=False,  # the seed above fixes the examples, one sequence per target
        database=None,
        phases=[Phase.generate],  # answers are judged after the run: nothing to shrink
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(probes(world, target))
    def one(probe: Probe) -> None:
        tally.add(send_one(session, world, probe))

    one()


def find_causes(world: World, failures: Iterable[Failure], logs: Path) -> None:
    """Send each failure's smallest request again and keep the exception its function logged
    (the local cloud writes each function's log, tracebacks included, to ``logs``)."""
    with requests.Session() as session:
        session.headers.clear()
        for failure in failures:
            sizes = {path: path.stat().st_size for path in logs.glob("*.log")}
            send(session, world, failure.smallest.probe)
            logged = "".join(
                path.read_bytes()[sizes.get(path, 0) :].decode("utf-8", errors="replace")
                for path in sorted(logs.glob("*.log"))
            )
            failure.cause = last_exception(logged)


def _ours(frame: str) -> bool:
    """A frame of the project's functions or layer (the local cloud runs copies of them), not of
    Python, a library, or the local cloud's own invoker."""
    return not any(part in frame for part in ("site-packages", "/lib/python3.", "/localcloud/"))


def last_exception(log: str) -> str:
    """The last traceback in ``log``: "Error: message (raised in file:line in function, from the
    project's file:line in function)"."""
    tracebacks = log.split("Traceback (most recent call last):")
    if len(tracebacks) < 2:
        return ""
    lines = tracebacks[-1].splitlines()
    error = next((line for line in lines[1:] if line and not line.startswith(" ")), "")[:300]
    frames = [line.strip() for line in lines if line.startswith("  File ")]
    if not frames:
        return error
    ours = [frame for frame in frames if _ours(frame)]
    places = [_place(frames[-1])] + (
        [f"from {_place(ours[-1])}"] if ours and ours[-1] != frames[-1] else []
    )
    return f"{error} (raised in {', '.join(places)})"


def _place(frame: str) -> str:
    """'File ".../functions/predict/app.py", line 60, in route' -> 'predict/app.py:60 in route'
    (a folder named by a hash, where the local cloud keeps a function's code, is left out)."""
    place = re.sub(r'File "(?:.*/)?([^/"]+/[^/"]+)", line (\d+), in (.+)', r"\1:\2 in \3", frame)
    return re.sub(r"^[0-9a-f]{16,}/", "", place)


# ---------------------------------------------------------------- state
def release_state(stack: Stack) -> dict[str, Any]:
    """What a request must never change: approvals, the release lock, the production record,
    pipeline runs, endpoints, and the version the live alias serves."""
    dynamodb = stack.session.resource(
        "dynamodb", region_name=stack.region, endpoint_url=stack.endpoint_url
    )
    cloudformation = stack.client("cloudformation")
    lock_table = cloudformation.describe_stack_resource(
        StackName=stack.describe_stack()["StackName"], LogicalResourceId="ReleaseTable"
    )["StackResourceDetail"]["PhysicalResourceId"]
    ssm = stack.client("ssm")
    sfn = stack.client("stepfunctions")
    sagemaker = stack.client("sagemaker")
    alias = stack.client("lambda").get_alias(
        FunctionName=stack.output("PredictFunctionName"), Name="live"
    )
    return {
        "approvals": {
            item["approval_id"]: item
            for item in _scan(dynamodb.Table(stack.output("ApprovalsTableName")))
        },
        "release lock": {item["name"]: item for item in _scan(dynamodb.Table(lock_table))},
        "parameters": {
            name: ssm.get_parameter(Name=stack.output(name))["Parameter"]["Value"]
            for name in (
                "ProductionEndpointParameterName",
                "ChampionParameterName",
                "HyperparametersParameterName",
            )
        },
        "executions": {
            execution["executionArn"]: execution["status"]
            for machine in sfn.list_state_machines()["stateMachines"]
            for execution in sfn.list_executions(stateMachineArn=machine["stateMachineArn"])[
                "executions"
            ]
        },
        "endpoints": {
            e["EndpointName"]: e["EndpointStatus"] for e in sagemaker.list_endpoints()["Endpoints"]
        },
        "live alias": {
            "version": alias["FunctionVersion"],
            "routing": alias.get("RoutingConfig") or {},
        },
    }


def _scan(table: Any) -> list[dict[str, Any]]:
    response = table.scan(ConsistentRead=True)
    items = list(response.get("Items", []))
    while "LastEvaluatedKey" in response:
        response = table.scan(ConsistentRead=True, ExclusiveStartKey=response["LastEvaluatedKey"])
        items += response.get("Items", [])
    return items


def state_changes(before: dict[str, Any], after: dict[str, Any]) -> list[str]:
    """Each difference between two ``release_state`` snapshots, one line each."""
    changes = []
    for section in sorted(before.keys() | after.keys()):
        was, now = before.get(section, {}), after.get(section, {})
        for key in sorted(was.keys() | now.keys(), key=str):
            if was.get(key) != now.get(key):
                changes.append(f"{section}: {key}: {was.get(key)!r} -> {now.get(key)!r}")
    return changes
