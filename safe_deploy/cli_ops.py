"""The operator commands: the same against a deployed stack (``--stack``) and the local cloud.

Each is named here by where it lives and loaded only when it is run (or help lists it): they
bring boto3 and requests, which the commands on local files (``monitor``, ``data prepare``) never
need, and whose import would be most of such a command's start-up.
"""

from __future__ import annotations

OPERATOR_COMMANDS = {
    "local": "safe_deploy.cli_local:local",
    "upload-data": "safe_deploy.cli_release:upload_data",
    "status": "safe_deploy.cli_status:status",
    "follow": "safe_deploy.cli_release:follow",
    "approve": "safe_deploy.cli_release:approve",
    "reject": "safe_deploy.cli_release:reject",
    "models": "safe_deploy.cli_models:models",
    "rollback": "safe_deploy.cli_models:rollback",
    "rotate-approval-key": "safe_deploy.cli_release:rotate_approval_key",
    "traffic": "safe_deploy.cli_traffic:traffic",
    "drift-report": "safe_deploy.cli_status:drift_report",
    "logs": "safe_deploy.cli_logs:logs",
}
