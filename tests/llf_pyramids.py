"""Slow, literal Laplacian-pyramid machinery of the authors' fast_LLF code, for the LLF-family
tests (llf, llf_remap, style): straight from the description (operators.md §2.6,
operators_extra.md §0.3): full-size 5x5 correlations with zero padding, divided by the filtered
ones / 0-1 mask; complete pyramids; no streaming, no lookup tables."""
from __future__ import annotations

import numpy as np
from scipy.ndimage import correlate

F2 = np.outer([0.05, 0.25, 0.4, 0.25, 0.05], [0.05, 0.25, 0.4, 0.25, 0.05])


def imfilter(x):
    return correlate(x, F2, mode="constant", cval=0.0)


def down(x):
    return (imfilter(x) / imfilter(np.ones_like(x)))[::2, ::2]


def up(coarse, shape):
    z = np.zeros(shape)
    m = np.zeros(shape)
    z[::2, ::2] = coarse
    m[::2, ::2] = 1.0
    return imfilter(z) / imfilter(m)


def gaussian(x, n):
    pyr = [x]
    for _ in range(n - 1):
        pyr.append(down(pyr[-1]))
    return pyr


def laplacian(x, n):
    g = gaussian(x, n)
    return [g[k] - up(g[k + 1], g[k].shape) for k in range(n - 1)] + [g[-1]]
