"""The decouple model of Fan et al. (ECCV 2018 / TPAMI 2019), its baselines, TPAMI's real-time
model and Table 12 ablation, and later modulation methods (CResMD, AdaFM, DNI): one registry of
architectures (:mod:`model.registry`), trained, evaluated and applied through the same API.

>>> import model                                         # doctest: +SKIP
>>> m = model.load("runs/l0/last.pt")                    # doctest: +SKIP
>>> out = m.apply(image_uint8, "l0", 0.05)               # doctest: +SKIP
>>> out = m.retune(image_uint8, "l0", 0.08)              # doctest: +SKIP  (features cached)

``python -m model train|eval|apply --help`` for the command line.
"""
# first: a file of the user's named datagen (or operators: datagen checks it) is named here,
# not met later as "'datagen' is not a package"
from datagen import require as _require  # noqa: F401

from operators import __version__  # one version for the project, kept in the lowest package
from operators import _numba_cache

# before model.bgu's kernels are compiled: an edit of any file of model or operators (whose
# solver BGU uses) recompiles them (operators._numba_cache)
_numba_cache.register(__path__[0], _numba_cache.PACKAGE)

from .predict import Predictor, UnfinishedWarning, load

__all__ = ["Predictor", "UnfinishedWarning", "load", "__version__"]
