"""EventBridge for the local cloud: rule matches reach Lambda and Step Functions targets.

moto sends S3's *Object Created* events to the default bus and matches rules, but delivers only to
SQS, logs, buses, archives and API destinations (and raises for Lambda targets, which also stops
the delivery to the other targets of that rule). Lambda targets are invoked asynchronously, as
EventBridge does; the rest keep moto's delivery.
"""

from __future__ import annotations

import copy
import datetime
import json
import threading
import uuid
from typing import Any

from moto.awslambda.utils import get_backend as lambda_backend
from moto.events.models import Rule
from moto.events.utils import EventTemplateParser
from moto.stepfunctions.responses import get_backend as sfn_backend
from moto.utilities.arns import parse_arn

from safe_deploy.localcloud.patching import replace
from safe_deploy.localcloud.state import ActivityFeed

_send_to_targets = Rule.send_to_targets
_MOTO_S3_EVENT_ID = "17793124-05d4-b198-2fde-7ededc63b103"


def aws_shaped(event: dict[str, Any]) -> dict[str, Any]:
    """An event as EventBridge delivers it (moto's S3 events carry a float time and a fixed id)."""
    event = copy.deepcopy(event)
    if isinstance(event.get("time"), int | float):
        moment = datetime.datetime.fromtimestamp(event["time"], datetime.UTC)
        event["time"] = moment.strftime("%Y-%m-%dT%H:%M:%SZ")
    if event.get("id") in (None, _MOTO_S3_EVENT_ID):
        event["id"] = str(uuid.uuid4())
    event.pop("ingestion-time", None)
    return event


def install(feed: ActivityFeed) -> None:
    def deliver(arn: Any, target: dict[str, Any], payload: Any) -> None:
        body = json.dumps(payload, default=str)
        if arn.service == "lambda":
            lambda_backend(arn.account, arn.region).invoke(
                target["Arn"], None, body, {"X-Amz-Invocation-Type": "Event"}, {}
            )
        else:
            sfn_backend(arn.account, arn.region).start_execution(target["Arn"], None, body)

    def send_to_targets(
        self: Any, original_event: dict[str, Any], transform_input: bool = True
    ) -> None:
        if not self.event_pattern.get_pattern():
            return  # a scheduled rule matches no event (moto's empty pattern matches them all)
        if not self.event_pattern.matches_event(original_event):
            return
        event = aws_shaped(original_event)
        others = []
        for target in self.targets:
            arn = parse_arn(target["Arn"])
            if arn.service not in ("lambda", "states"):
                others.append(target)
                continue
            if "Input" in target:
                payload: Any = json.loads(target["Input"])
            elif transform_input and "InputTransformer" in target:
                transformer = target["InputTransformer"]
                payload = EventTemplateParser.parse(
                    input_template=transformer.get("InputTemplate"),
                    input_paths_map=transformer.get("InputPathsMap", {}),
                    event=event,
                )
            else:
                payload = event
            feed.emit(
                "eventbridge",
                f"{event.get('detail-type')} -> rule {self.name} -> {arn.resource_id}",
                rule=self.name,
            )
            threading.Thread(target=deliver, args=(arn, target, payload), daemon=True).start()
        if others:
            proxy = copy.copy(self)
            proxy.targets = others
            _send_to_targets(proxy, original_event, transform_input)

    replace(Rule, "send_to_targets", send_to_targets)
