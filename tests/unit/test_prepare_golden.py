"""PrepareData against golden files: the rows kept, byte for byte, and the accounting of every
row are those of the whole-file implementation that streaming replaced; the split files are those
of the content-hash split (tests/data/prepared/README.md says how each file was made)."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import pytest

from model.prepare import PrepareSummary, prepare
from model.synth import synth_trips, write_trips
from tests.support import FEBRUARY_HEAD, JANUARY_SAMPLE, TLC_DATA

GOLDEN = TLC_DATA / "prepared"
SPLITS = ("train", "validation", "test")
OUTPUTS = (*SPLITS, "baseline")

SPOILED_ROWS = 1500
SPOILED_SEED = 13
# Field positions in model.synth's (and the TLC's 2018 green) layout.
PICKUP, DROPOFF, PASSENGERS, DISTANCE, TOTAL = 1, 2, 7, 8, 16


def _us_layout(timestamp: bytes) -> bytes:
    parsed = datetime.strptime(timestamp.decode(), "%Y-%m-%d %H:%M:%S")
    return parsed.strftime("%m/%d/%Y %I:%M:%S %p").encode()


def spoiled_month(path: Path) -> Path:
    """A synthetic month with the faults real downloads have, in two places far apart: values
    that are not numbers, a byte that is not UTF-8, blanks, the TLC's older timestamp layout,
    rows cut short or too long, and a trip repeated at the end."""
    write_trips(synth_trips(SPOILED_ROWS, seed=SPOILED_SEED), path)
    header, empty, *rows = path.read_bytes().split(b"\n")
    assert empty == b""
    assert rows[-1] == b""
    fields = [row.split(b",") for row in rows[:-1]]

    def spoil(index: int, position: int, value: bytes) -> None:
        fields[index][position] = value

    spoil(400, DISTANCE, b"abc")
    spoil(401, TOTAL, b"12\xe9")
    spoil(402, PICKUP, _us_layout(fields[402][PICKUP]))
    spoil(402, DROPOFF, _us_layout(fields[402][DROPOFF]))
    spoil(403, PASSENGERS, b"")
    spoil(404, TOTAL, b" ")
    fields[1100] = fields[1100][:3]
    fields[1101] = [*fields[1101], b"1"]
    spoil(1300, PICKUP, _us_layout(fields[1300][PICKUP]))
    spoil(1300, DROPOFF, _us_layout(fields[1300][DROPOFF]))
    fields.append(fields[10])
    path.write_bytes(b"\n".join([header, empty, *(b",".join(row) for row in fields)]) + b"\n")
    return path


def kept_lines(out: Path) -> list[bytes]:
    """Every kept row's line across train, validation and test, sorted."""
    lines: list[bytes] = []
    for name in SPLITS:
        text = (out / f"{name}.csv").read_bytes().splitlines()
        lines.extend(text[1:] if name == "test" else text)
    return sorted(lines)


def accounting(summary: PrepareSummary) -> dict[str, object]:
    """The summary less what depends on where the files are and how the rows were dealt."""
    return {
        "rows_read": summary.rows_read,
        "rows_kept": summary.rows_kept,
        "dropped": summary.dropped,
        "sources": [
            {
                "format": s.format,
                "taxi": s.taxi,
                "rows_read": s.rows_read,
                "malformed_rows": s.malformed_rows,
            }
            for s in summary.sources
        ],
    }


def golden_lines(name: str) -> list[bytes]:
    return (GOLDEN / name).read_bytes().splitlines()


def golden_accounting(name: str) -> object:
    return json.loads((GOLDEN / "accounting.json").read_text())[name]


@pytest.fixture(scope="module")
def spoiled(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return spoiled_month(tmp_path_factory.mktemp("spoiled") / "green_tripdata_2018-02.csv")


def test_real_tlc_rows_are_kept_byte_for_byte_as_before(tmp_path: Path) -> None:
    summary = prepare([JANUARY_SAMPLE, FEBRUARY_HEAD], tmp_path)

    assert kept_lines(tmp_path) == golden_lines("kept-rows-tlc.csv")
    assert accounting(summary) == golden_accounting("tlc")


@pytest.mark.parametrize("chunk_rows", [None, 97], ids=["default-chunks", "97-row-chunks"])
def test_spoiled_month_rows_are_kept_byte_for_byte_as_before(
    spoiled: Path, tmp_path: Path, chunk_rows: int | None
) -> None:
    # The whole-file reader read all of this file as text (one bad value sent it there); read in
    # chunks, only the chunks holding a bad value are. Either way every row parses the same.
    if chunk_rows is None:
        summary = prepare([spoiled], tmp_path)
    else:
        summary = prepare([spoiled], tmp_path, chunk_rows=chunk_rows)

    assert kept_lines(tmp_path) == golden_lines("kept-rows-spoiled.csv")
    assert accounting(summary) == golden_accounting("spoiled")
    assert sum(summary.dropped.values()) > 0


def test_real_tlc_splits_are_the_golden_files(tmp_path: Path) -> None:
    summary = prepare([JANUARY_SAMPLE, FEBRUARY_HEAD], tmp_path)

    for name in OUTPUTS:
        assert (tmp_path / f"{name}.csv").read_bytes() == (
            GOLDEN / "tlc" / f"{name}.csv"
        ).read_bytes()
    sizes = {name: len(golden_lines(f"tlc/{name}.csv")) - (name == "test") for name in SPLITS}
    assert summary.splits == sizes
