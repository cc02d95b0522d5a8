"""SigV4 for ``execute-api``, checked in the order and with the words AWS uses, and the principal
behind an access key.

Checks, in the order AWS's request authentication makes them (the order mhart/dynalite records
from DynamoDB, which shares the front end; API Gateway answers each with a 403 and
``{"message": ...}``):

1. no ``Authorization`` header: ``Missing Authentication Token``;
2. a header without ``Credential``, ``Signature`` or ``SignedHeaders``, or a request with neither
   ``X-Amz-Date`` nor ``Date``: ``Authorization header requires ...``;
3. a date that is not ISO 8601 basic (``20240102T030405Z``; an RFC 1123 ``Date`` header is
   read too, as botocore writes it), or more than 5 minutes from the server's clock:
   ``Signature expired: ...`` / ``Signature not yet current: ...`` (API Gateway's window is
   5 minutes: its 403 bodies end ``(... - 5 min.)``);
4. ``host`` not among the signed headers;
5. an algorithm other than ``AWS4-HMAC-SHA256``, a credential not of five parts;
6. a credential scope for another region, another service than ``execute-api``, another
   terminator than ``aws4_request``, or a date other than the request's (all named at once);
7. an inactive key; 8. the signature; 9. the session token of a temporary key.

The signature is recomputed over the request as this API received it, with the API's own host:
a request signed for (or sent with) another ``Host`` cannot match, as on AWS, where the host
names the API.

Sources: AWS IAM User Guide, "Troubleshoot signed requests for AWS APIs" (the scope and date
messages) and "Elements of an AWS API request signature"; API Gateway's own 403 bodies as users
report them (aws/aws-sdk-js#3571, aws-amplify/aws-sdk-android#253, aws/chalice#828).
"""

from __future__ import annotations

import hmac
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from urllib.parse import quote, unquote, urlsplit

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest, HTTPHeaders
from botocore.credentials import Credentials
from werkzeug.wrappers import Request

from safe_deploy.localcloud.resource_policy import Caller

SERVICE = "execute-api"
ALGORITHM = "AWS4-HMAC-SHA256"
TERMINATOR = "aws4_request"
MAX_SKEW = timedelta(minutes=5)
TIMESTAMP = "%Y%m%dT%H%M%SZ"
INVALID_TOKEN = "The security token included in the request is invalid."
SIGNATURE_MISMATCH = (
    "The request signature we calculated does not match the signature you provided. Check your "
    "AWS Secret Access Key and signing method. Consult the service documentation for details."
)


@dataclass(frozen=True)
class Refusal:
    """Why API Gateway refuses a request: its error type (``x-amzn-ErrorType``) and message."""

    error_type: str
    message: str


@dataclass(frozen=True)
class Principal:
    """Who signs with an access key, and with what secret."""

    access_key: str
    secret_key: str
    account: str
    user_arn: str  # identity.userArn: a user's ARN, or a role session's
    caller_id: str  # identity.caller and identity.user: the unique id (AIDA..., AROA...:session)
    principal_arn: str  # aws:PrincipalArn: the user, or the role behind a session
    username: str | None = None  # aws:username, IAM users only
    session_token: str | None = None  # what a temporary key must come with
    active: bool = True
    in_iam: bool = False  # a key of moto's IAM, not the local cloud's catch-all

    @property
    def caller(self) -> Caller:
        session = self.user_arn if self.user_arn != self.principal_arn else None
        return Caller(self.principal_arn, self.account, self.username, session)


def find_principal(access_key: str, *, account: str, local_secret: str) -> Principal:
    """The principal of an access key: a user's or a role session's key in moto's IAM (signed
    with its own secret), or else the local cloud's catch-all: ``user/<access key>`` of the
    local account, signed with ``local_secret``."""
    from moto.iam.models import iam_backends
    from moto.sts.models import sts_backends

    for key_account, partitions in list(iam_backends.items()):
        iam = partitions["aws"]
        key = iam.access_keys.get(access_key)
        if key is None:
            continue
        common = {
            "access_key": access_key,
            "secret_key": key.secret_access_key,
            "account": key_account,
            "active": key.status == "Active",
            "in_iam": True,
        }
        if key.user_name:
            user = iam.get_user(key.user_name)
            return Principal(
                user_arn=user.arn,
                caller_id=user.id,
                principal_arn=user.arn,
                username=user.name,
                **common,
            )
        session = sts_backends[key_account]["aws"].get_assumed_role_from_access_key(access_key)
        if session is not None:
            return Principal(
                user_arn=session.arn,
                caller_id=session.user_id,
                principal_arn=session.role_arn,
                session_token=session.session_token,
                **common,
            )
    arn = f"arn:aws:iam::{account}:user/{access_key}"
    return Principal(access_key, local_secret, account, arn, access_key, arn, access_key)


# ---------------------------------------------------------------------------- checks
def _params(header: str) -> tuple[str, dict[str, str]]:
    algorithm, _, rest = header.strip().partition(" ")
    params = {}
    for part in rest.split(","):
        name, equals, value = part.strip().partition("=")
        if equals:
            params[name.strip()] = value.strip()
    return algorithm, params


def _timestamp(request: Request) -> datetime | Refusal:
    amz_date = request.headers.get("X-Amz-Date")
    raw = amz_date if amz_date is not None else request.headers.get("Date", "")
    try:
        return datetime.strptime(raw, TIMESTAMP).replace(tzinfo=UTC)
    except ValueError:
        pass
    if amz_date is None:
        try:
            parsed = parsedate_to_datetime(raw)
            if parsed.tzinfo is not None:
                return parsed.astimezone(UTC)
        except (TypeError, ValueError):
            pass
    return Refusal(
        "IncompleteSignatureException",
        f"Date must be in ISO-8601 'basic format'. Got '{raw}'. "
        "See http://en.wikipedia.org/wiki/ISO_8601",
    )


def _skew(timestamp: datetime, now: datetime) -> Refusal | None:
    def stamp(moment: datetime) -> str:
        return moment.strftime(TIMESTAMP)

    if timestamp < now - MAX_SKEW:
        return Refusal(
            "InvalidSignatureException",
            f"Signature expired: {stamp(timestamp)} is now earlier than "
            f"{stamp(now - MAX_SKEW)} ({stamp(now)} - 5 min.)",
        )
    if timestamp > now + MAX_SKEW:
        return Refusal(
            "InvalidSignatureException",
            f"Signature not yet current: {stamp(timestamp)} is still later than "
            f"{stamp(now + MAX_SKEW)} ({stamp(now)} + 5 min.)",
        )
    return None


def _scope(parts: list[str], region: str, timestamp: datetime) -> Refusal | None:
    _, date, scope_region, service, terminator = parts
    problems = []
    if scope_region != region:
        problems.append(f"Credential should be scoped to a valid region, not '{scope_region}'.")
    if service != SERVICE:
        problems.append(f"Credential should be scoped to correct service: '{SERVICE}'.")
    if terminator != TERMINATOR:
        problems.append(
            f"Credential should be scoped with a valid terminator: '{TERMINATOR}', "
            f"not '{terminator}'."
        )
    if date != timestamp.strftime("%Y%m%d"):
        problems.append(
            "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date "
            f"from HTTP: '{date}' != '{timestamp:%Y%m%d}', from '{timestamp.strftime(TIMESTAMP)}'."
        )
    if not problems:
        return None
    return Refusal("InvalidSignatureException", "".join(p + " " for p in problems))


class _Recomputed(SigV4Auth):
    """botocore's canonical request over exactly the headers the caller says it signed."""

    def __init__(self, credentials: Credentials, region: str, signed: Sequence[str]) -> None:
        super().__init__(credentials, SERVICE, region)
        self._signed = signed

    def headers_to_sign(self, request: AWSRequest) -> HTTPHeaders:
        headers = HTTPHeaders()
        for name in self._signed:
            for value in request.headers.get_all(name) or []:
                headers[name] = value
        return headers


def _canonical_query(raw: str) -> str:
    """The query string as SigV4 canonicalizes what arrives: each name and value decoded, then
    encoded with only the unreserved characters left as they are, sorted by name and value. A
    client that signed the query as it sent it (with ``%28``, not ``(``) matches."""
    pairs = []
    for pair in raw.split("&") if raw else []:
        name, _, value = pair.partition("=")
        pairs.append((quote(unquote(name), safe="-_.~"), quote(unquote(value), safe="-_.~")))
    return "&".join(f"{name}={value}" for name, value in sorted(pairs))


def _expected(
    request: Request,
    principal: Principal,
    region: str,
    signed: Sequence[str],
    host: str,
    timestamp: datetime,
) -> tuple[str, str, str]:
    """The canonical request, string to sign and signature AWS would compute."""
    headers = HTTPHeaders()
    for name in signed:
        values = [host] if name == "host" else request.headers.getlist(name)
        for value in values:
            headers[name] = value
    parts = urlsplit(request.url)
    query = _canonical_query(request.environ.get("QUERY_STRING", ""))
    url = parts._replace(netloc=host, query=query).geturl()
    aws_request = AWSRequest(method=request.method, url=url, data=request.get_data())
    aws_request.headers = headers
    aws_request.context["timestamp"] = timestamp.strftime(TIMESTAMP)
    signer = _Recomputed(Credentials(principal.access_key, principal.secret_key), region, signed)
    canonical = signer.canonical_request(aws_request)
    string_to_sign = signer.string_to_sign(aws_request, canonical)
    return canonical, string_to_sign, signer.signature(string_to_sign, aws_request)


def authenticate(
    request: Request,
    *,
    region: str,
    hosts: Sequence[str],
    now: datetime,
    principal_of: Callable[[str], Principal],
) -> Principal | Refusal:
    """The request's principal if its SigV4 signature is one API Gateway accepts. ``hosts``:
    the names the API answers to, the first one canonical."""
    header = request.headers.get("Authorization")
    if not header:
        return Refusal("MissingAuthenticationTokenException", "Missing Authentication Token")
    algorithm, params = _params(header)
    missing = "".join(
        f"Authorization header requires '{name}' parameter. "
        for name in ("Credential", "Signature", "SignedHeaders")
        if not params.get(name)
    )
    if "X-Amz-Date" not in request.headers and "Date" not in request.headers:
        missing += (
            "Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header. "
        )
    if missing:
        return Refusal("IncompleteSignatureException", f"{missing}Authorization={header}")

    timestamp = _timestamp(request)
    if isinstance(timestamp, Refusal):
        return timestamp
    skew = _skew(timestamp, now)
    if skew is not None:
        return skew
    signed = [name.strip().lower() for name in params["SignedHeaders"].split(";")]
    if "host" not in signed:
        return Refusal(
            "InvalidSignatureException",
            "'Host' or ':authority' must be a 'SignedHeader' in the AWS Authorization.",
        )
    if algorithm != ALGORITHM:
        return Refusal(
            "IncompleteSignatureException",
            f"Unsupported AWS 'algorithm': '{algorithm}' (only {ALGORITHM} for now). ",
        )
    credential = params["Credential"]
    parts = credential.rstrip("/").split("/")
    if len(parts) != 5:
        return Refusal(
            "IncompleteSignatureException",
            "Credential must have exactly 5 slash-delimited elements, e.g. "
            f"keyid/date/region/service/term, got '{credential}'",
        )
    scope = _scope(parts, region, timestamp)
    if scope is not None:
        return scope

    principal = principal_of(parts[0])
    if not principal.active:
        return Refusal("UnrecognizedClientException", INVALID_TOKEN)
    sent_host = request.headers.get("Host", "")
    if sent_host not in hosts:  # on AWS such a request never reaches this API
        return Refusal("ForbiddenException", "Forbidden")
    host = sent_host
    canonical, string_to_sign, signature = _expected(
        request, principal, region, signed, host, timestamp
    )
    if not hmac.compare_digest(signature, params["Signature"]):
        return Refusal(
            "InvalidSignatureException",
            f"{SIGNATURE_MISMATCH}\n\nThe Canonical String for this request should have been\n"
            f"'{canonical}'\n\nThe String-to-Sign should have been\n'{string_to_sign}'\n",
        )
    token = request.headers.get("X-Amz-Security-Token")
    if principal.session_token is not None and token != principal.session_token:
        return Refusal("UnrecognizedClientException", INVALID_TOKEN)
    if principal.in_iam and principal.session_token is None and token:
        return Refusal("UnrecognizedClientException", INVALID_TOKEN)
    return principal
