"""CloudWatch for the local cloud: metrics from EMF log lines and service emulations, and the
template's alarms evaluated on them with scaled periods (moto stores alarms, never evaluates them).
"""

from __future__ import annotations

import bisect
import json
import math
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from safe_deploy.localcloud.state import ActivityFeed, LocalSettings

Dimensions = frozenset[tuple[str, str]]


@dataclass(frozen=True)
class Datapoint:
    at: float
    namespace: str
    name: str
    dimensions: Dimensions
    value: float
    unit: str


def _at(point: Datapoint) -> float:
    return point.at


class MetricStore:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        # Each metric's points in time order: an alarm reads its own metric's periods only.
        self._series: dict[tuple[str, str, Dimensions], list[Datapoint]] = {}
        self._pending: list[Datapoint] = []

    def put(
        self,
        namespace: str,
        name: str,
        dimensions: Mapping[str, str],
        value: float,
        unit: str = "None",
        at: float | None = None,
    ) -> None:
        point = Datapoint(
            time.time() if at is None else at,
            namespace,
            name,
            frozenset(dimensions.items()),
            float(value),
            unit,
        )
        with self._lock:
            series = self._series.setdefault((namespace, name, point.dimensions), [])
            if series and series[-1].at > point.at:  # an EMF line's own, earlier timestamp
                bisect.insort(series, point, key=_at)
            else:
                series.append(point)
            self._pending.append(point)

    def ingest_emf(self, line: str) -> bool:
        """One log line: if it is an Embedded Metric Format document, store its metrics."""
        if '"_aws"' not in line:
            return False
        try:
            document = json.loads(line)
            directives = document["_aws"]["CloudWatchMetrics"]
            at = float(document["_aws"].get("Timestamp", time.time() * 1000)) / 1000.0
        except (ValueError, KeyError, TypeError):
            return False
        for directive in directives:
            for dimension_set in directive.get("Dimensions", [[]]):
                dims = {d: str(document[d]) for d in dimension_set if d in document}
                for metric in directive.get("Metrics", []):
                    raw = document.get(metric["Name"])
                    values = raw if isinstance(raw, list) else [raw]
                    for value in values:
                        if isinstance(value, int | float):
                            self.put(
                                directive["Namespace"],
                                metric["Name"],
                                dims,
                                value,
                                metric.get("Unit", "None"),
                                at,
                            )
        return True

    def values(
        self, namespace: str, name: str, dimensions: Mapping[str, str], start: float, end: float
    ) -> list[float]:
        with self._lock:
            series = self._series.get((namespace, name, frozenset(dimensions.items())), [])
            first = bisect.bisect_left(series, start, key=_at)
            last = bisect.bisect_left(series, end, lo=first, key=_at)
            return [p.value for p in series[first:last]]

    def sum(self, namespace: str, name: str, dimensions: Mapping[str, str], since: float) -> float:
        return sum(self.values(namespace, name, dimensions, since, math.inf))

    def drain(self) -> list[Datapoint]:
        with self._lock:
            pending, self._pending = self._pending, []
        return pending


def _statistic(values: list[float], statistic: str) -> float:
    if statistic == "Sum":
        return sum(values)
    if statistic == "SampleCount":
        return float(len(values))
    if statistic == "Average":
        return sum(values) / len(values)
    if statistic == "Maximum":
        return max(values)
    if statistic == "Minimum":
        return min(values)
    if statistic.startswith("p"):
        ordered = sorted(values)
        rank = max(0, math.ceil(float(statistic[1:]) / 100.0 * len(ordered)) - 1)
        return ordered[rank]
    raise ValueError(f"statistic {statistic} is not emulated")


_COMPARE: dict[str, Callable[[float, float], bool]] = {
    "GreaterThanOrEqualToThreshold": lambda v, t: v >= t,
    "GreaterThanThreshold": lambda v, t: v > t,
    "LessThanThreshold": lambda v, t: v < t,
    "LessThanOrEqualToThreshold": lambda v, t: v <= t,
}


@dataclass(frozen=True)
class Alarm:
    name: str
    logical_id: str
    namespace: str
    metric: str
    dimensions: dict[str, str]
    statistic: str
    period: float
    evaluation_periods: int
    datapoints_to_alarm: int
    threshold: float
    comparison: str
    description: str = ""
    actions: tuple[str, ...] = ()  # AlarmActions: SNS topics told when the alarm goes to ALARM

    @classmethod
    def from_properties(cls, name: str, logical_id: str, props: Mapping[str, Any]) -> Alarm:
        periods = int(props.get("EvaluationPeriods", 1))
        return cls(
            name=name,
            logical_id=logical_id,
            namespace=props["Namespace"],
            metric=props["MetricName"],
            dimensions={d["Name"]: str(d["Value"]) for d in props.get("Dimensions", [])},
            statistic=props.get("ExtendedStatistic") or props.get("Statistic", "Sum"),
            period=float(props.get("Period", 60)),
            evaluation_periods=periods,
            datapoints_to_alarm=int(props.get("DatapointsToAlarm", periods)),
            threshold=float(props["Threshold"]),
            comparison=props["ComparisonOperator"],
            description=str(props.get("AlarmDescription", "")),
            actions=tuple(str(a) for a in props.get("AlarmActions", [])),
        )


class Alarms:
    """The template's alarms, evaluated like CloudWatch over periods shrunk by the time scale.
    Missing data is not breaching (every alarm in the template says so)."""

    def __init__(self, store: MetricStore, settings: LocalSettings, feed: ActivityFeed) -> None:
        self.store = store
        self.settings = settings
        self.feed = feed
        self.alarms: dict[str, Alarm] = {}
        self.states: dict[str, str] = {}
        self._lock = threading.Lock()
        # Called when an alarm with actions goes to ALARM (the local cloud publishes to SNS).
        self.on_alarm: Callable[[Alarm], None] | None = None

    def add(self, alarm: Alarm) -> None:
        self.alarms[alarm.name] = alarm
        self.states[alarm.name] = "OK"

    def remove(self, name: str) -> None:
        self.alarms.pop(name, None)
        self.states.pop(name, None)

    def evaluate(self, name: str, now: float | None = None) -> str:
        alarm = self.alarms[name]
        now = time.time() if now is None else now
        period = self.settings.scaled(alarm.period)
        breaching = 0
        for index in range(alarm.evaluation_periods):
            end = now - index * period
            values = self.store.values(
                alarm.namespace, alarm.metric, alarm.dimensions, end - period, end
            )
            if values and _COMPARE[alarm.comparison](
                _statistic(values, alarm.statistic), alarm.threshold
            ):
                breaching += 1
        state = "ALARM" if breaching >= alarm.datapoints_to_alarm else "OK"
        with self._lock:
            previous = self.states.get(name)
            self.states[name] = state
        if state != previous:
            self.feed.emit("cloudwatch", f"alarm {alarm.logical_id} is {state}", alarm=name)
            if state == "ALARM" and alarm.actions and self.on_alarm is not None:
                self.on_alarm(alarm)
        return state

    def evaluate_all(self) -> dict[str, str]:
        return {name: self.evaluate(name) for name in list(self.alarms)}
