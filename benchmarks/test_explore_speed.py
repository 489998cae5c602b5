"""The γ explorer's responsiveness (``explore_speed``): server time from a slider release to the
new image, at 512², on the re-tune path, with the operator's own time for the same γ beside it.

What is timed and how is declared in :mod:`benchmarks.tables.explore_speed` (``python -m
benchmarks run explore_speed`` makes the same table without pytest). Here each operator is one
test: it measures (checking the render paths), adds its row to the module's table, written when
the module's tests end; skipped without the explorer's web stack (starlette).
"""
from __future__ import annotations

import pytest

from .tables import collect, get
from .tables.explore_speed import OPS, available

TABLE = get("explore_speed")


@pytest.fixture(scope="module")
def rows(experiment, results_dir):
    """The table's rows, written when the module's tests end."""
    yield from collect(TABLE, experiment, results_dir)


@pytest.mark.parametrize("op", OPS)
def test_slider_release_to_new_image(rows, experiment, scale, op):
    if not available():
        pytest.importorskip("starlette")
    TABLE.check(rows.add(TABLE.measure(experiment, op)), scale)
