"""One console for the command-line tool: stage lines with elapsed time, errors on stderr."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager

from rich.console import Console

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

    def say(self, message: str) -> None:
        console.print(f"[dim]{self.elapsed()}[/dim]   {message}")

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        console.print(f"[dim]{self.elapsed()}[/dim] [bold]▶ {name}[/bold]")
        try:
            yield
        except StageFailed:
            raise
        except Exception as exc:
            raise StageFailed(name, str(exc) or type(exc).__name__) from exc
