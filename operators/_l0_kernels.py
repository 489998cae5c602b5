"""Numba kernels of L0 gradient smoothing (see :mod:`operators.l0`).

Images are stored channel-first, ``S[c, i, j]`` (C-contiguous float64), so that the FFTs run over
the two contiguous last axes. Each kernel fuses what the reference code does in several
full-image passes; both are parallel over blocks of rows.
"""
from __future__ import annotations

import numpy as np
from ._jit import njit, prange


@njit(cache=True, parallel=True)
def masked_divergence(S, thr, out, nchunks):
    """Fused steps 1-3 of an L0 iteration: differences, joint mask, adjoint difference.

    With circular forward differences h = S(i, j+1) - S(i, j) and v = S(i+1, j) - S(i, j),
    zeroed in all channels where sum_c (h^2 + v^2) < ``thr`` (channel sum in order c = 0, 1, ...,
    as MATLAB's ``sum(h.^2 + v.^2, 3)``), writes for every pixel (indices circular)::

        out[c, i, j] = (h[c, i, j-1] - h[c, i, j]) + (v[c, i-1, j] - v[c, i, j])

    ``S`` and ``out`` are float64 (C, H, W), W >= 2. Rows are split into ``nchunks`` blocks
    processed in parallel; each block recomputes the mask of the row above it once and then
    carries the previous row's mask along, so the mask is evaluated about once per pixel.
    A masked difference is multiplied by 0.0, which can only change the sign of a zero result.
    """
    C, H, W = S.shape
    nchunks = max(1, min(nchunks, H))
    for k in prange(nchunks):
        r0 = (k * H) // nchunks
        r1 = ((k + 1) * H) // nchunks
        kprev = np.empty(W)  # 1.0 where the gradient of the row above is kept, else 0.0
        kcur = np.empty(W)
        e = np.empty(W)
        for step in range(r1 - r0 + 1):  # step 0: only the mask of row r0 - 1
            i = r0 - 1 + step
            if i < 0:
                i += H
            ip = i + 1 if i + 1 < H else 0
            e[:] = 0.0
            for c in range(C):
                Sc = S[c, i]
                Sp = S[c, ip]
                for j in range(W - 1):
                    s = Sc[j]
                    dh = Sc[j + 1] - s
                    dv = Sp[j] - s
                    e[j] += dh * dh + dv * dv
                s = Sc[W - 1]
                dh = Sc[0] - s
                dv = Sp[W - 1] - s
                e[W - 1] += dh * dh + dv * dv
            for j in range(W):
                kcur[j] = 0.0 if e[j] < thr else 1.0
            if step > 0:
                im = i - 1 if i > 0 else H - 1
                for c in range(C):
                    Sc = S[c, i]
                    Sm = S[c, im]
                    Sp = S[c, ip]
                    o = out[c, i]
                    s = Sc[0]
                    o[0] = (((s - Sc[W - 1]) * kcur[W - 1] - (Sc[1] - s) * kcur[0])
                            + ((s - Sm[0]) * kprev[0] - (Sp[0] - s) * kcur[0]))
                    for j in range(1, W - 1):
                        s = Sc[j]
                        o[j] = (((s - Sc[j - 1]) * kcur[j - 1] - (Sc[j + 1] - s) * kcur[j])
                                + ((s - Sm[j]) * kprev[j] - (Sp[j] - s) * kcur[j]))
                    j = W - 1
                    s = Sc[j]
                    o[j] = (((s - Sc[j - 1]) * kcur[j - 1] - (Sc[0] - s) * kcur[j])
                            + ((s - Sm[j]) * kprev[j] - (Sp[j] - s) * kcur[j]))
            kprev, kcur = kcur, kprev


@njit(cache=True, parallel=True)
def spectral_update(F, N1, den, beta):
    """In place: F = (N1 + beta * F) / (1 + beta * den), ``den`` broadcast over channels.

    ``F`` and ``N1`` are C-contiguous complex128 (C, H, Wr), ``den`` float64 (H, Wr). The division
    is done as a multiplication by the reciprocal, computed once per frequency (within one ulp of
    MATLAB's ``./``); working on the interleaved real view lets LLVM vectorise the loop.
    """
    C, H, W = F.shape
    Fv = F.view(np.float64)
    Nv = N1.view(np.float64)
    for i in prange(H):
        inv = np.empty(W)
        for j in range(W):
            inv[j] = 1.0 / (1.0 + beta * den[i, j])
        for c in range(C):
            Fr = Fv[c, i]
            Nr = Nv[c, i]
            for j in range(W):
                q = inv[j]
                Fr[2 * j] = (Nr[2 * j] + beta * Fr[2 * j]) * q
                Fr[2 * j + 1] = (Nr[2 * j + 1] + beta * Fr[2 * j + 1]) * q
