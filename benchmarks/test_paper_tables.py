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


def _checker(table, name: str):
    """The module fixture ``name`` that gathers ``table``'s rows (written when the module's tests
    end), its test per operator (measure it, add its rows, check the table's claims for it) and
    the test after them: at the smoke scale, ``python -m benchmarks run`` writes the same table
    (:func:`benchmarks.conftest.same_as_run_table`)."""

    @pytest.fixture(scope="module", name=name)
    def gathered(experiment, results_dir):
        yield from collect(table, experiment, results_dir)

    @pytest.mark.parametrize("op", table.units())
    def test_unit(op, experiment, scale, request):
        got = request.getfixturevalue(name)
        table.check(got.add(table.measure(experiment, op), op), scale)

    def test_same(request, same_as_run_table):
        same_as_run_table(table, request.getfixturevalue(name))

    return gathered, test_unit, test_same


# Table 1 (rows and per-crop scores) and the γ sweep (rows, and its figure when written)
table1, test_table1, test_table1_is_what_run_table_writes = _checker(TABLE1, "table1")
sweep, test_gamma_sweep, test_gamma_sweep_is_what_run_table_writes = _checker(SWEEP, "sweep")


@pytest.mark.parametrize("op", TABLE1.units())
def test_visual(op, experiment, results_dir):
    """Figure: a test crop, the operator's output and the networks' at the five test γ."""
    assert TABLE1.visual(experiment, op, results_dir).stat().st_size > 1000
