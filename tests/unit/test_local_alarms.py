"""The local cloud's CloudWatch: metric points as EMF lines and services report them, and the
template's alarms evaluated on them as CloudWatch evaluates them (each period's statistic against
the threshold, ``DatapointsToAlarm`` of ``EvaluationPeriods``, missing data not breaching)."""

from __future__ import annotations

import json
from pathlib import Path

from safe_deploy.localcloud.metrics import Alarm, Alarms, MetricStore
from safe_deploy.localcloud.state import ActivityFeed, LocalSettings

NAMESPACE = "SafeDeploy"
GREEN = {"EndpointName": "fare-2-prod"}
BLUE = {"EndpointName": "fare-1-prod"}


def emf(at: float, name: str, value: float, **dimensions: str) -> str:
    return json.dumps(
        {
            "_aws": {
                "Timestamp": int(at * 1000),
                "CloudWatchMetrics": [
                    {
                        "Namespace": NAMESPACE,
                        "Dimensions": [sorted(dimensions)],
                        "Metrics": [{"Name": name, "Unit": "Count"}],
                    }
                ],
            },
            name: value,
            **dimensions,
        }
    )


def test_a_metric_reads_only_its_own_points_in_the_window_asked_for() -> None:
    store = MetricStore()
    store.put(NAMESPACE, "Errors", GREEN, 1, at=100.0)
    store.put(NAMESPACE, "Errors", GREEN, 2, at=110.0)
    store.put(NAMESPACE, "Errors", BLUE, 40, at=105.0)  # another endpoint
    store.put(NAMESPACE, "Requests", GREEN, 50, at=105.0)  # another metric
    store.put("Other", "Errors", GREEN, 60, at=105.0)  # another namespace
    assert store.ingest_emf(emf(104.0, "Errors", 4, **GREEN))  # an earlier timestamp, late
    assert not store.ingest_emf("INFO predict answered")

    assert store.values(NAMESPACE, "Errors", GREEN, 100.0, 110.0) == [1, 4]  # end excluded
    assert sorted(store.values(NAMESPACE, "Errors", GREEN, 104.0, 111.0)) == [2, 4]
    assert store.values(NAMESPACE, "Errors", {"EndpointName": "fare-3-prod"}, 0, 1e9) == []
    assert store.sum(NAMESPACE, "Errors", GREEN, since=101.0) == 6
    assert len(store.drain()) == 6
    assert store.drain() == []


def test_an_alarm_fires_when_enough_periods_breach_and_recovers_when_they_do_not(
    tmp_path: Path,
) -> None:
    settings = LocalSettings(project_root=tmp_path, workdir=tmp_path, time_scale=1.0)
    store, feed = MetricStore(), ActivityFeed()
    alarms = Alarms(store, settings, feed)
    fired: list[str] = []
    alarms.on_alarm = lambda alarm: fired.append(alarm.name)
    properties = {
        "Namespace": NAMESPACE,
        "MetricName": "Errors",
        "Dimensions": [{"Name": "EndpointName", "Value": GREEN["EndpointName"]}],
        "Statistic": "Sum",
        "Period": 60,
        "EvaluationPeriods": 3,
        "DatapointsToAlarm": 2,
        "Threshold": 5,
        "ComparisonOperator": "GreaterThanThreshold",
        "AlarmActions": ["arn:aws:sns:us-east-1:123456789012:alerts"],
    }
    alarms.add(Alarm.from_properties("green-errors", "GreenErrors", properties))
    now = 1_000_000.0

    store.put(NAMESPACE, "Errors", GREEN, 9, at=now - 30)  # one breaching period of three
    store.put(NAMESPACE, "Errors", BLUE, 90, at=now - 90)  # blue's errors are not green's
    assert alarms.evaluate("green-errors", now) == "OK"

    store.put(NAMESPACE, "Errors", GREEN, 3, at=now - 100)  # 3 + 4 in the second period
    store.put(NAMESPACE, "Errors", GREEN, 4, at=now - 70)
    assert alarms.evaluate("green-errors", now) == "ALARM"
    assert fired == ["green-errors"]

    assert alarms.evaluate("green-errors", now + 120) == "OK"  # the breaches have aged out
    assert [item.message for item in feed.items] == [
        "alarm GreenErrors is ALARM",
        "alarm GreenErrors is OK",
    ]
