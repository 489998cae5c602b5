"""Faithful, fast classical image operators learned by Fan et al.'s decouple model.

The registry is the one place that knows each operator's parameter γ: its meaning, range, the law
the paper sampled it from, the five test values of the paper's tables, the fixed parameters, and
the paper it implements. ``datagen``, ``model`` and ``benchmarks`` read these facts from here.

>>> import numpy as np, operators
>>> operators.NAMES
('l0', 'wls', 'rtv', 'rgf', 'wmf', 'llf')
>>> img = np.zeros((8, 8, 3), np.uint8)
>>> operators.apply("l0", img, 0.02).shape
(8, 8, 3)
>>> operators.get("wls").gamma_range
(0.1, 10.0)

References
----------
Q. Fan, D. Chen, L. Yuan, G. Hua, N. Yu, B. Chen. "Decouple Learning for Parameterized Image
Operators", ECCV 2018; "A General Decoupled Learning Framework for Parameterized Image Operators",
IEEE TPAMI 2019 (arXiv:1907.05852).
"""
from __future__ import annotations

import importlib
import math
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Callable, Mapping

import numpy as np

from ._validate import MATLAB_EPS, as_float_image, as_gamma, restore_shape, to_uint8

__all__ = ["NAMES", "OperatorSpec", "get", "apply", "to_uint8", "specs", "MATLAB_EPS",
           "as_float_image", "restore_shape"]

LAWS = ("log-uniform", "uniform", "integer")


@dataclass(frozen=True)
class OperatorSpec:
    """What the project knows about one operator. Calling the spec runs the operator.

    Attributes
    ----------
    name : short name used everywhere (``"l0"``...).
    title : human-readable name.
    paper : the paper the algorithm comes from, with DOI.
    gamma_name, gamma_meaning : the symbol of γ and what it controls.
    gamma_range : (low, high), the training range.
    law : how training γ are drawn: ``"log-uniform"``, ``"uniform"`` or ``"integer"``.
    test_gammas : the five γ values of the paper's tables.
    fixed : the fixed parameters (overridable per call).
    paper_norm : (offset, scale, shift) of the authors' map of γ into about [0.002, 0.2]:
        ``(γ - offset) * scale + shift``.
    """

    name: str
    title: str
    paper: str
    gamma_name: str
    gamma_meaning: str
    gamma_range: tuple[float, float]
    law: str
    test_gammas: tuple[float, ...]
    fixed: Mapping[str, Any]
    paper_norm: tuple[float, float, float]
    _target: str = field(repr=False)  # "module:function", imported on first use
    effective_note: str = ""
    _effective: str = field(default="", repr=False)  # "module:function" giving the used γ

    # ------------------------------------------------------------------ running
    @property
    def function(self) -> Callable[..., np.ndarray]:
        """The operator's public function (imported lazily so ``import operators`` stays cheap)."""
        return _resolve(self._target)

    def check_gamma(self, gamma, *, strict: bool = True) -> float:
        """γ as a float; outside ``gamma_range`` it raises unless ``strict=False``."""
        g = as_gamma(gamma, name=f"{self.name} {self.gamma_name}")
        lo, hi = self.gamma_range
        if strict and not (lo <= g <= hi):
            raise ValueError(
                f"{self.name}: {self.gamma_name}={g:g} is outside the trained range "
                f"[{lo:g}, {hi:g}]; pass strict=False to extrapolate on purpose"
            )
        return g

    def __call__(self, image, gamma, *, strict: bool = True, **overrides) -> np.ndarray:
        g = self.check_gamma(gamma, strict=strict)
        unknown = set(overrides) - set(self.fixed)
        if unknown:
            raise TypeError(
                f"{self.name}: unknown parameter(s) {sorted(unknown)}; fixed parameters are "
                f"{sorted(self.fixed)}"
            )
        return self.function(image, g, **{**self.fixed, **overrides})

    # ------------------------------------------------------------------ γ facts
    def effective_gamma(self, gamma) -> float:
        """The γ the operator really uses (WMF rounds its radius half up; others: γ itself)."""
        g = as_gamma(gamma)
        return float(_resolve(self._effective)(g)) if self._effective else g

    def sample(self, rng: np.random.Generator, size=None):
        """Draw training γ from the paper's law (Fan et al. ECCV 2018, Eq. 5)."""
        lo, hi = self.gamma_range
        if self.law == "log-uniform":
            return lo * np.exp(rng.uniform(0.0, math.log(hi / lo), size))
        if self.law == "uniform":
            return rng.uniform(lo, hi, size)
        return rng.integers(int(lo), int(hi) + 1, size).astype(np.float64)

    def normalize(self, gamma):
        """Map γ to [0, 1] by its law: log scale for log-uniform laws, linear otherwise."""
        lo, hi = self.gamma_range
        g = np.asarray(gamma, dtype=np.float64)
        if self.law == "log-uniform":
            out = (np.log(g) - math.log(lo)) / (math.log(hi) - math.log(lo))
        else:
            out = (g - lo) / (hi - lo)
        return float(out) if out.ndim == 0 else out

    def denormalize(self, t):
        """Inverse of :meth:`normalize`."""
        lo, hi = self.gamma_range
        t = np.asarray(t, dtype=np.float64)
        if self.law == "log-uniform":
            out = np.exp(math.log(lo) + t * (math.log(hi) - math.log(lo)))
        else:
            out = lo + t * (hi - lo)
        return float(out) if out.ndim == 0 else out

    def paper_normalize(self, gamma):
        """The authors' ad-hoc map of γ into about [0.002, 0.2] (train_6_filter_operator_model.py)."""
        offset, scale, shift = self.paper_norm
        out = (np.asarray(gamma, dtype=np.float64) - offset) * scale + shift
        return float(out) if out.ndim == 0 else out


def _resolve(target: str) -> Callable:
    """``"module:function"`` inside this package, imported on first use."""
    module, func = target.split(":")
    return getattr(importlib.import_module(f"{__name__}.{module}"), func)


def _spec(**kw) -> OperatorSpec:
    kw["fixed"] = MappingProxyType(dict(kw["fixed"]))
    return OperatorSpec(**kw)


_SPECS: dict[str, OperatorSpec] = {
    s.name: s
    for s in (
        _spec(
            name="l0", title="L0 gradient smoothing",
            paper="L. Xu, C. Lu, Y. Xu, J. Jia. Image Smoothing via L0 Gradient Minimization. "
                  "ACM TOG 30(6) (SIGGRAPH Asia 2011). doi:10.1145/2070781.2024208",
            gamma_name="lambda", gamma_meaning="weight of the L0 gradient penalty",
            gamma_range=(0.002, 0.2), law="log-uniform",
            test_gammas=(0.002, 0.00431, 0.02, 0.09283, 0.2),
            fixed={"kappa": 2.0}, paper_norm=(0.0, 1.0, 0.0), _target="l0:l0_smooth",
        ),
        _spec(
            name="wls", title="Weighted least squares smoothing",
            paper="Z. Farbman, R. Fattal, D. Lischinski, R. Szeliski. Edge-Preserving "
                  "Decompositions for Multi-Scale Tone and Detail Manipulation. ACM TOG 27(3) "
                  "(SIGGRAPH 2008). doi:10.1145/1360612.1360666",
            gamma_name="lambda", gamma_meaning="smoothness weight",
            gamma_range=(0.1, 10.0), law="log-uniform",
            test_gammas=(0.1, 0.21544, 1.0, 4.64159, 10.0),
            fixed={"alpha": 1.2}, paper_norm=(0.0, 1.0 / 50.0, 0.0), _target="wls:wls_filter",
        ),
        _spec(
            name="rtv", title="Relative total variation",
            paper="L. Xu, Q. Yan, Y. Xia, J. Jia. Structure Extraction from Texture via Relative "
                  "Total Variation. ACM TOG 31(6) (SIGGRAPH Asia 2012). "
                  "doi:10.1145/2366145.2366158",
            gamma_name="lambda", gamma_meaning="smoothness weight (halved internally)",
            gamma_range=(0.002, 0.05), law="log-uniform",
            test_gammas=(0.002, 0.00447, 0.01, 0.02236, 0.05),
            fixed={"sigma": 3.0, "sharpness": 0.02, "max_iter": 4, "solver": "pcg"},
            paper_norm=(0.002, 4.125, 0.002), _target="rtv:rtv_smooth",
        ),
        _spec(
            name="rgf", title="Rolling guidance filter",
            paper="Q. Zhang, X. Shen, L. Xu, J. Jia. Rolling Guidance Filter. ECCV 2014. "
                  "doi:10.1007/978-3-319-10578-9_53",
            gamma_name="sigma_s", gamma_meaning="spatial scale of the structures removed (pixels)",
            gamma_range=(1.0, 10.0), law="uniform",
            test_gammas=(1.0, 3.25, 5.5, 7.75, 10.0),
            fixed={"sigma_r": 0.05, "iterations": 4}, paper_norm=(1.0, 0.022, 0.002),
            _target="rgf:rolling_guidance",
        ),
        _spec(
            name="wmf", title="Weighted median filter",
            paper="Q. Zhang, L. Xu, J. Jia. 100+ Times Faster Weighted Median Filter (WMF). "
                  "CVPR 2014. doi:10.1109/CVPR.2014.362",
            gamma_name="r", gamma_meaning="window radius (rounded half up to an integer)",
            gamma_range=(1.0, 10.0), law="uniform",
            test_gammas=(1.0, 3.25, 5.5, 7.75, 10.0),
            fixed={"sigma": 25.5}, paper_norm=(1.0, 0.022, 0.002),
            _target="wmf:weighted_median", _effective="wmf:effective_radius",
            effective_note="integer radius floor(r + 0.5)",
        ),
        _spec(
            name="llf", title="Fast local Laplacian filter",
            paper="M. Aubry, S. Paris, S. W. Hasinoff, J. Kautz, F. Durand. Fast Local Laplacian "
                  "Filters: Theory and Applications. ACM TOG 33(5), 2014. doi:10.1145/2629645",
            gamma_name="fact", gamma_meaning="detail enhancement factor",
            gamma_range=(2.0, 8.0), law="integer",
            test_gammas=(2.0, 3.0, 5.0, 7.0, 8.0),
            fixed={"sigma": 0.1, "n_samples": 10}, paper_norm=(2.0, 0.033, 0.002),
            _target="llf:local_laplacian",
        ),
    )
}

#: The operator names, in the paper's order.
NAMES: tuple[str, ...] = tuple(_SPECS)


def get(name: str) -> OperatorSpec:
    """The spec of operator ``name`` (see :class:`OperatorSpec`); calling it runs the operator."""
    if not isinstance(name, str):
        raise TypeError(f"operator name must be a string, got {type(name).__name__}")
    try:
        return _SPECS[name.lower()]
    except KeyError:
        raise ValueError(f"unknown operator {name!r}; known: {', '.join(NAMES)}") from None


def specs() -> tuple[OperatorSpec, ...]:
    """All specs, in :data:`NAMES` order."""
    return tuple(_SPECS[n] for n in NAMES)


def apply(name: str, image, gamma, *, strict: bool = True, **fixed_overrides) -> np.ndarray:
    """Run operator ``name`` on ``image`` at parameter ``gamma``.

    ``image`` is HxWx3 (or HxW) uint8, or float in [0, 1]. Returns float64 of the same layout,
    **unclipped**, exactly as the authors' MATLAB code before ``imwrite``; use :func:`to_uint8` for
    MATLAB's conversion. γ outside the operator's range raises unless ``strict=False``.
    """
    return get(name)(image, gamma, strict=strict, **fixed_overrides)
