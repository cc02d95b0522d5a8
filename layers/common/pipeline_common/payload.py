"""Prediction requests: rows of ``duration_minutes, passenger_count, trip_distance``.

``text/csv`` (one row a line) or ``application/json`` (``{"instances": [[...], ...]}``, a list of
rows, or one bare row). Reading a request is total: whatever the bytes and the headers, the
answer is rows or a :class:`PayloadError` with the row and the problem (never another exception),
so callers answer 4xx with a message a person can act on.
"""

from __future__ import annotations

import base64
import json
import math
import re
from typing import Any

FEATURES: tuple[str, ...] = ("duration_minutes", "passenger_count", "trip_distance")
CSV = "text/csv"
JSON = "application/json"
MAX_ROWS = 100_000
UTF8_CHARSETS = frozenset({"utf-8", "utf8", "us-ascii", "ascii"})  # ASCII is a subset of UTF-8
SHOWN_CHARACTERS = 40  # of a value quoted in a message

_NOT_FINITE = re.compile(r"[+-]?(?:nan|inf|infinity)", re.ASCII | re.IGNORECASE)

# What each media range of an Accept header offers, and how specific the range is; where the
# caller does not prefer one, CSV (the container's own default) comes first.
_PREFERENCE = {CSV: 1, JSON: 0}
_OFFERS: dict[str, tuple[tuple[str, int], ...]] = {
    CSV: ((CSV, 2),),
    JSON: ((JSON, 2),),
    "text/*": ((CSV, 1),),
    "application/*": ((JSON, 1),),
    "*/*": ((CSV, 0), (JSON, 0)),
    "*": ((CSV, 0), (JSON, 0)),
}


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


def shown(text: str) -> str:
    """``text`` quoted for a message, cut to a readable length."""
    if len(text) > SHOWN_CHARACTERS:
        return repr(text[:SHOWN_CHARACTERS]) + "…"
    return repr(text)


def parse_media_type(value: str | None, default: str = CSV) -> tuple[str, dict[str, str]]:
    """``type/subtype`` in lower case and the parameters (names and values in lower case)."""
    main, *parameters = (value or "").split(";")
    media = main.strip().lower() or default
    found = {}
    for parameter in parameters:
        name, equals, setting = parameter.partition("=")
        if equals:
            found[name.strip().lower()] = setting.strip().strip('"').lower()
    return media, found


def read_body(body: str | None, base64_encoded: bool | None, max_bytes: int) -> bytes:
    """A proxy event's body as bytes. API Gateway base64-encodes every body whose media type is one
    of the API's binary types (``*/*``: every body with a Content-Type)."""
    too_large = PayloadTooLarge(f"body over {max_bytes:,} bytes")
    text = body or ""
    if base64_encoded:
        if len(text) > 4 * (max_bytes // 3 + 2):  # decodes to more than max_bytes
            raise too_large
        try:
            raw = base64.b64decode(text, validate=True)
        except ValueError:  # binascii.Error, or characters outside ASCII
            raise PayloadError("body is marked base64-encoded but is not valid base64") from None
    else:
        if len(text) > max_bytes:  # every character is at least one byte
            raise too_large
        raw = text.encode("utf-8", "surrogatepass")  # a lone surrogate fails as UTF-8 below
    if len(raw) > max_bytes:
        raise too_large
    return raw


def _feature(column: int) -> str:
    return FEATURES[column] if column < len(FEATURES) else f"column {column + 1}"


def _number(text: str, row: int, column: int) -> float:
    """A CSV cell, or a JSON string holding a number: ASCII digits, a sign, a point, an
    exponent (float() alone would also take "1_000" and digits of other scripts)."""
    cell = text.strip()
    try:
        value = float(cell)
    except ValueError:
        value = None
    if value is None or "_" in cell or not cell.isascii():
        shown_cell = shown(cell) if cell else "(empty)"
        raise PayloadError(f"{_feature(column)}: {shown_cell} is not a number", row)
    if not math.isfinite(value):
        if _NOT_FINITE.fullmatch(cell):
            raise PayloadError(f"{_feature(column)}: {cell} is not a finite number", row)
        raise PayloadError(f"{_feature(column)}: {shown(cell)} is out of range", row)
    return value


def _rows_from_csv(text: str, width: int) -> list[list[float]]:
    rows = []
    for index, line in enumerate(text.strip("\r\n").splitlines(), start=1):
        if index > MAX_ROWS:
            raise PayloadTooLarge(f"more than {MAX_ROWS:,} rows in one request")
        cells = line.split(",")
        if len(cells) != width:
            raise PayloadError(
                f"expected {width} values ({', '.join(FEATURES)}), got {len(cells)}", index
            )
        rows.append([_number(cell, index, col) for col, cell in enumerate(cells)])
    return rows


class _Unusable:
    """A JSON number no float holds (``1e400``, a 5,000-digit integer) or a literal JSON does not
    allow (``NaN``, ``Infinity``): kept as text until its row is known."""

    def __init__(self, problem: str) -> None:
        self.problem = problem


def _json_number(text: str) -> float | _Unusable:
    value = float(text)  # an integer too: int() refuses more than 4,300 digits
    return value if math.isfinite(value) else _Unusable(f"{shown(text)} is out of range")


def _json_constant(text: str) -> _Unusable:
    return _Unusable(f"{text} is not a finite number")


def _json_object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """An object, refused when a key repeats: which of two ``instances`` was meant is a guess."""
    document: dict[str, Any] = {}
    for key, value in pairs:
        if key in document:
            raise PayloadError(f"JSON object has the key {shown(key)} more than once")
        document[key] = value
    return document


def _described(value: Any) -> str:
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    return shown(str(value))


def _json_value(value: Any, row: int, column: int) -> float:
    name = _feature(column)
    if isinstance(value, _Unusable):
        raise PayloadError(f"{name}: {value.problem}", row)
    if isinstance(value, float):
        return value
    if isinstance(value, str):
        return _number(value, row, column)
    raise PayloadError(f"{name}: {_described(value)} is not a number", row)


def _rows_from_json(text: str, width: int) -> list[list[float]]:
    try:
        document = json.loads(
            text,
            parse_int=_json_number,
            parse_float=_json_number,
            parse_constant=_json_constant,
            object_pairs_hook=_json_object,
        )
    except json.JSONDecodeError as exc:
        raise PayloadError(f"body is not valid JSON ({exc.msg})") from None
    except RecursionError:
        raise PayloadError("body is JSON nested too deeply to be rows of numbers") from None
    instances: Any = document.get("instances") if isinstance(document, dict) else document
    if isinstance(instances, list) and instances and not isinstance(instances[0], list | dict):
        instances = [instances]  # one bare row
    if not isinstance(instances, list):
        raise PayloadError('JSON body needs "instances": a list of rows')
    if len(instances) > MAX_ROWS:
        raise PayloadTooLarge(f"{len(instances):,} rows in one request; at most {MAX_ROWS:,}")
    rows = []
    for index, item in enumerate(instances, start=1):
        values = item.get("features") if isinstance(item, dict) else item
        if not isinstance(values, list) or len(values) != width:
            raise PayloadError(f"expected a list of {width} numbers ({', '.join(FEATURES)})", index)
        rows.append([_json_value(value, index, col) for col, value in enumerate(values)])
    return rows


def parse_rows(
    body: bytes | str, content_type: str | None, width: int = len(FEATURES)
) -> list[list[float]]:
    """Rows of finite numbers from a request body."""
    media, parameters = parse_media_type(content_type)
    if media not in (CSV, JSON):
        raise UnsupportedMediaType(
            f"content type {shown(media)} is not supported; send {CSV} or {JSON}"
        )
    charset = parameters.get("charset", "utf-8")
    if charset not in UTF8_CHARSETS:
        raise UnsupportedMediaType(f"charset {shown(charset)} is not supported; send UTF-8")
    raw = body.encode("utf-8", "surrogatepass") if isinstance(body, str) else body
    try:
        text = raw.decode("utf-8").removeprefix("\ufeff")
    except UnicodeDecodeError as exc:
        raise PayloadError(f"body is not UTF-8 text (byte {exc.start:,})") from None
    if not text.strip():
        raise PayloadError("empty body: send at least one row of " + ", ".join(FEATURES))
    rows = _rows_from_csv(text, width) if media == CSV else _rows_from_json(text, width)
    if not rows:
        raise PayloadError("no rows in the body")
    return rows


def to_csv(rows: list[list[float]]) -> str:
    """The rows as the endpoint's ``text/csv`` input."""
    return "\n".join(",".join(repr(v) for v in row) for row in rows)


def parse_predictions(body: bytes | str) -> list[float]:
    """An XGBoost container's ``text/csv`` answer: one score a line (or comma-separated)."""
    text = body.decode("utf-8") if isinstance(body, bytes) else body
    return [float(v) for v in text.replace(",", "\n").split()]


def _quality(value: str | None) -> float:
    if value is None:
        return 1.0
    try:
        quality = float(value)
    except ValueError:
        return 1.0  # a malformed weight is no reason to refuse the range
    return min(max(quality, 0.0), 1.0) if math.isfinite(quality) else 1.0


def answer_type(accept: str | None) -> str:
    """The media type to answer in: of CSV and JSON, the one the caller's ``Accept`` prefers (the
    most specific range naming each decides its weight; the earlier range wins a tie)."""
    if not accept or not accept.strip():
        return CSV
    weights: dict[str, tuple[int, float, int]] = {}  # offer -> (specificity, weight, position)
    for position, item in enumerate(accept.split(",")):
        media, parameters = parse_media_type(item, "")
        for offer, specificity in _OFFERS.get(media, ()):
            if offer not in weights or specificity > weights[offer][0]:
                weights[offer] = (specificity, _quality(parameters.get("q")), position)
    acceptable = [offer for offer, (_, weight, _) in weights.items() if weight > 0]
    if not acceptable:
        raise NotAcceptable(
            f"accept type {shown(accept.strip())} is not supported; ask for {CSV} or {JSON}"
        )
    return max(acceptable, key=lambda o: (weights[o][1], -weights[o][2], _PREFERENCE[o]))


def format_predictions(predictions: list[float], accept: str | None) -> tuple[str, str]:
    """Predictions in the media type the caller asked for."""
    media = answer_type(accept)
    if media == CSV:
        return "".join(f"{p!r}\n" for p in predictions), CSV
    return json.dumps({"predictions": [{"score": p} for p in predictions]}), JSON
