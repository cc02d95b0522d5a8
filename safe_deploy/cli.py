"""``safe-deploy``: the model core's commands and the pipeline's operator commands."""

from __future__ import annotations

import importlib
import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import click
from pipeline_common.payload import PayloadError
from rich.table import Table
from rich.text import Text

from model.errors import DataFileError, TrainingError
from safe_deploy.cli_common import project_root
from safe_deploy.console import StageFailed, console, errors
from safe_deploy.scenarios import SCENARIOS
from safe_deploy.target import TargetError

F = TypeVar("F", bound=Callable[..., Any])


def say(message: str) -> None:
    """Progress and results that hold paths or user data: printed as they are, never as markup."""
    console.print(message, markup=False)


USER_ERRORS = (
    DataFileError,
    PayloadError,
    TrainingError,
    StageFailed,
    FileNotFoundError,
    TargetError,
)


class _Group(click.Group):
    """Known failures end with one line on stderr, not a traceback. The operator commands are
    loaded when used (:data:`safe_deploy.cli_ops.OPERATOR_COMMANDS`)."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        from safe_deploy.cli_ops import OPERATOR_COMMANDS

        return sorted([*super().list_commands(ctx), *OPERATOR_COMMANDS])

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        from safe_deploy.cli_ops import OPERATOR_COMMANDS

        if cmd_name in OPERATOR_COMMANDS and cmd_name not in self.commands:
            module, attribute = OPERATOR_COMMANDS[cmd_name].split(":")
            command = getattr(importlib.import_module(module), attribute)
            if not isinstance(command, click.Command) or command.name != cmd_name:
                raise TypeError(f"{OPERATOR_COMMANDS[cmd_name]} is not the command {cmd_name}")
            self.add_command(command)
        return super().get_command(ctx, cmd_name)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except USER_ERRORS as exc:
            console.file.flush()
            errors.print(Text.assemble(("error:", "red"), " ", str(exc)))
            ctx.exit(1)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """A safe, monitored release pipeline for a SageMaker fare model."""


@main.group()
def data() -> None:
    """Trip data: prepare TLC months, make synthetic ones."""


@data.command("prepare")
@click.argument("sources", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--out", "out_dir", required=True, type=click.Path(path_type=Path))
@click.option("--seed", default=None, type=int, help="Split seed (default: the pipeline's).")
@click.option(
    "--baseline-rows",
    default=None,
    type=click.IntRange(min=1),
    help="Most train rows sampled into baseline.csv (default: the pipeline's).",
)
@click.option(
    "--train-parts",
    default=1,
    show_default=True,
    type=click.IntRange(min=1),
    help="Write train as this many train/part-NNNNN.csv files instead of train.csv, one for "
    "each instance of a distributed training job.",
)
def data_prepare(
    sources: Sequence[Path],
    out_dir: Path,
    seed: int | None,
    baseline_rows: int | None,
    train_parts: int,
) -> None:
    """Derive, filter and split TLC trip files (CSV or Parquet, green or yellow)."""
    from model.prepare import BASELINE_ROWS, SPLIT_SEED, prepare

    summary = prepare(
        sources,
        out_dir,
        SPLIT_SEED if seed is None else seed,
        progress=say,
        baseline_rows=BASELINE_ROWS if baseline_rows is None else baseline_rows,
        train_parts=train_parts,
    )
    table = Table(title="prepare summary", show_header=False)
    table.add_column(justify="left")
    table.add_column(justify="right")
    table.add_row("rows read", f"{summary.rows_read:,}")
    table.add_row("rows kept", f"{summary.rows_kept:,}")
    for reason, count in summary.dropped.items():
        table.add_row(Text(f"dropped: {reason}"), f"{count:,}")
    for name, count in summary.splits.items():
        table.add_row(Text(f"split: {name}"), f"{count:,}")
    table.add_row("baseline rows", f"{summary.baseline_rows:,}")
    console.print(table)
    say(f"summary written to {out_dir / 'summary.json'}")


@data.command("synth")
@click.option("--rows", required=True, type=click.IntRange(min=1))
@click.option("--out", "out_file", required=True, type=click.Path(path_type=Path))
@click.option("--drift", type=click.Choice(["longer-trips", "more-passengers", "fare-inflation"]))
@click.option("--seed", default=0, show_default=True, type=int)
@click.option("--month", default="2018-02", show_default=True, help="YYYY-MM of the pickups.")
def data_synth(rows: int, out_file: Path, drift: str | None, seed: int, month: str) -> None:
    """Write realistic synthetic trips in the green 2018 schema (.csv or .parquet)."""
    from model.synth import synth_trips, write_trips

    if out_file.suffix.lower() not in (".csv", ".parquet"):
        raise click.BadParameter("choose a .csv or .parquet file name", param_hint="--out")
    write_trips(synth_trips(rows, seed=seed, drift=drift, month=month), out_file)
    say(f"wrote {rows:,} trips{f' ({drift})' if drift else ''} to {out_file}")


def _hyperparameters(value: str | None) -> dict[str, Any]:
    if not value:
        return {}
    path = Path(value)
    text = path.read_text() if path.is_file() else value
    try:
        parsed = json.loads(text)
    except json.JSONDecodeError as exc:
        raise click.BadParameter(f"not JSON nor a JSON file: {exc}") from exc
    if not isinstance(parsed, dict):
        raise click.BadParameter("hyperparameters must be a JSON object")
    return {str(k): str(v) for k, v in parsed.items()}


@main.command()
@click.argument("data_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--out", "out_dir", required=True, type=click.Path(path_type=Path))
@click.option("--hyperparameters", help="JSON object or a JSON file; SageMaker-style strings.")
def train(data_dir: Path, out_dir: Path, hyperparameters: str | None) -> None:
    """Train XGBoost on the train/validation channels (built-in algorithm contract)."""
    from model.train import train_to_dir

    report = train_to_dir(data_dir, out_dir, _hyperparameters(hyperparameters), say)
    for name, value in report.final_metrics.items():
        say(f"{name} = {value:.4f}")
    stopped = (
        f"stopped early after {report.rounds_run} rounds, best round {report.best_iteration}"
        if report.rounds_run < report.num_round
        else f"{report.rounds_run} rounds"
    )
    say(f"{stopped}; {report.seconds:.1f}s; wrote {out_dir / 'model.tar.gz'}")


@main.command()
@click.argument("model_dir", type=click.Path(exists=True, path_type=Path))
@click.option("--input", "source", default="-", type=click.File("rb"), help="Default: stdin.")
@click.option("--content-type", default="text/csv", show_default=True)
@click.option("--accept", default="text/csv", show_default=True)
def predict(model_dir: Path, source: Any, content_type: str, accept: str) -> None:
    """Score rows of duration_minutes,passenger_count,trip_distance (CSV or JSON)."""
    from model.serve import FareModel

    body, _ = FareModel.load(model_dir).invoke(source.read(), content_type, accept)
    sys.stdout.buffer.write(body)


@main.command("baseline")
@click.argument("dataset", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--out", "out_dir", required=True, type=click.Path(path_type=Path))
@click.option("--comparison-threshold", default=0.1, show_default=True, type=float)
def baseline_command(dataset: Path, out_dir: Path, comparison_threshold: float) -> None:
    """statistics.json and constraints.json (Model Monitor formats) for baseline.csv."""
    from model.baseline import baseline

    statistics, _ = baseline(dataset, out_dir, comparison_threshold)
    say(
        f"baselined {statistics['dataset']['item_count']:,} rows, "
        f"{len(statistics['features'])} features; wrote {out_dir}"
    )


@main.command("monitor")
@click.option("--baseline", "baseline_dir", required=True, type=click.Path(path_type=Path))
@click.argument("captures", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--out", "out_dir", required=True, type=click.Path(path_type=Path))
@click.option("--ground-truth", multiple=True, type=click.Path(path_type=Path))
def monitor_command(
    baseline_dir: Path, captures: Sequence[Path], out_dir: Path, ground_truth: Sequence[Path]
) -> None:
    """Compare captured traffic with the baseline; write statistics and violations."""
    import os

    from model.monitor import monitor

    # Its own process, with no other threads: large captures may be read on every core.
    report = monitor(baseline_dir, captures, out_dir, ground_truth, workers=os.cpu_count() or 1)
    print_monitoring(
        report.records, report.rows, report.malformed, report.violations, report.distances
    )
    say(f"wrote {out_dir}")


def print_monitoring(
    records: int,
    rows: int,
    malformed: dict[str, int],
    violations: Sequence[dict[str, str]],
    distances: dict[str, float],
) -> None:
    """Capture records analysed and drift by feature; feature names and reasons are data."""
    say(f"{records:,} capture records, {rows:,} rows analysed")
    for reason, count in malformed.items():
        console.print(Text(f"  skipped {count:,} malformed ({reason})", style="yellow"))
    table = Table(title="drift by feature")
    table.add_column("feature")
    table.add_column("distance", justify="right")
    table.add_column("violations")
    by_feature: dict[str, list[str]] = {}
    for violation in violations:
        by_feature.setdefault(violation["feature_name"], []).append(
            violation["constraint_check_type"]
        )
    for name in dict.fromkeys([*distances, *by_feature]):
        found = by_feature.get(name, [])
        shown = ", ".join(found) if found else "-"
        colour = "red" if found else "green"
        distance = f"{distances[name]:.3f}" if name in distances else "-"
        table.add_row(Text(name), distance, Text(shown, style=colour))
    console.print(table)


@main.command()
@click.option(
    "--workdir",
    type=click.Path(path_type=Path),
    default=Path("demo-output"),
    show_default=True,
    help="Where the local cloud, data and report go.",
)
@click.option("--scenario", type=click.Choice(sorted(SCENARIOS)), help="Run one failure scenario.")
@click.option(
    "--data",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="A real TLC month (CSV or Parquet) instead of synthetic data.",
)
@click.option(
    "--auto-approve/--no-auto-approve",
    default=True,
    show_default=True,
    help="Approve on the page as a reviewer would, or wait for a person to.",
)
@click.option("--time-scale", type=float, help="Real seconds per simulated second (default 0.01).")
@click.option("--core", is_flag=True, help="Only the model core, without the local cloud.")
def demo(
    workdir: Path,
    scenario: str | None,
    data: Path | None,
    auto_approve: bool,
    time_scale: float | None,
    core: bool,
) -> None:
    """The whole pipeline in the local cloud, from an S3 upload to a canaried, monitored model."""
    if core:
        from safe_deploy.core_demo import run_core_demo

        run_core_demo(workdir)
        return
    from safe_deploy.demo import run_demo

    result = run_demo(project_root(), workdir, scenario, data, auto_approve, time_scale)
    if scenario:
        console.print(
            Text.assemble((f"scenario {scenario} behaved as it should:", "green"), " ", str(result))
        )
    else:
        console.print(Text.assemble(("demo complete", "green"), f"; report at {result}"))
