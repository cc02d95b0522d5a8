"""The operator commands: the same against a deployed stack (``--stack``) and the local cloud."""

from __future__ import annotations

import click

from safe_deploy.cli_local import local
from safe_deploy.cli_logs import logs
from safe_deploy.cli_models import models, rollback
from safe_deploy.cli_release import approve, follow, reject, rotate_approval_key, upload_data
from safe_deploy.cli_status import drift_report, status
from safe_deploy.cli_traffic import traffic


def register(main: click.Group) -> None:
    main.add_command(local)
    for command in (
        upload_data,
        status,
        follow,
        approve,
        reject,
        models,
        rollback,
        rotate_approval_key,
        traffic,
        drift_report,
        logs,
    ):
        main.add_command(command)
