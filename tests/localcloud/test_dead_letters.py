"""Asynchronous invocations in the local cloud, as Lambda runs them: a failed event is retried
twice and then kept in the function's dead-letter queue, whose alarm tells the notification topic.
This is how a raw-data event that could not start the pipeline is kept (a lost event would be a
month that never trains)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from safe_deploy.localcloud.cloud import LocalCloud
from safe_deploy.localcloud.state import LocalSettings

ROOT = Path(__file__).resolve().parents[2]
BROKEN_EVENT = {"source": "aws.s3", "detail-type": "Object Created", "detail": {}}


@pytest.fixture(scope="module")
def cloud(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCloud]:
    settings = LocalSettings(
        project_root=ROOT,
        workdir=tmp_path_factory.mktemp("dead-letters") / "cloud",
        local_channels=False,
    )
    cloud = LocalCloud(settings).start()
    try:
        yield cloud
    finally:
        cloud.stop()


def _start_pipeline(cloud: LocalCloud) -> str:
    names = [f["FunctionName"] for f in cloud.client("lambda").list_functions()["Functions"]]
    (name,) = [str(n) for n in names if "StartPipelineFunction" in n]
    return name


def _dead_letters(cloud: LocalCloud) -> list[dict[str, Any]]:
    sqs = cloud.client("sqs")
    (url,) = [u for u in sqs.list_queues()["QueueUrls"] if "StartPipelineDeadLetterQueue" in u]
    messages = sqs.receive_message(
        QueueUrl=url, MaxNumberOfMessages=10, MessageAttributeNames=["All"], VisibilityTimeout=0
    )
    return list(messages.get("Messages", []))


def test_a_failing_event_is_retried_then_kept_and_the_alarm_tells_the_topic(
    cloud: LocalCloud,
) -> None:
    name = _start_pipeline(cloud)
    cloud.client("lambda").invoke(
        FunctionName=name, InvocationType="Event", Payload=json.dumps(BROKEN_EVENT).encode()
    )
    kept = cloud.wait_for(
        lambda: _dead_letters(cloud), 60, what="the event in the dead-letter queue"
    )
    (message,) = kept
    assert json.loads(message["Body"]) == BROKEN_EVENT
    assert message["MessageAttributes"]["ErrorMessage"]["StringValue"]
    runs = [a for a in cloud.feed.items if a.source == "lambda" and a.data.get("function") == name]
    assert any("failed 3 times" in a.message for a in runs)
    cloud.wait_for(
        lambda: cloud.feed.find("cloudwatch", "StartPipelineDeadLettersAlarm is ALARM"),
        60,
        what="the dead-letter alarm",
    )
    alarm_name = cloud.client("cloudformation").describe_stack_resource(
        StackName=cloud.settings.stack_name, LogicalResourceId="StartPipelineDeadLettersAlarm"
    )["StackResourceDetail"]["PhysicalResourceId"]
    cloudwatch = cloud.client("cloudwatch")
    cloud.wait_for(
        lambda: cloudwatch.describe_alarms(AlarmNames=[alarm_name], StateValue="ALARM")[
            "MetricAlarms"
        ],
        30,
        what="the alarm's state in CloudWatch",
    )
    topic = cloud.outputs["NotificationTopicArn"]
    told = cloud.wait_for(
        lambda: [
            m
            for m in (json.loads(p.read_text()) for p in sorted(cloud.outbox.rglob("*.json")))
            if alarm_name in str(m.get("subject", "")) or alarm_name in str(m.get("message", ""))
        ],
        30,
        what=f"the alarm's message on {topic}",
    )
    assert told
