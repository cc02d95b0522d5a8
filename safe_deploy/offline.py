"""Serving without a cloud: score rows with a model and write what an endpoint would capture."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import orjson
from pipeline_common.capture import capture_record

from model.serve import FareModel


def _csv_row(values: Sequence[float]) -> str:
    return ",".join(repr(float(v)) for v in values)


def serve_and_capture(
    model: FareModel,
    features: np.ndarray,
    capture_file: Path,
    labels: np.ndarray | None = None,
    ground_truth_file: Path | None = None,
    id_prefix: str = "req",
) -> np.ndarray:
    """One captured request per row, as an endpoint with data capture on writes them.

    With ``labels`` and ``ground_truth_file``, also writes SageMaker ground-truth records whose
    ``eventId`` is each request's ``inferenceId``.
    """
    predictions = model.predict(features)
    now = datetime.now(UTC)
    capture_file.parent.mkdir(parents=True, exist_ok=True)
    with capture_file.open("wb") as out:
        for index, (row, prediction) in enumerate(zip(features, predictions, strict=True)):
            record = capture_record(
                _csv_row(row),
                repr(float(prediction)),
                inference_time=now,
                inference_id=f"{id_prefix}-{index}",
            )
            out.write(orjson.dumps(record) + b"\n")
    if labels is not None and ground_truth_file is not None:
        ground_truth_file.parent.mkdir(parents=True, exist_ok=True)
        with ground_truth_file.open("wb") as out:
            for index, label in enumerate(labels):
                record = {
                    "groundTruthData": {"data": repr(float(label)), "encoding": "CSV"},
                    "eventMetadata": {"eventId": f"{id_prefix}-{index}"},
                    "eventVersion": "0",
                }
                out.write(orjson.dumps(record) + b"\n")
    return predictions
