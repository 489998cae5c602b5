"""Table 2 of both papers at a scale: restoration, one network per task.

What the table trains, measures, writes and checks is declared in its module of the registry,
:mod:`benchmarks.tables.table2` (``table2_restoration``); ``python -m benchmarks run table2``
makes the same table without pytest. Here it is one test per task (``-k table2``, ``-k jpeg``):
it measures the task, adds its rows to the module's table, which is written when the module's
tests end, and checks the table's claims for it. At smoke scale only JPEG is trained.
"""
from __future__ import annotations

import pytest

from .tables import collect, get

TABLE2 = get("table2_restoration")


def pytest_generate_tests(metafunc):
    if "task" in metafunc.fixturenames:
        metafunc.parametrize("task", TABLE2.units(metafunc.config.getoption("--scale")))


@pytest.fixture(scope="module")
def table2(experiment, results_dir):
    """Table 2's rows and per-crop scores, written when the module's tests end."""
    yield from collect(TABLE2, experiment, results_dir)


def test_table2(task, experiment, scale, table2):
    TABLE2.check(table2.add(TABLE2.measure(experiment, task), task), scale)


def test_table2_is_what_run_table_writes(table2, same_as_run_table):
    """After every task (smoke scale): ``python -m benchmarks run table2`` writes this table."""
    same_as_run_table(TABLE2, table2)
