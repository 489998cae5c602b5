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
    # extrapolation is allowed when asked for explicitly, with a warning
    with pytest.warns(operators.ExtrapolationWarning, match="outside the trained range"):
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


THREADS = 8  # more Numba threads than any CI runner's cores, so the test means something on 1 core
_THREAD_SCRIPT = """
import json, sys
import numba, numpy as np, operators
img = np.random.default_rng(1234).integers(0, 256, (67, 45, 3), dtype=np.uint8)
res = {"max_threads": numba.config.NUMBA_NUM_THREADS}
for name in sys.argv[1:]:
    gs = operators.get(name).test_gammas
    g = gs[min(3, len(gs) - 1)] if gs else None  # the fixed-effect operators take none
    outs = {}
    for n in (1, 3, numba.config.NUMBA_NUM_THREADS):
        numba.set_num_threads(n)
        outs[n] = operators.apply(name, img, g, seed=5).tobytes()
    res[name] = {"same": len(set(outs.values())) == 1, "threads": sorted(outs)}
res["layer"] = numba.threading_layer()
print(json.dumps(res))
"""


@pytest.fixture(scope="module")
def thread_runs() -> dict:
    """Every operator (all fifteen) at 1, 3 and 8 Numba threads, in a child process started
    with NUMBA_NUM_THREADS=8 (the thread count is fixed when Numba starts)."""
    import json
    import os
    import subprocess
    import sys
    from pathlib import Path

    repo = Path(__file__).resolve().parents[1]
    env = {**os.environ, "NUMBA_NUM_THREADS": str(THREADS),
           "PYTHONPATH": os.pathsep.join([str(repo), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run([sys.executable, "-c", _THREAD_SCRIPT, *operators.ALL], cwd=repo,
                          env=env,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("name", operators.ALL)
def test_thread_count_does_not_change_results(name, thread_runs):
    """Datasets must not depend on how many threads or workers made them: 1, 3 and 8 Numba
    threads give bit-identical outputs (on a 67x45 image, so chunks split unevenly), for every
    one of the fifteen operators (the random degradations with one seed)."""
    assert thread_runs["max_threads"] == THREADS
    assert thread_runs[name]["threads"] == [1, 3, THREADS]
    assert thread_runs[name]["same"], f"{name}: outputs differ between 1, 3 and {THREADS} threads"


# ------------------------------------------------------------------ laws, policy, pairs, groups
import pickle  # noqa: E402
import warnings  # noqa: E402

NEW = {  # name: (kind, channels, law, range, test γ, joint-model code)
    "shock": ("filter", "y", "none", (), (), 0.6),
    "sr": ("degradation", "y", "discrete", (2.0, 4.0), (2, 3, 4), 0.9),
    "denoise": ("degradation", "gray", "uniform", (10.0, 70.0), (15, 25, 50), 1.0),
    "jpeg": ("degradation", "y", "integer", (10.0, 20.0), (10, 20), 0.7),
    "rain": ("degradation", "rgb", "log-uniform", (0.2, 2.0), (0.2, 0.29208, 0.63246, 1.36951, 2),
             0.8),
}
FIXED_EFFECT = ("shock", "llf_remap", "wls_enhance", "style", "pencil")


def test_new_specs():
    for name, (kind, ch, law, rng_, tests, code) in NEW.items():
        s = operators.get(name)
        assert (s.kind, s.channels, s.law, s.gamma_range) == (kind, ch, law, rng_)
        assert s.test_gammas == pytest.approx(tests) and s.paper_code == code
        assert "doi:" in s.paper and callable(s.function)
    codes = {n: operators.get(n).paper_code for n in ("l0", "wls", "rtv", "rgf", "wmf", "llf")}
    assert codes == {"l0": .1, "wls": .2, "rtv": .3, "rgf": .4, "wmf": .5, "llf": .6}
    assert operators.get("pencil").codes["realtime"] == 0.8
    assert operators.get("jpeg").codes["restoration"] == 0.1
    for s in map(operators.get, operators.ALL):
        assert s.kind in ("filter", "degradation") and s.channels in ("rgb", "y", "gray", "lab")
        lo_hi = s.gamma_range
        assert all(s.law.in_range(g) for g in s.test_gammas) and (s.has_gamma == bool(lo_hi))


def test_fixed_effect_specs_call_the_function_with_its_defaults():
    import inspect
    assert set(FIXED_EFFECT) <= set(operators.ALL)
    for name in FIXED_EFFECT:
        s = operators.get(name)
        assert s.law == "none" and s.law is operators.NO_LAW and s.kind == "filter"
        params = inspect.signature(s.function).parameters
        defaults = {k: p.default for k, p in params.items() if p.kind is p.KEYWORD_ONLY}
        assert dict(s.fixed) == defaults


def test_log_uniform_draws_are_the_c_librarys_exponential():
    """γ = low·exp(u) with the C library's exp, bit for bit: numpy's vector exp on an AVX-512
    CPU differs in the last bit, which gave one seed two sets of γ and two dataset digests."""
    lg = operators.LogUniform(0.002, 0.2)
    u = np.random.default_rng(7).uniform(0.0, math.log(0.2 / 0.002), (40, 3))
    want = np.array([[0.002 * math.exp(x) for x in row] for row in u])
    got = lg.sample(np.random.default_rng(7), (40, 3))
    assert got.shape == (40, 3) and got.dtype == np.float64
    assert got.tobytes() == want.tobytes()
    one = lg.sample(np.random.default_rng(7))
    assert isinstance(one, float) and one == want[0, 0]
    assert lg.sample(np.random.default_rng(7), 0).shape == (0,)


def test_law_objects():
    lg = operators.LogUniform(0.01, 1.0)
    assert lg == "log-uniform" and lg.name == "log-uniform" and isinstance(lg, str)
    np.testing.assert_allclose(lg.grid(3), [0.01, 0.1, 1.0])
    assert lg.normalize(0.1) == pytest.approx(0.5)
    un = operators.Uniform(1.0, 3.0, (0.0, 10.0))
    np.testing.assert_allclose(un.grid(3), [1, 2, 3])
    it = operators.Integer(2, 8)
    np.testing.assert_array_equal(it.grid(4), [2, 4, 6, 8])
    np.testing.assert_array_equal(it.grid(50), np.arange(2, 9))
    assert it.sample(np.random.default_rng(0)) in range(2, 9)
    ds = operators.Discrete((4, 2, 3))
    assert ds.values == (2.0, 3.0, 4.0) and ds.grid(7).tolist() == [2.0, 3.0, 4.0]
    assert set(ds.sample(np.random.default_rng(0), 300)) == {2.0, 3.0, 4.0}
    assert ds.normalize(3) == 0.5
    assert operators.NO_LAW == "none" and operators.NO_LAW.grid(5).size == 0
    with pytest.raises(ValueError, match="no parameter"):
        operators.NO_LAW.sample(np.random.default_rng(0))
    with pytest.raises(ValueError, match="grid size"):
        lg.grid(0)
    with pytest.raises(ValueError, match="inside"):
        operators.Uniform(1.0, 3.0, (2.0, 10.0))
    for law in (lg, un, it, ds, operators.NO_LAW, operators.get("jpeg").law):
        back = pickle.loads(pickle.dumps(law))
        assert type(back) is type(law) and back == law and repr(back) == repr(law)
    assert pickle.loads(pickle.dumps(operators.get("jpeg").law)).integral


@pytest.mark.parametrize("name", ["wls", "rtv", "wmf", "rgf", "l0", "llf", "denoise", "rain"])
def test_huge_gamma_is_refused_up_front(name):
    img = np.full((6, 6, 3), 0.5)
    with pytest.raises(ValueError, match="outside the operator's domain"):
        operators.apply(name, img, 1e300, strict=False)


@pytest.mark.parametrize("name,bad", [("l0", 0.0), ("wls", -1.0), ("rtv", 0.0), ("rain", -0.5),
                                      ("rgf", 0.0), ("wmf", 0.2), ("jpeg", 15.5), ("sr", 2.5)])
def test_gamma_outside_the_domain_is_refused_strict_or_not(name, bad):
    img = np.full((12, 12, 3), 0.5)
    for strict in (True, False):
        with pytest.raises(ValueError) as info:
            operators.apply(name, img, bad, strict=strict)
        assert "--" not in str(info.value)  # no CLI wording in the Python API


def test_extrapolation_policy_is_the_same_everywhere():
    s = operators.get("l0")
    with pytest.raises(ValueError, match="pass strict=False"):
        s.check_gamma(0.5)
    with pytest.warns(operators.ExtrapolationWarning) as rec:
        assert s.check_gamma(0.5, strict=False) == 0.5
    assert rec[0].filename == __file__  # the warning points at the caller
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert s.check_gamma(0.5, strict=False, warn=False) == 0.5
        assert s.check_gamma(0.02) == 0.02
    assert issubclass(operators.ExtrapolationWarning, UserWarning)


def test_fixed_effect_operators_take_no_gamma():
    img = np.full((8, 8, 3), 0.5)
    with pytest.raises(ValueError, match="shock has no parameter"):
        operators.apply("shock", img, 0.02)
    assert operators.get("shock").check_gamma(None) is None
    with pytest.raises(TypeError, match="value is required"):
        operators.apply("l0", img, None)


def test_pair_kinds():
    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, (16, 20, 3), dtype=np.uint8)
    x, y = operators.pair("l0", img, 0.02)
    np.testing.assert_array_equal(x, img / 255.0)
    np.testing.assert_array_equal(y, operators.apply("l0", img, 0.02))
    g = img[:, :, 0]
    x, y = operators.pair("wls", g, 1.0)
    assert x.shape == y.shape == (16, 20)
    for name, gamma in (("sr", 2), ("jpeg", 10), ("denoise", 25), ("rain", 1.0)):
        inp, tgt = operators.pair(name, img, gamma, seed=4)
        np.testing.assert_array_equal(inp, operators.apply(name, img, gamma, seed=4))
        assert inp.shape == tgt.shape
        assert inp.ndim == (3 if operators.get(name).channels == "rgb" else 2)
        assert not np.array_equal(inp, tgt)


def test_groups_and_resolve():
    G = operators.GROUPS
    assert G["filters"] == operators.NAMES
    assert G["restoration"] == ("sr", "denoise", "jpeg", "rain")
    assert G["all"] == operators.ALL and set(operators.NAMES) < set(operators.ALL)
    assert G["eccv6"] == ("l0", "wls", "rtv", "rgf", "wmf", "shock")
    assert G["tpami10"][:6] == ("l0", "wls", "rtv", "rgf", "wmf", "llf")
    assert operators.resolve("RESTORATION") == G["restoration"]
    assert operators.resolve(["L0", "filters", "sr"]) == operators.NAMES + ("sr",)
    assert operators.resolve("wls, jpeg") == ("wls", "jpeg")
    with pytest.raises(ValueError, match="groups: filters, eccv6"):
        operators.resolve("bogus")
    with pytest.raises(ValueError, match="no operator"):
        operators.resolve([])
    with pytest.raises(TypeError):
        operators.resolve(3)


@pytest.mark.parametrize("name, gamma, expected", [
    ("sr", 3.0, 0.101), ("denoise", 25.0, 0.0515), ("jpeg", 20.0, 0.2), ("l0", 0.02, 0.02),
    ("wls", 1.0, 0.02), ("rain", 0.5, 0.02), ("shock", None, 0.02)])
def test_paper_normalisation_of_the_authors_code(name, gamma, expected):
    """paper.md §2: SR (s−2)·0.099+0.002, denoise (σ−10)·0.0033+0.002, deblock (q−10)·0.0198+0.002,
    L0 λ as is, WLS λ/50; no map (rain, fixed-effect operators): the constant 0.02."""
    assert operators.get(name).paper_normalize(gamma) == pytest.approx(expected, abs=1e-15)


def test_figure_text_names_operators_in_capitals_and_gamma_in_greek():
    """Figures print ``L0`` (``l0`` reads as ``I0``) and ``λ=`` (not ``lambda=``), as the paper."""
    assert operators.get("l0").label == "L0"
    assert operators.get("wls_enhance").label == "WLS_ENHANCE"
    assert operators.get("l0").gamma_text == "λ"
    assert operators.get("rgf").gamma_text == "σ_s"
    assert operators.get("denoise").gamma_text == "σ"
    assert operators.get("wmf").gamma_text == "r"
    assert operators.get("llf").gamma_text == "fact"
    assert operators.get("shock").gamma_text == ""
    for name in operators.GROUPS["all"]:
        assert "lambda" not in operators.get(name).gamma_text
