"""Baseline: statistics.json and constraints.json in Model Monitor's documented formats."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import jsonschema  # type: ignore[import-untyped]
import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from model.baseline import baseline
from model.baseline import main as baseline_main
from model.errors import DataFileError
from model.schema import COLUMNS
from safe_deploy.cli import main
from tests.support import load_schema, read_json, schema_errors, validate


@pytest.fixture(scope="module")
def statistics(baseline_dir: Path) -> dict[str, Any]:
    document: dict[str, Any] = read_json(baseline_dir / "statistics.json")
    return document


@pytest.fixture(scope="module")
def constraints(baseline_dir: Path) -> dict[str, Any]:
    document: dict[str, Any] = read_json(baseline_dir / "constraints.json")
    return document


def _feature(document: dict[str, Any], name: str) -> dict[str, Any]:
    found: dict[str, Any] = next(f for f in document["features"] if f["name"] == name)
    return found


@pytest.mark.parametrize("name", ["statistics", "constraints", "constraint_violations"])
def test_schemas_are_valid_json_schemas(name: str) -> None:
    jsonschema.Draft202012Validator.check_schema(load_schema(name))


def test_baseline_files_validate_against_the_documented_formats(
    statistics: dict[str, Any], constraints: dict[str, Any]
) -> None:
    validate(statistics, "statistics")
    validate(constraints, "constraints")


def test_statistics_values_match_numpy_on_the_baseline_csv(
    prepared_dir: Path, statistics: dict[str, Any]
) -> None:
    frame = pd.read_csv(prepared_dir / "baseline.csv", float_precision="round_trip")

    assert [f["name"] for f in statistics["features"]] == list(COLUMNS)
    assert statistics["dataset"]["item_count"] == len(frame)
    for name in COLUMNS:
        values = frame[name].to_numpy(dtype="float64")
        numbers = _feature(statistics, name)["numerical_statistics"]
        assert numbers["common"] == {"num_present": len(values), "num_missing": 0}
        assert numbers["mean"] == pytest.approx(values.mean(), rel=1e-12)
        assert numbers["sum"] == pytest.approx(values.sum(), rel=1e-12)
        assert numbers["std_dev"] == pytest.approx(values.std(), rel=1e-9)
        assert numbers["min"] == values.min()
        assert numbers["max"] == values.max()


def test_distribution_buckets_and_sketch_describe_the_data(
    prepared_dir: Path, statistics: dict[str, Any]
) -> None:
    frame = pd.read_csv(prepared_dir / "baseline.csv", float_precision="round_trip")
    for name in COLUMNS:
        values = np.sort(frame[name].to_numpy(dtype="float64"))
        kll = _feature(statistics, name)["numerical_statistics"]["distribution"]["kll"]
        buckets = kll["buckets"]
        assert len(buckets) == 10  # Model Monitor materialises 10 buckets
        assert buckets[0]["lower_bound"] == values[0]
        assert buckets[-1]["upper_bound"] == values[-1]
        assert sum(b["count"] for b in buckets) == len(values)
        points = np.concatenate([np.asarray(level) for level in kll["sketch"]["data"]])
        assert points.min() == values[0]
        assert points.max() == values[-1]
        for q in (0.1, 0.5, 0.9):
            # The sketch's q-quantile is a q-quantile of the data, to within 1% of the ranks.
            estimate = np.quantile(points, q)
            assert np.mean(values < estimate) <= q + 0.01
            assert np.mean(values <= estimate) >= q - 0.01


def test_inferred_types_and_constraints(
    statistics: dict[str, Any], constraints: dict[str, Any]
) -> None:
    types = {f["name"]: f["inferred_type"] for f in statistics["features"]}
    assert types == {
        "total_amount": "Fractional",
        "duration_minutes": "Fractional",
        "passenger_count": "Integral",
        "trip_distance": "Fractional",
    }
    for feature in constraints["features"]:
        assert feature["inferred_type"] == types[feature["name"]]
        assert feature["completeness"] == 1.0
        assert feature["num_constraints"] == {"is_non_negative": True}
    distribution = constraints["monitoring_config"]["distribution_constraints"]
    assert distribution["comparison_threshold"] == 0.1
    assert distribution["perform_comparison"] == "Enabled"


def test_missing_values_lower_completeness(tmp_path: Path) -> None:
    source = tmp_path / "baseline.csv"
    source.write_text(",".join(COLUMNS) + "\n10.5,7.0,1,2.1\n12.0,,2,2.5\n-3.0,4.0,1,0.5\n")

    statistics, constraints = baseline(source, tmp_path / "out")

    validate(statistics, "statistics")
    validate(constraints, "constraints")
    common = _feature(statistics, "duration_minutes")["numerical_statistics"]["common"]
    assert common == {"num_present": 2, "num_missing": 1}
    assert _feature(constraints, "duration_minutes")["completeness"] == pytest.approx(2 / 3)
    assert _feature(constraints, "total_amount")["num_constraints"]["is_non_negative"] is False


def test_cli_baseline_default_and_custom_threshold(prepared_dir: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    source = str(prepared_dir / "baseline.csv")

    default = runner.invoke(main, ["baseline", source, "--out", str(tmp_path / "default")])
    custom = runner.invoke(
        main,
        ["baseline", source, "--out", str(tmp_path / "custom"), "--comparison-threshold", "0.25"],
    )

    assert default.exit_code == 0, default.output
    assert custom.exit_code == 0, custom.output
    for folder, threshold in (("default", 0.1), ("custom", 0.25)):
        document = read_json(tmp_path / folder / "constraints.json")
        validate(document, "constraints")
        distribution = document["monitoring_config"]["distribution_constraints"]
        assert distribution["comparison_threshold"] == threshold
        validate(read_json(tmp_path / folder / "statistics.json"), "statistics")


def test_baseline_of_a_non_numeric_file_is_a_data_file_error(tmp_path: Path) -> None:
    source = tmp_path / "names.csv"
    source.write_text("name,score\nann,3\n")

    with pytest.raises(DataFileError, match="not numeric"):
        baseline(source, tmp_path / "out")


# --- the schemas can fail -----------------------------------------------------------------


def _spoiled_statistics(document: dict[str, Any]) -> list[dict[str, Any]]:
    wrong_type = copy.deepcopy(document)
    wrong_type["features"][0]["inferred_type"] = "Float"
    no_present = copy.deepcopy(document)
    del no_present["features"][0]["numerical_statistics"]["common"]["num_present"]
    flat_sketch = copy.deepcopy(document)
    sketch = flat_sketch["features"][0]["numerical_statistics"]["distribution"]["kll"]["sketch"]
    sketch["data"] = sketch["data"][0]
    return [wrong_type, no_present, flat_sketch]


def test_statistics_schema_rejects_documents_off_the_format(statistics: dict[str, Any]) -> None:
    for spoiled in _spoiled_statistics(statistics):
        assert schema_errors(spoiled, "statistics")


def test_constraints_schema_rejects_documents_off_the_format(
    constraints: dict[str, Any],
) -> None:
    wrong_method = copy.deepcopy(constraints)
    wrong_method["monitoring_config"]["distribution_constraints"]["comparison_method"] = "Fancy"
    string_flag = copy.deepcopy(constraints)
    string_flag["features"][0]["num_constraints"]["is_non_negative"] = "true"
    assert schema_errors(wrong_method, "constraints")
    assert schema_errors(string_flag, "constraints")


def test_violations_schema_rejects_unknown_check_types() -> None:
    good = {
        "violations": [
            {"feature_name": "x", "constraint_check_type": "data_type_check", "description": "d"}
        ]
    }
    bad = copy.deepcopy(good)
    bad["violations"][0]["constraint_check_type"] = "drift_check"
    assert schema_errors(good, "constraint_violations") == []
    assert schema_errors(bad, "constraint_violations")


# --- a dataset in several files -----------------------------------------------------------


def test_a_dataset_in_several_files_is_baselined_as_one(prepared_dir: Path, tmp_path: Path) -> None:
    """The baseline/<host>.csv of PrepareData on several instances: the analyzer reads every
    file of its dataset prefix, and the statistics are those of the rows of all of them."""
    header, *rows = (prepared_dir / "baseline.csv").read_text().splitlines()
    folder = tmp_path / "baseline"
    folder.mkdir()
    for index in range(3):
        share = rows[index::3]
        (folder / f"algo-{index + 1}.csv").write_text("\n".join([header, *share]) + "\n")
    (folder / "algo-4.csv").write_text(header + "\n")  # a host whose sample is empty
    together = tmp_path / "together.csv"
    together.write_text("\n".join([header, *rows[0::3], *rows[1::3], *rows[2::3]]) + "\n")

    assert baseline_main(["--input", str(folder), "--output", str(tmp_path / "hosts")]) == 0
    whole, _ = baseline(together, tmp_path / "whole")

    assert read_json(tmp_path / "hosts" / "statistics.json") == whole
    assert whole["dataset"]["item_count"] == len(rows)


def test_files_of_one_dataset_must_share_their_columns(tmp_path: Path) -> None:
    first, second = tmp_path / "a.csv", tmp_path / "b.csv"
    first.write_text(",".join(COLUMNS) + "\n10.5,7.0,1,2.1\n")
    second.write_text(",".join(reversed(COLUMNS)) + "\n2.1,1,7.0,10.5\n")

    with pytest.raises(DataFileError, match="differ from"):
        baseline([first, second], tmp_path / "out")


def test_a_dataset_of_headers_alone_has_no_rows(tmp_path: Path) -> None:
    for name in ("a.csv", "b.csv"):
        (tmp_path / name).write_text(",".join(COLUMNS) + "\n")

    with pytest.raises(DataFileError, match="no rows"):
        baseline([tmp_path / "a.csv", tmp_path / "b.csv"], tmp_path / "out")
    with pytest.raises(DataFileError, match="no rows"):
        baseline(tmp_path / "a.csv", tmp_path / "out")
