"""Prediction requests: rows of ``duration_minutes, passenger_count, trip_distance``.

``text/csv`` (one row a line) or ``application/json`` (``{"instances": [[...], ...]}``, a list of
rows, or one bare row). Every way a request can be wrong raises :class:`PayloadError` with the
row and the problem, so callers can answer 4xx with a message a person can act on.
"""

from __future__ import annotations

import json
import math
from typing import Any

FEATURES: tuple[str, ...] = ("duration_minutes", "passenger_count", "trip_distance")
CSV = "text/csv"
JSON = "application/json"
MAX_ROWS = 100_000


class PayloadError(ValueError):
    """A request the model cannot score; names the row and the problem."""

    status = 400

    def __init__(self, message: str, row: int | None = None) -> None:
        self.row = row
        super().__init__(f"row {row}: {message}" if row is not None else message)


class UnsupportedMediaType(PayloadError):
    status = 415


class NotAcceptable(PayloadError):
    status = 406


class PayloadTooLarge(PayloadError):
    status = 413


def media_type(value: str | None, default: str = CSV) -> str:
    return (value or default).split(";")[0].strip().lower() or default


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
    rows = []
    for index, line in enumerate(text.strip("\r\n").splitlines(), start=1):
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
    if isinstance(instances, list) and instances and not isinstance(instances[0], list | dict):
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
            if isinstance(value, bool) or not isinstance(value, int | float | str):
                raise PayloadError(f"{FEATURES[col]}: {value!r} is not a number", index)
            row.append(_number(str(value), index, col))
        rows.append(row)
    return rows


def parse_rows(
    body: bytes | str, content_type: str | None, width: int = len(FEATURES)
) -> list[list[float]]:
    """Rows of features from a request body."""
    media = media_type(content_type)
    if media not in (CSV, JSON):
        raise UnsupportedMediaType(f"content type {media!r} is not supported; send {CSV} or {JSON}")
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
        raise PayloadTooLarge(f"{len(rows):,} rows in one request; at most {MAX_ROWS:,}")
    return rows


def to_csv(rows: list[list[float]]) -> str:
    """The rows as the endpoint's ``text/csv`` input."""
    return "\n".join(",".join(repr(v) for v in row) for row in rows)


def parse_predictions(body: bytes | str) -> list[float]:
    """An XGBoost container's ``text/csv`` answer: one score a line (or comma-separated)."""
    text = body.decode("utf-8") if isinstance(body, bytes) else body
    return [float(v) for v in text.replace(",", "\n").split()]


def format_predictions(predictions: list[float], accept: str | None) -> tuple[str, str]:
    """Predictions in the media type the caller asked for."""
    media = media_type(accept)
    if media in (CSV, "*/*"):
        return "".join(f"{p!r}\n" for p in predictions), CSV
    if media == JSON:
        return json.dumps({"predictions": [{"score": p} for p in predictions]}), JSON
    raise NotAcceptable(f"accept type {media!r} is not supported; ask for {CSV} or {JSON}")
