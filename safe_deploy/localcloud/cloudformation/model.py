"""CloudFormation's state for the local cloud: stacks, their resources, events and change sets.

Names and statuses are CloudFormation's, so the wire module can answer the SAM CLI and the AWS CLI
with them as they are.
"""

from __future__ import annotations

import threading
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any


def now() -> datetime:
    return datetime.now(UTC)


class CloudFormationError(Exception):
    """An error CloudFormation answers a call with (``ValidationError`` and its kin)."""

    def __init__(self, message: str, code: str = "ValidationError", status: int = 400) -> None:
        super().__init__(message)
        self.code = code
        self.status = status


class ResourceFailed(Exception):
    """A resource could not be created, updated or deleted; the reason goes into the events."""


@dataclass
class Resource:
    """One resource of a stack as CloudFormation records it."""

    logical_id: str
    type: str
    physical_id: str
    properties: dict[str, Any]  # resolved, as last applied
    attributes: dict[str, Any] = field(default_factory=dict)
    status: str = "CREATE_COMPLETE"
    reason: str | None = None
    updated: datetime = field(default_factory=now)
    deletion_policy: str = "Delete"
    update_policy: dict[str, Any] = field(default_factory=dict)  # resolved
    handle: Any = None  # what the type's handler keeps (a route list, an alarm, a code folder)


@dataclass
class Event:
    stack_id: str
    stack_name: str
    logical_id: str
    physical_id: str
    type: str
    status: str
    reason: str | None = None
    timestamp: datetime = field(default_factory=now)
    event_id: str = field(default_factory=lambda: str(uuid.uuid4()))

    def wire(self) -> dict[str, Any]:
        event = {
            "StackId": self.stack_id,
            "EventId": self.event_id,
            "StackName": self.stack_name,
            "LogicalResourceId": self.logical_id,
            "PhysicalResourceId": self.physical_id,
            "ResourceType": self.type,
            "Timestamp": self.timestamp,
            "ResourceStatus": self.status,
        }
        if self.reason:
            event["ResourceStatusReason"] = self.reason
        return event


@dataclass
class Change:
    action: str  # Add | Modify | Remove
    logical_id: str
    type: str
    physical_id: str | None = None
    replacement: str | None = None  # True | False (Modify only)
    scope: list[str] = field(default_factory=list)

    def wire(self) -> dict[str, Any]:
        change: dict[str, Any] = {
            "Action": self.action,
            "LogicalResourceId": self.logical_id,
            "ResourceType": self.type,
            "Scope": self.scope,
            "Details": [],
        }
        if self.physical_id:
            change["PhysicalResourceId"] = self.physical_id
        if self.replacement is not None:
            change["Replacement"] = self.replacement
        return {"Type": "Resource", "ResourceChange": change}


@dataclass
class ChangeSet:
    change_set_id: str
    name: str
    stack_id: str
    stack_name: str
    type: str  # CREATE | UPDATE
    template_body: str
    parameters: dict[str, str]
    capabilities: list[str]
    tags: dict[str, str]
    description: str | None = None
    role_arn: str | None = None
    status: str = "CREATE_PENDING"
    execution_status: str = "UNAVAILABLE"
    status_reason: str | None = None
    changes: list[Change] = field(default_factory=list)
    created: datetime = field(default_factory=now)
    # what the change set computed, kept for execution
    template: dict[str, Any] = field(default_factory=dict)  # processed (transformed)
    original: dict[str, Any] = field(default_factory=dict)  # as submitted

    def wire(self) -> dict[str, Any]:
        result: dict[str, Any] = {
            "ChangeSetName": self.name,
            "ChangeSetId": self.change_set_id,
            "StackId": self.stack_id,
            "StackName": self.stack_name,
            "CreationTime": self.created,
            "ExecutionStatus": self.execution_status,
            "Status": self.status,
            "Parameters": [
                {"ParameterKey": k, "ParameterValue": v} for k, v in self.parameters.items()
            ],
            "Capabilities": self.capabilities,
            "Tags": [{"Key": k, "Value": v} for k, v in self.tags.items()],
            "Changes": [c.wire() for c in self.changes],
            "NotificationARNs": [],
        }
        if self.description:
            result["Description"] = self.description
        if self.status_reason:
            result["StatusReason"] = self.status_reason
        return result


@dataclass
class Stack:
    stack_id: str
    name: str
    status: str = "REVIEW_IN_PROGRESS"
    reason: str | None = None
    template_body: str = "{}"  # as submitted (GetTemplate answers it)
    original: dict[str, Any] = field(default_factory=dict)  # parsed, as submitted
    template: dict[str, Any] = field(default_factory=dict)  # processed (transformed)
    parameters: dict[str, str] = field(default_factory=dict)
    no_echo: set[str] = field(default_factory=set)
    capabilities: list[str] = field(default_factory=list)
    tags: dict[str, str] = field(default_factory=dict)
    role_arn: str | None = None
    description: str | None = None
    resources: dict[str, Resource] = field(default_factory=dict)
    outputs: dict[str, tuple[str, str | None]] = field(default_factory=dict)  # value, description
    events: list[Event] = field(default_factory=list)
    created: datetime = field(default_factory=now)
    updated: datetime | None = None
    deleted: datetime | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)

    def event(
        self, logical_id: str, physical_id: str, type_: str, status: str, reason: str | None = None
    ) -> None:
        self.events.append(
            Event(self.stack_id, self.name, logical_id, physical_id, type_, status, reason)
        )

    def stack_event(self, status: str, reason: str | None = None) -> None:
        self.status, self.reason = status, reason
        self.event(self.name, self.stack_id, "AWS::CloudFormation::Stack", status, reason)

    @property
    def busy(self) -> bool:
        return self.status.endswith("_IN_PROGRESS") and self.status != "REVIEW_IN_PROGRESS"

    def wire(self) -> dict[str, Any]:
        stack: dict[str, Any] = {
            "StackId": self.stack_id,
            "StackName": self.name,
            "CreationTime": self.created,
            "StackStatus": self.status,
            "Parameters": [
                {
                    "ParameterKey": k,
                    "ParameterValue": "****" if k in self.no_echo else v,
                }
                for k, v in self.parameters.items()
            ],
            "Capabilities": self.capabilities,
            "Tags": [{"Key": k, "Value": v} for k, v in self.tags.items()],
            "Outputs": [
                {"OutputKey": k, "OutputValue": v, **({"Description": d} if d else {})}
                for k, (v, d) in self.outputs.items()
            ],
            "DisableRollback": False,
            "NotificationARNs": [],
            "EnableTerminationProtection": False,
            "DriftInformation": {"StackDriftStatus": "NOT_CHECKED"},
        }
        if self.updated:
            stack["LastUpdatedTime"] = self.updated
        if self.deleted:
            stack["DeletionTime"] = self.deleted
        if self.reason:
            stack["StackStatusReason"] = self.reason
        if self.description:
            stack["Description"] = self.description
        if self.role_arn:
            stack["RoleARN"] = self.role_arn
        return stack

    def resource_wire(self, resource: Resource, detail: bool = False) -> dict[str, Any]:
        wire: dict[str, Any] = {
            "StackName": self.name,
            "StackId": self.stack_id,
            "LogicalResourceId": resource.logical_id,
            "PhysicalResourceId": resource.physical_id,
            "ResourceType": resource.type,
            "ResourceStatus": resource.status,
            "DriftInformation": {"StackResourceDriftStatus": "NOT_CHECKED"},
        }
        if resource.reason:
            wire["ResourceStatusReason"] = resource.reason
        if detail:
            wire["LastUpdatedTimestamp"] = resource.updated
            wire["Metadata"] = "{}"
        else:
            wire["Timestamp"] = resource.updated
        return wire
