"""Numba kernels of the fast local Laplacian filter (see :mod:`operators.llf`).

The pyramid of the reference filters with the separable 5-tap kernel, zero padding and
"reweighted" borders (divide by the filtered ones, or by the filtered 0/1 mask when upsampling).
Both the numerator and the normaliser are separable, so every resampling step is a 1-D normalised
tap table per axis, built once per level size by :func:`down_taps` and :func:`up_taps`:

* downsampling: coarse sample p reads fine samples 2p-2 .. 2p+2;
* upsampling: fine sample i reads coarse samples i//2 - 1 .. i//2 + 1 (even i: weights
  .05 .4 .05; odd i: .25 .25 on (i-1)/2 and (i+1)/2).

Taps that fall outside the image get weight 0 and a valid (clamped) index, so the loops never
branch on the border.

The remapped images d_k of the N intensity samples are handled together as the last axis of
(h, w, N) arrays: one pass over the image builds the level-1 Gaussian level of all N remapped
images at once (the full-resolution d_k are never stored), and each collapse step touches only
the two samples whose hat weight is non-zero at a pixel.
"""
from __future__ import annotations

import math

import numpy as np
from ._jit import njit, prange

#: The pyramid's 1-D filter (its outer product with itself is the 5x5 kernel).
FILTER = np.array([0.05, 0.25, 0.4, 0.25, 0.05])

#: Above this 1/(2σ²) the Gaussian of the remapping is evaluated with one ``exp`` per sample,
#: below it with a multiplicative recurrence from the nearest sample (2 ``exp`` per pixel), whose
#: factors then stay within [e^-600, e^600] and cannot overflow.
RECURRENCE_MAX_C = 300.0


def down_taps(n: int) -> tuple[np.ndarray, np.ndarray]:
    """Normalised taps of filter-then-keep-even along an axis of ``n`` samples.

    Returns ``(idx, wt)`` of shape (ceil(n/2), 5): coarse p = Σ_t wt[p, t] · fine[idx[p, t]].
    """
    m = (n + 1) // 2
    idx = np.empty((m, 5), np.int64)
    wt = np.zeros((m, 5))
    for p in range(m):
        for t in range(5):
            i = 2 * p + t - 2
            ok = 0 <= i < n
            idx[p, t] = i if ok else 2 * p
            wt[p, t] = FILTER[t] if ok else 0.0
        wt[p] /= wt[p].sum()  # imfilter(ones) at 2p
    return idx, wt


def up_taps(n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Normalised taps of insert-at-even-positions-then-filter onto an axis of ``n`` samples.

    Returns ``(idx, wt, cnt)``: fine i = Σ_{t < cnt[i]} wt[i, t] · coarse[idx[i, t]], with
    ``cnt`` 2 or 3 (odd or even i) and the weights divided by the filtered 0/1 mask.
    """
    m = (n + 1) // 2
    idx = np.zeros((n, 3), np.int64)
    wt = np.zeros((n, 3))
    cnt = np.zeros(n, np.int64)
    for i in range(n):
        c = 0
        for t in range(5):  # fine i reads the zero-filled image at i + t - 2
            f = i + t - 2
            if f % 2 == 0 and 0 <= f // 2 < m and 0 <= f < n:
                idx[i, c] = f // 2
                wt[i, c] = FILTER[t]
                c += 1
        cnt[i] = c
        wt[i] /= wt[i].sum()
    return idx, wt, cnt


def remap_tables(refs: np.ndarray, c: float) -> tuple[bool, np.ndarray]:
    """Whether :func:`remap_downsample` may use the recurrence, and its constant factors.

    ``up[k] = exp(-c(r_{k+1}² - r_k²))``; the recurrence needs the samples evenly spaced (as
    ``linspace`` makes them, up to rounding) and c small enough that exp(2c·Δ·x) stays finite.
    """
    sq = np.diff(refs * refs)
    if not c <= RECURRENCE_MAX_C:
        return False, np.ones_like(sq)
    return True, np.exp(-c * sq)


@njit(cache=True, inline="always")
def _remap_pixel(x, refs, fact, c, use_rec, up, e):
    """e[k] = fact·(x − r_k)·exp(−c(x − r_k)²) for every sample r_k (c = 1/2σ²).

    With ``use_rec`` the Gaussians are chained from r_0 = 0 through the ratios
    exp(−c(x − r_{k+1})²) / exp(−c(x − r_k)²) = exp(2cΔx) · up[k], Δ = r_1 − r_0: two ``exp``
    per pixel instead of N, for about 1e-13 relative error. Every factor and partial product is
    a true Gaussian value or ratio, within [e^-2c, e^2c], so nothing overflows or underflows
    while c <= RECURRENCE_MAX_C.
    """
    n = refs.size
    if use_rec:
        g = math.exp(-c * x * x)
        a = math.exp(2.0 * c * refs[1] * x)
        e[0] = fact * x * g
        for k in range(1, n):
            g = g * (a * up[k - 1])
            e[k] = fact * (x - refs[k]) * g
    else:
        for k in range(n):
            dx = x - refs[k]
            e[k] = fact * dx * math.exp(-c * dx * dx)


@njit(cache=True, inline="always")
def _hat(x, refs, inv_step):
    """(k0, w0, w1): the two samples bracketing x and their hat weights max(0, 1 − |x − r|/Δ).

    The weights are computed as the reference does, (|x − r| < Δ)·(1 − |x − r|/Δ) (with a
    multiplication by 1/Δ, one rounding away); every other sample's weight is 0.
    """
    k0 = int(x * inv_step)
    k0 = min(max(k0, 0), refs.size - 2)
    t0 = abs(x - refs[k0]) * inv_step
    t1 = abs(x - refs[k0 + 1]) * inv_step
    w0 = 1.0 - t0 if t0 < 1.0 else 0.0
    w1 = 1.0 - t1 if t1 < 1.0 else 0.0
    return k0, w0, w1


@njit(cache=True, inline="always")
def _hdown_row(row, cidx, cwt, dst):
    """dst[q, :] = Σ_t cwt[q, t] · row[cidx[q, t], :] (the horizontal half of a downsample)."""
    C = row.shape[1]
    for q in range(cidx.shape[0]):
        i0, i1, i2, i3, i4 = cidx[q, 0], cidx[q, 1], cidx[q, 2], cidx[q, 3], cidx[q, 4]
        w0, w1, w2, w3, w4 = cwt[q, 0], cwt[q, 1], cwt[q, 2], cwt[q, 3], cwt[q, 4]
        for k in range(C):
            dst[q, k] = (w0 * row[i0, k] + w1 * row[i1, k] + w2 * row[i2, k]
                         + w3 * row[i3, k] + w4 * row[i4, k])


@njit(cache=True, inline="always")
def _vdown_row(ring, ridx, rwt, p, dst):
    """dst = Σ_t rwt[p, t] · (horizontally filtered fine row ridx[p, t], kept in ring slot % 5)."""
    a0, a1, a2, a3, a4 = (ring[ridx[p, 0] % 5], ring[ridx[p, 1] % 5], ring[ridx[p, 2] % 5],
                          ring[ridx[p, 3] % 5], ring[ridx[p, 4] % 5])
    w0, w1, w2, w3, w4 = rwt[p, 0], rwt[p, 1], rwt[p, 2], rwt[p, 3], rwt[p, 4]
    for q in range(dst.shape[0]):
        for k in range(dst.shape[1]):
            dst[q, k] = (w0 * a0[q, k] + w1 * a1[q, k] + w2 * a2[q, k] + w3 * a3[q, k]
                         + w4 * a4[q, k])


@njit(cache=True, parallel=True)
def downsample(src, ridx, rwt, cidx, cwt, nchunks):
    """One Gaussian pyramid step of every channel of ``src`` (h, w, C): filter, keep even samples.

    Row blocks run in parallel; each streams its fine rows through a 5-row ring of horizontally
    filtered rows, so the full-width intermediate is never stored.
    """
    h, w, C = src.shape
    h2 = ridx.shape[0]
    w2 = cidx.shape[0]
    out = np.empty((h2, w2, C))
    nchunks = max(1, min(nchunks, h2))
    for ch in prange(nchunks):
        p0 = ch * h2 // nchunks
        p1 = (ch + 1) * h2 // nchunks
        ring = np.empty((5, w2, C))
        nxt = max(0, 2 * p0 - 2)
        for p in range(p0, p1):
            last = min(h - 1, 2 * p + 2)
            while nxt <= last:
                _hdown_row(src[nxt], cidx, cwt, ring[nxt % 5])
                nxt += 1
            _vdown_row(ring, ridx, rwt, p, out[p])
    return out


@njit(cache=True, parallel=True)
def remap_downsample(img, refs, fact, c, use_rec, up, ridx, rwt, cidx, cwt, nchunks):
    """Level 1 of the Gaussian pyramids of all N remapped images, as one (h2, w2, N) array.

    d_k = fact·(I − r_k)·exp(−c(I − r_k)²) is computed row by row (all k per pixel) and
    downsampled at once, as :func:`downsample` would do on the stacked d_k. Also returns the
    hat-weighted level-0 term Σ_k w_k(I)·d_k (h, w) that :func:`collapse_bottom` needs.
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
        nxt = max(0, 2 * p0 - 2)
        for p in range(p0, p1):
            last = min(h - 1, 2 * p + 2)
            while nxt <= last:
                for j in range(w):
                    x = img[nxt, j]
                    e = row[j]
                    _remap_pixel(x, refs, fact, c, use_rec, up, e)
                    k0, w0, w1 = _hat(x, refs, inv_step)
                    wd[nxt, j] = w0 * e[k0] + w1 * e[k0 + 1]
                _hdown_row(row, cidx, cwt, ring[nxt % 5])
                nxt += 1
            _vdown_row(ring, ridx, rwt, p, out[p])
    return out, wd


@njit(cache=True, inline="always")
def _up_rows(gdc, dc, ridx, rwt, rcnt, i, tmp, tmpd):
    """The vertical half of upsampling onto fine row i, for all N samples and D at once:
    tmp[q, k] = Σ_a rwt[i, a]·gdc[ridx[i, a], q, k], tmpd[q] likewise from dc."""
    wc, n = tmp.shape
    p = ridx[i, 0]
    wa = rwt[i, 0]
    for q in range(wc):
        tmpd[q] = wa * dc[p, q]
        for k in range(n):
            tmp[q, k] = wa * gdc[p, q, k]
    for a in range(1, rcnt[i]):
        p = ridx[i, a]
        wa = rwt[i, a]
        for q in range(wc):
            tmpd[q] += wa * dc[p, q]
            for k in range(n):
                tmp[q, k] += wa * gdc[p, q, k]


@njit(cache=True, inline="always")
def _detail_row(g, i, tmp, tmpd, cidx, cwt, refs, gd, wd, bottom, dst):
    """One fine row of the detail correction D_l = up(D_{l+1}) + Σ_k w_k·(G_l(d_k) − up(...)).

    ``tmp``/``tmpd`` hold the vertically upsampled coarse rows (:func:`_up_rows`); the horizontal
    half is applied here to the two samples with non-zero hat weight only. On the finest level
    (``bottom``) ``wd[i, j]`` already holds Σ_k w_k·d_k, otherwise G_l(d_k) is read from ``gd``.
    """
    inv_step = 1.0 / refs[1]
    for j in range(dst.shape[0]):
        k0, w0, w1 = _hat(g[i, j], refs, inv_step)
        q0, q1, q2 = cidx[j, 0], cidx[j, 1], cidx[j, 2]
        b0, b1, b2 = cwt[j, 0], cwt[j, 1], cwt[j, 2]
        s0 = b0 * tmp[q0, k0] + b1 * tmp[q1, k0] + b2 * tmp[q2, k0]
        s1 = b0 * tmp[q0, k0 + 1] + b1 * tmp[q1, k0 + 1] + b2 * tmp[q2, k0 + 1]
        sd = b0 * tmpd[q0] + b1 * tmpd[q1] + b2 * tmpd[q2]
        if bottom:
            dst[j] = sd + (wd[i, j] - w0 * s0 - w1 * s1)
        else:
            dst[j] = sd + (w0 * (gd[i, j, k0] - s0) + w1 * (gd[i, j, k0 + 1] - s1))


@njit(cache=True, parallel=True)
def collapse_level(g, gd, gdc, dc, ridx, rwt, rcnt, cidx, cwt, refs, nchunks):
    """Detail correction D_l = up(D_{l+1}) + Σ_k w_k(G_l) · (G_l(d_k) − up(G_{l+1}(d_k))).

    ``g`` is G_l of the input (h, w), ``gd`` and ``gdc`` are G_l and G_{l+1} of the remapped
    images (h, w, N) and (hc, wc, N), ``dc`` is D_{l+1}. The output Laplacian level of the
    reference is L_l(I) + Σ_k w_k · L_l(d_k), so its collapsed pyramid is G_l(I) + D_l.
    """
    h, w = g.shape
    wc, n = gdc.shape[1], gdc.shape[2]
    out = np.empty((h, w))
    nchunks = max(1, min(nchunks, h))
    for ch in prange(nchunks):
        tmp = np.empty((wc, n))
        tmpd = np.empty(wc)
        for i in range(ch * h // nchunks, (ch + 1) * h // nchunks):
            _up_rows(gdc, dc, ridx, rwt, rcnt, i, tmp, tmpd)
            _detail_row(g, i, tmp, tmpd, cidx, cwt, refs, gd, g, False, out[i])
    return out


@njit(cache=True, parallel=True)
def collapse_bottom(img, colour, wd, gdc, dc, ridx, rwt, rcnt, cidx, cwt, refs, eps, nchunks):
    """The finest level and the colour transfer; ``wd`` is Σ_k w_k·d_k from
    :func:`remap_downsample`.

    Returns llf = I + D_0 (h, w, 1) when ``colour`` has one channel, else
    llf · (colour / (I + eps)) per channel (the reference's colour transfer).
    """
    h, w = img.shape
    C = colour.shape[2]
    wc, n = gdc.shape[1], gdc.shape[2]
    out = np.empty((h, w, C))
    nchunks = max(1, min(nchunks, h))
    for ch in prange(nchunks):
        tmp = np.empty((wc, n))
        tmpd = np.empty(wc)
        dst = np.empty(w)
        for i in range(ch * h // nchunks, (ch + 1) * h // nchunks):
            _up_rows(gdc, dc, ridx, rwt, rcnt, i, tmp, tmpd)
            _detail_row(img, i, tmp, tmpd, cidx, cwt, refs, gdc, wd, True, dst)
            if C == 1:
                for j in range(w):
                    out[i, j, 0] = img[i, j] + dst[j]
            else:
                for j in range(w):
                    x = img[i, j]
                    v = (x + dst[j]) / (x + eps)
                    for c in range(C):
                        out[i, j, c] = v * colour[i, j, c]
    return out
