"""Names, values and messages that look like Rich markup or emoji codes are printed as written:
a file called ``[bold]x[/bold].csv`` is shown with its brackets, and ``:secret:`` stays text."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from safe_deploy.cli import main, print_monitoring
from safe_deploy.console import StageFailed, Stages
from tests.unit.test_traffic import Reply, StubApi, connect_cli

MARKUP = "[bold]trips[/bold] :secret: :smile:"
ENDPOINT = "[bold]blue[/bold]-:secret:"
REFUSAL = "[red]refused[/red] :smile: [/]"


def _run(*args: str) -> Result:
    return CliRunner().invoke(main, list(args))


def test_synth_names_the_file_as_given(tmp_path: Path) -> None:
    out = tmp_path / f"{MARKUP}.csv"

    result = _run("data", "synth", "--rows", "300", "--out", str(out))

    assert result.exit_code == 0, result.output
    assert out.is_file()
    assert f"wrote 300 trips to {out}" in result.stdout


def test_prepare_names_the_source_and_the_output_as_given(tmp_path: Path) -> None:
    source, out = tmp_path / f"{MARKUP}.csv", tmp_path / "[u]prepared[/u]"
    assert _run("data", "synth", "--rows", "300", "--out", str(source)).exit_code == 0

    result = _run("data", "prepare", str(source), "--out", str(out))

    assert result.exit_code == 0, result.output
    assert f"reading {source}" in result.stdout
    assert f"writing splits to {out}" in result.stdout
    assert f"summary written to {out / 'summary.json'}" in result.stdout


def test_an_error_holding_brackets_is_one_line_as_written(tmp_path: Path) -> None:
    missing = tmp_path / "[red]gone[/red] :secret:.csv"

    result = _run("data", "prepare", str(missing), "--out", str(tmp_path / "out"))

    assert result.exit_code == 1
    assert result.stderr.strip().splitlines() == [f"error: {missing}: no such file"]


def test_traffic_shows_endpoint_names_and_errors_as_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def reply(index: int) -> Reply:
        """Of every four requests, the second is refused."""
        return Reply(422, REFUSAL, ENDPOINT) if index % 4 == 1 else Reply(endpoint=ENDPOINT)

    with StubApi(reply) as api:
        connect_cli(api, tmp_path, monkeypatch)
        quiet = _run("traffic", "--requests", "4", "--rate", "50")
        verbose = _run("traffic", "--requests", "4", "--rate", "50", "--verbose")

    for result in (quiet, verbose):
        assert result.exit_code == 0, result.output
        assert f"answered by      {ENDPOINT} 3 (100.0%) and 1 failed" in result.stdout
        assert f"  HTTP 422: {REFUSAL}" in result.stdout
    # "    1 200 <endpoint> 17.25 3 ms": number and latency vary, the rest is as the API sent it
    per_request = [
        re.sub(r"^ *\d+ (.*) \d+ ms$", r"\1", line) for line in verbose.stdout.splitlines()[:4]
    ]
    assert sorted(per_request) == [f"200 {ENDPOINT} 17.25"] * 3 + [f"422 {ENDPOINT} {REFUSAL}"]
    assert f"{ENDPOINT} 17.25" not in quiet.stdout


def test_stage_lines_print_messages_as_written(capsys: pytest.CaptureFixture[str]) -> None:
    stages = Stages()

    with stages.stage("[i]upload[/i] :smile:"):
        stages.say(f"uploaded {MARKUP} to s3://bucket/raw/[x].csv")

    out = capsys.readouterr().out
    assert "▶ [i]upload[/i] :smile:" in out
    assert f"   uploaded {MARKUP} to s3://bucket/raw/[x].csv" in out


def test_a_failed_stage_keeps_the_message_as_written() -> None:
    def upload() -> None:
        with Stages().stage("[i]upload[/i]"):
            raise RuntimeError("[red]denied[/red]")

    with pytest.raises(StageFailed) as failed:
        upload()

    assert str(failed.value) == "[i]upload[/i]: [red]denied[/red]"


def test_drift_by_feature_shows_names_and_reasons_as_written(
    capsys: pytest.CaptureFixture[str],
) -> None:
    feature = "[bold]trip_distance[/bold]"
    violation = {"feature_name": feature, "constraint_check_type": "baseline_drift_check"}

    print_monitoring(10, 9, {"[red]not_json[/red]": 1}, [violation], {feature: 0.5})

    out = capsys.readouterr().out
    assert "skipped 1 malformed ([red]not_json[/red])" in out
    assert feature in out
    assert "baseline_drift_check" in out


def test_the_drift_plot_draws_feature_names_as_written(tmp_path: Path) -> None:
    """A pair of dollars would be read as maths, and an unknown command would fail the report."""
    from safe_deploy.report import drift_png  # matplotlib: only this test draws

    path = tmp_path / "drift.png"

    drift_png({"fare $\\nosuch$ paid": 0.3, "trip_distance": 0.01}, 0.1, path)

    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
