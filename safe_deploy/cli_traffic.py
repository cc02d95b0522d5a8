"""safe-deploy traffic: client requests through the API, then what they reached."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.text import Text

from safe_deploy.cli_common import target_options
from safe_deploy.console import console, errors
from safe_deploy.target import Target
from safe_deploy.traffic import (
    MAX_WORKERS,
    MIN_WORKERS,
    Answer,
    LoadGenerator,
    TrafficSummary,
    client_rides,
)

# How often a run that is not on a terminal says how far it got (CI logs, pipes).
PROGRESS_EVERY_S = 5.0

OnAnswer = Callable[[Answer], None]


@click.command()
@click.option("--requests", "count", default=50, show_default=True, type=click.IntRange(1, 100_000))
@click.option(
    "--rate",
    default=10.0,
    show_default=True,
    type=click.FloatRange(min=0, min_open=True),
    help="Requests per second to aim for (a ceiling: the summary says what was reached).",
)
@click.option(
    "--workers",
    type=click.IntRange(1, MAX_WORKERS),
    help=f"Requests in flight at most [default: from {MIN_WORKERS}, one more whenever all are "
    "busy, while the API keeps its latency].",
)
@click.option(
    "-v", "--verbose", is_flag=True, help="A line per request: status, endpoint, fare, latency."
)
@click.option(
    "--drift",
    type=click.Choice(["longer-trips", "more-passengers", "fare-inflation"]),
    help="Send drifted trips (for monitoring demos).",
)
@click.option("--seed", default=7, show_default=True)
@target_options
def traffic(
    count: int,
    rate: float,
    workers: int | None,
    verbose: bool,
    drift: str | None,
    seed: int,
    stack: str | None,
    region: str | None,
) -> None:
    """Send requests through the API; sum up failures, latency, the rate reached and which
    endpoint answered."""
    target = Target.of(stack, region)
    rows = _rides(count, seed, drift)
    with _progress(len(rows), verbose) as on_answer:
        generator = LoadGenerator(
            target, rows, rate=rate, workers=workers, limit=len(rows), on_answer=on_answer
        ).start()
        interrupted = _wait(generator)
    print_summary(target.name, generator.summary(), interrupted)
    if interrupted:
        raise click.exceptions.Exit(130)  # as a shell reports a run ended by Ctrl-C


def _rides(count: int, seed: int, drift: str | None) -> list[list[float]]:
    from model.synth import synth_trips, write_trips

    scratch = Path(".safe-deploy") / f"traffic-{seed}-{drift or 'plain'}.csv"
    write_trips(synth_trips(max(2 * count, 200), seed=seed, drift=drift), scratch)
    return client_rides(scratch, count)


def _wait(generator: LoadGenerator) -> bool:
    """Waits for the run; Ctrl-C stops it early, with the summary of what was sent. True when
    it was interrupted."""
    try:
        generator.wait()
    except KeyboardInterrupt:
        generator.stop()
        return True
    return False


def print_summary(where: str, summary: TrafficSummary, interrupted: bool = False) -> None:
    """The summary on stdout, as text: endpoint names and error messages are data."""
    pool = summary.pool
    grown = "" if pool.fixed else f", up to {pool.cap} as needed"
    title = f"traffic summary ({where}, {pool.size} workers{grown})"
    if interrupted:
        title += ": interrupted, what was sent so far"
    console.print(Text(title, style="bold"))
    for line in summary.lines():
        console.print(Text(f"  {line}"))


@contextmanager
def _progress(total: int, verbose: bool) -> Iterator[OnAnswer]:
    """What to do with each answer: a line each with --verbose; otherwise a bar on a terminal,
    or a line every few seconds on stderr when it is a pipe or a file."""
    if verbose:
        yield RequestLines(console)
    elif errors.is_terminal:
        with ProgressBar(total, errors) as bar:
            yield bar
    else:
        yield ProgressLines(total, errors)


class RequestLines:
    """One line per answer: its number, status, endpoint, fare or error, latency."""

    def __init__(self, out: Console) -> None:
        self.out = out
        self.seen = 0
        self._lock = threading.Lock()

    def __call__(self, answer: Answer) -> None:
        with self._lock:
            self.seen += 1
            outcome = f"{answer.prediction:.2f}" if answer.prediction is not None else answer.error
            status = str(answer.status) if answer.status else "---"
            self.out.print(
                Text(
                    f"{self.seen:5d} {status} {answer.endpoint} {outcome} "
                    f"{answer.latency_ms:.0f} ms"
                )
            )


class ProgressLines:
    """Progress where a bar cannot redraw: a line at most every ``every`` seconds."""

    def __init__(self, total: int, out: Console, every: float | None = None) -> None:
        self.total = total
        self.out = out
        self.every = PROGRESS_EVERY_S if every is None else every
        self.done = 0
        self.failed = 0
        self.started = time.monotonic()
        self._last = self.started
        self._lock = threading.Lock()

    def __call__(self, answer: Answer) -> None:
        with self._lock:
            self.done += 1
            self.failed += 0 if answer.ok else 1
            now = time.monotonic()
            if now - self._last < self.every:
                return
            self._last = now
            rate = self.done / (now - self.started) if now > self.started else 0.0
            self.out.print(
                Text(
                    f"{self.done:,}/{self.total:,} done, {self.failed:,} failed, "
                    f"{rate:.1f}/s so far"
                )
            )


class ProgressBar:
    """A bar on a terminal, gone when the run ends (the summary follows)."""

    def __init__(self, total: int, out: Console) -> None:
        self.failed = 0
        self._lock = threading.Lock()
        self._bar = Progress(
            TextColumn("requests"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[failed]} failed"),
            TimeElapsedColumn(),
            console=out,
            transient=True,
        )
        self._task = self._bar.add_task("requests", total=total, failed=0)

    def __enter__(self) -> ProgressBar:
        self._bar.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._bar.stop()

    def __call__(self, answer: Answer) -> None:
        with self._lock:
            self.failed += 0 if answer.ok else 1
            self._bar.update(self._task, advance=1, failed=self.failed)
