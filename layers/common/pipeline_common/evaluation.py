"""Testing the dev endpoint on the held-out split: RMSE and an actual-vs-predicted plot."""

from __future__ import annotations

import csv
import io
import json
import math
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from pipeline_common.layout import ModelResources
from pipeline_common.payload import CSV, parse_predictions, to_csv

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_sagemaker_runtime import SageMakerRuntimeClient


PLOT_NAME = "actual_vs_predicted.png"
REPORT_NAME = "dev_test.json"


@dataclass(frozen=True)
class DevTestReport:
    model_id: str
    endpoint: str
    rows: int
    rmse: float
    mae: float
    mean_actual: float
    plot_key: str
    report_key: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def read_test_split(text: str, limit: int) -> tuple[list[float], list[list[float]]]:
    """Labels and features of ``test.csv`` (header, label first): at most ``limit`` rows, evenly
    spaced over the file. The split keeps the month's order, so its first rows would be its
    first days; evenly spaced rows cover the whole month."""
    return read_test_files([text], limit)


def read_test_files(texts: list[str], limit: int) -> tuple[list[float], list[list[float]]]:
    """``read_test_split`` over the test split's files one after another: ``test.csv``, or the
    ``test/<host>.csv`` of a PrepareData job on several instances, each with its header. The
    rows are evenly spaced over all of them together, so every host's share is scored."""
    if limit < 1:
        raise ValueError(f"at least one test row must be scored, not {limit}")
    body: list[str] = []
    for text in texts:
        lines = [line for line in text.splitlines() if line.strip()]
        if not lines or next(csv.reader([lines[0]]))[:1] != ["total_amount"]:
            raise ValueError("test.csv must start with a total_amount header")
        body.extend(lines[1:])
    if not body:
        raise ValueError("test.csv has no rows")
    if len(body) > limit:
        body = [body[i * len(body) // limit] for i in range(limit)]
    labels: list[float] = []
    rows: list[list[float]] = []
    for record in csv.reader(body):
        labels.append(float(record[0]))
        rows.append([float(v) for v in record[1:]])
    return labels, rows


def keys_of_test_split(s3: S3Client, bucket: str, prepared_prefix: str) -> list[str]:
    """The test split's objects in key order: ``test.csv``, or ``test/*.csv`` when several
    PrepareData instances each wrote their own. With neither, ``test.csv``: reading it then
    fails with the NoSuchKey that names what is missing."""
    single = f"{prepared_prefix}test.csv"
    keys = [
        item["Key"]
        for page in s3.get_paginator("list_objects_v2").paginate(
            Bucket=bucket, Prefix=f"{prepared_prefix}test"
        )
        for item in page.get("Contents", [])
        if item["Key"] == single
        or (item["Key"].startswith(f"{prepared_prefix}test/") and item["Key"].endswith(".csv"))
    ]
    return sorted(keys) or [single]


def score(
    runtime: SageMakerRuntimeClient, endpoint: str, rows: list[list[float]], batch: int, tag: str
) -> list[float]:
    predictions: list[float] = []
    for start in range(0, len(rows), batch):
        chunk = rows[start : start + batch]
        answer = runtime.invoke_endpoint(
            EndpointName=endpoint,
            ContentType=CSV,
            Accept=CSV,
            Body=to_csv(chunk).encode(),
            InferenceId=f"{tag}-{start}",
        )
        got = parse_predictions(answer["Body"].read())
        if len(got) != len(chunk):
            raise ValueError(f"{endpoint} answered {len(got)} predictions for {len(chunk)} rows")
        predictions.extend(got)
    return predictions


def plot_png(actual: list[float], predicted: list[float], title: str) -> bytes:
    """The actual-vs-predicted scatter plot reviewers see in the approval message."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    figure, axes = plt.subplots(figsize=(6, 6), dpi=100)
    axes.scatter(actual, predicted, s=4, alpha=0.35, color="#1f77b4", linewidths=0)
    top = max(max(actual), max(predicted)) * 1.05
    axes.plot([0, top], [0, top], color="#d62728", linewidth=1, label="perfect prediction")
    axes.set(xlim=(0, top), ylim=(0, top), xlabel="actual fare ($)", ylabel="predicted fare ($)")
    axes.set_title(title)
    axes.legend(loc="upper left")
    buffer = io.BytesIO()
    figure.tight_layout()
    figure.savefig(buffer, format="png")
    plt.close(figure)
    return buffer.getvalue()


def test_dev_endpoint(
    model_id: str,
    endpoint: str,
    *,
    s3: S3Client,
    runtime: SageMakerRuntimeClient,
    bucket: str,
    max_rows: int,
    batch_rows: int,
) -> DevTestReport:
    resources = ModelResources(model_id)
    texts = [
        s3.get_object(Bucket=bucket, Key=key)["Body"].read().decode()
        for key in keys_of_test_split(s3, bucket, resources.prepared_prefix)
    ]
    labels, rows = read_test_files(texts, max_rows)
    predictions = score(runtime, endpoint, rows, batch_rows, f"devtest-{model_id}")
    errors = [p - a for p, a in zip(predictions, labels, strict=True)]
    rmse = math.sqrt(sum(e * e for e in errors) / len(errors))
    mae = sum(abs(e) for e in errors) / len(errors)
    plot_key = f"{resources.evaluation_prefix}{PLOT_NAME}"
    report_key = f"{resources.evaluation_prefix}{REPORT_NAME}"
    title = f"{model_id}: RMSE {rmse:.2f} on {len(rows):,} test trips"
    s3.put_object(
        Bucket=bucket,
        Key=plot_key,
        Body=plot_png(labels, predictions, title),
        ContentType="image/png",
    )
    report = DevTestReport(
        model_id, endpoint, len(rows), rmse, mae, sum(labels) / len(labels), plot_key, report_key
    )
    s3.put_object(
        Bucket=bucket,
        Key=report_key,
        Body=json.dumps(report.to_dict()).encode(),
        ContentType="application/json",
    )
    return report
