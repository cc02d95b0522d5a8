"""Inference with the XGBoost serving container's contract.

``text/csv`` rows of the three features in (one or many rows), one prediction per line out;
``application/json`` in (``{"instances": [[...], ...]}``) and out (``{"predictions": [{"score":
...}]}``). A request the model cannot score raises :class:`PayloadError` naming the row.
"""

from __future__ import annotations

import json
import math
import tarfile
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import xgboost as xgb

from model.errors import PayloadError
from model.schema import FEATURES
from model.train import MODEL_ARCHIVE, MODEL_FILE

CSV = "text/csv"
JSON = "application/json"
MAX_ROWS = 100_000


def _media_type(value: str | None, default: str) -> str:
    return (value or default).split(";")[0].strip().lower() or default


def load_booster(path: Path) -> xgb.Booster:
    """A model from a folder (``xgboost-model`` or ``model.tar.gz``), an archive, or the file."""
    path = Path(path)
    if path.is_dir():
        for name in (MODEL_FILE, MODEL_ARCHIVE):
            if (path / name).exists():
                return load_booster(path / name)
        raise FileNotFoundError(f"{path}: holds neither {MODEL_FILE} nor {MODEL_ARCHIVE}")
    if path.name.endswith(".tar.gz"):
        with tempfile.TemporaryDirectory() as tmp, tarfile.open(path) as tar:
            member = tar.getmember(MODEL_FILE)
            tar.extractall(tmp, members=[member], filter="data")
            return load_booster(Path(tmp) / MODEL_FILE)
    booster = xgb.Booster()
    booster.load_model(bytearray(path.read_bytes()))  # from bytes: the format is detected
    return booster


def _number(text: str, row: int, column: int) -> float:
    name = FEATURES[column] if column < len(FEATURES) else f"column {column + 1}"
    try:
        value = float(text)
    except ValueError:
        shown = text.strip() or "(empty)"
        raise PayloadError(f"{name}: {shown!r} is not a number", row) from None
    if not math.isfinite(value):
        raise PayloadError(f"{name}: {text.strip()} is not a finite number", row)
    return value


def _rows_from_csv(text: str, width: int) -> list[list[float]]:
    lines = text.strip("\r\n").splitlines()
    rows = []
    for index, line in enumerate(lines, start=1):
        cells = line.split(",")
        if len(cells) != width:
            raise PayloadError(
                f"expected {width} values ({', '.join(FEATURES)}), got {len(cells)}", index
            )
        rows.append([_number(cell, index, col) for col, cell in enumerate(cells)])
    return rows


def _rows_from_json(text: str, width: int) -> list[list[float]]:
    try:
        document = json.loads(text)
    except json.JSONDecodeError as exc:
        raise PayloadError(f"body is not valid JSON ({exc.msg})") from None
    instances: Any = document.get("instances") if isinstance(document, dict) else document
    if isinstance(instances, list) and instances and not isinstance(instances[0], (list, dict)):
        instances = [instances]  # one bare row
    if not isinstance(instances, list):
        raise PayloadError('JSON body needs "instances": a list of rows')
    rows = []
    for index, item in enumerate(instances, start=1):
        values = item.get("features") if isinstance(item, dict) else item
        if not isinstance(values, list) or len(values) != width:
            raise PayloadError(f"expected a list of {width} numbers ({', '.join(FEATURES)})", index)
        row = []
        for col, value in enumerate(values):
            if isinstance(value, bool) or not isinstance(value, (int, float, str)):
                raise PayloadError(f"{FEATURES[col]}: {value!r} is not a number", index)
            row.append(_number(str(value), index, col))
        rows.append(row)
    return rows


def parse_payload(body: bytes | str, content_type: str | None, width: int = 3) -> np.ndarray:
    """Rows of features from a request body; :class:`PayloadError` says what is wrong."""
    media = _media_type(content_type, CSV)
    if media not in (CSV, JSON):
        raise PayloadError(f"content type {media!r} is not supported; send {CSV} or {JSON}")
    try:
        text = body.decode("utf-8") if isinstance(body, bytes) else body
    except UnicodeDecodeError:
        raise PayloadError("body is not UTF-8 text") from None
    if not text.strip():
        raise PayloadError("empty body: send at least one row of " + ", ".join(FEATURES))
    rows = _rows_from_csv(text, width) if media == CSV else _rows_from_json(text, width)
    if not rows:
        raise PayloadError("no rows in the body")
    if len(rows) > MAX_ROWS:
        raise PayloadError(f"{len(rows):,} rows in one request; at most {MAX_ROWS:,}")
    return np.asarray(rows, dtype=np.float64)


def format_predictions(predictions: np.ndarray, accept: str | None) -> tuple[bytes, str]:
    media = _media_type(accept, CSV)
    if media in (CSV, "*/*"):
        return ("\n".join(repr(float(p)) for p in predictions) + "\n").encode(), CSV
    if media == JSON:
        body = {"predictions": [{"score": float(p)} for p in predictions]}
        return json.dumps(body).encode(), JSON
    raise PayloadError(f"accept type {media!r} is not supported; ask for {CSV} or {JSON}")


class FareModel:
    """A loaded model answering requests like the serving container."""

    def __init__(self, booster: xgb.Booster) -> None:
        self.booster = booster
        self.width = booster.num_features()

    @classmethod
    def load(cls, path: Path) -> FareModel:
        return cls(load_booster(path))

    def predict(self, features: np.ndarray) -> np.ndarray:
        return np.asarray(self.booster.inplace_predict(features), dtype=np.float64)

    def invoke(
        self, body: bytes | str, content_type: str | None = CSV, accept: str | None = CSV
    ) -> tuple[bytes, str]:
        rows = parse_payload(body, content_type, self.width)
        return format_predictions(self.predict(rows), accept)
