"""Options shared by the benchmark suite: scale, results folder, cache folder."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from ._report import MODELS_HELP, SCALES, default_cache, results_folder


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
    group.addoption("--models", default="default", help=MODELS_HELP)


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
    from ._experiments import Experiment, models_option

    return Experiment(scale, cache_dir, request.config.getoption("--data"),
                      request.config.getoption("--device"),
                      models_option(request.config.getoption("--models")))


@pytest.fixture(scope="module")
def sources(experiment):
    """The test split's source crops (N, S, S, 3) uint8, read once for the γ sweeps and figures
    (:func:`benchmarks.tables._common.source_crops`)."""
    from .tables._common import source_crops

    return source_crops(experiment)


@pytest.fixture
def same_as_run_table(request, experiment, scale, tmp_path):
    """``check(table, collected)``: a module's last test, after the units of ``table`` were
    measured into ``collected`` (its :func:`benchmarks.tables.collect` fixture, each added with
    its unit): :func:`benchmarks.run_table` on the same cache, measuring one of those units (the
    last: its models are still loaded, :func:`benchmarks.tables._common.predictor`;
    ``units=[unit]``), writes what the suite writes from its rows of that unit
    (``Collected.write``, as the fixture does when the module ends), byte for byte (CSV,
    per-crop scores, LaTeX body), with no failed claim; and when every unit was measured, the
    suite measured them in the table's order, the order ``run_table`` measures and writes them
    in. Re-measuring one unit, not the whole table, keeps the check cheap (each table's units
    are measured alike). Smoke scale only (CI: the models are trained already)."""
    import json
    import shlex
    import time

    from . import render
    from .tables import Collected, run_table

    def check(table, collected) -> None:
        if scale != "smoke":
            pytest.skip("checked at the smoke scale, where the models are trained already")
        if not collected.measured:
            pytest.skip(f"needs a unit of {table.name} measured in this run")
        every = table.units(scale)
        if collected.units == len(every):
            assert [u for u, _ in collected.measured] == every, "units out of the table's order"
        unit, measured = collected.measured[-1]
        suite, lib = tmp_path / "suite", tmp_path / "lib"
        one = Collected()
        one.add(measured, unit)
        one.write(table, experiment, suite, time.perf_counter())
        done = run_table(table.name, scale=scale, units=[unit], results=lib,
                         cache=experiment.cache, data=request.config.getoption("--data"),
                         device=request.config.getoption("--device"), figures=False)
        assert done.failed == [], done.failed
        for suffix in (".csv", ".crops.csv"):
            a, b = suite / f"{table.name}{suffix}", lib / f"{table.name}{suffix}"
            assert a.is_file() == b.is_file(), suffix
            assert not a.is_file() or a.read_bytes() == b.read_bytes(), (unit, suffix)
        tex = [render._body((d / f"{table.name}.tex").read_text()) for d in (suite, lib)]
        assert tex[0] == tex[1] and "\\toprule" in tex[0]
        words = shlex.split(json.loads((lib / f"{table.name}.meta.json").read_text())["command"])
        if table.unit_id is not None:  # the command line names the unit by its id
            assert words[:7] == ["python", "-m", "benchmarks", "run", table.alias, "--scale",
                                 scale], words
            assert words[words.index("--units") + 1] == table.unit_id(unit), words
        else:
            assert words[:2] == ["python", "-c"] and len(words) == 3, words
            assert f"run_table({table.alias!r}, scale={scale!r}, units={[unit]!r}, " in words[2]

    return check
