"""Expensive artefacts built once per session: a synthetic month, its splits, a model, a baseline.

Tests must not write into these; each test that needs to change something copies or uses its
own ``tmp_path``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from hypothesis import settings

if TYPE_CHECKING:
    import pandas as pd

    from model.serve import FareModel
    from tests.support import Trained

# The model code is imported by the fixtures that use it: pytest loads this file in the process
# that hands tests to the workers too, which builds none of them.

# A worker per core: XGBoost and the other OpenMP libraries in a worker take one thread each, or
# two workers' threads spin against each other (read when the libraries load; the local cloud's
# jobs set their own)
if os.environ.get("PYTEST_XDIST_WORKER"):
    os.environ.setdefault("OMP_NUM_THREADS", "1")

# `make check` (the fast tier) explores a quarter of the random cases `make test` does
settings.register_profile("quick", max_examples=25)

TRAINING_ROWS = 30_000
TRAINING_SEED = 1
SMALL_ROWS = 5_000
SMALL_SEED = 7


@pytest.fixture(scope="session")
def small_month() -> pd.DataFrame:
    """A small synthetic month for the preparation tests (not to be modified)."""
    from model.synth import synth_trips

    return synth_trips(SMALL_ROWS, seed=SMALL_SEED)


@pytest.fixture(scope="session")
def small_month_csv(small_month: pd.DataFrame, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from model.synth import write_trips

    path = tmp_path_factory.mktemp("small") / "green_tripdata_2018-02.csv"
    write_trips(small_month, path)
    return path


@pytest.fixture(scope="session")
def training_month_csv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from model.synth import synth_trips, write_trips

    path = tmp_path_factory.mktemp("raw") / "green_tripdata_2018-02.csv"
    write_trips(synth_trips(TRAINING_ROWS, seed=TRAINING_SEED), path)
    return path


@pytest.fixture(scope="session")
def prepared_dir(training_month_csv: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from model.prepare import prepare

    out = tmp_path_factory.mktemp("prepared")
    prepare([training_month_csv], out)
    return out


@pytest.fixture(scope="session")
def trained(prepared_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Trained:
    from model.train import train_to_dir
    from tests.support import Trained

    model_dir = tmp_path_factory.mktemp("model")
    report = train_to_dir(prepared_dir, model_dir)
    return Trained(prepared=prepared_dir, model_dir=model_dir, report=report)


@pytest.fixture(scope="session")
def fare_model(trained: Trained) -> FareModel:
    from model.serve import FareModel

    return FareModel.load(trained.model_dir)


@pytest.fixture(scope="session")
def baseline_dir(prepared_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from model.baseline import baseline

    out = tmp_path_factory.mktemp("baseline")
    baseline(prepared_dir / "baseline.csv", out)
    return out
