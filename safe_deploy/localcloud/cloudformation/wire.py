"""CloudFormation's API in the local cloud: moto's request parsing and response serialization,
with every stack and change-set call answered by the local executor instead of moto's own
CloudFormation (which makes stacks without running them as CloudFormation does)."""

from __future__ import annotations

from typing import Any
from urllib.parse import unquote, urlsplit

from moto.cloudformation.exceptions import CloudFormationError as MotoCloudFormationError
from moto.cloudformation.responses import CloudFormationResponse
from moto.core.responses import ActionResult, EmptyResult

from safe_deploy.clients import environment_client
from safe_deploy.localcloud.cloudformation import template as cfn_template
from safe_deploy.localcloud.cloudformation.engine import Engine
from safe_deploy.localcloud.cloudformation.model import CloudFormationError
from safe_deploy.localcloud.patching import replace

Call = Any


def _error(exc: CloudFormationError) -> MotoCloudFormationError:
    error = MotoCloudFormationError(str(exc))
    error.code = exc.code
    return error


def template_from_url(url: str, region: str) -> str:
    """A ``TemplateURL``'s body from the local S3: path-style (what the SAM CLI builds from its
    endpoint) or virtual-hosted."""
    parts = urlsplit(url)
    path = unquote(parts.path.lstrip("/"))
    host = parts.hostname or ""
    if ".s3" in host and not host.startswith("s3"):
        bucket, key = host.split(".s3", 1)[0], path
    else:
        bucket, _, key = path.partition("/")
    s3 = environment_client("s3", region)
    try:
        body: bytes = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    except Exception:
        raise CloudFormationError(
            f"TemplateURL must be a supported URL: {url} cannot be read"
        ) from None
    return body.decode()


def install(engine: Engine) -> None:
    region = engine.settings.region

    def guarded(method: Call) -> Call:
        def call(self: CloudFormationResponse) -> Any:
            try:
                return method(self)
            except CloudFormationError as exc:
                raise _error(exc) from None

        return call

    def body_of(self: CloudFormationResponse) -> str | None:
        url = self._get_param("TemplateURL")
        if url:
            return template_from_url(url, region)
        body: str | None = self._get_param("TemplateBody")
        return body

    def tags_of(self: CloudFormationResponse) -> dict[str, str]:
        return {t["Key"]: t["Value"] for t in self._get_param("Tags", []) or []}

    def create_change_set(self: CloudFormationResponse) -> ActionResult:
        change_set = engine.create_change_set(
            stack_name=self._get_param("StackName"),
            name=self._get_param("ChangeSetName"),
            body=body_of(self),
            parameters=self._get_param("Parameters", []) or [],
            change_set_type=self._get_param("ChangeSetType", "UPDATE"),
            capabilities=self._get_param("Capabilities", []) or [],
            tags=tags_of(self),
            description=self._get_param("Description"),
            role_arn=self._get_param("RoleARN"),
            use_previous_template=self._get_bool_param("UsePreviousTemplate", False),
        )
        return ActionResult({"Id": change_set.change_set_id, "StackId": change_set.stack_id})

    def describe_change_set(self: CloudFormationResponse) -> ActionResult:
        change_set = engine.change_set(
            self._get_param("ChangeSetName"), self._get_param("StackName")
        )
        return ActionResult(change_set.wire())

    def execute_change_set(self: CloudFormationResponse) -> EmptyResult:
        engine.execute_change_set(self._get_param("ChangeSetName"), self._get_param("StackName"))
        return EmptyResult()

    def delete_change_set(self: CloudFormationResponse) -> EmptyResult:
        engine.delete_change_set(self._get_param("ChangeSetName"), self._get_param("StackName"))
        return EmptyResult()

    def list_change_sets(self: CloudFormationResponse) -> ActionResult:
        stack = engine.find(self._get_param("StackName"))
        summaries = [
            {
                k: v
                for k, v in c.wire().items()
                if k
                in (
                    "ChangeSetId",
                    "ChangeSetName",
                    "StackId",
                    "StackName",
                    "Status",
                    "ExecutionStatus",
                    "CreationTime",
                    "StatusReason",
                    "Description",
                )
            }
            for c in engine.change_sets.values()
            if c.stack_id == stack.stack_id
        ]
        return ActionResult({"Summaries": summaries})

    def describe_stacks(self: CloudFormationResponse) -> ActionResult:
        name = self._get_param("StackName")
        if name:
            stacks = [engine.find(name, deleted=name.startswith("arn:"))]
        else:
            stacks = list(engine.stacks.values())
        return ActionResult({"Stacks": [s.wire() for s in stacks]})

    def list_stacks(self: CloudFormationResponse) -> ActionResult:
        wanted = set(self._get_param("StackStatusFilter", []) or [])
        stacks = list(engine.stacks.values()) + list(engine.deleted.values())
        summaries = [
            {
                "StackId": s.stack_id,
                "StackName": s.name,
                "CreationTime": s.created,
                "StackStatus": s.status,
                **({"LastUpdatedTime": s.updated} if s.updated else {}),
                **({"DeletionTime": s.deleted} if s.deleted else {}),
            }
            for s in stacks
            if not wanted or s.status in wanted
        ]
        return ActionResult({"StackSummaries": summaries})

    def describe_stack_events(self: CloudFormationResponse) -> ActionResult:
        stack = engine.find(self._get_param("StackName"), deleted=True)
        return ActionResult({"StackEvents": [e.wire() for e in reversed(stack.events)]})

    def describe_stack_resource(self: CloudFormationResponse) -> ActionResult:
        stack = engine.find(self._get_param("StackName"))
        logical_id = self._get_param("LogicalResourceId")
        resource = stack.resources.get(logical_id)
        if resource is None:
            raise CloudFormationError(
                f"Resource {logical_id} does not exist for stack {stack.name}"
            )
        return ActionResult({"StackResourceDetail": stack.resource_wire(resource, detail=True)})

    def describe_stack_resources(self: CloudFormationResponse) -> ActionResult:
        stack = engine.find(self._get_param("StackName"))
        logical_id = self._get_param("LogicalResourceId")
        resources = [
            stack.resource_wire(r)
            for r in stack.resources.values()
            if logical_id in (None, r.logical_id)
        ]
        return ActionResult({"StackResources": resources})

    def list_stack_resources(self: CloudFormationResponse) -> ActionResult:
        stack = engine.find(self._get_param("StackName"))
        summaries = []
        for resource in stack.resources.values():
            wire = stack.resource_wire(resource, detail=True)
            wire.pop("StackName"), wire.pop("StackId"), wire.pop("Metadata")
            summaries.append(wire)
        return ActionResult({"StackResourceSummaries": summaries})

    def get_template(self: CloudFormationResponse) -> ActionResult:
        stack = engine.find(self._get_param("StackName"))
        stage = self._get_param("TemplateStage", "Original")
        if stage == "Processed":
            import json

            return ActionResult({"TemplateBody": json.dumps(stack.template)})
        return ActionResult({"TemplateBody": stack.template_body})

    def get_template_summary(self: CloudFormationResponse) -> ActionResult:
        name = self._get_param("StackName")
        body = engine.find(name).template_body if name else body_of(self) or ""
        original = cfn_template.parse(body)
        parameters = [
            {
                "ParameterKey": key,
                "ParameterType": spec.get("Type", "String"),
                "NoEcho": str(spec.get("NoEcho", "false")).lower() == "true",
                "Description": spec.get("Description", ""),
                **({"DefaultValue": str(spec["Default"])} if "Default" in spec else {}),
            }
            for key, spec in (original.get("Parameters") or {}).items()
        ]
        return ActionResult(
            {
                "Parameters": parameters,
                "Description": original.get("Description", ""),
                "Capabilities": cfn_template.required_capabilities(original),
                "ResourceTypes": sorted({r["Type"] for r in original["Resources"].values()}),
                "Version": original.get("AWSTemplateFormatVersion", "2010-09-09"),
                "DeclaredTransforms": cfn_template.transforms(original),
            }
        )

    def stack_operation(self: CloudFormationResponse, update: bool) -> ActionResult:
        stack = engine.create_or_update_stack(
            self._get_param("StackName"),
            body_of(self),
            self._get_param("Parameters", []) or [],
            self._get_param("Capabilities", []) or [],
            tags_of(self),
            self._get_param("RoleARN"),
            update=update,
            use_previous_template=update and self._get_bool_param("UsePreviousTemplate", False),
        )
        return ActionResult({"StackId": stack.stack_id})

    def create_stack(self: CloudFormationResponse) -> ActionResult:
        return stack_operation(self, update=False)

    def update_stack(self: CloudFormationResponse) -> ActionResult:
        return stack_operation(self, update=True)

    def delete_stack(self: CloudFormationResponse) -> EmptyResult:
        engine.delete_stack(self._get_param("StackName"))
        return EmptyResult()

    # moto reshapes its own objects on the way out; these answers are already in the API's shape
    replace(CloudFormationResponse, "RESPONSE_KEY_PATH_TO_TRANSFORMER", {})
    for name, method in {
        "create_change_set": create_change_set,
        "describe_change_set": describe_change_set,
        "execute_change_set": execute_change_set,
        "delete_change_set": delete_change_set,
        "list_change_sets": list_change_sets,
        "describe_stacks": describe_stacks,
        "list_stacks": list_stacks,
        "describe_stack_events": describe_stack_events,
        "describe_stack_resource": describe_stack_resource,
        "describe_stack_resources": describe_stack_resources,
        "list_stack_resources": list_stack_resources,
        "get_template": get_template,
        "get_template_summary": get_template_summary,
        "create_stack": create_stack,
        "update_stack": update_stack,
        "delete_stack": delete_stack,
    }.items():
        replace(CloudFormationResponse, name, guarded(method))
