"""API Gateway access logs: a stage's ``AccessLogSetting`` turns every request, refused ones
included, into one line in the stage's format, written to a CloudWatch Logs group (moto's), so
``aws logs filter-log-events`` reads what it would read on AWS.

The format's ``$context.*`` variables are substituted (AWS, API Gateway Developer Guide,
"Variables for access logging for API Gateway"); a variable this module does not know, or one
without a value for the request (``$context.identity.caller`` of an anonymous call), is written
``-``. In a JSON format (one starting with ``{``) values are JSON-escaped, so a quote or a newline
in a header cannot break the line. API Gateway requires the format to name ``$context.requestId``
(or ``$context.extendedRequestId``) so that lines stay unique ("Set up CloudWatch logging for
REST APIs in API Gateway").
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

VARIABLE = re.compile(r"\$context(?:\.[A-Za-z0-9_]+)+")
REQUEST_ID = re.compile(r"\$context\.(?:requestId|extendedRequestId)(?![A-Za-z0-9_])")


class AccessLogError(ValueError):
    """A stage's access log setting API Gateway would refuse."""


@dataclass(frozen=True)
class AccessLogSetting:
    destination_arn: str  # arn:aws:logs:region:account:log-group:NAME
    format: str

    @classmethod
    def from_properties(cls, props: Mapping[str, Any]) -> AccessLogSetting | None:
        setting = props.get("AccessLogSetting")
        if not setting:
            return None
        arn, fmt = setting.get("DestinationArn"), setting.get("Format")
        if not arn or not fmt:
            raise AccessLogError("AccessLogSetting needs both DestinationArn and Format")
        parts = str(arn).split(":")
        if len(parts) < 7 or parts[2] != "logs" or parts[5] != "log-group":
            raise AccessLogError(f"DestinationArn {arn!r} is not a CloudWatch Logs group ARN")
        if not REQUEST_ID.search(str(fmt)):
            raise AccessLogError(
                "Access log format must include $context.requestId or $context.extendedRequestId"
            )
        return cls(str(arn), str(fmt))

    @property
    def region(self) -> str:
        return self.destination_arn.split(":")[3]

    @property
    def account(self) -> str:
        return self.destination_arn.split(":")[4]

    @property
    def log_group(self) -> str:
        return self.destination_arn.split(":")[6]


def render(fmt: str, values: Mapping[str, object]) -> str:
    """One access log line: ``values`` by variable name without ``$context.``
    (``identity.sourceIp``)."""
    escape = fmt.lstrip().startswith("{")

    def value(match: re.Match[str]) -> str:
        found = values.get(match.group(0)[len("$context.") :])
        text = "-" if found is None or found == "" else str(found)
        return json.dumps(text)[1:-1] if escape else text

    return VARIABLE.sub(value, fmt)


class AccessLogWriter:
    """Appends lines to moto's CloudWatch Logs, one stream per stage."""

    def __init__(self) -> None:
        self._lock = threading.Lock()  # moto's log streams are not thread-safe

    def write(self, setting: AccessLogSetting, stream: str, timestamp_ms: int, line: str) -> None:
        from moto.logs.models import logs_backends

        backend = logs_backends[setting.account][setting.region]
        with self._lock:
            # the logging role may create the group (AmazonAPIGatewayPushToCloudWatchLogs)
            backend.ensure_log_group(setting.log_group)
            backend.ensure_log_stream(setting.log_group, stream)
            backend.put_log_events(
                setting.log_group, stream, [{"timestamp": timestamp_ms, "message": line}]
            )
