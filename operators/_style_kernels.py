"""Numba kernels of the LLF style transfer (see :mod:`operators.style`).

Histograms with MATLAB ``hist(y, centres)`` semantics, the transfer-table application ``ap`` and
the forward-difference gradient magnitude of ``style_transfer.m``. All are exact integer counting
or fixed per-pixel float64 expressions, so they give identical results with any thread count
(histogram counts are merged per block in a fixed order; integer sums are exact anyway).
"""
from __future__ import annotations

import math

import numpy as np
from ._jit import njit, prange


@njit(cache=True, inline="always")
def _bin(v, edges, scale):
    """Index of the bin of v: the number of edges strictly below v (v on an edge goes to the
    lower bin; values beyond the outer edges to the first/last bin)."""
    k = edges.size  # number of bins − 1
    b = int(min(max(v * scale + 0.5, 0.0), float(k)))
    while b > 0 and v <= edges[b - 1]:
        b -= 1
    while b < k and v > edges[b]:
        b += 1
    return b


@njit(cache=True, parallel=True)
def hist_counts(values, edges, nchunks):
    """MATLAB ``hist`` counts of the 2-D array ``values`` for bins separated by ``edges``
    (K − 1 increasing midpoints of K evenly spaced centres on [0, 1]): int64 (K,)."""
    h, w = values.shape
    k = edges.size + 1
    scale = float(k - 1)
    nchunks = max(1, min(nchunks, h))
    part = np.zeros((nchunks, k), np.int64)
    for ch in prange(nchunks):
        cnt = part[ch]
        for i in range(ch * h // nchunks, (ch + 1) * h // nchunks):
            for j in range(w):
                cnt[_bin(values[i, j], edges, scale)] += 1
    out = np.zeros(k, np.int64)
    for ch in range(nchunks):
        out += part[ch]
    return out


@njit(cache=True, parallel=True)
def apply_table(a, f, nchunks):
    """``ap(A, f)`` of style_transfer.m: i = clamp(floor(255·A), 0, 255),
    w = min((255·A − i)/255, 255), out = (1 − w)·f[i] + w·f[i + 1] (``f`` has 257 entries).

    The weight is divided by 255 twice, as in the reference, so it lies in [0, 1/255): the
    "interpolation" is almost a pure lookup.
    """
    h, w = a.shape
    out = np.empty((h, w))
    nchunks = max(1, min(nchunks, h))
    for ch in prange(nchunks):
        for i in range(ch * h // nchunks, (ch + 1) * h // nchunks):
            for j in range(w):
                s = 255.0 * a[i, j]
                idx = min(max(math.floor(s), 0.0), 255.0)
                wt = min((s - idx) / 255.0, 255.0)
                k = int(idx)
                out[i, j] = (1.0 - wt) * f[k] + wt * f[k + 1]
    return out


@njit(cache=True, parallel=True)
def gradient_magnitude(x, nchunks):
    """sqrt((X[i,j] − X[i+1,j])² + (X[i,j] − X[i,j+1])²) for i < H−1, j < W−1 (forward
    differences, no padding): (H−1, W−1)."""
    h, w = x.shape
    out = np.empty((h - 1, w - 1))
    nchunks = max(1, min(nchunks, h - 1))
    for ch in prange(nchunks):
        for i in range(ch * (h - 1) // nchunks, (ch + 1) * (h - 1) // nchunks):
            for j in range(w - 1):
                dv = x[i, j] - x[i + 1, j]
                dh = x[i, j] - x[i, j + 1]
                out[i, j] = math.sqrt(dv * dv + dh * dh)
    return out


@njit(cache=True, parallel=True)
def normalise(x, nchunks):
    """(X − min X)/(max X − min X), as style_transfer.m rescales the filtered image; 0 where
    the image is flat (the reference would divide 0 by 0)."""
    h, w = x.shape
    lo = x[0, 0]
    hi = x[0, 0]
    for i in range(h):
        for j in range(w):
            v = x[i, j]
            lo = min(lo, v)
            hi = max(hi, v)
    rng = hi - lo
    out = np.empty((h, w))
    nchunks = max(1, min(nchunks, h))
    for ch in prange(nchunks):
        for i in range(ch * h // nchunks, (ch + 1) * h // nchunks):
            for j in range(w):
                out[i, j] = (x[i, j] - lo) / rng if rng > 0.0 else 0.0
    return out
