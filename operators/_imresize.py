"""MATLAB's ``imresize(A, scale | [h w], 'bicubic')`` with its default antialiasing.

Implemented from the written description in ``shared/docs/operators_extra.md`` §0.2 (MATLAB's
documented algorithm; no MATLAB code copied). Separable; for each dimension with input length n,
output length m and scale s:

* scalar scale: m = ceil(s·n); target size: s = m/n for that dimension;
* Keys' cubic kernel with a = −0.5; when shrinking it is stretched, h(x) = s·k(s·x), support 4/s
  (the antialiasing), when enlarging h = k, support 4;
* output pixel x = 1..m sits at input coordinate u = x/s + 0.5·(1 − 1/s);
* taps left = floor(u − width/2) .. left + P − 1 with P = ceil(width) + 2, weights h(u − index)
  **normalised to sum 1** per output pixel;
* out-of-range indices mirror with the edge sample repeated (1..n, n..1, period 2n, numpy's
  ``mode='symmetric'``);
* dimensions are processed in order of increasing scale (rows first on a tie), in float64.

Used by the super-resolution input (``operators.sr``, Fan et al. TPAMI 2019 §5 "super resolution")
and by the pencil drawing's texture shrink.
"""
from __future__ import annotations

import math
import numbers
from functools import lru_cache

import numpy as np
from ._jit import njit, prange

__all__ = ["imresize", "contributions", "cubic"]


def cubic(x) -> np.ndarray:
    """Keys' cubic convolution kernel with a = −0.5 (MATLAB's ``cubic``)."""
    ax = np.abs(np.asarray(x, dtype=np.float64))
    ax2 = ax * ax
    ax3 = ax2 * ax
    return ((1.5 * ax3 - 2.5 * ax2 + 1.0) * (ax <= 1.0)
            + (-0.5 * ax3 + 2.5 * ax2 - 4.0 * ax + 2.0) * ((ax > 1.0) & (ax <= 2.0)))


@lru_cache(maxsize=64)
def contributions(n_in: int, n_out: int, scale: float,
                  antialias: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Tap table of one dimension: ``(idx, wt)``, both (n_out, P), 0-based indices.

    Output sample i (0-based) = Σ_t wt[i, t] · input[idx[i, t]]. Cached; the arrays are read-only.
    """
    if scale < 1.0 and antialias:
        width = 4.0 / scale

        def h(x):
            return scale * cubic(scale * x)
    else:
        width = 4.0
        h = cubic
    x = np.arange(1, n_out + 1, dtype=np.float64)
    u = x / scale + 0.5 * (1.0 - 1.0 / scale)
    left = np.floor(u - width / 2.0)
    p = int(math.ceil(width)) + 2
    ind = left[:, None] + np.arange(p, dtype=np.float64)[None, :]  # 1-based
    wt = h(u[:, None] - ind)
    wt = wt / wt.sum(axis=1, keepdims=True)
    aux = np.concatenate([np.arange(n_in), np.arange(n_in - 1, -1, -1)])
    idx = aux[np.mod(ind.astype(np.int64) - 1, 2 * n_in)]
    # MATLAB drops tap columns whose weights are all zero; they add exact zeros, so keeping them
    # changes nothing, but dropping them saves work.
    keep = np.any(wt != 0.0, axis=0)
    idx = np.ascontiguousarray(idx[:, keep])
    wt = np.ascontiguousarray(wt[:, keep])
    idx.flags.writeable = False
    wt.flags.writeable = False
    return idx, wt


@njit(cache=True, parallel=True)
def _resize_rows(a, idx, wt):  # pragma: no cover - compiled
    """a (n, L) -> (m, L): out[i] = Σ_t wt[i, t] · a[idx[i, t]] (taps summed in order)."""
    m, p = idx.shape
    cols = a.shape[1]
    out = np.zeros((m, cols))
    for i in prange(m):
        for t in range(p):
            w = wt[i, t]
            r = idx[i, t]
            for j in range(cols):
                out[i, j] += w * a[r, j]
    return out


@njit(cache=True, parallel=True)
def _resize_cols(a, idx, wt):  # pragma: no cover - compiled
    """a (H, n, C) -> (H, m, C) along the middle axis."""
    h, _, ch = a.shape
    m, p = idx.shape
    out = np.empty((h, m, ch))
    for i in prange(h):
        for j in range(m):
            for c in range(ch):
                s = 0.0
                for t in range(p):
                    s += wt[j, t] * a[i, idx[j, t], c]
                out[i, j, c] = s
    return out


def _check_scale(scale) -> float:
    if isinstance(scale, bool) or not isinstance(scale, (numbers.Real, np.generic)):
        raise TypeError(f"imresize: scale must be a positive real number, got {scale!r}")
    s = float(scale)
    if not (math.isfinite(s) and s > 0.0):
        raise ValueError(f"imresize: scale must be a finite number > 0, got {s}")
    return s


def _check_shape(shape) -> tuple[int, int]:
    try:
        dims = tuple(shape)
    except TypeError:
        raise TypeError(f"imresize: shape must be (rows, cols), got {shape!r}") from None
    if len(dims) != 2 or not all(
        isinstance(d, (numbers.Integral, np.integer)) and not isinstance(d, bool) for d in dims
    ):
        raise TypeError(
            f"imresize: shape must be two positive integers (rows, cols), got {shape!r}")
    if min(dims) < 1:
        raise ValueError(f"imresize: shape must be two positive integers, got {shape!r}")
    return int(dims[0]), int(dims[1])


def imresize(a, scale: float | tuple[int, int] | None = None,
             shape: tuple[int, int] | None = None, *, antialias: bool = True) -> np.ndarray:
    """MATLAB ``imresize(a, scale, 'bicubic')`` or ``imresize(a, [h w], 'bicubic')``.

    Parameters
    ----------
    a : HxW or HxWxC real array (any real dtype; values are used as they are, as float64 —
        MATLAB's uint8 re-quantisation of the output is not applied).
    scale : a positive scalar (output size ceil(scale·n) per dimension, and that scale in the
        kernel); a 2-tuple given here is taken as ``shape`` (MATLAB's ``imresize(A, [h w])``).
    shape : (rows, cols) of the output; the scale of each dimension is then rows/H, cols/W.
    antialias : MATLAB's 'Antialiasing' (default true: stretch the kernel when shrinking).

    Returns
    -------
    float64 array, HxW or HxWxC as the input, not clipped.
    """
    if isinstance(scale, (tuple, list, np.ndarray)) and shape is None:
        scale, shape = None, scale
    if (scale is None) == (shape is None):
        raise TypeError("imresize: give exactly one of scale= or shape=")
    if isinstance(a, (str, bytes)) or a is None:
        raise TypeError(f"imresize: a must be a numpy array, got {type(a).__name__}")
    arr = np.asarray(a)
    if not (np.issubdtype(arr.dtype, np.floating) or np.issubdtype(arr.dtype, np.integer)
            or arr.dtype == np.bool_):
        raise TypeError(f"imresize: unsupported dtype {arr.dtype}; use a real array")
    if arr.ndim not in (2, 3):
        raise ValueError(f"imresize: a must be HxW or HxWxC, got shape {arr.shape}")
    if arr.size == 0:
        raise ValueError(f"imresize: a is empty (shape {arr.shape})")
    h, w = arr.shape[:2]
    if shape is None:
        s = _check_scale(scale)
        m_h, m_w = int(math.ceil(s * h)), int(math.ceil(s * w))
        s_h = s_w = s
    else:
        m_h, m_w = _check_shape(shape)
        s_h, s_w = m_h / h, m_w / w
    was_2d = arr.ndim == 2
    x = np.ascontiguousarray(arr.reshape(h, w, -1), dtype=np.float64)
    # increasing scale; rows first on a tie (MATLAB's stable sort)
    for dim in ((0, 1) if s_h <= s_w else (1, 0)):
        if dim == 0:
            idx, wt = contributions(h, m_h, s_h, bool(antialias))
            cur_w, ch = x.shape[1], x.shape[2]
            x = _resize_rows(x.reshape(h, cur_w * ch), idx, wt).reshape(m_h, cur_w, ch)
        else:
            idx, wt = contributions(w, m_w, s_w, bool(antialias))
            x = _resize_cols(x, idx, wt)
    return x[:, :, 0] if was_2d else x
