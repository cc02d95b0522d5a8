"""Errors the model code raises for bad input: one line a person can act on."""

from __future__ import annotations

from pathlib import Path

# SageMaker shows the first KB of this file as a processing job's ExitMessage: the one place a
# container's own words reach DescribeProcessingJob (its FailureReason only says "AlgorithmError:
# See job logs for more information").
EXIT_MESSAGE = Path("/opt/ml/output/message")


def write_exit_message(message: str, path: Path = EXIT_MESSAGE) -> None:
    """Leave ``message`` where SageMaker reads a failed job's ExitMessage (UTF-8, first KB)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(message.encode()[:1024].decode(errors="ignore").encode())


class DataFileError(ValueError):
    """A source file that is not usable trip data (missing columns, unreadable format)."""


class TrainingError(ValueError):
    """Bad channels or hyperparameters: the message is what a training job's FailureReason says."""
