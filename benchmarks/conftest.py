"""Options shared by the benchmark suite: scale, results folder, cache folder."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from ._report import SCALES, default_cache, results_folder


def pytest_addoption(parser):
    group = parser.getgroup("decouple benchmarks")
    group.addoption("--scale", choices=SCALES, default=os.environ.get("DECOUPLE_SCALE", "smoke"),
                    help="smoke (CI, minutes), small (CPU, committed tables), paper (GPU); "
                         "default $DECOUPLE_SCALE or smoke")
    group.addoption("--results", default=os.environ.get("DECOUPLE_RESULTS"),
                    help="folder the tables are written to (default: results/ at the small and "
                         "paper scales, results/medium at the medium scale, "
                         "<cache>/smoke/results at the smoke scale, so a smoke run "
                         "never touches the committed tables; $DECOUPLE_RESULTS)")
    group.addoption("--cache", default=str(default_cache()),
                    help="folder for datasets and checkpoints reused across runs (outside git)")
    group.addoption("--data", default=os.environ.get("DECOUPLE_DATA"),
                    help="dataset (from `python -m datagen build`) for the model tables instead of "
                         "the scale's default build in the cache")
    group.addoption("--device", default=None,
                    help="cpu or cuda for training and evaluation (default: cuda when available)")


@pytest.fixture(scope="session")
def scale(request) -> str:
    return request.config.getoption("--scale")


def results_path(config) -> Path:
    """``--results``, or its default for the run's scale (see the option's help and
    :func:`benchmarks._report.results_folder`, which ``python -m benchmarks run`` uses too)."""
    return results_folder(config.getoption("--scale"), config.getoption("--cache"),
                          config.getoption("--results"))


#: the tests a ``--scale medium`` run has (docs/results.md, "Medium scale"): Tables 6 and 12 over
#: the ten TPAMI filters; the other tables stay at the small scale and the speed benchmarks do
#: not depend on the scale
MEDIUM_TESTS = ("test_joint_tables.py::test_table6", "test_joint_tables.py::test_table12")


def pytest_collection_modifyitems(config, items):
    """At the medium scale, skip every test but Tables 6 and 12 (with the reason), so that a
    ``pytest benchmarks --scale medium`` trains and writes only what the scale is for."""
    if config.getoption("--scale") != "medium":
        return
    skip = pytest.mark.skip(reason="the medium scale is Tables 6 and 12 only (docs/results.md)")
    for item in items:
        if not any(key in item.nodeid for key in MEDIUM_TESTS):
            item.add_marker(skip)


def pytest_configure(config):
    """Stop before anything runs when the results folder holds larger-scale tables, or a
    README.md that the results index would replace but the tool did not write."""
    from ._report import (ForeignFileError, ResultsScaleError, check_results_folder,
                          check_results_scale)

    try:
        check_results_scale(results_path(config), config.getoption("--scale"))
        check_results_folder(results_path(config))
    except (ResultsScaleError, ForeignFileError) as e:
        raise pytest.UsageError(str(e)) from None


@pytest.fixture(scope="session")
def results_dir(request) -> Path:
    path = results_path(request.config)
    path.mkdir(parents=True, exist_ok=True)
    return path


@pytest.fixture(scope="session")
def cache_dir(request) -> Path:
    path = Path(request.config.getoption("--cache"))
    path.mkdir(parents=True, exist_ok=True)
    return path


@pytest.fixture(scope="session")
def experiment(request, scale, cache_dir):
    """The scale's dataset and trained models (see benchmarks/_experiments.py)."""
    from ._experiments import Experiment

    return Experiment(scale, cache_dir, request.config.getoption("--data"),
                      request.config.getoption("--device"))


@pytest.fixture(scope="module")
def sources(experiment):
    """The test split's source crops (N, S, S, 3) uint8, read once for the γ sweeps and figures
    (:func:`benchmarks.tables._common.source_crops`)."""
    from .tables._common import source_crops

    return source_crops(experiment)
