"""The fast local Laplacian filter with other remapping functions (``llf_remap``, ``style``).

:mod:`operators._llf_kernels` implements the pyramid machinery of the authors' ``llf.m``
(Aubry et al. 2014) for its Gaussian detail curve. Two more operators of the paper use the same
machinery with a different per-sample remapping of the image:

* ``llf_general.m`` with ``remapping_function.m`` (operator ``llf_remap``): every Laplacian level
  of the output is Σ_k w_k(G_l)·L_l(r(I − r_k)) with r(y) = 3y for |y| < 0.1, y ± 0.2 beyond, and
  r(±0.1) = 0 (no branch takes the boundary). By linearity this equals
  L_l(I) + Σ_k w_k·L_l(e_k) with the *detail* e_k = r(I − r_k) − (I − r_k), because the hat
  weights sum to one on [0, 1] and the Laplacian levels of the constant r_k vanish. That is
  exactly ``llf.m``'s structure (input Laplacian plus weighted remapped detail), so its fused
  kernels apply unchanged; only the level-1 downsampling of the remapped images differs
  (:func:`remap_downsample` here, with ``MODE_ENHANCE``). The rewrite changes the result by
  float64 rounding only (~1e-15).
* ``style_transfer.m``'s ``llf_discrete`` (operator ``style``): the pyramid starts from L(A)
  like ``llf.m``, and the remapped image of sample r_k is the table lookup
  sign(A − r_k)·((1 − w)·f(i) + w·f(i + 1)), d = |255·(A − r_k)|, i = floor(d),
  w = min((d − i)/255, 255) (``MODE_TABLE``; ``f`` has 257 entries, the last 1).

The remapped images are never stored at full resolution: one streaming pass per row builds their
level-1 Gaussian level (all N at once, as the last axis) and the hat-weighted level-0 sum
Σ_k w_k·e_k, which :func:`operators._llf_kernels.collapse_bottom` needs.
"""
from __future__ import annotations

import math

import numpy as np
from ._jit import njit, prange

from ._llf_kernels import _hat, _hdown_row, _vdown_row

#: ``llf_remap``'s remapping (remapping_function.m), as detail e_k = r(x − r_k) − (x − r_k).
MODE_ENHANCE = 0
#: ``style``'s table lookup sign(x − r_k)·f(|255(x − r_k)|) (llf_discrete in style_transfer.m).
MODE_TABLE = 1


@njit(cache=True, inline="always")
def _enhance_detail(y):
    """r(y) − y for remapping_function.m's r (3y inside (−0.1, 0.1), y ± 0.2 outside, 0 at
    exactly ±0.1): 2y clamped to [−0.2, 0.2], and −y at exactly ±0.1. Written with selects
    only, so the loop over the samples vectorises; equal to r(y) − y up to one rounding."""
    e = min(max(2.0 * y, -0.2), 0.2)
    return -y if abs(y) == 0.1 else e


@njit(cache=True, inline="always")
def _remap_pixel(x, refs, mode, table, e, wts, idx):
    """e[k] = the remapped value of intensity x for every sample r_k (see the module notes)."""
    n = refs.size
    if mode == MODE_ENHANCE:
        for k in range(n):
            e[k] = _enhance_detail(x - refs[k])
    else:
        last = table.size - 2
        for k in range(n):  # the arithmetic, exact division included (vectorisable)
            d = abs(255.0 * (x - refs[k]))
            i = min(math.floor(d), last)
            wts[k] = min((d - i) / 255.0, 255.0)
            idx[k] = i
        for k in range(n):  # the table gathers
            dd = x - refs[k]
            i = idx[k]
            w = wts[k]
            v = (1.0 - w) * table[i] + w * table[i + 1]
            e[k] = v if dd > 0.0 else (-v if dd < 0.0 else 0.0)


@njit(cache=True, parallel=True)
def remap_downsample(img, refs, mode, table, ridx, rwt, cidx, cwt, nchunks):
    """Level 1 of the Gaussian pyramids of all N remapped images, as one (h2, w2, N) array,
    plus the hat-weighted level-0 term Σ_k w_k(I)·e_k (h, w).

    The remapped rows are computed on the fly and streamed through a five-row ring of
    horizontally filtered rows, exactly as :func:`operators._llf_kernels.remap_downsample` does
    for the Gaussian detail curve; row blocks run in parallel and every output value is the same
    sequence of operations whatever the block split.
    """
    h, w = img.shape
    n = refs.size
    h2 = ridx.shape[0]
    w2 = cidx.shape[0]
    inv_step = 1.0 / refs[1]
    out = np.empty((h2, w2, n))
    wd = np.empty((h, w))
    nchunks = max(1, min(nchunks, h2))
    for ch in prange(nchunks):
        p0 = ch * h2 // nchunks
        p1 = (ch + 1) * h2 // nchunks
        ring = np.empty((5, w2, n))
        row = np.empty((w, n))
        wts = np.empty(n)
        idx = np.empty(n, np.int64)
        nxt = max(0, 2 * p0 - 2)
        for p in range(p0, p1):
            last = min(h - 1, 2 * p + 2)
            while nxt <= last:
                for j in range(w):
                    x = img[nxt, j]
                    e = row[j]
                    _remap_pixel(x, refs, mode, table, e, wts, idx)
                    k0, w0, w1 = _hat(x, refs, inv_step)
                    wd[nxt, j] = w0 * e[k0] + w1 * e[k0 + 1]
                _hdown_row(row, cidx, cwt, ring[nxt % 5])
                nxt += 1
            _vdown_row(ring, ridx, rwt, p, out[p])
    return out, wd


def run_llf(gray: np.ndarray, colour: np.ndarray, refs: np.ndarray, mode: int,
            table: np.ndarray, nchunks: int) -> np.ndarray:
    """The fast LLF of a C-contiguous float64 gray image with the remapping ``mode``.

    Output levels: L_l(I) + Σ_k w_k(G_l(I))·L_l(e_k) below the top, G_top(I) on top, collapsed.
    Returns (h, w, C) as ``colour``: llf itself for C = 1, else llf·colour/(I + eps).
    The orchestration is :func:`operators.llf.collapse_pyramids`; only the first level's
    remapping differs.
    """
    from .llf import collapse_pyramids

    def first(ri, rw, ci, cw):
        return remap_downsample(gray, refs, mode, table, ri, rw, ci, cw, nchunks)

    return collapse_pyramids(gray, colour, refs, first, nchunks)
