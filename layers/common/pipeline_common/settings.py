"""Typed settings of each function, checked once from its environment
(:mod:`pipeline_common.environment` reads them).

``from_env`` takes the mapping to read, so tests and the local cloud hand over exactly what the
template gives each function; field names are the lower-case environment variable names.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from pipeline_common.environment import Settings, SettingsError
from pipeline_common.window import MAX_MONTHS

__all__ = [
    "ApprovalApiSettings",
    "DriftSettings",
    "EvaluateSettings",
    "HookSettings",
    "ReleaseCheckSettings",
    "RequestApprovalSettings",
    "Settings",
    "SettingsError",
    "StartPipelineSettings",
    "TestDevSettings",
]

_SLACK_ID = re.compile(r"[A-Z0-9]{1,32}", re.ASCII)


@dataclass(frozen=True)
class StartPipelineSettings(Settings):
    training_state_machine_arn: str
    data_bucket: str
    artifact_bucket: str  # a window of several months is copied under runs/<id>/window/
    name_prefix: str = "fare"
    training_window_months: int = 1

    def __post_init__(self) -> None:
        if not 1 <= self.training_window_months <= MAX_MONTHS:
            raise SettingsError(
                f"TRAINING_WINDOW_MONTHS is 1 to {MAX_MONTHS}, not {self.training_window_months}"
            )


@dataclass(frozen=True)
class EvaluateSettings(Settings):
    champion_parameter: str
    artifact_bucket: str  # the Compare job's comparison.json
    validation_rmse_ceiling: float
    champion_margin_percent: float
    fare_shift_limit_percent: float


@dataclass(frozen=True)
class TestDevSettings(Settings):
    artifact_bucket: str
    max_test_rows: int = 5000
    batch_rows: int = 500


@dataclass(frozen=True)
class HookSettings(Settings):
    production_endpoint_parameter: str
    capture_bucket: str
    release_table: str = ""  # the promotion lock: whose green a promotion may bind to
    min_captured_requests: int = 20
    # SageMaker writes capture files every few minutes: the post-traffic hook waits for them.
    capture_wait_seconds: float = 240.0
    capture_poll_seconds: float = 15.0


@dataclass(frozen=True)
class DriftSettings(Settings):
    topic_arn: str


@dataclass(frozen=True)
class ReleaseCheckSettings(Settings):
    """The stack is enough: its status, and its outputs lead to the predict function and the
    production record (as they lead the CLI)."""

    stack_name: str


@dataclass(frozen=True)
class RequestApprovalSettings(Settings):
    """Each channel is on when configured: SNS (``topic_arn``), Slack (a secret holding the
    incoming-webhook URL), email (an SES sender and at least one recipient)."""

    approvals_table: str
    signing_secret_arn: str
    api_base_url: str
    topic_arn: str = ""
    slack_webhook_secret_arn: str = ""
    slack_interactive: bool = False  # the stack has a Slack signing secret: buttons may decide
    ses_sender: str = ""
    approval_email_recipients: str = ""


@dataclass(frozen=True)
class ApprovalApiSettings(Settings):
    """Slack interactivity is on with a signing secret; then clicks count only from one workspace
    (``slack_team_id``), and only from the listed users or the members of a user group (read with
    the bot token); with neither, nobody decides in Slack."""

    approvals_table: str
    signing_secret_arn: str
    artifact_bucket: str
    slack_signing_secret_arn: str = ""
    slack_team_id: str = ""
    slack_approver_ids: tuple[str, ...] = ()  # SLACK_APPROVER_IDS: comma-separated user ids
    slack_approver_group: str = ""
    slack_bot_token_secret_arn: str = ""
    slack_api_url: str = "https://slack.com/api"

    def problems(self) -> list[str]:
        found = [
            f"SLACK_APPROVER_IDS: {user_id!r} is not a Slack user id (like U024BE7LH)"
            for user_id in self.slack_approver_ids
            if not _SLACK_ID.fullmatch(user_id)
        ]
        for name in ("slack_team_id", "slack_approver_group"):
            value = getattr(self, name)
            if value and not _SLACK_ID.fullmatch(value):
                found.append(f"{name.upper()}: {value!r} is not a Slack id")
        if self.slack_signing_secret_arn and not self.slack_team_id:
            found.append(
                "SLACK_TEAM_ID: required when Slack interactivity is on (a signing secret)"
            )
        if self.slack_approver_group and not self.slack_bot_token_secret_arn:
            found.append(
                "SLACK_BOT_TOKEN_SECRET_ARN: required to read the members of SLACK_APPROVER_GROUP"
            )
        if not self.slack_api_url.startswith(("https://", "http://")):
            found.append("SLACK_API_URL: an http(s) URL, like https://slack.com/api")
        return found
