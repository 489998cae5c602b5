"""The benchmark suite (``pytest benchmarks``) and ``python -m benchmarks.prepare``."""
from datagen import require

# the packages the suite measures are the project's, not a researcher's own model.py
require("model", "load")
