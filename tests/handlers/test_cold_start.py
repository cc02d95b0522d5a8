"""predict's cold start: every canary starts new instances of the function, and each one pays for
its import before it answers.

The budget is 1.3 times what no handler can avoid, ``import boto3`` and one ``sagemaker-runtime``
client, on Lambda's Python with the code as ``sam build`` ships it; ``benchmarks/cold_start.py``
measures that (each import in a new interpreter, taking turns, the best of several) and
``benchmarks/results.md`` has the numbers: the floor, what keeping Powertools' Logger, Metrics and
Tracer costs on top, is 1.22 there and predict 1.27.

The floor moves with the interpreter and the machine: on the tests' Python 3.11 it measured from
1.26 to 1.39 baselines, over the budget before predict adds a line of its own. What predict itself
controls is what it imports beyond that floor, and that ratio is steady across interpreters and
busy spells (0.96 to 1.06 here, up to 1.10 in a busy test run). So the test holds predict to the
floor, with room for that noise (``OVER_FLOOR_BUDGET``): a ratio, not a time, as built. The 1.3
goal itself is the benchmark's to measure, on Lambda's Python.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest

from benchmarks.cold_start import OVER_FLOOR_BUDGET, PREDICT, ROOT, import_bench

pytestmark = pytest.mark.slow

FIRST_ROUNDS = 5
MOST_ROUNDS = 15


def over_floor(repo: Path = ROOT, rounds: int | None = None) -> tuple[float, str]:
    """predict's best import over the floor's best, as built, on the interpreter running the
    tests: the best of five rounds, or of up to fifteen while that is over the budget (the best of
    each side only improves with more rounds: a true excess stays, a busy spell fades). With
    ``rounds``, the best of exactly that many: stopping at the first reading under the budget
    would let one lucky round hide an excess."""
    with import_bench(Path(sys.executable), [PREDICT], repo=repo, floor=True) as bench:
        bench.run(rounds or FIRST_ROUNDS)
        while True:
            floor, predict = bench.ratios()
            ratio = predict.cpu / floor.cpu
            if rounds is not None or ratio <= OVER_FLOOR_BUDGET or bench.rounds >= MOST_ROUNDS:
                return ratio, f"{floor}; {predict}; predict over the floor: {ratio:.3f}x"
            bench.run(1)


def test_predicts_import_adds_little_to_what_powertools_costs() -> None:
    ratio, measured = over_floor()

    assert ratio <= OVER_FLOOR_BUDGET, f"{measured}; the budget is {OVER_FLOOR_BUDGET}x"


def test_the_measurement_sees_what_the_budget_keeps_out(tmp_path: Path) -> None:
    """predict importing again what it did before (Powertools' REST resolver to answer events,
    pydantic's models for its settings) is over the budget: the comparison sees an import of that
    size (about 1.2 times the floor; the resolver alone adds about 7%). ``import pydantic`` alone
    is not that import: pydantic 2 loads its models only when one is first asked for."""
    repo = tmp_path / "repo"
    (repo / "functions" / PREDICT).mkdir(parents=True)
    (repo / "layers").symlink_to(ROOT / "layers")
    shutil.copy(ROOT / "template.yaml", repo / "template.yaml")
    source = (ROOT / "functions" / PREDICT / "app.py").read_text()
    heavier = source.replace(
        "\nimport boto3\n",
        "\nimport boto3\nfrom aws_lambda_powertools.event_handler import APIGatewayRestResolver\n"
        "from pydantic import BaseModel\n",
        1,
    )
    assert heavier != source
    (repo / "functions" / PREDICT / "app.py").write_text(heavier)

    ratio, measured = over_floor(repo, rounds=MOST_ROUNDS)

    assert ratio > OVER_FLOOR_BUDGET, measured
