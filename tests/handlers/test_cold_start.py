"""predict's cold start: every canary starts new instances of the function, and each one pays for
its import before it answers.

The import is compared with what no handler can avoid, ``import boto3`` and one
``sagemaker-runtime`` client, each in a new interpreter the way Lambda starts one, taking turns,
the best of several (``benchmarks/cold_start.py`` has the method and the numbers). A ratio, not a
time: a busy machine slows both. The budget is 1.3 times that baseline, with the layer and the
function compiled at import as ``sam build`` ships them, and with bytecode for everything.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest

from benchmarks.cold_start import (
    PREDICT,
    PREDICT_BUDGET,
    ROOT,
    ImportRatio,
    import_bench,
    import_ratios,
)

FIRST_ROUNDS = 5
MOST_ROUNDS = 15


def predict_ratio(stdlib_only: bool, repo: Path = ROOT) -> ImportRatio:
    """predict's import in baselines, on the interpreter running the tests (the virtual
    environment's, not the one it links to): the best of five rounds, or of up to fifteen while
    that is over the budget. The best of each side only improves with more rounds: a true excess
    stays, the mark of a busy spell fades."""
    with import_bench(Path(sys.executable), [PREDICT], stdlib_only=stdlib_only, repo=repo) as bench:
        bench.run(FIRST_ROUNDS)
        while bench.ratios()[0].ratio > PREDICT_BUDGET and bench.rounds < MOST_ROUNDS:
            bench.run(1)
        (ratio,) = bench.ratios()
    return ratio


@pytest.mark.parametrize("stdlib_only", [True, False], ids=["as built", "compiled"])
def test_predicts_import_is_within_its_budget_of_the_unavoidable(stdlib_only: bool) -> None:
    """A ratio over the budget is measured once more, afresh, before it fails the test: on a
    machine busy with other work, predict's larger import suffers more than the baseline's (its
    instruction counts, under valgrind, are about 1.25 and 1.2 times the baseline's, as built and
    compiled; the best times of a busy machine reach 1.3)."""
    measured = [predict_ratio(stdlib_only)]
    if measured[0].ratio > PREDICT_BUDGET:
        measured.append(predict_ratio(stdlib_only))

    assert min(r.ratio for r in measured) <= PREDICT_BUDGET, (
        f"{'; '.join(map(str, measured))}; the budget is {PREDICT_BUDGET}x"
    )


def test_the_measurement_sees_what_the_budget_keeps_out(tmp_path: Path) -> None:
    """predict with Powertools' REST resolver imported again (what it answered events with before)
    is over the budget: the comparison sees an import of that size."""
    repo = tmp_path / "repo"
    (repo / "functions" / PREDICT).mkdir(parents=True)
    (repo / "layers").symlink_to(ROOT / "layers")
    shutil.copy(ROOT / "template.yaml", repo / "template.yaml")
    source = (ROOT / "functions" / PREDICT / "app.py").read_text()
    heavier = source.replace(
        "\nimport boto3\n",
        "\nimport boto3\nfrom aws_lambda_powertools.event_handler import APIGatewayRestResolver\n",
        1,
    )
    assert heavier != source
    (repo / "functions" / PREDICT / "app.py").write_text(heavier)

    (ratio,) = import_ratios(Path(sys.executable), [PREDICT], FIRST_ROUNDS, repo=repo)

    assert ratio.ratio > PREDICT_BUDGET, str(ratio)
