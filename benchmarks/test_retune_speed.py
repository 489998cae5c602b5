"""Interactive re-tuning speed (``retune_speed``, like TPAMI 2019 Table 5): ms per image for the
first render and for a new γ on the same image, per method.

What is timed and how is declared in :mod:`benchmarks.tables.retune_speed` (``python -m
benchmarks run retune_speed`` makes the same table without pytest). Here each method and device
is one test (``-k decouple``, ``-k cpu``): it measures, adds its rows to the module's table,
written when the module's tests end, and checks its claims (a re-tune gives the image of a full
pass; it takes some time).
"""
from __future__ import annotations

import pytest

from .tables import collect, get
from .tables.model_speed import devices
from .tables.retune_speed import METHODS

TABLE = get("retune_speed")


@pytest.fixture(scope="module")
def rows(experiment, results_dir):
    """The table's rows, written when the module's tests end."""
    yield from collect(TABLE, experiment, results_dir)


@pytest.mark.parametrize("device", devices())
@pytest.mark.parametrize("arch", METHODS)
def test_retune_costs_only_what_depends_on_gamma(rows, experiment, scale, device, arch):
    TABLE.check(rows.add(TABLE.measure(experiment, (arch, device))), scale)
