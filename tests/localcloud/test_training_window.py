"""A training window of several months through the local cloud: the start function copies the
newest months at their versions, PrepareData reads all of them, and ``status`` shows which."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from rich.console import Console

from model.synth import synth_trips, write_trips
from safe_deploy import ops
from safe_deploy.cli_status import run_block
from tests.e2e.conftest import running_demo

ROWS = 400


def _month(folder: Path, number: int) -> Path:
    path = folder / f"green_tripdata_2018-{number:02d}.csv"
    write_trips(synth_trips(ROWS, seed=number, month=f"2018-{number:02d}"), path)
    return path


def test_two_months_are_prepared_together_and_status_names_them(tmp_path: Path) -> None:
    with running_demo(tmp_path, {"TrainingWindowMonths": "2"}) as demo:
        target = demo.target
        january, february = _month(tmp_path, 1), _month(tmp_path, 2)
        first = demo.upload(january)
        demo.follow(first, lambda run: run.step == "TrainAndBaseline", 120)
        second = demo.upload(february)
        demo.follow(second, lambda run: run.step == "TrainAndBaseline", 120)

        s3 = target.client("s3")
        bucket = target.output("ArtifactBucketName")

        def summary(run: str) -> dict[str, Any]:
            body = s3.get_object(Bucket=bucket, Key=f"runs/{run}/prepared/summary.json")["Body"]
            return dict(json.loads(body.read()))

        one, both = summary(first), summary(second)
        assert one["rows_read"] == ROWS
        assert both["rows_read"] == 2 * ROWS  # both months, each read once
        assert sorted(Path(str(s["path"])).name for s in both["sources"]) == [
            january.name,
            february.name,
        ]

        run = ops.describe_run(
            target, target.client("stepfunctions"), second, ops.find_run(target, second)
        )
        assert run.data["months_covered"] == ["2018-02", "2018-01"]
        console = Console(record=True, width=200)
        console.print(run_block(run))
        shown = console.export_text()
        assert "2-month window: 2018-02, 2018-01" in shown
        assert f"raw/{january.name}, version" in shown
