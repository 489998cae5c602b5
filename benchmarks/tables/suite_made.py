"""Tables still gathered and written by their benchmark test modules (``suite``), registered
here for what everything else reads by a table's name: the LaTeX layout, the summary in
``results/README.md``, the figure re-drawn from the CSV, the run list and the paper's figures.

Each moves into a module of its own (with ``units``, ``measure``, ``check``, ``frame`` and
``write``, as :mod:`benchmarks.tables.table1`) when its test module becomes a thin checker;
until then ``python -m benchmarks run`` names the test module to run instead.
"""
from __future__ import annotations

from .. import _latex
from .._figures import plot_gamma_sweep_joint
from ..paper import PAPER_TABLE6
from . import Table

_JOINT = "benchmarks/test_joint_tables.py"
ALL_SCALES = ("smoke", "small", "medium", "paper")

TABLES = (
    Table("table2_restoration", "table2", "ECCV 2018 / TPAMI 2019 Table 2", runs="table2",
          layout=_latex.table2, suite="benchmarks/test_restoration_table.py"),
    Table("table3_joint", "table3", "TPAMI 2019 Table 3 / ECCV 2018 Table 4", runs="table3",
          layout=_latex.table3_joint, summary=_latex.table3_summary_rows, suite=_JOINT),
    Table("table6_baselines", "table6", "TPAMI 2019 Table 6", runs="table6",
          layout=_latex.table6, paper=PAPER_TABLE6, scales=ALL_SCALES, suite=_JOINT),
    Table("table12_ablation", "table12", "TPAMI 2019 Table 12", runs="table12",
          layout=_latex.table12_ablation, summary=_latex.table12_summary_rows,
          scales=ALL_SCALES, suite=_JOINT),
    Table("gamma_sweep_joint", "sweep_joint", runs="sweep_joint",
          layout=_latex.gamma_sweep_joint, summary=_latex.sweep_joint_models,
          figure=(plot_gamma_sweep_joint, "figures/gamma_sweep_joint.png"), suite=_JOINT),
    Table("operator_speed", "operator_speed", layout=_latex.operator_speed,
          scales=ALL_SCALES, suite="benchmarks/test_operators.py"),
    Table("operator_fidelity", "operator_fidelity", layout=_latex.operator_fidelity,
          scales=ALL_SCALES, suite="benchmarks/test_operators.py"),
    Table("baseline_speed", "baseline_speed", "TPAMI 2019 Table 6 (speed)",
          layout=_latex.baseline_speed, scales=ALL_SCALES,
          suite="benchmarks/test_baselines.py"),
)
