"""Value-level checks of the evaluation protocol (model/evaluate.py, model/metrics.py).

``evaluate``'s PSNR/SSIM and identity columns are recomputed here from the HDF5 file read with
h5py, the model applied image by image and metrics written out from their definitions; the
"third decimal at most" gap between scikit-image's SSIM (border excluded) and MATLAB's ``ssim``
(full map, replicated borders) is measured on natural 128x128 crops (issue 16, bug 2).
"""
from __future__ import annotations

import csv
import re

import cv2
import h5py
import numpy as np
import pytest
from scipy.ndimage import correlate

import model
import operators
from model.cli import main
from model.evaluate import evaluate
from model.metrics import one_channel, psnr, psnr1, rgb2gray, score, ssim, ssim1
from model.presets import get_preset
from model.train import train

TINY = get_preset("smoke").with_(width=4, dilations=(2,), crop=16, batch=2, iterations=2,
                                 log_every=1, ckpt_every=2)
GRAY = np.array([0.298936021293775, 0.587043074451121, 0.114020904255103])  # MATLAB rgb2gray


# ----------------------------------------------------------------- independent definitions
def ref_psnr(a, b) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return 100.0 if mse == 0 else min(100.0, 10 * np.log10(255.0 ** 2 / mse))


def ref_gray(rgb) -> np.ndarray:
    """MATLAB rgb2gray on uint8: weighted sum, rounded half away from zero."""
    return np.floor(rgb.astype(np.float64) @ GRAY + 0.5)


def gauss_window(sigma: float = 1.5, size: int = 11) -> np.ndarray:
    """fspecial('gaussian', 11, 1.5): MATLAB's ssim window (2*ceil(3σ)+1 = 11 taps), sum 1."""
    r = np.arange(size) - size // 2
    k = np.exp(-(r[:, None] ** 2 + r[None, :] ** 2) / (2 * sigma ** 2))
    return k / k.sum()


def ssim_map(a, b) -> np.ndarray:
    """Wang et al.'s SSIM map on gray uint8 images, K1 0.01, K2 0.03, L 255, population
    (co)variances, filtered as MATLAB's ssim.m does: imfilter(..., 'replicate'), same size."""
    x, y = ref_gray(a), ref_gray(b)
    w = gauss_window()
    f = lambda z: correlate(z, w, mode="nearest")  # noqa: E731  ('replicate', 'same')
    mx, my = f(x), f(y)
    sxx, syy, sxy = f(x * x) - mx ** 2, f(y * y) - my ** 2, f(x * y) - mx * my
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    return ((2 * mx * my + c1) * (2 * sxy + c2)) / ((mx ** 2 + my ** 2 + c1) * (sxx + syy + c2))


def ref_ssim(a, b) -> float:
    """The protocol's SSIM: the map's mean without the 5-pixel border the window leaves."""
    return float(ssim_map(a, b)[5:-5, 5:-5].mean())


def matlab_ssim(a, b) -> float:
    """MATLAB's ssim(): the mean of the whole map, borders replicated."""
    return float(ssim_map(a, b).mean())


# ----------------------------------------------------------------- metrics on their own
def test_metrics_equal_their_definitions():
    rng = np.random.default_rng(4)
    a = cv2.GaussianBlur(rng.integers(0, 256, (40, 36, 3), dtype=np.uint8), (5, 5), 1.5)
    for noise in (3, 25):
        b = np.clip(a + rng.normal(0, noise, a.shape), 0, 255).astype(np.uint8)
        assert psnr(a, b) == pytest.approx(ref_psnr(a, b), rel=1e-12)
        assert ssim(a, b) == pytest.approx(ref_ssim(a, b), abs=1e-9)
    c = a.copy()
    c[..., 2] = 255 - c[..., 2]  # only blue changes: gray weights blue by 0.114
    np.testing.assert_array_equal(rgb2gray(a), ref_gray(a))
    np.testing.assert_array_equal(rgb2gray(c), ref_gray(c))
    assert rgb2gray(a).dtype == np.uint8
    assert ssim(a, c) == pytest.approx(ref_ssim(a, c), abs=1e-9)
    assert psnr(a, a) == 100.0 and ssim(a, a) == 1.0
    d = a.copy()
    d[0, 0, 0] ^= 1  # MSE 1/(40*36*3): 84.5 dB, below the cap
    assert psnr(a, d) == pytest.approx(10 * np.log10(255 ** 2 * 40 * 36 * 3), rel=1e-12)
    assert psnr(a, a ^ 1) == pytest.approx(20 * np.log10(255), rel=1e-12)  # MSE exactly 1
    extremes = np.array([[[0, 0, 0], [255, 255, 255], [1, 1, 1], [0, 0, 4], [0, 0, 5]]], np.uint8)
    assert rgb2gray(extremes).tolist() == [[0, 255, 1, 0, 1]]  # 4·0.114 = 0.456, 5·0.114 = 0.57
    for bad in (a.astype(np.float32), a.astype(np.uint16)):
        with pytest.raises(TypeError, match=r"^metrics take uint8 images, got \w+ and \w+$"):
            psnr(bad, a)
        with pytest.raises(TypeError, match="^metrics take uint8 images"):
            ssim(a, bad)
    for x, y in ((a, a[:20]), (a[..., 0], a[..., 0]), (a[..., :2], a[..., :2])):
        with pytest.raises(ValueError, match=r"^metrics take two HxWx3 images of one shape, got .*\)$"):
            psnr(x, y)
        with pytest.raises(ValueError, match="^metrics take two HxWx3"):
            ssim(x, y)
    # the one-channel metrics (Y/gray tasks): the same definitions on HxW images
    g, h = a[..., 1], b[..., 1]
    assert psnr1(g, h) == pytest.approx(ref_psnr(g[..., None], h[..., None]), rel=1e-12)
    rep = lambda z: np.repeat(z[..., None], 3, axis=2)  # noqa: E731  (its gray is itself)
    assert ssim1(g, h) == pytest.approx(ref_ssim(rep(g), rep(h)), abs=1e-9)
    for x, y in ((g.astype(np.int16), g), (g, g.astype(np.float64))):
        with pytest.raises(TypeError, match=f"^metrics take uint8 images, got {x.dtype} and "
                                            f"{y.dtype}$"):
            psnr1(x, y)
    for x, y in ((g, g[:20]), (a, a), (g[None], g[None])):
        msg = f"one-channel metrics take two HxW images of one shape, got {x.shape} and {y.shape}"
        with pytest.raises(ValueError, match=f"^{re.escape(msg)}$"):
            ssim1(x, y)
    # a one-channel task's target must be one channel replicated; the output is reduced by gray
    assert score("sr", a, rep(g)) == (psnr1(rgb2gray(a), g), ssim1(rgb2gray(a), g))
    for k in range(3):  # any one channel differing is refused
        t = rep(g)
        t[0, 0, k] ^= 1
        msg = ("sr is scored on one channel: its target must be a single channel replicated to "
               "three equal channels")
        with pytest.raises(ValueError, match=f"^{re.escape(msg)}$"):
            score("sr", a, t)
    for bad in (a.astype(np.float32), a[..., :2], a[..., 0]):
        msg = f"expected an HxWx3 uint8 image, got {bad.dtype} {bad.shape}"
        with pytest.raises(ValueError, match=f"^{re.escape(msg)}$"):
            one_channel(bad)


def natural_pairs():
    """(output-like, reference) pairs on 128x128 crops of natural photos: operator outputs,
    blur, noise and JPEG, the kind of differences the evaluation sees."""
    skdata = pytest.importorskip("skimage.data")
    rng = np.random.default_rng(0)
    crops = []
    for name, (y, x) in (("astronaut", (100, 180)), ("coffee", (150, 250)), ("chelsea", (80, 150)),
                         ("rocket", (200, 300)), ("immunohistochemistry", (200, 200))):
        crops.append(np.ascontiguousarray(getattr(skdata, name)()[y:y + 128, x:x + 128]))
    for img in crops:
        yield operators.to_uint8(operators.apply("l0", img, 0.02)), img
        yield cv2.GaussianBlur(img, (0, 0), 1.0), img
        yield np.clip(img + rng.normal(0, 8, img.shape), 0, 255).astype(np.uint8), img
        ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, 30])
        yield cv2.imdecode(buf, cv2.IMREAD_COLOR), img


def test_ssim_is_within_the_third_decimal_of_matlab_on_natural_crops():
    """metrics' note: scikit-image's border-free mean vs MATLAB's full-map mean differ "in the
    third decimal at most" on natural 128x128 crops, i.e. by less than 0.005. Measured here: 2e-5
    to 0.0047 (the largest on a blurred crop of ``rocket``), so the claim holds with little margin:
    a rounded SSIM can differ from MATLAB's in its second decimal."""
    gaps = []
    for out, ref in natural_pairs():
        s, m = ssim(out, ref), matlab_ssim(out, ref)
        assert 0.3 < s < 0.999
        gaps.append(abs(s - m))
    assert max(gaps) < 5e-3, max(gaps)
    assert max(gaps) > 1e-6  # the two are different computations (border kept or not)


# ----------------------------------------------------------------- evaluate()
@pytest.fixture(scope="module")
def models(data, tmp_path_factory):
    """A two-operator decouple model and a single-γ l0 model, two iterations each."""
    root = tmp_path_factory.mktemp("eval")
    train(data, ["l0", "wmf"], root / "dec", preset=TINY, progress=False, residual=True)
    train(data, ["l0"], root / "single", preset=TINY, arch="single", gamma=0.02, progress=False,
          residual=True)
    return root


def stored_test_pairs(path, op):
    """{γ: [(input, target), ...]} of the test split, read with h5py in stored row order."""
    out = {}
    with h5py.File(path, "r") as f:
        g = f["ops"][op]
        split, gam, src, outp = g["split"][:], g["gamma"][:], g["source"][:], g["output"]
        for row in np.flatnonzero(split == 1):  # 1 = test
            out.setdefault(round(float(gam[row]), 12), []).append(
                (f["sources/pixels"][src[row]], outp[row]))
    return out


def expected_rows(pred, path, op, gammas=None):
    rows = []
    for g, pairs in sorted(stored_test_pairs(path, op).items()):
        if gammas is not None and not any(np.isclose(g, x) for x in gammas):
            continue
        outs = [pred.apply(x, op, g) for x, _ in pairs]
        rows.append({"operator": op, "gamma": g, "images": len(pairs),
                     "psnr": np.mean([ref_psnr(o, t) for o, (_, t) in zip(outs, pairs)]),
                     "ssim": np.mean([ref_ssim(o, t) for o, (_, t) in zip(outs, pairs)]),
                     "identity_psnr": np.mean([ref_psnr(x, t) for x, t in pairs]),
                     "identity_ssim": np.mean([ref_ssim(x, t) for x, t in pairs])})
    return rows


def check_table(table, expected, psnr_tol=1e-9, ssim_tol=1e-9):
    assert len(table) == len(expected)
    for (_, got), exp in zip(table.iterrows(), expected):
        assert got["operator"] == exp["operator"]
        assert got["gamma"] == pytest.approx(exp["gamma"], rel=1e-9)
        assert got["images"] == exp["images"]
        for k in ("psnr", "identity_psnr"):
            assert got[k] == pytest.approx(exp[k], abs=psnr_tol), k
        for k in ("ssim", "identity_ssim"):
            assert got[k] == pytest.approx(exp[k], abs=ssim_tol), k


def test_evaluate_equals_figures_computed_independently(models, data):
    pred = model.load(models / "dec")
    expected = [r for op in ("l0", "wmf") for r in expected_rows(pred, data, op)]
    assert {r["gamma"] for r in expected if r["operator"] == "l0"} == \
        set(operators.get("l0").test_gammas)
    assert all(r["images"] >= 1 for r in expected)
    assert any(r["psnr"] < 60 and r["ssim"] < 0.99 for r in expected)  # not a trivial model
    assert any(r["identity_ssim"] < 0.99 for r in expected)
    check_table(evaluate(pred, data, batch=1), expected)
    # batches of several images: the same figures up to float rounding in the network
    check_table(evaluate(pred, data, batch=3), expected, psnr_tol=0.05, ssim_tol=1e-3)


def test_evaluate_options(models, data):
    pred = model.load(models / "dec")
    t = evaluate(pred, data, ops=["wmf"], gammas=[5.5], identity=False)
    assert list(t.columns) == ["operator", "gamma", "images", "psnr", "ssim"]
    check_table(t.assign(identity_psnr=0.0, identity_ssim=0.0),
                [{**r, "identity_psnr": 0.0, "identity_ssim": 0.0}
                 for r in expected_rows(pred, data, "wmf", gammas=[5.5])])
    with pytest.raises(ValueError, match=f"^{re.escape(f'{data} has no test pairs of l0 at γ=0.05')}$"):
        evaluate(pred, data, ops=["l0"], gammas=[0.05])


def test_evaluate_single_gamma_model_only_at_its_gamma(models, data):
    pred = model.load(models / "single")
    table = evaluate(pred, data)
    check_table(table, expected_rows(pred, data, "l0", gammas=[0.02]))
    assert table["gamma"].tolist() == [pytest.approx(0.02)]


def test_cli_eval_writes_the_evaluate_table(models, data, tmp_path, capsys):
    path = tmp_path / "eval.csv"
    assert main(["eval", "--ckpt", str(models / "dec"), "--data", str(data), "--csv", str(path)]) == 0
    table = evaluate(model.load(models / "dec"), data)
    rows = list(csv.DictReader(open(path)))
    per_gamma = [r for r in rows if r["gamma"] != "ave."]
    assert len(per_gamma) == len(table)
    for r, (_, t) in zip(per_gamma, table.iterrows()):
        assert r["operator"] == t["operator"] and int(r["images"]) == t["images"]
        for k in ("gamma", "psnr", "ssim", "identity_psnr", "identity_ssim"):
            assert float(r[k]) == pytest.approx(t[k], rel=1e-12, abs=1e-12), k
    # one "ave." row after each operator's rows: the mean over γ of the per-γ means
    ave = table.groupby("operator")[["psnr", "ssim"]].mean()
    aves = [r for r in rows if r["gamma"] == "ave."]
    assert [r["operator"] for r in aves] == list(dict.fromkeys(table["operator"]))
    for r in aves:
        assert float(r["psnr"]) == pytest.approx(ave.loc[r["operator"], "psnr"], rel=1e-12)
        assert float(r["ssim"]) == pytest.approx(ave.loc[r["operator"], "ssim"], rel=1e-12)
        assert int(r["images"]) == table.loc[table["operator"] == r["operator"], "images"].sum()
    from model.evaluate import with_averages

    assert with_averages(table).index.tolist() == list(range(len(rows)))  # a fresh 0..n-1 index
    out = capsys.readouterr().out
    for op in ("l0", "wmf"):
        line = next(ln for ln in out.splitlines() if ln.split()[:2] == [op, "ave."])
        assert f"{ave.loc[op, 'psnr']:.4f}" in line and f"{ave.loc[op, 'ssim']:.4f}" in line
