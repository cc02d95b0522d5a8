"""The fuzz's summary at the end of pytest's report, whatever the capture mode."""

from __future__ import annotations

import pytest

from tests.security.harness import SUMMARY


def pytest_terminal_summary(
    terminalreporter: pytest.TerminalReporter, config: pytest.Config
) -> None:
    lines = config.stash.get(SUMMARY, [])
    if lines:
        terminalreporter.write_sep("-", "API fuzz")
        for line in lines:
            terminalreporter.write_line(line)
