"""The safe-deploy commands of the model core, end to end through click."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import boto3
import pandas as pd
import pytest
from click.testing import CliRunner, Result
from moto import mock_aws

from model.schema import FEATURES
from model.serve import FareModel
from safe_deploy.cli import main
from safe_deploy.cli_ops import OPERATOR_COMMANDS
from safe_deploy.offline import serve_and_capture
from tests.support import REPO, SPLIT_HEADER, offline_aws, read_json, validate


def _run(*args: str) -> Result:
    result = CliRunner().invoke(main, list(args))
    assert result.exit_code == 0, f"{args}: {result.output}{result.exception!r}"
    return result


def test_synth_prepare_train_baseline_monitor(tmp_path: Path) -> None:
    month, traffic = tmp_path / "month.csv", tmp_path / "traffic.parquet"
    prepared, model_dir, baseline_dir = tmp_path / "prepared", tmp_path / "model", tmp_path / "base"

    synth = _run("data", "synth", "--rows", "6000", "--out", str(month), "--seed", "5")
    assert "6,000 trips" in synth.stdout
    assert month.read_text().splitlines()[1] == ""
    _run("data", "synth", "--rows", "1500", "--out", str(traffic), "--drift", "longer-trips")
    assert traffic.read_bytes()[:4] == b"PAR1"

    prepare = _run("data", "prepare", str(month), "--out", str(prepared))
    summary = read_json(prepared / "summary.json")
    assert summary["rows_read"] == 6000
    assert summary["rows_read"] == summary["rows_kept"] + sum(summary["dropped"].values())
    assert f"{summary['rows_kept']:,}" in prepare.stdout
    for reason in summary["dropped"]:
        assert f"dropped: {reason}" in prepare.stdout
    assert (prepared / "test.csv").read_text().splitlines()[0] == SPLIT_HEADER

    hyperparameters = tmp_path / "hyperparameters.json"
    hyperparameters.write_text(json.dumps({"num_round": 8, "max_depth": "4"}))
    train = _run(
        "train", str(prepared), "--out", str(model_dir), "--hyperparameters", str(hyperparameters)
    )
    assert "validation:rmse = " in train.stdout
    metrics = read_json(model_dir / "metrics.json")
    assert metrics["rounds_run"] == 8
    assert metrics["hyperparameters"]["max_depth"] == "4"
    assert (model_dir / "model.tar.gz").is_file()

    _run("baseline", str(prepared / "baseline.csv"), "--out", str(baseline_dir))
    validate(read_json(baseline_dir / "statistics.json"), "statistics")
    validate(read_json(baseline_dir / "constraints.json"), "constraints")

    drifted = tmp_path / "drifted"
    _run("data", "prepare", str(traffic), "--out", str(drifted))
    frame = pd.read_csv(drifted / "baseline.csv")
    capture = tmp_path / "capture" / "endpoint" / "AllTraffic" / "2018" / "03" / "01" / "00.jsonl"
    serve_and_capture(FareModel.load(model_dir), frame[list(FEATURES)].to_numpy(), capture)
    out = tmp_path / "monitoring"
    monitored = _run(
        "monitor", "--baseline", str(baseline_dir), str(tmp_path / "capture"), "--out", str(out)
    )
    assert f"{len(frame):,} capture records" in monitored.stdout
    violations = read_json(out / "constraint_violations.json")
    validate(violations, "constraint_violations")
    assert "trip_distance" in {v["feature_name"] for v in violations["violations"]}
    validate(read_json(out / "statistics.json"), "statistics")


def test_train_with_inline_json_hyperparameters(prepared_dir: Path, tmp_path: Path) -> None:
    _run(
        "train",
        str(prepared_dir),
        "--out",
        str(tmp_path),
        "--hyperparameters",
        '{"num_round": "3"}',
    )
    assert read_json(tmp_path / "metrics.json")["rounds_run"] == 3


def test_train_with_a_bad_hyperparameter_is_one_error_line(
    prepared_dir: Path, tmp_path: Path
) -> None:
    result = CliRunner().invoke(
        main,
        ["train", str(prepared_dir), "--out", str(tmp_path), "--hyperparameters", '{"eta": "abc"}'],
    )
    assert result.exit_code == 1
    assert result.stderr.strip().splitlines() == ["error: hyperparameter eta='abc' is not a number"]


def test_synth_refuses_other_extensions(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        main, ["data", "synth", "--rows", "5", "--out", str(tmp_path / "trips.json")]
    )
    assert result.exit_code == 2
    assert ".csv or .parquet" in result.stderr


def test_prepare_progress_names_the_file_as_given(small_month_csv: Path, tmp_path: Path) -> None:
    source = tmp_path / "green_tripdata_2018-02 [copy].csv"
    shutil.copy(small_month_csv, source)

    result = _run("data", "prepare", str(source), "--out", str(tmp_path / "out"))

    assert f"reading {source}" in result.stdout


def test_prepare_in_parts_trains_as_one_file_does(small_month_csv: Path, tmp_path: Path) -> None:
    whole, parts = tmp_path / "whole", tmp_path / "parts"
    _run("data", "prepare", str(small_month_csv), "--out", str(whole))
    _run("data", "prepare", str(small_month_csv), "--out", str(parts), "--train-parts", "2")

    assert sorted(p.name for p in (parts / "train").iterdir()) == [
        "part-00000.csv",
        "part-00001.csv",
    ]
    assert not (parts / "train.csv").exists()
    rows = sum(len(p.read_text().splitlines()) for p in (parts / "train").iterdir())
    assert rows == len((whole / "train.csv").read_text().splitlines())
    trained = _run("train", str(parts), "--out", str(tmp_path / "model"))
    assert (tmp_path / "model" / "model.tar.gz").exists(), trained.output


def test_local_env_exports_what_points_clients_at_the_local_cloud(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    connection = tmp_path / "local.json"
    connection.write_text(
        json.dumps(
            {
                "aws_endpoint_url": "http://127.0.0.1:4566",
                "region": "us-east-1",
                "access_key": "local-operator",
                "secret_key": "testing",
            }
        )
    )
    monkeypatch.setenv("SAFE_DEPLOY_LOCAL", str(connection))
    result = CliRunner().invoke(main, ["local", "env"])
    assert result.exit_code == 0, result.output
    assert "export AWS_ENDPOINT_URL=http://127.0.0.1:4566" in result.output
    assert "export AWS_DEFAULT_REGION=us-east-1" in result.output
    assert "export AWS_SECRET_ACCESS_KEY=testing" in result.output
    assert "unset AWS_PROFILE AWS_SESSION_TOKEN" in result.output


def test_local_env_without_a_running_local_cloud_says_how_to_start_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SAFE_DEPLOY_LOCAL", str(tmp_path / "missing.json"))
    result = CliRunner().invoke(main, ["local", "env"])
    assert result.exit_code != 0
    assert "safe-deploy local up" in result.output


def test_rotate_approval_key_prints_versions_never_the_key(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Against a deployed stack (moto): the stack's ApprovalSigningSecretArn output is the key."""
    offline_aws(monkeypatch, "us-east-1")
    monkeypatch.delenv("SAFE_DEPLOY_STACK", raising=False)
    with mock_aws():
        manager = boto3.client("secretsmanager")
        arn = manager.create_secret(Name="approval-signing", SecretString="first-key")["ARN"]
        boto3.client("cloudformation").create_stack(
            StackName="fares",
            TemplateBody=json.dumps(
                {
                    "Resources": {"Topic": {"Type": "AWS::SNS::Topic"}},
                    "Outputs": {"ApprovalSigningSecretArn": {"Value": arn}},
                }
            ),
        )
        (first,) = manager.describe_secret(SecretId=arn)["VersionIdsToStages"]

        rotated = _run("rotate-approval-key", "--stack", "fares")
        stages = manager.describe_secret(SecretId=arn)["VersionIdsToStages"]
        (second,) = [v for v, s in stages.items() if "AWSCURRENT" in s]
        assert stages[first] == ["AWSPREVIOUS"]
        assert f"version {second} is AWSCURRENT" in rotated.stdout
        assert f"version {first} is AWSPREVIOUS" in rotated.stdout

        revoked = _run("rotate-approval-key", "--stack", "fares", "--revoke-previous")
        stages = {
            v: s
            for v, s in manager.describe_secret(SecretId=arn)["VersionIdsToStages"].items()
            if s
        }
        (third,) = stages
        assert stages[third] == ["AWSCURRENT"]
        assert f"version {second} revoked" in revoked.stdout
        assert f"version {first} (was AWSPREVIOUS)" in revoked.stdout
        key = manager.get_secret_value(SecretId=arn)["SecretString"]
        for output in (rotated.output, revoked.output):
            assert key not in output
            assert "first-key" not in output


def test_rotate_approval_key_needs_a_stack_or_a_local_cloud(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SAFE_DEPLOY_STACK", raising=False)
    monkeypatch.setenv("SAFE_DEPLOY_LOCAL", str(tmp_path / "missing.json"))
    result = CliRunner().invoke(main, ["rotate-approval-key"])
    assert result.exit_code == 1
    assert "safe-deploy local up" in result.stderr


def test_every_operator_command_is_listed_and_runs_its_own_help() -> None:
    """Operator commands load when used: each one named is found, under its own name."""
    listed = _run("--help").stdout
    for name in OPERATOR_COMMANDS:
        assert f"  {name} " in listed
        assert _run(name, "--help").stdout.startswith(f"Usage: main {name} ")


def test_the_commands_on_local_files_start_without_boto3(tmp_path: Path) -> None:
    """`monitor` and `data prepare` read local files: their start-up imports no AWS client
    (about three quarters of the command line's import time before)."""
    code = (
        "import sys\n"
        "from safe_deploy.cli import main\n"
        "from model import monitor, prepare\n"
        "print(sorted(m for m in ('boto3', 'botocore', 'requests') if m in sys.modules))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO
    )
    assert done.stdout.strip() == "[]", done.stdout
