"""Work folders: safe-deploy clears only folders it made, and one local cloud uses a folder."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from safe_deploy.console import StageFailed
from safe_deploy.localcloud.inflight import Execution, InFlight
from safe_deploy.localcloud.workdir import (
    LOCAL_CLOUD_FILES,
    LOCK,
    LOG,
    MARKER,
    Lock,
    StopRecord,
    WorkdirBusy,
    WorkdirError,
    claim,
    clear,
    occupy,
    probe,
    write_whole,
)


def empty_workdir(workdir: Path) -> None:
    """``safe_deploy.demo.empty_workdir``, imported when a test calls it: the demo brings the
    whole local cloud, which the other tests here do not need."""
    from safe_deploy.demo import empty_workdir as empty

    empty(workdir)


# ---------------------------------------------------------------------------- the marker
def test_a_folder_with_someone_elses_files_is_refused_and_left_intact(tmp_path: Path) -> None:
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "thesis.tex").write_text("three years of work")

    with pytest.raises(WorkdirError) as refused:
        claim(folder, "test")

    message = str(refused.value)
    assert str(folder) in message
    assert "thesis.tex" in message
    assert "--workdir with a new or empty folder" in message
    assert (folder / "thesis.tex").read_text() == "three years of work"
    assert not (folder / MARKER).exists()
    with pytest.raises(WorkdirError):
        clear(folder)
    assert (folder / "thesis.tex").exists()


def test_an_empty_or_missing_folder_is_marked_as_ours(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    missing = tmp_path / "not" / "yet"

    claim(empty, "test")
    claim(missing, "test")

    for folder in (empty, missing):
        marker = json.loads((folder / MARKER).read_text())
        assert marker["created_by"] == "test"
        assert marker["created_at"].endswith("UTC")


def test_a_marked_folder_is_ours_and_clearing_keeps_only_the_marker(tmp_path: Path) -> None:
    folder = tmp_path / "ours"
    claim(folder, "test")
    (folder / "data").mkdir()
    (folder / "data" / "month.csv").write_text("1,2,3\n")
    (folder / "report.html").write_text("<p>")

    claim(folder, "test again")  # no refusal: it is marked
    clear(folder)

    assert sorted(p.name for p in folder.iterdir()) == [MARKER]


def test_a_file_where_a_folder_should_be_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "notes"
    path.write_text("mine")
    with pytest.raises(WorkdirError, match="not a folder"):
        claim(path, "test")
    assert path.read_text() == "mine"


def test_an_earlier_versions_default_folder_is_taken_over_only_if_it_holds_our_files(
    tmp_path: Path,
) -> None:
    old = tmp_path / "old"
    for name in ("outbox", "logs", "code"):
        (old / name).mkdir(parents=True)
    mixed = tmp_path / "mixed"
    (mixed / "logs").mkdir(parents=True)
    (mixed / "keep-me.txt").write_text("someone's")

    claim(old, "test", LOCAL_CLOUD_FILES)
    with pytest.raises(WorkdirError, match=r"keep-me\.txt"):
        claim(mixed, "test", LOCAL_CLOUD_FILES)

    assert (old / MARKER).exists()
    assert (mixed / "keep-me.txt").read_text() == "someone's"


def test_the_demo_refuses_a_folder_it_did_not_make_and_empties_one_it_did(
    tmp_path: Path,
) -> None:
    theirs = tmp_path / "theirs"
    theirs.mkdir()
    (theirs / "budget.xlsx").write_text("numbers")
    ours = tmp_path / "ours"
    empty_workdir(ours)
    (ours / "report").mkdir()

    with pytest.raises(StageFailed, match=r"budget\.xlsx"):
        empty_workdir(theirs)
    empty_workdir(ours)

    assert (theirs / "budget.xlsx").read_text() == "numbers"
    assert sorted(p.name for p in ours.iterdir()) == [MARKER]


def test_the_demos_default_folder_from_an_earlier_version_still_works(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``demo-output`` as an earlier version left it has no marker: it holds only the demo's
    files, so it is taken over; the same files in a folder a user named are not."""
    monkeypatch.chdir(tmp_path)
    for folder in (Path("demo-output"), Path("elsewhere")):
        for name in ("cloud", "data", "report"):
            (folder / name).mkdir(parents=True)
        (folder / "local.json").write_text("{}")

    empty_workdir(Path("demo-output"))
    with pytest.raises(StageFailed, match="elsewhere is not empty"):
        empty_workdir(Path("elsewhere"))

    assert sorted(p.name for p in Path("demo-output").iterdir()) == [MARKER]
    assert sorted(p.name for p in Path("elsewhere").iterdir()) == [
        "cloud",
        "data",
        "local.json",
        "report",
    ]


def test_the_demo_does_not_empty_its_folder_while_a_local_cloud_uses_it(tmp_path: Path) -> None:
    demo = tmp_path / "demo"
    empty_workdir(demo)
    busy = demo / "cloud"
    occupancy = occupy(busy, "test")
    try:
        with pytest.raises(StageFailed, match=re.escape(f"a local cloud already runs in {busy}")):
            empty_workdir(demo)
        assert (demo / "cloud" / MARKER).exists()
    finally:
        occupancy.lock.release()
    empty_workdir(demo)
    assert not (demo / "cloud").exists()


# ---------------------------------------------------------------------------- the lock
HOLD_LOCK = """
import sys, time
from pathlib import Path
from safe_deploy.localcloud.workdir import Lock
lock = Lock.acquire(Path(sys.argv[1]))
lock.update(aws_endpoint_url="http://127.0.0.1:4599")
print("held", flush=True)
time.sleep(600)
"""


@pytest.fixture
def holder(tmp_path: Path) -> Iterator[tuple[Path, subprocess.Popen[str]]]:
    """Another process that holds a folder's lock, as a running local cloud does."""
    folder = tmp_path / "cloud"
    claim(folder, "test")
    process = subprocess.Popen(
        [sys.executable, "-c", HOLD_LOCK, str(folder)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert process.stdout is not None
        assert process.stdout.readline().strip() == "held"
        yield folder, process
    finally:
        process.kill()
        process.wait()


def test_a_second_holder_is_refused_with_the_first_ones_details(
    holder: tuple[Path, subprocess.Popen[str]],
) -> None:
    folder, process = holder

    with pytest.raises(WorkdirBusy) as refused:
        Lock.acquire(folder)

    message = str(refused.value)
    assert f"pid {process.pid}" in message
    assert "AWS endpoint http://127.0.0.1:4599" in message
    assert "started 20" in message
    assert str(folder) in message
    seen = probe(folder)
    assert seen is not None
    assert seen.pid == process.pid


def test_a_lock_whose_process_is_gone_is_taken_over_and_the_start_says_so(
    holder: tuple[Path, subprocess.Popen[str]],
) -> None:
    folder, process = holder
    (folder / "outbox").mkdir()  # what the dead local cloud left
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    assert probe(folder) is None  # the kernel dropped the lock with the process

    occupancy = occupy(folder, "test")
    try:
        assert occupancy.lock.stale is not None
        assert occupancy.lock.stale.pid == process.pid
        assert (
            occupancy.took_over
            == f"took over the lock of pid {process.pid}, which is gone ({folder})"
        )
        assert occupancy.previous is not None
        assert f"pid {process.pid}" in occupancy.previous
        assert "did not stop cleanly" in occupancy.previous
        assert not (folder / "outbox").exists()
        seen = probe(folder)
        assert seen is not None
        assert seen.pid == os.getpid()
    finally:
        occupancy.lock.release()
    assert probe(folder) is None
    assert (folder / LOCK).read_text() == ""


def test_a_clean_stop_is_recorded_and_the_next_start_says_what_it_discarded(
    tmp_path: Path,
) -> None:
    folder = tmp_path / "cloud"
    first = occupy(folder, "test")
    assert first.previous is None  # a new folder discards nothing
    (folder / "logs").mkdir()
    (folder / LOG).write_text("the detached process's output\n")
    stopped_at = time.time()
    in_flight = InFlight(executions=[Execution("fare-0123abcd", "training", "RequestApproval")])
    first.stopped(StopRecord(stopped_at, stopped_at - 60, os.getpid(), in_flight))

    second = occupy(folder, "test")
    try:
        assert second.took_over is None
        assert second.previous is not None
        minute = time.strftime("%Y-%m-%d %H:%M", time.gmtime(stopped_at))
        assert second.previous.startswith(f"the previous local cloud (stopped at {minute}")
        assert "with 1 run in flight: fare-0123abcd)" in second.previous
        assert second.previous.endswith("kept its state in memory only; starting empty")
        assert sorted(p.name for p in folder.iterdir()) == sorted([MARKER, LOCK, LOG])
    finally:
        second.lock.release()


def test_a_whole_write_replaces_the_file_and_a_failed_one_leaves_it_and_nothing_else(
    tmp_path: Path,
) -> None:
    path = tmp_path / "record.json"
    write_whole(path, '{"version": 1}')
    write_whole(path, b'{"version": 2}')
    assert path.read_text() == '{"version": 2}'

    with pytest.raises(UnicodeEncodeError):
        write_whole(path, "\ud800 is no text")  # a lone surrogate: the write itself fails
    assert path.read_text() == '{"version": 2}'
    assert [p.name for p in tmp_path.iterdir()] == ["record.json"]
