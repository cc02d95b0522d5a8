"""PrepareData on several processing instances: each host prepares the files ShardedByS3Key dealt
it and names its outputs after itself, and together the hosts write the rows one host would."""

from __future__ import annotations

import json
import math
import shutil
from collections import Counter
from pathlib import Path

import pytest

from model.prepare import BASELINE_ROWS, Cluster, main
from model.schema import COLUMNS
from model.synth import synth_trips, write_trips
from tests.support import FEBRUARY_HEAD, JANUARY_SAMPLE
from tests.unit.test_prepare_golden import spoiled_month

HEADER = ",".join(COLUMNS)
HOSTS = ["algo-1", "algo-2", "algo-3"]
BASELINE_CAP = 1000  # below the train rows, so each host's share of the cap is what binds
SUMMED = ("rows_read", "rows_kept")


@pytest.fixture(scope="module")
def raw(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Six trip files, as a training window's prefix holds them: a synthetic month cut into three
    files, a month with the faults real downloads have, and the two real TLC extracts."""
    folder = tmp_path_factory.mktemp("raw")
    month = synth_trips(6000, seed=5)
    for index, start in enumerate(range(0, len(month), 2000)):
        write_trips(month.iloc[start : start + 2000], folder / f"part-{index}.csv")
    spoiled_month(folder / "spoiled.csv")
    for real in (JANUARY_SAMPLE, FEBRUARY_HEAD):
        shutil.copy(real, folder / real.name)
    return folder


def run_prepare(source: Path, out: Path, *extra: str) -> int:
    message = out.parent / "message"
    arguments = ["--input", str(source), "--output", str(out), "--message-file", str(message)]
    return main([*arguments, "--baseline-rows", str(BASELINE_CAP), *extra])


def resource_config(folder: Path, host: str, hosts: list[str]) -> Path:
    path = folder / "resourceconfig.json"
    path.write_text(json.dumps({"current_host": host, "hosts": hosts}))
    return path


def run_hosts(raw: Path, folder: Path, hosts: list[str], *extra: str) -> dict[str, Path]:
    """Each host as SageMaker runs it: its own input folder with the files dealt to it (object i,
    in key order, to host i mod N), its own resourceconfig.json and output folder."""
    files = sorted(raw.iterdir())
    outputs = {}
    for index, host in enumerate(hosts):
        root = folder / host
        shard = root / "input"
        shard.mkdir(parents=True)
        for file in files[index :: len(hosts)]:
            shutil.copy(file, shard / file.name)
        config = resource_config(root, host, hosts)
        outputs[host] = root / "output"
        assert run_prepare(shard, outputs[host], "--resource-config", str(config), *extra) == 0
    return outputs


@pytest.fixture(scope="module")
def one_host(raw: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("one") / "prepared"
    assert run_prepare(raw, out, "--resource-config", str(out.parent / "absent.json")) == 0
    return out


@pytest.fixture(scope="module")
def three_hosts(raw: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return run_hosts(raw, tmp_path_factory.mktemp("three"), HOSTS)


def lines(path: Path, header: bool) -> list[str]:
    text = path.read_text().splitlines()
    if header:
        assert text[0] == HEADER, path
        return text[1:]
    assert text[0] != HEADER, path
    return text


def test_each_host_names_its_outputs_after_itself(three_hosts: dict[str, Path]) -> None:
    for host, out in three_hosts.items():
        written = sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file())
        assert written == [
            f"baseline/{host}.csv",
            f"summary/{host}.json",
            f"test/{host}.csv",
            f"train/part-{host}-00000.csv",
            f"validation/{host}.csv",
        ]


def test_the_hosts_together_write_the_rows_one_host_writes(
    one_host: Path, three_hosts: dict[str, Path]
) -> None:
    outs = list(three_hosts.values())
    train = Counter(line for out in outs for line in lines(next((out / "train").iterdir()), False))
    assert train == Counter(lines(one_host / "train.csv", header=False))
    for name, header in (("validation", False), ("test", True)):
        together = Counter(
            line for out in outs for line in lines(out / name / f"{out.parent.name}.csv", header)
        )
        assert together == Counter(lines(one_host / f"{name}.csv", header)), name


def test_the_hosts_summaries_add_up_to_one_hosts(
    one_host: Path, three_hosts: dict[str, Path]
) -> None:
    single = json.loads((one_host / "summary.json").read_text())
    parts = [
        json.loads((out / "summary" / f"{host}.json").read_text())
        for host, out in three_hosts.items()
    ]
    for key in SUMMED:
        assert sum(part[key] for part in parts) == single[key], key
    for key in ("dropped", "splits"):
        summed: Counter[str] = Counter()
        for part in parts:
            summed.update(part[key])
        assert {k: summed[k] for k in single[key]} == single[key], key
    assert sum(single["dropped"].values()) > 0  # the spoiled month's faults are counted once
    assert sorted(s["path"].rsplit("/", 1)[1] for p in parts for s in p["sources"]) == sorted(
        s["path"].rsplit("/", 1)[1] for s in single["sources"]
    )


def test_the_hosts_baseline_samples_together_stay_within_the_cap(
    one_host: Path, three_hosts: dict[str, Path]
) -> None:
    train = Counter(lines(one_host / "train.csv", header=False))
    union: Counter[str] = Counter()
    for host, out in three_hosts.items():
        sample = lines(out / "baseline" / f"{host}.csv", header=True)
        summary = json.loads((out / "summary" / f"{host}.json").read_text())
        # Every host has more train rows than its share of the cap, so each sample is full.
        assert len(sample) == summary["baseline_rows"] == summary["baseline_sample_cap"]
        assert len(sample) <= math.ceil(BASELINE_CAP / len(HOSTS))
        union.update(sample)
    assert sum(union.values()) == BASELINE_CAP
    assert not union - train  # baseline rows are train rows


@pytest.mark.parametrize("hosts", [1, 3, 7, 20])
def test_the_hosts_shares_of_the_default_cap_add_up_to_it(hosts: int) -> None:
    names = tuple(f"algo-{i}" for i in range(1, hosts + 1))
    shares = [Cluster(host, names).baseline_share(BASELINE_ROWS) for host in names]
    assert sum(shares) == BASELINE_ROWS
    assert max(shares) == math.ceil(BASELINE_ROWS / hosts)


def test_train_parts_are_per_host(raw: Path, tmp_path: Path) -> None:
    outputs = run_hosts(raw, tmp_path, HOSTS[:2], "--train-parts", "2")
    for host, out in outputs.items():
        parts = sorted(p.name for p in (out / "train").iterdir())
        assert parts == [f"part-{host}-00000.csv", f"part-{host}-00001.csv"]


def test_a_host_dealt_no_files_writes_nothing_and_succeeds(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    empty = tmp_path / "input"
    empty.mkdir()
    config = resource_config(tmp_path, "algo-4", [f"algo-{i}" for i in range(1, 5)])
    out = tmp_path / "output"

    assert run_prepare(empty, out, "--resource-config", str(config)) == 0

    assert not out.exists() or not any(out.iterdir())
    assert "algo-4: no input files" in capsys.readouterr().out


def test_one_host_in_resourceconfig_writes_the_single_layout(
    raw: Path, one_host: Path, tmp_path: Path
) -> None:
    config = resource_config(tmp_path, "algo-1", ["algo-1"])
    out = tmp_path / "prepared"
    assert run_prepare(raw, out, "--resource-config", str(config)) == 0
    for name in ("train.csv", "validation.csv", "test.csv", "baseline.csv"):
        assert (out / name).read_bytes() == (one_host / name).read_bytes(), name


def test_a_run_replaces_the_other_layouts_outputs(raw: Path, tmp_path: Path) -> None:
    """Every consumer reads a prefix (``prepared/validation`` matches ``validation.csv`` and
    ``validation/``): what an earlier run left in the other layout must not be read with it."""
    out = tmp_path / "prepared"
    assert run_prepare(raw, out) == 0
    config = resource_config(tmp_path, "algo-2", HOSTS)
    assert run_prepare(raw, out, "--resource-config", str(config)) == 0
    written = sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file())
    assert written == [
        "baseline/algo-2.csv",
        "summary/algo-2.json",
        "test/algo-2.csv",
        "train/part-algo-2-00000.csv",
        "validation/algo-2.csv",
    ]
    assert run_prepare(raw, out) == 0
    written = sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file())
    assert written == ["baseline.csv", "summary.json", "test.csv", "train.csv", "validation.csv"]
