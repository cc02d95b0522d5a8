"""Inference with the XGBoost serving container's contract.

``text/csv`` rows of the three features in (one or many rows), one prediction per line out;
``application/json`` in (``{"instances": [[...], ...]}``) and out (``{"predictions": [{"score":
...}]}``). A request the model cannot score raises :class:`PayloadError` naming the row.
"""

from __future__ import annotations

import tarfile
import tempfile
from pathlib import Path

import numpy as np
import xgboost as xgb
from pipeline_common import payload

from model.train import MODEL_ARCHIVE, MODEL_FILE

CSV = payload.CSV
JSON = payload.JSON
MAX_ROWS = payload.MAX_ROWS
PayloadError = payload.PayloadError


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


def parse_payload(body: bytes | str, content_type: str | None, width: int = 3) -> np.ndarray:
    """Rows of features from a request body; :class:`PayloadError` says what is wrong."""
    return np.asarray(payload.parse_rows(body, content_type, width), dtype=np.float64)


def format_predictions(predictions: np.ndarray, accept: str | None) -> tuple[bytes, str]:
    text, media = payload.format_predictions([float(p) for p in predictions], accept)
    return text.encode(), media


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
