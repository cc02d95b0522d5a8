"""Typed settings, validated once from a function's environment.

``from_env`` takes the mapping to read, so tests and the local cloud hand over exactly what the
template gives each function; field names are the lower-case environment variable names.

The predict function's settings are :class:`pipeline_common.serving.PredictSettings`, a plain
dataclass: every canary's new instances import that function, and pydantic is not imported there.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Self

from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator

_SLACK_ID = re.compile(r"[A-Z0-9]{1,32}", re.ASCII)


class SettingsError(RuntimeError):
    """A function was deployed without a setting it needs, or with one it cannot use."""


class Settings(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> Self:
        try:
            return cls.model_validate({k.lower(): v for k, v in environ.items()})
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in e['loc']).upper()}: {e['msg']}" for e in exc.errors()
            )
            raise SettingsError(f"{cls.__name__}: {problems}") from None


class StartPipelineSettings(Settings):
    training_state_machine_arn: str
    data_bucket: str
    name_prefix: str = "fare"


class EvaluateSettings(Settings):
    champion_parameter: str
    artifact_bucket: str  # the Compare job's comparison.json
    validation_rmse_ceiling: float
    champion_margin_percent: float
    fare_shift_limit_percent: float


class TestDevSettings(Settings):
    artifact_bucket: str
    max_test_rows: int = 5000
    batch_rows: int = 500


class HookSettings(Settings):
    production_endpoint_parameter: str
    capture_bucket: str
    release_table: str = ""  # the promotion lock: whose green a promotion may bind to
    min_captured_requests: int = 20
    # SageMaker writes capture files every few minutes: the post-traffic hook waits for them.
    capture_wait_seconds: float = 240.0
    capture_poll_seconds: float = 15.0


class DriftSettings(Settings):
    topic_arn: str


class ReleaseCheckSettings(Settings):
    """The stack is enough: its status, and its outputs lead to the predict function and the
    production record (as they lead the CLI)."""

    stack_name: str


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


class ApprovalApiSettings(Settings):
    """Slack interactivity is on with a signing secret; then clicks count only from one workspace
    (``slack_team_id``), and only from the listed users or the members of a user group (read with
    the bot token); with neither, nobody decides in Slack."""

    approvals_table: str
    signing_secret_arn: str
    artifact_bucket: str
    slack_signing_secret_arn: str = ""
    slack_team_id: str = Field(default="", validate_default=True)
    slack_approver_ids: tuple[str, ...] = ()  # SLACK_APPROVER_IDS: comma-separated user ids
    slack_approver_group: str = ""
    slack_bot_token_secret_arn: str = Field(default="", validate_default=True)
    slack_api_url: str = "https://slack.com/api"

    @field_validator("slack_approver_ids", mode="before")
    @classmethod
    def _comma_separated(cls, value: object) -> object:
        if isinstance(value, str):
            return tuple(v.strip() for v in value.split(",") if v.strip())
        return value

    @field_validator("slack_approver_ids")
    @classmethod
    def _user_ids(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for user_id in value:
            if not _SLACK_ID.fullmatch(user_id):
                raise ValueError(f"{user_id!r} is not a Slack user id (like U024BE7LH)")
        return value

    @field_validator("slack_team_id", "slack_approver_group")
    @classmethod
    def _slack_id(cls, value: str, info: ValidationInfo) -> str:
        if value and not _SLACK_ID.fullmatch(value):
            raise ValueError(f"{value!r} is not a Slack id")
        interactive = bool(info.data.get("slack_signing_secret_arn"))
        if info.field_name == "slack_team_id" and interactive and not value:
            raise ValueError("required when Slack interactivity is on (a signing secret)")
        return value

    @field_validator("slack_bot_token_secret_arn")
    @classmethod
    def _token_for_the_group(cls, value: str, info: ValidationInfo) -> str:
        if info.data.get("slack_approver_group") and not value:
            raise ValueError("required to read the members of SLACK_APPROVER_GROUP")
        return value

    @field_validator("slack_api_url")
    @classmethod
    def _web_url(cls, value: str) -> str:
        if not value.startswith(("https://", "http://")):
            raise ValueError("an http(s) URL, like https://slack.com/api")
        return value
