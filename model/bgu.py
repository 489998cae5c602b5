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

The normal equations are assembled block by block (4x4 blocks between neighbouring cells, in a
pattern that depends on the grid shape only) and solved by sparse Cholesky: MKL PARDISO through
the handle WLS uses (:class:`operators._sparse_solve.PardisoSPD`), with its ordering and symbolic
analysis cached per grid shape; SuperLU where MKL cannot be loaded (``fit(..., backend=...)``).
Both give the same output to rounding; at 1024² (factor 4) the fit is about 4x faster than
SuperLU on one core.

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
import numba
import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as spla
from operators._jit import njit, prange

import operators
from operators import _sparse_solve, as_float_image
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


# --------------------------------------------------------------------------- the system
# The unknowns are numbered cell-major, cell = (y*gw + x)*gd + z, 4 coefficients per cell. A cell
# interacts with the 26 cells around it (the data term: the 2x2x2 corners of a pixel share its
# row) and with the cells two bins away in z (second differences). The blocks to cells after it
# (in that order) have these offsets (dy, dx, dz), the diagonal block first; the blocks before it
# are their transposes. Every block is a symmetric 4x4 matrix (a sum of w*w'*f*f^T and multiples
# of the identity), stored as its 10 entries j <= k.
_UPPER = ((0, 0, 0), (0, 0, 1), (0, 0, 2), (0, 1, -1), (0, 1, 0), (0, 1, 1),
          (1, -1, -1), (1, -1, 0), (1, -1, 1), (1, 0, -1), (1, 0, 0), (1, 0, 1),
          (1, 1, -1), (1, 1, 0), (1, 1, 1))
_N_UPPER = len(_UPPER)
#: (dy + 1, dx + 1, dz + 2) -> position in _UPPER (-1: no block)
_OFFSET_INDEX = np.full((3, 3, 5), -1, np.int64)
for _i, (_dy, _dx, _dz) in enumerate(_UPPER):
    _OFFSET_INDEX[_dy + 1, _dx + 1, _dz + 2] = _i
#: entry (j, k) of a symmetric 4x4 block -> its place among the 10 stored entries
_SYM = np.array([[0, 1, 2, 3], [1, 4, 5, 6], [2, 5, 7, 8], [3, 6, 8, 9]])
_SYM_DIAG = np.diagonal(_SYM).copy()


@functools.lru_cache(maxsize=16)
def _pattern(gh: int, gw: int, gd: int):
    """Upper-triangular CSR pattern of the normal matrix of a ``gh x gw x gd`` grid.

    The pattern holds every block of :data:`_UPPER` that lies inside the grid, whatever the image
    (a superset of any one image's nonzeros), so its fill-reducing analysis can be cached per grid
    shape. Returns ``(indptr, indices, source, diagonal)``: int32 CSR arrays, the index of each
    entry in the flattened ``(cells, 15, 10)`` block array, and the positions of the diagonal.
    """
    n = gh * gw * gd * 4
    iy, ix, iz = (a.ravel() for a in np.meshgrid(np.arange(gh), np.arange(gw), np.arange(gd),
                                                 indexing="ij"))
    cell = (iy * gw + ix) * gd + iz
    full_j, full_k = (a.ravel() for a in np.indices((4, 4)))
    upper_j, upper_k = np.triu_indices(4)
    rows, cols, src = [], [], []
    for nb, (dy, dx, dz) in enumerate(_UPPER):
        y2, x2, z2 = iy + dy, ix + dx, iz + dz
        ok = (y2 >= 0) & (y2 < gh) & (x2 >= 0) & (x2 < gw) & (z2 >= 0) & (z2 < gd)
        c1, c2 = cell[ok], ((y2 * gw + x2) * gd + z2)[ok]
        j, k = (upper_j, upper_k) if nb == 0 else (full_j, full_k)
        rows.append((c1[:, None] * 4 + j).ravel())
        cols.append((c2[:, None] * 4 + k).ravel())
        src.append(((c1[:, None] * _N_UPPER + nb) * 10 + _SYM[j, k]).ravel())
    rows, cols, src = np.concatenate(rows), np.concatenate(cols), np.concatenate(src)
    order = np.lexsort((cols, rows))
    indptr = np.zeros(n + 1, np.int64)
    np.cumsum(np.bincount(rows, minlength=n), out=indptr[1:])
    out = (indptr.astype(np.int32), cols[order].astype(np.int32), src[order],
           indptr[:-1].copy())  # the diagonal is the first (smallest) column of each upper row
    for a in out:
        a.setflags(write=False)
    return out


@njit(cache=True, parallel=True)
def _data_term(image, target, y0, y1, fy, x0, x1, fx, z0, z1, fz, gw, gd, n_cells, offset_index,
               chunks):  # pragma: no cover - numba
    """Normal-equation blocks and right-hand side of the data term, one partial sum per chunk of
    rows: ``blocks[t, cell, offset, 10]`` (the upper blocks, symmetric 4x4 each) and
    ``rhs[t, cell, 4, 3]``."""
    h, w = image.shape[0], image.shape[1]
    blocks = np.zeros((chunks, n_cells, 15, 10))
    rhs = np.zeros((chunks, n_cells, 4, 3))
    per = (h + chunks - 1) // chunks
    for t in prange(chunks):
        cells = np.empty(8, np.int64)
        cy = np.empty(8, np.int64)
        cx = np.empty(8, np.int64)
        cz = np.empty(8, np.int64)
        wts = np.empty(8)
        f = np.empty(4)
        ff = np.empty(10)
        for r in range(t * per, min(h, (t + 1) * per)):
            for c in range(w):
                p = r * w + c
                f[0], f[1], f[2], f[3] = image[r, c, 0], image[r, c, 1], image[r, c, 2], 1.0
                q = 0
                for j in range(4):
                    for k in range(j, 4):
                        ff[q] = f[j] * f[k]
                        q += 1
                k = 0
                for a in range(2):
                    yi = y0[r] if a == 0 else y1[r]
                    wy = 1.0 - fy[r] if a == 0 else fy[r]
                    for b in range(2):
                        xi = x0[c] if b == 0 else x1[c]
                        wx = 1.0 - fx[c] if b == 0 else fx[c]
                        for d in range(2):
                            zi = z0[p] if d == 0 else z1[p]
                            cy[k], cx[k], cz[k] = yi, xi, zi
                            cells[k] = (yi * gw + xi) * gd + zi
                            wts[k] = wy * wx * (1.0 - fz[p] if d == 0 else fz[p])
                            k += 1
                for k in range(8):
                    wk = wts[k]
                    if wk == 0.0:
                        continue
                    ck = cells[k]
                    for ch in range(3):
                        o = wk * target[r, c, ch]
                        for j in range(4):
                            rhs[t, ck, j, ch] += o * f[j]
                    for m in range(k, 8):
                        wm = wts[m]
                        if wm == 0.0:
                            continue
                        cm = cells[m]
                        ww = wk * wm
                        if ck == cm:
                            nb, base = 0, ck
                            if m != k:  # (k, m) and (m, k) land on the same diagonal block
                                ww *= 2.0
                        elif ck < cm:
                            nb = offset_index[cy[m] - cy[k] + 1, cx[m] - cx[k] + 1,
                                              cz[m] - cz[k] + 2]
                            base = ck
                        else:
                            nb = offset_index[cy[k] - cy[m] + 1, cx[k] - cx[m] + 1,
                                              cz[k] - cz[m] + 2]
                            base = cm
                        for q in range(10):
                            blocks[t, base, nb, q] += ww * ff[q]
    return blocks, rhs


def _add_smoothness(blocks: np.ndarray, weights, gh: int, gw: int, gd: int) -> None:
    """Add ``w_y^2 Dy^T Dy + w_x^2 Dx^T Dx + w_z^2 Dzz^T Dzz`` (each times the 4x4 identity) to
    ``blocks`` (``(gh, gw, gd, 15, 10)``) in place."""
    wy2, wx2, wz2 = (w ** 2 for w in weights)
    d = _SYM_DIAG
    oi = lambda dy, dx, dz: int(_OFFSET_INDEX[dy + 1, dx + 1, dz + 2])  # noqa: E731
    gy = _diff_gram(gh, 1).toarray()
    gx = _diff_gram(gw, 1).toarray()
    gz = _diff_gram(gd, 2).toarray()
    blocks[..., 0, d] += (wy2 * np.diag(gy))[:, None, None, None]
    blocks[:-1, :, :, oi(1, 0, 0), d] += (wy2 * np.diag(gy, 1))[:, None, None, None]
    blocks[..., 0, d] += (wx2 * np.diag(gx))[None, :, None, None]
    blocks[:, :-1, :, oi(0, 1, 0), d] += (wx2 * np.diag(gx, 1))[None, :, None, None]
    blocks[..., 0, d] += (wz2 * np.diag(gz))[None, None, :, None]
    blocks[:, :, :-1, oi(0, 0, 1), d] += (wz2 * np.diag(gz, 1))[None, None, :, None]
    blocks[:, :, :-2, oi(0, 0, 2), d] += (wz2 * np.diag(gz, 2))[None, None, :, None]


# --------------------------------------------------------------------------- the solve
#: MKL PARDISO handles (:class:`operators._sparse_solve.PardisoSPD`, the one WLS uses) of the
#: most recently used grid shapes (a 16x16x8 grid's factor: ~25 MB)
_MAX_HANDLES = 4
_HANDLES = _sparse_solve.HandleCache(lambda hs: len(hs) > _MAX_HANDLES)


def _pardiso_analysis(shape) -> _sparse_solve.PardisoSPD:
    """A new sparse Cholesky handle (PARDISO, real SPD) for the normal matrices of one shape.

    The ordering (METIS nested dissection: fewest flops on these 3-D grids) and the symbolic
    analysis are done on a fixed, diagonally dominant matrix with the shape's pattern
    (:func:`_pattern`), so results do not depend on what was fitted before; it is cached per
    shape in :data:`_HANDLES`, and each fit runs the numeric factorisation and the solves of its
    three right-hand sides in one call.
    """
    indptr, indices, _, diagonal = _pattern(*shape)
    data = np.full(len(indices), -1e-3)  # diagonally dominant: SPD, any image's pattern
    data[diagonal] = 1.0
    return _sparse_solve.PardisoSPD(indptr, indices, data, ordering="metis")


def _solve_superlu(shape, data: np.ndarray, rhs: np.ndarray) -> np.ndarray:
    """The same SPD system by SuperLU in symmetric mode without pivoting, on a nested-dissection
    order of the cells (the fallback where MKL cannot be loaded)."""
    indptr, indices, _, _ = _pattern(*shape)
    n = len(indptr) - 1
    upper = sp.csr_matrix((data, indices, indptr), shape=(n, n))
    system = (upper + sp.triu(upper, k=1).T).tocsc()
    perm = _nested_dissection(*shape)
    lu = spla.splu(system[perm][:, perm].tocsc(), permc_spec="NATURAL", diag_pivot_thresh=0.0,
                   options={"SymmetricMode": True})
    coef = np.empty((n, rhs.shape[1]), np.float64)
    coef[perm] = lu.solve(np.asarray(rhs, dtype=np.float64)[perm])
    return coef


BACKENDS = ("auto", "pardiso", "scipy")


def _solve(shape, data: np.ndarray, rhs: np.ndarray, backend: str) -> np.ndarray:
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {', '.join(map(repr, BACKENDS))}, "
                         f"got {backend!r}")
    if backend != "scipy":
        if _sparse_solve.pardiso_available():
            try:
                x = _HANDLES.solve(shape, functools.partial(_pardiso_analysis, shape), data,
                                   np.ascontiguousarray(rhs.T))  # one rhs after another
                return x.T
            except RuntimeError:
                if backend == "pardiso":
                    raise
                # "auto": e.g. a numerically indefinite matrix (zero pivot); SuperLU decides
        elif backend == "pardiso":
            raise RuntimeError("MKL PARDISO is unavailable (pip install pypardiso on x86-64 "
                               "Linux/Windows), use backend='scipy'")
    return _solve_superlu(shape, data, rhs)


# --------------------------------------------------------------------------- fit
def fit(lo_in, lo_out, *, grid=None, lambda_spatial: float = 1.0,
        lambda_intensity: float = 4e-7, backend: str = "auto") -> np.ndarray:
    """Fit a bilateral grid of affine colour models mapping ``lo_in`` to ``lo_out``.

    Parameters
    ----------
    lo_in, lo_out : HxWx3 float arrays (low resolution), the operator's input and output; ``lo_in``
        in [0, 1] (its luminance is the guide), ``lo_out`` any finite values.
    grid : ``(gh, gw, gd)`` or None for :func:`default_grid_size`.
    lambda_spatial, lambda_intensity : smoothness weights (authors' defaults 1 and 4e-7).
    backend : solver of the (symmetric positive definite) normal equations: ``"pardiso"`` (MKL
        PARDISO sparse Cholesky, as WLS), ``"scipy"`` (SuperLU) or ``"auto"`` (PARDISO where
        it loads, else SuperLU). They agree to rounding.

    Returns
    -------
    float64 array ``(gh, gw, gd, 3, 4)``: in each cell, output channel ``i`` is
    ``A[i, 0]*r + A[i, 1]*g + A[i, 2]*b + A[i, 3]``.
    """
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {', '.join(map(repr, BACKENDS))}, "
                         f"got {backend!r}")
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
    bin_y, bin_x, bin_z = h / gh, w / gw, 1.0 / gd

    # ---- data term: the normal equations of one row per pixel (8 corners x [r, g, b, 1]),
    # accumulated block by block (never forming the rectangular matrix)
    y0, y1, fy = _axis(h, gh)
    x0, x1, fx = _axis(w, gw)
    z0, z1, fz = _axis(0, gd, luminance(lo_in).ravel() * gd - 0.5)
    chunks = max(1, min(numba.get_num_threads(), h))
    parts, rhs_parts = _data_term(np.ascontiguousarray(lo_in), np.ascontiguousarray(lo_out),
                                  y0, y1, fy, x0, x1, fx, z0, z1, fz, gw, gd, n_cells,
                                  _OFFSET_INDEX, chunks)
    blocks = parts.sum(axis=0).reshape(gh, gw, gd, _N_UPPER, 10)
    rhs = rhs_parts.sum(axis=0).reshape(n_cells * 4, 3)

    # ---- smoothness: first differences along y and x, second differences along z
    _add_smoothness(blocks, (bin_x * bin_z / bin_y * lam_s, bin_y * bin_z / bin_x * lam_s,
                             bin_x * bin_y / bin_z ** 2 * lam_i), gh, gw, gd)
    _, _, source, diagonal = _pattern(gh, gw, gd)
    data = blocks.ravel()[source]
    data[diagonal] += RIDGE * max(float(data[diagonal].mean()), 1e-300)

    coef = _solve((gh, gw, gd), data, rhs, backend)
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
