"""The registry's γ normalisation and sampling laws (operators.OperatorSpec.normalize, denormalize,
sample), against formulas written out here: what the γ code of every model and the training γ of
every dataset are made of."""
from __future__ import annotations

import math

import numpy as np
import pytest

import operators

LAWS = {  # name: (lo, hi, law), as in the paper (ECCV 2018 Eq. 5 and the supplementary)
    "l0": (0.002, 0.2, "log-uniform"), "wls": (0.1, 10.0, "log-uniform"),
    "rtv": (0.002, 0.05, "log-uniform"), "rgf": (1.0, 10.0, "uniform"),
    "wmf": (1.0, 10.0, "uniform"), "llf": (2.0, 8.0, "integer"),
}


#: every registered operator with a γ (the six filters, and those registered since, e.g. the
#: degradations; fixed-effect operators have the law "none" and no γ)
WITH_GAMMA = [n for n in getattr(operators, "ALL", operators.NAMES) if operators.get(n).law != "none"]


def position(g, lo, hi, law):
    """Where γ sits in its range by its law: on a log axis for log-uniform, linear otherwise."""
    if law == "log-uniform":
        return math.log(g / lo) / math.log(hi / lo)
    return (g - lo) / (hi - lo) if hi > lo else 0.0


def facts(name):
    spec = operators.get(name)
    lo, hi = spec.gamma_range
    if name in LAWS:
        assert (lo, hi, spec.law) == LAWS[name]
    return spec, lo, hi, str(spec.law)


def test_the_six_filters_are_covered():
    assert set(LAWS) <= set(WITH_GAMMA)


@pytest.mark.parametrize("name", WITH_GAMMA)
def test_normalize_is_the_position_in_the_range(name):
    spec, lo, hi, law = facts(name)
    points = [lo, hi, *spec.test_gammas, lo * 1.37, 0.5 * (lo + hi), hi * 2, lo / 3]
    for g in points:
        t = spec.normalize(g)
        assert isinstance(t, float)
        assert t == pytest.approx(position(g, lo, hi, law), rel=1e-12, abs=1e-12)
        back = spec.denormalize(t)
        assert isinstance(back, float) and back == pytest.approx(g, rel=1e-12)
    assert spec.normalize(lo) == pytest.approx(0.0, abs=1e-15)
    assert spec.normalize(hi) == pytest.approx(1.0, rel=1e-15)
    arr = np.array(points)
    t = spec.normalize(arr)
    assert isinstance(t, np.ndarray) and t.shape == arr.shape
    np.testing.assert_allclose(t, [position(g, lo, hi, law) for g in points], rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(spec.denormalize(t), arr, rtol=1e-12)
    np.testing.assert_allclose(spec.denormalize(np.linspace(0, 1, 5)),
                               [spec.denormalize(float(u)) for u in np.linspace(0, 1, 5)], rtol=1e-15)
    if law == "log-uniform":  # the middle of the code is the geometric middle of the range
        assert spec.denormalize(0.5) == pytest.approx(math.sqrt(lo * hi), rel=1e-12)
    else:
        assert spec.denormalize(0.5) == pytest.approx(0.5 * (lo + hi), rel=1e-12)


@pytest.mark.parametrize("name", WITH_GAMMA)
def test_sample_follows_the_law(name):
    spec, lo, hi, law = facts(name)
    g = spec.sample(np.random.default_rng(0), 4000)
    assert g.dtype == np.float64 and g.shape == (4000,)
    assert g.min() >= lo and g.max() <= hi
    if law in ("integer", "discrete"):
        values, counts = np.unique(g, return_counts=True)
        allowed = np.arange(lo, hi + 1) if law == "integer" else sorted(spec.law.values)
        np.testing.assert_array_equal(values, allowed)  # both ends included
        assert counts.min() > 0.8 * 4000 / len(values) and counts.max() < 1.2 * 4000 / len(values)
    else:
        u = np.sort([position(x, lo, hi, law) for x in g])  # uniform on [0, 1] under the law
        ks = np.max(np.abs(u - (np.arange(1, len(u) + 1) - 0.5) / len(u)))
        assert ks < 0.03, ks  # Kolmogorov-Smirnov distance; a wrong law is off by > 0.1
        assert u[0] < 0.002 and u[-1] > 0.998  # reaches both ends
    one = spec.sample(np.random.default_rng(0))
    assert np.ndim(one) == 0 and isinstance(one, float) and lo <= one <= hi
    again = spec.sample(np.random.default_rng(0), 4000)
    np.testing.assert_array_equal(g, again)  # a function of the generator's state only


def test_a_one_value_discrete_law_normalises_to_zero():
    discrete = getattr(operators, "Discrete", None)
    if discrete is None:
        pytest.skip("this registry has no discrete γ law")
    law = discrete((3,))
    assert law.normalize(3.0) == 0.0 and isinstance(law.normalize(3.0), float)
    np.testing.assert_array_equal(law.normalize(np.array([3.0, 3.0])), [0.0, 0.0])
    two = discrete((4, 2))
    assert two.normalize(3.0) == pytest.approx(0.5) and two.normalize(4.0) == pytest.approx(1.0)
