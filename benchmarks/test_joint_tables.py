"""The joint-model tables of both papers at a scale: one network for several operators.

What each table trains, measures, writes and checks is declared in its module of the registry:
:mod:`benchmarks.tables.table3` (``table3_joint``: TPAMI 2019 Table 3 / ECCV 2018 Table 4),
:mod:`benchmarks.tables.table6` (``table6_baselines``: TPAMI 2019 Table 6 over its ten
operators), :mod:`benchmarks.tables.table12` (``table12_ablation``: TPAMI 2019 Table 12, and
CResMD, AdaFM, DNI) and :mod:`benchmarks.tables.gamma_sweep_joint` (``gamma_sweep_joint`` and
its figure); ``python -m benchmarks run table3|table6|table12|sweep_joint`` makes the same
tables without pytest. Here each is one test per unit (``-k table3``, ``-k "table6 and l0"``,
``-k norm``, ``-k gamma_sweep_joint``): it measures the unit, adds its rows to the module's
table, which is written when the module's tests end, and checks the table's claims for it; a
test after the units checks the claims about the whole table, and (smoke scale) that
``python -m benchmarks run`` writes the same table.

Joint models get ``min(n_ops, JOINT_CAP)`` times a one-operator training budget (see
:data:`benchmarks._experiments.JOINT_CAP`); every table's sidecar records the rule and each
model's iterations. Smoke scale covers every code path with fewer columns and models.
"""
from __future__ import annotations

import pandas as pd
import pytest

from .tables import collect, get
from .tables import table3 as _table3
from .tables import table12 as _table12

TABLE3 = get("table3_joint")
TABLE6 = get("table6_baselines")
TABLE12 = get("table12_ablation")
SWEEP = get("gamma_sweep_joint")


def pytest_generate_tests(metafunc):
    scale = metafunc.config.getoption("--scale")
    if "t3_case" in metafunc.fixturenames:
        cases = TABLE3.units(scale)
        metafunc.parametrize("t3_case", cases, ids=[_table3.unit_id(c) for c in cases])
    if "t6_op" in metafunc.fixturenames:
        metafunc.parametrize("t6_op", TABLE6.units(scale))
    if "t12_case" in metafunc.fixturenames:
        cases = TABLE12.units(scale)
        metafunc.parametrize("t12_case", cases, ids=[_table12.unit_id(c) for c in cases])
    if "sweep_op" in metafunc.fixturenames:
        metafunc.parametrize("sweep_op", SWEEP.units(scale))


def _check_table(table, collected, scale) -> None:
    """The claims about the whole table, after its units (skipped when they cannot be checked,
    e.g. at the smoke scale)."""
    reason = table.check_table(pd.DataFrame(collected.rows), scale)
    if reason is not None:
        pytest.skip(reason)


# ---------------------------------------------------------------------- Table 3 / ECCV Table 4
@pytest.fixture(scope="module")
def table3(experiment, results_dir):
    """Table 3's rows and per-crop scores, written when the module's tests end."""
    yield from collect(TABLE3, experiment, results_dir)


def test_table3(t3_case, experiment, scale, table3):
    TABLE3.check(table3.add(TABLE3.measure(experiment, t3_case), t3_case), scale)


def test_table3_is_what_run_table_writes(table3, same_as_run_table):
    same_as_run_table(TABLE3, table3)


# ---------------------------------------------------------------------- Table 6, ten operators
@pytest.fixture(scope="module")
def table6(experiment, results_dir):
    """Table 6's rows and per-crop scores, written when the module's tests end."""
    yield from collect(TABLE6, experiment, results_dir)


def test_table6(t6_op, experiment, scale, table6):
    TABLE6.check(table6.add(TABLE6.measure(experiment, t6_op), t6_op), scale)


def test_table6_realtime_beats_its_input_on_average(scale, table6):
    """After every operator's row: the joint real-time model, averaged over the operators
    measured, beats copying the input (:func:`benchmarks.tables.table6.check_table`)."""
    _check_table(TABLE6, table6, scale)


def test_table6_is_what_run_table_writes(table6, same_as_run_table):
    same_as_run_table(TABLE6, table6)


# ---------------------------------------------------------------------- Table 12
@pytest.fixture(scope="module")
def table12(experiment, results_dir):
    """Table 12's rows and per-crop scores, written when the module's tests end."""
    yield from collect(TABLE12, experiment, results_dir)


def test_table12(t12_case, experiment, scale, table12):
    TABLE12.check(table12.add(TABLE12.measure(experiment, t12_case), t12_case), scale)


def test_table12_whole_network_beats_one_layer(scale, table12):
    """After every variant's rows: predicting every layer beats predicting any single layer
    and copying the input (:func:`benchmarks.tables.table12.check_table`)."""
    _check_table(TABLE12, table12, scale)


def test_table12_is_what_run_table_writes(table12, same_as_run_table):
    same_as_run_table(TABLE12, table12)


# ---------------------------------------------------------------------- joint γ sweep
@pytest.fixture(scope="module")
def sweep_joint(experiment, results_dir):
    """The joint sweep's rows, written (with its figure) when the module's tests end."""
    yield from collect(SWEEP, experiment, results_dir)


def test_gamma_sweep_joint(sweep_op, experiment, scale, sweep_joint):
    SWEEP.check(sweep_joint.add(SWEEP.measure(experiment, sweep_op), sweep_op), scale)


def test_gamma_sweep_joint_models_beat_input_on_average(scale, sweep_joint):
    """After every operator's sweep: each joint model beats copying the input on average
    (:func:`benchmarks.tables.gamma_sweep_joint.check_table`)."""
    _check_table(SWEEP, sweep_joint, scale)


def test_gamma_sweep_joint_is_what_run_table_writes(sweep_joint, same_as_run_table):
    same_as_run_table(SWEEP, sweep_joint)
