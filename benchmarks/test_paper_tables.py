"""The paper's quality experiment at a scale: Table 1, the γ sweep, and a figure per operator.

What each table trains, measures, writes and checks is declared in its module of the registry,
:mod:`benchmarks.tables.table1` (``table1_single_vs_decouple`` and the figures
``figures/visual_<op>.png``) and :mod:`benchmarks.tables.gamma_sweep` (``gamma_sweep`` and
``figures/gamma_sweep.png``); ``python -m benchmarks run table1`` makes the same tables without
pytest. Here each is one test per operator (``-k table1``, ``-k gamma_sweep``, ``-k visual``,
``-k l0``): it measures the operator, adds its rows to the module's table, which is written when
the module's tests end, and checks the table's claims for it.

Models and the dataset come from the cache (``--cache``), trained there on first use.
"""
from __future__ import annotations

import pytest

from .tables import collect, get
# (benchmarks/test_joint_tables.py runs its models as the γ sweep does, with these)
from .tables._common import run_model as _run_model  # noqa: F401
from .tables._common import scores as _scores  # noqa: F401
from .tables.gamma_sweep import sweep_gammas  # noqa: F401

TABLE1 = get("table1_single_vs_decouple")
SWEEP = get("gamma_sweep")


@pytest.fixture(scope="module")
def table1(experiment, results_dir):
    """Table 1's rows and per-crop scores, written when the module's tests end."""
    yield from collect(TABLE1, experiment, results_dir)


@pytest.mark.parametrize("op", TABLE1.units())
def test_table1(op, experiment, scale, table1):
    TABLE1.check(table1.add(TABLE1.measure(experiment, op)), scale)


@pytest.fixture(scope="module")
def sweep(experiment, results_dir):
    """The γ sweep's rows, written (with its figure) when the module's tests end."""
    yield from collect(SWEEP, experiment, results_dir)


@pytest.mark.parametrize("op", SWEEP.units())
def test_gamma_sweep(op, experiment, scale, sweep):
    SWEEP.check(sweep.add(SWEEP.measure(experiment, op)), scale)


@pytest.mark.parametrize("op", TABLE1.units())
def test_visual(op, experiment, results_dir):
    """Figure: a test crop, the operator's output and the networks' at the five test γ."""
    assert TABLE1.visual(experiment, op, results_dir).stat().st_size > 1000
