"""Tables still gathered and written by their benchmark test modules (``suite``), registered
here for what everything else reads by a table's name: the LaTeX layout, the summary in
``results/README.md``, the figure re-drawn from the CSV, the run list and the paper's figures.

Each moves into a module of its own (with ``units``, ``measure``, ``check``, ``frame`` and
``write``, as :mod:`benchmarks.tables.table1`) when its test module becomes a thin checker;
until then ``python -m benchmarks run`` names the test module to run instead.
"""
from __future__ import annotations

from .. import _latex
from . import Table

ALL_SCALES = ("smoke", "small", "medium", "paper")

TABLES = (
    Table("operator_speed", "operator_speed", layout=_latex.operator_speed,
          scales=ALL_SCALES, suite="benchmarks/test_operators.py"),
    Table("operator_fidelity", "operator_fidelity", layout=_latex.operator_fidelity,
          scales=ALL_SCALES, suite="benchmarks/test_operators.py"),
    Table("baseline_speed", "baseline_speed", "TPAMI 2019 Table 6 (speed)",
          layout=_latex.baseline_speed, scales=ALL_SCALES,
          suite="benchmarks/test_baselines.py"),
)
