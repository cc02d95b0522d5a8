"""Distributed training: prepare's train parts, and hosts that train one model together through
XGBoost's own collective, as the SageMaker XGBoost algorithm does with InstanceCount > 1."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from model.prepare import main as prepare_main
from model.prepare import prepare
from model.schema import COLUMNS
from model.serve import FareModel
from model.synth import write_trips
from model.train import MODEL_FILE, read_cluster
from tests.support import FEBRUARY_HEAD, JANUARY_SAMPLE, REPO, Trained, rmse

PARTS = 3


def _rows(*paths: Path) -> pd.DataFrame:
    """Label-first headerless rows, as a multiset: sorted, floats read exactly."""
    frames = [
        pd.read_csv(path, header=None, names=list(COLUMNS), float_precision="round_trip")
        for path in paths
    ]
    frame = pd.concat(frames, ignore_index=True)
    return frame.sort_values(list(COLUMNS), kind="stable").reset_index(drop=True)


def _parts(out: Path) -> list[Path]:
    return sorted((out / "train").glob("part-*.csv"))


# ----------------------------------------------------------------------------- prepare
@pytest.fixture(scope="module")
def real_and_synthetic(small_month_csv: Path) -> list[Path]:
    """The real TLC rows and a synthetic month, prepared together."""
    return [JANUARY_SAMPLE, FEBRUARY_HEAD, small_month_csv]


def test_train_parts_hold_exactly_the_rows_of_train_csv(
    real_and_synthetic: list[Path], tmp_path: Path
) -> None:
    single, parted = tmp_path / "single", tmp_path / "parted"
    prepare(real_and_synthetic, single)
    inputs = [str(path) for path in real_and_synthetic]
    message = str(tmp_path / "message")
    arguments = ["--input", *inputs, "--output", str(parted), "--message-file", message]
    code = prepare_main([*arguments, "--train-parts", str(PARTS)])

    assert code == 0
    parts = _parts(parted)
    assert [p.name for p in parts] == [f"part-{i:05d}.csv" for i in range(PARTS)]
    assert not (parted / "train.csv").exists()  # the prefix prepared/train holds the parts only
    assert all(p.stat().st_size > 0 for p in parts)
    pd.testing.assert_frame_equal(_rows(*parts), _rows(single / "train.csv"))
    # Headerless like train.csv: every line is four numbers.
    assert all(len(line.split(",")) == 4 for line in parts[0].read_text().splitlines()[:5])
    # The other outputs are the same files, and the summary says where train went.
    for name in ("validation.csv", "test.csv", "baseline.csv"):
        assert (parted / name).read_bytes() == (single / name).read_bytes()
    summary = json.loads((parted / "summary.json").read_text())
    assert summary["outputs"]["train"] == str(parted / "train")
    assert summary["splits"] == json.loads((single / "summary.json").read_text())["splits"]


def test_which_part_a_row_is_in_does_not_depend_on_the_chunks(
    small_month: pd.DataFrame, tmp_path: Path
) -> None:
    # Chunks of 7 rows cut every file, the real ones too. 700 synthetic rows give a hundred cuts,
    # enough for a part that depends on where a chunk starts to show; each chunk has a fixed
    # cost, and the whole 5,000-row month would pay it seven times as often.
    synthetic = tmp_path / "green_tripdata_2018-02.csv"
    write_trips(small_month.head(700), synthetic)
    sources = [JANUARY_SAMPLE, FEBRUARY_HEAD, synthetic]
    whole, chunked = tmp_path / "whole", tmp_path / "chunked"
    prepare(sources, whole, train_parts=PARTS)
    prepare(sources, chunked, train_parts=PARTS, chunk_rows=7)

    for first, second in zip(_parts(whole), _parts(chunked), strict=True):
        assert first.read_bytes() == second.read_bytes()


def test_a_new_layout_replaces_the_old_train_split(
    real_and_synthetic: list[Path], tmp_path: Path
) -> None:
    """train.csv and train/ share the channel's prefix: a rerun never leaves both behind."""
    prepare(real_and_synthetic, tmp_path, train_parts=PARTS)
    prepare(real_and_synthetic, tmp_path, train_parts=2)
    assert [p.name for p in _parts(tmp_path)] == ["part-00000.csv", "part-00001.csv"]
    assert not (tmp_path / "train.csv").exists()

    prepare(real_and_synthetic, tmp_path)
    assert _parts(tmp_path) == []
    assert (tmp_path / "train.csv").exists()


def test_train_parts_must_be_positive(real_and_synthetic: list[Path], tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="train_parts"):
        prepare(real_and_synthetic, tmp_path, train_parts=0)


# ------------------------------------------------------------------------------- train
def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


def _hosts_root(tmp_path: Path, prepared: Path, hosts: list[str]) -> dict[str, Path]:
    """An /opt/ml root per host, as SageMaker lays them out: the host's own train part
    (ShardedByS3Key), all of validation (FullyReplicated), resourceconfig.json."""
    roots = {}
    parts = _parts(prepared)
    for index, host in enumerate(hosts):
        root = tmp_path / host / "opt" / "ml"
        config = root / "input" / "config"
        config.mkdir(parents=True)
        (config / "resourceconfig.json").write_text(
            json.dumps({"current_host": host, "hosts": hosts, "network_interface_name": "eth0"})
        )
        (config / "hyperparameters.json").write_text("{}")
        for name, files in (("train", parts[index :: len(hosts)]), ("validation", None)):
            channel = root / "input" / "data" / name
            channel.mkdir(parents=True)
            for source in files or [prepared / "validation.csv"]:
                shutil.copy(source, channel / source.name)
        roots[host] = root
    return roots


def _run_hosts(roots: dict[str, Path]) -> dict[str, int]:
    """Each host's ``python -m model.train`` as its own process; every host's exit code."""
    environment = {
        **os.environ,
        "DMLC_TRACKER_URI": "127.0.0.1",
        "DMLC_TRACKER_PORT": str(_free_port()),
        "OMP_NUM_THREADS": "1",
    }
    workers = {
        host: subprocess.Popen(
            [sys.executable, "-m", "model.train", "--root", str(root)],
            env=environment,
            cwd=REPO,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for host, root in roots.items()
    }
    try:
        return {host: worker.wait(timeout=300) for host, worker in workers.items()}
    finally:
        for worker in workers.values():
            if worker.poll() is None:
                worker.kill()


@pytest.fixture(scope="module")
def two_hosts(
    training_month_csv: Path, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Path]:
    """The session's training month prepared in two train parts, trained on two hosts."""
    prepared = tmp_path_factory.mktemp("prepared-2")
    prepare([training_month_csv], prepared, train_parts=2)
    roots = _hosts_root(tmp_path_factory.mktemp("hosts"), prepared, ["algo-1", "algo-2"])
    codes = _run_hosts(roots)
    assert codes == {"algo-1": 0, "algo-2": 0}, [
        (root / "output" / "failure").read_text()
        for root in roots.values()
        if (root / "output" / "failure").exists()
    ]
    return roots


def test_two_hosts_train_a_model_as_good_as_one_host_on_the_same_rows(
    two_hosts: dict[str, Path], trained: Trained
) -> None:
    report = json.loads((two_hosts["algo-1"] / "output" / "metrics.json").read_text())
    one_host = trained.report.final_metrics["validation:rmse"]

    two = report["final_metrics"]["validation:rmse"]

    assert two == pytest.approx(one_host, rel=0.02)
    # The rows are the same ones: the report counts both hosts' shards.
    assert report["train_rows"] == trained.report.train_rows
    assert report["validation_rows"] == trained.report.validation_rows


def test_the_reported_metric_is_the_global_one_of_the_saved_model(
    two_hosts: dict[str, Path], trained: Trained
) -> None:
    """Each host evaluated its own shard; the collective reduced them to the model's score."""
    report = json.loads((two_hosts["algo-1"] / "output" / "metrics.json").read_text())
    matrix = np.loadtxt(trained.prepared / "validation.csv", delimiter=",", ndmin=2)
    model = FareModel.load(two_hosts["algo-1"] / "model")

    predicted = model.predict(matrix[:, 1:])

    assert rmse(matrix[:, 0], predicted) == pytest.approx(
        report["final_metrics"]["validation:rmse"], rel=1e-4
    )
    train = np.loadtxt(trained.prepared / "train.csv", delimiter=",", ndmin=2)
    assert rmse(train[:, 0], model.predict(train[:, 1:])) == pytest.approx(
        report["final_metrics"]["train:rmse"], rel=1e-4
    )


def test_only_the_first_host_writes_the_model_and_metrics(two_hosts: dict[str, Path]) -> None:
    assert (two_hosts["algo-1"] / "model" / MODEL_FILE).exists()
    assert not (two_hosts["algo-2"] / "model").exists()
    assert not (two_hosts["algo-2"] / "output" / "metrics.json").exists()


def test_a_single_host_resource_config_is_not_a_cluster(tmp_path: Path) -> None:
    assert read_cluster(tmp_path) is None
    (tmp_path / "resourceconfig.json").write_text(
        json.dumps({"current_host": "algo-1", "hosts": ["algo-1"]})
    )
    assert read_cluster(tmp_path) is None
    (tmp_path / "resourceconfig.json").write_text(
        json.dumps({"current_host": "algo-2", "hosts": ["algo-1", "algo-2"]})
    )
    cluster = read_cluster(tmp_path)
    assert cluster is not None
    assert (cluster.rank, cluster.is_master) == (1, False)
