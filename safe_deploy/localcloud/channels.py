"""Approval channels in the local cloud: Slack's incoming webhook and SES email land in the outbox.

- **Slack**: the stack gets a webhook secret (``SlackWebhookSecretArn``) whose URL is served by
  the local API (``/_local/slack/webhook/...``); every message posted there is written to
  ``outbox/slack/NNNN.json``, and so are the ``response_url`` updates the approval API posts after
  a button click (``/_local/slack/response/...``). A Slack signing secret
  (``SlackSigningSecretArn``) turns the interactivity endpoint on; ``signing_secret`` is what a
  test signs callbacks with, as Slack would. ``slack_failure`` makes the webhook answer an error,
  as a revoked webhook does.
- **Slack approvers**: clicks count from workspace ``T0LOCAL`` only, from ``LOCAL_APPROVER`` and
  from the members of the user group ``LOCAL_APPROVER_GROUP``, which the approval API reads with
  Slack's Web API method ``usergroups.users.list`` (``/_local/slack/api/...``, a bot token from a
  secret, answered as Slack answers: ``{"ok": false, "error": "invalid_auth"}`` without the token).
  ``slack_api.user_groups`` holds the members (``LOCAL_GROUP_MEMBERS`` to begin with).
- **Email**: moto's SES accepts mail only from a verified identity, as SES does: the local cloud
  verifies the sender (on AWS that is a one-time manual step) and writes each sent email, text and
  HTML, to ``outbox/email/NNNN.json``.

Parameters the caller overrides win, so a test can turn a channel off (``""``).
"""

from __future__ import annotations

import json
import secrets
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from moto.ses.responses import EmailResponse
from werkzeug.wrappers import Request, Response

from safe_deploy.localcloud.api import LocalApi
from safe_deploy.localcloud.patching import replace
from safe_deploy.localcloud.state import ActivityFeed
from safe_deploy.localcloud.workdir import write_whole

LOCAL_SENDER = "safe-deploy@example.com"
LOCAL_REVIEWERS = "reviewer@example.com,second-reviewer@example.com"
SLACK_PREFIX = "/_local/slack/"
LOCAL_TEAM = "T0LOCAL"
LOCAL_APPROVER = "U0LOCALLEAD"  # listed by id (SlackApproverIds)
LOCAL_APPROVER_GROUP = "S0LOCALAPPROVERS"
LOCAL_GROUP_MEMBERS = ("U024BE7LH",)  # approvers as members of the group

_send_email = EmailResponse.send_email


class Outbox:
    """Numbered JSON files per channel, ``outbox/<channel>/NNNN.json``."""

    def __init__(self, folder: Path, feed: ActivityFeed) -> None:
        self.folder = folder
        self.feed = feed
        self._lock = threading.Lock()
        self._counts: dict[str, int] = {}

    def write(self, channel: str, record: dict[str, Any], summary: str) -> Path:
        with self._lock:
            self._counts[channel] = self._counts.get(channel, 0) + 1
            folder = self.folder / channel
            folder.mkdir(parents=True, exist_ok=True)
            path = folder / f"{self._counts[channel]:04d}.json"
            write_whole(path, json.dumps({"channel": channel, **record}, indent=2))
        self.feed.emit("outbox", f"{channel}: {summary}", record=record)
        return path


class LocalSlackApi:
    """The Slack Web API methods the stack calls: ``usergroups.users.list``."""

    def __init__(self) -> None:
        self.bot_token = f"xoxb-local-{secrets.token_hex(12)}"
        self.user_groups: dict[str, list[str]] = {LOCAL_APPROVER_GROUP: list(LOCAL_GROUP_MEMBERS)}

    def handle(self, method: str, request: Request) -> Response:
        """A Web API call: a token (``Authorization: Bearer`` or a ``token`` argument), arguments
        in the query or a form body; Slack answers errors with HTTP 200 and ``"ok": false``."""
        arguments = {**request.args.to_dict(), **request.form.to_dict()}
        bearer = request.headers.get("Authorization", "").removeprefix("Bearer ").strip()
        token = bearer or arguments.get("token", "")
        if not token:
            return _slack_answer({"ok": False, "error": "not_authed"})
        if not secrets.compare_digest(token.encode(), self.bot_token.encode()):
            return _slack_answer({"ok": False, "error": "invalid_auth"})
        if method != "usergroups.users.list":
            return _slack_answer({"ok": False, "error": "unknown_method"}, status=404)
        group = arguments.get("usergroup", "")
        if not group:
            return _slack_answer({"ok": False, "error": "invalid_arguments"})
        if group not in self.user_groups:
            return _slack_answer({"ok": False, "error": "no_such_subteam"})
        return _slack_answer({"ok": True, "users": list(self.user_groups[group])})


def _slack_answer(body: dict[str, Any], status: int = 200) -> Response:
    return Response(json.dumps(body), status=status, content_type="application/json")


class LocalChannels:
    def __init__(self, outbox: Outbox) -> None:
        self.outbox = outbox
        self.signing_secret = secrets.token_hex(32)
        self.slack_failure: tuple[int, str] | None = None  # (status, body) the webhook answers
        self.webhook_url = ""
        self.slack_api = LocalSlackApi()

    def configure(
        self, client: Callable[[str], Any], api: LocalApi, overrides: dict[str, str]
    ) -> dict[str, str]:
        """Creates the channels' secrets and routes; returns the stack parameters that turn the
        channels on, those the template declares (``overrides``, the caller's, win)."""
        api.local_routes[SLACK_PREFIX] = self.handle_slack
        secret_part = secrets.token_hex(12)  # like the secret last part of a real webhook URL
        self.webhook_url = f"{api.origin}{SLACK_PREFIX}webhook/T0LOCAL/B0LOCAL/{secret_part}"
        manager = client("secretsmanager")
        webhook = manager.create_secret(
            Name="local-slack-webhook-url",
            Description="Slack incoming-webhook URL (served by the local API)",
            SecretString=self.webhook_url,
        )["ARN"]
        signing = manager.create_secret(
            Name="local-slack-signing-secret",
            Description="Slack app signing secret (local)",
            SecretString=self.signing_secret,
        )["ARN"]
        bot_token = manager.create_secret(
            Name="local-slack-bot-token",
            Description="Slack bot token (usergroups:read), for the local Slack Web API",
            SecretString=self.slack_api.bot_token,
        )["ARN"]
        parameters = {
            "SlackWebhookSecretArn": webhook,
            "SlackSigningSecretArn": signing,
            "SlackTeamId": LOCAL_TEAM,
            "SlackApproverIds": LOCAL_APPROVER,
            "SlackApproverGroup": LOCAL_APPROVER_GROUP,
            "SlackBotTokenSecretArn": bot_token,
            "SesSenderAddress": LOCAL_SENDER,
            "ApprovalEmailRecipients": LOCAL_REVIEWERS,
        } | overrides
        sender = parameters.get("SesSenderAddress")
        if sender:
            client("ses").verify_email_identity(EmailAddress=sender)
        install(self.outbox)
        return parameters

    def handle_slack(self, request: Request) -> Response:
        """Everything under ``/_local/slack/``: the Web API, the webhook, ``response_url``s."""
        path = request.path.removeprefix(SLACK_PREFIX)
        if path.startswith("api/"):
            return self.slack_api.handle(path.removeprefix("api/"), request)
        if request.method != "POST":
            return Response("invalid_method", status=405)
        if path.startswith("webhook/") and self.slack_failure is not None:
            status, body = self.slack_failure
            return Response(body, status=status, content_type="text/plain")
        try:
            message = json.loads(request.get_data() or b"{}")
        except ValueError:
            return Response("invalid_payload", status=400, content_type="text/plain")
        kind = "webhook" if path.startswith("webhook/") else "response_url"
        if kind == "webhook" and not ("text" in message or "blocks" in message):
            return Response("no_text", status=400, content_type="text/plain")
        text = str(message.get("text", "")).splitlines()
        self.outbox.write("slack", {"via": kind, "message": message}, text[0] if text else "")
        return Response("ok", status=200, content_type="text/plain")


def install(outbox: Outbox) -> None:
    """Every email moto's SES accepts is also written to the outbox (moto keeps only one body)."""

    def send_email(self: EmailResponse) -> Any:
        result = _send_email(self)  # raises, as SES does, for an unverified sender
        message = self._get_param("Message") or {}
        body = message.get("Body") or {}
        destination = self._get_param("Destination") or {}
        record = {
            "from": self._get_param("Source"),
            "to": destination.get("ToAddresses", []),
            "cc": destination.get("CcAddresses", []),
            "subject": (message.get("Subject") or {}).get("Data"),
            "text": (body.get("Text") or {}).get("Data"),
            "html": (body.get("Html") or {}).get("Data"),
        }
        outbox.write("email", record, str(record["subject"]))
        return result

    replace(EmailResponse, "send_email", send_email)  # undone when the local cloud stops
