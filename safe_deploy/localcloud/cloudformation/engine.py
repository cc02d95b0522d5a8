"""CloudFormation's executor for the local cloud: change sets, creation in dependency order,
updates of only what changed, rollback, deletion.

The template a change set executes is the one CloudFormation would: the submitted template with
its transform applied at change-set time, with the stack's parameter values. Each resource type's
create, update, replace and delete come from ``resources.py``.
"""

from __future__ import annotations

import json
import threading
import time
import traceback
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from safe_deploy.localcloud.cloudformation import template as cfn_template
from safe_deploy.localcloud.cloudformation.model import (
    Change,
    ChangeSet,
    CloudFormationError,
    Resource,
    ResourceFailed,
    Stack,
    now,
)
from safe_deploy.localcloud.cloudformation.resources import Handlers, resource_record
from safe_deploy.localcloud.state import ActivityFeed, LocalSettings
from safe_deploy.localcloud.timeline import Kind, Recorder, aws_seconds
from safe_deploy.localcloud.timeline.durations import (
    STACK_CLEANUP,
    STACK_ROLLBACK,
    STACK_UPDATE,
    STACK_UPDATE_START,
)

NO_CHANGES = (
    "The submitted information didn't contain changes. Submit different information to create a "
    "change set."
)


@dataclass
class _Step:
    """What an execution did to one resource, so a rollback can undo it."""

    action: str  # created | updated | replaced
    logical_id: str
    before: Resource | None  # the record before the step (updated, replaced)


class Engine:
    def __init__(
        self,
        settings: LocalSettings,
        handlers: Handlers,
        feed: ActivityFeed,
        timeline: Recorder | None = None,
    ) -> None:
        self.settings = settings
        self.handlers = handlers
        self.feed = feed
        self.timeline = timeline or Recorder()
        self.stacks: dict[str, Stack] = {}  # stack id -> live (and review) stacks
        self.deleted: dict[str, Stack] = {}
        self.change_sets: dict[str, ChangeSet] = {}
        self._lock = threading.RLock()
        self.failures: list[str] = []  # executor crashes (not resource failures): a bug

    # ------------------------------------------------------------------ lookups
    def pseudo(self, stack: Stack) -> dict[str, Any]:
        return {
            "AWS::Region": self.settings.region,
            "AWS::AccountId": self.settings.account,
            "AWS::StackName": stack.name,
            "AWS::StackId": stack.stack_id,
            "AWS::Partition": "aws",
            "AWS::URLSuffix": "amazonaws.com",
        }

    def find(self, name_or_id: str, deleted: bool = False) -> Stack:
        with self._lock:
            if name_or_id in self.stacks:
                return self.stacks[name_or_id]
            for stack in self.stacks.values():
                if stack.name == name_or_id:
                    return stack
            if deleted and name_or_id in self.deleted:
                return self.deleted[name_or_id]
        raise CloudFormationError(f"Stack with id {name_or_id} does not exist")

    def change_set(self, name_or_id: str, stack_name: str | None) -> ChangeSet:
        with self._lock:
            if name_or_id in self.change_sets:
                return self.change_sets[name_or_id]
            for change_set in self.change_sets.values():
                if change_set.name == name_or_id and stack_name in (
                    change_set.stack_name,
                    change_set.stack_id,
                ):
                    return change_set
        raise CloudFormationError(
            f"ChangeSet [{name_or_id}] does not exist", code="ChangeSetNotFound", status=404
        )

    def evaluator(
        self, stack: Stack, template: dict[str, Any], parameters: dict[str, str]
    ) -> cfn_template.StackEvaluator:
        return cfn_template.StackEvaluator(
            template,
            parameters,
            self.pseudo(stack),
            {k: r.physical_id for k, r in stack.resources.items()},
            {k: r.attributes for k, r in stack.resources.items()},
        )

    # ------------------------------------------------------------------ change sets
    def create_change_set(
        self,
        stack_name: str,
        name: str,
        body: str | None,
        parameters: list[dict[str, Any]],
        change_set_type: str,
        capabilities: list[str],
        tags: dict[str, str],
        description: str | None = None,
        role_arn: str | None = None,
        use_previous_template: bool = False,
    ) -> ChangeSet:
        with self._lock:
            if change_set_type == "CREATE":
                try:
                    existing = self.find(stack_name)
                except CloudFormationError:
                    existing = None
                if existing is not None and existing.status != "REVIEW_IN_PROGRESS":
                    raise CloudFormationError(
                        f"Stack [{stack_name}] already exists and cannot be created again with "
                        "the changeSet [" + name + "].",
                        code="AlreadyExistsException",
                    )
                stack = existing or Stack(
                    stack_id=(
                        f"arn:aws:cloudformation:{self.settings.region}:{self.settings.account}"
                        f":stack/{stack_name}/{uuid.uuid4()}"
                    ),
                    name=stack_name,
                )
                if existing is None:
                    self.stacks[stack.stack_id] = stack
                    stack.stack_event("REVIEW_IN_PROGRESS", "User Initiated")
            else:
                stack = self.find(stack_name)
                if stack.status == "REVIEW_IN_PROGRESS":
                    raise CloudFormationError(
                        f"Stack [{stack_name}] does not exist", code="ValidationError"
                    )
                if stack.busy:  # one operation at a time per stack, change sets included
                    raise CloudFormationError(
                        f"Stack:{stack.stack_id} is in {stack.status} state and can not be updated."
                    )
            if use_previous_template:
                body = stack.template_body
            if body is None:
                raise CloudFormationError("Either Template URL or Template Body must be specified.")
            change_set = ChangeSet(
                change_set_id=(
                    f"arn:aws:cloudformation:{self.settings.region}:{self.settings.account}"
                    f":changeSet/{name}/{uuid.uuid4()}"
                ),
                name=name,
                stack_id=stack.stack_id,
                stack_name=stack.name,
                type=change_set_type,
                template_body=body,
                parameters={},
                capabilities=list(capabilities),
                tags=dict(tags),
                description=description,
                role_arn=role_arn,
            )
            self.change_sets[change_set.change_set_id] = change_set
        try:
            self._plan(stack, change_set, parameters)
        except CloudFormationError as exc:
            change_set.status, change_set.status_reason = "FAILED", str(exc)
            change_set.execution_status = "UNAVAILABLE"
        return change_set

    def _plan(self, stack: Stack, change_set: ChangeSet, given: list[dict[str, Any]]) -> None:
        original = cfn_template.parse(change_set.template_body)
        previous = stack.parameters if stack.status != "REVIEW_IN_PROGRESS" else None
        values, _ = cfn_template.parameter_values(original, given, previous)
        change_set.parameters = values
        change_set.original = original
        processed = cfn_template.process(original, values, self.pseudo(stack))
        change_set.template = processed
        needed = cfn_template.required_capabilities(processed)
        if needed and not set(needed) & set(change_set.capabilities) | (
            {"CAPABILITY_NAMED_IAM"} & set(change_set.capabilities)
        ):
            raise CloudFormationError(
                f"Requires capabilities : [{needed[0]}]", code="InsufficientCapabilitiesException"
            )
        evaluator = self.evaluator(stack, processed, values)
        active = evaluator.active_resources()
        cfn_template.order(cfn_template.dependencies(processed, active))
        change_set.changes = self._diff(stack, processed, values, active)
        if change_set.type == "UPDATE" and not change_set.changes:
            outputs_same = processed.get("Outputs") == stack.template.get("Outputs")
            if outputs_same and values == stack.parameters:
                raise CloudFormationError(NO_CHANGES)
        change_set.status, change_set.execution_status = "CREATE_COMPLETE", "AVAILABLE"

    def _diff(
        self, stack: Stack, new: dict[str, Any], values: dict[str, str], active: set[str]
    ) -> list[Change]:
        """The changes a person reviews: added, removed, and resources whose definition (with
        parameter values in) differs. Execution then touches only what really differs."""
        old_values = stack.parameters
        changes = []
        for logical_id in sorted(active):
            definition = new["Resources"][logical_id]
            record = stack.resources.get(logical_id)
            if record is None:
                changes.append(Change("Add", logical_id, definition["Type"]))
                continue
            before = stack.template["Resources"].get(logical_id, {})
            if _with_parameters(before, old_values) != _with_parameters(definition, values):
                replace = record.type != definition["Type"] or self.handlers.replaces(
                    definition["Type"],
                    _with_parameters(before, old_values).get("Properties", {}),
                    _with_parameters(definition, values).get("Properties", {}),
                )
                changes.append(
                    Change(
                        "Modify",
                        logical_id,
                        definition["Type"],
                        record.physical_id,
                        "True" if replace else "False",
                        ["Properties"],
                    )
                )
        for logical_id, record in sorted(stack.resources.items()):
            if logical_id not in active:
                changes.append(Change("Remove", logical_id, record.type, record.physical_id))
        return changes

    def delete_change_set(self, name: str, stack_name: str | None) -> None:
        change_set = self.change_set(name, stack_name)
        with self._lock:
            self.change_sets.pop(change_set.change_set_id, None)

    def execute_change_set(self, name: str, stack_name: str | None) -> Stack:
        change_set = self.change_set(name, stack_name)
        stack = self.find(change_set.stack_id)
        with self._lock:
            if change_set.execution_status != "AVAILABLE":
                raise CloudFormationError(
                    f"ChangeSet [{change_set.change_set_id}] cannot be executed in its current "
                    f"status of [{change_set.status}]",
                    code="InvalidChangeSetStatus",
                )
            if stack.busy:
                raise CloudFormationError(
                    f"Stack:{stack.stack_id} is in {stack.status} state and can not be updated."
                )
            change_set.execution_status = "EXECUTE_IN_PROGRESS"
            stack.stack_event(
                "CREATE_IN_PROGRESS" if change_set.type == "CREATE" else "UPDATE_IN_PROGRESS",
                "User Initiated",
            )
            # Every other change set of the stack is now out of date (CloudFormation deletes them).
            for other in list(self.change_sets.values()):
                if other.stack_id == stack.stack_id and other is not change_set:
                    del self.change_sets[other.change_set_id]
        self._background(lambda: self._execute(stack, change_set), stack)
        return stack

    def _background(self, work: Callable[[], None], stack: Stack) -> None:
        def run() -> None:
            try:
                work()
            except Exception:  # an executor bug: the stack must still end, and say so
                text = traceback.format_exc()
                self.failures.append(text)
                self.feed.emit("cloudformation", f"{stack.name}: executor failed", error=text)
                stack.stack_event(stack.status.replace("IN_PROGRESS", "FAILED"), text[-500:])

        threading.Thread(target=run, daemon=True, name=f"cfn-{stack.name}").start()

    # ------------------------------------------------------------------ execution
    def _execute(self, stack: Stack, change_set: ChangeSet) -> None:
        if change_set.type == "CREATE":
            self._run(stack, change_set)
            return
        # An update in the timeline: the local engine's own work, and the time CloudFormation
        # spends before the alias's deployment on AWS, which the engine does not sleep for.
        with self.timeline.span(STACK_UPDATE, stack.name, Kind.WORK, stack=True):
            self.timeline.instant(
                STACK_UPDATE_START, stack.name, aws_seconds(STACK_UPDATE_START), stack=True
            )
            self._run(stack, change_set)

    def _run(self, stack: Stack, change_set: ChangeSet) -> None:
        creating = change_set.type == "CREATE"
        old_template, old_parameters = stack.template, stack.parameters
        old_body, old_original = stack.template_body, stack.original
        old_records = dict(stack.resources)
        steps: list[_Step] = []
        stack.template, stack.parameters = change_set.template, change_set.parameters
        stack.template_body, stack.original = change_set.template_body, change_set.original
        stack.capabilities, stack.tags = change_set.capabilities, change_set.tags or stack.tags
        stack.role_arn = change_set.role_arn or stack.role_arn
        stack.description = change_set.original.get("Description")
        _, stack.no_echo = cfn_template.parameter_values(
            change_set.original,
            [{"ParameterKey": k, "ParameterValue": v} for k, v in change_set.parameters.items()],
            None,
        )
        self.feed.emit("cloudformation", f"{stack.name}: executing {change_set.type.lower()}")
        try:
            evaluator = self.evaluator(stack, stack.template, stack.parameters)
            active = evaluator.active_resources()
            for logical_id in cfn_template.order(cfn_template.dependencies(stack.template, active)):
                step = self._apply(stack, logical_id)
                if step is not None:
                    steps.append(step)
            stack.outputs = self._outputs(stack)
        except (ResourceFailed, CloudFormationError) as exc:
            self._roll_back(
                stack, creating, steps, old_template, old_parameters, old_records, str(exc)
            )
            stack.template_body, stack.original = old_body, old_original
            change_set.execution_status = "EXECUTE_FAILED"
            return
        if creating:
            stack.stack_event("CREATE_COMPLETE")
        else:
            stack.stack_event("UPDATE_COMPLETE_CLEANUP_IN_PROGRESS")
            self.timeline.instant(STACK_CLEANUP, stack.name, aws_seconds(STACK_CLEANUP), stack=True)
            removed = [k for k in old_records if k not in active]
            old_graph = cfn_template.dependencies(
                old_template, {k for k in removed if k in old_template.get("Resources", {})}
            )
            for logical_id in reversed(cfn_template.order(old_graph)):
                self._delete(stack, old_records[logical_id], forget=True)
            for step in steps:
                if step.action == "replaced" and step.before is not None:
                    self._delete(stack, step.before, forget=False)
            stack.updated = now()
            stack.stack_event("UPDATE_COMPLETE")
        change_set.execution_status = "EXECUTE_COMPLETE"
        self.feed.emit("cloudformation", f"{stack.name}: {stack.status}")

    def _apply(self, stack: Stack, logical_id: str) -> _Step | None:
        definition = stack.template["Resources"][logical_id]
        kind = definition["Type"]
        evaluator = self.evaluator(stack, stack.template, stack.parameters)
        props = evaluator.resolve(definition.get("Properties", {}))
        update_policy = evaluator.resolve(definition.get("UpdatePolicy", {}))
        record = stack.resources.get(logical_id)
        if record is not None and record.type == kind and record.properties == props:
            return None
        replacing = record is not None and (
            record.type != kind or self.handlers.replaces(kind, record.properties, props)
        )
        status = "CREATE" if record is None or replacing else "UPDATE"
        physical = record.physical_id if record is not None else ""
        stack.event(
            logical_id,
            physical,
            kind,
            f"{status}_IN_PROGRESS",
            "Requested update requires the creation of a new physical resource; hence creating one."
            if replacing
            else None,
        )
        context = self.handlers.context(stack, logical_id, update_policy)
        try:
            if record is None or replacing:
                realized = self.handlers.create(context, kind, props)
            else:
                realized = self.handlers.update(context, record, props)
        except ResourceFailed as exc:
            stack.event(logical_id, physical, kind, f"{status}_FAILED", str(exc))
            raise
        except Exception as exc:  # an AWS call refused: the resource fails with its message
            reason = f"{type(exc).__name__}: {exc}"
            stack.event(logical_id, physical, kind, f"{status}_FAILED", reason)
            raise ResourceFailed(f"{logical_id}: {reason}") from exc
        new_record = resource_record(logical_id, kind, definition, props, update_policy, realized)
        stack.resources[logical_id] = new_record
        stack.event(logical_id, new_record.physical_id, kind, f"{status}_COMPLETE")
        if record is None:
            return _Step("created", logical_id, None)
        # A custom resource may answer an update with a new physical id: CloudFormation then
        # deletes the old one in the cleanup, as for a replacement.
        replaced = replacing or new_record.physical_id != record.physical_id
        return _Step("replaced" if replaced else "updated", logical_id, record)

    def _roll_back(
        self,
        stack: Stack,
        creating: bool,
        steps: list[_Step],
        old_template: dict[str, Any],
        old_parameters: dict[str, str],
        old_records: dict[str, Resource],
        reason: str,
    ) -> None:
        stack.stack_event(
            "ROLLBACK_IN_PROGRESS" if creating else "UPDATE_ROLLBACK_IN_PROGRESS",
            f"The following resource(s) failed to {'create' if creating else 'update'}: "
            f"[{reason.split(':', 1)[0]}]. {reason}",
        )
        self.feed.emit("cloudformation", f"{stack.name}: rolling back ({reason})")
        if not creating:
            self.timeline.instant(
                STACK_ROLLBACK, stack.name, aws_seconds(STACK_ROLLBACK), stack=True
            )
        stack.template, stack.parameters = old_template, old_parameters
        for step in reversed(steps):
            current = stack.resources[step.logical_id]
            if step.action == "created":
                self._delete(stack, current, forget=True)
            elif step.action == "replaced" and step.before is not None:
                self._delete(stack, current, forget=False)
                stack.resources[step.logical_id] = step.before
            elif step.before is not None:
                self._restore(stack, current, step.before)
        if creating:
            stack.outputs = {}
            stack.stack_event("ROLLBACK_COMPLETE")
        else:
            stack.resources = {k: stack.resources.get(k, v) for k, v in old_records.items()}
            stack.outputs = self._outputs(stack)
            stack.stack_event("UPDATE_ROLLBACK_COMPLETE_CLEANUP_IN_PROGRESS")
            stack.updated = now()
            stack.stack_event("UPDATE_ROLLBACK_COMPLETE")
        self.feed.emit("cloudformation", f"{stack.name}: {stack.status}")

    def _restore(self, stack: Stack, current: Resource, before: Resource) -> None:
        stack.event(current.logical_id, current.physical_id, current.type, "UPDATE_IN_PROGRESS")
        context = self.handlers.context(
            stack, current.logical_id, before.update_policy, rolling_back=True
        )
        try:
            realized = self.handlers.update(context, current, before.properties)
        except Exception as exc:
            stack.event(
                current.logical_id, current.physical_id, current.type, "UPDATE_FAILED", str(exc)
            )
            raise
        restored = resource_record(
            before.logical_id,
            before.type,
            {"DeletionPolicy": before.deletion_policy},
            before.properties,
            before.update_policy,
            realized,
        )
        stack.resources[current.logical_id] = restored
        stack.event(current.logical_id, restored.physical_id, current.type, "UPDATE_COMPLETE")

    def _delete(self, stack: Stack, record: Resource, forget: bool) -> None:
        if record.deletion_policy == "Retain":
            stack.event(record.logical_id, record.physical_id, record.type, "DELETE_SKIPPED")
        else:
            stack.event(record.logical_id, record.physical_id, record.type, "DELETE_IN_PROGRESS")
            context = self.handlers.context(stack, record.logical_id, {})
            try:
                self.handlers.delete(context, record)
            except Exception as exc:  # CloudFormation reports it and goes on with the cleanup
                stack.event(
                    record.logical_id,
                    record.physical_id,
                    record.type,
                    "DELETE_FAILED",
                    f"{type(exc).__name__}: {exc}",
                )
                return
            stack.event(record.logical_id, record.physical_id, record.type, "DELETE_COMPLETE")
        if forget and stack.resources.get(record.logical_id) is record:
            del stack.resources[record.logical_id]

    def _outputs(self, stack: Stack) -> dict[str, tuple[str, str | None]]:
        evaluator = self.evaluator(stack, stack.template, stack.parameters)
        values = {}
        for name, output in (stack.template.get("Outputs") or {}).items():
            if "Condition" in output and not evaluator.condition(output["Condition"]):
                continue
            value = evaluator.resolve(output["Value"])
            values[name] = (
                value if isinstance(value, str) else json.dumps(value),
                output.get("Description"),
            )
        return values

    # ------------------------------------------------------------------ stacks
    def delete_stack(self, name_or_id: str) -> None:
        try:
            stack = self.find(name_or_id)
        except CloudFormationError:
            return  # deleting a stack that does not exist succeeds
        with self._lock:
            if stack.busy and not stack.status.startswith("DELETE"):
                raise CloudFormationError(
                    f"Stack [{stack.name}] cannot be deleted while in status {stack.status}"
                )
            stack.stack_event("DELETE_IN_PROGRESS", "User Initiated")
        self._background(lambda: self._delete_stack(stack), stack)

    def _delete_stack(self, stack: Stack) -> None:
        graph = (
            cfn_template.dependencies(
                stack.template, set(stack.resources) & set(stack.template.get("Resources", {}))
            )
            if stack.template
            else {}
        )
        ordered = cfn_template.order(graph) if graph else []
        for logical_id in reversed(ordered):
            self._delete(stack, stack.resources[logical_id], forget=True)
        for record in list(stack.resources.values()):
            self._delete(stack, record, forget=True)
        stack.deleted = now()
        stack.stack_event("DELETE_COMPLETE")
        with self._lock:
            self.stacks.pop(stack.stack_id, None)
            self.deleted[stack.stack_id] = stack
        self.feed.emit("cloudformation", f"{stack.name}: DELETE_COMPLETE")

    def create_or_update_stack(
        self,
        stack_name: str,
        body: str | None,
        parameters: list[dict[str, Any]],
        capabilities: list[str],
        tags: dict[str, str],
        role_arn: str | None,
        update: bool,
        use_previous_template: bool = False,
    ) -> Stack:
        """CreateStack and UpdateStack: a change set executed at once. Without a change set to
        review, a transform needs ``CAPABILITY_AUTO_EXPAND`` (CloudFormation's rule)."""
        if not update:
            try:
                self.find(stack_name)
            except CloudFormationError:
                pass
            else:
                raise CloudFormationError(
                    f"Stack [{stack_name}] already exists", code="AlreadyExistsException"
                )
        else:
            stack = self.find(stack_name)
            if stack.busy:
                raise CloudFormationError(
                    f"Stack:{stack.stack_id} is in {stack.status} state and can not be updated."
                )
        source = self.find(stack_name).template_body if use_previous_template else body
        if (
            source is not None
            and cfn_template.transforms(cfn_template.parse(source))
            and ("CAPABILITY_AUTO_EXPAND" not in capabilities)
        ):
            raise CloudFormationError(
                "Requires capabilities : [CAPABILITY_AUTO_EXPAND]",
                code="InsufficientCapabilitiesException",
            )
        name = f"direct-{uuid.uuid4().hex[:12]}"
        change_set = self.create_change_set(
            stack_name,
            name,
            body,
            parameters,
            "UPDATE" if update else "CREATE",
            capabilities,
            tags,
            role_arn=role_arn,
            use_previous_template=use_previous_template,
        )
        if change_set.status == "FAILED":
            with self._lock:
                self.change_sets.pop(change_set.change_set_id, None)
                if not update:
                    stack = self.find(stack_name)
                    self.stacks.pop(stack.stack_id, None)
            reason = change_set.status_reason or "failed"
            if reason == NO_CHANGES:
                reason = "No updates are to be performed."
            code = (
                "InsufficientCapabilitiesException"
                if "capabilities" in reason
                else "ValidationError"
            )
            raise CloudFormationError(reason, code=code)
        stack = self.execute_change_set(change_set.change_set_id, None)
        with self._lock:
            self.change_sets.pop(change_set.change_set_id, None)
        return stack

    def wait(self, stack_name: str, timeout: float) -> Stack:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            stack = self.find(stack_name, deleted=True)
            if not stack.busy:
                return stack
            time.sleep(0.05)
        raise TimeoutError(f"stack {stack_name} still {self.find(stack_name).status}")


def _with_parameters(value: Any, parameters: dict[str, str]) -> Any:
    """A definition with parameter references replaced by their values (what a person reviewing
    a change set sees as changed when only a parameter changes)."""
    if isinstance(value, list):
        return [_with_parameters(v, parameters) for v in value]
    if isinstance(value, dict):
        if set(value) == {"Ref"} and value["Ref"] in parameters:
            return parameters[value["Ref"]]
        if set(value) == {"Fn::Sub"}:
            text, variables = (
                (value["Fn::Sub"], {}) if isinstance(value["Fn::Sub"], str) else value["Fn::Sub"]
            )
            for name, parameter in parameters.items():
                if name not in variables:
                    text = text.replace("${" + name + "}", str(parameter))
            return {"Fn::Sub": [text, _with_parameters(variables, parameters)]}
        return {k: _with_parameters(v, parameters) for k, v in value.items()}
    return value
