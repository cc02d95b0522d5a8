"""safe-deploy traffic: client requests through the API."""

from __future__ import annotations

from pathlib import Path

import click
from rich.markup import escape

from safe_deploy.cli_common import target_options
from safe_deploy.console import console
from safe_deploy.target import Target


@click.command()
@click.option("--requests", "count", default=50, show_default=True, type=click.IntRange(1, 100_000))
@click.option("--rate", default=10.0, show_default=True, help="Requests per second.")
@click.option(
    "--drift",
    type=click.Choice(["longer-trips", "more-passengers", "fare-inflation"]),
    help="Send drifted trips (for monitoring demos).",
)
@click.option("--seed", default=7, show_default=True)
@target_options
def traffic(
    count: int, rate: float, drift: str | None, seed: int, stack: str | None, region: str | None
) -> None:
    """Send requests through the API and show which endpoint answered each."""
    from model.synth import synth_trips, write_trips
    from safe_deploy.traffic import Answer, LoadGenerator, client_rides

    target = Target.of(stack, region)
    scratch = Path(".safe-deploy") / f"traffic-{seed}-{drift or 'plain'}.csv"
    write_trips(synth_trips(max(2 * count, 200), seed=seed, drift=drift), scratch)
    rows = client_rides(scratch, count)
    seen = {"n": 0}

    def show(answer: Answer) -> None:
        seen["n"] += 1
        outcome = f"{answer.prediction:.2f}" if answer.prediction is not None else answer.error
        console.print(
            f"{seen['n']:5d} {answer.status} {escape(answer.endpoint)} {escape(str(outcome))}",
            highlight=False,
        )

    log = (
        LoadGenerator(target, rows, rate=rate, workers=4, limit=len(rows), on_answer=show)
        .start()
        .wait()
    )
    counts = log.by_endpoint()
    console.print(
        f"{log.sent} sent, {len(log.failed)} failed; answered by: "
        + ", ".join(f"{k} {v} ({v / max(1, log.sent):.0%})" for k, v in counts.items())
    )
