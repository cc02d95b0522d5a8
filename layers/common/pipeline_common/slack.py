"""Slack: signed interactivity requests, button payloads, and the incoming webhook.

Slack signs every interactivity request: ``X-Slack-Signature: v0=HMAC-SHA256(signing secret,
"v0:{X-Slack-Request-Timestamp}:{raw body}")``. A request is honoured only with that signature and
a timestamp within five minutes, so a captured callback cannot be replayed later (and a replay
inside the window meets the approval's single-use write). A button carries no secret: its value
is ``{decision}:{approval id}``; the signature is what proves that Slack, on behalf of the user it
names, sent it.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs

WINDOW_SECONDS = 300
DECISIONS = ("approve", "reject")
REVIEW = "review"  # the link buttons: Slack reports the click, nothing is decided


class SlackRefused(Exception):
    """A request that is not provably from Slack, or not recent."""

    status = 401

    def __init__(self, title: str, detail: str) -> None:
        self.title = title
        self.detail = detail
        super().__init__(f"{title}: {detail}")


class SlackWebhookError(RuntimeError):
    """The incoming webhook did not take the message (the webhook URL is never in the text)."""


def request_signature(signing_secret: str, timestamp: str, body: bytes) -> str:
    base = b"v0:" + timestamp.encode() + b":" + body
    return "v0=" + hmac.new(signing_secret.encode(), base, hashlib.sha256).hexdigest()


def verify_request(
    body: bytes,
    timestamp: str | None,
    signature: str | None,
    signing_secret: str,
    now: float,
    window: int = WINDOW_SECONDS,
) -> None:
    """Raises ``SlackRefused`` unless Slack signed this body within the last ``window`` seconds."""
    if not timestamp or not signature:
        raise SlackRefused(
            "Not signed by Slack", "X-Slack-Signature and X-Slack-Request-Timestamp are required."
        )
    try:
        sent = int(timestamp)
    except ValueError:
        raise SlackRefused("Not signed by Slack", "the request timestamp is not a time.") from None
    if abs(now - sent) > window:
        raise SlackRefused(
            "Stale Slack request",
            f"the request is {int(abs(now - sent))} s away from now; Slack requests older than "
            f"{window // 60} minutes are refused, so a captured request cannot be replayed.",
        )
    if not hmac.compare_digest(request_signature(signing_secret, timestamp, body), signature):
        raise SlackRefused("Not signed by Slack", "the X-Slack-Signature does not match the body.")


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


def parse_click(body: bytes) -> ButtonClick:
    """The click in an interactivity request (``payload=<json>``, form-encoded)."""
    try:
        form = parse_qs(body.decode("utf-8"), strict_parsing=False)
        payload: dict[str, Any] = json.loads(form["payload"][0])
        if payload.get("type") != "block_actions" or not payload.get("actions"):
            raise ValueError(f"unsupported interaction type {payload.get('type')!r}")
        action, _, approval_id = str(payload["actions"][0].get("value", "")).partition(":")
        if action not in (*DECISIONS, REVIEW) or not approval_id:
            raise ValueError("the button is not one of an approval message's")
        user = payload.get("user") or {}
        team = payload.get("team") or {}
        return ButtonClick(
            action=action,
            approval_id=approval_id,
            user_id=str(user.get("id") or "unknown"),
            user_name=str(user.get("username") or user.get("name") or user.get("id") or "?"),
            team_id=str(team.get("id") or user.get("team_id") or "unknown"),
            response_url=payload.get("response_url"),
        )
    except (KeyError, IndexError, TypeError, ValueError, UnicodeDecodeError) as exc:
        raise ValueError(f"not an approval button click: {exc}") from None


def post_json(url: str, body: dict[str, Any], timeout: float = 10.0) -> None:
    """POST a message to a Slack webhook or ``response_url``; errors never contain the URL."""
    request = urllib.request.Request(
        url,
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json; charset=utf-8"},
        method="POST",
    )
    try:
        # The URL comes from a secret or a Slack-signed payload, never from a caller.
        with urllib.request.urlopen(request, timeout=timeout) as response:
            response.read()
    except urllib.error.HTTPError as exc:
        detail = exc.read()[:200].decode("utf-8", errors="replace")
        raise SlackWebhookError(f"Slack answered HTTP {exc.code}: {detail}") from None
    except (urllib.error.URLError, TimeoutError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise SlackWebhookError(
            f"Slack could not be reached: {type(exc).__name__}: {reason}"
        ) from None


def escape(text: str) -> str:
    """Slack mrkdwn: &, < and > are control characters."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
