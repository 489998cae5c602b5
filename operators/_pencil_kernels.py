"""Compiled building blocks of the colour pencil drawing (Lu, Xu, Jia, NPAR 2012).

Written from ``shared/docs/operators_extra.md`` §5 (no MATLAB code copied). Everything here works
on float64 arrays; pixel vectors are column-major (MATLAB's ``A(:)``) where the description says so.

* :func:`imrotate_bilinear_crop`: MATLAB's ``imrotate(K, θ, 'bilinear', 'crop')`` as the reference
  shim implements it (exact for multiples of 90°, otherwise bilinear sampling of the kernel
  extended by zeros, so samples up to one pixel outside still get partial weight);
* :func:`stroke_taps`: the rotated line kernels as sparse tap lists;
* :func:`medfilt3_zero`, :func:`edge_magnitude`, :func:`direction_index`, :func:`stroke_scatter`:
  the stroke map (medfilt2 with zero padding, forward-difference gradient, per-pixel direction of
  the strongest line response, and the sum of the per-direction convolutions);
* :func:`box_filter_zero`: ``imfilter(J, fspecial('average', k))`` with zero padding and MATLAB's
  centre for even sizes;
* :func:`pcg_texture`: MATLAB's unpreconditioned ``pcg`` on the texture-rendering system
  ``A = θ(DxDxᵀ + DyDyᵀ) + diag(p²)``, ``b = p·j`` (returns the minimum-residual iterate when it
  does not converge), with deterministic blocked reductions (independent of the thread count).
"""
from __future__ import annotations

import math

import numpy as np
from ._jit import njit, prange

__all__ = ["imrotate_bilinear_crop", "line_kernel", "stroke_taps", "medfilt3_zero",
           "edge_magnitude", "direction_index", "stroke_scatter", "box_filter_zero",
           "pcg_texture", "texture_matvec"]


# --------------------------------------------------------------------------- kernels
def line_kernel(ks: int, width: int) -> np.ndarray:
    """The (2ks+1)² stroke kernel: the middle row all ones, plus ``width`` rows above and below.

    ``width = 0`` is the thin kernel K₀ of the direction classification; the thick kernel K₀' of
    the stroke rendering uses the operator's ``width`` (1 in the paper's setting: rows ks, ks+1,
    ks+2 in MATLAB's 1-based indexing). Rows past the kernel are dropped.
    """
    n = 2 * ks + 1
    k = np.zeros((n, n))
    k[max(0, ks - width): min(n, ks + width + 1), :] = 1.0
    return k


def imrotate_bilinear_crop(k: np.ndarray, angle_deg: float) -> np.ndarray:
    """MATLAB ``imrotate(k, angle_deg, 'bilinear', 'crop')`` of a square odd-sized kernel.

    Multiples of 90° are exact (copy / ``rot90``). Otherwise output (i, j) (1-based, centre c)
    samples the input at ``x = c + cos θ·(j − c) − sin θ·(i − c)``,
    ``y = c + sin θ·(j − c) + cos θ·(i − c)`` (counter-clockwise rotation) by bilinear
    interpolation of the input extended by zeros.
    """
    k = np.asarray(k, dtype=np.float64)
    n = k.shape[0]
    if k.ndim != 2 or k.shape[1] != n or n % 2 == 0:
        raise ValueError(f"imrotate_bilinear_crop expects a square odd-sized kernel, got {k.shape}")
    q, rem = divmod(float(angle_deg), 90.0)
    if rem == 0.0:
        return np.ascontiguousarray(np.rot90(k, int(q) % 4))
    th = math.radians(float(angle_deg))
    c = (n + 1) / 2.0
    ct, st = math.cos(th), math.sin(th)
    pad = np.zeros((n + 4, n + 4))  # input extended by zeros, 2 pixels each side
    pad[2:n + 2, 2:n + 2] = k
    out = np.zeros((n, n))
    for i in range(1, n + 1):
        for j in range(1, n + 1):
            x = c + ct * (j - c) - st * (i - c)
            y = c + st * (j - c) + ct * (i - c)
            x0 = math.floor(x)
            y0 = math.floor(y)
            if x0 < 0 or y0 < 0 or x0 > n or y0 > n:
                continue  # all four neighbours outside the zero-extended grid
            fx = x - x0
            fy = y - y0
            # 1-based (y0, x0) -> pad index y0 + 1
            a = pad[y0 + 1, x0 + 1]
            b = pad[y0 + 1, x0 + 2]
            cc = pad[y0 + 2, x0 + 1]
            d = pad[y0 + 2, x0 + 2]
            out[i - 1, j - 1] = ((1.0 - fy) * ((1.0 - fx) * a + fx * b)
                                 + fy * ((1.0 - fx) * cc + fx * d))
    return out


def stroke_taps(ks: int, width: int, n_dir: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Sparse taps of the ``n_dir`` rotated kernels (angles (n−1)·180/n_dir degrees).

    Returns ``(offsets, weights, counts)``: ``offsets[n, t] = (dp, dq)`` (row, column offset of
    the tap from the kernel centre), ``weights[n, t]``, ``counts[n]`` taps used (rest padding), in
    the kernel's column-major order. Only non-zero weights are kept.
    """
    base = line_kernel(ks, width)
    kernels = [imrotate_bilinear_crop(base, i * 180.0 / n_dir) for i in range(n_dir)]
    counts = np.array([int(np.count_nonzero(k)) for k in kernels], np.int64)
    tmax = int(counts.max())
    offsets = np.zeros((n_dir, tmax, 2), np.int64)
    weights = np.zeros((n_dir, tmax))
    for i, k in enumerate(kernels):
        kc, kr = np.nonzero(k.T)  # k's (column, row) pairs in column-major order of k
        offsets[i, :counts[i], 0] = kr - ks
        offsets[i, :counts[i], 1] = kc - ks
        weights[i, :counts[i]] = k[kr, kc]
    return offsets, weights, counts


# --------------------------------------------------------------------------- stroke map
@njit(cache=True, parallel=True)
def medfilt3_zero(y):  # pragma: no cover - compiled
    """MATLAB ``medfilt2(y, [3 3])``: 3x3 median with zero padding."""
    h, w = y.shape
    out = np.empty((h, w))
    for i in prange(h):
        v = np.empty(9)
        for j in range(w):
            n = 0
            for di in range(-1, 2):
                for dj in range(-1, 2):
                    ii = i + di
                    jj = j + dj
                    if 0 <= ii < h and 0 <= jj < w:
                        v[n] = y[ii, jj]
                    else:
                        v[n] = 0.0
                    n += 1
            # insertion sort of 9 values, take the 5th
            for a in range(1, 9):
                t = v[a]
                b = a - 1
                while b >= 0 and v[b] > t:
                    v[b + 1] = v[b]
                    b -= 1
                v[b + 1] = t
            out[i, j] = v[4]
    return out


@njit(cache=True, parallel=True)
def edge_magnitude(y1):  # pragma: no cover - compiled
    """|y(i,j) − y(i,j+1)| + |y(i,j) − y(i+1,j)|, missing last-column/last-row terms 0."""
    h, w = y1.shape
    out = np.empty((h, w))
    for i in prange(h):
        for j in range(w):
            gx = abs(y1[i, j] - y1[i, j + 1]) if j < w - 1 else 0.0
            gy = abs(y1[i, j] - y1[i + 1, j]) if i < h - 1 else 0.0
            out[i, j] = gx + gy
    return out


@njit(cache=True, parallel=True)
def direction_index(e, offsets, weights, counts, ks):  # pragma: no cover - compiled
    """argmax over n (first on ties) of ``conv2(e, K_n, 'same')`` (zero padding), int64 HxW."""
    h, w = e.shape
    nd = counts.shape[0]
    epad = np.zeros((h + 2 * ks, w + 2 * ks))
    for i in prange(h):
        for j in range(w):
            epad[i + ks, j + ks] = e[i, j]
    idx = np.empty((h, w), np.int64)
    for i in prange(h):
        resp = np.zeros((nd, w))
        for n in range(nd):
            for t in range(counts[n]):
                wt = weights[n, t]
                src = i + ks - offsets[n, t, 0]
                c0 = ks - offsets[n, t, 1]
                for j in range(w):
                    resp[n, j] += wt * epad[src, j + c0]
        for j in range(w):
            best = 0
            bv = resp[0, j]
            for n in range(1, nd):
                if resp[n, j] > bv:
                    bv = resp[n, j]
                    best = n
            idx[i, j] = best
    return idx


@njit(cache=True, parallel=True)
def stroke_scatter(e, idx, offsets, weights, counts, ks):  # pragma: no cover - compiled
    """Σ_n conv2(e·[idx == n], K'_n, 'same') (zero padding), as a deterministic scatter.

    Source rows are processed in chunks of ``B >= 2ks`` rows, even chunks in parallel, then odd
    ones, so no two threads write the same output row; the result does not depend on threads.
    """
    h, w = e.shape
    out = np.zeros((h + 2 * ks, w + 2 * ks))
    bsz = max(2 * ks, 32)
    nchunks = (h + bsz - 1) // bsz
    for parity in range(2):
        nsel = (nchunks - parity + 1) // 2
        for cc in prange(nsel):
            ch = 2 * cc + parity
            r0 = ch * bsz
            r1 = min(h, r0 + bsz)
            for i in range(r0, r1):
                for j in range(w):
                    v = e[i, j]
                    if v == 0.0:
                        continue
                    n = idx[i, j]
                    for t in range(counts[n]):
                        out[i + ks + offsets[n, t, 0], j + ks + offsets[n, t, 1]] += (
                            weights[n, t] * v)
    return out[ks:ks + h, ks:ks + w].copy()


# --------------------------------------------------------------------------- tone map
@njit(cache=True, parallel=True)
def box_filter_zero(x, size):  # pragma: no cover - compiled
    """Correlation with the size×size averaging kernel, zero padding, MATLAB's centre.

    Taps run over offsets ``-(c-1) .. size-c`` with ``c = floor((size+1)/2)`` (for 10: −4..+5).
    """
    h, w = x.shape
    c = (size + 1) // 2
    lo = -(c - 1)
    hi = size - c
    tmp = np.empty((h, w))
    for i in prange(h):
        for j in range(w):
            s = 0.0
            for d in range(lo, hi + 1):
                jj = j + d
                if 0 <= jj < w:
                    s += x[i, jj]
            tmp[i, j] = s
    out = np.empty((h, w))
    scale = 1.0 / (size * size)
    for i in prange(h):
        for j in range(w):
            s = 0.0
            for d in range(lo, hi + 1):
                ii = i + d
                if 0 <= ii < h:
                    s += tmp[ii, j]
            out[i, j] = s * scale
    return out


# --------------------------------------------------------------------------- texture solve
#: Block length of the blocked reductions: partial sums per block of this many entries, added in
#: block order, so results do not depend on the number of threads.
_BLOCK = 4096


@njit(cache=True, inline="always")
def _av(x, m, n, h, diag, nt):  # pragma: no cover - compiled
    """(A x)_m, summed in MATLAB's sparse column order m−H, m−1, m, m+1, m+H (nt = −θ)."""
    s = 0.0
    if m >= h:
        s += nt * x[m - h]
    if m >= 1:
        s += nt * x[m - 1]
    s += diag[m] * x[m]
    if m + 1 < n:
        s += nt * x[m + 1]
    if m + h < n:
        s += nt * x[m + h]
    return s


@njit(cache=True, inline="always")
def _dot_range(a, b, lo, hi):  # pragma: no cover - compiled
    """Σ a·b over [lo, hi) with four interleaved accumulators (fixed order)."""
    s0 = 0.0
    s1 = 0.0
    s2 = 0.0
    s3 = 0.0
    m = lo
    while m + 3 < hi:
        s0 += a[m] * b[m]
        s1 += a[m + 1] * b[m + 1]
        s2 += a[m + 2] * b[m + 2]
        s3 += a[m + 3] * b[m + 3]
        m += 4
    while m < hi:
        s0 += a[m] * b[m]
        m += 1
    return (s0 + s1) + (s2 + s3)


@njit(cache=True, parallel=True)
def texture_matvec(x, diag, theta, h):  # pragma: no cover - compiled
    """A·x for the texture system (column-major vectors, column height ``h``)."""
    n = x.shape[0]
    out = np.empty(n)
    for m in prange(n):
        out[m] = _av(x, m, n, h, diag, -theta)
    return out


@njit(cache=True, parallel=True)
def _residual(b, x, diag, theta, h):  # pragma: no cover - compiled
    """(r = b − A x, ‖r‖²) with a blocked deterministic sum."""
    n = b.shape[0]
    nt = -theta
    r = np.empty(n)
    nblk = (n + _BLOCK - 1) // _BLOCK
    part = np.zeros(nblk)
    for blk in prange(nblk):
        lo = blk * _BLOCK
        hi = min(n, lo + _BLOCK)
        for m in range(lo, hi):
            r[m] = b[m] - _av(x, m, n, h, diag, nt)
        part[blk] = _dot_range(r, r, lo, hi)
    return r, part.sum()


@njit(cache=True, parallel=True)
def _direction_step(r, p, beta, q, diag, theta, h):  # pragma: no cover - compiled
    """p ← r + β·p; q = A·p; returns (p·q, p·p) (blocked, deterministic sums)."""
    n = r.shape[0]
    nt = -theta
    nblk = (n + _BLOCK - 1) // _BLOCK
    for blk in prange(nblk):
        lo = blk * _BLOCK
        hi = min(n, lo + _BLOCK)
        for m in range(lo, hi):
            p[m] = r[m] + beta * p[m]
    part = np.zeros(nblk)
    part2 = np.zeros(nblk)
    for blk in prange(nblk):
        lo = blk * _BLOCK
        hi = min(n, lo + _BLOCK)
        a = min(max(lo, h), hi)  # interior [a, b): all five neighbours exist, no branches
        b = max(min(hi, n - h), a)
        for m in range(lo, a):
            q[m] = _av(p, m, n, h, diag, nt)
        for m in range(a, b):
            s = nt * p[m - h]
            s += nt * p[m - 1]
            s += diag[m] * p[m]
            s += nt * p[m + 1]
            s += nt * p[m + h]
            q[m] = s
        for m in range(b, hi):
            q[m] = _av(p, m, n, h, diag, nt)
        part[blk] = _dot_range(p, q, lo, hi)
        part2[blk] = _dot_range(p, p, lo, hi)
    return part.sum(), part2.sum()


@njit(cache=True, parallel=True)
def _update(x, r, p, q, alpha):  # pragma: no cover - compiled
    """x ← x + α p; r ← r − α q; returns (‖r‖², ‖x_old‖²)."""
    n = x.shape[0]
    nblk = (n + _BLOCK - 1) // _BLOCK
    part = np.zeros(nblk)
    part2 = np.zeros(nblk)
    for blk in prange(nblk):
        lo = blk * _BLOCK
        hi = min(n, lo + _BLOCK)
        part2[blk] = _dot_range(x, x, lo, hi)
        for m in range(lo, hi):
            x[m] += alpha * p[m]
            r[m] -= alpha * q[m]
        part[blk] = _dot_range(r, r, lo, hi)
    return part.sum(), part2.sum()


def pcg_texture(diag: np.ndarray, rhs: np.ndarray, theta: float, h: int, tol: float = 1e-6,
                maxit: int = 60) -> tuple[np.ndarray, int, int]:
    """MATLAB ``pcg(A, b, tol, maxit)`` (no preconditioner, x0 = 0) for the texture system.

    ``A = θ·(DxDxᵀ + DyDyᵀ) + diag(p²)`` is given by its diagonal ``diag`` (θ·(2 + [m ≤ N−H] +
    [m ≤ N−1]) + p²) and its off-diagonals −θ at ±1 and ±H. Standard CG recurrences; a converged
    recurrence residual is confirmed with the true one; stagnation as MATLAB (3 steps);
    when the tolerance is not reached within ``maxit`` iterations the iterate with the smallest
    residual norm (including x0 = 0) is returned, as MATLAB and Octave do.

    Returns ``(x, flag, iterations)`` with MATLAB's flag (0 converged, 1 maxit, 3 stagnated,
    4 breakdown).
    """
    diag = np.ascontiguousarray(diag, dtype=np.float64)
    b = np.ascontiguousarray(rhs, dtype=np.float64)
    n = b.shape[0]
    eps = np.finfo(np.float64).eps
    x = np.zeros(n)
    n2b = math.sqrt(float(np.dot(b, b)))
    if n2b == 0.0:
        return x, 0, 0
    tolb = tol * n2b
    r = b.copy()
    normr = n2b
    if normr <= tolb:
        return x, 0, 0
    xmin = x.copy()
    normrmin = normr
    imin = 0
    p = np.zeros(n)  # search direction; 0 before the first step, so p = r + 0·0 = r there
    q = np.empty(n)
    rho = 1.0
    rr = normr * normr
    stag = 0
    moresteps = 0
    maxmsteps = min(n // 50, 5, n - maxit)
    flag = 1
    normr_act = normr
    it = 0
    for ii in range(1, maxit + 1):
        it = ii
        rho1 = rho
        rho = rr
        if rho == 0.0 or math.isinf(rho):
            flag = 4
            break
        if ii == 1:
            beta = 0.0
        else:
            beta = rho / rho1
            if beta == 0.0 or math.isinf(beta):
                flag = 4
                break
        pq, pp = _direction_step(r, p, beta, q, diag, theta, h)
        if pq <= 0.0 or math.isinf(pq):
            flag = 4
            break
        alpha = rho / pq
        if math.isinf(alpha):
            flag = 4
            break
        rr, xx = _update(x, r, p, q, alpha)
        stag = stag + 1 if math.sqrt(pp) * abs(alpha) < eps * math.sqrt(xx) else 0
        normr = math.sqrt(rr)
        normr_act = normr
        if normr <= tolb or stag >= 3 or moresteps:
            r, rr = _residual(b, x, diag, theta, h)
            normr_act = math.sqrt(rr)
            if normr_act <= tolb:
                flag = 0
                break
            if stag >= 3 and moresteps == 0:
                stag = 0
            moresteps += 1
            if moresteps >= maxmsteps:
                flag = 3
                break
        if normr_act < normrmin:
            normrmin = normr_act
            xmin[:] = x
            imin = ii
    if flag == 0:
        return x, 0, it
    _, rr_min = _residual(b, xmin, diag, theta, h)
    if math.sqrt(rr_min) <= normr_act:
        return xmin, flag, imin
    return x, flag, it
