"""What the fuzz sends: Hypothesis strategies for requests to every route the local API serves,
and to paths it does not serve.

A probe is one request: method, path, query, headers, body, and how it is signed (SigV4 for the
``AWS_IAM`` routes, Slack's HMAC for the Slack route), sometimes signed and then altered. Each probe
also says why any correct API must refuse it, when it must (``must_refuse``): no valid signature
where one is needed, an altered or expired link, a method or path no route declares, a POST that
cannot be a decision.

Large inputs (100,000-level JSON, 5,000-digit integers, bodies of megabytes) are built from a few
drawn numbers, not drawn byte by byte: Hypothesis chooses their shape, Python writes them. Every
strategy is built once (building one costs Hypothesis more than drawing from it).

The fuzz never sends a valid decision on the pending approval (a decision is a change of state,
not a fuzz finding): wherever a probe could name it with ``approve`` or ``reject``, the decision
is turned into something else. The decided approval and unknown ones get real decisions, which
must be refused (409, 404).
"""

from __future__ import annotations

import json
import re
import string
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import quote, unquote, urlencode

import requests
from hypothesis import strategies as st
from hypothesis.strategies import DrawFn, SearchStrategy
from pipeline_common.approvals import PLOT, REVIEW, signature

from safe_deploy.localcloud.api import Route

T = TypeVar("T")

METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS")
DECISIONS = ("approve", "reject")
TOKEN_CHARS = string.ascii_letters + string.digits + "!#$%&'*+-.^_`|~"  # RFC 9110 tchar
PAST_EXPIRY = 1_700_000_000  # 2023: a link signed for it has expired


@dataclass(frozen=True)
class KnownApproval:
    approval_id: str
    execution_arn: str
    expires: int  # its links' expiry


@dataclass(frozen=True)
class World:
    """What the fuzz knows of the running local cloud."""

    origin: str  # "http://127.0.0.1:PORT"
    region: str
    access_key: str
    secret_key: str
    link_key: str  # the approval links' HMAC key
    slack_secret: str
    pending: KnownApproval  # waiting for a person: must stay so
    decided: KnownApproval  # approved before the fuzz
    routes: tuple[Route, ...]
    local_prefixes: tuple[str, ...]  # the local cloud's own helpers, not the template's API


@dataclass(frozen=True)
class Target:
    label: str
    route: Route | None  # None: paths that are no route


def targets(world: World) -> list[Target]:
    """Every route the local API serves, read from it, and the paths it does not serve."""
    routes = sorted(world.routes, key=lambda r: (r.path, r.method))
    return [Target(f"{r.method} {r.path}", r) for r in routes] + [Target("unknown paths", None)]


@dataclass(frozen=True)
class Probe:
    target: str
    method: str
    path: str  # percent-encoded, from the origin: "/v1/approvals/abc"
    query: str  # percent-encoded, without "?"
    headers: tuple[tuple[str, str], ...]
    body: bytes
    body_kind: str
    auth: str  # "none", "junk authorization", "sigv4", "sigv4 tampered: body", "slack", ...
    must_refuse: str = ""  # why any correct API answers 4xx; "" when it may accept
    api_refuses: str = ""  # why API Gateway itself refuses it, before any function

    @property
    def content_type(self) -> str | None:
        return next((v for k, v in self.headers if k.lower() == "content-type"), None)

    @property
    def auth_family(self) -> str:
        return self.auth.split(":", 1)[0]


Body = tuple[str, bytes]  # (kind, bytes)
Fields = list[tuple[str, str]]


def weighted(*choices: tuple[int, SearchStrategy[T]]) -> SearchStrategy[T]:
    # not st.one_of: it drops repeated branches, and with them the weights
    pool = [strategy for weight, strategy in choices for _ in range(weight)]
    return st.sampled_from(pool).flatmap(lambda strategy: strategy)


def cased(draw: DrawFn, text: str) -> str:
    """``text`` in a random mix of upper and lower case."""
    bits = draw(st.integers(0, 2 ** len(text) - 1))
    return "".join(c.upper() if bits >> i & 1 else c.lower() for i, c in enumerate(text))


# ---------------------------------------------------------------- methods and headers
# requests upper-cases every method it sends: a lower-case token cannot be sent through it
OTHER_METHODS = weighted(
    (3, st.sampled_from(METHODS)), (1, st.text(TOKEN_CHARS, min_size=1, max_size=12).map(str.upper))
)


def methods(declared: str) -> SearchStrategy[str]:
    return (
        OTHER_METHODS if declared == "ANY" else weighted((3, st.just(declared)), (1, OTHER_METHODS))
    )


# latin-1 without controls: what HTTP/1.1 header values can carry; requests refuses leading space
HEADER_TEXT = st.text(
    st.characters(min_codepoint=0x20, max_codepoint=0xFF, exclude_characters="\x7f"),
    max_size=60,
).map(str.lstrip)
CONTENT_TYPES = weighted(
    (
        6,
        st.sampled_from(
            [
                "application/json",
                "application/json; charset=utf-8",
                "application/json;charset=UTF-16",
                "application/json; charset=latin-1",
                "text/csv",
                "text/csv; charset=utf-8",
                "text/csv; header=present",
                "application/x-www-form-urlencoded",
                "application/x-www-form-urlencoded; charset=utf-8",
                "multipart/form-data; boundary=----fuzz",
                "text/plain",
                "text/html",
                "application/xml",
                "application/octet-stream",
                "image/png",
                "application/gzip",
                "*/*",
                "application/*",
                "json",
                "/",
                "application/",
                "/json",
                ";",
                "application/json;;;=",
                "application/json; charset=",
                "APPLICATION/JSON",
                "application/json, text/csv",
            ]
        ),
    ),
    (1, HEADER_TEXT),
    (2, st.just("")),  # no Content-Type
)
ACCEPTS = weighted(
    (
        4,
        st.sampled_from(
            [
                "*/*",
                "application/json",
                "text/csv",
                "text/html",
                "image/png",
                "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8",
                "image/avif,image/webp,*/*",
                "application/json;q=0",
                "application/x-unknown",
                "*",
                ",,,",
            ]
        ),
    ),
    (1, HEADER_TEXT),
    (2, st.just("")),  # no Accept
)
EXTRA_HEADER_NAMES = st.lists(
    st.sampled_from(
        [
            "X-Forwarded-For",
            "X-HTTP-Method-Override",
            "Cookie",
            "Origin",
            "Referer",
            "User-Agent",
            "Content-Encoding",
            "Content-Language",
            "X-Requested-With",
            "Forwarded",
            "X-Amzn-Trace-Id",
            "Range",
            "If-None-Match",
        ]
    )
    | st.text(TOKEN_CHARS, min_size=1, max_size=20),
    max_size=4,
)
# Framing and the signatures' own headers: set by the client or by the signer, never at random.
RESERVED_HEADERS = frozenset(
    {
        "host",
        "content-length",
        "transfer-encoding",
        "connection",
        "keep-alive",
        "te",
        "trailer",
        "upgrade",
        "expect",
        "proxy-connection",
        "authorization",
        "x-amz-date",
        "x-amz-content-sha256",
        "x-amz-security-token",
        "x-slack-signature",
        "x-slack-request-timestamp",
        "content-type",
        "accept",
    }
)


def headers(draw: DrawFn, natural: str) -> tuple[tuple[str, str], ...]:
    """Random headers; half the time the body's ``natural`` Content-Type (the one a client would
    send with it), so that odd bodies reach the code that reads their type."""
    chosen: dict[str, tuple[str, str]] = {}
    content_types = (
        weighted((1, st.just(natural)), (1, CONTENT_TYPES)) if natural else CONTENT_TYPES
    )
    for name, values in (("Content-Type", content_types), ("Accept", ACCEPTS)):
        value = draw(values)
        if value:
            chosen[name.lower()] = (cased(draw, name), value)
    for name in draw(EXTRA_HEADER_NAMES):
        if name.lower() not in RESERVED_HEADERS and name.lower() not in chosen:
            chosen[name.lower()] = (cased(draw, name), draw(HEADER_TEXT))
    return tuple(chosen.values())


# ---------------------------------------------------------------- bodies
JSON_VALUES: SearchStrategy[Any] = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=True, allow_infinity=True)  # json.dumps writes NaN and Infinity
    | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=12,
)


def dumps(value: Any) -> bytes:
    return json.dumps(value).encode()


DEEP_SHAPES = {"array": ("[", "]"), "object": ('{"a":', "}"), "instances": ('{"instances":[', "]}")}


def natural_type(body: Body) -> str:
    """The Content-Type a client would send with a body, judged by its kind and first bytes."""
    kind, data = body
    if kind in ("form", "junk form", "page form") or data.startswith(b"payload="):
        return "application/x-www-form-urlencoded"
    if data[:1] in (b"[", b"{", b'"') or kind in ("json", "wrong type", "operator decision"):
        return "application/json"
    if b"," in data[:200] and kind not in ("bytes", "non-UTF-8"):
        return "text/csv"
    if kind in ("big number", "out-of-range number"):
        return "application/json"  # a bare number
    return "application/octet-stream" if data else ""


def deep_json(drawn: tuple[int, str]) -> Body:
    depth, shape = drawn
    opening, closing = DEEP_SHAPES[shape]
    return "deep JSON", (opening * depth + "1" + closing * depth).encode()


DEEP_JSON = st.tuples(
    st.integers(1, 2_000) | st.sampled_from([999, 1_000, 1_001, 10_000, 100_000]),
    st.sampled_from(sorted(DEEP_SHAPES)),
).map(deep_json)
# Python reads at most 4,300 digits as an int, and a float holds at most 308
DIGITS = weighted(
    (1, st.just(5_000)),
    (1, st.sampled_from([4_300, 4_301])),
    (1, st.sampled_from([308, 309, 400])),
    (1, st.integers(1, 5_000)),  # Hypothesis favours small ones
)
# "@" stands for a number: where a route expects an object, a row, a decision, an expiry
NUMBER_PLACES = st.sampled_from(
    [
        "@",
        "[@]",
        "[@, 1, 2.5]",
        '{"instances": [[@, 1, 2.5]]}',
        '{"instances": [@]}',
        '{"decision": @, "execution_arn": @}',
        '{"execution_arn": "arn", "decision": "approve", "reason": @}',
        "@,1,2.5",
        "expires=@&sig=@",
        "payload=@",
    ]
)
# Literals Python's json reads that are no finite number, and numbers past float's range
NOT_FINITE = (
    "NaN",
    "-NaN",
    "Infinity",
    "-Infinity",
    "1e400",
    "-1e400",
    "1.7976931348623157e309",
    "1" * 400 + ".5",
)
FINITE_EDGES = ("1e-400", "-0.0", "0e0", "5e-324", "1.7976931348623157e308")


@st.composite
def _big_numbers(draw: DrawFn) -> Body:
    """A number of up to 5,000 digits (Python reads at most 4,300 as an int) or past float's
    range, in a place a route reads; kind "out-of-range number" if no float holds it."""
    place = draw(NUMBER_PLACES)
    if draw(st.booleans()):
        digits = draw(DIGITS)
        number = draw(st.sampled_from(["9", "1"])) + "0" * (digits - 1)
        out_of_range = digits > 308
    else:
        number = draw(st.sampled_from(NOT_FINITE + FINITE_EDGES))
        out_of_range = number in NOT_FINITE
    kind = "out-of-range number" if out_of_range else "big number"
    return kind, place.replace("@", number).encode()


BIG_NUMBERS = _big_numbers()
WRONG_TYPES = st.sampled_from(
    [
        '"approve"',
        '"reject"',
        "[]",
        "[1, 2, 3]",
        '[{"decision": "approve"}]',
        "42",
        "-0",
        "null",
        "true",
        '""',
        '"\\ud800"',  # a lone surrogate: decodes to a str no codec writes back
        '{"\\ud800": 1}',
        '{"instances": null}',
        '{"instances": [[]]}',
        '{"instances": {}}',
        '{"instances": [[1, 2]]}',
        '{"instances": [["a", "b", "c"]]}',
        '{"instances": [[true, false, null]]}',
        "{",
        "[1, 2, 3",
        '{"a": 1}{"b": 2}',
    ]
).map(lambda text: ("wrong type", text.encode()))


def form(pairs: Fields) -> bytes:
    return urlencode(pairs).encode()


FORM_PAIRS = st.lists(
    st.tuples(
        st.sampled_from(["expires", "sig", "decision", "name", "reason", "payload", ""])
        | st.text(max_size=12),
        st.text(max_size=30),
    ),
    max_size=6,
)


@st.composite
def _huge(draw: DrawFn) -> Body:
    size = draw(st.sampled_from([64 * 1024, 512 * 1024, 1024 * 1024, 3 * 1024 * 1024]))
    kind = draw(st.sampled_from(["bytes", "csv", "json", "form"]))
    unit = {"csv": b"12,1,2.5\n", "json": b"[12, 1, 2.5],", "form": b"name=x&"}.get(kind)
    if unit is None:
        unit = draw(st.binary(min_size=1, max_size=16))
    filling = unit * (size // len(unit) + 1)
    if kind == "json":
        return "huge", b'{"instances": [' + filling[: size - 20] + b"[1, 1, 1]]}"
    return "huge", filling[:size]


GENERIC_BODIES = weighted(
    (3, st.just(("empty", b""))),
    (4, st.binary(max_size=512).map(lambda b: ("bytes", b))),
    (2, st.binary(max_size=200).map(lambda b: ("non-UTF-8", b"\xff" + b + b"\xc3\x28"))),
    (1, _huge()),
    (4, JSON_VALUES.map(lambda v: ("json", dumps(v)))),
    (3, DEEP_JSON),
    (3, BIG_NUMBERS),
    (2, WRONG_TYPES),
    (3, FORM_PAIRS.map(lambda pairs: ("form", form(pairs)))),
    (1, st.text("&=%+;aZ09é\x00 ", max_size=40).map(lambda t: ("junk form", t.encode()))),
)
"""Bodies for any route: none, bytes, JSON of every kind, forms, megabytes."""


# ---------------------------------------------------------------- /predict
NUMBER_CELLS = (
    st.sampled_from(["12", "1", "2.5", "-1", "0", "", " ", "1_000", "0x10", "١٢"])
    | st.sampled_from(NOT_FINITE + FINITE_EDGES)
    | st.floats().map(repr)
    | st.text(max_size=6)
)


def _number_or_text(cell: str) -> Any:
    try:
        return json.loads(cell)
    except ValueError:
        return cell


@st.composite
def _rows(draw: DrawFn) -> Body:
    """Rows as a client sends them, in CSV or JSON, with cells of every kind."""
    rows = draw(st.lists(st.lists(NUMBER_CELLS, max_size=5), max_size=4))
    if draw(st.booleans()):
        return "rows", "\n".join(",".join(row) for row in rows).encode()
    values: Any = [[_number_or_text(cell) for cell in row] for row in rows]
    shape = draw(st.sampled_from(["instances", "list", "bare row"]))
    if shape == "instances":
        values = {"instances": values}
    elif shape == "bare row":
        values = values[0] if values else []
    return "rows", json.dumps(values).encode()


PREDICT_BODIES = weighted((2, GENERIC_BODIES), (2, _rows()), (1, BIG_NUMBERS), (1, DEEP_JSON))
NO_ROWS = ("deep JSON", "non-UTF-8", "out-of-range number")  # bodies /predict must refuse


# ---------------------------------------------------------------- approvals
def approval_ids(world: World) -> SearchStrategy[tuple[str, str]]:
    """(the id as it goes in the path, percent-encoded; which approval it is)."""
    urlsafe = string.ascii_letters + string.digits + "-_"
    odd = ["%25", "%00", "%FF%FE", "a%2Fb", "%3Cscript%3E", "'%20OR%201=1", "é", ".."]
    return weighted(
        (4, st.just((world.pending.approval_id, "pending"))),
        (2, st.just((world.decided.approval_id, "decided"))),
        (1, st.text(urlsafe, min_size=1, max_size=30).map(lambda t: (t, "unknown"))),
        (1, st.text(min_size=1, max_size=20).map(lambda t: (quote(t, safe=""), "unknown"))),
        (1, st.integers(100, 4_000).map(lambda n: ("A" * n, "unknown"))),
        (1, st.sampled_from(odd).map(lambda t: (t, "unknown"))),
    )


LINK_VARIANTS = st.sampled_from(
    [
        "valid",
        "valid",
        "valid, extra fields",
        "other purpose",
        "expired",
        "signature altered",
        "signature not hex",
        "expiry altered",
        "no signature",
        "no expiry",
        "nothing",
        "junk",
        "huge expiry",
    ]
)
EXTRA_FIELDS = st.lists(st.tuples(st.text(max_size=12), st.text(max_size=30)), max_size=5)


def link_fields(
    draw: DrawFn, world: World, approval_id: str, which: str, purpose: str
) -> tuple[Fields, bool, str]:
    """A link's query fields for ``approval_id`` (signed for ``purpose``), whether they are the
    genuine fields of a live link, and the variant's name."""
    approval = {"pending": world.pending, "decided": world.decided}.get(which)
    expires = approval.expires if approval else world.pending.expires
    raw_id = unquote(approval_id)
    sig = signature(raw_id, expires, world.link_key, purpose)
    variant = draw(LINK_VARIANTS)
    fields: Fields = [("expires", str(expires)), ("sig", sig)]
    if variant == "valid, extra fields":
        fields += [(k, v) for k, v in draw(EXTRA_FIELDS) if k not in ("expires", "sig", "decision")]
    elif variant == "other purpose":
        other = PLOT if purpose == REVIEW else REVIEW
        fields = [
            ("expires", str(expires)),
            ("sig", signature(raw_id, expires, world.link_key, other)),
        ]
    elif variant == "expired":
        past = signature(raw_id, PAST_EXPIRY, world.link_key, purpose)
        fields = [("expires", str(PAST_EXPIRY)), ("sig", past)]
    elif variant == "signature altered":
        at = draw(st.integers(0, len(sig) - 1))
        fields = [
            ("expires", str(expires)),
            ("sig", sig[:at] + ("1" if sig[at] == "0" else "0") + sig[at + 1 :]),
        ]
    elif variant == "signature not hex":
        fields = [("expires", str(expires)), ("sig", draw(st.text(min_size=1, max_size=70)))]
    elif variant == "expiry altered":
        delta = draw(st.integers(-(10**9), 10**9).filter(bool))
        fields = [("expires", str(expires + delta)), ("sig", sig)]
    elif variant == "no signature":
        fields = fields[:1]
    elif variant == "no expiry":
        fields = fields[1:]
    elif variant == "nothing":
        fields = []
    elif variant == "junk":
        fields = [("expires", draw(st.text(max_size=20))), ("sig", draw(st.text(max_size=70)))]
    elif variant == "huge expiry":
        fields = [("expires", "9" * draw(DIGITS)), ("sig", sig)]
    return fields, variant.startswith("valid") and approval is not None, variant


PAGE_DECISIONS = st.sampled_from([*DECISIONS, "APPROVE", "maybe", ""]) | st.text(max_size=10)
NAMES = st.sampled_from(["Fuzz Reviewer", "", "   ", "\t"]) | st.text(max_size=40)
REASONS = st.text(max_size=40) | st.integers(0, 5_000).map(lambda n: "r" * n)


def page_form(draw: DrawFn, fields: Fields, which: str) -> Body:
    """The approval page's form: the link's fields and a decision, with random others."""
    decision = draw(PAGE_DECISIONS)
    if which == "pending" and decision in DECISIONS:
        decision = decision.upper()  # a real decision on the pending approval
    extra = [(k, v) for k, v in draw(FORM_PAIRS) if k != "decision"]
    pairs = [
        *fields,
        ("decision", decision),
        ("name", draw(NAMES)),
        ("reason", draw(REASONS)),
        *extra,
    ]
    if draw(st.booleans()):
        pairs = draw(st.permutations(pairs))
    return "page form", form(pairs)


# ---------------------------------------------------------------- Slack and operators
# where Slack sends an object: what a forged or broken payload may hold instead
NOT_OBJECTS: SearchStrategy[Any] = (
    st.sampled_from([None, False, 0, 1.5, "", "approve", [], [None], ["approve:x"], [[]], {}])
    | JSON_VALUES
)
SLACK_ACTIONS = st.sampled_from(
    [*DECISIONS, "review", "", "APPROVE", "approve:", "reject "]
) | st.text(max_size=10)
SLACK_SHAPES = st.sampled_from(["form", "form", "bare JSON", "payload twice", "junk payload"])


def slack_payloads(world: World) -> SearchStrategy[Body]:
    """A Slack interactivity body, near what Slack sends, with random fields and values."""
    ids = approval_ids(world)
    users = st.just({"id": "UFUZZ", "username": "fuzz", "team_id": "T0LOCAL"}) | NOT_OBJECTS
    response_urls = (
        st.sampled_from(
            [
                f"{world.origin}/_local/slack/response/T0LOCAL/1/fuzz",
                "not a url",
                "",
                "http://127.0.0.1:1/refused",
            ]
        )
        | JSON_VALUES
    )

    @st.composite
    def payload(draw: DrawFn) -> Body:
        approval_id, which = draw(ids)
        action = draw(SLACK_ACTIONS)
        if which == "pending" and action in DECISIONS:
            action = "review"  # a real click on the pending approval would decide it
        value: Any = f"{action}:{unquote(approval_id)}"
        if draw(st.integers(0, 4)) == 0:
            value = draw(JSON_VALUES)
        actions = draw(
            weighted(
                (4, st.just([{"action_id": action, "value": value, "type": "button"}])),
                (1, st.just([{"value": value}, {"value": "approve:x"}])),
                (2, NOT_OBJECTS.map(lambda wrong: [wrong])),
                (1, NOT_OBJECTS),
            )
        )
        document: dict[str, Any] = {
            "type": draw(
                st.sampled_from(["block_actions", "view_submission", ""]) | st.text(max_size=10)
            ),
            "actions": actions,
            "user": draw(users),
            "team": draw(st.just({"id": "T0LOCAL"}) | NOT_OBJECTS),
            "response_url": draw(response_urls),
        }
        for key in draw(st.lists(st.sampled_from(sorted(document)), max_size=3)):
            document.pop(key, None)
        text = json.dumps(document)
        shape = draw(SLACK_SHAPES)
        if shape == "form":
            return "Slack payload", form([("payload", text)])
        if shape == "bare JSON":
            return "Slack payload", text.encode()
        if shape == "payload twice":
            return "Slack payload", form([("payload", text), ("payload", "{}")])
        return "Slack payload", b"payload=" + draw(st.binary(max_size=100))

    return payload()


def operator_decisions(world: World) -> SearchStrategy[Body]:
    """A body for ``POST /operator/decisions``, near the CLI's, with random fields and values."""
    pending = world.pending.execution_arn
    arns = (
        st.sampled_from([pending, world.decided.execution_arn, pending + "x", "", "A" * 3_000])
        | st.text(max_size=40)
        | JSON_VALUES
    )
    decisions = (
        st.sampled_from([*DECISIONS, "APPROVE", " approve", "approve\x00", "", "maybe"])
        | JSON_VALUES
    )

    @st.composite
    def decision(draw: DrawFn) -> Body:
        document: dict[str, Any] = {
            "execution_arn": draw(arns),
            "decision": draw(decisions),
            "reason": draw(JSON_VALUES),
        }
        for key in draw(st.lists(st.sampled_from(sorted(document)), max_size=2)):
            document.pop(key, None)
        document.update(draw(st.dictionaries(st.text(max_size=10), JSON_VALUES, max_size=2)))
        if document.get("execution_arn") == pending and document.get("decision") in DECISIONS:
            document["decision"] = "MAYBE"  # a real decision on the pending approval
        shape = draw(st.sampled_from(["object", "object", "object", "in a list", "no object"]))
        if shape == "in a list":
            return "operator decision", dumps([document])
        if shape == "no object":
            return "operator decision", dumps(draw(NOT_OBJECTS))
        return "operator decision", dumps(document)

    return decision()


# ---------------------------------------------------------------- signatures
SIGV4_TAMPERING = (
    "body",
    "signature",
    "secret",
    "region",
    "service",
    "date",
    "query",
    "signed header",
)
SLACK_TAMPERING = (
    "stale",
    "future",
    "body",
    "secret",
    "signature",
    "no timestamp",
    "no signature",
    "junk timestamp",
)
JUNK_AUTHORIZATION = (
    st.sampled_from(
        [
            "AWS4-HMAC-SHA256",
            "AWS4-HMAC-SHA256 Credential=a/20250101/us-east-1/execute-api/aws4_request, "
            "SignedHeaders=host, Signature=zz",
            "AWS4-HMAC-SHA256 Credential=a/20250101/us-east-1/execute-api/aws4_request, "
            "SignedHeaders=;;host;x-missing;, Signature=00",
            "AWS4-HMAC-SHA256 Credential=//////, SignedHeaders=, Signature=0",
            "Bearer fuzz",
            "Basic Zm96ejpmdXp6",
        ]
    )
    | HEADER_TEXT
)
JUNK = st.just("junk authorization")
SIGV4_AUTHS = weighted(
    (5, st.just("sigv4")),
    (2, st.just("none")),
    (1, JUNK),
    (2, st.sampled_from(SIGV4_TAMPERING).map(lambda t: f"sigv4 tampered: {t}")),
)
SLACK_AUTHS = weighted(
    (5, st.just("slack")),
    (2, st.just("none")),
    (3, st.sampled_from(SLACK_TAMPERING).map(lambda t: f"slack tampered: {t}")),
)
OTHER_AUTHS = weighted((6, st.just("none")), (1, st.just("sigv4")), (1, JUNK))


def auths(route: Route | None) -> SearchStrategy[str]:
    if route is not None and route.authorizer == "AWS_IAM":
        return SIGV4_AUTHS
    if route is not None and route.path == "/slack/interactions":
        return SLACK_AUTHS
    return OTHER_AUTHS


def authorization(draw: DrawFn, auth: str) -> tuple[tuple[str, str], ...]:
    if auth != "junk authorization":
        return ()
    return ((cased(draw, "Authorization"), draw(JUNK_AUTHORIZATION)),)


# ---------------------------------------------------------------- probes
QUERY_TEXT = weighted((3, st.text(string.printable, max_size=20)), (1, st.text(max_size=20)))
QUERY_PAIRS = weighted(
    (2, st.just([])), (1, st.lists(st.tuples(QUERY_TEXT, QUERY_TEXT), min_size=1, max_size=3))
)
QUERY_JUNK = st.sampled_from(["", "", "", "", "", "&&", "=", "a=%ZZ", "%", "x=1&x=2", "a[b]=c"])
WHERE_FIELDS_GO = st.sampled_from(["query", "query", "query", "elsewhere"])
SEGMENT = st.text(min_size=1, max_size=20)


def query(pairs: Fields, junk: str) -> str:
    return "&".join(part for part in (urlencode(pairs), junk) if part)


def probes(world: World, target: Target) -> SearchStrategy[Probe]:
    route = target.route
    if route is None:
        return unknown_paths(world, target)
    declared = {r.method for r in world.routes if r.path == route.path}
    method_choices, auth_choices, ids = methods(route.method), auths(route), approval_ids(world)
    bodies = {
        "/predict": PREDICT_BODIES,
        "/operator/decisions": weighted((1, GENERIC_BODIES), (2, operator_decisions(world))),
        "/slack/interactions": weighted((1, GENERIC_BODIES), (2, slack_payloads(world))),
    }.get(route.path, GENERIC_BODIES)

    @st.composite
    def probe(draw: DrawFn) -> Probe:
        method, auth, body = draw(method_choices), draw(auth_choices), draw(bodies)
        pairs, path = draw(QUERY_PAIRS), route.path
        api_reasons = []
        if method not in declared and "ANY" not in declared:
            api_reasons.append(f"no {method} route")
        if route.authorizer == "AWS_IAM" and auth != "sigv4":
            api_reasons.append(f"{auth}, where a SigV4 signature is needed")
        reasons = list(api_reasons)
        if route.path == "/slack/interactions" and auth != "slack":
            reasons.append(f"{auth}, where Slack's signature is needed")
        if route.path == "/predict" and body[0] in NO_ROWS:
            reasons.append(f"{body[0]} is no row of numbers")
        if route.path == "/operator/decisions":
            reasons.append("no decision the fuzz may make")
        if "{approval_id}" in path:
            approval_id, which = draw(ids)
            path = path.replace("{approval_id}", approval_id)
            purpose = PLOT if route.path.endswith("/plot.png") else REVIEW
            fields, genuine, variant = link_fields(draw, world, approval_id, which, purpose)
            if draw(WHERE_FIELDS_GO) == "query":
                pairs = fields
            if purpose == REVIEW and method == "POST":
                body = page_form(draw, fields, which) if draw(st.booleans()) else body
                reasons.append("a POST that is no decision the fuzz may make")
            elif method != "GET" or pairs != fields or not genuine:
                reasons.append(f"{method} with link fields {variant!r} for a {which} approval")
        # a path parameter this fuzz does not know: any segment
        path = re.sub(r"\{[^}]+\}", lambda _: quote(draw(SEGMENT), safe=""), path)
        return Probe(
            target=target.label,
            method=method,
            path=f"/{route.stage}{path}",
            query=query(pairs, draw(QUERY_JUNK)),
            headers=headers(draw, natural_type(body)) + authorization(draw, auth),
            body=body[1],
            body_kind=body[0],
            auth=auth,
            must_refuse="; ".join(reasons),
            api_refuses="; ".join(api_reasons),
        )

    return probe()


def is_served(world: World, path: str) -> bool:
    """Whether ``path``, as requests sends it (dot segments removed) and the server decodes it,
    is a route or one of the local cloud's helpers."""
    prepared = requests.PreparedRequest()
    prepared.prepare_url(world.origin + path, None)
    decoded = unquote(prepared.path_url)
    stage, _, rest = decoded.lstrip("/").partition("/")
    if any(r.stage == stage and r.pattern.match("/" + rest) for r in world.routes):
        return True
    return any(decoded.startswith(prefix) for prefix in world.local_prefixes)


SEGMENTS = st.lists(
    st.sampled_from(
        [
            "predict",
            "health",
            "approvals",
            "plot.png",
            "operator",
            "slack",
            "v1",
            "V1",
            "..",
            ".",
            "",
        ]
    )
    | st.text(string.ascii_letters + string.digits + "-_.~%", max_size=12),
    max_size=5,
)


def unknown_paths(world: World, target: Target) -> SearchStrategy[Probe]:
    stages = sorted({r.stage for r in world.routes})
    firsts = st.sampled_from([*stages, *stages, "", "prod", "V1"])

    @st.composite
    def probe(draw: DrawFn) -> Probe:
        path = "/" + "/".join([draw(firsts), *draw(SEGMENTS)]) + draw(st.sampled_from(["", "/"]))
        if is_served(world, path):
            path = f"/{stages[0]}/no-such-route{path}"  # it must stay no route, nor a local helper
        auth, body = draw(OTHER_AUTHS), draw(GENERIC_BODIES)
        return Probe(
            target=target.label,
            method=draw(OTHER_METHODS),
            path=path,
            query=query(draw(QUERY_PAIRS), ""),
            headers=headers(draw, natural_type(body)) + authorization(draw, auth),
            body=body[1],
            body_kind=body[0],
            auth=auth,
            must_refuse="no route",
            api_refuses="no route",
        )

    return probe()
