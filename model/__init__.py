"""The decouple model of Fan et al. (ECCV 2018 / TPAMI 2019) and the one-network-per-γ baseline.

>>> import model                                         # doctest: +SKIP
>>> m = model.load("runs/l0/last.pt")                    # doctest: +SKIP
>>> out = m.apply(image_uint8, "l0", 0.05)               # doctest: +SKIP

``python -m model train|eval|apply --help`` for the command line.
"""
from .predict import Predictor, load

__all__ = ["Predictor", "load"]
