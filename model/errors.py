"""Errors the model code raises for bad input: one line a person can act on."""

from __future__ import annotations


class DataFileError(ValueError):
    """A source file that is not usable trip data (missing columns, unreadable format)."""


class PayloadError(ValueError):
    """A prediction request the model cannot score; names the row and the problem."""

    def __init__(self, message: str, row: int | None = None) -> None:
        self.row = row
        super().__init__(f"row {row}: {message}" if row is not None else message)
