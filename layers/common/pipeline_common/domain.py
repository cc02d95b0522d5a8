"""The input domain: which rows a model can score.

A model answers any row with a number, but only rows like those it was trained on get one it
learned. The bounds are the model's own: the training pipeline keeps Model Monitor's baseline
``statistics.json`` of every model (``runs/<model id>/baseline/``), and a feature's value is in
the domain when ``min <= value <= 2 * max`` of its training data. Above the training maximum is
where drift shows first (longer trips, more passengers), so the domain leaves it room; nothing
grows below a minimum. What no ride can be (no time, no distance, nobody aboard, 1e300) is outside
whatever a baseline says, and is all that is checked when a model's statistics cannot be read.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from pipeline_common.layout import ModelResources, model_id_of_endpoint
from pipeline_common.payload import FEATURES

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

STATISTICS_FILE = "statistics.json"  # what the baseline job writes under baseline_prefix
TAIL_ROOM = 2.0  # the domain ends at this multiple of the training maximum
LARGEST_ANYTHING = 1e6  # no duration (minutes), passenger count or distance (miles) is larger
LISTED_ROWS = 20  # rows outside the domain named in one answer (all are counted)
RETRY_SECONDS = 60.0  # how long unreadable statistics are not asked for again


@dataclass(frozen=True)
class Limit:
    """One bound on one feature, with why it is there."""

    feature: str
    low: float
    high: float
    low_inclusive: bool
    low_reason: str
    high_reason: str

    def problem(self, value: float) -> str | None:
        if value < self.low or (value == self.low and not self.low_inclusive):
            relation = "below" if self.low_inclusive else "not above"
            return f"{self.feature} {value!r} is {relation} {self.low!r}, {self.low_reason}"
        if value > self.high:
            return f"{self.feature} {value!r} is above {self.high!r}, {self.high_reason}"
        return None


@dataclass(frozen=True)
class Outside:
    """Rows outside the domain: how many, and the first few with the reason (1-based rows)."""

    count: int
    listed: tuple[tuple[int, str], ...]


@dataclass(frozen=True)
class Domain:
    """The limits on each feature (in ``FEATURES`` order), and where they come from."""

    limits: tuple[tuple[Limit, ...], ...]
    source: str

    def reason(self, row: Sequence[float]) -> str | None:
        """Why a row is outside the domain (the first failing limit of each feature), if it is."""
        problems = []
        for limits, value in zip(self.limits, row, strict=False):
            problem = next((p for limit in limits if (p := limit.problem(value))), None)
            if problem:
                problems.append(problem)
        return "; ".join(problems) or None

    def outside(self, rows: Sequence[Sequence[float]], listed: int = LISTED_ROWS) -> Outside:
        bounds = [_intersection(limits) for limits in self.limits]

        def inside(row: Sequence[float]) -> bool:
            return all(
                (value > low or (inclusive and value == low)) and value <= high
                for (low, inclusive, high), value in zip(bounds, row, strict=False)
            )

        columns = list(zip(*rows, strict=False))
        if inside([min(c) for c in columns]) and inside([max(c) for c in columns]):
            return Outside(0, ())  # every row inside, seen without a loop in Python
        count, named = 0, list[tuple[int, str]]()
        for index, row in enumerate(rows, start=1):
            if inside(row):
                continue
            count += 1
            if len(named) < listed:
                named.append((index, self.reason(row) or "outside the domain"))
        return Outside(count, tuple(named))


def _intersection(limits: Sequence[Limit]) -> tuple[float, bool, float]:
    """The tightest low bound (and whether it is inclusive) and high bound of the limits."""
    low, inclusive, high = -math.inf, True, math.inf
    for limit in limits:
        if limit.low > low or (limit.low == low and not limit.low_inclusive):
            low, inclusive = limit.low, limit.low_inclusive
        high = min(high, limit.high)
    return low, inclusive, high


_ANY_RIDE = f"beyond any ride ({LARGEST_ANYTHING:,.0f})"
PHYSICAL_LIMITS: Mapping[str, Limit] = {
    "duration_minutes": Limit(
        "duration_minutes", 0.0, LARGEST_ANYTHING, False, "a ride takes some time", _ANY_RIDE
    ),
    "passenger_count": Limit(
        "passenger_count", 1.0, LARGEST_ANYTHING, True, "a ride carries someone", _ANY_RIDE
    ),
    "trip_distance": Limit(
        "trip_distance", 0.0, LARGEST_ANYTHING, False, "a ride goes somewhere", _ANY_RIDE
    ),
}
PHYSICAL = Domain(tuple((PHYSICAL_LIMITS[name],) for name in FEATURES), "what any ride can be")


class StatisticsError(ValueError):
    """A model's baseline statistics cannot be read or do not describe its features."""


def _bound(numbers: Mapping[str, Any], key: str, feature: str) -> float:
    value = numbers.get(key)
    problem = StatisticsError(f"{feature}: numerical_statistics.{key} is not a finite number")
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise problem
    try:
        bound = float(value)
    except OverflowError:  # an integer no float holds
        raise problem from None
    if not math.isfinite(bound):
        raise problem
    return bound


def domain_from_statistics(document: Any, source: str) -> Domain:
    """The domain a Model Monitor ``statistics.json`` describes, within the physical limits.
    Columns that are not features (the label) are ignored."""
    features = document.get("features") if isinstance(document, dict) else None
    if not isinstance(features, list):
        raise StatisticsError('no "features" list')
    by_name = {
        f["name"]: f for f in features if isinstance(f, dict) and isinstance(f.get("name"), str)
    }
    limits = []
    for name in FEATURES:
        numbers = by_name.get(name, {}).get("numerical_statistics")
        if not isinstance(numbers, dict):
            raise StatisticsError(f"no numerical statistics for {name}")
        common = numbers.get("common", {})
        if not isinstance(common, dict):
            raise StatisticsError(f"{name}: numerical_statistics.common is not an object")
        present = common.get("num_present", 1)
        if not isinstance(present, int | float) or not present >= 1:
            raise StatisticsError(f"{name}: no values in the baseline")  # min and max are 0 then
        low, high = _bound(numbers, "min", name), _bound(numbers, "max", name)
        if low > high:
            raise StatisticsError(f"{name}: min {low!r} is above max {high!r}")
        trained = Limit(
            name,
            low,
            max(TAIL_ROOM * high, high),
            True,
            "the smallest in the model's training data",
            f"{TAIL_ROOM:g} times the largest in the model's training data ({high!r})",
        )
        limits.append((trained, PHYSICAL_LIMITS[name]))
    return Domain(tuple(limits), source)


class BaselineDomains:
    """Each endpoint's domain, read from its model's baseline once and kept: a model's baseline
    never changes. When the statistics cannot be read (missing, access denied, malformed), a
    warning, the physical domain, and another read only after ``retry_seconds``."""

    def __init__(
        self,
        s3: S3Client,
        bucket: str,
        warn: Callable[[str], object] = lambda message: None,
        retry_seconds: float = RETRY_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.s3 = s3
        self.bucket = bucket
        self.warn = warn
        self.retry_seconds = retry_seconds
        self.clock = clock
        self._known: dict[str, Domain] = {}
        self._retry_at: dict[str, float] = {}

    def location(self, endpoint: str) -> str:
        """The S3 key of the statistics of the model an endpoint serves."""
        resources = ModelResources(model_id_of_endpoint(endpoint))
        return f"{resources.baseline_prefix}{STATISTICS_FILE}"

    def domain_of(self, endpoint: str) -> Domain:
        if endpoint in self._known:
            return self._known[endpoint]
        if self.clock() < self._retry_at.get(endpoint, -math.inf):
            return PHYSICAL
        try:
            domain = self._read(endpoint)
        except StatisticsError as exc:
            self.warn(
                f"input domain of {endpoint}: {exc}; checking rows against what any ride can be "
                f"until it can be read (tried again in {self.retry_seconds:g} s)"
            )
            self._retry_at[endpoint] = self.clock() + self.retry_seconds
            return PHYSICAL
        self._known[endpoint] = domain
        self._retry_at.pop(endpoint, None)
        return domain

    def _read(self, endpoint: str) -> Domain:
        try:
            key = self.location(endpoint)
        except ValueError as exc:
            raise StatisticsError(str(exc)) from exc
        where = f"s3://{self.bucket}/{key}"
        try:
            body = self.s3.get_object(Bucket=self.bucket, Key=key)["Body"].read()
        except (ClientError, BotoCoreError) as exc:
            raise StatisticsError(f"{where} cannot be read ({exc})") from exc
        try:
            document = json.loads(body)
        except (ValueError, RecursionError) as exc:  # UnicodeDecodeError is a ValueError
            raise StatisticsError(f"{where} is not JSON ({exc})") from exc
        try:
            return domain_from_statistics(document, where)
        except StatisticsError as exc:
            raise StatisticsError(f"{where}: {exc}") from exc
