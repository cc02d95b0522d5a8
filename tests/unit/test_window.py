"""The training window: which months a run trains on (docs/training-window.md)."""

from __future__ import annotations

import pytest
from pipeline_common.window import WindowFile, choose_window, includes, month_of


@pytest.mark.parametrize(
    ("key", "month"),
    [
        ("raw/yellow_tripdata_2024-01.parquet", "2024-01"),
        ("raw/green_tripdata_2018-02_head.csv", "2018-02"),
        ("raw/2019/03/trips.csv", "2019-03"),
        ("raw/fhv_2020_12.csv", "2020-12"),
        ("raw/2018-01-archive/yellow_tripdata_2018-02.csv", "2018-02"),  # the last one named
        ("raw/trips.csv", None),
        ("raw/2018-13.csv", None),  # no 13th month
        ("raw/id-12018-01.csv", None),  # digits run on: not a year
    ],
)
def test_a_files_month_is_the_last_year_and_month_in_its_key(key: str, month: str | None) -> None:
    assert month_of(key) == month


def _file(key: str, version: str = "v1") -> WindowFile:
    return WindowFile(key, version, 10, month_of(key))


PRESENT = [
    _file("raw/yellow_tripdata_2018-01.csv"),
    _file("raw/yellow_tripdata_2018-02.csv"),
    _file("raw/green_tripdata_2018-02.csv"),
    _file("raw/yellow_tripdata_2018-03.csv"),
    _file("raw/notes.csv"),
]


def test_one_month_is_the_uploaded_file_alone_whatever_else_is_there() -> None:
    uploaded = _file("raw/yellow_tripdata_2018-03.csv")
    window = choose_window(uploaded, PRESENT, 1)
    assert window.files == (uploaded,)


def test_several_months_are_the_newest_found_with_every_file_of_each() -> None:
    uploaded = _file("raw/yellow_tripdata_2018-03.csv", "v2")
    window = choose_window(uploaded, PRESENT, 2)
    assert [f.key for f in window.files] == [
        "raw/green_tripdata_2018-02.csv",
        "raw/yellow_tripdata_2018-02.csv",
        "raw/yellow_tripdata_2018-03.csv",
    ]
    assert window.months_covered == ["2018-03", "2018-02"]
    # the upload's own version, not whatever the listing saw
    assert next(f for f in window.files if f.key == uploaded.key).version_id == "v2"
    assert "raw/notes.csv" not in [f.key for f in window.files]  # no month: in no window


def test_fewer_months_than_asked_are_all_of_them_and_the_note_says_so() -> None:
    uploaded = _file("raw/yellow_tripdata_2018-03.csv")
    window = choose_window(uploaded, PRESENT, 12)
    assert window.months_covered == ["2018-03", "2018-02", "2018-01"]
    assert window.note == "the newest 3 of 12 months found under raw/"
    assert window.as_record()["months"] == 12


def test_a_month_uploaded_late_is_outside_a_window_of_newer_months() -> None:
    late = _file("raw/yellow_tripdata_2017-12.csv")
    window = choose_window(late, PRESENT, 2)
    assert not includes(window, late.key)
    assert window.months_covered == ["2018-03", "2018-02"]


def test_an_upload_naming_no_month_trains_alone_and_says_why() -> None:
    uploaded = _file("raw/trips.csv")
    window = choose_window(uploaded, PRESENT, 3)
    assert window.files == (uploaded,)
    assert "names no YYYY-MM month" in window.note


@pytest.mark.parametrize("months", [0, 37])
def test_a_window_outside_the_templates_range_is_refused(months: int) -> None:
    with pytest.raises(ValueError, match="1 to 36 months"):
        choose_window(_file("raw/trips.csv"), [], months)
