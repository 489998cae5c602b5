"""The paper's quality experiment at a scale: Table 1, the γ sweep, and a figure per operator.

What each table trains, measures, writes and checks is declared in its module of the registry,
:mod:`benchmarks.tables.table1` (``table1_single_vs_decouple`` and the figures
``figures/visual_<op>.png``) and :mod:`benchmarks.tables.gamma_sweep` (``gamma_sweep`` and
``figures/gamma_sweep.png``); ``python -m benchmarks run table1`` makes the same tables without
pytest. Here each is one test per operator (``-k table1``, ``-k gamma_sweep``, ``-k visual``,
``-k l0``): it measures the operator, adds its rows to the module's table, which is written when
the module's tests end, and checks the table's claims for it; after them (smoke scale) a test
checks that ``python -m benchmarks run`` writes the same table.

Models and the dataset come from the cache (``--cache``), trained there on first use.
"""
from __future__ import annotations

import pytest

from .tables import collect, get

TABLE1 = get("table1_single_vs_decouple")
SWEEP = get("gamma_sweep")


@pytest.fixture(scope="module")
def table1(experiment, results_dir):
    """Table 1's rows and per-crop scores, written when the module's tests end."""
    yield from collect(TABLE1, experiment, results_dir)


@pytest.mark.parametrize("op", TABLE1.units())
def test_table1(op, experiment, scale, table1):
    TABLE1.check(table1.add(TABLE1.measure(experiment, op), op), scale)


def test_table1_is_what_run_table_writes(table1, same_as_run_table):
    """After every operator (smoke scale): ``python -m benchmarks run table1`` writes this
    table (:func:`benchmarks.conftest.same_as_run_table`)."""
    same_as_run_table(TABLE1, table1)


@pytest.fixture(scope="module")
def sweep(experiment, results_dir):
    """The γ sweep's rows, written (with its figure) when the module's tests end."""
    yield from collect(SWEEP, experiment, results_dir)


@pytest.mark.parametrize("op", SWEEP.units())
def test_gamma_sweep(op, experiment, scale, sweep):
    SWEEP.check(sweep.add(SWEEP.measure(experiment, op), op), scale)


def test_gamma_sweep_is_what_run_table_writes(sweep, same_as_run_table):
    same_as_run_table(SWEEP, sweep)


@pytest.mark.parametrize("op", TABLE1.units())
def test_visual(op, experiment, results_dir):
    """Figure: a test crop, the operator's output and the networks' at the five test γ."""
    assert TABLE1.visual(experiment, op, results_dir).stat().st_size > 1000
