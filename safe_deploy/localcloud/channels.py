"""Approval channels in the local cloud: Slack's incoming webhook and SES email land in the outbox.

- **Slack**: the stack gets a webhook secret (``SlackWebhookSecretArn``) whose URL is served by
  the local API (``/_local/slack/webhook/...``); every message posted there is written to
  ``outbox/slack/NNNN.json``, and so are the ``response_url`` updates the approval API posts after
  a button click (``/_local/slack/response/...``). A Slack signing secret
  (``SlackSigningSecretArn``) turns the interactivity endpoint on; ``signing_secret`` is what a
  test signs callbacks with, as Slack would. ``slack_failure`` makes the webhook answer an error,
  as a revoked webhook does.
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

LOCAL_SENDER = "safe-deploy@example.com"
LOCAL_REVIEWERS = "reviewer@example.com,second-reviewer@example.com"
SLACK_PREFIX = "/_local/slack/"

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
            path.write_text(json.dumps({"channel": channel, **record}, indent=2))
        self.feed.emit("outbox", f"{channel}: {summary}", record=record)
        return path


class LocalChannels:
    def __init__(self, outbox: Outbox) -> None:
        self.outbox = outbox
        self.signing_secret = secrets.token_hex(32)
        self.slack_failure: tuple[int, str] | None = None  # (status, body) the webhook answers
        self.webhook_url = ""

    def configure(
        self, client: Callable[[str], Any], api: LocalApi, overrides: dict[str, str]
    ) -> dict[str, str]:
        """Creates the channels' secrets and routes; returns the stack parameters that turn the
        channels on (``overrides``, the caller's, win)."""
        api.local_routes[SLACK_PREFIX] = self._slack
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
        parameters = {
            "SlackWebhookSecretArn": webhook,
            "SlackSigningSecretArn": signing,
            "SesSenderAddress": LOCAL_SENDER,
            "ApprovalEmailRecipients": LOCAL_REVIEWERS,
        } | overrides
        sender = parameters["SesSenderAddress"]
        if sender:
            client("ses").verify_email_identity(EmailAddress=sender)
        install(self.outbox)
        return parameters

    def _slack(self, request: Request) -> Response:
        path = request.path.removeprefix(SLACK_PREFIX)
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
