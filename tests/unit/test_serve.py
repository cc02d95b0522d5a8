"""Serving with the XGBoost container's contract: CSV and JSON in and out, errors naming rows."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner
from pipeline_common.payload import PayloadError

from model.serve import FareModel
from safe_deploy.cli import main
from tests.support import Trained

ROWS = np.array([[7.1, 5.0, 1.6], [22.8, 1.0, 9.6], [3.2, 1.0, 0.73]])


def _csv(rows: np.ndarray) -> str:
    return "".join(",".join(repr(float(v)) for v in row) + "\n" for row in rows)


def test_csv_one_row_gives_one_prediction_line(fare_model: FareModel) -> None:
    body, content_type = fare_model.invoke("22.8,1,9.6", "text/csv", "text/csv")

    assert content_type == "text/csv"
    lines = body.decode().splitlines()
    assert len(lines) == 1
    assert float(lines[0]) == pytest.approx(float(fare_model.predict(ROWS[1:2])[0]))
    # A ten-mile, twenty-minute ride costs tens of dollars, not cents or thousands.
    assert 20 < float(lines[0]) < 60


def test_csv_many_rows_give_one_prediction_per_line_in_order(fare_model: FareModel) -> None:
    body, _ = fare_model.invoke(_csv(ROWS), "text/csv", "text/csv")

    predictions = [float(line) for line in body.decode().splitlines()]
    np.testing.assert_allclose(predictions, fare_model.predict(ROWS))
    assert predictions[1] > predictions[0] > predictions[2]  # longer trips cost more


def test_json_in_and_out(fare_model: FareModel) -> None:
    request = json.dumps({"instances": ROWS.tolist()})

    body, content_type = fare_model.invoke(request, "application/json", "application/json")

    assert content_type == "application/json"
    answer = json.loads(body)
    assert list(answer) == ["predictions"]
    scores = [item["score"] for item in answer["predictions"]]
    np.testing.assert_allclose(scores, fare_model.predict(ROWS))


def test_csv_in_json_out_and_content_type_parameters(fare_model: FareModel) -> None:
    body, _ = fare_model.invoke(_csv(ROWS), "text/csv; charset=utf-8", "application/json")

    assert len(json.loads(body)["predictions"]) == len(ROWS)


@pytest.mark.parametrize(
    ("body", "content_type", "accept", "row", "words"),
    [
        ("", "text/csv", "text/csv", None, ["empty body"]),
        ("1,1,1\n2,1\n", "text/csv", "text/csv", 2, ["expected 3 values", "got 2"]),
        ("1,1,1\n2,1,1,5\n", "text/csv", "text/csv", 2, ["expected 3 values", "got 4"]),
        ("1,two,1\n", "text/csv", "text/csv", 1, ["passenger_count", "'two'", "not a number"]),
        ("1,1,1\nnan,1,1\n", "text/csv", "text/csv", 2, ["duration_minutes", "not a finite"]),
        ("1,1,inf\n", "text/csv", "text/csv", 1, ["trip_distance", "not a finite"]),
        ('{"instances": [[1, 1, 1], [1, 1]]}', "application/json", "text/csv", 2, ["3 numbers"]),
        ('{"instances": [[1, NaN, 1]]}', "application/json", "text/csv", 1, ["not a finite"]),
        ('{"instances": [[1, 1, 1]', "application/json", "text/csv", None, ["not valid JSON"]),
        ("1,1,1", "text/plain", "text/csv", None, ["content type", "text/plain"]),
        ("1,1,1", "text/csv", "application/xml", None, ["accept type", "application/xml"]),
    ],
    ids=[
        "empty",
        "too-few-values-row-2-of-2",
        "too-many-values",
        "not-a-number",
        "nan",
        "inf",
        "json-wrong-count",
        "json-nan",
        "json-broken",
        "unsupported-content-type",
        "unsupported-accept",
    ],
)
def test_bad_request_names_the_row_and_the_problem(
    fare_model: FareModel,
    body: str,
    content_type: str,
    accept: str,
    row: int | None,
    words: list[str],
) -> None:
    with pytest.raises(PayloadError) as caught:
        fare_model.invoke(body, content_type, accept)

    message = str(caught.value)
    assert caught.value.row == row
    if row is not None:
        assert message.startswith(f"row {row}: ")
    for word in words:
        assert word in message
    assert "\n" not in message


def test_cli_predict_reads_rows_from_stdin(trained: Trained, fare_model: FareModel) -> None:
    result = CliRunner().invoke(main, ["predict", str(trained.model_dir)], input=_csv(ROWS))

    assert result.exit_code == 0, result.output
    predictions = [float(line) for line in result.stdout.splitlines()]
    np.testing.assert_allclose(predictions, fare_model.predict(ROWS))


def test_cli_predict_json(trained: Trained, fare_model: FareModel) -> None:
    result = CliRunner().invoke(
        main,
        ["predict", str(trained.model_dir), "--content-type", "application/json"],
        input=json.dumps({"instances": ROWS.tolist()}),
    )

    assert result.exit_code == 0, result.output
    np.testing.assert_allclose(
        [float(line) for line in result.stdout.splitlines()], fare_model.predict(ROWS)
    )


@pytest.mark.parametrize("value", ["two", "[/x]", "[red]2"])
def test_cli_predict_bad_row_is_one_error_line_quoting_the_value(
    trained: Trained, value: str
) -> None:
    result = CliRunner().invoke(
        main, ["predict", str(trained.model_dir)], input=f"1,1,1\n1,{value},1\n"
    )

    assert result.exit_code == 1
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0] == f"error: row 2: passenger_count: {value!r} is not a number"
