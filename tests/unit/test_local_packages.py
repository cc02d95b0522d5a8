"""The local packager's zips are cached on disk by content, in the project, where every local
cloud on the machine (two test workers, ``local up`` beside a test run) reads and writes them at
once. A fresh clone's first two clouds once packaged the same function together, and one of them
uploaded the zip the other was still writing (``BadZipFile`` when its stack made the function)."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path
from typing import Any

import pytest

from safe_deploy.localcloud.cloudformation.package import CACHE, Packager


class Bucket:
    def __init__(self) -> None:
        self.bodies: list[bytes] = []

    def put_object(self, Bucket: str, Key: str, Body: bytes) -> dict[str, Any]:
        self.bodies.append(Body)
        return {}


def function_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "project" / "functions" / "predict"
    folder.mkdir(parents=True)
    (folder / "app.py").write_text("def lambda_handler(event, context):\n    return {}\n")
    (folder / "rows.csv").write_text("1,2,3\n" * 5000)
    return folder


def test_a_zip_half_written_in_the_cache_is_never_uploaded(tmp_path: Path) -> None:
    folder, root, bucket = function_folder(tmp_path), tmp_path / "project", Bucket()
    Packager(root, bucket, "artifacts")._package("PredictFunction", folder, {})
    (cached,) = (root / CACHE).iterdir()
    whole = cached.read_bytes()
    cached.write_bytes(whole[: len(whole) // 2])  # as another cloud's packager, mid-write, left it

    Packager(root, bucket, "artifacts")._package("PredictFunction", folder, {})

    assert bucket.bodies == [whole, whole]
    with zipfile.ZipFile(io.BytesIO(bucket.bodies[1])) as archive:
        assert sorted(archive.namelist()) == ["app.py", "rows.csv"]
    assert cached.read_bytes() == whole, "the cache holds the whole zip again"


def test_the_cache_only_ever_holds_whole_zips(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Written under another name and renamed: a reader sees no zip or the whole one."""
    folder, root = function_folder(tmp_path), tmp_path / "project"
    seen: list[tuple[str, int]] = []
    original_replace = Path.replace

    def replace(self: Path, target: Any) -> Path:
        seen.append((Path(target).name, len(self.read_bytes())))
        return original_replace(self, target)

    monkeypatch.setattr(Path, "replace", replace)
    Packager(root, Bucket(), "artifacts")._package("PredictFunction", folder, {})
    monkeypatch.undo()

    (cached,) = (root / CACHE).iterdir()
    assert seen == [(cached.name, cached.stat().st_size)]
