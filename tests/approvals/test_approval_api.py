"""The approval API handler on moto, where the local cloud cannot show it: a stack without a Slack
signing secret, keys rotated and revoked while the function caches them, and the requests it must
refuse with a 4xx that says why, deciding nothing (a binary body, a body that is not a decision,
odd query strings, huge bodies, any method on any route, names and reasons with control or bidi
characters)."""

from __future__ import annotations

import base64
import json
import time
from typing import Any
from urllib.parse import urlencode

import boto3
import pytest
from pipeline_common.approvals import ApprovalStore, signature
from pipeline_common.secrets import rotate_key

from tests.approvals.api import EXECUTION, Context, World, event, header, load, message_of
from tests.approvals.conftest import REGION, TOKEN


def page_post(world: World, fields: dict[str, str]) -> dict[str, Any]:
    body = urlencode(fields, errors="surrogatepass").encode()
    return world.call(
        event(
            "POST",
            f"/approvals/{world.approval.approval_id}",
            headers={"Content-Type": "application/x-www-form-urlencoded"},
            body=body,
        )
    )


def operator_post(world: World, body: bytes) -> dict[str, Any]:
    return world.call(
        event(
            "POST",
            "/operator/decisions",
            headers={"Content-Type": "application/json"},
            body=body,
            identity={"userArn": "arn:aws:iam::123456789012:user/ops"},
        )
    )


def assert_refused(
    world: World, answer: dict[str, Any], status: int | tuple[int, ...], kind: str
) -> str:
    """A 4xx of ``kind`` (``html`` or ``json``) that says why; nothing decided."""
    assert answer["statusCode"] in (status if isinstance(status, tuple) else (status,)), answer
    assert header(answer, "Content-Type").startswith(
        "text/html" if kind == "html" else "application/json"
    )
    message = message_of(answer)
    assert message
    assert world.status() == "PENDING"
    assert world.sfn.calls == []
    return message


# ---------------------------------------------------------------- configuration
def test_slack_interactivity_is_off_without_a_signing_secret(
    monkeypatch: pytest.MonkeyPatch, table: Any
) -> None:
    manager = boto3.client("secretsmanager", region_name=REGION)
    key = manager.create_secret(Name="signing", SecretString="k" * 64)["ARN"]
    app = load(
        monkeypatch,
        APPROVALS_TABLE=table.name,
        SIGNING_SECRET_ARN=key,
        SLACK_SIGNING_SECRET_ARN="",
    )
    body = urlencode({"payload": json.dumps({"type": "block_actions"})}).encode()

    answer = app.lambda_handler(
        event(
            "POST",
            "/slack/interactions",
            headers={"Content-Type": "application/x-www-form-urlencoded"},
            body=body,
        ),
        Context(),
    )

    assert answer["statusCode"] == 404
    assert "not enabled" in json.loads(answer["body"])["message"]


# ---------------------------------------------------------------- keys: rotation and revocation
def test_a_link_signed_with_a_key_rotated_after_the_cache_filled_still_opens(
    monkeypatch: pytest.MonkeyPatch, table: Any
) -> None:
    manager = boto3.client("secretsmanager", region_name=REGION)
    arn = manager.create_secret(Name="signing", SecretString="old-key" * 8)["ARN"]
    app = load(monkeypatch, APPROVALS_TABLE=table.name, SIGNING_SECRET_ARN=arn)
    approval = ApprovalStore(table).create(
        execution_arn=EXECUTION,
        model_id="fare-abc",
        task_token=TOKEN,
        evidence={"validation_rmse": 3.1},
        timeout_seconds=3600,
        now=time.time(),
    )

    def open_link(key: str) -> dict[str, Any]:
        sig = signature(approval.approval_id, approval.expires_at, key)
        query = {"expires": str(approval.expires_at), "sig": sig}
        answer: dict[str, Any] = app.lambda_handler(
            event("GET", f"/approvals/{approval.approval_id}", query=query), Context()
        )
        return answer

    assert open_link("old-key" * 8)["statusCode"] == 200  # the function now caches the old key
    manager.put_secret_value(SecretId=arn, SecretString="new-key" * 8)

    opened = open_link("new-key" * 8)  # signed by a request function that read the new key

    assert opened["statusCode"] == 200
    assert "Promote model fare-abc to production?" in opened["body"]
    assert open_link("old-key" * 8)["statusCode"] == 200  # AWSPREVIOUS still verifies
    assert open_link("forged-key" * 8)["statusCode"] == 403
    assert TOKEN not in json.dumps(opened)


def test_a_link_whose_key_was_revoked_is_refused_at_once_though_the_function_cached_it(
    fresh_world: World,
) -> None:
    world = fresh_world
    manager = boto3.client("secretsmanager", region_name=REGION)
    path = f"/approvals/{world.approval.approval_id}"
    old_link = world.link_fields()
    assert world.call(event("GET", path, query=old_link))["statusCode"] == 200  # cached now

    rotate_key(manager, world.signing_secret_arn)  # the old key is AWSPREVIOUS: still opens
    assert world.call(event("GET", path, query=old_link))["statusCode"] == 200
    rotate_key(manager, world.signing_secret_arn, revoke_previous=True)  # ... and now no stage

    shown = world.call(event("GET", path, query=old_link))
    posted = page_post(world, {**old_link, "decision": "approve", "name": "Ann"})

    assert "This link has been altered" in assert_refused(world, shown, 403, "html")
    assert "This link has been altered" in assert_refused(world, posted, 403, "html")
    current = manager.get_secret_value(SecretId=world.signing_secret_arn)["SecretString"]
    world.link_key = current
    assert world.call(event("GET", path, query=world.link_fields()))["statusCode"] == 200


def test_forged_signatures_read_the_secret_at_most_once_per_refresh_window(
    fresh_world: World,
) -> None:
    world = fresh_world
    reads: list[str] = []
    world.app.SECRETS.client.meta.events.register(
        "provide-client-params.secrets-manager.GetSecretValue",
        lambda params, **_: reads.append(params["VersionStage"]),
    )
    path = f"/approvals/{world.approval.approval_id}"
    genuine = world.link_fields()
    world.call(event("GET", path, query=genuine))  # fills the cache (and confirms it)
    reads.clear()

    for attempt in range(50):
        forged = {**genuine, "sig": f"{attempt:064x}"}
        assert world.call(event("GET", path, query=forged))["statusCode"] == 403

    assert len(reads) <= 2  # one fresh read of AWSCURRENT and AWSPREVIOUS, then the throttle
    reads.clear()
    world.call(event("GET", path, query=genuine))
    assert sorted(reads) == ["AWSCURRENT", "AWSPREVIOUS"]  # a genuine link is always confirmed


# ---------------------------------------------------------------- bodies that are not a decision
@pytest.mark.parametrize(
    ("content_type", "body"),
    [
        ("application/x-www-form-urlencoded", b"name=\xff\xfe&decision=approve"),  # not UTF-8
        ("application/x-www-form-urlencoded", b"name=%FF%FE&decision=approve"),  # nor escaped
        ("image/png", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\xff\xd8"),
        ("application/octet-stream", bytes(range(256))),
        ("application/x-www-form-urlencoded", b"&".join(b"f%d=1" % i for i in range(500))),
    ],
    ids=["latin-1 form", "escaped non-utf-8", "png", "every byte", "too many fields"],
)
def test_a_body_the_page_cannot_read_gets_a_400_page(
    world: World, content_type: str, body: bytes
) -> None:
    answer = world.call(
        event(
            "POST",
            f"/approvals/{world.approval.approval_id}",
            headers={"Content-Type": content_type},
            body=body,
        )
    )
    assert_refused(world, answer, 400, "html")


def test_a_body_that_is_not_base64_gets_a_400(world: World) -> None:
    for path in (f"/approvals/{world.approval.approval_id}", "/operator/decisions"):
        broken = event("POST", path, headers={"Content-Type": "application/json"}, body=b"{}")
        broken["body"] = "not base64 at all!"
        answer = world.call(broken)
        assert_refused(world, answer, 400, "html" if path.startswith("/approvals") else "json")
        assert "not valid base64" in answer["body"]


@pytest.mark.parametrize(
    "body",
    [
        b"[]",
        b'["approve"]',
        b'"approve"',
        b"42",
        b"null",
        b"[" * 8_000 + b"]" * 8_000,
        b'{"a":' * 2_500 + b"1" + b"}" * 2_500,
        b"not json",
        b"\xff\xfe{",
        b'{"execution_arn": "' + EXECUTION.encode() + b'", "decision": ["approve"]}',
        b'{"execution_arn": 42, "decision": "approve"}',
        b'{"execution_arn": "' + b"a" * 5000 + b'", "decision": "approve"}',
        b'{"execution_arn": "", "decision": "approve"}',
        b'{"execution_arn": "' + EXECUTION.encode() + b'", "decision": "approve", "reason": {}}',
        b'{"execution_arn": "' + EXECUTION.encode() + b'", "decision": "approve", "reason": 1}',
        b'{"execution_arn": "'
        + EXECUTION.encode()
        + b'", "decision": "approve", "reason": "\\ud800"}',
        b'{"execution_arn": "'
        + EXECUTION.encode()
        + b'", "decision": "approve", "n": 1'
        + b"0" * 5000
        + b"}",
    ],
    ids=[
        "empty array",
        "array",
        "string",
        "number",
        "null",
        "deep array",
        "deep object",
        "not json",
        "not utf-8",
        "decision a list",
        "arn a number",
        "arn huge",
        "arn empty",
        "reason an object",
        "reason a number",
        "reason a lone surrogate",
        "a number too long to read",
    ],
)
def test_an_operator_body_that_is_not_a_decision_gets_a_400(world: World, body: bytes) -> None:
    assert_refused(world, operator_post(world, body), 400, "json")


@pytest.mark.parametrize(
    "query",
    [
        {"expires": "1" * 5000, "sig": "0" * 64},
        {"expires": "\uff11\uff12\uff13", "sig": "0" * 64},  # full-width digits: int() reads them
        {"expires": "-1", "sig": "0" * 64},
        {"expires": "nan", "sig": "0" * 64},
        {"expires": "1700000000", "sig": "é" * 64},
        {"expires": "1700000000", "sig": "\ud800" * 64},
        {"expires": "1700000000", "sig": "0" * 100_000},
        {"expires": "\x00", "sig": ""},
        {"unexpected": "value"},
    ],
    ids=[
        "expiry too long",
        "full-width digits",
        "negative",
        "nan",
        "non-ascii signature",
        "surrogate signature",
        "huge signature",
        "nul",
        "no link at all",
    ],
)
def test_odd_query_strings_get_a_403_page(world: World, query: dict[str, str]) -> None:
    for path in (
        f"/approvals/{world.approval.approval_id}",
        f"/approvals/{world.approval.approval_id}/plot.png",
    ):
        assert_refused(world, world.call(event("GET", path, query=query)), 403, "html")


@pytest.mark.parametrize("approval_id", ["x" * 3000, "a%2Fb", "é", "\ud800", "abc\x00", "..", " "])
def test_an_approval_id_we_never_issued_gets_a_4xx_page(world: World, approval_id: str) -> None:
    query = world.link_fields()
    answer = world.call(event("GET", f"/approvals/{approval_id}", query=query))
    assert_refused(world, answer, (403, 404), "html")  # 404: no route takes such an id


@pytest.mark.parametrize(
    ("path", "kind"),
    [("/approvals/{id}", "html"), ("/slack/interactions", "json"), ("/operator/decisions", "json")],
)
def test_a_huge_body_gets_a_413(world: World, path: str, kind: str) -> None:
    body = b"a=" + b"b" * (5 * 1024 * 1024)
    answer = world.call(
        event(
            "POST",
            path.replace("{id}", world.approval.approval_id),
            headers={"Content-Type": "application/x-www-form-urlencoded"},
            body=body,
        )
    )
    assert "too large" in assert_refused(world, answer, 413, kind)


METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS", "TRACE", "CONNECT", "FOO"]


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize(
    "path",
    [
        "/approvals/{id}",
        "/approvals/{id}/plot.png",
        "/slack/interactions",
        "/operator/decisions",
        "/",
        "/approvals",
        "/approvals/{id}/other",
        "/health",
    ],
)
def test_any_method_on_any_route_gets_an_answer_below_500(
    world: World, method: str, path: str
) -> None:
    answer = world.call(
        event(
            method,
            path.replace("{id}", world.approval.approval_id),
            headers={"Content-Type": "application/octet-stream"},
            body=b"\xff\x00junk",
        )
    )
    assert answer["statusCode"] < 500
    if answer["statusCode"] >= 400 and method != "HEAD":
        assert message_of(answer)
    assert world.status() == "PENDING"
    assert world.sfn.calls == []


def test_the_json_routes_answer_405_json_to_other_methods(world: World) -> None:
    for path in ("/slack/interactions", "/operator/decisions"):
        answer = world.call(event("GET", path))
        assert answer["statusCode"] == 405
        assert (
            answer["multiValueHeaders"]["Allow"] == ["POST"]
            or answer["headers"].get("Allow") == "POST"
        )
        assert "POST" in assert_refused(world, answer, 405, "json")


# ---------------------------------------------------------------- names and reasons
BIDI_AND_CONTROLS = [
    "\u202e",  # RIGHT-TO-LEFT OVERRIDE: "Ann\u202eevorppa" reads "Ann approve"
    "\u202a",
    "\u2066",
    "\u2069",
    "\u200e",
    "\u200f",
    "\u061c",
    "\u200b",  # ZERO WIDTH SPACE (Cf)
    "\x00",
    "\x1b",  # ESC: terminal escape sequences in a log viewer
    "\x7f",
]


@pytest.mark.parametrize("char", BIDI_AND_CONTROLS, ids=lambda c: f"U+{ord(c):04X}")
def test_a_name_or_reason_with_a_control_or_bidi_character_gets_a_400_page(
    world: World, char: str
) -> None:
    link = world.link_fields()
    named = page_post(world, {**link, "decision": "approve", "name": f"Ann{char}evorppa"})
    reasoned = page_post(
        world, {**link, "decision": "reject", "name": "Ann", "reason": f"fine{char} really"}
    )
    assert assert_refused(world, named, 400, "html") == "Unusable name"
    assert f"U+{ord(char):04X}" in named["body"]
    assert assert_refused(world, reasoned, 400, "html") == "Unusable reason"


@pytest.mark.parametrize("char", BIDI_AND_CONTROLS, ids=lambda c: f"U+{ord(c):04X}")
def test_an_operator_reason_with_a_control_or_bidi_character_gets_a_400(
    world: World, char: str
) -> None:
    body = json.dumps(
        {
            "execution_arn": world.approval.execution_arn,
            "decision": "approve",
            "reason": f"ok{char}",
        }
    ).encode()
    message = assert_refused(world, operator_post(world, body), 400, "json")
    assert f"U+{ord(char):04X}" in message


@pytest.mark.parametrize("name", ["Ann\nReviewer", "Ann\u2028Reviewer", "Ann\tReviewer"])
def test_a_name_is_one_line(world: World, name: str) -> None:
    answer = page_post(world, {**world.link_fields(), "decision": "approve", "name": name})
    assert "Unusable name" in assert_refused(world, answer, 400, "html")


def test_line_breaks_in_a_reason_fold_into_spaces(world: World) -> None:
    answer = page_post(
        world,
        {
            **world.link_fields(),
            "decision": "reject",
            "name": "  Ann   Reviewer ",
            "reason": "the plot\r\nis off;\n\n\tretrain\u2028please",
        },
    )
    assert answer["statusCode"] == 200
    item = world.table.get_item(Key={"approval_id": world.approval.approval_id})["Item"]
    assert (item["status"], item["decided_by"]) == ("REJECTED", "Ann Reviewer")
    assert item["reason"] == "the plot is off; retrain please"
    ((call, arguments),) = world.sfn.calls
    assert call == "send_task_failure"
    assert "rejected by Ann Reviewer: the plot is off; retrain please" in arguments["cause"]


def test_a_reason_longer_than_the_page_allows_gets_a_400(world: World) -> None:
    answer = page_post(
        world, {**world.link_fields(), "decision": "reject", "name": "Ann", "reason": "x" * 501}
    )
    assert "Reason too long" in assert_refused(world, answer, 400, "html")


def test_a_decision_still_happens_once(world: World) -> None:
    fields = {**world.link_fields(), "decision": "approve", "name": "Ann"}
    assert page_post(world, fields)["statusCode"] == 200
    again = page_post(world, {**fields, "decision": "reject"})
    assert again["statusCode"] == 409
    assert "Already decided" in message_of(again)
    assert [call for call, _ in world.sfn.calls] == ["send_task_success"]


def test_the_pages_keep_their_headers(world: World) -> None:
    shown = world.call(
        event("GET", f"/approvals/{world.approval.approval_id}", query=world.link_fields())
    )
    refused = page_post(world, {"decision": "approve", "name": "M"})
    for answer in (shown, refused):
        assert header(answer, "Content-Security-Policy").startswith("default-src 'none'")
        assert header(answer, "Cache-Control") == "no-store"
    assert base64.b64encode(TOKEN.encode()).decode() not in json.dumps(world.answers)
