"""Where the operational commands act: a deployed stack on AWS, or the local cloud.

Both look the same to the commands: boto3 clients, the stack's Outputs, the API's base URL and
credentials to sign API requests with.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from safe_deploy.clients import ClientCache

# boto3 and requests are imported where they are used: the command line imports this module for
# every command, and commands that work on local files (monitor, data prepare) never need them.
if TYPE_CHECKING:
    import boto3
    import requests

LOCAL_CONNECTION = Path(".safe-deploy") / "local.json"


def local_connection_path() -> Path:
    """The file through which the commands find the local cloud: ``SAFE_DEPLOY_LOCAL``, or
    ``.safe-deploy/local.json`` in the current folder. ``local up`` writes it, the rest read it."""
    return Path(os.environ.get("SAFE_DEPLOY_LOCAL", str(LOCAL_CONNECTION)))


class TargetError(RuntimeError):
    """No stack or local cloud to talk to."""


@dataclass
class Target:
    name: str
    region: str
    outputs: dict[str, str]
    session: boto3.Session
    endpoint_url: str | None = None
    stack_name: str | None = None  # None: the local cloud's, found by its outputs
    _clients: ClientCache = field(default_factory=ClientCache, repr=False, compare=False)

    @property
    def local(self) -> bool:
        return self.endpoint_url is not None

    @property
    def api_url(self) -> str:
        return self.outputs["ApiUrl"].rstrip("/")

    def client(self, service: str) -> Any:
        """The target's client for ``service``, one per target (the commands poll)."""
        make: Callable[..., Any] = self.session.client
        return self._clients.get(
            service, lambda: make(service, region_name=self.region, endpoint_url=self.endpoint_url)
        )

    def output(self, name: str) -> str:
        try:
            return self.outputs[name]
        except KeyError:
            raise TargetError(f"{self.name} has no output {name}") from None

    def describe_stack(self) -> dict[str, Any]:
        """The stack as CloudFormation describes it now: status, parameters, outputs."""
        cloudformation = self.client("cloudformation")
        if self.stack_name is not None:
            stack: dict[str, Any] = cloudformation.describe_stacks(StackName=self.stack_name)[
                "Stacks"
            ][0]
            return stack
        # The local cloud's connection file names no stack: it is the one with these outputs.
        function = self.output("PredictFunctionName")
        for stack in cloudformation.describe_stacks()["Stacks"]:
            outputs = {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])}
            if outputs.get("PredictFunctionName") == function:
                return stack
        raise TargetError(f"{self.name} has no stack whose predict function is {function}")

    def signed(
        self,
        method: str,
        path: str,
        body: bytes = b"",
        headers: dict[str, str] | None = None,
        timeout: float = 30.0,
    ) -> requests.Response:
        """An API request signed with SigV4 (the API's AWS_IAM routes need it)."""
        import requests
        from botocore.auth import SigV4Auth
        from botocore.awsrequest import AWSRequest

        url = f"{self.api_url}{path}"
        request = AWSRequest(method=method, url=url, data=body, headers=dict(headers or {}))
        credentials = self.session.get_credentials()
        if credentials is None:
            raise TargetError("no AWS credentials to sign API requests with")
        SigV4Auth(credentials.get_frozen_credentials(), "execute-api", self.region).add_auth(
            request
        )
        return requests.request(
            method, url, data=body, headers=dict(request.headers), timeout=timeout
        )

    @classmethod
    def stack(cls, stack_name: str, region: str | None = None) -> Target:
        import boto3

        session = boto3.Session(region_name=region)
        cloudformation = session.client("cloudformation")
        try:
            stack = cloudformation.describe_stacks(StackName=stack_name)["Stacks"][0]
        except Exception as exc:
            raise TargetError(f"stack {stack_name}: {exc}") from exc
        outputs = {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])}
        return cls(
            stack_name, session.region_name or "us-east-1", outputs, session, stack_name=stack_name
        )

    @classmethod
    def local_cloud(cls, connection: Path = LOCAL_CONNECTION) -> Target:
        if not connection.exists():
            raise TargetError(
                f"no local cloud is running ({connection} is missing): start one with "
                "`safe-deploy local up`, or pass --stack NAME for a deployed stack"
            )
        import boto3
        import requests

        data = json.loads(connection.read_text())
        try:
            requests.get(data["aws_endpoint_url"] + "/moto-api/", timeout=2)
        except requests.RequestException:
            raise TargetError(
                f"the local cloud in {connection} is not answering; start it with "
                "`safe-deploy local up`"
            ) from None
        session = boto3.Session(
            aws_access_key_id=data["access_key"],
            aws_secret_access_key=data["secret_key"],
            region_name=data["region"],
        )
        return cls(
            "local cloud",
            data["region"],
            data["outputs"],
            session,
            data["aws_endpoint_url"],
            data.get("stack_name"),
        )

    @classmethod
    def of(cls, stack_name: str | None, region: str | None = None) -> Target:
        if stack_name:
            return cls.stack(stack_name, region)
        return cls.local_cloud(local_connection_path())
