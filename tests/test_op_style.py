"""LLF style transfer (``style_transfer.m``): the reference outputs (with the authors' exemplar,
read from ../shared/reference at run time, never copied), a plain NumPy transcription of the
description (operators_extra.md §4, §0.4), the MATLAB ``hist`` semantics, and properties."""
from __future__ import annotations

import math

import cv2
import numba
import numpy as np
import pytest

from conftest import REFERENCE, missing_authors_image, read_rgb, reference_manifest
from operators._color import rgb2gray
from operators._llf_general_kernels import MODE_TABLE, run_llf
from operators._style_kernels import apply_table, gradient_magnitude, hist_counts, normalise
from operators.fidelity import agreement
from operators.style import _edges, _transfer, exemplar_info, load_exemplar, style_transfer
from llf_pyramids import gaussian as _gaussian
from llf_pyramids import laplacian as _laplacian
from llf_pyramids import up as _up

# ----------------------------------------------------------------------------- slow reference


def slow_hist(y, k):
    """MATLAB hist(y, linspace(0, 1, k)): bins split at the centres' midpoints, a value on a
    midpoint in the lower bin, outer bins open-ended."""
    c = np.linspace(0, 1, k)
    edges = (c[:-1] + c[1:]) / 2
    bins = np.searchsorted(edges, np.ravel(y), side="left")  # number of edges < v
    return np.bincount(bins, minlength=k)


def slow_tf(a, b):
    h1 = slow_hist(a, 256)
    h2 = slow_hist(b, 65536)
    cdf1 = np.cumsum(h1) / np.sum(h1)
    cdf2 = np.cumsum(h2) / np.sum(h2)
    return np.array([(np.argmax(cdf2 >= v) + 1) / 65536 for v in cdf1])


def slow_ap(a, f):
    f = np.append(f, 1.0)
    idx = np.clip(np.floor(255 * a), 0, 255)
    w = np.minimum((255 * a - idx) / 255, 255)
    idx = idx.astype(int)
    return (1 - w) * f[idx] + w * f[idx + 1]


def slow_grad(x):
    return np.sqrt((x[:-1, :-1] - x[1:, :-1]) ** 2 + (x[:-1, :-1] - x[:-1, 1:]) ** 2)


def slow_llf_discrete(a, f, n_samples=20):
    f = np.append(f, 1.0)
    h, w = a.shape
    n = math.ceil(math.log(min(h, w)) - math.log(2)) + 2
    refs = np.linspace(0, 1, n_samples)
    step = refs[1]
    g = _gaussian(a, n)
    out = _laplacian(a, n)  # starts from A's own Laplacian, as llf.m
    out[-1] = g[-1]
    for ref in refs:
        d = np.abs(255 * (a - ref))
        idx = np.floor(d).astype(int)
        wt = np.minimum((d - idx) / 255, 255)
        remap = np.sign(a - ref) * ((1 - wt) * f[idx] + wt * f[idx + 1])
        lap = _laplacian(remap, n)
        for k in range(n - 1):
            dist = np.abs(g[k] - ref)
            out[k] = out[k] + (dist < step) * (1 - dist / step) * lap[k]
    res = out[-1]
    for k in range(n - 2, -1, -1):
        res = out[k] + _up(res, out[k].shape)
    return res


def slow_style(gray, m, n_samples=20, iterations=3):
    gm = slow_grad(m)
    oi = slow_ap(gray, slow_tf(gray, m))
    for _ in range(iterations):
        f = slow_tf(slow_grad(oi), gm)
        og = slow_llf_discrete(oi, f, n_samples)
        oi = (og - og.min()) / (og.max() - og.min())
        oi = slow_ap(oi, slow_tf(oi, m))
    return oi


# ----------------------------------------------------------------------------- reference data
ENTRIES = [e for e in reference_manifest() if e["operator"] == "style"]


@pytest.fixture(scope="module")
def ruins(reference_dir):
    why = missing_authors_image({"operator": "style"})
    if why:  # the authors' exemplar is never shipped with the repository
        pytest.skip(why)
    return reference_dir / "inputs" / "style_ruins.png"


@pytest.mark.parametrize("entry", ENTRIES or [pytest.param(None, marks=pytest.mark.skip(
    reason=f"no style entries in the reference manifest at {REFERENCE}"))],
    ids=[e["input"].split("/")[-1] for e in ENTRIES] or None)
def test_matches_reference(entry, reference_dir, ruins):
    image = read_rgb(reference_dir / entry["input"])
    ref = np.load(reference_dir / entry["output"])["output"]
    out = style_transfer(image, exemplar=ruins)
    assert out.shape == ref.shape and out.dtype == np.float64
    a = agreement(out, ref)
    assert a.equal >= 0.999, f"only {a.equal:.4%} of uint8 pixels equal"
    assert a.max_levels <= 1 and a.psnr_db >= 60
    # the README's bar allows bin flips; in fact none happens here: rounded to float32 as
    # stored, (practically) every value is the reference's
    assert np.mean(out.astype(np.float32) == ref) >= 0.999


def test_exemplar_path_and_array_agree(reference_dir, ruins, coffee):
    small = coffee[:40, :48]
    by_path = style_transfer(small, exemplar=ruins, iterations=1)
    arr = read_rgb(ruins)
    np.testing.assert_array_equal(style_transfer(small, exemplar=arr, iterations=1), by_path)
    np.testing.assert_array_equal(
        style_transfer(small, exemplar=rgb2gray(arr / 255.0), iterations=1), by_path)


def test_a_generated_exemplar_by_path_and_by_array_agree(tmp_path, rng):
    """The same as above without the authors' exemplar (not shipped: the test above skips on a
    clean clone): a PNG of ours, its pixels and its gray version give one result."""
    small = rng.integers(0, 256, (40, 48, 3), dtype=np.uint8)
    ex = cv2.resize(rng.integers(0, 256, (9, 11, 3), dtype=np.uint8), (66, 54),
                    interpolation=cv2.INTER_CUBIC)
    path = tmp_path / "exemplar.png"
    assert cv2.imwrite(str(path), ex[..., ::-1])
    by_path = style_transfer(small, exemplar=path, iterations=1)
    np.testing.assert_array_equal(style_transfer(small, exemplar=ex, iterations=1), by_path)
    np.testing.assert_array_equal(
        style_transfer(small, exemplar=rgb2gray(ex / 255.0), iterations=1), by_path)
    assert not np.array_equal(style_transfer(small, iterations=1), by_path)  # not the default


# ----------------------------------------------------------------------------- building blocks
@pytest.mark.parametrize("k", [256, 65536])
def test_hist_semantics(k, rng):
    edges = _edges(k)
    vals = np.concatenate([
        edges[::max(1, k // 300)],                                # exactly on a midpoint: lower bin
        np.nextafter(edges[::max(1, k // 300)], 2.0),             # one ulp above: upper bin
        np.linspace(0, 1, k),                                     # the centres themselves
        [-0.5, 0.0, 1.0, 1.4142, 3.0],                            # outer bins are open-ended
        rng.random(1000),
    ]).reshape(1, -1)
    want = slow_hist(vals, k)
    np.testing.assert_array_equal(hist_counts(vals, edges, 3), want)
    np.testing.assert_array_equal(hist_counts(np.ascontiguousarray(vals.reshape(-1, 1)), edges, 7),
                                  want)
    counts = hist_counts(edges[None, :5].copy(), edges, 1)
    np.testing.assert_array_equal(counts[:5], 1)  # edge i counted in bin i (the lower one)


def test_transfer_table_first_index_and_divisor(rng):
    a = rng.random((20, 30))
    b = rng.random((25, 17)) ** 2
    h2 = np.asarray(slow_hist(b, 65536))
    cdf2 = np.cumsum(h2) / h2.sum()
    f = _transfer(a, cdf2)
    assert f.shape == (257,) and f[-1] == 1.0
    np.testing.assert_array_equal(f[:-1], slow_tf(a, b))
    assert np.all(f[:-1] * 65536 == np.round(f[:-1] * 65536))   # j/65536, values in (0, 1]
    assert f[:-1].min() >= 1 / 65536


def test_apply_table_and_gradient(rng):
    a = rng.random((9, 13))
    a[0, :4] = [0.0, 1.0, 3 / 255, 254.5 / 255]
    f = np.sort(rng.random(256))
    ff = np.append(f, 1.0)
    np.testing.assert_array_equal(apply_table(a, ff, 3), slow_ap(a, f))
    assert apply_table(np.ones((2, 2)), ff, 1)[0, 0] == f[-1]   # 255·1 → f(256), weight 0
    np.testing.assert_array_equal(gradient_magnitude(a, 2), slow_grad(a))
    assert gradient_magnitude(a, 2).shape == (8, 12)
    x = rng.random((6, 7)) * 3 - 1
    np.testing.assert_array_equal(normalise(x, 2), (x - x.min()) / (x.max() - x.min()))
    np.testing.assert_array_equal(normalise(np.full((3, 4), 0.7), 2), 0.0)  # flat: 0, not NaN


@pytest.mark.parametrize("shape", [(5, 7), (16, 16), (23, 31)])
def test_llf_discrete_matches_slow_reference(shape, rng):
    a = rng.random(shape)
    a[0, 0] = 0.0
    a[-1, -1] = 1.0
    f = np.sort(rng.random(256))
    refs = np.linspace(0, 1, 20)
    got = run_llf(a, a.reshape(shape + (1,)), refs, MODE_TABLE, np.append(f, 1.0), 3)
    np.testing.assert_allclose(got[:, :, 0], slow_llf_discrete(a, f), rtol=0, atol=1e-12)


# ----------------------------------------------------------------------------- whole operator
@pytest.mark.parametrize("shape", [(2, 2), (3, 5), (17, 4), (24, 31), (40, 33)])
def test_matches_slow_reference(shape, rng):
    gray = rng.random(shape)
    m = rng.random((30, 26)) ** 1.5
    out = style_transfer(gray, exemplar=m)
    want = slow_style(gray, m)
    assert out.shape == shape
    # bins and floors are discrete decisions that a 1e-16 difference could flip in principle;
    # with these (seeded) data none does, and the rest is float64 rounding
    np.testing.assert_allclose(out, want, rtol=0, atol=1e-12)


def test_rgb_output_has_three_equal_channels(rng):
    img = rng.integers(0, 256, (21, 26, 3), dtype=np.uint8)
    m = rng.random((20, 20))
    out = style_transfer(img, exemplar=m)
    assert out.shape == (21, 26, 3) and out.dtype == np.float64
    np.testing.assert_array_equal(out[..., 0], out[..., 1])
    np.testing.assert_array_equal(out[..., 0], out[..., 2])
    # the RGB path is the gray path on MATLAB's rgb2gray
    np.testing.assert_array_equal(out[..., 0], style_transfer(rgb2gray(img / 255.0), exemplar=m))
    assert 0.0 <= out.min() and out.max() <= 1.0


def test_gray_layouts(rng):
    g = rng.random((14, 18))
    a = style_transfer(g, exemplar=g)
    b = style_transfer(g[:, :, None], exemplar=g)
    assert a.shape == (14, 18) and b.shape == (14, 18, 1)
    np.testing.assert_array_equal(a, b[:, :, 0])
    u8 = rng.integers(0, 256, (10, 12), dtype=np.uint8)
    np.testing.assert_array_equal(style_transfer(u8, exemplar=g),
                                  style_transfer(u8 / 255.0, exemplar=g))


def test_output_takes_the_exemplars_tones(rng):
    img = rng.integers(0, 256, (48, 48, 3), dtype=np.uint8)
    dark = rng.random((40, 40)) ** 4      # mostly dark exemplar
    bright = 1 - rng.random((40, 40)) ** 4
    a = style_transfer(img, exemplar=dark)[..., 0]
    b = style_transfer(img, exemplar=bright)[..., 0]
    assert a.mean() < 0.35 < 0.65 < b.mean()


def test_zero_iterations_is_the_histogram_match(rng):
    g = rng.random((12, 15))
    m = rng.random((9, 9))
    np.testing.assert_array_equal(style_transfer(g, exemplar=m, iterations=0),
                                  slow_ap(g, slow_tf(g, m)))


def test_default_exemplar_is_skimage_camera(rng):
    from skimage import data

    g = rng.random((16, 20))
    np.testing.assert_array_equal(style_transfer(g, iterations=1),
                                  style_transfer(g, exemplar=data.camera(), iterations=1))
    np.testing.assert_array_equal(load_exemplar(None), data.camera() / 255.0)


def test_exemplar_from_file(tmp_path, rng):
    ex = rng.integers(0, 256, (30, 40, 3), dtype=np.uint8)
    p = tmp_path / "ex.png"
    cv2.imwrite(str(p), ex[:, :, ::-1])  # OpenCV writes BGR
    np.testing.assert_array_equal(load_exemplar(p), rgb2gray(ex / 255.0))
    np.testing.assert_array_equal(load_exemplar(str(p)), rgb2gray(ex / 255.0))
    pa = tmp_path / "exa.png"
    cv2.imwrite(str(pa), np.dstack([ex[:, :, ::-1], np.full((30, 40), 7, np.uint8)]))
    np.testing.assert_array_equal(load_exemplar(pa), rgb2gray(ex / 255.0))  # alpha dropped
    pg = tmp_path / "exg.png"
    cv2.imwrite(str(pg), ex[:, :, 0])
    np.testing.assert_array_equal(load_exemplar(pg), ex[:, :, 0] / 255.0)


def test_exemplar_info_and_file_cache(tmp_path, rng):
    ex = rng.integers(0, 256, (12, 14), dtype=np.uint8)
    p = tmp_path / "grain.png"
    cv2.imwrite(str(p), ex)
    info = exemplar_info(p)
    assert info["name"] == "grain.png" and info["shape"] == (12, 14)
    assert info["sha256"] == exemplar_info(ex)["sha256"]           # file or array: same M
    assert exemplar_info(ex)["name"] == "array"
    assert exemplar_info(None)["name"] == "skimage.data.camera"
    m = load_exemplar(p)
    m[:] = 0                                                        # a copy: the cache is safe
    np.testing.assert_array_equal(load_exemplar(p), ex / 255.0)
    cv2.imwrite(str(p), 255 - ex)                                   # a changed file is re-read
    import os
    os.utime(p, ns=(1, 10**18))
    np.testing.assert_array_equal(load_exemplar(p), (255 - ex) / 255.0)
    assert exemplar_info(p)["sha256"] != info["sha256"]


def test_bad_exemplar(tmp_path):
    g = np.full((8, 8), 0.5)
    with pytest.raises(ValueError, match="not found"):
        style_transfer(g, exemplar=tmp_path / "missing.png")
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not an image")
    with pytest.raises(ValueError, match="not an image"):
        style_transfer(g, exemplar=bad)
    p16 = tmp_path / "deep.png"
    cv2.imwrite(str(p16), np.zeros((8, 8), np.uint16))
    with pytest.raises(ValueError, match="8-bit"):
        style_transfer(g, exemplar=p16)
    with pytest.raises(TypeError, match="style exemplar"):
        style_transfer(g, exemplar=np.zeros((8, 8), np.int32))
    with pytest.raises(ValueError, match="style exemplar"):
        style_transfer(g, exemplar=np.full((8, 8), 1.5))
    with pytest.raises(ValueError, match="style exemplar"):
        style_transfer(g, exemplar=np.zeros((1, 8)))


def test_flat_image_gives_a_finite_result():
    out = style_transfer(np.full((10, 12, 3), 0.4), exemplar=np.linspace(0, 1, 100).reshape(10, 10))
    assert np.isfinite(out).all()
    assert np.ptp(out) == 0.0


@pytest.mark.parametrize("nchunks", [2, 5, 50])  # against one block (nchunks 1)
def test_block_split_does_not_change_the_result(nchunks, rng):
    a = rng.random((33, 27))
    f = np.append(np.sort(rng.random(256)), 1.0)
    refs = np.linspace(0, 1, 20)
    col = a.reshape(33, 27, 1)
    np.testing.assert_array_equal(run_llf(a, col, refs, MODE_TABLE, f, nchunks),
                                  run_llf(a, col, refs, MODE_TABLE, f, 1))
    np.testing.assert_array_equal(hist_counts(a, _edges(256), nchunks),
                                  hist_counts(a, _edges(256), 1))


def test_thread_count_does_not_change_the_result(rng):
    img = rng.integers(0, 256, (64, 72, 3), dtype=np.uint8)
    m = rng.random((50, 40))
    old = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        a = style_transfer(img, exemplar=m)
        numba.set_num_threads(numba.config.NUMBA_NUM_THREADS)
        b = style_transfer(img, exemplar=m)
    finally:
        numba.set_num_threads(old)
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(a, style_transfer(img, exemplar=m))


def test_bad_input():
    g = np.full((8, 8), 0.5)
    for kw, exc in (({"n_samples": 1}, ValueError), ({"n_samples": 2.0}, TypeError),
                    ({"iterations": -1}, ValueError), ({"iterations": True}, TypeError)):
        with pytest.raises(exc, match=next(iter(kw))):
            style_transfer(g, exemplar=g, **kw)
    with pytest.raises(TypeError, match="dtype"):
        style_transfer(np.zeros((8, 8), np.int16), exemplar=g)
    with pytest.raises(ValueError, match="NaN"):
        style_transfer(np.full((8, 8), np.nan), exemplar=g)
    with pytest.raises(ValueError, match="HxW"):
        style_transfer(np.zeros((8, 8, 2)), exemplar=g)
    with pytest.raises(TypeError):
        style_transfer(g, g)  # exemplar and parameters are keyword-only
