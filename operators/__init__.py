"""Faithful, fast classical image operators learned by Fan et al.'s decouple model.

The registry is the one place that knows each operator: whether it is a *filter* (a pair is
``(image, f(image))``) or a *degradation* (a pair is ``(d(image), clean)``), the channels it works
on, its parameter γ with the law the paper sampled it from (a :class:`Law` object, or
:data:`NO_LAW` for fixed-effect operators), the test values of the paper's tables, the fixed
parameters, the operator codes of the authors' joint models and the paper it implements.
``datagen``, ``model`` and ``benchmarks`` read these facts from here.

>>> import numpy as np, operators
>>> operators.NAMES
('l0', 'wls', 'rtv', 'rgf', 'wmf', 'llf')
>>> img = np.zeros((8, 8, 3), np.uint8)
>>> operators.apply("l0", img, 0.02).shape
(8, 8, 3)
>>> operators.get("wls").gamma_range
(0.1, 10.0)
>>> operators.get("sr").law.values
(2.0, 3.0, 4.0)
>>> operators.resolve("restoration")
('sr', 'denoise', 'jpeg', 'rain')

γ policy (the same for every operator and caller): γ outside the law's *domain* (≤ 0 for a
log-uniform law, NaN, a non-integer JPEG quality, an SR scale not in {2, 3, 4}, a value so large
that the solver would fail) is always refused with a ``ValueError``; γ inside the domain but
outside the training *range* is refused unless ``strict=False``, and then an
:class:`ExtrapolationWarning` is issued.

Process-wide allocator setting: on glibc Linux the *first operator call* (not the import) raises
glibc's malloc thresholds for the whole process (``mallopt``: mmap threshold 32 MiB, trim
threshold 1 GiB, top pad 64 MiB; ``operators._memory.tune_malloc``), so the 10-100 MB work arrays
of an operator are reused instead of page-faulted in again on every call; freed memory up to the
process's own peak heap stays mapped. Set ``DECOUPLE_OPS_KEEP_MALLOC=1`` in the environment before
the first call to leave the allocator alone (the operators' results are the same; a fresh process
is then slower per call). It is on by default because that is how the published operator speeds
(``results/operator_speed.csv``) were measured; see docs/operators_fresh_process.md.

References
----------
Q. Fan, D. Chen, L. Yuan, G. Hua, N. Yu, B. Chen. "Decouple Learning for Parameterized Image
Operators", ECCV 2018; "A General Decoupled Learning Framework for Parameterized Image Operators",
IEEE TPAMI 2019 (arXiv:1907.05852).
"""
from __future__ import annotations

import importlib
import math
import numbers
import os
import sys
import warnings
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Callable, Mapping

import numpy as np

from ._validate import MATLAB_EPS, as_float_image, as_gamma, restore_shape, to_uint8

__all__ = ["NAMES", "ALL", "GROUPS", "KINDS", "CHANNELS", "OperatorSpec", "Law", "LogUniform",
           "Uniform", "Integer", "Discrete", "NoLaw", "NO_LAW", "ExtrapolationWarning", "get",
           "apply", "pair", "resolve", "to_uint8", "specs", "MATLAB_EPS", "as_float_image",
           "restore_shape", "__version__"]

#: the project's version, one string for operators, datagen and model (and pyproject.toml's
#: dynamic version reads it from here)
__version__ = "0.1.0"


def __dir__() -> list[str]:
    """The public API (``__all__``) and the module's dunders, not the modules it imports (np,
    os, sys, ...) nor the submodules loaded so far."""
    return sorted(set(__all__) | {n for n in globals() if n.startswith("__") and n.endswith("__")})

KINDS = ("filter", "degradation")
CHANNELS = ("rgb", "y", "gray", "lab")


class ExtrapolationWarning(UserWarning):
    """γ inside the operator's domain but outside the range its models are trained on."""


# ---------------------------------------------------------------------------------- γ laws
class Law(str):
    """How training γ are drawn, and what γ an operator accepts at all.

    A law *is* its name as a string (``"log-uniform"``, ``"uniform"``, ``"integer"``,
    ``"discrete"``, ``"none"``), so ``spec.law == "integer"`` and HDF5 attributes that store
    ``spec.law`` keep working; the behaviour hangs off it:

    * ``low``, ``high``: the training range (what :meth:`sample` draws from);
    * ``domain``: (min, max) of the values the operator accepts at all (``min_open``: whether the
      lower end is excluded, as 0 for a log law);
    * :meth:`sample`, :meth:`normalize` (to [0, 1] over the training range), :meth:`denormalize`,
      :meth:`grid`, :meth:`in_range`, :meth:`check_domain`.
    """

    low: float
    high: float
    domain: tuple[float, float]
    min_open: bool

    def __new__(cls, name: str, low: float, high: float, domain: tuple[float, float],
                min_open: bool = False):
        obj = super().__new__(cls, name)
        obj.low, obj.high = float(low), float(high)
        obj.domain = (float(domain[0]), float(domain[1]))
        obj.min_open = bool(min_open)
        if not (obj.domain[0] <= obj.low <= obj.high <= obj.domain[1]):
            raise ValueError(f"{name} law: range [{low}, {high}] must lie inside {domain}")
        return obj

    # a str subclass pickles by value; carry the attributes along
    def __reduce__(self):
        return (_rebuild_law, (type(self), self._args()))

    def _args(self) -> tuple:
        return (self.low, self.high, self.domain)

    @property
    def name(self) -> str:
        return str(self)

    @property
    def range(self) -> tuple[float, float]:
        return (self.low, self.high)

    def __repr__(self) -> str:
        return f"{type(self).__name__}{self._args()!r}"

    def describe(self) -> str:
        """One line for messages and tables, e.g. ``log-uniform on [0.002, 0.2]``."""
        return f"{self} on [{self.low:g}, {self.high:g}]"

    # -- checks
    def _domain_text(self) -> str:
        lo, hi = self.domain
        left = "(" if self.min_open else "["
        return f"{left}{lo:g}, {hi:g}]"

    def check_domain(self, g: float, *, what: str = "gamma") -> float:
        """``g`` if the operator accepts it at all, else a ``ValueError`` saying what is allowed."""
        lo, hi = self.domain
        ok = (lo < g if self.min_open else lo <= g) and g <= hi
        if not ok:
            raise ValueError(f"{what}={g:g} is outside the operator's domain "
                             f"{self._domain_text()} (training range "
                             f"[{self.low:g}, {self.high:g}])")
        return g

    def in_range(self, g: float) -> bool:
        return self.low <= g <= self.high

    # -- sampling and normalisation (overridden per law)
    def sample(self, rng: np.random.Generator, size=None):
        raise NotImplementedError

    def normalize(self, gamma):
        """Map γ to [0, 1] over the training range (linear; log scale for log-uniform)."""
        g = np.asarray(gamma, dtype=np.float64)
        return _scalar((g - self.low) / (self.high - self.low))

    def denormalize(self, t):
        """Inverse of :meth:`normalize`."""
        t = np.asarray(t, dtype=np.float64)
        return _scalar(self.low + t * (self.high - self.low))

    def grid(self, n: int) -> np.ndarray:
        """``n`` γ spread evenly by the law over the training range (float64)."""
        return np.asarray(self.denormalize(np.linspace(0.0, 1.0, _count(n))), dtype=np.float64)


def _rebuild_law(cls, args):
    return cls(*args)


def _scalar(x: np.ndarray):
    return float(x) if x.ndim == 0 else x


def _count(n) -> int:
    if isinstance(n, bool) or not isinstance(n, numbers.Integral) or n < 1:
        raise ValueError(f"grid size must be an integer >= 1, got {n!r}")
    return int(n)


class LogUniform(Law):
    """γ = low·exp(U(0, ln(high/low))) (Fan et al. ECCV 2018 Eq. 5); normalised on a log scale."""

    def __new__(cls, low, high, domain=(0.0, math.inf)):
        return super().__new__(cls, "log-uniform", low, high, domain, min_open=True)

    def sample(self, rng, size=None):
        """The same γ on every CPU: the exponential is the C library's (``math.exp``), not
        numpy's ``np.exp``, which on an AVX-512 CPU runs its own vector code and can differ in
        the last bit, so that one seed drew two sets of γ and two dataset digests."""
        u = rng.uniform(0.0, math.log(self.high / self.low), size)
        if np.ndim(u) == 0:
            return self.low * math.exp(u)
        return self.low * np.array([math.exp(x) for x in u.ravel()]).reshape(u.shape)

    def normalize(self, gamma):
        g = np.asarray(gamma, dtype=np.float64)
        return _scalar((np.log(g) - math.log(self.low))
                       / (math.log(self.high) - math.log(self.low)))

    def denormalize(self, t):
        t = np.asarray(t, dtype=np.float64)
        return _scalar(np.exp(math.log(self.low) + t * (math.log(self.high) - math.log(self.low))))


class Uniform(Law):
    """γ ~ U[low, high]."""

    def __new__(cls, low, high, domain=None, min_open: bool = False):
        return super().__new__(cls, "uniform", low, high, domain or (low, high), min_open)

    def _args(self) -> tuple:
        return (self.low, self.high, self.domain, self.min_open)

    def sample(self, rng, size=None):
        return rng.uniform(self.low, self.high, size)


class Integer(Law):
    """γ uniform over the integers low..high. ``integral``: non-integer γ is outside the domain
    (a JPEG quality); otherwise the operator accepts real γ and only training draws integers."""

    integral: bool

    def __new__(cls, low, high, domain=None, integral: bool = False):
        obj = super().__new__(cls, "integer", low, high, domain or (low, high))
        obj.integral = bool(integral)
        return obj

    def _args(self) -> tuple:
        return (self.low, self.high, self.domain, self.integral)

    def check_domain(self, g: float, *, what: str = "gamma") -> float:
        if self.integral and g != math.floor(g):
            raise ValueError(f"{what}={g:g} must be an integer (allowed: integers in "
                             f"{self._domain_text()})")
        return super().check_domain(g, what=what)

    def sample(self, rng, size=None):
        out = rng.integers(int(self.low), int(self.high) + 1, size)
        return float(out) if np.ndim(out) == 0 else out.astype(np.float64)

    def grid(self, n: int) -> np.ndarray:
        """Up to ``n`` distinct integers spread over the range (all of them if ``n`` is larger)."""
        g = np.floor(np.linspace(self.low, self.high, _count(n)) + 0.5)
        return np.unique(g)


class Discrete(Law):
    """γ uniform over a fixed set of values (the SR scales {2, 3, 4}); nothing else is allowed."""

    values: tuple[float, ...]

    def __new__(cls, values):
        vals = tuple(sorted(float(v) for v in values))
        if not vals:
            raise ValueError("a discrete law needs at least one value")
        obj = super().__new__(cls, "discrete", vals[0], vals[-1], (vals[0], vals[-1]))
        obj.values = vals
        return obj

    def _args(self) -> tuple:
        return (self.values,)

    def describe(self) -> str:
        return f"discrete, one of {{{', '.join(f'{v:g}' for v in self.values)}}}"

    def check_domain(self, g: float, *, what: str = "gamma") -> float:
        if g not in self.values:
            raise ValueError(f"{what}={g:g} is not allowed; use one of "
                             f"{', '.join(f'{v:g}' for v in self.values)}")
        return g

    def sample(self, rng, size=None):
        out = rng.choice(np.asarray(self.values), size)
        return float(out) if np.ndim(out) == 0 else out.astype(np.float64)

    def normalize(self, gamma):
        if self.high == self.low:
            return _scalar(np.zeros_like(np.asarray(gamma, dtype=np.float64)))
        return super().normalize(gamma)

    def grid(self, n: int) -> np.ndarray:
        """The values themselves (``n`` is only checked: the set is the grid)."""
        _count(n)
        return np.asarray(self.values)


class NoLaw(Law):
    """Fixed-effect operators: no γ at all (γ must be None)."""

    def __new__(cls):
        obj = str.__new__(cls, "none")
        obj.low = obj.high = math.nan
        obj.domain = (math.nan, math.nan)
        obj.min_open = False
        return obj

    def _args(self) -> tuple:
        return ()

    @property
    def range(self) -> tuple:
        return ()

    def describe(self) -> str:
        return "none (fixed effect)"

    def _refuse(self, *_a, **_k):
        raise ValueError("this operator has no parameter (a fixed-effect operator): it has no "
                         "γ law; pass gamma=None")

    check_domain = sample = normalize = denormalize = _refuse

    def in_range(self, g) -> bool:
        return False

    def grid(self, n: int) -> np.ndarray:
        _count(n)
        return np.empty(0)


#: The law of every fixed-effect operator.
NO_LAW = NoLaw()


# ---------------------------------------------------------------------------------- specs
#: Greek letter names as Unicode, for figure text (:attr:`OperatorSpec.gamma_text`)
_GREEK_TEXT = {"alpha": "α", "beta": "β", "gamma": "γ", "delta": "δ", "epsilon": "ε",
               "eta": "η", "theta": "θ", "kappa": "κ", "lambda": "λ", "mu": "μ", "nu": "ν",
               "pi": "π", "rho": "ρ", "sigma": "σ", "tau": "τ", "phi": "φ", "omega": "ω"}

@dataclass(frozen=True)
class OperatorSpec:
    """What the project knows about one operator. Calling the spec runs the operator.

    Attributes
    ----------
    name : short name used everywhere (``"l0"``...).
    title : human-readable name.
    paper : the paper the algorithm comes from, with DOI.
    kind : ``"filter"`` (pair = (image, f(image))) or ``"degradation"`` (pair = (d(image), clean)).
    channels : what it works on: ``"rgb"``; ``"y"`` (MATLAB's Y of YCbCr); ``"gray"`` (MATLAB's
        ``rgb2gray``); ``"lab"`` (L of MATLAB's Lab). Filters on y/gray/lab restore colour;
        degradations on y/gray make single-channel (HxW) pairs.
    gamma_name, gamma_meaning : the symbol of γ and what it controls ("" for fixed effect).
    law : a :class:`Law` (compares equal to its name: ``"log-uniform"``, ``"uniform"``,
        ``"integer"``, ``"discrete"`` or ``"none"``).
    test_gammas : the γ values of the paper's tables (() for fixed-effect operators).
    fixed : the fixed parameters (overridable per call).
    paper_norm : (offset, scale, shift) of the authors' map of γ into about [0.002, 0.2]:
        ``(γ - offset) * scale + shift``; None where the authors feed a constant (0.02).
    codes : the operator codes of the authors' joint models: ``"joint"`` (ECCV 10-op / 6-op
        model, TPAMI Table 3: L0 .1, WLS .2, RTV .3, RGF .4, WMF .5, shock/LLF .6, deblock .7,
        rain .8, SR .9, denoise 1.0), ``"realtime"`` (TPAMI §5 10-op model: L0 .1, WLS .2,
        RTV .3, LLF .4, LLF remap .5, WLS enh .6, style .7, pencil .8, RGF .9, WMF 1.0) and
        ``"restoration"`` (4-op model: deblock .1, rain .2, SR .3, denoise .4).
    random : whether the degradation draws random numbers (then ``seed`` makes it reproducible).
    """

    name: str
    title: str
    paper: str
    gamma_name: str
    gamma_meaning: str
    law: Law
    test_gammas: tuple[float, ...]
    fixed: Mapping[str, Any]
    paper_norm: tuple[float, float, float] | None
    _target: str = field(repr=False)  # "module:function", imported on first use
    kind: str = "filter"
    channels: str = "rgb"
    codes: Mapping[str, float] = field(default_factory=lambda: MappingProxyType({}))
    random: bool = False
    effective_note: str = ""
    _effective: str = field(default="", repr=False)  # "module:function" giving the used γ
    _pair: str = field(default="", repr=False)  # "module:function" returning (input, target)

    # ------------------------------------------------------------------ facts
    @property
    def gamma_range(self) -> tuple:
        """(low, high): the training range; () for fixed-effect operators."""
        return self.law.range

    @property
    def has_gamma(self) -> bool:
        return self.law != "none"

    @property
    def label(self) -> str:
        """The name figures print: the papers' capitals (``"L0"``, ``"WLS"``, ``"LLF_REMAP"``),
        so that ``l0`` never reads as ``I0`` in a sans-serif font."""
        return self.name.upper()

    @property
    def gamma_text(self) -> str:
        """γ's symbol as plain Unicode for figure text (``"λ"``, ``"σ_s"``, ``"r"``,
        ``"fact"``); ``""`` for a fixed-effect operator."""
        base, sep, sub = self.gamma_name.partition("_")
        return _GREEK_TEXT.get(base.lower(), base) + sep + sub

    @property
    def paper_code(self) -> float | None:
        """The code of the authors' joint models (see ``codes["joint"]``); None if not in them."""
        return self.codes.get("joint")

    @property
    def function(self) -> Callable[..., np.ndarray]:
        """The operator's public function (imported lazily so ``import operators`` stays cheap)."""
        return _resolve(self._target)

    # ------------------------------------------------------------------ γ
    def check_gamma(self, gamma, *, strict: bool = True, warn: bool = True):
        """γ as a float (None for fixed-effect operators), by the registry's γ policy.

        Outside the law's domain: always a ``ValueError``. Outside the training range: a
        ``ValueError`` unless ``strict=False``, then an :class:`ExtrapolationWarning` (unless
        ``warn=False``, for callers that warn themselves).
        """
        what = f"{self.name} {self.gamma_name}" if self.gamma_name else self.name
        if not self.has_gamma:
            if gamma is not None:
                raise ValueError(f"{self.name} has no parameter (a fixed-effect operator); "
                                 f"pass gamma=None, got {gamma!r}")
            return None
        if gamma is None:
            raise TypeError(f"{what}: a value is required ({self.gamma_meaning}; training "
                            f"range {self.law.describe()})")
        try:
            g = as_gamma(gamma, name=what)
        except ValueError as exc:  # NaN / inf: outside every domain
            raise ValueError(f"{exc}; allowed: {self.law.describe()}") from None
        self.law.check_domain(g, what=what)
        if not self.law.in_range(g):
            lo, hi = self.gamma_range
            msg = (f"{what}={g:g} is outside the trained range [{lo:g}, {hi:g}]")
            if strict:
                raise ValueError(msg + "; pass strict=False to extrapolate on purpose")
            if warn:
                warnings.warn(msg + " (extrapolating)", ExtrapolationWarning,
                              stacklevel=_caller_level())
        return g

    def _kwargs(self, overrides: dict, seed) -> dict:
        unknown = set(overrides) - set(self.fixed)
        if unknown:
            raise TypeError(
                f"{self.name}: unknown parameter(s) {sorted(unknown)}; fixed parameters are "
                f"{sorted(self.fixed) or 'none'}"
            )
        kw = {**self.fixed, **overrides}
        if self.random:
            kw["rng"] = np.random.default_rng(seed)
        return kw

    def __call__(self, image, gamma=None, *, strict: bool = True, seed=None,
                 **overrides) -> np.ndarray:
        """The operator's output (what the reference stores as ``output``); see :func:`apply`."""
        g = self.check_gamma(gamma, strict=strict)
        kw = self._kwargs(overrides, seed)
        if g is None:
            return self.function(image, **kw)
        return self.function(image, g, **kw)

    def pair(self, image, gamma=None, *, strict: bool = True, seed=None,
             **overrides) -> tuple[np.ndarray, np.ndarray]:
        """A training pair ``(input, target)``; see :func:`pair`."""
        g = self.check_gamma(gamma, strict=strict)
        kw = self._kwargs(overrides, seed)
        if self.kind == "degradation":
            return _resolve(self._pair)(image, g, **kw)
        x, was_2d = as_float_image(image)
        out = self.function(image, **kw) if g is None else self.function(image, g, **kw)
        return restore_shape(x, was_2d), out

    def effective_gamma(self, gamma) -> float:
        """The γ the operator really uses (WMF rounds its radius half up; others: γ itself)."""
        g = as_gamma(gamma)
        return float(_resolve(self._effective)(g)) if self._effective else g

    # ------------------------------------------------------------------ the law, delegated
    def sample(self, rng: np.random.Generator, size=None):
        """Draw training γ from the paper's law (Fan et al. ECCV 2018, Eq. 5)."""
        return self.law.sample(rng, size)

    def normalize(self, gamma):
        """Map γ to [0, 1] by its law: log scale for log-uniform laws, linear otherwise."""
        return self.law.normalize(gamma)

    def denormalize(self, t):
        """Inverse of :meth:`normalize`."""
        return self.law.denormalize(t)

    def grid(self, n: int) -> np.ndarray:
        """``n`` γ spread over the training range by the law (see :meth:`Law.grid`)."""
        return self.law.grid(n)

    def paper_normalize(self, gamma):
        """The authors' ad-hoc map of γ into about [0.002, 0.2] (train_6_filter_operator_model.py).

        The restorations' maps are those of the authors' single-operator restoration models (SR
        (s−2)·0.099+0.002, denoise (σ−10)·0.0033+0.002, deblock (q−10)·0.0198+0.002); their joint
        models disable a restoration's parameter (:mod:`model.data` feeds a constant there).
        Operators without a map (fixed-effect ones, and rain) get the constant 0.02.
        """
        if self.paper_norm is None:
            g = np.asarray(0.0 if gamma is None else gamma, dtype=np.float64)
            return _scalar(np.full_like(g, 0.02))
        offset, scale, shift = self.paper_norm
        out = (np.asarray(gamma, dtype=np.float64) - offset) * scale + shift
        return float(out) if out.ndim == 0 else out


def _caller_level() -> int:
    """``stacklevel`` pointing at the first frame outside this package (the user's call)."""
    here = os.path.dirname(os.path.abspath(__file__))
    frame, level = sys._getframe(1), 1
    while frame is not None and os.path.dirname(os.path.abspath(frame.f_code.co_filename)) == here:
        frame, level = frame.f_back, level + 1
    return level


def _resolve(target: str) -> Callable:
    """``"module:function"`` inside this package, imported on first use."""
    module, func = target.split(":")
    return getattr(importlib.import_module(f"{__name__}.{module}"), func)


_JOINT = {"l0": 0.1, "wls": 0.2, "rtv": 0.3, "rgf": 0.4, "wmf": 0.5, "shock": 0.6, "llf": 0.6,
          "jpeg": 0.7, "rain": 0.8, "sr": 0.9, "denoise": 1.0}
_REALTIME = {"l0": 0.1, "wls": 0.2, "rtv": 0.3, "llf": 0.4, "llf_remap": 0.5, "wls_enhance": 0.6,
             "style": 0.7, "pencil": 0.8, "rgf": 0.9, "wmf": 1.0}
_RESTORATION = {"jpeg": 0.1, "rain": 0.2, "sr": 0.3, "denoise": 0.4}


def _spec(**kw) -> OperatorSpec:
    name = kw["name"]
    kw["fixed"] = MappingProxyType(dict(kw["fixed"]))
    kw.setdefault("gamma_name", "")
    kw.setdefault("gamma_meaning", "")
    kw.setdefault("test_gammas", ())
    kw.setdefault("paper_norm", None)
    kw["test_gammas"] = tuple(float(g) for g in kw["test_gammas"])
    codes = {k: t[name] for k, t in (("joint", _JOINT), ("realtime", _REALTIME),
                                       ("restoration", _RESTORATION)) if name in t}
    kw["codes"] = MappingProxyType(codes)
    assert kw.get("kind", "filter") in KINDS and kw.get("channels", "rgb") in CHANNELS
    return OperatorSpec(**kw)


# Domain bounds: log laws accept (0, 1000·high] (three decades beyond the training range; above
# that the smoothers' linear systems lose all precision or the loops never run); spatial scales
# (RGF's sigma_s, WMF's radius) up to 100 pixels.
_SPECS: dict[str, OperatorSpec] = {
    s.name: s
    for s in (
        _spec(
            name="l0", title="L0 gradient smoothing",
            paper="L. Xu, C. Lu, Y. Xu, J. Jia. Image Smoothing via L0 Gradient Minimization. "
                  "ACM TOG 30(6) (SIGGRAPH Asia 2011). doi:10.1145/2070781.2024208",
            gamma_name="lambda", gamma_meaning="weight of the L0 gradient penalty",
            law=LogUniform(0.002, 0.2, (0.0, 200.0)),
            test_gammas=(0.002, 0.00431, 0.02, 0.09283, 0.2),
            fixed={"kappa": 2.0}, paper_norm=(0.0, 1.0, 0.0), _target="l0:l0_smooth",
        ),
        _spec(
            name="wls", title="Weighted least squares smoothing",
            paper="Z. Farbman, R. Fattal, D. Lischinski, R. Szeliski. Edge-Preserving "
                  "Decompositions for Multi-Scale Tone and Detail Manipulation. ACM TOG 27(3) "
                  "(SIGGRAPH 2008). doi:10.1145/1360612.1360666",
            gamma_name="lambda", gamma_meaning="smoothness weight",
            law=LogUniform(0.1, 10.0, (0.0, 1e4)),
            test_gammas=(0.1, 0.21544, 1.0, 4.64159, 10.0),
            fixed={"alpha": 1.2}, paper_norm=(0.0, 1.0 / 50.0, 0.0), _target="wls:wls_filter",
        ),
        _spec(
            name="rtv", title="Relative total variation",
            paper="L. Xu, Q. Yan, Y. Xia, J. Jia. Structure Extraction from Texture via Relative "
                  "Total Variation. ACM TOG 31(6) (SIGGRAPH Asia 2012). "
                  "doi:10.1145/2366145.2366158",
            gamma_name="lambda", gamma_meaning="smoothness weight (halved internally)",
            law=LogUniform(0.002, 0.05, (0.0, 50.0)),
            test_gammas=(0.002, 0.00447, 0.01, 0.02236, 0.05),
            fixed={"sigma": 3.0, "sharpness": 0.02, "max_iter": 4, "solver": "pcg"},
            paper_norm=(0.002, 4.125, 0.002), _target="rtv:rtv_smooth",
        ),
        _spec(
            name="rgf", title="Rolling guidance filter",
            paper="Q. Zhang, X. Shen, L. Xu, J. Jia. Rolling Guidance Filter. ECCV 2014. "
                  "doi:10.1007/978-3-319-10578-9_53",
            gamma_name="sigma_s", gamma_meaning="spatial scale of the structures removed (pixels)",
            law=Uniform(1.0, 10.0, (0.0, 100.0), min_open=True),
            test_gammas=(1.0, 3.25, 5.5, 7.75, 10.0),
            fixed={"sigma_r": 0.05, "iterations": 4}, paper_norm=(1.0, 0.022, 0.002),
            _target="rgf:rolling_guidance",
        ),
        _spec(
            name="wmf", title="Weighted median filter",
            paper="Q. Zhang, L. Xu, J. Jia. 100+ Times Faster Weighted Median Filter (WMF). "
                  "CVPR 2014. doi:10.1109/CVPR.2014.362",
            gamma_name="r", gamma_meaning="window radius (rounded half up to an integer)",
            law=Uniform(1.0, 10.0, (0.5, 100.0)),
            test_gammas=(1.0, 3.25, 5.5, 7.75, 10.0),
            fixed={"sigma": 25.5}, paper_norm=(1.0, 0.022, 0.002),
            _target="wmf:weighted_median", _effective="wmf:effective_radius",
            effective_note="integer radius floor(r + 0.5)",
        ),
        _spec(
            name="llf", title="Fast local Laplacian filter", channels="gray",
            paper="M. Aubry, S. Paris, S. W. Hasinoff, J. Kautz, F. Durand. Fast Local Laplacian "
                  "Filters: Theory and Applications. ACM TOG 33(5), 2014. doi:10.1145/2629645",
            gamma_name="fact", gamma_meaning="detail enhancement factor",
            law=Integer(2.0, 8.0, (0.0, 100.0)),
            test_gammas=(2.0, 3.0, 5.0, 7.0, 8.0),
            fixed={"sigma": 0.1, "n_samples": 10}, paper_norm=(2.0, 0.033, 0.002),
            _target="llf:local_laplacian",
        ),
        # ---- fixed-effect filters (ECCV 6-filter model; TPAMI Table 6)
        _spec(
            name="shock", title="Shock filter (Osher-Rudin)", channels="y", law=NO_LAW,
            paper="S. Osher, L. I. Rudin. Feature-Oriented Image Enhancement Using Shock Filters. "
                  "SIAM J. Numer. Anal. 27(4), 1990. doi:10.1137/0727053",
            fixed={"iterations": 15, "dt": 0.1, "h": 1.0}, _target="shock:shock_filter",
        ),
        _spec(
            name="llf_remap", title="Fast local Laplacian filter, general remapping",
            channels="gray", law=NO_LAW,
            paper="M. Aubry, S. Paris, S. W. Hasinoff, J. Kautz, F. Durand. Fast Local Laplacian "
                  "Filters: Theory and Applications. ACM TOG 33(5), 2014. doi:10.1145/2629645",
            fixed={"n_samples": 20}, _target="llf_remap:llf_remap",
        ),
        _spec(
            name="wls_enhance", title="WLS multi-scale detail enhancement", channels="lab",
            law=NO_LAW,
            paper="Z. Farbman, R. Fattal, D. Lischinski, R. Szeliski. Edge-Preserving "
                  "Decompositions for Multi-Scale Tone and Detail Manipulation. ACM TOG 27(3) "
                  "(SIGGRAPH 2008). doi:10.1145/1360612.1360666",
            fixed={"lam0": 0.125, "lam1": 0.5, "alpha": 1.2, "saturation": 1.1},
            _target="wls_enhance:wls_enhance",
        ),
        _spec(
            name="style", title="Local Laplacian style transfer", channels="gray", law=NO_LAW,
            paper="M. Aubry, S. Paris, S. W. Hasinoff, J. Kautz, F. Durand. Fast Local Laplacian "
                  "Filters: Theory and Applications. ACM TOG 33(5), 2014. doi:10.1145/2629645",
            fixed={"exemplar": None, "n_samples": 20, "iterations": 3},
            _target="style:style_transfer",
        ),
        _spec(
            name="pencil", title="Colour pencil drawing", channels="y", law=NO_LAW,
            paper="C. Lu, L. Xu, J. Jia. Combining Sketch and Tone for Pencil Drawing Production. "
                  "NPAR 2012. doi:10.2312/PE/NPAR/NPAR12/065-073",
            fixed={"texture": None, "kernel_size": 8, "stroke_width": 1, "directions": 8,
                   "gamma_s": 1.0, "gamma_i": 1.0},
            _target="pencil:pencil_drawing",
        ),
        # ---- restoration degradations (ECCV §4 / TPAMI §5, Table 2)
        _spec(
            name="sr", title="Super-resolution input (bicubic down/up, MATLAB imresize)",
            kind="degradation", channels="y",
            paper="C. Dong, C. C. Loy, K. He, X. Tang. Image Super-Resolution Using Deep "
                  "Convolutional Networks. IEEE TPAMI 38(2), 2016. doi:10.1109/TPAMI.2015.2439281",
            gamma_name="s", gamma_meaning="scale factor (shrink by 1/s, enlarge back)",
            law=Discrete((2, 3, 4)), test_gammas=(2.0, 3.0, 4.0),
            fixed={}, paper_norm=(2.0, 0.099, 0.002), _target="sr:sr_degrade", _pair="sr:sr_pair",
        ),
        _spec(
            name="denoise", title="Denoising input (additive Gaussian noise, 8-bit)",
            kind="degradation", channels="gray", random=True,
            paper="K. Zhang, W. Zuo, Y. Chen, D. Meng, L. Zhang. Beyond a Gaussian Denoiser: "
                  "Residual Learning of Deep CNN for Image Denoising. IEEE TIP 26(7), 2017. "
                  "doi:10.1109/TIP.2017.2662206",
            gamma_name="sigma", gamma_meaning="noise standard deviation on the 0..255 scale",
            law=Uniform(10.0, 70.0, (0.0, 1000.0)), test_gammas=(15.0, 25.0, 50.0),
            fixed={"quantize": True}, paper_norm=(10.0, 0.0033, 0.002),
            _target="denoise:denoise_degrade",
            _pair="denoise:denoise_pair",
        ),
        _spec(
            name="jpeg", title="JPEG deblocking input (libjpeg round trip of the luma)",
            kind="degradation", channels="y",
            paper="C. Dong, Y. Deng, C. C. Loy, X. Tang. Compression Artifacts Reduction by a "
                  "Deep Convolutional Network. ICCV 2015. doi:10.1109/ICCV.2015.73",
            gamma_name="q", gamma_meaning="JPEG quality (integer, libjpeg scale)",
            law=Integer(10.0, 20.0, (1.0, 100.0), integral=True), test_gammas=(10.0, 20.0),
            fixed={}, paper_norm=(10.0, 0.0198, 0.002), _target="jpeg:jpeg_degrade", _pair="jpeg:jpeg_pair",
        ),
        _spec(
            name="rain", title="Rain streaks (procedural Photoshop-style synthesis)",
            kind="degradation", channels="rgb", random=True,
            paper="X. Fu, J. Huang, D. Zeng, Y. Huang, X. Ding, J. Paisley. Removing Rain from "
                  "Single Images via a Deep Detail Network. CVPR 2017. "
                  "doi:10.1109/CVPR.2017.186 (data set recipe; synthesis here is procedural)",
            gamma_name="density", gamma_meaning="percent of pixels seeding a rain streak",
            law=LogUniform(0.2, 2.0, (0.0, 50.0)),
            test_gammas=(0.2, 0.29208, 0.63246, 1.36951, 2.0),
            fixed={"brightness": 0.9}, _target="rain:add_rain", _pair="rain:rain_pair",
        ),
    )
}

#: The six parameterized filters of the paper's Table 1, in the paper's order (what every
#: single-operator experiment iterates over). Every registered operator: :data:`ALL`.
NAMES: tuple[str, ...] = ("l0", "wls", "rtv", "rgf", "wmf", "llf")

#: Every registered operator: the six filters, the fixed-effect filters, the degradations.
ALL: tuple[str, ...] = tuple(_SPECS)

#: Named groups of operators (see :func:`resolve`).
GROUPS: Mapping[str, tuple[str, ...]] = MappingProxyType({
    g: tuple(n for n in names if n in _SPECS)
    for g, names in {
        "filters": NAMES,
        "eccv6": ("l0", "wls", "rtv", "rgf", "wmf", "shock"),
        "tpami10": ("l0", "wls", "rtv", "rgf", "wmf", "llf", "llf_remap", "wls_enhance", "style",
                    "pencil"),
        "restoration": ("sr", "denoise", "jpeg", "rain"),
        "all": ALL,
    }.items()
})


def get(name: str) -> OperatorSpec:
    """The spec of operator ``name`` (case-insensitive; see :class:`OperatorSpec`)."""
    if not isinstance(name, str):
        raise TypeError(f"operator name must be a string, got {type(name).__name__}")
    try:
        return _SPECS[name.strip().lower()]
    except KeyError:
        raise ValueError(f"unknown operator {name!r}; known: {', '.join(ALL)}") from None


def specs() -> tuple[OperatorSpec, ...]:
    """The specs of :data:`NAMES` (the six filters), in order; ``ALL`` for every operator."""
    return tuple(_SPECS[n] for n in NAMES)


def resolve(names_or_groups) -> tuple[str, ...]:
    """Operator names from names and/or group names, case-insensitive, de-duplicated in order.

    Accepts one string (a name, a group, or a comma-separated list of them) or an iterable of
    strings. Unknown entries raise a ``ValueError`` listing the operators and groups allowed.
    """
    if isinstance(names_or_groups, str):
        items = names_or_groups.split(",")
    else:
        try:
            items = list(names_or_groups)
        except TypeError:
            raise TypeError("operators: give a name, a group or a list of them, got "
                            f"{type(names_or_groups).__name__}") from None
    out: list[str] = []
    for item in items:
        if not isinstance(item, str):
            raise TypeError(f"operator names must be strings, got {item!r}")
        key = item.strip().lower()
        if not key:
            continue
        if key in GROUPS:
            new = GROUPS[key]
        elif key in _SPECS:
            new = (key,)
        else:
            raise ValueError(f"unknown operator or group {item!r}; operators: {', '.join(ALL)}; "
                             f"groups: {', '.join(GROUPS)}")
        out += [n for n in new if n not in out]
    if not out:
        raise ValueError(f"no operator given; operators: {', '.join(ALL)}; groups: "
                         f"{', '.join(GROUPS)}")
    return tuple(out)


def apply(name: str, image, gamma=None, *, strict: bool = True, seed=None,
          **fixed_overrides) -> np.ndarray:
    """Run operator ``name`` on ``image`` at parameter ``gamma``.

    ``image`` is HxWx3 (or HxW) uint8, or float in [0, 1]. Returns float64, **unclipped**,
    exactly what the authors' MATLAB code has before ``imwrite`` (the reference's ``output``): the
    filtered image for a filter (same layout), the degraded image for a degradation (HxW luma for
    ``sr``/``jpeg``, HxW gray for ``denoise``). ``gamma`` must be None for fixed-effect operators.
    γ outside the training range raises unless ``strict=False`` (then an
    :class:`ExtrapolationWarning`); outside the law's domain it always raises. ``seed`` makes a
    random degradation reproducible (ignored by deterministic operators).
    """
    return get(name)(image, gamma, strict=strict, seed=seed, **fixed_overrides)


def pair(name: str, image, gamma=None, *, seed=None, strict: bool = True,
         **fixed_overrides) -> tuple[np.ndarray, np.ndarray]:
    """A training pair ``(input, target)`` of operator ``name``, float64.

    A filter gives ``(image, f(image))`` (the image as float64 in [0, 1]); a degradation gives
    ``(d(image), clean)`` in the operator's channels: ``sr`` (degraded Y, modcropped Y),
    ``jpeg`` (decoded Y, Y), ``denoise`` (noisy gray, gray, both 8-bit quantised), ``rain``
    (rainy RGB, RGB). For a random degradation the same ``seed`` gives the same pair.
    """
    return get(name).pair(image, gamma, seed=seed, strict=strict, **fixed_overrides)
