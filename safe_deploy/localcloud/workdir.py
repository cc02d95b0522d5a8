"""Work folders: which ones are ours to clear, and which local cloud uses one.

safe-deploy clears its work folders (the local cloud at every start, the demo before every run),
so it must never take a folder that holds someone else's files. A folder is ours only if it holds
``MARKER``, written when safe-deploy created the folder or found it empty. A folder that an earlier
version made has no marker; callers may name what such a folder holds (``legacy``), and a folder
that holds nothing else is taken over and marked.

One local cloud at a time uses a folder: it holds an ``flock`` on ``LOCK`` for its whole life, and
writes there who it is (pid, endpoints, when it started). The kernel drops the lock when the
process ends, however it ends, so a lock file whose lock is free but which still names a process
was left by a local cloud that did not stop cleanly: the next one takes it over and says so.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from safe_deploy.localcloud.inflight import InFlight

MARKER = ".safe-deploy-workdir"
LOCK = ".safe-deploy-lock"
STOP_RECORD = "last-stop.json"
LOG = "local-up.log"  # where ``local up --detach`` sends the background process's output

# What clearing a local cloud's folder at the next start keeps.
KEPT_BY_LOCAL_CLOUD = frozenset({MARKER, LOCK, LOG})
# What a local cloud of an earlier version, before folders were marked, left in its folder.
LOCAL_CLOUD_FILES = frozenset({"outbox", "logs", "code", "sagemaker"})


class WorkdirError(RuntimeError):
    """A folder safe-deploy must not use: not ours, or not a folder."""


class WorkdirBusy(WorkdirError):
    """Another local cloud uses the folder."""

    def __init__(self, folder: Path, holder: Holder) -> None:
        self.folder = folder
        self.holder = holder
        super().__init__(
            f"a local cloud already runs in {folder} ({holder.describe()}); "
            "`safe-deploy local down` stops it, or pass another --workdir"
        )


def when(seconds: float | None) -> str:
    """A moment as people read it in this tool's output (UTC)."""
    if seconds is None:
        return "an unknown time"
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(seconds))


# ---------------------------------------------------------------------------- the marker
def is_ours(folder: Path) -> bool:
    return (folder / MARKER).is_file()


def claim(folder: Path, created_by: str, legacy: frozenset[str] = frozenset()) -> None:
    """Make ``folder`` ours, or refuse: a missing or empty folder is created and marked; a marked
    one is ours already; one that holds only names in ``legacy`` (what an earlier version of
    safe-deploy left there, before folders were marked) is marked; anything else is refused."""
    if folder.exists() and not folder.is_dir():
        raise WorkdirError(f"{folder} is not a folder; pass --workdir with a folder's path")
    if is_ours(folder):
        return
    folder.mkdir(parents=True, exist_ok=True)
    entries = sorted(p.name for p in folder.iterdir())
    if entries and not set(entries) <= legacy:
        shown = ", ".join(entries[:3]) + (", ..." if len(entries) > 3 else "")
        raise WorkdirError(
            f"{folder} is not empty ({shown}) and safe-deploy did not create it (it has no "
            f"{MARKER}). safe-deploy clears its work folders, so it will not use this one: pass "
            "--workdir with a new or empty folder, or move those files elsewhere"
        )
    marker = {"created_by": created_by, "created_at": when(time.time()), "pid": os.getpid()}
    if entries:
        marker["adopted"] = "made by an earlier safe-deploy; held only its own files"
    (folder / MARKER).write_text(json.dumps(marker, indent=2) + "\n")


def clear(folder: Path, keep: frozenset[str] = frozenset(), own_lock: Lock | None = None) -> None:
    """Delete what ``folder`` holds but the marker and ``keep``: only in a folder that is ours,
    and never while a local cloud other than ``own_lock``'s holder uses it or a folder in it."""
    if not is_ours(folder):
        raise WorkdirError(f"{folder} is not a safe-deploy work folder (no {MARKER}): not cleared")
    for lock_file in folder.rglob(LOCK):
        if own_lock is not None and lock_file == own_lock.path:
            continue
        holder = probe(lock_file.parent)
        if holder is not None:
            raise WorkdirBusy(lock_file.parent, holder)
    for entry in folder.iterdir():
        if entry.name in keep or entry.name == MARKER:
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry)
        else:
            entry.unlink()


# ---------------------------------------------------------------------------- the lock
@dataclass
class Holder:
    """The local cloud that holds (or held) a folder's lock, as it described itself."""

    pid: int
    started_at: float
    workdir: str
    aws_endpoint_url: str | None = None
    api_url: str | None = None
    time_scale: float | None = None

    def describe(self) -> str:
        pid = self.pid or "unknown"
        endpoint = self.aws_endpoint_url or "not answering yet: still starting"
        return f"pid {pid}, AWS endpoint {endpoint}, started {when(self.started_at)}"

    @classmethod
    def parse(cls, text: str) -> Holder | None:
        """The holder a lock file names; None for an empty (released) or unreadable file."""
        try:
            data = json.loads(text)
            return cls(**{k: data[k] for k in cls.__dataclass_fields__ if k in data})
        except (ValueError, TypeError, KeyError):
            return None


def _read_lock_file(path: Path) -> str:
    try:
        return path.read_text()
    except FileNotFoundError:
        return ""


def probe(folder: Path) -> Holder | None:
    """The local cloud that uses ``folder`` now, or None when none does."""
    path = folder / LOCK
    if not path.exists():
        return None
    fd = os.open(path, os.O_RDONLY)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            pass  # held
        else:
            return None
    finally:
        os.close(fd)  # closing drops the shared lock, if it was taken
    # The holder writes who it is right after taking the lock: a moment may pass.
    for _ in range(20):
        holder = Holder.parse(_read_lock_file(path))
        if holder is not None:
            return holder
        time.sleep(0.05)
    return Holder(pid=0, started_at=time.time(), workdir=str(folder))


def _lock_exclusive(fd: int) -> bool:
    """Take the exclusive lock; a ``probe`` holds the shared one for an instant, so a refusal is
    tried again a few times before it counts."""
    for attempt in range(5):
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if attempt < 4:
                time.sleep(0.05)
        else:
            return True
    return False


@dataclass
class Lock:
    """A folder's lock, held by this process until ``release``."""

    path: Path
    holder: Holder
    stale: Holder | None  # a local cloud that held it and did not stop cleanly
    _fd: int = field(repr=False, default=-1)

    @classmethod
    def acquire(cls, folder: Path) -> Lock:
        """Take ``folder``'s lock, or raise ``WorkdirBusy`` naming the local cloud that has it."""
        path = folder / LOCK
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        if not _lock_exclusive(fd):
            os.close(fd)
            holder = probe(folder)
            raise WorkdirBusy(
                folder, holder or Holder(pid=0, started_at=time.time(), workdir=str(folder))
            )
        stale = Holder.parse(os.pread(fd, 1 << 16, 0).decode(errors="replace"))
        lock = cls(path, Holder(os.getpid(), time.time(), str(folder)), stale, fd)
        lock._write()
        return lock

    def update(self, **details: Any) -> None:
        """Add what others should know of the holder (its endpoints once they answer)."""
        for key, value in details.items():
            setattr(self.holder, key, value)
        self._write()

    def _write(self) -> None:
        data = json.dumps(asdict(self.holder), indent=2).encode()
        os.ftruncate(self._fd, 0)
        os.pwrite(self._fd, data, 0)

    def release(self) -> None:
        """Empty the lock file (nothing holds the folder) and drop the lock. The file stays:
        removing it could let two processes lock two different files of the same name."""
        if self._fd < 0:
            return
        with contextlib.suppress(OSError):
            os.ftruncate(self._fd, 0)
        os.close(self._fd)
        self._fd = -1


# ---------------------------------------------------------------------------- the stop record
@dataclass
class StopRecord:
    """What a local cloud had in flight when it stopped; its state went with it."""

    stopped_at: float
    started_at: float
    pid: int
    in_flight: InFlight | None  # None: it could not be read

    def write(self, folder: Path) -> None:
        data = {
            "stopped_at": self.stopped_at,
            "stopped": when(self.stopped_at),
            "started_at": self.started_at,
            "pid": self.pid,
            "in_flight": self.in_flight.to_json() if self.in_flight else None,
            "state": "kept in memory only; the next start begins empty",
        }
        path = folder / STOP_RECORD
        partial = path.with_name(path.name + ".partial")
        partial.write_text(json.dumps(data, indent=2) + "\n")
        partial.replace(path)

    @classmethod
    def read(cls, folder: Path) -> StopRecord | None:
        try:
            data = json.loads((folder / STOP_RECORD).read_text())
            in_flight = data.get("in_flight")
            return cls(
                float(data["stopped_at"]),
                float(data["started_at"]),
                int(data["pid"]),
                InFlight.from_json(in_flight) if in_flight is not None else None,
            )
        except (OSError, ValueError, KeyError, TypeError):
            return None


def discarded(record: StopRecord | None, stale: Holder | None, leftovers: bool) -> str | None:
    """What the next start says of the state it does not have: the local cloud keeps its state
    in memory only, so whatever ran before is gone."""
    if stale is not None and (record is None or record.pid != stale.pid):
        return (
            f"the previous local cloud (pid {stale.pid}, started {when(stale.started_at)}) did "
            "not stop cleanly; it kept its state in memory only; starting empty"
        )
    if record is not None:
        held = record.in_flight.summary() if record.in_flight else "what was in flight unknown"
        return (
            f"the previous local cloud (stopped at {when(record.stopped_at)}, with {held}) kept "
            "its state in memory only; starting empty"
        )
    if leftovers:
        return "the previous local cloud kept its state in memory only; starting empty"
    return None


@dataclass
class Occupancy:
    """A local cloud's hold on its folder: the lock, and what the previous one left behind."""

    folder: Path
    lock: Lock
    previous: str | None  # what was discarded, in a sentence; None for a fresh folder

    @property
    def took_over(self) -> str | None:
        stale = self.lock.stale
        if stale is None:
            return None
        return f"took over the lock of pid {stale.pid}, which is gone ({self.folder})"

    def stopped(self, record: StopRecord) -> None:
        """Leave the stop record, then the folder."""
        with contextlib.suppress(OSError):
            record.write(self.folder)
        self.lock.release()


def look_back(folder: Path, stale: Holder | None) -> str | None:
    """What a start in ``folder`` discards, in a sentence (``discarded``), read before clearing."""
    if not folder.is_dir():
        return None
    leftovers = any(
        p.name not in KEPT_BY_LOCAL_CLOUD and p.name != STOP_RECORD for p in folder.iterdir()
    )
    return discarded(StopRecord.read(folder), stale, leftovers)


def stale_holder(folder: Path) -> Holder | None:
    """The local cloud a free lock file still names: one that did not stop cleanly."""
    if probe(folder) is not None:
        return None
    return Holder.parse(_read_lock_file(folder / LOCK))


def occupy(folder: Path, created_by: str) -> Occupancy:
    """Take ``folder`` for a local cloud: ours (the marker), used by no other (the lock); what
    a previous local cloud left is read, then cleared."""
    claim(folder, created_by)
    lock = Lock.acquire(folder)
    try:
        previous = look_back(folder, lock.stale)
        clear(folder, keep=KEPT_BY_LOCAL_CLOUD, own_lock=lock)
    except BaseException:
        lock.release()
        raise
    return Occupancy(folder, lock, previous)


def write_whole(path: Path, content: str | bytes) -> None:
    """Write a file that readers (tests, the demo, another local cloud sharing a cache) only
    ever see whole: written under a name of its own, then renamed."""
    handle, partial = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(handle, "wb") as out:
            out.write(content.encode() if isinstance(content, str) else content)
        Path(partial).replace(path)
    except BaseException:
        Path(partial).unlink(missing_ok=True)
        raise
