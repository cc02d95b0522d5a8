"""One console for the command-line tool: stage lines with elapsed time; errors and progress on
stderr.

Whatever comes from data or AWS (file names, endpoint names, error messages) is printed as text,
never as Rich markup: pass it as ``Text`` or with ``markup=False``, and keep markup for the fixed
decoration around it. Emoji codes are never rendered."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.text import Text

# Wide enough for tables of ARNs and names when the output goes to a file or a pipe.
_WIDTH = None if sys.stdout.isatty() else 160
console = Console(highlight=False, emoji=False, soft_wrap=True, width=_WIDTH)
errors = Console(stderr=True, highlight=False, emoji=False, soft_wrap=True)


class StageFailed(RuntimeError):
    """A named stage of a long run failed; the message says which and why."""

    def __init__(self, stage: str, reason: str) -> None:
        self.stage = stage
        self.reason = reason
        super().__init__(f"{stage}: {reason}")


class Stages:
    """Numbered stages with the time since the run started."""

    def __init__(self) -> None:
        self.started = time.monotonic()

    def elapsed(self) -> str:
        return f"{time.monotonic() - self.started:6.1f}s"

    def say(self, message: str | Text) -> None:
        """A line of the current stage. Messages hold names, paths and AWS's own words, so a
        string is printed as it is, never read as markup; a caller that wants colour passes a
        styled ``Text``."""
        console.print(Text.assemble((self.elapsed(), "dim"), "   ", message))

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        """A numbered stage; its name is printed as it is (it may name a file or a scenario)."""
        console.print(Text.assemble((self.elapsed(), "dim"), " ", (f"▶ {name}", "bold")))
        try:
            yield
        except StageFailed:
            raise
        except Exception as exc:
            raise StageFailed(name, str(exc) or type(exc).__name__) from exc
