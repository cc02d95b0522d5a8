"""Helpers shared by the tests: paths, small trip files, reading the prepared splits."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import jsonschema  # type: ignore[import-untyped]
import numpy as np
import pandas as pd
import pytest
from hypothesis import settings

from model.schema import COLUMNS
from model.train import TrainingReport

REPO = Path(__file__).resolve().parents[1]
TLC_DATA = REPO / "tests" / "data"  # real TLC rows, kept with the tests
FEBRUARY_HEAD = TLC_DATA / "green_tripdata_2018-02_head.csv"
JANUARY_SAMPLE = TLC_DATA / "green_tripdata_2018-01_sample.csv"
SCHEMAS = Path(__file__).resolve().parent / "schemas"

SPLIT_HEADER = ",".join(COLUMNS)  # total_amount,duration_minutes,passenger_count,trip_distance
TRIP_HEADER = (
    "VendorID,lpep_pickup_datetime,lpep_dropoff_datetime,passenger_count,trip_distance,total_amount"
)


def examples(wanted: int) -> int:
    """How many examples a property test with its own count explores: ``wanted`` in the full run,
    scaled as the loaded Hypothesis profile scales the default 100 (`make check` loads ``quick``:
    the same properties, fewer random cases)."""
    return max(10, wanted * settings().max_examples // 100)


@dataclass(frozen=True)
class Trained:
    """A model trained by ``train_to_dir`` on prepared synthetic trips."""

    prepared: Path
    model_dir: Path
    report: TrainingReport


def write_trip_csv(path: Path, rows: Sequence[str], header: str = TRIP_HEADER) -> Path:
    """A small TLC-2018-style CSV: header, the empty line TLC files have, then the rows."""
    path.write_text(header + "\n\n" + "\n".join(rows) + "\n")
    return path


def read_split(prepared: Path, name: str) -> pd.DataFrame:
    """One of the prepared files as named columns, floats parsed exactly."""
    path = prepared / f"{name}.csv"
    if name in ("train", "validation"):
        return pd.read_csv(path, header=None, names=list(COLUMNS), float_precision="round_trip")
    return pd.read_csv(path, float_precision="round_trip")


def all_kept_rows(prepared: Path) -> pd.DataFrame:
    """Every kept row (train, validation and test), in a canonical order."""
    parts = [read_split(prepared, name) for name in ("train", "validation", "test")]
    return canonical(pd.concat([part for part in parts if len(part)], ignore_index=True))


def canonical(frame: pd.DataFrame) -> pd.DataFrame:
    ordered = frame[list(COLUMNS)].astype("float64")
    return ordered.sort_values(list(COLUMNS), kind="stable").reset_index(drop=True)


def load_schema(name: str) -> dict[str, Any]:
    schema: dict[str, Any] = json.loads((SCHEMAS / f"{name}.schema.json").read_text())
    return schema


def validate(document: Any, schema_name: str) -> None:
    """Raise ``jsonschema.ValidationError`` if the document does not follow the schema."""
    schema = load_schema(schema_name)
    jsonschema.Draft202012Validator(schema).validate(document)


def schema_errors(document: Any, schema_name: str) -> list[str]:
    schema = load_schema(schema_name)
    validator = jsonschema.Draft202012Validator(schema)
    return [error.message for error in validator.iter_errors(document)]


def read_json(path: Path) -> Any:
    return json.loads(path.read_text())


def rmse(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.sqrt(np.mean((np.asarray(a) - np.asarray(b)) ** 2)))


def offline_aws(monkeypatch: pytest.MonkeyPatch, region: str | None = None) -> None:
    """Credentials for moto and nothing that could reach a real account: no profile, no
    endpoint URL from the shell."""
    for name in ("AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    if region is not None:
        monkeypatch.setenv("AWS_DEFAULT_REGION", region)


def metric_sum(
    cloudwatch: Any, namespace: str, metric: str, dimensions: list[tuple[str, str]]
) -> float:
    """A metric's sum over the last two hours, read through CloudWatch's API: the points
    published with exactly ``dimensions``, given in this order."""
    now = datetime.now(UTC)
    statistics = cloudwatch.get_metric_statistics(
        Namespace=namespace,
        MetricName=metric,
        Dimensions=[{"Name": name, "Value": value} for name, value in dimensions],
        StartTime=now - timedelta(hours=2),
        EndTime=now + timedelta(minutes=5),
        Period=60,
        Statistics=["Sum"],
    )
    return float(sum(point["Sum"] for point in statistics["Datapoints"]))


# CloudFormation's pseudo parameters for a stack "s", for tests that transform a template.
PSEUDO_PARAMETERS = {
    "AWS::Region": "us-east-1",
    "AWS::AccountId": "123456789012",
    "AWS::StackName": "s",
    "AWS::StackId": "arn:aws:cloudformation:us-east-1:123456789012:stack/s/1",
    "AWS::Partition": "aws",
    "AWS::URLSuffix": "amazonaws.com",
}


def as_a_person(
    command: Sequence[str | Path], cwd: Path, timeout: float
) -> subprocess.CompletedProcess[str]:
    """``command`` run as a person runs it from a shell: no terminal, no standard input, and none
    of the tests' ``AWS_`` or ``SAFE_DEPLOY_`` variables (what a person runs must need none)."""
    environment = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("AWS_", "SAFE_DEPLOY_"))
    }
    return subprocess.run(
        command,
        cwd=cwd,
        env=environment,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
