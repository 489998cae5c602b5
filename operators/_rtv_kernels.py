"""Numba kernels of relative total variation smoothing (see :mod:`operators.rtv`).

Layout: every image is stored channel-first with each channel plane *transposed*, ``X[c, j, i]``
for row i and column j (C-contiguous), so that ``X[c].ravel()`` is MATLAB's column-major ``A(:)``.
Pixel k = j*H + i of the linear system is then element k of a contiguous vector, the 5-point
matrix couples k with k±1 (vertical neighbours) and k±H (horizontal neighbours), and the MIC(0)
factor is computed in exactly the order MATLAB/Octave use.

The sparse matrix is kept as three vectors (MATLAB names from ``solveLinearEquation``)::

    dy[k] = A(k+1, k) = -λ·wy(k)     (0 where k is the last row of its column)
    dx[k] = A(k+H, k) = -λ·wx(k)     (0 in the last column)
    D[k]  = A(k, k)   = 1 - (((dx[k] + dx[k-H]) + dy[k]) + dy[k-1])

Reductions (dot products, norms) are summed over a fixed number of chunks, then the chunk sums in
order, so results never depend on the number of threads.
"""
from __future__ import annotations

import math

import numpy as np
from ._jit import njit, prange

#: Fixed number of chunks of the parallel loops and reductions (thread-count independent).
NCHUNK = 64


@njit(cache=True, inline="always")
def _chunk(n, nch, k):
    return (n * k) // nch, (n * (k + 1)) // nch


# ---------------------------------------------------------------------------------- weights
@njit(cache=True, parallel=True)
def texture_system(X, taps, sharpness, texture_eps, lam, D, dx, dy, tmp, fb):
    """Build the RTV system for the current estimate ``X`` (C, W, H), written into D, dx, dy.

    Steps of the reference ``computeTextureWeights`` + ``solveLinearEquation``:
    forward differences (zero past the last row/column); wto = 1/max(mean_c sqrt(fx²+fy²),
    sharpness); fb = per-channel separable Gaussian (``taps``), horizontal then vertical, with zero
    padding (``conv2(...,'same')``); wtbx = 1/max(mean_c |∂x fb|, texture_eps) and likewise y;
    wx = wtbx·wto (0 in the last column), wy = wtby·wto (0 in the last row); dx = -λ wx,
    dy = -λ wy and the diagonal D. ``tmp`` and ``fb`` are (C, W, H) work arrays. ``lam`` is the
    already-halved λ. Each Gaussian output sums its taps in increasing order.
    """
    C, W, H = X.shape
    K = taps.shape[0]
    h = K // 2
    fC = float(C)
    # horizontal pass (along columns j, stride H)
    for j in prange(W):
        for c in range(C):
            out = tmp[c, j]
            out[:] = 0.0
            for t in range(max(0, h - j), min(K, W + h - j)):
                g = taps[t]
                src = X[c, j + t - h]
                for i in range(H):
                    out[i] += g * src[i]
    # vertical pass (along rows i, contiguous)
    for j in prange(W):
        for c in range(C):
            src = tmp[c, j]
            out = fb[c, j]
            out[:] = 0.0
            for t in range(K):
                g = taps[t]
                off = t - h
                lo = max(0, -off)
                m = min(H, H - off) - lo
                o = out[lo:lo + m]  # views with non-negative indices: Numba can vectorise
                sv = src[lo + off:lo + off + m]
                for i in range(m):
                    o[i] += g * sv[i]
    # weights -> off-diagonals; per column j, channel sums accumulated over c = 0, 1, ...
    for j in prange(W):
        jn = min(j + 1, W - 1)  # the last column reads itself: its x-differences are 0
        last_col = j + 1 >= W
        dxj = dx[j * H:(j + 1) * H]
        dyj = dy[j * H:(j + 1) * H]
        s_to = np.zeros(H)
        s_bx = np.zeros(H)
        s_by = np.zeros(H)
        for c in range(C):
            x = X[c, j]
            xn = X[c, jn]
            b = fb[c, j]
            bn = fb[c, jn]
            for i in range(H - 1):
                fx = xn[i] - x[i]
                fy = x[i + 1] - x[i]
                s_to[i] += math.sqrt(fx * fx + fy * fy)
                s_bx[i] += abs(bn[i] - b[i])
                s_by[i] += abs(b[i + 1] - b[i])
            fx = xn[H - 1] - x[H - 1]
            s_to[H - 1] += math.sqrt(fx * fx + 0.0)
            s_bx[H - 1] += abs(bn[H - 1] - b[H - 1])
        for i in range(H):
            wto = 1.0 / max(s_to[i] / fC, sharpness)
            dxj[i] = 0.0 if last_col else -lam * ((1.0 / max(s_bx[i] / fC, texture_eps)) * wto)
            dyj[i] = -lam * ((1.0 / max(s_by[i] / fC, texture_eps)) * wto)
        dyj[H - 1] = 0.0
    # diagonal: D = 1 - (((e + w) + s) + n) with e = dx(k), w = dx(k-H), s = dy(k), n = dy(k-1)
    for j in prange(W):
        Dj = D[j * H:(j + 1) * H]
        dxj = dx[j * H:(j + 1) * H]
        dyj = dy[j * H:(j + 1) * H]
        if j > 0:
            dxw = dx[(j - 1) * H:j * H]
            Dj[0] = 1.0 - (((dxj[0] + dxw[0]) + dyj[0]) + dy[j * H - 1])
            for i in range(1, H):
                Dj[i] = 1.0 - (((dxj[i] + dxw[i]) + dyj[i]) + dyj[i - 1])
        else:
            Dj[0] = 1.0 - (((dxj[0] + 0.0) + dyj[0]) + 0.0)
            for i in range(1, H):
                Dj[i] = 1.0 - (((dxj[i] + 0.0) + dyj[i]) + dyj[i - 1])


# ---------------------------------------------------------------------------------- MIC(0)
@njit(cache=True)
def mic0(D, dx, dy, H, lb, lc, s):
    """Modified incomplete Cholesky, no fill (Octave ``ichol(A, struct('michol','on'))``).

    Left-looking over columns k in column-major pixel order, in the order of Octave's ``ichol_0``:
    the factor L has the pattern of tril(A); ``s[k] = L(k,k)``, ``lb[k] = L(k,k-1)``,
    ``lc[k] = L(k,k-H)``. A fill-in entry outside the pattern is dropped and subtracted from the
    diagonals of both its row and its column (row-sum compensation). For H > 2 every fill-in
    (offset H-1) is dropped, which gives, with d_k = s_k²,

        d_k = ((a_k - lb_k²) - lc_k²) + ((0 - lc_k·lb_{k-H+1}) - lb_k·lc_{k+H-1});

    for H == 2 the fill-in lands on the sub-diagonal and is kept where A has an entry there.
    An entry of A that is exactly zero is not in the pattern (MATLAB's sparse storage drops it).
    Returns False if a pivot is not positive (cannot happen for this M-matrix).
    """
    n = D.shape[0]
    if H > 2:
        return _mic0_nofill(D, dx, dy, H, lb, lc, s)
    drop = np.zeros(n)
    boff = np.empty(n)  # A(k, k-1), updated in place by kept fill-in
    boff[0] = 0.0
    for k in range(1, n):
        boff[k] = dy[k - 1]
    lb[0] = 0.0
    for k in range(min(H, n)):
        lc[k] = 0.0
    for k in range(n):
        d = D[k]
        # contributions of column k-1: its entries in rows k (lb[k]) and k-1+H (lc[k-1+H])
        if k >= 1 and lb[k] != 0.0:
            d -= lb[k] * lb[k]
            kr = k - 1 + H
            if kr < n and lc[kr] != 0.0:
                t = lc[kr] * lb[k]
                if H == 2 and boff[kr] != 0.0:  # (k+1, k) is in the pattern: keep
                    boff[kr] -= t
                else:
                    drop[kr] -= t
                    drop[k] -= t
        # contribution of column k-H: its only entry in rows >= k is row k (lc[k])
        if k >= H and lc[k] != 0.0:
            d -= lc[k] * lc[k]
        d += drop[k]
        if not d > 0.0:
            return False
        sk = math.sqrt(d)
        s[k] = sk
        if k + 1 < n:
            lb[k + 1] = boff[k + 1] / sk
        if k + H < n:
            lc[k + H] = dx[k] / sk
    return True


@njit(cache=True)
def _mic0_nofill(D, dx, dy, H, lb, lc, s):
    """:func:`mic0` for H > 2, where every fill-in is dropped: the same operations in the same
    order, the two drop terms of pixel k (found at columns k-H+1 and k) recomputed, not stored."""
    n = D.shape[0]
    lb[0] = 0.0
    for k in range(min(H, n)):
        lc[k] = 0.0
    for k in range(n):
        lbk = lb[k]
        lck = lc[k]
        t1 = lck * lb[k - H + 1] if k >= H else 0.0
        t2 = lc[k + H - 1] * lbk if k + H - 1 < n else 0.0
        d = (D[k] - lbk * lbk) - lck * lck
        d += (0.0 - t1) - t2
        if not d > 0.0:
            return False
        sk = math.sqrt(d)
        s[k] = sk
        if k + 1 < n:
            lb[k + 1] = dy[k] / sk
        if k + H < n:
            lc[k + H] = dx[k] / sk
    return True


# ------------------------------------------------------------------------- PCG building blocks
# One CG step of a channel is split in two launches:
#   sweep_and_x:  r -= alpha·w (with ‖r‖²), z = (L Lᵀ)⁻¹ r (with τ = zᵀr)   [thread 0]
#                 x_new = x + alpha·p (with ‖x_new - x‖², ‖x_new‖²)         [thread 1]
#   p_matvec:     p_new = z + beta·p, w = A p_new (with pᵀw, rᵀw, wᵀw)      [all threads]
# The substitutions are inherently sequential; the x update runs beside them. The caller decides
# from ‖r‖ whether the channel stops; z is computed speculatively, except for channels that are
# predicted (from ‖r - alpha·w‖² = ‖r‖² - 2 alpha rᵀw + alpha² wᵀw) to stop.

@njit(cache=True, inline="always")
def _fwd_bwd3(lb, lc, s, H, r0, r1, r2, w0, w1, w2, z0, z1, z2, a0, a1, a2, upd, out):
    """Three channels interleaved (independent dependency chains overlap in the CPU).

    If ``upd``: r_c -= a_c·w_c first (fused into the forward sweep), out[0:3] = ‖r_c‖².
    Forward L v = r then backward Lᵀ z = v, both column-oriented like a sparse triangular solve
    (subtract the k∓H neighbour, then the k∓1 one, then divide by the pivot); out[3:6] = zᵀr.
    """
    n = s.shape[0]
    q0 = 0.0
    q1 = 0.0
    q2 = 0.0
    v0 = 0.0
    v1 = 0.0
    v2 = 0.0
    for k in range(n):
        if upd:
            x0 = r0[k] - a0 * w0[k]
            x1 = r1[k] - a1 * w1[k]
            x2 = r2[k] - a2 * w2[k]
            r0[k] = x0
            r1[k] = x1
            r2[k] = x2
            q0 += x0 * x0
            q1 += x1 * x1
            q2 += x2 * x2
        else:
            x0 = r0[k]
            x1 = r1[k]
            x2 = r2[k]
        if k >= H:
            c = lc[k]
            x0 -= c * z0[k - H]
            x1 -= c * z1[k - H]
            x2 -= c * z2[k - H]
        b = lb[k]
        sk = s[k]
        v0 = (x0 - b * v0) / sk
        v1 = (x1 - b * v1) / sk
        v2 = (x2 - b * v2) / sk
        z0[k] = v0
        z1[k] = v1
        z2[k] = v2
    out[0] = q0
    out[1] = q1
    out[2] = q2
    t0 = 0.0
    t1 = 0.0
    t2 = 0.0
    v0 = 0.0
    v1 = 0.0
    v2 = 0.0
    for k in range(n - 1, -1, -1):
        x0 = z0[k]
        x1 = z1[k]
        x2 = z2[k]
        if k + H < n:
            c = lc[k + H]
            x0 -= c * z0[k + H]
            x1 -= c * z1[k + H]
            x2 -= c * z2[k + H]
        b = lb[k + 1] if k + 1 < n else 0.0
        sk = s[k]
        v0 = (x0 - b * v0) / sk
        v1 = (x1 - b * v1) / sk
        v2 = (x2 - b * v2) / sk
        z0[k] = v0
        z1[k] = v1
        z2[k] = v2
        t0 += v0 * r0[k]
        t1 += v1 * r1[k]
        t2 += v2 * r2[k]
    out[3] = t0
    out[4] = t1
    out[5] = t2


@njit(cache=True, inline="always")
def _fwd_bwd1(lb, lc, s, H, r0, w0, z0, a0, upd, out):
    """:func:`_fwd_bwd3` for one channel (same operations)."""
    n = s.shape[0]
    q0 = 0.0
    v0 = 0.0
    for k in range(n):
        if upd:
            x0 = r0[k] - a0 * w0[k]
            r0[k] = x0
            q0 += x0 * x0
        else:
            x0 = r0[k]
        if k >= H:
            x0 -= lc[k] * z0[k - H]
        v0 = (x0 - lb[k] * v0) / s[k]
        z0[k] = v0
    out[0] = q0
    t0 = 0.0
    v0 = 0.0
    for k in range(n - 1, -1, -1):
        x0 = z0[k]
        if k + H < n:
            x0 -= lc[k + H] * z0[k + H]
        b = lb[k + 1] if k + 1 < n else 0.0
        v0 = (x0 - b * v0) / s[k]
        z0[k] = v0
        t0 += v0 * r0[k]
    out[3] = t0


@njit(cache=True)
def _sweep_task(lb, lc, s, H, R, Wv, Z, alpha, act, na, upd, spare, rr, tau):
    """The substitutions for channels ``act[:na]``: tau = zᵀr, and rr = ‖r‖² if ``upd``."""
    out = np.zeros(6)
    c0 = act[0]
    c1 = act[1] if na > 1 else c0
    c2 = act[2] if na > 2 else c0
    if na == 1:
        _fwd_bwd1(lb, lc, s, H, R[c0], Wv[c0], Z[c0], alpha[c0], upd, out)
    elif na == 3:
        _fwd_bwd3(lb, lc, s, H, R[c0], R[c1], R[c2], Wv[c0], Wv[c1], Wv[c2], Z[c0], Z[c1],
                  Z[c2], alpha[c0], alpha[c1], alpha[c2], upd, out)
    else:
        _fwd_bwd3(lb, lc, s, H, R[c0], R[c1], spare[0], Wv[c0], Wv[c1], spare[1], Z[c0], Z[c1],
                  spare[2], alpha[c0], alpha[c1], 0.0, upd, out)
    chans = (c0, c1, c2)
    for t in range(na):
        c = chans[t]
        tau[c] = out[3 + t]
        if upd:
            rr[c] = out[t]


@njit(cache=True)
def _x_task(Xold, Xnew, P, alpha, act, na, dd, xx):
    n = P.shape[1]
    for t in range(na):
        c = act[t]
        a = alpha[c]
        xo = Xold[c]
        xn = Xnew[c]
        p = P[c]
        s_d = 0.0
        s_x = 0.0
        for k in range(n):
            x1 = xo[k] + a * p[k]
            xn[k] = x1
            d = x1 - xo[k]
            s_d += d * d
            s_x += x1 * x1
        dd[c] = s_d
        xx[c] = s_x


@njit(cache=True)
def _r_task(R, Wv, alpha, act, na, rr):
    """r -= alpha·w with ‖r‖² (the same operations as the fused sweep), no substitution."""
    n = R.shape[1]
    for t in range(na):
        c = act[t]
        a = alpha[c]
        r = R[c]
        w = Wv[c]
        q = 0.0
        for k in range(n):
            x = r[k] - a * w[k]
            r[k] = x
            q += x * x
        rr[c] = q


@njit(cache=True, parallel=True)
def sweep_and_x(lb, lc, s, H, R, Wv, Z, alpha, Xold, Xnew, P, act_s, ns, act_r, nr, act_x, nx,
                upd, spare, rr, tau, dd, xx):
    """One half of a lock-step CG iteration (see above): on one thread, r -= alpha·w (if
    ``upd``) and z = M⁻¹ r for channels ``act_s[:ns]``, then r -= alpha·w alone for channels
    ``act_r[:nr]`` (those expected to stop now); on another, x += alpha·p for ``act_x[:nx]``.

    ``spare`` is a (3, n) scratch of zeros filling the third slot of the sweep when two channels
    are swept (unused otherwise).
    """
    for task in prange(2):
        if task == 0:
            if ns > 0:
                _sweep_task(lb, lc, s, H, R, Wv, Z, alpha, act_s, ns, upd, spare, rr, tau)
            if nr > 0:
                _r_task(R, Wv, alpha, act_r, nr, rr)
        elif nx > 0:
            _x_task(Xold, Xnew, P, alpha, act_x, nx, dd, xx)


@njit(cache=True, inline="always")
def _pval(z, p, beta, k):
    return z[k] + beta * p[k]


@njit(cache=True)
def _p_matvec_edge(z, po, pn, b, D, dx, dy, H, w, lo, hi):
    """:func:`p_matvec` on pixels lo..hi-1 with bounds checks (first/last column)."""
    n = D.shape[0]
    for k in range(lo, hi):
        pk = z[k] + b * po[k]
        pn[k] = pk
        v = 0.0
        if k >= H:
            v += dx[k - H] * _pval(z, po, b, k - H)
        if k >= 1:
            v += dy[k - 1] * _pval(z, po, b, k - 1)
        v += D[k] * pk
        if k + 1 < n:
            v += dy[k] * _pval(z, po, b, k + 1)
        if k + H < n:
            v += dx[k] * _pval(z, po, b, k + H)
        w[k] = v


@njit(cache=True, inline="never")
def _p_matvec_interior(zc, zu, zl, zr, zd, oc, ou, ol, orr, od, Dc, xu, xc, yl, yc, pnc, wc, b):
    """:func:`p_matvec` on interior pixels, every neighbour given as an aligned view
    (u/d: k∓H, l/r: k∓1); no bounds or wrap-around checks, so the loop vectorises."""
    for i in range(zc.shape[0]):
        pk = zc[i] + b * oc[i]
        pnc[i] = pk
        v = xu[i] * (zu[i] + b * ou[i])
        v += yl[i] * (zl[i] + b * ol[i])
        v += Dc[i] * pk
        v += yc[i] * (zr[i] + b * orr[i])
        v += xc[i] * (zd[i] + b * od[i])
        wc[i] = v


@njit(cache=True)
def _dot4(a, w, lo, hi):
    """Σ a·w over lo..hi-1 with four interleaved partial sums (fixed order), deterministic."""
    s0 = 0.0
    s1 = 0.0
    s2 = 0.0
    s3 = 0.0
    m4 = lo + (hi - lo) - (hi - lo) % 4
    for i in range(lo, m4, 4):
        s0 += a[i] * w[i]
        s1 += a[i + 1] * w[i + 1]
        s2 += a[i + 2] * w[i + 2]
        s3 += a[i + 3] * w[i + 3]
    for i in range(m4, hi):
        s0 += a[i] * w[i]
    return (s0 + s1) + (s2 + s3)


@njit(cache=True, parallel=True)
def p_matvec(Z, Pold, Pnew, beta, D, dx, dy, H, Wv, R, act, na, den, rw, ww):
    """Pnew = Z + beta·Pold, Wv = A Pnew and den = Pnew·Wv for the active channels; also
    rw = R·Wv and ww = Wv·Wv (they predict the next residual norm).

    The neighbours' p values are recomputed from Z and Pold (bit-identical to what their owner
    stores), so the chunks need no barrier between the two steps. Each product is accumulated in
    increasing column order of A, as a CSC sparse product does: k-H, k-1, k, k+1, k+H.
    """
    n = D.shape[0]
    part = np.zeros((3, NCHUNK * na))
    for q in prange(NCHUNK * na):
        t = q // NCHUNK
        c = act[t]
        lo, hi = _chunk(n, NCHUNK, q - t * NCHUNK)
        b = beta[c]
        z = Z[c]
        po = Pold[c]
        pn = Pnew[c]
        w = Wv[c]
        a = min(max(lo, H), hi)      # interior pixels a..e-1 have all four neighbours
        e = max(min(hi, n - H), a)
        _p_matvec_edge(z, po, pn, b, D, dx, dy, H, w, lo, a)
        if e > a:
            _p_matvec_interior(
                z[a:e], z[a - H:e - H], z[a - 1:e - 1], z[a + 1:e + 1], z[a + H:e + H],
                po[a:e], po[a - H:e - H], po[a - 1:e - 1], po[a + 1:e + 1], po[a + H:e + H],
                D[a:e], dx[a - H:e - H], dx[a:e], dy[a - 1:e - 1], dy[a:e], pn[a:e], w[a:e], b)
        _p_matvec_edge(z, po, pn, b, D, dx, dy, H, w, e, hi)
        part[0, q] = _dot4(pn, w, lo, hi)
        part[1, q] = _dot4(R[c], w, lo, hi)
        part[2, q] = _dot4(w, w, lo, hi)
    for t in range(na):
        a0 = 0.0
        a1 = 0.0
        a2 = 0.0
        for q in range(t * NCHUNK, (t + 1) * NCHUNK):
            a0 += part[0, q]
            a1 += part[1, q]
            a2 += part[2, q]
        den[act[t]] = a0
        rw[act[t]] = a1
        ww[act[t]] = a2


@njit(cache=True, parallel=True)
def sumsq(B, out):
    """out[c] = ‖B[c]‖² (chunked, thread-count independent)."""
    C, n = B.shape
    part = np.zeros(NCHUNK * C)
    for q in prange(NCHUNK * C):
        c = q // NCHUNK
        lo, hi = _chunk(n, NCHUNK, q - c * NCHUNK)
        b = B[c]
        acc = 0.0
        for k in range(lo, hi):
            acc += b[k] * b[k]
        part[q] = acc
    for c in range(C):
        acc = 0.0
        for q in range(NCHUNK):
            acc += part[c * NCHUNK + q]
        out[c] = acc
