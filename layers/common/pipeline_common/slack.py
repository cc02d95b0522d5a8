"""Slack: signed interactivity requests, button payloads, who may decide, and posting messages.

Slack signs every interactivity request: ``X-Slack-Signature: v0=HMAC-SHA256(signing secret,
"v0:{X-Slack-Request-Timestamp}:{raw body}")``. A request is honoured only with that signature and
a timestamp within five minutes, so a captured callback cannot be replayed later (and a replay
inside the window meets the approval's single-use write). A button carries no secret: its value
is ``{decision}:{approval id}``; the signature is what proves that Slack, on behalf of the user it
names, sent it. Whether that user may decide is the stack's to say: listed user ids and the
members of a user group (``usergroups.users.list``), in one workspace only.

Everything a person chose (names, reasons) is escaped for mrkdwn before it reaches a message, so
``<!channel>`` in a name is shown, not sent as a mention.
"""

from __future__ import annotations

import hashlib
import hmac
import http.client
import json
import re
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

from pipeline_common.approvals import APPROVAL_ID, printable

WINDOW_SECONDS = 300
DECISIONS = ("approve", "reject")
REVIEW = "review"  # the link buttons: Slack reports the click, nothing is decided
SLACK_ID = re.compile(r"[A-Z0-9]{1,32}", re.ASCII)  # U…/W… users, T…/E… workspaces, S… groups
BODY_LIMIT = 256 * 1024  # a block_actions payload carries the whole message it came from
MEMBERS_CACHE_SECONDS = 60.0
API_TIMEOUT = 2.0  # Slack waits 3 s for the answer to a click


class SlackRefused(Exception):
    """A request that is not provably from Slack, or not recent, or not an approver's."""

    status = 401

    def __init__(self, title: str, detail: str) -> None:
        self.title = title
        self.detail = detail
        super().__init__(f"{title}: {detail}")


class NotAnApprover(SlackRefused):
    status = 403


class SlackWebhookError(RuntimeError):
    """The incoming webhook did not take the message (the webhook URL is never in the text)."""


class SlackApiError(RuntimeError):
    """A Web API method failed (the token is never in the text)."""


# ---------------------------------------------------------------- signed requests
def request_signature(signing_secret: str, timestamp: str, body: bytes) -> str:
    base = b"v0:" + timestamp.encode("utf-8", errors="replace") + b":" + body
    return "v0=" + hmac.new(signing_secret.encode(), base, hashlib.sha256).hexdigest()


def verify_request_with(
    body: bytes,
    timestamp: str | None,
    signature: str | None,
    now: float,
    verified: Callable[[Callable[[str], bool]], bool],
    window: int = WINDOW_SECONDS,
) -> None:
    """Raises ``SlackRefused`` unless Slack signed this body within the last ``window`` seconds;
    ``verified`` says whether the signing secret (``SecretReader.verified``) accepts it."""
    if not timestamp or not signature:
        raise SlackRefused(
            "Not signed by Slack", "X-Slack-Signature and X-Slack-Request-Timestamp are required."
        )
    if not re.fullmatch(r"[0-9]{1,12}", timestamp, re.ASCII):
        raise SlackRefused("Not signed by Slack", "the request timestamp is not a time.")
    sent = int(timestamp)
    if abs(now - sent) > window:
        raise SlackRefused(
            "Stale Slack request",
            f"the request is {int(abs(now - sent))} s away from now; Slack requests older than "
            f"{window // 60} minutes are refused, so a captured request cannot be replayed.",
        )
    claimed = signature.encode("utf-8", errors="replace")

    def signed_with(secret: str) -> bool:
        return hmac.compare_digest(request_signature(secret, timestamp, body).encode(), claimed)

    if not verified(signed_with):
        raise SlackRefused("Not signed by Slack", "the X-Slack-Signature does not match the body.")


def verify_request(
    body: bytes,
    timestamp: str | None,
    signature: str | None,
    signing_secret: str,
    now: float,
    window: int = WINDOW_SECONDS,
) -> None:
    """``verify_request_with`` one known signing secret."""
    verify_request_with(body, timestamp, signature, now, lambda ok: ok(signing_secret), window)


# ---------------------------------------------------------------- button clicks
@dataclass(frozen=True)
class ButtonClick:
    """A Slack user pressed one of the approval message's buttons."""

    action: str  # "approve", "reject" or "review"
    approval_id: str
    user_id: str
    user_name: str
    team_id: str
    response_url: str | None

    @property
    def decides(self) -> bool:
        return self.action in DECISIONS

    @property
    def approver(self) -> str:
        return f"{self.user_name} (Slack user {self.user_id}, team {self.team_id})"


def button_value(action: str, approval_id: str) -> str:
    return f"{action}:{approval_id}"


def _object(value: Any, what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ValueError(f"{what} is not an object")
    return value


def _slack_id(value: Any, what: str) -> str:
    if not isinstance(value, str) or not SLACK_ID.fullmatch(value):
        raise ValueError(f"{what} is not a Slack id")
    return value


def _response_url(value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or len(value) > 2048 or not value.isprintable() or " " in value:
        raise ValueError("response_url is not a URL")
    parts = urlsplit(value)
    if parts.scheme not in ("https", "http") or not parts.netloc:
        raise ValueError("response_url is not an http(s) URL")
    return value


def parse_click(body: bytes) -> ButtonClick:
    """The click in an interactivity request (``payload=<json>``, form-encoded).

    Raises ``ValueError`` for anything else: Slack signs what it sends, but a request it signed
    may still not be one of our buttons' clicks.
    """
    try:
        form = parse_qs(body.decode("utf-8"), max_num_fields=20, errors="strict")
        payload = _object(json.loads(form["payload"][0]), "the payload")
    except (KeyError, ValueError, RecursionError) as exc:  # UnicodeDecodeError is a ValueError
        raise ValueError(f"not an approval button click: {type(exc).__name__}") from None
    try:
        if payload.get("type") != "block_actions":
            raise ValueError("unsupported interaction type")
        actions = payload.get("actions")
        if not isinstance(actions, list) or not actions:
            raise ValueError("no action")
        value = _object(actions[0], "the action").get("value")
        action, _, approval_id = (value if isinstance(value, str) else "").partition(":")
        if action not in (*DECISIONS, REVIEW) or not APPROVAL_ID.fullmatch(approval_id):
            raise ValueError("the button is not one of an approval message's")
        user = _object(payload.get("user"), "the user")
        team = payload.get("team") or {}
        user_id = _slack_id(user.get("id"), "the user id")
        team_id = _slack_id(_object(team, "the team").get("id") or user.get("team_id"), "team id")
        name = user.get("username") or user.get("name")
        return ButtonClick(
            action=action,
            approval_id=approval_id,
            user_id=user_id,
            user_name=(printable(name) if isinstance(name, str) else "") or user_id,
            team_id=team_id,
            response_url=_response_url(payload.get("response_url")),
        )
    except ValueError as exc:
        raise ValueError(f"not an approval button click: {exc}") from None


# ---------------------------------------------------------------- who may decide
class Approvers:
    """Who may decide in Slack: the listed users and the members of a user group, in one
    workspace. With neither, nobody does (the Review buttons still open the page)."""

    def __init__(
        self,
        team_id: str,
        user_ids: Iterable[str] = (),
        group: str = "",
        members: Callable[[str], frozenset[str]] | None = None,
        cache_seconds: float = MEMBERS_CACHE_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.team_id = team_id
        self.user_ids = frozenset(user_ids)
        self.group = group
        self.members = members
        self.cache_seconds = cache_seconds
        self.clock = clock
        self._cached: tuple[float, frozenset[str]] | None = None
        self._lock = threading.Lock()

    def check(self, click: ButtonClick) -> None:
        """Raises ``NotAnApprover`` unless the click's user may decide."""
        if not self.user_ids and not self.group:
            raise NotAnApprover(
                "Nobody decides in Slack here",
                "this pipeline takes decisions on its approval page only: press Approve… or "
                "Reject… to open it. Nothing was decided.",
            )
        if click.team_id != self.team_id:
            raise NotAnApprover(
                "You are not an approver of this pipeline",
                "the click came from another Slack workspace. Nothing was decided.",
            )
        if click.user_id in self.user_ids:
            return
        if self.group and click.user_id in self._group_members():
            return
        raise NotAnApprover(
            "You are not an approver of this pipeline",
            "your Slack account is not one of its approvers, so nothing was decided.",
        )

    def _group_members(self) -> frozenset[str]:
        with self._lock:
            cached = self._cached
        if cached is not None and self.clock() - cached[0] < self.cache_seconds:
            return cached[1]
        if self.members is None:
            raise NotAnApprover("Approvers could not be checked", "no way to list the group.")
        try:
            found = self.members(self.group)
        except SlackApiError as error:
            raise NotAnApprover(
                "Approvers could not be checked",
                f"Slack did not list the approver group ({error}); nothing was decided. "
                "Try again, or decide on the approval page.",
            ) from None
        with self._lock:
            self._cached = (self.clock(), found)
        return found


def usergroup_members(
    api_url: str, token: str, group: str, timeout: float = API_TIMEOUT
) -> frozenset[str]:
    """``usergroups.users.list``: the user ids in a user group (scope ``usergroups:read``)."""
    url = f"{api_url.rstrip('/')}/usergroups.users.list?{urlencode({'usergroup': group})}"
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"})
    try:
        # The URL is the stack's setting, never a caller's.
        with urllib.request.urlopen(request, timeout=timeout) as response:
            answer = json.loads(response.read(1_000_000))
    except urllib.error.HTTPError as exc:
        raise SlackApiError(f"usergroups.users.list: HTTP {exc.code}") from None
    except (urllib.error.URLError, OSError, http.client.HTTPException, ValueError) as exc:
        raise SlackApiError(f"usergroups.users.list: {type(exc).__name__}") from None
    if not isinstance(answer, dict) or answer.get("ok") is not True:
        error = answer.get("error") if isinstance(answer, dict) else None
        raise SlackApiError(f"usergroups.users.list: {str(error or 'not ok')[:100]}")
    users = answer.get("users")
    if not isinstance(users, list):
        raise SlackApiError("usergroups.users.list: no user list")
    return frozenset(u for u in users if isinstance(u, str))


# ---------------------------------------------------------------- messages
def escape(text: str) -> str:
    """Slack mrkdwn: &, < and > are control characters."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def ephemeral(text: str) -> dict[str, Any]:
    """A note only the clicking user sees; the original message stays."""
    return {"response_type": "ephemeral", "replace_original": False, "text": escape(text)}


def decided_update(model_id: str, status: str, user_id: str) -> dict[str, Any]:
    """The approval message, replaced once decided (``user_id`` is a checked Slack id)."""
    text = f"Fare model {escape(model_id)} was {escape(status.lower())} by <@{user_id}> in Slack."
    return {"replace_original": True, "text": text}


def post_json(url: str, body: dict[str, Any], timeout: float = 10.0) -> None:
    """POST a message to a Slack webhook or ``response_url``; errors never contain the URL."""
    if not url.startswith(("https://", "http://")):
        raise SlackWebhookError("Slack could not be reached: not an http(s) URL")
    try:
        request = urllib.request.Request(
            url,
            data=json.dumps(body).encode(),
            headers={"Content-Type": "application/json; charset=utf-8"},
            method="POST",
        )
        # The URL comes from a secret or a Slack-signed payload, never from a caller.
        with urllib.request.urlopen(request, timeout=timeout) as response:
            response.read()
    except urllib.error.HTTPError as exc:
        detail = exc.read()[:200].decode("utf-8", errors="replace")
        raise SlackWebhookError(f"Slack answered HTTP {exc.code}: {detail}") from None
    except (urllib.error.URLError, OSError, http.client.HTTPException, ValueError) as exc:
        reason = getattr(exc, "reason", "") if isinstance(exc, urllib.error.URLError) else ""
        raise SlackWebhookError(
            f"Slack could not be reached: {type(exc).__name__}{f': {reason}' if reason else ''}"
        ) from None
