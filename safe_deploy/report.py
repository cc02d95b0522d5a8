"""The demo's report folder: an HTML summary and its plots."""

from __future__ import annotations

import html
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
from matplotlib import pyplot as plt
from matplotlib.text import Text

from safe_deploy.traffic import Answer


@dataclass
class Report:
    folder: Path
    sections: list[tuple[str, str]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)

    def text(self, title: str, lines: Sequence[str]) -> None:
        body = "".join(f"<li>{html.escape(line)}</li>" for line in lines)
        self.sections.append((title, f"<ul>{body}</ul>"))

    def table(self, title: str, header: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
        head = "".join(f"<th>{html.escape(str(h))}</th>" for h in header)
        body = "".join(
            "<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in row) + "</tr>"
            for row in rows
        )
        self.sections.append((title, f"<table><tr>{head}</tr>{body}</table>"))

    def image(self, title: str, file: str, caption: str = "") -> None:
        self.sections.append(
            (
                title,
                f'<figure><img src="{html.escape(file)}" alt="{html.escape(title)}">'
                f"<figcaption>{html.escape(caption)}</figcaption></figure>",
            )
        )

    def write(self, title: str) -> Path:
        style = (
            "body{font-family:system-ui,sans-serif;max-width:980px;margin:2rem auto;padding:0 1rem}"
            "table{border-collapse:collapse}"
            "td,th{border-bottom:1px solid #ddd;padding:.25rem .7rem;text-align:left}"
            "img{max-width:100%;border:1px solid #ddd}h2{margin-top:2rem}"
        )
        parts = [f"<h2>{html.escape(t)}</h2>{b}" for t, b in self.sections]
        page = (
            f"<!doctype html><html lang=en><head><meta charset=utf-8><title>{html.escape(title)}"
            f"</title><style>{style}</style></head><body><h1>{html.escape(title)}</h1>"
            + "".join(parts)
            + "</body></html>"
        )
        path = self.folder / "index.html"
        path.write_text(page)
        return path


def traffic_split_png(
    answers: Sequence[Answer], green: str, path: Path, marks: dict[str, float]
) -> None:
    """Share of requests answered by green, per second, over the canary."""
    ok = sorted((a for a in answers if a.ok), key=lambda a: a.at)
    if not ok:
        return
    start = ok[0].at
    buckets: dict[int, list[int]] = {}
    for answer in ok:
        second = int(answer.at - start)
        buckets.setdefault(second, [0, 0])
        buckets[second][0] += 1
        buckets[second][1] += int(answer.endpoint == green)
    seconds = sorted(buckets)
    share = [100.0 * buckets[s][1] / buckets[s][0] for s in seconds]
    figure, axes = plt.subplots(figsize=(8, 3.5), dpi=100)
    axes.step(seconds, share, where="post", color="#2ca02c", label=f"answered by {green}")
    for label, moment in marks.items():
        axes.axvline(moment - start, color="#888", linestyle=":", linewidth=1)
        axes.text(moment - start, 103, label, fontsize=8, rotation=0, ha="left", parse_math=False)
    axes.set(ylim=(0, 110), xlabel="seconds since the canary started", ylabel="% of requests")
    axes.set_title("Traffic split during the canary")
    _as_written(axes.legend(loc="center right").get_texts())
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)


def drift_png(distances: dict[str, float], threshold: float, path: Path) -> None:
    """Distance from the baseline by feature, red past the threshold."""
    names = list(distances)
    figure, axes = plt.subplots(figsize=(7, 3.5), dpi=100)
    colours = ["#d62728" if distances[n] > threshold else "#1f77b4" for n in names]
    axes.barh(range(len(names)), [distances[n] for n in names], color=colours)
    axes.set_yticks(range(len(names)), labels=names, parse_math=False)
    axes.axvline(
        threshold, color="#333", linestyle="--", linewidth=1, label=f"threshold {threshold}"
    )
    axes.set_xlabel("distance from the training baseline (L-infinity of the CDFs)")
    axes.set_title("Drift by feature")
    axes.legend(loc="lower right")
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)


def _as_written(texts: Sequence[Text]) -> None:
    """Labels that hold names (endpoints, features) are drawn as written: matplotlib would
    otherwise read a pair of ``$`` as mathtext, and fail on a name it cannot typeset."""
    for text in texts:
        text.set_parse_math(False)


def save_json(path: Path, value: Any) -> None:
    path.write_text(json.dumps(value, indent=2, default=str))
