"""Driving the local cloud for the approval tests: runs started by uploading synthetic months,
approvals read from the table (the token too: the tests search for it), the outbox, signed
requests as a Slack app or a link holder would make them, and every response kept."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import requests

from model.synth import synth_trips, write_trips
from safe_deploy import ops
from safe_deploy.localcloud.cloud import LocalCloud
from safe_deploy.localcloud.state import LocalSettings
from safe_deploy.target import Target

REPO = Path(__file__).resolve().parents[2]
MONTH_ROWS = 30_000
RUN_TIMEOUT = 180.0


def wait_for(condition: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")


@dataclass
class LocalPipeline:
    cloud: LocalCloud
    target: Target
    workdir: Path
    responses: list[requests.Response] = field(default_factory=list)

    @classmethod
    def start(cls, workdir: Path, overrides: dict[str, str] | None = None) -> LocalPipeline:
        settings = LocalSettings(
            project_root=REPO,
            workdir=workdir / "cloud",
            time_scale=0.02,
            parameter_overrides=dict(overrides or {}),
        )
        cloud = LocalCloud(settings).start()
        connection = workdir / "local.json"
        cloud.write_connection_file(connection)
        return cls(cloud, Target.local_cloud(connection), workdir)

    def stop(self) -> None:
        self.cloud.stop()

    # ---------------------------------------------------------------- runs
    def upload(self, name: str, seed: int, rows: int = MONTH_ROWS) -> str:
        """A synthetic month under raw/; returns the execution it starts."""
        path = self.workdir / "data" / f"{name}.csv"
        write_trips(synth_trips(rows, seed=seed, month="2018-02"), path)
        uploaded = ops.upload_data(self.target, path, f"raw/{name}.csv")
        return str(wait_for(lambda: self._execution_for(uploaded.key), 30, f"the run for {name}"))

    def _execution_for(self, key: str) -> str | None:
        sfn = self.target.client("stepfunctions")
        machine = self.target.output("TrainingStateMachineArn")
        for execution in sfn.list_executions(stateMachineArn=machine)["executions"]:
            described = sfn.describe_execution(executionArn=execution["executionArn"])
            if json.loads(described["input"]).get("source", {}).get("key") == key:
                return str(execution["executionArn"])
        return None

    def approval_item(self, execution_arn: str) -> dict[str, Any] | None:
        """The approval's whole item, task token included (only a test reads that)."""
        table = self.table()
        items = table.query(
            IndexName="by-execution",
            KeyConditionExpression="execution_arn = :e",
            ExpressionAttributeValues={":e": execution_arn},
        ).get("Items", [])
        return max(items, key=lambda i: int(i["created_at"])) if items else None

    def table(self) -> Any:
        dynamodb = self.target.session.resource(
            "dynamodb", region_name=self.target.region, endpoint_url=self.target.endpoint_url
        )
        return dynamodb.Table(self.target.output("ApprovalsTableName"))

    def wait_for_approval(self, execution_arn: str) -> dict[str, Any]:
        """The pending approval, once its request went out on every channel."""

        def asked() -> dict[str, Any] | None:
            item = self.approval_item(execution_arn)
            return item if item and item.get("channels") else None

        item = wait_for(asked, RUN_TIMEOUT, f"the approval request of {execution_arn}")
        return dict(item)

    def wait_for_end(self, execution_arn: str, timeout: float = RUN_TIMEOUT) -> dict[str, Any]:
        sfn = self.target.client("stepfunctions")

        def ended() -> dict[str, Any] | None:
            described = sfn.describe_execution(executionArn=execution_arn)
            return None if described["status"] == "RUNNING" else dict(described)

        return dict(wait_for(ended, timeout, f"{execution_arn} to end"))

    # ---------------------------------------------------------------- outbox
    def outbox(self, channel: str) -> list[dict[str, Any]]:
        folder = self.cloud.outbox / channel
        return [json.loads(p.read_text()) for p in sorted(folder.glob("*.json"))]

    def slack_request_for(self, model_id: str) -> dict[str, Any]:
        """The incoming-webhook message asking about ``model_id``."""
        messages = [
            m["message"]
            for m in self.outbox("slack")
            if m["via"] == "webhook" and f"Approve fare model {model_id}" in m["message"]["text"]
        ]
        assert messages, f"no Slack approval request for {model_id} in the outbox"
        return dict(messages[-1])

    def link_for(self, model_id: str) -> str:
        """The approval page's link, as the Slack message's Approve button opens it."""
        message = self.slack_request_for(model_id)
        for block in message["blocks"]:
            for element in block.get("elements", []):
                if element.get("url"):
                    return str(element["url"])
        raise AssertionError(f"the Slack message for {model_id} has no link button")

    # ---------------------------------------------------------------- HTTP, every answer kept
    def http(self, method: str, url: str, **kwargs: Any) -> requests.Response:
        response = requests.request(method, url, timeout=30, allow_redirects=False, **kwargs)
        self.responses.append(response)
        return response

    def signing_key(self) -> str:
        manager = self.target.client("secretsmanager")
        arn = self.target.output("ApprovalSigningSecretArn")
        return str(manager.get_secret_value(SecretId=arn)["SecretString"])


def link_parts(link: str) -> tuple[str, str, dict[str, str]]:
    """(page URL without the query, approval id, {"expires": ..., "sig": ...})."""
    parts = urlsplit(link)
    base = link.split("?", 1)[0]
    query = {k: v[0] for k, v in parse_qs(parts.query).items()}
    return base, base.rsplit("/", 1)[-1], query
