"""The template through the tools a user runs: ``sam validate --lint``, cfn-lint, ``sam build``.

The SAM CLI lives in its own environment (.tools/sam, DESIGN.md §10); ``make test`` installs it
first (``make tools``), so these tests skip only when run by hand on a fresh clone.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support_code import imported_packages
from tests.support_iam import function_source
from tests.support_sam import built
from tests.support_template import REPO, load_sam, resources_of_type

pytestmark = pytest.mark.slow

SAM = REPO / ".tools" / "sam" / "bin" / "sam"
CFN_LINT = Path(sys.executable).parent / "cfn-lint"
PYTHON312_DIR = REPO / "scripts" / "python312-dir"
# What the python3.12 Lambda runtime itself provides beside the standard library.
RUNTIME_PROVIDED = {"boto3", "botocore", "s3transfer", "jmespath", "dateutil", "urllib3", "six"}
# Run by python3.12 -S (no site-packages): which packages the built code and layer lack.
FIND_MISSING = """
import importlib.util, json, sys
paths, names = json.loads(sys.argv[1])
sys.path[:0] = paths
print(json.dumps([n for n in names if importlib.util.find_spec(n) is None]))
"""


def _sam() -> Path:
    if not SAM.exists():
        pytest.skip(f"{SAM.relative_to(REPO)} is missing: run `make tools`")
    return SAM


def _env(**extra: str) -> dict[str, str]:
    return {**os.environ, "SAM_CLI_TELEMETRY": "0", **extra}


def _run(command: list[str], timeout: int, **extra_env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        command,
        cwd=REPO,
        env=_env(**extra_env),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        stdin=subprocess.DEVNULL,
    )


def test_sam_validate_lint() -> None:
    result = _run([str(_sam()), "validate", "--lint", "--template", "template.yaml"], 300)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "is a valid SAM Template" in result.stdout + result.stderr


def test_cfn_lint() -> None:
    result = _run([str(CFN_LINT), "template.yaml"], 300)
    assert result.returncode == 0, result.stdout + result.stderr


def test_sam_build(tmp_path: Path) -> None:
    """``sam build`` with python3.12 (the functions' runtime) builds every function, the shared
    layer with pipeline_common, and the model code bundle."""
    _sam()
    found = subprocess.run(
        [str(PYTHON312_DIR)], capture_output=True, text=True, check=False, timeout=60
    )
    assert found.returncode == 0, found.stderr
    build = built(tmp_path)  # the session's build cache, shared with the SAM CLI tests
    assert (build / "template.yaml").is_file()

    sam_template = load_sam()
    for logical_id, resource in resources_of_type(
        sam_template, "AWS::Serverless::Function"
    ).items():
        handler = resource["Properties"].get("Handler", "app.lambda_handler")
        assert (build / logical_id / f"{handler.rsplit('.', 1)[0]}.py").is_file(), logical_id
    (layer_id,) = resources_of_type(sam_template, "AWS::Serverless::LayerVersion")
    library = build / layer_id / "python" / "pipeline_common"
    for module in (REPO / "layers" / "common" / "pipeline_common").glob("*.py"):
        assert (library / module.name).is_file(), f"the layer lacks {module.name}"
    assert (build / layer_id / "python" / "aws_lambda_powertools").is_dir()
    bundled = build / "PublishModelCodeFunction" / "model"
    for module in (REPO / "model").glob("*.py"):
        assert (bundled / module.name).is_file(), f"the model bundle lacks {module.name}"

    # Every package a function's code imports is in its build, its layer or the runtime.
    python = Path(found.stdout.strip()) / "python3.12"
    for logical_id in resources_of_type(sam_template, "AWS::Serverless::Function"):
        handler, roots = function_source(sam_template, logical_id)
        imports = imported_packages(handler, roots)
        names = sorted(set(imports) - RUNTIME_PROVIDED)
        paths = [str(build / logical_id), str(build / layer_id / "python")]
        check = subprocess.run(
            [str(python), "-S", "-c", FIND_MISSING, json.dumps([paths, names])],
            capture_output=True,
            text=True,
            check=True,
            timeout=120,
        )
        missing = json.loads(check.stdout)
        assert not missing, f"{logical_id} imports {[(m, imports[m]) for m in missing]}, unbuilt"
