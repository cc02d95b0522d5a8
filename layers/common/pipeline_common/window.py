"""The training window: which trip files under raw/ a run prepares and trains on
(``TrainingWindowMonths``, docs/training-window.md).

A file's month is the last ``YYYY-MM`` (or ``YYYY_MM``, ``YYYY/MM``) in its key, as in TLC's
``yellow_tripdata_2024-01.parquet``. The window is the newest N months found under raw/, every
file of each, at the version each key has when the run starts. With N = 1 a run trains on the
uploaded file alone, whatever its name.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

_MONTH = re.compile(r"(?<!\d)((?:19|20)\d\d)[-_/](0[1-9]|1[0-2])(?!\d)")
MAX_MONTHS = 36  # the template's TrainingWindowMonths MaxValue


def month_of(key: str) -> str | None:
    """``YYYY-MM`` of the last year and month named in ``key``, or None."""
    found = _MONTH.findall(key)
    if not found:
        return None
    year, month = found[-1]
    return f"{year}-{month}"


@dataclass(frozen=True)
class WindowFile:
    key: str
    version_id: str | None
    size: int
    month: str | None

    def as_record(self) -> dict[str, object]:
        return {
            "key": self.key,
            "version_id": self.version_id,
            "size": self.size,
            "month": self.month,
        }


@dataclass(frozen=True)
class Window:
    """A run's data: the months asked for, the files chosen, and why, in a person's words."""

    months: int
    files: tuple[WindowFile, ...]
    note: str

    @property
    def months_covered(self) -> list[str]:
        return sorted({f.month for f in self.files if f.month}, reverse=True)

    def as_record(self) -> dict[str, object]:
        return {
            "months": self.months,
            "months_covered": self.months_covered,
            "files": [f.as_record() for f in self.files],
            "note": self.note,
        }


def choose_window(uploaded: WindowFile, present: Iterable[WindowFile], months: int) -> Window:
    """The newest ``months`` months of ``present`` (the newest version of every key under raw/).

    - ``months == 1``: the uploaded file alone (today's behaviour, and the demo's).
    - The uploaded file names no month: it alone, said so in the note.
    - Otherwise every file of the newest ``months`` months found. The uploaded file is among them
      unless it is older than all of them (an old month uploaded late): then the window says so,
      and :func:`pipeline_common.pipeline.start_run` starts no run for it.
    """
    if not 1 <= months <= MAX_MONTHS:
        raise ValueError(f"the training window is 1 to {MAX_MONTHS} months, not {months}")
    if months == 1:
        return Window(1, (uploaded,), "the uploaded file")
    if uploaded.month is None:
        return Window(
            months,
            (uploaded,),
            f"{uploaded.key} names no YYYY-MM month: trained on this file alone",
        )
    by_key = {f.key: f for f in present if f.month is not None}
    by_key[uploaded.key] = uploaded  # the event's version, even if listing lags behind it
    newest = sorted({f.month for f in by_key.values() if f.month}, reverse=True)[:months]
    files = tuple(sorted((f for f in by_key.values() if f.month in newest), key=_order))
    note = f"the newest {len(newest)} of {months} months found under raw/"
    return Window(months, files, note)


def _order(f: WindowFile) -> tuple[str, str]:
    return (f.month or "", f.key)


def includes(window: Window, key: str) -> bool:
    return any(f.key == key for f in window.files)
