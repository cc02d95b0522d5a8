"""``sam build`` and ``sam package`` for ``safe-deploy local up``: each function's code folder
zipped (a ``makefile`` build run as ``sam build`` runs it), layers and state machine definitions
uploaded to the local S3 under their content hash, and the template's local paths replaced by
those S3 locations. The stack is then made by a change set, the same path ``sam deploy`` takes.

Handlers run in the project's own environment, so dependencies are not installed into the
packages (which is what makes ``sam build`` slow); the zips are cached on disk by content.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import subprocess
import tempfile
import zipfile
from pathlib import Path
from typing import Any

from safe_deploy.localcloud.cloudformation.template import parse
from safe_deploy.localcloud.workdir import write_whole

CACHE = Path(".aws-sam") / "local-packages"
SKIP = {"__pycache__", ".pytest_cache", ".mypy_cache"}


def _files(folder: Path) -> list[Path]:
    return sorted(
        p
        for p in folder.rglob("*")
        if p.is_file() and not any(part in SKIP for part in p.relative_to(folder).parts)
    )


def zip_folder(folder: Path) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in _files(folder):
            info = zipfile.ZipInfo(str(path.relative_to(folder)), date_time=(1980, 1, 1, 0, 0, 0))
            info.external_attr = 0o644 << 16
            archive.writestr(info, path.read_bytes())
    return buffer.getvalue()


def _digest(folder: Path) -> str:
    digest = hashlib.sha256()
    for path in _files(folder):
        digest.update(str(path.relative_to(folder)).encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


def _makefile_build(root: Path, logical_id: str, code_uri: Path, working: Path) -> bytes:
    """What ``sam build`` does for ``BuildMethod: makefile``: ``make build-<LogicalId>`` with
    ``ARTIFACTS_DIR`` set, from the metadata's working directory."""
    with tempfile.TemporaryDirectory() as artifacts:
        subprocess.run(
            ["make", "-s", "-f", str(code_uri / "Makefile"), f"build-{logical_id}"],
            cwd=working,
            env={**os.environ, "ARTIFACTS_DIR": artifacts},
            check=True,
            capture_output=True,
        )
        return zip_folder(Path(artifacts))


class Packager:
    def __init__(self, root: Path, s3: Any, bucket: str) -> None:
        self.root = root
        self.s3 = s3
        self.bucket = bucket
        self.cache = root / CACHE

    def upload(self, data: bytes, suffix: str) -> str:
        key = f"{hashlib.sha256(data).hexdigest()}{suffix}"
        self.s3.put_object(Bucket=self.bucket, Key=key, Body=data)
        return f"s3://{self.bucket}/{key}"

    def _package(self, logical_id: str, folder: Path, metadata: dict[str, Any]) -> str:
        digest = _digest(folder)
        if metadata.get("BuildMethod") == "makefile":  # the build reads outside its folder
            working = self.root / metadata.get("WorkingDirectory", ".")
            digest = hashlib.sha256((digest + _digest(working / "model")).encode()).hexdigest()
        cached = self.cache / f"{logical_id}-{digest[:24]}.zip"
        data = cached.read_bytes() if cached.exists() else b""
        if not zipfile.is_zipfile(io.BytesIO(data)):  # not cached, or cut short (a killed write)
            if metadata.get("BuildMethod") == "makefile":
                data = _makefile_build(self.root, logical_id, folder, working)
            else:
                data = zip_folder(folder)
            self.cache.mkdir(parents=True, exist_ok=True)
            write_whole(cached, data)  # every local cloud on the machine shares the cache
        return self.upload(data, ".zip")

    def package(self, template_path: Path) -> str:
        """The template with local paths replaced by S3 locations, as JSON."""
        template = parse(template_path.read_text())
        for logical_id, resource in template["Resources"].items():
            props = resource.get("Properties", {})
            kind = resource["Type"]
            if kind == "AWS::Serverless::Function" and isinstance(props.get("CodeUri"), str):
                props["CodeUri"] = self._package(
                    logical_id, self.root / props["CodeUri"], resource.get("Metadata", {})
                )
            elif kind == "AWS::Serverless::LayerVersion" and isinstance(
                props.get("ContentUri"), str
            ):
                props["ContentUri"] = self._package(logical_id, self.root / props["ContentUri"], {})
            elif kind == "AWS::Serverless::StateMachine" and isinstance(
                props.get("DefinitionUri"), str
            ):
                text = (self.root / props["DefinitionUri"]).read_bytes()
                props["DefinitionUri"] = self.upload(text, ".asl.json")
        return json.dumps(template)
