"""Training and test pairs for parameterized image operators, as one self-describing HDF5 file.

``python -m datagen build --ops all`` replaces the authors' MATLAB script
(``training_data_generation.m`` of fqnchina/DecoupleLearning) for every registered operator: γ
drawn from each operator's law (Fan et al. ECCV 2018, Eq. 5), 7 draws per training image, every
SR scale, one pair per image for fixed-effect operators, the paper's test γ per test image, a split
by source image, every pair made by ``operators.pair`` (per-pair seeds for random degradations),
on any ``concurrent.futures`` executor or a Dask cluster.
"""
from __future__ import annotations

import subprocess
from pathlib import Path

__all__ = ["PairDataset", "build_dataset", "code_version", "dataset_options"]


def __getattr__(name):
    """``datagen.PairDataset`` (it needs torch, which the build does not) and the library form
    of ``python -m datagen build`` (``datagen.dataset_options(...)`` gives the options of the
    command's flags, ``datagen.build_dataset(out, options)`` builds them), imported on first
    use."""
    if name == "PairDataset":
        from .dataset import PairDataset

        return PairDataset
    if name == "build_dataset":
        from .build import build_dataset

        return build_dataset
    if name == "dataset_options":
        from .plan import dataset_options

        return dataset_options
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def code_version() -> str:
    """Package version plus the git commit when run from a checkout (``-dirty`` if modified)."""
    root = Path(__file__).resolve().parents[1]
    if not (root / ".git").exists():  # an installed copy: the version is all we know
        return __version__
    try:
        rev = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True,
                             text=True, check=True, timeout=5).stdout.strip()
        # results/ holds generated tables, not code: writing them must not mark the code dirty
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--",
                                ".", ":(exclude)results"], cwd=root, capture_output=True,
                               text=True, timeout=5).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return __version__
    return f"{__version__}+g{rev}{'.dirty' if dirty else ''}"


def require(name: str, attribute: str) -> None:
    """Check that ``import name`` finds this project's package ``name`` (one with
    ``attribute``), not a researcher's own ``name.py`` that shadows it (the working folder comes
    first on ``sys.path``): an ImportError naming the file that would be imported, instead of an
    AttributeError or "'name' is not a package" deep inside a command. Nothing is imported when
    ``name`` is not loaded yet (the check asks where it would be found)."""
    import importlib.util
    import sys

    mod = sys.modules.get(name)
    if mod is not None:
        ok, where = hasattr(mod, attribute), getattr(mod, "__file__", None) or repr(mod)
    else:
        spec = importlib.util.find_spec(name)
        if spec is None:
            raise ImportError(f"no module named {name!r}: install decouple-ops (pip install -e .)")
        # ours is a package; a shadowing name.py is not
        ok, where = spec.submodule_search_locations is not None, spec.origin
    if not ok:
        raise ImportError(f"`import {name}` finds {where}, not the {name} package of decouple-ops:"
                          f" a module of yours named {name} (in the working folder or earlier on "
                          "sys.path) shadows it; rename it or work from another folder")


# the operators this package computes with are ours, not a file of the same name
require("operators", "resolve")

from operators import __version__  # noqa: E402  (one version for the project, after the check)
