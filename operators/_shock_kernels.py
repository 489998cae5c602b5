"""Numba kernel of the Osher–Rudin shock filter (see :mod:`operators.shock`).

One explicit time step reads the current image ``u`` and writes the next one; row blocks run in
parallel. The mixed derivative u_xy needs the central x-difference u_x of the rows above and
below, so each block keeps u_x of three consecutive rows in a small ring instead of storing the
whole u_x image. Every output pixel is a fixed sequence of float64 operations on its 3x3
neighbourhood, so the result does not depend on the number of threads or blocks.

Only the *sign* of u_nn enters the update, and u_nn = num / (u_x² + u_y² + 1e-8) with a positive
finite denominator, so the division is skipped: sign(num / den) = sign(num) for every finite num
(the quotient could only round to zero below ~1e-300, far under the smallest non-zero num of
differences of [0, 1] data). The interior of each row is written without branches (selects), so
the loop vectorises.
"""
from __future__ import annotations

import math

import numpy as np
from ._jit import njit, prange


@njit(cache=True, inline="always")
def _ux_row(row, dst):
    """dst[j] = (u⁻ₓ + u⁺ₓ)/2 along one row, with replicate-clamped neighbours."""
    w = row.shape[0]
    dst[0] = (0.0 + (row[1] - row[0])) / 2.0
    for j in range(1, w - 1):
        dst[j] = ((row[j] - row[j - 1]) + (row[j + 1] - row[j])) / 2.0
    dst[w - 1] = ((row[w - 1] - row[w - 2]) + 0.0) / 2.0


@njit(cache=True, inline="always")
def _pixel(c, l, r, t, b, uxc, uxt, uxb, dt, h):
    """The updated value of one pixel from its value ``c``, its (clamped) left/right/top/bottom
    neighbours and u_x at the same column of its own row, the row above and the row below."""
    dxm = c - l
    dxp = r - c
    dym = c - t
    dyp = b - c
    ux = uxc
    uy = (dym + dyp) / 2.0
    # minmod magnitudes: min(|a|, |b|), 0 where a·b < 0
    dx = min(abs(dxm), abs(dxp))
    dx = 0.0 if dxm * dxp < 0.0 else dx
    dy = min(abs(dym), abs(dyp))
    dy = 0.0 if dym * dyp < 0.0 else dy
    uxx = r + l - 2.0 * c
    uyy = b + t - 2.0 * c
    uxy = (uxb - uxt) / 2.0
    # numerator of u_nn, evaluated in MATLAB's order; where u_x = u_y = 0, u_nn = u_xx
    num = uxx * (ux * ux) + 2.0 * uxy * ux * uy + uyy * (uy * uy)
    unn = uxx if abs(ux) + abs(uy) == 0.0 else num
    s = (1.0 if unn < 0.0 else 0.0) - (1.0 if unn > 0.0 else 0.0)  # −sign(u_nn)
    return c + dt * (s * math.sqrt(dx * dx + dy * dy) / h)


@njit(cache=True, inline="always")
def _step_row(a, i, ring, dt, h, out):
    """One time step of row ``i`` of ``a`` into ``out``; ``ring`` holds u_x of rows i−1, i, i+1
    (clamped) in slots (i−1) % 3, i % 3, (i+1) % 3."""
    hh, w = a.shape
    cur = a[i]
    top = a[max(i - 1, 0)]
    bot = a[min(i + 1, hh - 1)]
    uxc = ring[i % 3]
    uxt = ring[(i + 2) % 3]
    uxb = ring[(i + 1) % 3]
    out[0] = _pixel(cur[0], cur[0], cur[1], top[0], bot[0], uxc[0], uxt[0], uxb[0], dt, h)
    for j in range(1, w - 1):
        out[j] = _pixel(cur[j], cur[j - 1], cur[j + 1], top[j], bot[j], uxc[j], uxt[j], uxb[j],
                        dt, h)
    e = w - 1
    out[e] = _pixel(cur[e], cur[e - 1], cur[e], top[e], bot[e], uxc[e], uxt[e], uxb[e], dt, h)


@njit(cache=True, inline="always")
def _step_rows(a, i0, i1, ring, dt, h, out):
    """Rows i0 .. i1−1 of one time step, streaming u_x through the three-row ring."""
    hh = a.shape[0]
    _ux_row(a[max(i0 - 1, 0)], ring[(i0 + 2) % 3])
    _ux_row(a[i0], ring[i0 % 3])
    for i in range(i0, i1):
        _ux_row(a[min(i + 1, hh - 1)], ring[(i + 1) % 3])
        _step_row(a, i, ring, dt, h, out[i])


@njit(cache=True, parallel=True)
def _step_parallel(a, out, dt, h, nchunks):
    hh, w = a.shape
    for ch in prange(nchunks):
        ring = np.empty((3, w))
        _step_rows(a, ch * hh // nchunks, (ch + 1) * hh // nchunks, ring, dt, h, out)


@njit(cache=True)
def _step_serial(a, out, dt, h, ring):
    _step_rows(a, 0, a.shape[0], ring, dt, h, out)


#: Below this many pixels a time step runs on one thread: the parallel launch would cost more.
SERIAL_MAX_PIXELS = 1 << 16


def shock_steps(u0: np.ndarray, iterations: int, dt: float, h: float, nchunks: int) -> np.ndarray:
    """``iterations`` explicit steps u ← u − dt·sign(u_nn)·|∇u|_minmod / h of an (H, W) float64
    image (H, W >= 2); returns a new array."""
    a = np.array(u0, dtype=np.float64, order="C", copy=True)
    b = np.empty_like(a)
    hh, w = a.shape
    nchunks = max(1, min(nchunks, hh))
    ring = np.empty((3, w))
    for _ in range(iterations):
        if hh * w <= SERIAL_MAX_PIXELS or nchunks == 1:
            _step_serial(a, b, dt, h, ring)
        else:
            _step_parallel(a, b, dt, h, nchunks)
        a, b = b, a
    return a


@njit(cache=True, parallel=True)
def replace_luma(rgb, y0, y1, k, nchunks):
    """RGB with its luma changed from ``y0`` to ``y1`` and Cb, Cr kept, clipped to [0, 1].

    ``ycbcr2rgb`` is linear, so replacing Y in ``rgb2ycbcr(rgb)`` and converting back equals
    rgb + k·(y1 − y0) with k = 255·T⁻¹[:, 0] (the inverse matrix's Y column), up to rounding
    (~1e-15); MATLAB's clipping of double output is applied at the end.
    """
    h, w, _ = rgb.shape
    out = np.empty((h, w, 3))
    nchunks = max(1, min(nchunks, h))
    for ch in prange(nchunks):
        for i in range(ch * h // nchunks, (ch + 1) * h // nchunks):
            for j in range(w):
                d = y1[i, j] - y0[i, j]
                for c in range(3):
                    v = rgb[i, j, c] + k[c] * d
                    out[i, j, c] = min(max(v, 0.0), 1.0)
    return out
