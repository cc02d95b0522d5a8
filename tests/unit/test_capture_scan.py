"""Capture read a file at a time, and read exactly as the full parse reads it.

``model.capture_scan`` takes the lines laid out as SageMaker writes them; every other line goes to
the full reader, in its place. Whatever the mix, ``read_capture`` must give what
``read_capture_full`` gives (the same rows in the same order, bit for bit, the same malformed
counts by reason and in the same order, the same request ids) and ``monitor`` the same files.
"""

from __future__ import annotations

import itertools
import json
import os
import random
import string
import sys
import tempfile
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from unittest import mock

import numpy as np
import orjson
import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pipeline_common.capture import capture_record

import model.monitor
from model.capture_scan import Lines, Rows, scan
from model.monitor import Capture, monitor, read_capture, read_capture_full
from model.schema import COLUMNS
from safe_deploy.cli import main
from tests.support import examples

WHEN = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
WIDTH = len(COLUMNS)


def record(inputs: str = "12.0,1,2.5", output: str = "14.2", **options: Any) -> dict[str, Any]:
    options.setdefault("inference_id", "r1")
    options.setdefault("event_id", "e1")
    return capture_record(inputs, output, inference_time=WHEN, **options)


def line(inputs: str = "12.0,1,2.5", output: str = "14.2", **options: Any) -> bytes:
    return orjson.dumps(record(inputs, output, **options))


def sagemaker_order(document: dict[str, Any]) -> dict[str, Any]:
    """The record with its event metadata in SageMaker's order: inferenceId before the time."""
    metadata = document["eventMetadata"]
    order = [k for k in ("eventId", "inferenceId", "inferenceTime") if k in metadata]
    return {**document, "eventMetadata": {k: metadata[k] for k in order}}


def edited(change: Callable[[dict[str, Any]], None], **options: Any) -> bytes:
    document = record(**options)
    change(document)
    return orjson.dumps(document)


GOOD = line()

# Lines the scan must take, and the request id each names.
SCANNED = {
    "as capture_record writes it": (line(), "r1"),
    "no inferenceId: the eventId names it": (line(inference_id=None), "e1"),
    "an empty inferenceId: the eventId names it": (line(inference_id=""), "e1"),
    "SageMaker's key order": (orjson.dumps(sagemaker_order(record())), "r1"),
    "text/csv answer without a charset": (line(output_content_type="text/csv"), "r1"),
    "repr of small and large floats": (line("1e-05,-0.0,1.7976931348623157e+30", "2.5e-07"), "r1"),
    "integers": (line("12,1,3", "15"), "r1"),
}

# Lines the scan must leave to the full reader; some are capture, some are not.
LEFT = {
    "escaped quote in the inferenceId": line(inference_id='r"1'),
    "backslash in the eventId": line(inference_id=None, event_id="a\\b"),
    "unicode inferenceId": line(inference_id="é-1"),
    "a byte that is not UTF-8 in the inferenceId": GOOD.replace(b'"r1"', b'"r\xff1"'),
    "control character in the inferenceId": line(inference_id="a\x00b"),
    "unicode digit in the data": line("12.0,\u0661,2.5"),
    "BASE64 input": line(input_content_type="application/octet-stream"),
    "JSON input": line(
        json.dumps({"instances": [[12.0, 1, 2.5]]}), input_content_type="application/json"
    ),
    "JSON answer": line(
        "12.0,1,2.5",
        json.dumps({"predictions": [{"score": 14.2}]}),
        output_content_type="application/json",
    ),
    "spaces between keys": json.dumps(record()).encode(),
    "too few columns": line("12.0,1"),
    "too many columns": line("12.0,1,2.5,7"),
    "two rows in one request": line("12.0,1,2.5\n8.0,2,1.5", "14.2,9.5"),
    "two answers for one row": line("12.0,1,2.5", "14.2,9.5"),
    "spaces around the data": line(" 12.0,1,2.5 ", " 14.2"),
    "a trailing line break in the data": line("12.0,1,2.5\n", "14.2\n"),
    "an empty value": line("12.0,,2.5"),
    "an empty answer": line("12.0,1,2.5", ""),
    "a value that is not a number": line("12.0,one,2.5"),
    "a quoted value hiding a comma": line('"1,5",2'),
    "nan": line("nan,1,2.5"),
    "inf": line("12.0,1,inf"),
    "an exponent that overflows": line("1e400,1,2.5"),
    "more digits than a double holds": line("123456789012345678901234.5,1,2"),
    "a plus sign": line("+12.0,1,2.5"),
    "a leading dot": line(".5,1,2.5"),
    "not JSON": b"this is not JSON",
    "cut mid-line": GOOD[:60],
    "not a capture record": b'{"hello": "world"}',
    "a JSON array": b"[1, 2, 3]",
    "whitespace only": b"   \t",
    "CRLF": GOOD + b"\r",
    "a carriage return mid-line": GOOD[:40] + b"\r" + GOOD,
    "garbage before": b"x" + GOOD,
    "garbage after": GOOD + b" x",
    "a space before": b" " + GOOD,
    "an extra key": edited(lambda d: d["captureData"]["endpointInput"].update(extra="1")),
    "a duplicate data key": GOOD.replace(b'"encoding":"CSV"}', b'"encoding":"CSV","data":"9"}', 1),
    "no inferenceTime": edited(lambda d: d["eventMetadata"].pop("inferenceTime")),
    "no eventId": edited(lambda d: d["eventMetadata"].pop("eventId")),
    "no encoding": edited(lambda d: d["captureData"]["endpointOutput"].pop("encoding")),
    "eventVersion 1": edited(lambda d: d.update(eventVersion="1")),
    "mode in lower case": edited(lambda d: d["captureData"]["endpointInput"].update(mode="input")),
    "content type in upper case": line(input_content_type="TEXT/CSV"),
    "a number for the eventId": edited(lambda d: d["eventMetadata"].update(eventId=12345)),
    "a number for the inferenceId": edited(lambda d: d["eventMetadata"].update(inferenceId=7)),
}


def assert_same(fast: Capture, full: Capture) -> None:
    assert fast.records == full.records
    assert list(fast.malformed.items()) == list(full.malformed.items())
    assert fast.unparsable == full.unparsable
    assert fast.ids == full.ids
    assert list(fast.columns) == list(full.columns)
    for name, values in full.columns.items():
        # Bit for bit: -0.0 and 0.0 write differently, and the order of rows changes sums.
        assert fast.columns[name].dtype == values.dtype == np.float64
        assert fast.columns[name].view(np.int64).tolist() == values.view(np.int64).tolist(), name


def write_lines(path: Path, lines: Sequence[bytes], final_newline: bool = True) -> Path:
    path.write_bytes(b"\n".join(lines) + (b"\n" if final_newline else b""))
    return path


# --- what the scan takes, and what it leaves -------------------------------------------------


@pytest.mark.parametrize("case", list(SCANNED))
def test_records_as_endpoints_write_them_are_read_by_the_scan(case: str) -> None:
    text, request_id = SCANNED[case]
    document = orjson.loads(text)
    inputs = document["captureData"]["endpointInput"]["data"].split(",")
    answer = document["captureData"]["endpointOutput"]["data"]

    parts = scan(text + b"\n" + GOOD, WIDTH, with_ids=True)

    assert len(parts) == 1
    assert isinstance(parts[0], Rows)
    assert parts[0].ids == [request_id, "r1"]
    expected = [[float(answer), *map(float, inputs)], [14.2, 12.0, 1.0, 2.5]]
    assert parts[0].values.tolist() == expected


@pytest.mark.parametrize("case", list(LEFT))
def test_other_lines_are_left_to_the_full_reader_in_their_place(case: str) -> None:
    text = LEFT[case]

    parts = scan(GOOD + b"\n" + text + b"\n" + GOOD + b"\n", WIDTH, with_ids=True)

    assert [type(p) for p in parts] == [Rows, Lines, Rows]
    assert isinstance(parts[1], Lines)
    assert parts[1].lines == text.splitlines()


@pytest.mark.parametrize("case", list(LEFT))
@pytest.mark.parametrize("with_ids", [False, True])
def test_each_other_line_amid_records_reads_as_the_full_parse_reads_it(
    tmp_path: Path, case: str, with_ids: bool
) -> None:
    files = [write_lines(tmp_path / "capture.jsonl", [GOOD, LEFT[case], line("8.0,2,1.5", "9.5")])]

    assert_same(read_capture(files, COLUMNS, with_ids), read_capture_full(files, COLUMNS, with_ids))


# --- any mix ------------------------------------------------------------------------------------

# The strings of -?[0-9]{1,22}(\.[0-9]{1,22})?([eE][-+]?[0-9]{1,3})?, made of a few whole-string
# draws: from_regex draws them a character at a time, which was most of this module's run time.
digits = st.text(string.digits, min_size=1, max_size=22)
fractions = st.just("") | digits.map(".".__add__)
exponents = st.just("") | st.tuples(
    st.sampled_from("eE"),
    st.sampled_from(["", "-", "+"]),
    st.text(string.digits, min_size=1, max_size=3),
).map("".join)
numbers = st.one_of(
    st.floats(allow_nan=False, allow_infinity=False).map(repr),
    st.integers(-(10**25), 10**25).map(str),
    st.tuples(st.sampled_from(["", "-"]), digits, fractions, exponents).map("".join),
)
odd_values = st.sampled_from(
    ["", " 1.5", "1.5 ", "nan", "NaN", "-inf", "one", '"1', "+1", ".5", "5.", "1e400", "\u0661"]
)
values = st.one_of(numbers, numbers, numbers, odd_values)
texts = st.one_of(
    st.text(string.ascii_letters + string.digits + ":.-", max_size=12), st.text(max_size=8)
)
content_types = st.sampled_from(
    ["text/csv", "text/csv", "text/csv; charset=utf-8", "application/json", "image/png"]
)


@st.composite
def capture_lines(draw: st.DrawFn) -> bytes:
    width = draw(st.sampled_from([WIDTH, WIDTH, WIDTH, WIDTH - 1, WIDTH + 1]))
    inputs = ",".join(draw(st.lists(values, min_size=width - 1, max_size=width - 1)))
    if draw(st.integers(0, 9)) == 0:  # several rows in one request
        inputs += "\n" + inputs
    document = capture_record(
        inputs,
        draw(values),
        inference_time=WHEN,
        inference_id=draw(st.none() | texts),
        event_id=draw(texts) or "e",
        input_content_type=draw(content_types),
        output_content_type=draw(content_types),
    )
    if draw(st.booleans()):
        document = sagemaker_order(document)
    text = orjson.dumps(document)
    mutation = draw(st.integers(0, 19))
    if mutation == 0:
        return json.dumps(document).encode()
    if mutation == 1:
        return text[: draw(st.integers(0, len(text)))]
    if mutation == 2:
        return text + b"\r"
    if mutation == 3:
        return draw(st.sampled_from(list(LEFT.values())))
    return text


@settings(max_examples=examples(150), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    lines=st.lists(capture_lines(), max_size=30),
    split=st.integers(0, 30),
    final_newline=st.booleans(),
    with_ids=st.booleans(),
)
def test_any_mix_of_lines_reads_as_the_full_parse_reads_it(
    lines: list[bytes], split: int, final_newline: bool, with_ids: bool
) -> None:
    with tempfile.TemporaryDirectory() as folder:
        files = [
            write_lines(Path(folder) / "a.jsonl", lines[:split]),
            write_lines(Path(folder) / "b.jsonl", lines[split:], final_newline),
        ]

        fast = read_capture(files, COLUMNS, with_ids)
        full = read_capture_full(files, COLUMNS, with_ids)

    assert_same(fast, full)


# --- monitor's files, by one process or several -----------------------------------------------


# Odd lines whose values are all numbers: the capture's other lines stay with the scan (a value
# that is not a number has the whole capture read again by the full parse).
NUMBERS_ONLY = [
    LEFT[case]
    for case in (
        "escaped quote in the inferenceId",
        "unicode inferenceId",
        "BASE64 input",
        "JSON input",
        "spaces between keys",
        "too few columns",
        "two rows in one request",
        "two answers for one row",
        "an empty value",
        "nan",
        "not JSON",
        "not a capture record",
        "CRLF",
        "a carriage return mid-line",
    )
]


def traffic(
    rng: random.Random, rows: int, odd: Sequence[bytes] = (), odd_share: float = 0.0
) -> tuple[list[bytes], list[bytes]]:
    """Capture lines as an endpoint writes them, a share of odd ones among them; ground truth."""
    lines, truth = [], []
    for index in range(rows):
        if rng.random() < odd_share:
            lines.append(rng.choice(odd))
            continue
        inputs = f"{rng.uniform(1, 60):.5f},{rng.choice([1.0, 2.0, 5.0])},{rng.uniform(0, 20):.2f}"
        key = f"bench-{index}"
        lines.append(line(inputs, repr(rng.uniform(3, 80)), inference_id=key, event_id=f"e{index}"))
        fare = {"groundTruthData": {"data": str(rng.uniform(3, 80))}, "eventMetadata": {}}
        fare["eventMetadata"]["eventId"] = key
        truth.append(orjson.dumps(fare))
    return lines, truth


def outputs(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def full_parse_only(
    files: Sequence[Path], names: Sequence[str], with_ids: bool = False, workers: int = 1
) -> Capture:
    return read_capture_full(files, names, with_ids)


@pytest.mark.parametrize(
    ("odd", "odd_share"),
    [([], 0.0), (NUMBERS_ONLY, 0.05), (list(LEFT.values()), 0.05)],
    ids=["records only", "odd lines of numbers", "any odd lines"],
)
# Infinite values among the odd lines: numpy warns as it takes their statistics.
@pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")
def test_monitor_writes_what_the_full_parse_writes(
    baseline_dir: Path, tmp_path: Path, odd: list[bytes], odd_share: float
) -> None:
    lines, truth = traffic(random.Random(5), 3_000, odd, odd_share)
    (tmp_path / "capture").mkdir()
    write_lines(tmp_path / "capture" / "a.jsonl", lines[:1_700])
    write_lines(tmp_path / "capture" / "b.jsonl", lines[1_700:])
    captures = [tmp_path / "capture"]
    ground_truth = [write_lines(tmp_path / "truth.jsonl", truth)]

    fast = monitor(baseline_dir, captures, tmp_path / "fast", ground_truth)
    with mock.patch.object(model.monitor, "read_capture", full_parse_only):
        full = monitor(baseline_dir, captures, tmp_path / "full", ground_truth)

    assert fast == full
    assert fast.rows > 2_500
    assert bool(fast.malformed) == bool(odd_share)
    assert outputs(tmp_path / "fast") == outputs(tmp_path / "full")


READ_FILE = model.monitor._read_file
SIGNED = Path()  # where read_and_sign leaves the id of each process that reads a file


def read_and_sign(path: Path, width: int, with_ids: bool) -> Any:
    (SIGNED / str(os.getpid())).touch()
    return READ_FILE(path, width, with_ids)


def test_a_large_capture_read_by_several_processes_is_read_the_same(
    baseline_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # With PARALLEL_MIN_BYTES at zero (below) any capture of several files is split among the
    # processes: 2,000 lines, odd ones among them, are enough; more only cost time to make and read.
    lines, _ = traffic(random.Random(6), 2_000, NUMBERS_ONLY, 0.02)
    # A large first file: the small ones after it are read first, and must still come after it.
    bounds = [0, 1_860, *range(1_880, 2_001, 20)]
    files = [
        write_lines(tmp_path / f"{n}.jsonl", lines[low:high])
        for n, (low, high) in enumerate(itertools.pairwise(bounds))
    ]
    readers = tmp_path / "readers"
    readers.mkdir()
    monkeypatch.setattr(sys.modules[__name__], "SIGNED", readers)
    monkeypatch.setattr(model.monitor, "_read_file", read_and_sign)
    monkeypatch.setattr(model.monitor, "PARALLEL_MIN_BYTES", 0)

    for with_ids in (False, True):
        assert_same(
            read_capture(files, COLUMNS, with_ids, workers=2),
            read_capture_full(files, COLUMNS, with_ids),
        )
    signed = {p.name for p in readers.iterdir()}
    assert signed
    assert str(os.getpid()) not in signed  # the files were read by other processes

    # The command reads on every core (two processes or more here, as the capture is "large").
    one = tmp_path / "one-process"
    monitor(baseline_dir, files, one)
    command = tmp_path / "command"
    arguments = [
        "monitor",
        "--baseline",
        str(baseline_dir),
        *map(str, files),
        "--out",
        str(command),
    ]
    result = CliRunner().invoke(main, arguments)
    assert result.exit_code == 0, result.output
    assert outputs(command) == outputs(one)
