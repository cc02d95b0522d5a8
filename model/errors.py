"""Errors the model code raises for bad input: one line a person can act on."""

from __future__ import annotations


class DataFileError(ValueError):
    """A source file that is not usable trip data (missing columns, unreadable format)."""


class TrainingError(ValueError):
    """Bad channels or hyperparameters: the message is what a training job's FailureReason says."""
