"""Dataset generation throughput (``datagen_speed``): pairs/s at 256x256 with 1 and 2 workers,
overhead over bare calls, and the bare calls on two processes at once (the ceiling).

What is timed and how is declared in :mod:`benchmarks.tables.datagen_speed` (``python -m
benchmarks run datagen_speed`` makes the same table without pytest); the settings are measured
interleaved in one test, which adds the rows to the module's table, written when it ends.
"""
from __future__ import annotations

import pytest

from .tables import collect, get

TABLE = get("datagen_speed")


@pytest.fixture(scope="module")
def rows(experiment, results_dir):
    """The table's rows and facts, written when the module's tests end."""
    yield from collect(TABLE, experiment, results_dir)


def test_datagen_throughput(rows, experiment, scale):
    TABLE.check(rows.add(TABLE.measure(experiment, TABLE.units(scale)[0])), scale)
