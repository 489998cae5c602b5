"""Numba kernels of the rolling guidance filter: one streamed bilateral-grid pass.

The grid of Chen, Paris & Durand (as in the authors' ``bilateralFilter2.m``) is never stored
whole. It is built, blurred, normalised and sliced one grid row (spatial x index) at a time, with
ring buffers of three blurred rows and two normalised rows. Inside a grid row, each column (spatial
y index) only stores the range of depth (z) cells that can be non-zero, so that small σs, whose
grid has one pixel per spatial cell, costs a few cells per column instead of the whole depth.
At σs = 1 exactly (:func:`_unit_rows`) the grid is not built at all: a pixel's blurred cells are
sums over its 3x3 neighbourhood, evaluated directly in the grid's order of operations.

All cells outside the stored ranges are exactly zero in the reference too (zero data and zero
weight, hence 0 after the divide), so the result is the dense grid's, up to the order of float64
additions in the blur (the splat adds pixels in MATLAB's column-major order).
"""
from __future__ import annotations

import math

import numpy as np
from ._jit import njit, prange

#: Weight of the neighbouring cell in the grid blur: exp(-r²/2) at r = 1.
K1 = math.exp(-0.5)
#: Empty cells the grid keeps around the data on each side (2·derived σ + 1 with derived σ = 1).
PAD = 3


@njit(cache=True, inline="always")
def _round_half_away(x):
    """MATLAB ``round`` for x >= 0, exact (floor(x + 0.5) misrounds 0.49999999999999994)."""
    f = math.floor(x)
    return int(f) + 1 if x - f >= 0.5 else int(f)


@njit(cache=True, inline="always")
def _slice_depth(g, emin, sigma_r):
    """Lower depth cell of the slice at guide value ``g`` and the fraction towards the next."""
    zf = (g - emin) / sigma_r
    zl = math.floor(zf)
    return int(zl) + PAD, zf - zl


@njit(cache=True)
def _axis_maps(n, sigma_s):
    """Per pixel index: splat cell, lower slice cell and slice fraction along one spatial axis.

    Coordinates are ``i / σs`` as in the reference (a division, not a multiplication by 1/σs).
    """
    cell = np.empty(n, np.int64)
    low = np.empty(n, np.int64)
    frac = np.empty(n, np.float64)
    for i in range(n):
        x = i / sigma_s
        f = math.floor(x)
        cell[i] = _round_half_away(x) + PAD
        low[i] = int(f) + PAD
        frac[i] = x - f
    return cell, low, frac


@njit(cache=True)
def _grid_rows(data, edge, emin, sigma_r, depth, gw, rcell, rlow, rfrac, ccell, clow, cfrac,
               i0, i1, out, direct):
    """Filter pixel rows [i0, i1) of one channel (``out[i0:i1]`` is written).

    data, edge, out: HxW; emin: the guide's minimum; depth, gw: grid depth and width.
    ``direct``: every spatial coordinate i/σs is an integer (σs = 1), so each pixel reads one
    grid column of one grid row (its other three bilinear weights are 0) and each normalised cell
    is read by one pixel at most: the x-blur and the division are then done only for the two
    cells a pixel reads, not for every stored cell of the row, with the same arithmetic (same
    bits; a skipped tap only added a zero).
    """
    h, w = data.shape
    k1 = K1
    empty_lo = 1 << 30
    a_lo = rlow[i0]          # first grid row the slice reads
    a_hi = rlow[i1 - 1] + 1  # last one

    # splatted row (raw sums) and its per-column z range
    sd = np.zeros((gw, depth))
    sw = np.zeros((gw, depth))
    slo = np.full(gw, empty_lo, np.int64)
    shi = np.full(gw, -1, np.int64)
    # ring of 3 rows blurred along y and z; ring of 2 rows blurred along x and normalised
    yd = np.zeros((3, gw, depth))
    yw = np.zeros((3, gw, depth))
    ylo = np.full((3, gw), empty_lo, np.int64)
    yhi = np.full((3, gw), -1, np.int64)
    nv = np.zeros((2, gw, depth))
    nlo = np.full((2, gw), empty_lo, np.int64)
    nhi = np.full((2, gw), -1, np.int64)

    p = 0  # next pixel row to splat (rcell is non-decreasing)
    while p < h and rcell[p] < a_lo - 1:
        p += 1
    q = i0  # next pixel row to slice

    for a in range(a_lo - 1, a_hi + 2):
        # ---- splat the pixel rows whose cell is row a (column-major order, like MATLAB)
        p1 = p
        while p1 < h and rcell[p1] == a:
            p1 += 1
        if p1 > p:
            for j in range(w):
                b = ccell[j]
                for i in range(p, p1):
                    zc = _round_half_away((edge[i, j] - emin) / sigma_r) + PAD
                    sd[b, zc] += data[i, j]
                    sw[b, zc] += 1.0
                    if zc < slo[b]:
                        slo[b] = zc
                    if zc > shi[b]:
                        shi[b] = zc
        splatted = p1 > p
        p = p1

        # ---- blur row a along z then y (3 taps each) into ring slot a % 3
        s = a % 3
        for b in range(gw):
            for z in range(ylo[s, b], yhi[s, b] + 1):
                yd[s, b, z] = 0.0
                yw[s, b, z] = 0.0
            ylo[s, b] = empty_lo
            yhi[s, b] = -1
        if splatted:
            for b in range(1, gw - 1):
                lo = min(slo[b - 1], min(slo[b], slo[b + 1]))
                hi = max(shi[b - 1], max(shi[b], shi[b + 1]))
                if hi < 0:
                    continue
                lo -= 1
                hi += 1
                ylo[s, b] = lo
                yhi[s, b] = hi
                for z in range(lo, hi + 1):
                    d0 = k1 * sd[b - 1, z - 1] + sd[b - 1, z] + k1 * sd[b - 1, z + 1]
                    d1 = k1 * sd[b, z - 1] + sd[b, z] + k1 * sd[b, z + 1]
                    d2 = k1 * sd[b + 1, z - 1] + sd[b + 1, z] + k1 * sd[b + 1, z + 1]
                    w0 = k1 * sw[b - 1, z - 1] + sw[b - 1, z] + k1 * sw[b - 1, z + 1]
                    w1 = k1 * sw[b, z - 1] + sw[b, z] + k1 * sw[b, z + 1]
                    w2 = k1 * sw[b + 1, z - 1] + sw[b + 1, z] + k1 * sw[b + 1, z + 1]
                    yd[s, b, z] = k1 * d0 + d1 + k1 * d2
                    yw[s, b, z] = k1 * w0 + w1 + k1 * w2
            for b in range(gw):  # leave the splat buffer all-zero again
                for z in range(slo[b], shi[b] + 1):
                    sd[b, z] = 0.0
                    sw[b, z] = 0.0
                slo[b] = empty_lo
                shi[b] = -1

        # ---- direct: slice the pixel rows whose cell is row a-1 from rows a-2, a-1, a
        if direct:
            if a - 1 >= a_lo:
                s0 = (a - 2) % 3
                s1 = (a - 1) % 3
                while q < i1 and rlow[q] == a - 1:
                    for j in range(w):
                        b = clow[j]
                        z, fz = _slice_depth(edge[q, j], emin, sigma_r)
                        wt = k1 * yw[s0, b, z] + yw[s1, b, z] + k1 * yw[s, b, z]
                        v0 = 0.0 if wt == 0.0 else (k1 * yd[s0, b, z] + yd[s1, b, z]
                                                    + k1 * yd[s, b, z]) / wt
                        z += 1
                        wt = k1 * yw[s0, b, z] + yw[s1, b, z] + k1 * yw[s, b, z]
                        v1 = 0.0 if wt == 0.0 else (k1 * yd[s0, b, z] + yd[s1, b, z]
                                                    + k1 * yd[s, b, z]) / wt
                        acc = 0.0 + 1.0 * ((1.0 - fz) * v0 + fz * v1)
                        out[q, j] = data[q, j] if math.isnan(acc) else acc
                    q += 1
            continue

        # ---- row a-1: blur along x, divide (zero weight -> 0), into ring slot (a-1) % 2
        if a - 1 >= a_lo:
            s0 = (a - 2) % 3
            s1 = (a - 1) % 3
            s2 = s
            n = (a - 1) % 2
            for b in range(gw):
                lo = min(ylo[s0, b], min(ylo[s1, b], ylo[s2, b]))
                hi = max(yhi[s0, b], max(yhi[s1, b], yhi[s2, b]))
                nlo[n, b] = lo
                nhi[n, b] = hi
                for z in range(lo, hi + 1):
                    wt = k1 * yw[s0, b, z] + yw[s1, b, z] + k1 * yw[s2, b, z]
                    if wt == 0.0:
                        nv[n, b, z] = 0.0
                    else:
                        nv[n, b, z] = (k1 * yd[s0, b, z] + yd[s1, b, z]
                                       + k1 * yd[s2, b, z]) / wt

        # ---- slice the pixel rows whose lower cell is row a-2 (rows a-2 and a-1 are ready)
        if a - 2 >= a_lo:
            n0 = (a - 2) % 2
            n1 = (a - 1) % 2
            while q < i1 and rlow[q] == a - 2:
                fx = rfrac[q]
                for j in range(w):
                    b = clow[j]
                    fy = cfrac[j]
                    z, fz = _slice_depth(edge[q, j], emin, sigma_r)
                    acc = 0.0
                    for dx in range(2):
                        nn = n1 if dx else n0
                        wx = fx if dx else 1.0 - fx
                        for dy in range(2):
                            bb = b + dy
                            wxy = wx * (fy if dy else 1.0 - fy)
                            lo = nlo[nn, bb]
                            hi = nhi[nn, bb]
                            v0 = nv[nn, bb, z] if lo <= z <= hi else 0.0
                            v1 = nv[nn, bb, z + 1] if lo <= z + 1 <= hi else 0.0
                            acc += wxy * ((1.0 - fz) * v0 + fz * v1)
                    out[q, j] = data[q, j] if math.isnan(acc) else acc
                q += 1


@njit(cache=True, inline="always")
def _tap(e):
    """Weight of the z-blur tap at offset ``e`` cells: 1, exp(-1/2) at ±1, 0 beyond."""
    return 1.0 if e == 0 else (K1 if e == 1 or e == -1 else 0.0)


@njit(cache=True)
def _unit_rows(data, edge, emin, sigma_r, i0, i1, out):
    """Rows [i0, i1) of one channel's grid pass at σs = 1, without building the grid.

    At σs = 1 grid cell (i+3, j+3) holds exactly pixel (i, j), splatted at the depth cell
    zq = round((g - min g)/σr) + 3, and each pixel slices its own spatial cell at the depths
    z = floor((g - min g)/σr) + 3 and z + 1. A blurred cell is then a sum over the 3x3 pixel
    neighbourhood of ``tap(zq - z)``-weighted values, so it is computed here directly, term by
    term in the order of :func:`_grid_rows` (z-blur, then along the row, then across rows; the
    terms it adds from empty cells are exact zeros): the same float64 operations, the same bits,
    at a fraction of the memory traffic. Rows outside the image, and columns outside it (the
    padded buffer's -1 and w), contribute nothing, like the grid's empty padding.
    """
    h, w = data.shape
    k1 = K1
    far = -(1 << 40)  # a depth cell no blur tap reaches: the padding columns and rows
    n = i1 - i0 + 2
    zq = np.full((n, w + 2), far, np.int64)
    dv = np.zeros((n, w + 2))
    for r in range(n):
        i = i0 - 1 + r
        if 0 <= i < h:
            for j in range(w):
                zq[r, j + 1] = _round_half_away((edge[i, j] - emin) / sigma_r) + PAD
                dv[r, j + 1] = data[i, j]
    for r in range(1, n - 1):
        i = i0 - 1 + r
        for j in range(w):
            z, fz = _slice_depth(edge[i, j], emin, sigma_r)
            vs = 0.0
            for dz in range(2):
                td = 0.0
                tw = 0.0
                for dr in range(3):
                    rr = r - 1 + dr
                    t0 = _tap(zq[rr, j] - z - dz)
                    t1 = _tap(zq[rr, j + 1] - z - dz)
                    t2 = _tap(zq[rr, j + 2] - z - dz)
                    rd = k1 * (dv[rr, j] * t0) + dv[rr, j + 1] * t1 + k1 * (dv[rr, j + 2] * t2)
                    rw = k1 * t0 + t1 + k1 * t2
                    if dr == 0:
                        td = k1 * rd
                        tw = k1 * rw
                    elif dr == 1:
                        td = td + rd
                        tw = tw + rw
                    else:
                        td = td + k1 * rd
                        tw = tw + k1 * rw
                v = 0.0 if tw == 0.0 else td / tw
                vs = (1.0 - fz) * v if dz == 0 else vs + fz * v
            acc = 0.0 + 1.0 * vs
            out[i, j] = data[i, j] if math.isnan(acc) else acc


@njit(cache=True, parallel=True)
def bilateral_grid_pass(data, edge, emin, emax, sigma_s, sigma_r, chunk, out):
    """One bilateral-grid filter per channel: ``out[c] = BF(data[c], guide=edge[c])``.

    data, edge, out: CxHxW float64 (C-contiguous); emin, emax: per-channel guide range.
    Tasks are (channel, block of ``chunk`` pixel rows); each streams its own grid rows, so the
    result does not depend on ``chunk`` or on the number of threads.
    """
    nc, h, w = data.shape
    rcell, rlow, rfrac = _axis_maps(h, sigma_s)
    ccell, clow, cfrac = _axis_maps(w, sigma_s)
    gw = int(math.floor((w - 1) / sigma_s)) + 1 + 2 * PAD
    direct = True  # every pixel on a grid node (σs = 1): no spatial interpolation
    for i in range(h):
        if rfrac[i] != 0.0 or rcell[i] != rlow[i]:
            direct = False
    for j in range(w):
        if cfrac[j] != 0.0 or ccell[j] != clow[j]:
            direct = False
    nchunks = (h + chunk - 1) // chunk
    for t in prange(nc * nchunks):
        c = t // nchunks
        k = t - c * nchunks
        i0 = k * chunk
        i1 = min(h, i0 + chunk)
        if sigma_s == 1.0:
            _unit_rows(data[c], edge[c], emin[c], sigma_r, i0, i1, out[c])
            continue
        depth = int(math.floor((emax[c] - emin[c]) / sigma_r)) + 1 + 2 * PAD
        _grid_rows(data[c], edge[c], emin[c], sigma_r, depth, gw, rcell, rlow, rfrac,
                   ccell, clow, cfrac, i0, i1, out[c], direct)
