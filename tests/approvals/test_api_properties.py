"""Properties of the approval API, whatever a request holds: it never answers 5xx (an uncaught
exception is a Lambda error, a 502 from API Gateway, counted by the alarms), every refusal says
why, and no request but a genuine, complete decision changes anything.

Requests are drawn per route: random methods, headers, content types and bodies (encoded as API
Gateway encodes them: base64 for every body with a Content-Type), broken base64, odd query
strings; and, on the routes that decide, requests that are signed or genuine in every respect but
one. No drawn request is a valid decision on the pending approval.
"""

from __future__ import annotations

import json
import string
import time
from typing import Any
from urllib.parse import urlencode

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pipeline_common.approvals import PLOT, REVIEW
from pipeline_common.slack import button_value, request_signature

from safe_deploy.localcloud.channels import LOCAL_APPROVER, LOCAL_GROUP_MEMBERS, LOCAL_TEAM
from tests.approvals.api import World, event, message_of

PROPERTY = settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
APPROVERS = {LOCAL_APPROVER, *LOCAL_GROUP_MEMBERS}
FORM_FIELDS = ("expires", "sig", "decision", "name", "reason")
FOLDED = "\t\n\r\v\f\x85\u2028\u2029"  # line breaks a reason may hold (folded into spaces)

METHODS = st.sampled_from(
    ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS", "TRACE"]
) | st.text(string.ascii_uppercase, min_size=1, max_size=8)
CONTENT_TYPES = (
    st.none()
    | st.sampled_from(
        [
            "application/x-www-form-urlencoded",
            "application/x-www-form-urlencoded; charset=latin-1",
            "application/json",
            "text/plain",
            "multipart/form-data; boundary=xyz",
            "application/octet-stream",
            "image/png",
            "*/*",
        ]
    )
    | st.text(max_size=30)
)
TEXT = st.text(max_size=60)  # every code point, lone surrogates included
UNSAFE = st.characters(categories=["Cc", "Cf", "Cs", "Zl", "Zp"])
JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | TEXT,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(TEXT, inner, max_size=4),
    max_leaves=12,
)


def _bytes(text: str) -> bytes:
    return text.encode("utf-8", errors="surrogatepass")


def _form(fields: dict[str, str]) -> bytes:
    return urlencode(fields, errors="surrogatepass").encode()


BODIES = st.one_of(
    st.none(),
    st.binary(max_size=600),
    TEXT.map(_bytes),
    st.dictionaries(TEXT, TEXT, max_size=5).map(_form),
    JSON.map(lambda v: json.dumps(v).encode()),
    st.integers(1, 12_000).map(lambda n: b"[" * n + b"]" * n),  # nested past the parser's limit
)


@st.composite
def proxy_events(
    draw: st.DrawFn, path: str, body: st.SearchStrategy[bytes | None]
) -> dict[str, Any]:
    """An event for ``path`` with random method, headers and query, as API Gateway sends it, or
    with a body whose base64 is broken, or text that is not UTF-8."""
    headers = draw(
        st.dictionaries(
            st.text(string.ascii_letters + "-", min_size=1, max_size=20), TEXT, max_size=4
        )
    )
    content_type = draw(CONTENT_TYPES)
    if content_type is not None:
        headers["Content-Type"] = content_type
    query = draw(st.none() | st.dictionaries(TEXT, TEXT, max_size=3))
    request = event(draw(METHODS), path, headers=headers, query=query, body=draw(body))
    mangling = draw(st.sampled_from(["none", "none", "none", "broken base64", "surrogate text"]))
    if mangling == "broken base64":
        request["body"], request["isBase64Encoded"] = draw(TEXT) + "!", True
    elif mangling == "surrogate text":
        request["body"], request["isBase64Encoded"] = draw(TEXT) + "\ud800", False
    return request


def assert_harmless(world: World, answer: dict[str, Any], method: str) -> None:
    assert answer["statusCode"] < 500, answer
    if answer["statusCode"] >= 400 and method != "HEAD":
        assert message_of(answer), answer
    assert world.status() == "PENDING"
    assert world.sfn.calls == []


# ---------------------------------------------------------------- every route, anything
@PROPERTY
@given(data=st.data())
def test_the_page_routes_never_answer_5xx_nor_decide(world: World, data: st.DataObject) -> None:
    approval_id = data.draw(
        st.just(world.approval.approval_id) | TEXT.filter(lambda t: "/" not in t)
    )
    path = data.draw(
        st.sampled_from([f"/approvals/{approval_id}", f"/approvals/{approval_id}/plot.png"])
    )
    request = data.draw(proxy_events(path, BODIES))
    if data.draw(st.booleans()):  # a genuine link's fields in the query
        purpose = PLOT if path.endswith(".png") else REVIEW
        request["queryStringParameters"] = {
            **(request["queryStringParameters"] or {}),
            **world.link_fields(purpose=purpose),
        }
    assert_harmless(world, world.call(request), request["httpMethod"])


@PROPERTY
@given(data=st.data())
def test_the_json_routes_never_answer_5xx_nor_decide(world: World, data: st.DataObject) -> None:
    path = data.draw(st.sampled_from(["/slack/interactions", "/operator/decisions", "/", "/x"]))
    request = data.draw(proxy_events(path, BODIES))
    assert_harmless(world, world.call(request), request["httpMethod"])


# ---------------------------------------------------------------- the page: genuine but one thing
@st.composite
def incomplete_forms(draw: st.DrawFn, world: World) -> dict[str, str]:
    """The page's form with a genuine link and everything right but one thing."""
    name, reason = draw(TEXT), draw(TEXT)
    decision = draw(st.sampled_from(["approve", "reject"]))
    flaw = draw(st.sampled_from(["decision", "unsafe name", "unsafe reason", "no name", "long"]))
    if flaw == "decision":
        decision = draw(TEXT.filter(lambda d: d not in ("approve", "reject")))
    elif flaw == "unsafe name":
        name = name[:10] + draw(UNSAFE) + name[10:]
    elif flaw == "unsafe reason":
        reason = reason[:10] + draw(UNSAFE.filter(lambda c: c not in FOLDED)) + reason[10:]
    elif flaw == "no name":
        name = draw(st.sampled_from(["", " ", "\u3000 \u00a0"]))
    else:
        name = "A" + "n" * draw(st.integers(100, 300))
    others = draw(st.dictionaries(TEXT.filter(lambda k: k not in FORM_FIELDS), TEXT, max_size=2))
    return {**others, **world.link_fields(), "decision": decision, "name": name, "reason": reason}


@PROPERTY
@given(data=st.data())
def test_a_genuine_link_with_an_incomplete_decision_decides_nothing(
    world: World, data: st.DataObject
) -> None:
    form = data.draw(incomplete_forms(world))
    answer = world.call(
        event(
            "POST",
            f"/approvals/{world.approval.approval_id}",
            headers={"Content-Type": "application/x-www-form-urlencoded"},
            body=_form(form),
        )
    )
    assert answer["statusCode"] == 400, (form, answer)
    assert_harmless(world, answer, "POST")


# ---------------------------------------------------------------- Slack: signed, malformed
@st.composite
def slack_bodies(draw: st.DrawFn, world: World) -> bytes:
    """What Slack might sign: random bytes, random JSON, and payloads near a real click (by anyone
    but an approver, or from another team, or a review click) with fields swapped for others."""
    kind = draw(st.sampled_from(["bytes", "form", "json", "near"]))
    if kind == "bytes":
        return draw(st.binary(max_size=400))
    if kind == "form":
        return _form(draw(st.dictionaries(TEXT, TEXT, max_size=4)))
    if kind == "json":
        return _form({"payload": json.dumps(draw(JSON))})
    user_id = draw(st.sampled_from(["U0MALLORY", "W123", LOCAL_APPROVER]) | TEXT)
    team_id = draw(st.sampled_from([LOCAL_TEAM, "T0OTHER"]) | TEXT)
    action = draw(st.sampled_from(["approve", "reject", "review"]) | TEXT)
    if action in ("approve", "reject") and user_id in APPROVERS and team_id == LOCAL_TEAM:
        user_id = "U0MALLORY"  # an approver's click would decide: drawn requests never decide
    payload: dict[str, Any] = {
        "type": draw(st.just("block_actions") | TEXT),
        "user": {"id": user_id, "username": draw(TEXT), "team_id": team_id},
        "team": {"id": team_id},
        "actions": [
            {"value": button_value(action, draw(st.just(world.approval.approval_id) | TEXT))}
        ],
        "response_url": draw(st.just(world.slack.response_url) | TEXT),
    }
    for key in draw(st.lists(st.sampled_from(sorted(payload)), max_size=2)):
        payload[key] = draw(JSON)  # a field of the wrong type, or missing
    return _form({"payload": json.dumps(payload)})


@PROPERTY
@given(data=st.data())
def test_a_signed_slack_request_that_is_not_an_approvers_click_decides_nothing(
    world: World, data: st.DataObject
) -> None:
    body = data.draw(slack_bodies(world))
    timestamp = str(int(time.time()))
    headers = {
        "Content-Type": "application/x-www-form-urlencoded",
        "X-Slack-Request-Timestamp": timestamp,
        "X-Slack-Signature": request_signature(world.slack_secret, timestamp, body),
    }
    answer = world.call(event("POST", "/slack/interactions", headers=headers, body=body))
    assert_harmless(world, answer, "POST")


@PROPERTY
@given(timestamp=st.none() | TEXT, signature_header=TEXT, body=st.binary(max_size=200))
def test_slack_headers_of_any_shape_are_refused_with_401(
    world: World, timestamp: str | None, signature_header: str, body: bytes
) -> None:
    timestamp = str(int(time.time())) if timestamp is None else timestamp  # None: a recent one
    headers = {
        "Content-Type": "application/x-www-form-urlencoded",
        "X-Slack-Request-Timestamp": timestamp,
        "X-Slack-Signature": signature_header,
    }
    answer = world.call(event("POST", "/slack/interactions", headers=headers, body=body))
    assert answer["statusCode"] == 401
    assert_harmless(world, answer, "POST")


# ---------------------------------------------------------------- operators: any JSON
@st.composite
def operator_bodies(draw: st.DrawFn, world: World) -> bytes:
    """Any JSON, and objects near the CLI's with one field wrong (never a valid decision)."""
    if draw(st.booleans()):
        return json.dumps(draw(JSON)).encode()
    document: dict[str, Any] = {
        "execution_arn": world.approval.execution_arn,
        "decision": draw(st.sampled_from(["approve", "reject"])),
        "reason": draw(TEXT),
    }
    flaw = draw(st.sampled_from(["execution_arn", "decision", "reason", "unsafe reason"]))
    if flaw == "unsafe reason":
        document["reason"] = draw(TEXT) + draw(UNSAFE.filter(lambda c: c not in FOLDED))
    else:
        document[flaw] = draw(JSON.filter(lambda v: _wrong(flaw, v, document[flaw])))
    return json.dumps(document).encode("utf-8", errors="surrogatepass")


def _wrong(field: str, value: Any, right: Any) -> bool:
    """Whether ``value`` makes ``field`` wrong (a reason may be any text, or absent)."""
    if field == "reason":
        return not (value is None or isinstance(value, str))
    return bool(value != right)


@PROPERTY
@given(data=st.data())
def test_an_operator_body_that_is_not_a_decision_decides_nothing(
    world: World, data: st.DataObject
) -> None:
    body = data.draw(operator_bodies(world))
    answer = world.call(
        event(
            "POST",
            "/operator/decisions",
            headers={
                "Content-Type": data.draw(st.sampled_from(["application/json", "text/plain"]))
            },
            body=body,
            identity={"userArn": "arn:aws:iam::123456789012:user/ops"},
        )
    )
    assert answer["statusCode"] in (400, 404), (body, answer)
    assert_harmless(world, answer, "POST")


def test_the_properties_see_the_routes_that_decide(world: World) -> None:
    """The generators are near enough to real requests that one change makes them decide."""
    form = {**world.link_fields(), "decision": "approve", "name": "Ann", "reason": ""}
    answer = world.call(
        event(
            "POST",
            f"/approvals/{world.approval.approval_id}",
            headers={"Content-Type": "application/x-www-form-urlencoded"},
            body=_form(form),
        )
    )
    assert answer["statusCode"] == 200
    assert [call for call, _ in world.sfn.calls] == ["send_task_success"]
