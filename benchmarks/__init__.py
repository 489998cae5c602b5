"""The paper's experiments as a library: one module per result table (:mod:`benchmarks.tables`),
run by ``pytest benchmarks`` (every table), ``python -m benchmarks run TABLE`` or
:func:`run_table` (one table, without pytest), and ``python -m benchmarks.prepare`` (train the
models first, in parallel)."""
from datagen import require

# the packages the suite measures are the project's, not a researcher's own model.py
require("model", "load")

from .tables import run_table  # noqa: E402  (after the check)

__all__ = ["run_table"]
