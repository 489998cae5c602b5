"""Colour pencil drawing (operator ``pencil``, Lu, Xu, Jia NPAR 2012) and its building blocks."""
from __future__ import annotations

import re

import cv2
import numba
import numpy as np
import pytest
from scipy import ndimage, signal

from operators import _pencil_kernels as pk
from operators import pencil as pen
from operators._color import rgb2ycbcr
from operators.fidelity import agreement

from conftest import REFERENCE, missing_authors_image, read_rgb, reference_manifest

ENTRIES = [e for e in reference_manifest() if e["operator"] == "pencil"]


@pytest.fixture(scope="module")
def texture(reference_dir):
    """The authors' pencil texture in the reference folder (never shipped: skip without it)."""
    why = missing_authors_image({"operator": "pencil"})
    if why:
        pytest.skip(why)
    return reference_dir / "inputs" / "pencil0.jpg"


def photo_like(rng, h, w):
    yy, xx = np.mgrid[0:h, 0:w]
    chans = [0.5 + 0.35 * np.sin(xx / (3.0 + c) + c) * np.cos(yy / (4.0 + c)) + 0.2 * (xx > w // 2)
             + 0.04 * rng.standard_normal((h, w)) for c in range(3)]
    return np.clip(np.round(np.stack(chans, -1) * 230), 0, 255).astype(np.uint8)


@pytest.fixture(scope="module")
def small_texture():
    """A tiny deterministic gray texture in (0, 1] for fast tests."""
    r = np.random.default_rng(7)
    return np.clip(0.65 + 0.1 * r.standard_normal((40, 60)), 0.3, 0.95)


# --------------------------------------------------------------------------- reference
@pytest.mark.parametrize("entry", ENTRIES or [None],
                         ids=[e["output"].split("/")[-1] for e in ENTRIES] or ["none"])
def test_matches_reference(entry, reference_dir, texture):
    if entry is None:
        pytest.skip("the reference manifest has no pencil entry")
    image = read_rgb(reference_dir / entry["input"])
    ref = np.load(reference_dir / entry["output"])["output"]
    # the authors' texture, read at run time from the reference folder (never copied here)
    out = pen.pencil_drawing(image, texture=texture)
    assert out.shape == ref.shape and out.dtype == np.float64
    a = agreement(out, ref)
    # README bar for pencil: >= 99 % uint8 equal and PSNR >= 40 dB (achieved: float32 rounding)
    assert a.equal >= 0.99, f"only {a.equal:.4%} of uint8 pixels equal"
    assert a.psnr_db >= 40.0, f"PSNR {a.psnr_db:.1f} dB"


def test_texture_array_equals_texture_path(reference_dir, texture):
    path = texture
    image = read_rgb(reference_dir / "inputs" / "syn37x53.png")
    arr = cv2.cvtColor(cv2.imread(str(path), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
    np.testing.assert_array_equal(pen.pencil_drawing(image, texture=path),
                                  pen.pencil_drawing(image, texture=arr))
    assert pen.texture_id(path) == "pencil0.jpg:" + pen.texture_id(arr).split(":")[1]


def test_a_generated_texture_by_path_and_by_array_agree(tmp_path):
    """The same as above without the authors' texture (not shipped: the test above skips on a
    clean clone): a gray JPEG of ours and its decoded pixels (2-D: a gray file is read as gray,
    as MATLAB's imread does; its RGB expansion through rgb2gray differs by an ulp) give one
    drawing and one texture id."""
    rng = np.random.default_rng(5)
    image = rng.integers(0, 256, (37, 53, 3), dtype=np.uint8)
    tex = cv2.GaussianBlur(rng.integers(0, 256, (60, 70), dtype=np.uint8), (0, 0), sigmaX=2)
    path = tmp_path / "my_pencil.jpg"
    assert cv2.imwrite(str(path), tex)
    arr = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    assert arr.ndim == 2
    drawn = pen.pencil_drawing(image, texture=path)
    np.testing.assert_array_equal(drawn, pen.pencil_drawing(image, texture=arr))
    assert pen.texture_id(path) == "my_pencil.jpg:" + pen.texture_id(arr).split(":")[1]
    assert not np.array_equal(drawn, pen.pencil_drawing(image))  # not the default texture


def test_reference_entries_present():
    if not ENTRIES:
        pytest.skip(f"no reference manifest at {REFERENCE}")
    assert len(ENTRIES) >= 5 and all(e["gamma"] is None for e in ENTRIES)


# --------------------------------------------------------------------------- stroke map
def rotate_literal(k, deg):
    """imrotate bilinear 'crop' per §5 via SciPy (grid-constant = bilinear on zero-extended)."""
    n = k.shape[0]
    c = (n + 1) / 2
    i, j = np.mgrid[1:n + 1, 1:n + 1].astype(float)
    th = np.deg2rad(deg)
    x = c + np.cos(th) * (j - c) - np.sin(th) * (i - c)
    y = c + np.sin(th) * (j - c) + np.cos(th) * (i - c)
    return ndimage.map_coordinates(k, [y - 1, x - 1], order=1, mode="grid-constant", cval=0.0)


@pytest.mark.parametrize("deg", [22.5, 45.0, 67.5, 112.5, 135.0, 157.5, 30.0])
def test_imrotate_matches_scipy_bilinear_on_zero_extended_kernel(deg):
    k = pk.line_kernel(8, 1)
    np.testing.assert_allclose(pk.imrotate_bilinear_crop(k, deg), rotate_literal(k, deg),
                               rtol=0, atol=1e-12)


def test_imrotate_edge_rule_and_right_angles():
    k = pk.line_kernel(8, 0)
    assert k.shape == (17, 17) and k.sum() == 17 and k[8].sum() == 17
    np.testing.assert_array_equal(pk.imrotate_bilinear_crop(k, 0), k)
    np.testing.assert_array_equal(pk.imrotate_bilinear_crop(k, 90), k.T)
    r = pk.imrotate_bilinear_crop(k, 45)
    # output (3, 15) samples the input at x = 9 + 6*sqrt(2) = 17.49, just past the last column:
    # zero-extended bilinear blending gives it weight 9 - 6*sqrt(2) of K(9, 17) (Octave's own
    # imrotate would give 0 there)
    assert abs(r[2, 14] - (9 - 6 * np.sqrt(2))) < 1e-12 and abs(r[14, 2] - r[2, 14]) < 1e-14
    np.testing.assert_allclose(r, r[::-1, ::-1], atol=1e-14)  # point symmetric
    assert np.all(pk.line_kernel(8, 1)[7:10] == 1) and pk.line_kernel(8, 1).sum() == 51


def stroke_literal(y, ks=8, width=1, n_dir=8):
    """§5 GenStroke written with SciPy: medfilt (zero pad), conv2 'same', argmax, sum."""
    y1 = ndimage.median_filter(y, size=3, mode="constant", cval=0.0)
    gx = np.zeros_like(y1)
    gy = np.zeros_like(y1)
    gx[:, :-1] = np.abs(y1[:, :-1] - y1[:, 1:])
    gy[:-1, :] = np.abs(y1[:-1, :] - y1[1:, :])
    e = gx + gy
    thin = [rotate_literal(pk.line_kernel(ks, 0), n * 180 / n_dir) for n in range(n_dir)]
    thick = [rotate_literal(pk.line_kernel(ks, width), n * 180 / n_dir) for n in range(n_dir)]
    resp = np.stack([signal.convolve2d(e, k, mode="same") for k in thin])
    idx = np.argmax(resp, axis=0)
    sp = sum(signal.convolve2d(e * (idx == n), thick[n], mode="same") for n in range(n_dir))
    sp = (sp - sp.min()) / (sp.max() - sp.min())
    return 1 - sp


@pytest.mark.parametrize("shape", [(23, 31), (40, 9), (5, 5)])
def test_stroke_map_matches_scipy_literal(rng, shape):
    y = rng.random(shape)
    np.testing.assert_allclose(pen.stroke_map(y), stroke_literal(y), rtol=0, atol=1e-12)


def test_medfilt_zero_padding(rng):
    y = rng.random((7, 9))
    np.testing.assert_array_equal(pk.medfilt3_zero(y),
                                  ndimage.median_filter(y, size=3, mode="constant", cval=0.0))
    assert pk.medfilt3_zero(np.ones((4, 4)))[0, 0] == 0.0  # a corner sees 5 zeros


# --------------------------------------------------------------------------- tone map
def test_tone_histogram():
    p = pen.tone_histogram()
    assert p.shape == (256,) and abs(p.sum() - 1) < 1e-12 and np.all(p > 0)
    assert np.argmax(p) == 255  # the bright (paper) layer dominates
    v = 90.0  # the dark layer: note sqrt(2*pi*sigma_d), not sqrt(2*pi)*sigma_d
    raw = 0.01 * (76 / 9 * np.exp(-(255 - v) / 9) + 2 / np.sqrt(2 * np.pi * 11))  # u(90) = 0
    total = 0.01 * sum(76 / 9 * np.exp(-(255 - t) / 9) + (22 / 120 if 105 <= t <= 225 else 0)
                       + 2 / np.sqrt(2 * np.pi * 11) * np.exp(-(t - 90) ** 2 / 242)
                       for t in range(256))
    assert abs(p[90] - raw / total) < 1e-15


def histeq_loops(y, hgram):
    """MATLAB histeq(I, hgram) per §5, with explicit loops."""
    n = y.size
    bins = np.floor(np.clip(y, 0, 1) * 255 + 0.5).astype(int)
    c = np.array([np.sum(bins == j) for j in range(256)], float)
    cum = np.cumsum(c)
    q = hgram * n / hgram.sum()
    cq = np.cumsum(q)
    lut = np.empty(256)
    for j in range(256):
        tol = c[j] / 2 if 0 < j < 255 else 0.0
        errs = [(cq[k] - cum[j]) + tol for k in range(256)]
        errs = [n if e < -n * np.sqrt(np.finfo(float).eps) else e for e in errs]
        lut[j] = errs.index(min(errs)) / 255
    return lut[bins]


def test_histeq_target_matches_loops_and_matches_the_histogram(rng):
    y = np.clip(0.45 + 0.2 * rng.standard_normal((60, 70)), 0, 1)
    p = pen.tone_histogram()
    got = pen.histeq_target(y, p)
    np.testing.assert_array_equal(got, histeq_loops(y, p))
    # monotone mapping whose output CDF follows the target's
    order = np.argsort(y, axis=None)
    assert np.all(np.diff(got.ravel()[order]) >= 0)
    levels = np.round(got * 255).astype(int)
    cdf = np.cumsum(np.bincount(levels.ravel(), minlength=256)) / y.size
    assert np.max(np.abs(cdf - np.cumsum(p))) < 0.05


def test_box_filter_zero_padding_and_matlab_centre(rng):
    x = rng.random((13, 17))
    pad = np.pad(x, ((4, 5), (4, 5)))  # taps -4..+5 (MATLAB's centre 5 of 10), zeros outside
    want = sum(pad[a:a + 13, b:b + 17] for a in range(10) for b in range(10)) / 100
    np.testing.assert_allclose(pk.box_filter_zero(x, 10), want, rtol=0, atol=1e-15)


# --------------------------------------------------------------------------- texture solve
def dense_system(logp, logj, h, theta=0.2):
    n = logp.size
    dx = -np.eye(n) + np.eye(n, k=h)
    dy = -np.eye(n) + np.eye(n, k=1)
    a = theta * (dx @ dx.T + dy @ dy.T) + np.diag(logp * logp)
    return a, logp * logj


def pcg_literal(a, b, tol, maxit):
    """MATLAB pcg (no preconditioner, x0 = 0): every iterate and its residual kept."""
    x = np.zeros_like(b)
    r = b.copy()
    xs, res = [x.copy()], [np.linalg.norm(r)]
    p = None
    rho = 1.0
    for _ in range(maxit):
        rho1, rho = rho, r @ r
        p = r.copy() if p is None else r + (rho / rho1) * p
        q = a @ p
        alpha = rho / (p @ q)
        x = x + alpha * p
        r = r - alpha * q
        xs.append(x.copy())
        res.append(np.linalg.norm(b - a @ x))
        if res[-1] <= tol * np.linalg.norm(b):
            return x, True
    return xs[int(np.argmin(res))], False


def test_matvec_matches_dense_matrix(rng):
    h, w = 5, 4
    logp = np.log(rng.uniform(0.3, 0.95, h * w))
    a, _ = dense_system(logp, logp, h)
    m = np.arange(h * w)
    diag = 0.2 * ((1.0 + (m < h * w - h)) + (1.0 + (m < h * w - 1))) + logp * logp
    np.testing.assert_allclose(np.diag(a), diag, atol=1e-15)
    x = rng.standard_normal(h * w)
    np.testing.assert_allclose(pk.texture_matvec(x, diag, 0.2, h), a @ x, rtol=0, atol=1e-14)


@pytest.mark.parametrize("maxit", [3, 8, 200])
def test_pcg_matches_dense_literal_and_solve(rng, maxit):
    h, w = 6, 5
    n = h * w
    logp = np.log(rng.uniform(0.3, 0.95, n))
    logj = np.log(rng.uniform(0.2, 1.0, n))
    a, b = dense_system(logp, logj, h)
    m = np.arange(n)
    diag = 0.2 * ((1.0 + (m < n - h)) + (1.0 + (m < n - 1))) + logp * logp
    x, flag, _ = pk.pcg_texture(diag, b, 0.2, h, 1e-6, maxit)
    want, converged = pcg_literal(a, b, 1e-6, maxit)
    np.testing.assert_allclose(x, want, rtol=0, atol=1e-10)
    assert (flag == 0) == converged
    if converged:  # CG to 1e-6 agrees with the exact solution
        exact = np.linalg.solve(a, b)
        assert np.linalg.norm(x - exact) <= 1e-4 * np.linalg.norm(exact)
        assert np.linalg.norm(b - a @ x) <= 1e-6 * np.linalg.norm(b)


def test_pcg_returns_the_minimum_residual_iterate(rng):
    h = 8
    n = 64
    logp = np.log(rng.uniform(0.05, 0.99, n))
    a, b = dense_system(logp, np.log(rng.uniform(0.1, 1.0, n)), h)
    m = np.arange(n)
    diag = 0.2 * ((1.0 + (m < n - h)) + (1.0 + (m < n - 1))) + logp * logp
    for maxit in range(1, 12):
        x, flag, it = pk.pcg_texture(diag, b, 0.2, h, 1e-12, maxit)
        want, _ = pcg_literal(a, b, 1e-12, maxit)
        np.testing.assert_allclose(x, want, rtol=0, atol=1e-10)
        assert flag == 1 and 0 <= it <= maxit
    zero, flag, it = pk.pcg_texture(diag, np.zeros(n), 0.2, h)
    assert flag == 0 and it == 0 and not zero.any()


# --------------------------------------------------------------------------- texture argument
def test_procedural_texture_is_deterministic_oriented_and_pencil_like():
    t = pen.procedural_texture()
    assert t.shape == (730, 1095) and t.dtype == np.float64 and not t.flags.writeable
    assert t.min() > 0.2 and t.max() < 0.97 and 0.62 < t.mean() < 0.74
    np.testing.assert_array_equal(np.round(t * 255) / 255, t)  # an 8-bit image
    gx = np.abs(np.diff(t, axis=1)).mean()
    gy = np.abs(np.diff(t, axis=0)).mean()
    assert gx > 1.3 * gy  # strokes run mostly up-down: more contrast across them
    pen._procedural_base.cache_clear()
    again = pen.procedural_texture()
    assert again is not t
    np.testing.assert_array_equal(again, t)
    assert re.fullmatch(r"procedural-hatching-v1:[0-9a-f]{16}", pen.texture_id(None))


def test_default_texture_works_and_is_deterministic(rng):
    img = photo_like(rng, 33, 47)
    a = pen.pencil_drawing(img)
    assert a.shape == img.shape and a.dtype == np.float64
    assert np.isfinite(a).all() and 0 <= a.min() and a.max() <= 1
    np.testing.assert_array_equal(a, pen.pencil_drawing(img, texture=None))
    # colour kept: Cb, Cr of the drawing are the photo's (up to ycbcr2rgb's clipping)
    ycc, ycc_in = rgb2ycbcr(a), rgb2ycbcr(img / 255.0)
    inside = (a > 0.01).all(-1) & (a < 0.99).all(-1)
    assert inside.mean() > 0.5
    np.testing.assert_allclose(ycc[inside][:, 1:], ycc_in[inside][:, 1:], atol=1e-12)
    assert np.abs(ycc[..., 0] - ycc_in[..., 0]).mean() > 0.05  # the luma is redrawn


def test_result_does_not_depend_on_the_thread_count(rng, small_texture):
    img = photo_like(rng, 64, 80)
    a = pen.pencil_drawing(img, texture=small_texture)
    prev = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        b = pen.pencil_drawing(img, texture=small_texture)
    finally:
        numba.set_num_threads(prev)
    np.testing.assert_array_equal(a, b)


def test_gray_texture_file_and_rgb_array(tmp_path, small_texture):
    u8 = np.round(small_texture * 255).astype(np.uint8)
    cv2.imwrite(str(tmp_path / "t.png"), u8)
    np.testing.assert_array_equal(pen.load_texture(tmp_path / "t.png"), u8 / 255.0)
    np.testing.assert_array_equal(pen.load_texture(str(tmp_path / "t.png")), u8 / 255.0)
    rgb = np.stack([u8] * 3, -1)
    np.testing.assert_allclose(pen.load_texture(rgb), u8 / 255.0, atol=1e-14)


# --------------------------------------------------------------------------- interface
@pytest.mark.parametrize("shape", [(2, 2), (3, 7), (17, 2), (31, 29)])
def test_odd_sizes(rng, shape, small_texture):
    img = photo_like(rng, *shape)
    out = pen.pencil_drawing(img, texture=small_texture)
    assert out.shape == img.shape and np.isfinite(out).all()
    assert 0 <= out.min() and out.max() <= 1


def test_constant_image_gives_finite_output(small_texture):
    out = pen.pencil_drawing(np.full((12, 14, 3), 128, np.uint8), texture=small_texture)
    assert np.isfinite(out).all()


def test_other_parameters(rng, small_texture):
    img = photo_like(rng, 24, 30)
    a = pen.pencil_drawing(img, texture=small_texture)
    b = pen.pencil_drawing(img, texture=small_texture, kernel_size=4, stroke_width=0,
                           directions=4, gamma_s=2.0, gamma_i=0.8)
    assert b.shape == a.shape and np.isfinite(b).all() and np.abs(a - b).max() > 0.01


def test_gray_input_is_refused(small_texture):
    with pytest.raises(ValueError, match="RGB"):
        pen.pencil_drawing(np.zeros((8, 8), np.uint8), texture=small_texture)


@pytest.mark.parametrize("bad, exc, match", [
    (np.zeros((8, 8, 3), np.int32), TypeError, "dtype"),
    (np.full((8, 8, 3), -0.5), ValueError, r"\[0, 1\]"),
    (np.zeros((1, 8, 3), np.uint8), ValueError, "2x2"),
    (None, TypeError, "numpy array"),
])
def test_bad_image(bad, exc, match, small_texture):
    with pytest.raises(exc, match=match):
        pen.pencil_drawing(bad, texture=small_texture)


def test_bad_textures(tmp_path):
    img = np.full((8, 8, 3), 100, np.uint8)
    with pytest.raises(ValueError, match="strictly positive"):
        pen.pencil_drawing(img, texture=np.zeros((10, 10), np.uint8))
    with pytest.raises(ValueError, match="not found"):
        pen.pencil_drawing(img, texture=tmp_path / "missing.jpg")
    (tmp_path / "junk.jpg").write_text("not an image")
    with pytest.raises(ValueError, match="not a readable image"):
        pen.pencil_drawing(img, texture=tmp_path / "junk.jpg")
    with pytest.raises(TypeError, match="path"):
        pen.pencil_drawing(img, texture=[[0.5, 0.5], [0.5, 0.5]])
    with pytest.raises(TypeError, match="bytes"):
        pen.pencil_drawing(img, texture=b"pencil0.jpg")
    with pytest.raises(ValueError, match=r"pencil texture.*\[0, 1\]"):
        pen.pencil_drawing(img, texture=np.full((10, 10), 2.0))
    with pytest.raises(ValueError, match="pencil texture must be HxW"):
        pen.pencil_drawing(img, texture=np.full((10, 10, 4), 9, np.uint8))
    with pytest.raises(TypeError, match="pencil texture has unsupported dtype"):
        pen.pencil_drawing(img, texture=np.full((10, 10), 9, np.int64))


def test_bad_parameters(small_texture):
    img = np.full((8, 8, 3), 100, np.uint8)
    with pytest.raises(TypeError, match="kernel_size"):
        pen.pencil_drawing(img, texture=small_texture, kernel_size=True)
    with pytest.raises(ValueError, match="stroke_width must be < kernel_size"):
        pen.pencil_drawing(img, texture=small_texture, stroke_width=8)
    with pytest.raises(ValueError, match="directions"):
        pen.pencil_drawing(img, texture=small_texture, directions=0)
    with pytest.raises(ValueError, match="gamma_s"):
        pen.pencil_drawing(img, texture=small_texture, gamma_s=0)
    with pytest.raises(TypeError):
        pen.pencil_drawing(img, 0.5)  # fixed-effect operator: no positional parameter
