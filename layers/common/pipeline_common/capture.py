"""SageMaker data-capture records: the JSON Lines format and the S3 layout (DESIGN.md §4).

``s3://<bucket>/<prefix>/<endpoint>/<variant>/yyyy/mm/dd/hh/<file>.jsonl``, one object a line::

    {"captureData": {
        "endpointInput":  {"observedContentType", "mode": "INPUT",  "data", "encoding"},
        "endpointOutput": {"observedContentType", "mode": "OUTPUT", "data", "encoding"}},
     "eventMetadata": {"eventId", "inferenceId", "inferenceTime"},
     "eventVersion": "0"}
"""

from __future__ import annotations

import base64
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

EVENT_VERSION = "0"
CSV_CONTENT_TYPE = "text/csv"
CSV_OUTPUT_CONTENT_TYPE = "text/csv; charset=utf-8"


class CaptureFormatError(ValueError):
    """A capture line that does not follow SageMaker's data-capture format."""


@dataclass(frozen=True)
class CapturedExchange:
    """One request and its answer, as an endpoint captured them."""

    input_data: str
    output_data: str
    input_content_type: str
    output_content_type: str
    event_id: str
    inference_id: str | None
    inference_time: str


def _iso(when: datetime) -> str:
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{when.microsecond // 1000:03d}Z"


def _payload(data: str, content_type: str, mode: str) -> dict[str, str]:
    is_text = content_type.startswith(("text/csv", "application/json"))
    encoding = "CSV" if content_type.startswith("text/csv") else "JSON"
    if not is_text:
        data, encoding = base64.b64encode(data.encode()).decode(), "BASE64"
    return {"observedContentType": content_type, "mode": mode, "data": data, "encoding": encoding}


def capture_record(
    input_data: str,
    output_data: str,
    *,
    inference_time: datetime,
    inference_id: str | None = None,
    event_id: str | None = None,
    input_content_type: str = CSV_CONTENT_TYPE,
    output_content_type: str = CSV_OUTPUT_CONTENT_TYPE,
) -> dict[str, Any]:
    """A capture record as SageMaker writes it."""
    metadata: dict[str, str] = {
        "eventId": event_id or str(uuid.uuid4()),
        "inferenceTime": _iso(inference_time),
    }
    if inference_id is not None:
        metadata["inferenceId"] = inference_id
    return {
        "captureData": {
            "endpointInput": _payload(input_data, input_content_type, "INPUT"),
            "endpointOutput": _payload(output_data, output_content_type, "OUTPUT"),
        },
        "eventMetadata": metadata,
        "eventVersion": EVENT_VERSION,
    }


def decode_payload(payload: Mapping[str, Any]) -> str:
    data = payload["data"]
    if not isinstance(data, str):
        raise CaptureFormatError("captured data is not a string")
    if payload.get("encoding") == "BASE64":
        try:
            return base64.b64decode(data, validate=True).decode("utf-8")
        except (ValueError, UnicodeDecodeError) as exc:
            raise CaptureFormatError(f"captured BASE64 data does not decode: {exc}") from exc
    return data


def parse_record(record: Any) -> CapturedExchange:
    """A parsed capture line; :class:`CaptureFormatError` if it is not a capture record."""
    try:
        capture = record["captureData"]
        source, answer = capture["endpointInput"], capture["endpointOutput"]
        metadata = record["eventMetadata"]
        return CapturedExchange(
            input_data=decode_payload(source),
            output_data=decode_payload(answer),
            input_content_type=str(source.get("observedContentType", "")),
            output_content_type=str(answer.get("observedContentType", "")),
            event_id=str(metadata["eventId"]),
            inference_id=metadata.get("inferenceId"),
            inference_time=str(metadata["inferenceTime"]),
        )
    except (KeyError, TypeError, AttributeError) as exc:
        raise CaptureFormatError(f"not a data-capture record (missing {exc})") from exc


def csv_data(record: Any) -> tuple[str, str] | None:
    """A capture record's input and output ``data`` when both are CSV text as captured.

    The fast path for readers of many records, which building a :class:`CapturedExchange` for each
    would slow down: for a record whose payloads are both ``text/csv`` and not BASE64-encoded it
    checks what :func:`parse_record` checks and returns what that would return as ``input_data``
    and ``output_data``. Any other record gives None: read it with :func:`parse_record`, which
    decodes it or says why it is not a capture record.
    """
    try:
        capture = record["captureData"]
        source, answer = capture["endpointInput"], capture["endpointOutput"]
        metadata = record["eventMetadata"]
        metadata["eventId"], metadata["inferenceTime"]  # KeyError if missing, as in parse_record
        input_data, output_data = source["data"], answer["data"]
        if (
            isinstance(input_data, str)
            and isinstance(output_data, str)
            and source.get("encoding") != "BASE64"
            and answer.get("encoding") != "BASE64"
            and source.get("observedContentType", "").startswith(CSV_CONTENT_TYPE)
            and answer.get("observedContentType", "").startswith(CSV_CONTENT_TYPE)
        ):
            return input_data, output_data
    except (KeyError, TypeError, AttributeError):
        pass
    return None


def capture_prefix(prefix: str, endpoint: str, variant: str | None = None) -> str:
    """The prefix under which one endpoint (and optionally one variant) writes capture."""
    parts = [prefix.strip("/"), endpoint]
    if variant:
        parts.append(variant)
    return "/".join(p for p in parts if p) + "/"


def capture_key(prefix: str, endpoint: str, variant: str, when: datetime) -> str:
    """A new capture object's key, laid out as SageMaker lays them out."""
    when = when.astimezone(UTC)
    name = f"{when:%M-%S}-{when.microsecond // 1000:03d}-{uuid.uuid4()}.jsonl"
    return capture_prefix(prefix, endpoint, variant) + f"{when:%Y/%m/%d/%H}/{name}"


def now() -> datetime:
    return datetime.now(UTC)
