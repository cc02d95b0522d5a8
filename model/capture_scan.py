"""Capture lines laid out exactly as SageMaker writes them, read a whole file at a time.

A data-capture file (DESIGN.md §4) is almost all lines of one layout: the same keys in the same
order, no spaces, ``text/csv`` payloads of plain decimal numbers, ids and times in plain ASCII. For
such lines :func:`scan` pulls the numbers out with one regular expression over the file's bytes
and converts them in one call, with no JSON parser and no Python code run per line.

A line is taken this way only if the full reader (``orjson``, then
:func:`pipeline_common.capture.csv_data`, in :mod:`model.monitor`) would read it the same way:
valid JSON by construction (no escapes, no control characters, nothing but ASCII inside strings),
both payloads ``text/csv`` and not BASE64, ``eventId`` and ``inferenceTime`` present, one row of
``width - 1`` numbers in and one number out. Numbers are restricted to a form every parser reads
alike (``-?digits[.digits][e[+-]digits]``, short enough that nothing overflows), so their floats
are the ones the full reader's CSV parse gives. Every other line (another key order, spaces,
escapes, unicode, JSON or BASE64 payloads, several rows, blank lines, text that is not JSON) comes
back as it is, in its place, for the full reader.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from itertools import chain
from operator import itemgetter

import numpy as np

# The bytes of a JSON string that needs no decoding: printable ASCII but the quote and backslash.
_TEXT = rb"[\x20\x21\x23-\x5b\x5d-\x7e]*"
# A number as a client writes it (Python's repr, most CSV writers); digit counts keep it finite.
# Optional parts are written (?:...|), not (?:...)?: the same matches, and a quarter faster (an
# alternative costs the regular expression engine less than a repeat).
_NUMBER = rb"-?[0-9]{1,20}(?:\.[0-9]{1,20}|)(?:[eE][-+]?[0-9]{1,2}|)"


@dataclass
class Rows:
    """Consecutive capture records read here: one row each, output first (the merged layout)."""

    values: np.ndarray  # shape (records, width), float64
    ids: list[str] | None  # each record's inferenceId, else its eventId, when asked for


@dataclass
class Lines:
    """Consecutive lines left to the full reader, split as ``bytes.splitlines`` splits them."""

    lines: list[bytes]


def _record(width: int, with_ids: bool) -> bytes:
    """One capture record as SageMaker writes it: input row, answer (and ids) captured."""
    ident = rb"(" + _TEXT + rb")" if with_ids else _TEXT
    row = rb",".join([_NUMBER] * (width - 1))
    return (
        rb'\{"captureData":\{"endpointInput":\{"observedContentType":"text/csv' + _TEXT
        + rb'","mode":"INPUT","data":"(' + row + rb')","encoding":"CSV"\},'
        + rb'"endpointOutput":\{"observedContentType":"text/csv' + _TEXT
        + rb'","mode":"OUTPUT","data":"(' + _NUMBER + rb')","encoding":"CSV"\}\},'
        + rb'"eventMetadata":\{"eventId":"' + ident + rb'"'
        # SageMaker puts inferenceId before inferenceTime; capture_record after it.
        + rb'(?:,"inferenceTime":"' + _TEXT + rb'"(?:,"inferenceId":"' + ident + rb'"|)'
        + rb'|,"inferenceId":"' + ident + rb'","inferenceTime":"' + _TEXT + rb'")'
        + rb'\},"eventVersion":"0"\}'
    )  # fmt: skip


@cache
def _patterns(width: int, with_ids: bool) -> tuple[re.Pattern[bytes], re.Pattern[bytes]]:
    """Every line a record (the common file), and a record or any other line (a mixed one)."""
    record = _record(width, with_ids)
    return (
        re.compile(rb"(?m)^" + record + rb"\n"),
        re.compile(rb"(?m)^(?:" + record + rb"|([^\n]*))\n"),
    )


def scan(data: bytes, width: int, with_ids: bool = False) -> list[Rows | Lines]:
    """A capture file's lines in order: runs of records read here, and the lines that are not.

    ``width`` is the number of columns of a merged row (the answer and ``width - 1`` inputs).
    """
    if not data:
        return []
    if width < 2:
        return [Lines(data.splitlines())]
    if not data.endswith(b"\n"):
        data += b"\n"
    every, mixed = _patterns(width, with_ids)
    found = every.findall(data)
    lines = int(np.count_nonzero(np.frombuffer(data, np.uint8) == ord("\n")))
    if len(found) == lines:
        return [_rows(found, width, with_ids)] if found else []
    parts: list[Rows | Lines] = []
    run: list[tuple[bytes, ...]] = []
    other: list[bytes] = []
    for match in mixed.findall(data):
        if match[0]:  # a record: its input row is never empty
            if other:
                parts.append(Lines(other))
                other = []
            run.append(match)
        else:
            if run:
                parts.append(_rows(run, width, with_ids))
                run = []
            other.extend(match[-1].splitlines())
    if run:
        parts.append(_rows(run, width, with_ids))
    if other:
        parts.append(Lines(other))
    return parts


def _rows(found: list[tuple[bytes, ...]], width: int, with_ids: bool) -> Rows:
    """The records' numbers as rows, output first; and their request ids."""
    ids = None
    if with_ids:
        # (input, output, eventId, inferenceId after inferenceTime, inferenceId before it, ...)
        ids = [(later or earlier or event).decode() for _, _, event, later, earlier, *_ in found]
    if len(found[0]) > 2:
        found = list(map(itemgetter(0, 1), found))
    numbers = np.fromstring(b",".join(chain.from_iterable(found)), sep=",")
    if numbers.size != len(found) * width:
        raise AssertionError(f"read {numbers.size} numbers from {len(found)} records")
    # Each record gave its inputs, then its answer; the merged row puts the answer first.
    values = numbers.reshape(len(found), width)[:, [width - 1, *range(width - 1)]]
    return Rows(values, ids)
