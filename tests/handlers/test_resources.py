"""The handler tests' resources are the local cloud's: made by its CloudFormation creators from
the template, so what a handler meets under moto (a bucket's versioning, lifecycle rules and
EventBridge notifications, a table's keys and TTL, a parameter's value, the state machine's ASL)
is what the template declares, read back here through boto3."""

from __future__ import annotations

import json
from typing import Any

import boto3
import pytest

from tests.handlers.support import REGION, REPO, TEMPLATE, Cloud

# The lifecycle rule properties the bucket test compares; a rule using another fails the test
# until the comparison reads it too.
LIFECYCLE_READ = {"Id", "Status", "ExpirationInDays", "NoncurrentVersionExpiration"}


@pytest.fixture
def cloud(cloud: Cloud) -> Cloud:
    """Every resource some function names, made up front (a handler test makes what it uses)."""
    cloud.make_all()
    return cloud


def _declared(logical_id: str) -> dict[str, Any]:
    properties: dict[str, Any] = TEMPLATE["Resources"][logical_id].get("Properties", {})
    return properties


def _made(cloud: Cloud, kind: str) -> list[str]:
    """The logical ids of the given type the handler tests have made (at least one)."""
    made = sorted(
        logical_id
        for logical_id in cloud.stack.physical_ids
        if TEMPLATE["Resources"][logical_id]["Type"] == kind
    )
    assert made, f"the handler tests make no {kind}"
    return made


def test_buckets_keep_the_templates_versioning_and_lifecycle_rules(cloud: Cloud) -> None:
    for logical_id in _made(cloud, "AWS::S3::Bucket"):
        declared, bucket = _declared(logical_id), cloud.ref(logical_id)
        rules = declared.get("LifecycleConfiguration", {}).get("Rules", [])

        versioning = cloud.s3.get_bucket_versioning(Bucket=bucket).get("Status")
        lifecycle = (
            cloud.s3.get_bucket_lifecycle_configuration(Bucket=bucket)["Rules"] if rules else []
        )

        assert versioning == declared.get("VersioningConfiguration", {}).get("Status"), logical_id
        assert all(set(rule) <= LIFECYCLE_READ for rule in rules), rules
        assert [
            (
                rule["ID"],
                rule["Status"],
                rule.get("Expiration", {}).get("Days"),
                rule.get("NoncurrentVersionExpiration", {}).get("NoncurrentDays"),
            )
            for rule in lifecycle
        ] == [
            (
                rule["Id"],
                rule["Status"],
                rule.get("ExpirationInDays"),
                rule.get("NoncurrentVersionExpiration", {}).get("NoncurrentDays"),
            )
            for rule in rules
        ], logical_id


def test_buckets_send_object_events_to_eventbridge_as_the_template_says(cloud: Cloud) -> None:
    """What starts the pipeline: S3's events on EventBridge (moto does not answer the setting
    back, so an object written is followed to a rule's queue)."""
    events = boto3.client("events", region_name=REGION)
    for logical_id in _made(cloud, "AWS::S3::Bucket"):
        bucket = cloud.ref(logical_id)
        notification = _declared(logical_id).get("NotificationConfiguration", {})
        enabled = notification.get("EventBridgeConfiguration", {}).get("EventBridgeEnabled")
        queue = cloud.sqs.create_queue(QueueName=f"events-{bucket}")["QueueUrl"]
        queue_arn = cloud.sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])[
            "Attributes"
        ]["QueueArn"]
        pattern = {"source": ["aws.s3"], "detail": {"bucket": {"name": [bucket]}}}
        events.put_rule(Name=f"objects-{logical_id}", EventPattern=json.dumps(pattern))
        events.put_targets(Rule=f"objects-{logical_id}", Targets=[{"Id": "q", "Arn": queue_arn}])

        cloud.s3.put_object(Bucket=bucket, Key="probe.csv", Body=b"1")

        received = cloud.sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10)
        types = [json.loads(m["Body"])["detail-type"] for m in received.get("Messages", [])]
        if enabled:
            assert "Object Created" in types, logical_id
        else:
            assert types == [], logical_id


def test_tables_keep_the_templates_keys_indexes_and_time_to_live(cloud: Cloud) -> None:
    for logical_id in _made(cloud, "AWS::DynamoDB::Table"):
        declared, name = _declared(logical_id), cloud.ref(logical_id)

        table = cloud.dynamodb.describe_table(TableName=name)["Table"]
        ttl = cloud.dynamodb.describe_time_to_live(TableName=name)["TimeToLiveDescription"]

        assert table["KeySchema"] == declared["KeySchema"], logical_id
        assert sorted(i["IndexName"] for i in table.get("GlobalSecondaryIndexes", [])) == sorted(
            i["IndexName"] for i in declared.get("GlobalSecondaryIndexes", [])
        ), logical_id
        assert table["BillingModeSummary"]["BillingMode"] == declared["BillingMode"], logical_id
        spec = declared.get("TimeToLiveSpecification")
        if spec and spec["Enabled"]:
            assert ttl == {"TimeToLiveStatus": "ENABLED", "AttributeName": spec["AttributeName"]}
        else:
            assert ttl["TimeToLiveStatus"] == "DISABLED", logical_id


def test_parameters_hold_the_templates_values(cloud: Cloud) -> None:
    for logical_id in _made(cloud, "AWS::SSM::Parameter"):
        declared = _declared(logical_id)

        parameter = cloud.ssm.get_parameter(Name=cloud.ref(logical_id))["Parameter"]

        assert (parameter["Type"], parameter["Value"]) == (declared["Type"], declared["Value"])


def test_the_signing_secret_is_generated_as_the_template_asks(cloud: Cloud) -> None:
    for logical_id in _made(cloud, "AWS::SecretsManager::Secret"):
        generate = _declared(logical_id)["GenerateSecretString"]

        value = cloud.secrets.get_secret_value(SecretId=cloud.ref(logical_id))["SecretString"]

        assert len(value) == generate["PasswordLength"]
        assert value.isalnum()


def test_the_state_machine_runs_the_templates_asl_with_the_templates_role(cloud: Cloud) -> None:
    for logical_id in _made(cloud, "AWS::Serverless::StateMachine"):
        declared = _declared(logical_id)

        machine = cloud.sfn.describe_state_machine(stateMachineArn=cloud.ref(logical_id))

        asl = json.loads((REPO / declared["DefinitionUri"]).read_text())
        assert json.loads(machine["definition"]) == asl
        assert machine["name"] == cloud.stack.resolve(declared["Name"])
        role = cloud.deployed.resources[f"{logical_id}Role"]  # the role SAM makes for it
        assert machine["roleArn"] == role.attributes["Arn"]


def test_only_properties_naming_what_the_tests_stand_in_for_are_left_out(cloud: Cloud) -> None:
    """Where the handler tests' resources differ from the local cloud's: the API's body names
    the functions (its routes), and the training state machine's substitutions and its role's
    policies name functions too. Anything else left out is a new difference to look at."""
    assert cloud.left_out == {
        "FaresApi": ["Body"],
        "TrainingStateMachine": ["DefinitionSubstitutions"],
        "TrainingStateMachineRole": ["Policies"],
    }
