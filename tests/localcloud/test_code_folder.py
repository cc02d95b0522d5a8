"""A function's folder is importable as Lambda makes it, and importing it leaves the rest of the
process as it was: a function that ships its own copy of the project's ``model`` package (as
publish_model_code does) must not replace the classes the command-line tool catches."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

from click.testing import CliRunner

from model.errors import DataFileError
from safe_deploy.cli import main
from safe_deploy.localcloud.lambdas import code_folder_importable

ROOT = Path(__file__).resolve().parents[2]


def _function_shipping_model(tmp_path: Path) -> Path:
    folder = tmp_path / "function"
    (folder / "model").mkdir(parents=True)
    for source in (ROOT / "model").glob("*.py"):
        (folder / "model" / source.name).write_text(source.read_text())
    (folder / "app.py").write_text(
        "from model.errors import DataFileError\nSHIPPED = DataFileError\n"
    )
    return folder


def test_the_function_imports_its_own_copy_and_the_process_keeps_its_own(tmp_path: Path) -> None:
    folder = _function_shipping_model(tmp_path)

    with code_folder_importable(folder):
        assert importlib.import_module("app").SHIPPED is not DataFileError

    assert sys.modules["model.errors"].DataFileError is DataFileError
    assert "app" not in sys.modules


def test_after_a_function_import_a_bad_file_is_still_one_error_line(tmp_path: Path) -> None:
    with code_folder_importable(_function_shipping_model(tmp_path)):
        importlib.import_module("app")
    missing = tmp_path / "gone.csv"

    result = CliRunner().invoke(
        main, ["data", "prepare", str(missing), "--out", str(tmp_path / "out")]
    )

    assert result.exit_code == 1
    assert result.stderr.strip().splitlines() == [f"error: {missing}: no such file"]
