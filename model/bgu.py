"""Bilateral Guided Upsampling (BGU): a classical baseline running an operator at low resolution.

J. Chen, A. Adams, N. Wadhwa, S. W. Hasinoff. "Bilateral Guided Upsampling". ACM TOG 35(6)
(SIGGRAPH Asia 2016). doi:10.1145/2980179.2982423

The operator is run on a box-downsampled copy of the image; a bilateral grid of 3x4 affine colour
transforms is fitted by least squares between the low-resolution input and the low-resolution
operator output; the grid is then sliced with the full-resolution input (trilinear interpolation in
x, y and luminance) and each pixel's affine is applied to its own colour.

>>> import numpy as np
>>> from model.bgu import bgu
>>> img = np.random.default_rng(0).integers(0, 256, (96, 128, 3), dtype=np.uint8)
>>> bgu(img, "l0", 0.02).shape                                    # doctest: +SKIP
(96, 128, 3)

The defaults follow the authors' release (google/bgu, ``bguFit.m``, Apache-2.0), re-implemented
here from its description: grid of ``round(h/16) x round(w/16)`` spatial cells (h, w: the
low-resolution size) by 8 luminance bins; guide = luminance of the low-resolution input; pixel
centres mapped to continuous grid coordinates ``(x + 0.5) / bin_x - 0.5`` (and ``guide*depth -
0.5`` in z), clamped to the grid; data term on every pixel and output channel; first-difference
smoothness along y and x weighted by ``bin_x*bin_z/bin_y * lambda_spatial`` and
``bin_y*bin_z/bin_x * lambda_spatial``, second-difference smoothness along z weighted by
``bin_x*bin_y/bin_z**2 * lambda_intensity`` (``lambda_spatial = 1``, ``lambda_intensity =
4e-7``), each a weight on rows of the rectangular least-squares system (so squared in the normal
equations).

One addition, not part of the authors' formulation: a tiny ridge (``RIDGE`` times the mean
diagonal of the normal matrix). The problem is singular without it: the guide is itself a linear
function of the colour, so a field that is constant in x and y, linear in z, with affines
proportional to ``(0.299, 0.587, 0.114, -z_centre)`` costs nothing (zero data residual, zero
first and second differences) unless some pixels have clamped luminance (below ``0.5/gd`` or above
``1 - 0.5/gd``); flat-colour inputs add more such directions. The ridge picks the smallest such
solution; it does not change the sliced output of that null space, and moves a well-posed fit by
far less than the other terms.

Note on γ: :func:`bgu` runs the operator at low resolution **with the same γ**. Spatial
parameters (RGF's ``sigma_s``, WMF's radius, the spatial extent of L0/WLS/RTV smoothing) therefore
act at ``factor`` times their scale on the full-resolution image, exactly as BGU itself does when it
accelerates an operator; the baseline is compared with the operator run at full resolution.
"""
from __future__ import annotations

import functools
import math
import numbers
import time

import cv2
import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as spla
from numba import njit, prange

import operators
from operators import as_float_image
from operators._validate import as_gamma

__all__ = ["fit", "slice_apply", "bgu", "default_grid_size", "luminance", "MIN_LOWRES"]

#: Luminance weights of the guide (Rec. 601).
LUMA = np.array([0.299, 0.587, 0.114])
#: Smallest low-resolution side that :func:`bgu` accepts (one 16-pixel grid cell).
MIN_LOWRES = 16
#: Relative Tikhonov weight that keeps the normal equations positive definite on degenerate data.
RIDGE = 1e-12
#: Default grid geometry: spatial bin size in low-resolution pixels, and number of luminance bins.
SPATIAL_BIN = 16
DEPTH = 8


# --------------------------------------------------------------------------- helpers
def luminance(image: np.ndarray) -> np.ndarray:
    """The guide: ``0.299 R + 0.587 G + 0.114 B`` of an HxWx3 float image (HxW float64)."""
    img = np.asarray(image, dtype=np.float64)
    return img[..., 0] * LUMA[0] + img[..., 1] * LUMA[1] + img[..., 2] * LUMA[2]


def _round_half_up(x: float) -> int:
    return int(math.floor(x + 0.5))


def default_grid_size(h: int, w: int) -> tuple[int, int, int]:
    """``(round(h/16), round(w/16), 8)``, each at least 1, for an ``h x w`` low-resolution image."""
    return (max(1, _round_half_up(h / SPATIAL_BIN)), max(1, _round_half_up(w / SPATIAL_BIN)),
            DEPTH)


def _grid_size(grid, h: int, w: int) -> tuple[int, int, int]:
    if grid is None:
        return default_grid_size(h, w)
    try:
        size = tuple(grid)
    except TypeError:
        raise TypeError(f"grid must be None or a (gh, gw, gd) tuple of integers, got {grid!r}") \
            from None
    if len(size) != 3:
        raise ValueError(f"grid must have 3 entries (gh, gw, gd), got {grid!r}")
    for s in size:
        if isinstance(s, bool) or not isinstance(s, numbers.Integral):
            raise TypeError(f"grid sizes must be integers, got {grid!r}")
        if s < 1:
            raise ValueError(f"grid sizes must be >= 1, got {grid!r}")
    return tuple(int(s) for s in size)


def _rgb(image, name: str) -> np.ndarray:
    """HxWx3 float64 in [0, 1] (gray replicated), validated by the operators' shared checks."""
    arr, _ = as_float_image(image, name=name)
    if arr.shape[2] == 1:
        arr = np.repeat(arr, 3, axis=2)
    return arr


def _finite_rgb(x, name: str) -> np.ndarray:
    """A finite HxWx3 float64 array (any range: operator outputs are unclipped)."""
    if isinstance(x, (str, bytes)) or x is None:
        raise TypeError(f"{name} must be a numpy array, got {type(x).__name__}")
    arr = np.asarray(x)
    if not (np.issubdtype(arr.dtype, np.floating) or arr.dtype == np.uint8):
        raise TypeError(f"{name} has unsupported dtype {arr.dtype}; use float or uint8")
    arr = arr / 255.0 if arr.dtype == np.uint8 else arr.astype(np.float64)
    if arr.ndim != 3 or arr.shape[2] != 3:
        raise ValueError(f"{name} must be HxWx3, got shape {arr.shape}")
    if arr.shape[0] == 0 or arr.shape[1] == 0:
        raise ValueError(f"{name} is empty (shape {arr.shape})")
    if not np.isfinite(arr).all():
        raise ValueError(f"{name} contains NaN or infinite values")
    return arr


def _axis(n: int, size: int, g=None):
    """Lower cell, upper cell and fraction of continuous coordinates along one grid axis.

    ``g`` (continuous coordinates) defaults to the pixel centres ``(i + 0.5) / (n/size) - 0.5``;
    it is clamped to ``[0, size - 1]``.
    """
    if g is None:
        g = (np.arange(n) + 0.5) * (size / n) - 0.5
    g = np.clip(g, 0.0, size - 1.0)
    i0 = np.minimum(np.floor(g).astype(np.int64), size - 1)
    i1 = np.minimum(i0 + 1, size - 1)
    return i0, i1, g - i0


def _diff_gram(n: int, order: int) -> sp.csr_matrix:
    """``D^T D`` for the first (order 1) or second (order 2) difference operator on n points."""
    if n <= order:
        return sp.csr_matrix((n, n))
    if order == 1:
        d = sp.diags([-np.ones(n - 1), np.ones(n - 1)], [0, 1], shape=(n - 1, n))
    else:
        d = sp.diags([np.ones(n - 2), -2 * np.ones(n - 2), np.ones(n - 2)], [0, 1, 2],
                     shape=(n - 2, n))
    return (d.T @ d).tocsr()


@functools.lru_cache(maxsize=16)
def _nested_dissection(gh: int, gw: int, gd: int, leaf: int = 16) -> np.ndarray:
    """Fill-reducing order of the unknowns (cell-major, 4 per cell) by nested dissection.

    Boxes of cells are split by a separator plane across their longest axis, halves first and
    separator last. Cells interact with their neighbours at distance 1 in y and x (data and
    first-difference terms) and up to 2 in z (second differences), so a z separator is 2 planes.
    """
    cells: list[np.ndarray] = []
    iy, ix, iz = np.meshgrid(np.arange(gh), np.arange(gw), np.arange(gd), indexing="ij")
    index = (iy * gw + ix) * gd + iz

    def split(y0, y1, x0, x1, z0, z1):
        ey, ex, ez = y1 - y0, x1 - x0, z1 - z0
        if ey * ex * ez <= leaf or max(ey, ex, ez / 2) < 3:
            cells.append(index[y0:y1, x0:x1, z0:z1].ravel())
        elif ey >= ex and ey >= ez / 2:
            m = (y0 + y1) // 2
            split(y0, m, x0, x1, z0, z1)
            split(m + 1, y1, x0, x1, z0, z1)
            cells.append(index[m, x0:x1, z0:z1].ravel())
        elif ex >= ez / 2:
            m = (x0 + x1) // 2
            split(y0, y1, x0, m, z0, z1)
            split(y0, y1, m + 1, x1, z0, z1)
            cells.append(index[y0:y1, m, z0:z1].ravel())
        else:
            m = (z0 + z1) // 2
            split(y0, y1, x0, x1, z0, m - 1)
            split(y0, y1, x0, x1, m + 1, z1)
            cells.append(index[y0:y1, x0:x1, m - 1:m + 1].ravel())

    split(0, gh, 0, gw, 0, gd)
    order = np.concatenate(cells)
    perm = (order[:, None] * 4 + np.arange(4)).ravel()
    perm.setflags(write=False)
    return perm


# --------------------------------------------------------------------------- fit
def fit(lo_in, lo_out, *, grid=None, lambda_spatial: float = 1.0,
        lambda_intensity: float = 4e-7) -> np.ndarray:
    """Fit a bilateral grid of affine colour models mapping ``lo_in`` to ``lo_out``.

    Parameters
    ----------
    lo_in, lo_out : HxWx3 float arrays (low resolution), the operator's input and output; ``lo_in``
        in [0, 1] (its luminance is the guide), ``lo_out`` any finite values.
    grid : ``(gh, gw, gd)`` or None for :func:`default_grid_size`.
    lambda_spatial, lambda_intensity : smoothness weights (authors' defaults 1 and 4e-7).

    Returns
    -------
    float64 array ``(gh, gw, gd, 3, 4)``: in each cell, output channel ``i`` is
    ``A[i, 0]*r + A[i, 1]*g + A[i, 2]*b + A[i, 3]``.
    """
    lo_in = _rgb(lo_in, "lo_in")
    lo_out = _finite_rgb(lo_out, "lo_out")
    if lo_out.shape != lo_in.shape:
        raise ValueError(f"lo_in and lo_out differ in shape: {lo_in.shape} vs {lo_out.shape}")
    lam_s = as_gamma(lambda_spatial, name="lambda_spatial")
    lam_i = as_gamma(lambda_intensity, name="lambda_intensity")
    if lam_s < 0 or lam_i < 0:
        raise ValueError(f"smoothness weights must be >= 0, got lambda_spatial={lam_s:g}, "
                         f"lambda_intensity={lam_i:g}")
    h, w, _ = lo_in.shape
    gh, gw, gd = _grid_size(grid, h, w)
    n_cells = gh * gw * gd
    n_unk = n_cells * 4
    bin_y, bin_x, bin_z = h / gh, w / gw, 1.0 / gd

    # ---- data term: one row per pixel (shared by the 3 output channels), 8 corners x 4 inputs
    y0, y1, fy = _axis(h, gh)
    x0, x1, fx = _axis(w, gw)
    z0, z1, fz = _axis(0, gd, luminance(lo_in) * gd - 0.5)
    n_pix = h * w
    cols = np.empty((n_pix, 8, 4), np.int64)
    vals = np.empty((n_pix, 8, 4), np.float64)
    feat = np.concatenate([lo_in.reshape(n_pix, 3), np.ones((n_pix, 1))], axis=1)
    zc = (z0.ravel(), z1.ravel())
    wz = (1.0 - fz.ravel(), fz.ravel())
    k = 0
    for yi, wy in ((y0, 1.0 - fy), (y1, fy)):
        for xi, wx in ((x0, 1.0 - fx), (x1, fx)):
            base = ((yi[:, None] * gw + xi[None, :]) * gd).ravel()
            wyx = (wy[:, None] * wx[None, :]).ravel()
            for zi, wzz in zip(zc, wz):
                cols[:, k, :] = ((base + zi) * 4)[:, None] + np.arange(4)
                vals[:, k, :] = (wyx * wzz)[:, None] * feat
                k += 1
    a = sp.csr_matrix((vals.ravel(), cols.ravel(), np.arange(0, 32 * n_pix + 1, 32)),
                      shape=(n_pix, n_unk))
    at = a.T.tocsr()
    normal = at @ a
    rhs = at @ lo_out.reshape(n_pix, 3)

    # ---- smoothness: D^T D on each axis, Kronecker-expanded to (y, x, z, coefficient) order
    wy_s = bin_x * bin_z / bin_y * lam_s
    wx_s = bin_y * bin_z / bin_x * lam_s
    wz_s = bin_x * bin_y / bin_z ** 2 * lam_i
    eye = lambda n: sp.identity(n, format="csr")  # noqa: E731
    smooth = (wy_s ** 2 * sp.kron(_diff_gram(gh, 1), eye(gw * gd * 4))
              + wx_s ** 2 * sp.kron(sp.kron(eye(gh), _diff_gram(gw, 1)), eye(gd * 4))
              + wz_s ** 2 * sp.kron(eye(gh * gw), sp.kron(_diff_gram(gd, 2), eye(4))))
    system = (normal + smooth).tocsc()
    ridge = RIDGE * max(float(system.diagonal().mean()), 1e-300)
    system = system + ridge * sp.identity(n_unk, format="csc")

    # SPD system: symmetric-mode SuperLU without pivoting, on a nested-dissection order of the
    # cells (about half the fill and factorisation time of SuperLU's own minimum-degree orders)
    perm = _nested_dissection(gh, gw, gd)
    system = system[perm][:, perm].tocsc()
    lu = spla.splu(system, permc_spec="NATURAL", diag_pivot_thresh=0.0,
                   options={"SymmetricMode": True})
    coef = np.empty((n_unk, 3), np.float64)
    coef[perm] = lu.solve(np.asarray(rhs, dtype=np.float64)[perm])
    if not np.isfinite(coef).all():  # pragma: no cover - SPD system, should not happen
        raise FloatingPointError("BGU fit: the least-squares solve produced non-finite values")
    # coef[(cell)*4 + j, i]  ->  grid[y, x, z, i, j]
    return np.ascontiguousarray(coef.reshape(gh, gw, gd, 4, 3).transpose(0, 1, 2, 4, 3))


# --------------------------------------------------------------------------- slice
@njit(cache=True, parallel=True)
def _slice_kernel(grid, image, y0, y1, fy, x0, x1, fx, depth):  # pragma: no cover - numba
    h, w = image.shape[0], image.shape[1]
    out = np.empty((h, w, 3), np.float64)
    top = depth - 1.0
    for r in prange(h):
        ya, yb, ty = y0[r], y1[r], fy[r]
        coef = np.empty((3, 4), np.float64)
        for c in range(w):
            red, green, blue = image[r, c, 0], image[r, c, 1], image[r, c, 2]
            gz = (0.299 * red + 0.587 * green + 0.114 * blue) * depth - 0.5
            if gz < 0.0:
                gz = 0.0
            elif gz > top:
                gz = top
            za = min(int(math.floor(gz)), depth - 1)
            zb = min(za + 1, depth - 1)
            tz = gz - za
            xa, xb, tx = x0[c], x1[c], fx[c]
            for i in range(3):
                for j in range(4):
                    coef[i, j] = 0.0
            for cy in range(2):
                yi = ya if cy == 0 else yb
                wy = 1.0 - ty if cy == 0 else ty
                for cx in range(2):
                    xi = xa if cx == 0 else xb
                    wyx = wy * (1.0 - tx if cx == 0 else tx)
                    for cz in range(2):
                        zi = za if cz == 0 else zb
                        wgt = wyx * (1.0 - tz if cz == 0 else tz)
                        for i in range(3):
                            for j in range(4):
                                coef[i, j] += wgt * grid[yi, xi, zi, i, j]
            for i in range(3):
                out[r, c, i] = (coef[i, 0] * red + coef[i, 1] * green + coef[i, 2] * blue
                                + coef[i, 3])
    return out


def slice_apply(grid, image) -> np.ndarray:
    """Slice ``grid`` (``(gh, gw, gd, 3, 4)``, from :func:`fit`) with ``image`` and apply it.

    ``image``: HxWx3 (or HxW gray) uint8 or float in [0, 1], usually the full-resolution input.
    Its pixel centres map to grid coordinates with this image's own bin sizes (``W/gw``, ``H/gh``),
    its luminance gives the z coordinate; the affine is interpolated trilinearly and applied to
    ``[r, g, b, 1]``. Returns float64 HxWx3, unclipped.
    """
    g = np.asarray(grid)
    if g.ndim != 5 or g.shape[3:] != (3, 4) or min(g.shape[:3]) < 1:
        raise ValueError(f"grid must have shape (gh, gw, gd, 3, 4), got {g.shape}")
    if not np.issubdtype(g.dtype, np.floating) and not np.issubdtype(g.dtype, np.integer):
        raise TypeError(f"grid has unsupported dtype {g.dtype}")
    g = np.ascontiguousarray(g, dtype=np.float64)
    if not np.isfinite(g).all():
        raise ValueError("grid contains NaN or infinite values")
    img = np.ascontiguousarray(_rgb(image, "image"))
    h, w, _ = img.shape
    gh, gw, gd = g.shape[:3]
    y0, y1, fy = _axis(h, gh)
    x0, x1, fx = _axis(w, gw)
    return _slice_kernel(g, img, y0, y1, fy, x0, x1, fx, gd)


# --------------------------------------------------------------------------- pipeline
def _factor(factor) -> int:
    if isinstance(factor, bool) or not isinstance(factor, numbers.Real):
        raise TypeError(f"factor must be a positive integer, got {factor!r}")
    if not isinstance(factor, numbers.Integral):
        raise ValueError(f"factor must be a positive integer, got {factor!r}")
    if factor < 1:
        raise ValueError(f"factor must be a positive integer, got {factor!r}")
    return int(factor)


def bgu(image, op: str, gamma, *, factor: int = 4, grid=None, timings: dict | None = None
        ) -> np.ndarray:
    """Run operator ``op`` at parameter ``gamma`` through Bilateral Guided Upsampling.

    Parameters
    ----------
    image : HxWx3 uint8 (or float in [0, 1]); an HxW gray image is replicated to 3 channels.
    op, gamma : operator name and γ, validated by the :mod:`operators` registry (unknown names
        and γ outside the trained range raise ``ValueError``).
    factor : positive integer downsampling factor; the operator runs on an area-averaged
        ``round(W/factor) x round(H/factor)`` copy **with the same γ**, so spatial γ act at
        ``factor`` times their scale (as in BGU). ``factor=1`` fits at full resolution.
    grid : ``(gh, gw, gd)`` or None for ``(round(h/16), round(w/16), 8)`` at low resolution.
    timings : optional dict, filled with wall seconds for ``'downsample'``, ``'operator'``,
        ``'fit'`` and ``'slice'``.

    Returns
    -------
    float64 HxWx3 on the [0, 1] scale, unclipped (use :func:`operators.to_uint8` to save).
    """
    spec = operators.get(op)
    g = spec.check_gamma(gamma)
    f = _factor(factor)
    if timings is not None and not isinstance(timings, dict):
        raise TypeError(f"timings must be a dict or None, got {type(timings).__name__}")
    img = _rgb(image, "image")
    h, w, _ = img.shape
    lo_h, lo_w = max(1, _round_half_up(h / f)), max(1, _round_half_up(w / f))
    if lo_h < MIN_LOWRES or lo_w < MIN_LOWRES:
        need = math.ceil((MIN_LOWRES - 0.5) * f)
        raise ValueError(
            f"image too small for a bilateral grid at factor {f}: {h}x{w} gives a {lo_h}x{lo_w} "
            f"low-resolution image, need at least {MIN_LOWRES}x{MIN_LOWRES} "
            f"(an image of at least {need}x{need} pixels at this factor)"
        )
    if grid is not None:
        _grid_size(grid, lo_h, lo_w)  # validate before the (possibly slow) operator runs

    t0 = time.perf_counter()
    if (lo_h, lo_w) == (h, w):
        lo_in = img.copy()
    else:
        lo_in = cv2.resize(img, (lo_w, lo_h), interpolation=cv2.INTER_AREA)
        lo_in = np.clip(lo_in, 0.0, 1.0)  # guard against rounding just outside [0, 1]
    t1 = time.perf_counter()
    lo_out = spec(lo_in, g)
    t2 = time.perf_counter()
    coeffs = fit(lo_in, lo_out, grid=grid)
    t3 = time.perf_counter()
    out = slice_apply(coeffs, img)
    t4 = time.perf_counter()
    if timings is not None:
        timings.update(downsample=t1 - t0, operator=t2 - t1, fit=t3 - t2, slice=t4 - t3)
    return out
