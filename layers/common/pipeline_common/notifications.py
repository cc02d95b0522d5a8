"""What reviewers are told, and the channels that tell them: Slack, email (SES) and SNS.

One ``Notification`` is rendered per channel: Block Kit for Slack's incoming webhook, HTML and
plain text for email, plain text for SNS. Links in it are the signed approval and plot links;
nothing here ever sees the task token.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from html import escape as html_escape
from typing import TYPE_CHECKING, Any

from pipeline_common.slack import button_value, post_json
from pipeline_common.slack import escape as slack_escape

if TYPE_CHECKING:
    from mypy_boto3_ses import SESClient
    from mypy_boto3_sns import SNSClient

REQUEST = "request"
EXPIRED = "expired"


@dataclass(frozen=True)
class Notification:
    kind: str  # REQUEST or EXPIRED
    approval_id: str
    model_id: str
    subject: str
    headline: str
    facts: tuple[tuple[str, str], ...]
    approval_url: str | None = None
    plot_url: str | None = None
    expires_at: int | None = None
    decide_in_slack: bool = False  # interactivity on: Slack buttons that decide as the user


Channel = Callable[[Notification], None]


def when(epoch: int | None) -> str:
    if epoch is None:
        return "-"
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%d %H:%M UTC")


def duration(seconds: float) -> str:
    seconds = int(seconds)
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds >= size and seconds % size == 0:
            count = seconds // size
            return f"{count} {unit}{'s' if count != 1 else ''}"
    return f"{seconds} seconds"


# ---------------------------------------------------------------- renderers
def as_text(n: Notification) -> str:
    lines = [n.headline, ""]
    lines += [f"{k}: {v}" for k, v in n.facts]
    if n.approval_url:
        lines += [
            "",
            f"Review and decide: {n.approval_url}",
            f"The link works until {when(n.expires_at)}; opening it decides nothing, only the "
            "page's Approve or Reject button does. No decision by then rejects the model.",
        ]
    if n.plot_url:
        lines += ["", f"Actual vs predicted plot: {n.plot_url}"]
    return "\n".join(lines) + "\n"


def as_html(n: Notification) -> str:
    rows = "".join(
        f'<tr><th align="left" style="padding:4px 12px 4px 0">{html_escape(k)}</th>'
        f'<td style="padding:4px 0">{html_escape(v)}</td></tr>'
        for k, v in n.facts
    )
    parts = [
        '<!doctype html><html><body style="font-family:system-ui,sans-serif;color:#1b1f24">',
        f"<h2>{html_escape(n.subject)}</h2>",
        f"<p>{html_escape(n.headline)}</p>",
        f"<table>{rows}</table>",
    ]
    if n.plot_url:
        parts.append(
            f'<p><a href="{html_escape(n.plot_url)}">Actual vs predicted plot (test split)</a></p>'
        )
    if n.approval_url:
        button = (
            "display:inline-block;padding:10px 20px;margin-right:8px;border-radius:4px;"
            "color:#fff;text-decoration:none;background:"
        )
        url = html_escape(n.approval_url)
        parts += [
            f'<p><a href="{url}" style="{button}#1a7f37">Review and approve</a>'
            f'<a href="{url}" style="{button}#cf222e">Review and reject</a></p>',
            f'<p style="color:#57606a">The link works until {html_escape(when(n.expires_at))}. '
            "Opening it decides nothing: the page shows the evidence and asks you to confirm. "
            "No decision by then rejects the model.</p>",
        ]
    parts.append("</body></html>")
    return "".join(parts)


def as_slack(n: Notification) -> dict[str, Any]:
    """An incoming-webhook message: Block Kit, with a plain-text fallback."""
    blocks: list[dict[str, Any]] = [
        # plain_text is not parsed for mentions, but escaped all the same: the rule is one rule.
        {"type": "header", "text": {"type": "plain_text", "text": slack_escape(n.subject)[:150]}},
        {"type": "section", "text": {"type": "mrkdwn", "text": slack_escape(n.headline)}},
        {
            "type": "section",
            "fields": [
                {"type": "mrkdwn", "text": f"*{slack_escape(k)}*\n{slack_escape(v)}"}
                for k, v in n.facts[:10]
            ],
        },
    ]
    if n.plot_url:
        blocks.append(
            {
                "type": "section",
                "text": {
                    "type": "mrkdwn",
                    "text": f"<{slack_escape(n.plot_url)}|Actual vs predicted fares on the test "
                    "split (plot)>",
                },
            }
        )
    if n.approval_url:
        # Link buttons: they open the confirmation page; Slack's click report decides nothing.
        blocks.append(
            {
                "type": "actions",
                "block_id": f"review-{n.approval_id}"[:255],
                "elements": [
                    _button(
                        "Approve…",
                        "primary",
                        url=n.approval_url,
                        action_id="open-approve",
                        value=button_value("review", n.approval_id),
                    ),
                    _button(
                        "Reject…",
                        "danger",
                        url=n.approval_url,
                        action_id="open-reject",
                        value=button_value("review", n.approval_id),
                    ),
                ],
            }
        )
        if n.decide_in_slack:
            blocks.append(
                {
                    "type": "actions",
                    "block_id": f"decide-{n.approval_id}"[:255],
                    "elements": [
                        _button(
                            "Approve in Slack",
                            "primary",
                            action_id="approve",
                            value=button_value("approve", n.approval_id),
                            confirm=f"Promote {n.model_id} to production (canary first)?",
                        ),
                        _button(
                            "Reject in Slack",
                            "danger",
                            action_id="reject",
                            value=button_value("reject", n.approval_id),
                            confirm=f"Reject {n.model_id}?",
                        ),
                    ],
                }
            )
        blocks.append(
            {
                "type": "context",
                "elements": [
                    {
                        "type": "mrkdwn",
                        "text": f"The link works until {when(n.expires_at)}; "
                        "no decision by then rejects the model.",
                    }
                ],
            }
        )
    # The fallback text is mrkdwn too (notifications and clients without blocks show it).
    return {"text": slack_escape(f"{n.subject}\n{n.headline}"), "blocks": blocks}


def _button(
    text: str,
    style: str,
    *,
    action_id: str,
    value: str,
    url: str | None = None,
    confirm: str | None = None,
) -> dict[str, Any]:
    button: dict[str, Any] = {
        "type": "button",
        "text": {"type": "plain_text", "text": text},
        "style": style,
        "action_id": action_id,
        "value": value,
    }
    if url:
        button["url"] = url
    if confirm:
        button["confirm"] = {
            "title": {"type": "plain_text", "text": "Are you sure?"},
            "text": {"type": "plain_text", "text": slack_escape(confirm)[:300]},
            "confirm": {"type": "plain_text", "text": "Yes"},
            "deny": {"type": "plain_text", "text": "Cancel"},
        }
    return button


# ---------------------------------------------------------------- channels
def sns_channel(sns: SNSClient, topic_arn: str) -> Channel:
    def send(n: Notification) -> None:
        sns.publish(TopicArn=topic_arn, Subject=n.subject[:100], Message=as_text(n))

    return send


def slack_channel(webhook_url: Callable[[], str]) -> Channel:
    """``webhook_url`` is read when sending, so a secret that cannot be read fails this channel
    only."""

    def send(n: Notification) -> None:
        post_json(webhook_url(), as_slack(n))

    return send


def email_channel(ses: SESClient, sender: str, recipients: Sequence[str]) -> Channel:
    def send(n: Notification) -> None:
        ses.send_email(
            Source=sender,
            Destination={"ToAddresses": list(recipients)},
            Message={
                "Subject": {"Data": n.subject, "Charset": "UTF-8"},
                "Body": {
                    "Text": {"Data": as_text(n), "Charset": "UTF-8"},
                    "Html": {"Data": as_html(n), "Charset": "UTF-8"},
                },
            },
        )

    return send


def recipients_of(value: str) -> list[str]:
    return [r.strip() for r in value.split(",") if r.strip()]
