"""The registry, input validation and MATLAB conversions shared by every operator."""
from __future__ import annotations

import math

import numpy as np
import pytest

import operators

TABLE = {  # name: (range, law, test γ) as stated in the operators issue / the paper
    "l0": ((0.002, 0.2), "log-uniform", (0.002, 0.00431, 0.02, 0.09283, 0.2)),
    "wls": ((0.1, 10.0), "log-uniform", (0.1, 0.21544, 1, 4.64159, 10)),
    "rtv": ((0.002, 0.05), "log-uniform", (0.002, 0.00447, 0.01, 0.02236, 0.05)),
    "rgf": ((1.0, 10.0), "uniform", (1, 3.25, 5.5, 7.75, 10)),
    "wmf": ((1.0, 10.0), "uniform", (1, 3.25, 5.5, 7.75, 10)),
    "llf": ((2.0, 8.0), "integer", (2, 3, 5, 7, 8)),
}


def test_names_and_specs():
    assert operators.NAMES == ("l0", "wls", "rtv", "rgf", "wmf", "llf")
    for name, (rng_, law, tests) in TABLE.items():
        s = operators.get(name)
        assert s.gamma_range == rng_ and s.law == law
        assert s.test_gammas == pytest.approx(tests)
        assert "doi:" in s.paper
        assert callable(s.function)
    assert operators.get("L0") is operators.get("l0")


def test_unknown_operator():
    with pytest.raises(ValueError, match="unknown operator 'foo'"):
        operators.get("foo")
    with pytest.raises(TypeError):
        operators.get(3)


def test_to_uint8_matlab_rounding():
    x = np.array([-0.1, 0.0, 0.5 / 255, 1.5 / 255, 2.5 / 255, 0.5, 1.0, 1.7])
    np.testing.assert_array_equal(operators.to_uint8(x), [0, 0, 1, 2, 3, 128, 255, 255])
    with pytest.raises(ValueError, match="NaN"):
        operators.to_uint8(np.array([np.nan]))
    u = np.array([3, 4], np.uint8)
    assert operators.to_uint8(u).tolist() == [3, 4]


@pytest.mark.parametrize("name", list(TABLE))
def test_sampling_law_and_normalisation(name):
    s = operators.get(name)
    lo, hi = s.gamma_range
    g = s.sample(np.random.default_rng(0), 20000)
    assert g.min() >= lo and g.max() <= hi
    t = s.normalize(g)
    assert t.min() >= 0 and t.max() <= 1
    np.testing.assert_allclose(s.denormalize(t), g, rtol=1e-12)
    if s.law == "log-uniform":  # uniform in log space: the median is the geometric mean
        assert np.median(g) == pytest.approx(math.sqrt(lo * hi), rel=0.05)
    elif s.law == "integer":
        assert set(np.unique(g)) == set(range(int(lo), int(hi) + 1))
    else:
        assert np.median(g) == pytest.approx((lo + hi) / 2, rel=0.05)
    # the authors' map lands in about [0.002, 0.2]
    assert 0.0019 <= s.paper_normalize(lo) <= s.paper_normalize(hi) <= 0.2005


def test_sampling_is_deterministic():
    s = operators.get("l0")
    a = s.sample(np.random.default_rng(7), 5)
    b = s.sample(np.random.default_rng(7), 5)
    np.testing.assert_array_equal(a, b)


def test_wmf_effective_radius_rounds_half_up():
    s = operators.get("wmf")
    assert [s.effective_gamma(r) for r in (1.0, 1.49, 1.5, 2.5, 3.25, 9.5, 10.0)] == [
        1, 1, 2, 3, 3, 10, 10]
    assert operators.get("l0").effective_gamma(0.02) == 0.02


BAD_IMAGES = [
    (np.zeros((4, 4, 2), np.uint8), ValueError, "HxW"),
    (np.zeros((4, 4, 3, 1), np.uint8), ValueError, "HxW"),
    (np.zeros(16, np.uint8), ValueError, "HxW"),
    (np.zeros((0, 4, 3), np.uint8), ValueError, "empty"),
    (np.zeros((1, 1, 3), np.uint8), ValueError, "2x2"),
    (np.zeros((1, 9), np.uint8), ValueError, "2x2"),
    (np.full((4, 4, 3), np.nan), ValueError, "NaN"),
    (np.full((4, 4, 3), np.inf, np.float32), ValueError, "NaN or infinite"),
    (np.full((4, 4, 3), 2.0), ValueError, r"\[0, 1\]"),
    (np.full((4, 4, 3), -0.5), ValueError, r"\[0, 1\]"),
    (np.zeros((4, 4, 3), np.uint16), TypeError, "dtype"),
    (np.zeros((4, 4, 3), np.int64), TypeError, "dtype"),
    (np.zeros((4, 4, 3), bool), TypeError, "dtype"),
    (np.zeros((4, 4, 3), complex), TypeError, "dtype"),
    ("image.png", TypeError, "numpy array"),
    (None, TypeError, "numpy array"),
]


@pytest.mark.parametrize("name", list(TABLE))
@pytest.mark.parametrize("image,exc,match", BAD_IMAGES,
                         ids=[f"bad{i}" for i in range(len(BAD_IMAGES))])
def test_bad_images_raise_clear_errors(name, image, exc, match):
    with pytest.raises(exc, match=match):
        operators.apply(name, image, operators.get(name).test_gammas[2])


@pytest.mark.parametrize("name", list(TABLE))
def test_gamma_checks(name):
    s = operators.get(name)
    img = np.full((6, 6, 3), 0.5)
    lo, hi = s.gamma_range
    with pytest.raises(ValueError, match="strict=False"):
        operators.apply(name, img, hi * 1.5)
    with pytest.raises(ValueError, match="finite"):
        operators.apply(name, img, float("nan"))
    with pytest.raises(TypeError, match="real number"):
        operators.apply(name, img, "0.1")
    with pytest.raises(TypeError, match="unknown parameter"):
        operators.apply(name, img, lo, bogus=1)
    # extrapolation is allowed when asked for explicitly
    out = operators.apply(name, img, hi * 1.2, strict=False)
    assert out.shape == img.shape and np.isfinite(out).all()


@pytest.mark.parametrize("name", list(TABLE))
@pytest.mark.parametrize("shape", [(2, 2, 3), (2, 2), (5, 7, 3), (13, 11), (17, 2, 3), (31, 37, 1)])
def test_shapes_gray_odd_prime_tiny(name, shape, rng):
    img = rng.integers(0, 256, shape, dtype=np.uint8)
    s = operators.get(name)
    for g in (s.test_gammas[0], s.test_gammas[-1]):
        out = operators.apply(name, img, g)
        assert out.shape == img.shape and out.dtype == np.float64
        assert np.isfinite(out).all()


@pytest.mark.parametrize("name", list(TABLE))
def test_deterministic_and_pure(name, rng):
    img = rng.integers(0, 256, (24, 30, 3), dtype=np.uint8)
    keep = img.copy()
    g = operators.get(name).test_gammas[2]
    a = operators.apply(name, img, g)
    b = operators.apply(name, img, g)
    assert a.tobytes() == b.tobytes()
    np.testing.assert_array_equal(img, keep)  # input untouched


@pytest.mark.parametrize("name", list(TABLE))
def test_uint8_and_float_inputs_agree(name, rng):
    img = rng.integers(0, 256, (16, 20, 3), dtype=np.uint8)
    g = operators.get(name).test_gammas[1]
    a = operators.apply(name, img, g)
    for dt in (np.float64, np.float32):
        b = operators.apply(name, (img / 255.0).astype(dt), g)
        if dt is np.float64:
            np.testing.assert_allclose(a, b, atol=1e-9)
        else:  # float32 input is rounded before the operator sees it
            assert np.mean(operators.to_uint8(a) == operators.to_uint8(b)) > 0.99


@pytest.mark.parametrize("name", list(TABLE))
def test_thread_count_does_not_change_results(name, rng):
    """Datasets must not depend on how many threads or workers made them."""
    import numba

    img = rng.integers(0, 256, (67, 45, 3), dtype=np.uint8)
    g = operators.get(name).test_gammas[3]
    before = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        one = operators.apply(name, img, g)
        numba.set_num_threads(numba.config.NUMBA_NUM_THREADS)
        many = operators.apply(name, img, g)
    finally:
        numba.set_num_threads(before)
    assert one.tobytes() == many.tobytes()
