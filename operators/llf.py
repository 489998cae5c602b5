"""Fast local Laplacian filter (Aubry et al. 2014), as the authors' ``llf.m`` computes it."""
from __future__ import annotations

import math
from functools import lru_cache

import numpy as np

from ._color import RGB2GRAY
from ._memory import check_memory, tune_malloc
from ._validate import MATLAB_EPS, as_count, as_float_image, as_gamma, as_positive, restore_shape

__all__ = ["local_laplacian", "pyramid_depth", "RGB2GRAY"]

#: Refuse more reference intensities than this (time and memory grow linearly with N; the
#: reference uses 10).
MAX_SAMPLES = 1024
#: Peak memory, bytes per pixel: ~8·(N/4 + 1) for the remapped pyramids plus ~100 for the image
#: copies, the gray image, the input pyramid and the output (RGB); measured 110 MB per RGB
#: megapixel at N = 10 (``ru_maxrss`` slope between 1 and 2 MP).
BYTES_PER_PIXEL_BASE = 100


def pyramid_depth(h: int, w: int) -> int:
    """Number of pyramid levels of the reference: ceil(ln(min(h, w)) − ln 2) + 2 (natural log)."""
    return math.ceil(math.log(min(h, w)) - math.log(2.0)) + 2


def local_laplacian(image, fact: float = 5.0, *, sigma: float = 0.1,
                    n_samples: int = 10) -> np.ndarray:
    """Enhance (or smooth) local detail with the fast local Laplacian filter.

    Each pixel's fine-scale contrast is scaled by about ``1 + fact`` for small intensity
    variations (below ~σ) while large steps, i.e. edges, are left alone, so textures pop without
    halos around strong edges. The fast algorithm samples ``n_samples`` reference intensities r_k
    evenly in [0, 1]; for each it remaps the image with the detail curve
    d_k = fact·(I − r_k)·exp(−(I − r_k)²/2σ²), builds the Laplacian pyramid of d_k, and adds
    it to the input's Laplacian pyramid, each coefficient weighted by a hat function of the
    distance between the input's Gaussian-pyramid value there and r_k. Collapsing the pyramid
    gives the result. This reproduces the authors' MATLAB ``llf.m`` with its Mertens/Hasinoff
    pyramid (5-tap filter [.05 .25 .4 .25 .05], zero padding with reweighted borders, ceil
    halving, ceil(ln(min(h, w)) − ln 2) + 2 levels).

    Colour images are processed as the paper's data generation does: the filter runs on
    ``gray = rgb2gray(rgb)`` and the output is ``llf(gray) · rgb / (gray + eps)``. Gray input
    (HxW or HxWx1) returns ``llf(gray)`` itself.

    Parameters
    ----------
    image : ndarray
        HxW (gray), HxWx1 or HxWx3 image, uint8 (read as x/255) or float in [0, 1].
    fact : float, default 5.0
        Detail enhancement factor: the detail curve's slope at r_k is ``fact``, so small-scale
        contrast grows by about ``1 + fact``. Negative values (> −1) smooth. The paper's range is
        the integers 2..8.
    sigma : float, default 0.1
        Width σ > 0 of the intensity range treated as detail (in [0, 1] units).
    n_samples : int, default 10
        Number N of reference intensities linspace(0, 1, N), 2 to 1024.

    Returns
    -------
    ndarray
        float64 array of the input's shape, **not clipped**: enhanced detail leaves [0, 1].

    Notes
    -----
    Cost: one Gaussian pyramid of the input plus one of all N remapped images (level 1 and up;
    the full-resolution remapped images are never stored), then one collapse pass per level in
    which only the two samples with non-zero hat weight are upsampled at each pixel: O(N·HW)
    for the first downsampling, O(HW) for the rest, instead of the reference's N + 1 complete
    Laplacian pyramids and N full-size upsamplings per level. Extra memory is about
    N·HW/4 float64 (20 MB per megapixel at N = 10). The result equals the reference's up to
    float64 rounding (about 1e-14): the collapse is written as G_l(I) + D_l with the detail
    correction D_l = up(D_{l+1}) + Σ_k w_k·L_l(d_k) (equal to the reference's collapse because
    the pyramid operators are linear), the reweighting normalisers are folded into per-level
    1-D tap tables, and for σ >= ~0.041 the Gaussians of the remapping are chained
    multiplicatively from r_0 = 0 (two ``exp`` per pixel instead of N).

    Against the reference outputs (made under GNU Octave, whose ``rgb2gray`` rounds its weights
    to 6 decimals) the colour results differ by up to ~3e-6; with Octave's rounded weights they
    would agree to float32 storage precision.

    Tiny images work: a 2x2 (or 17x2) image has 2 levels, the top one 1x1 (resp. 9x1).

    References
    ----------
    M. Aubry, S. Paris, S. W. Hasinoff, J. Kautz, F. Durand. Fast Local Laplacian Filters:
    Theory and Applications. ACM TOG 33(5), 2014. doi:10.1145/2629645

    S. Paris, S. W. Hasinoff, J. Kautz. Local Laplacian Filters: Edge-aware Image Processing
    with a Laplacian Pyramid. ACM TOG 30(4) (SIGGRAPH 2011). doi:10.1145/1964921.1964963

    Examples
    --------
    >>> import numpy as np
    >>> from operators.llf import local_laplacian
    >>> img = np.full((32, 32, 3), 0.5)
    >>> img[::4, ::4] += 0.02                 # faint texture on a flat grey
    >>> out = local_laplacian(img, 5.0)
    >>> out.shape, out.dtype
    ((32, 32, 3), dtype('float64'))
    >>> bool(np.ptp(out) > 2 * np.ptp(img))   # the texture is amplified
    True
    >>> bool(np.allclose(local_laplacian(np.full((8, 8), 0.3)), 0.3))  # flat stays flat
    True
    """
    img, was_2d = as_float_image(image)
    fact = as_gamma(fact, name="llf fact")
    sigma = as_positive(sigma, name="llf sigma")
    n_samples = as_count(n_samples, name="llf n_samples", minimum=2)
    if not 2.0 * sigma * sigma > 0.0 or not math.isfinite(1.0 / (2.0 * sigma * sigma)):
        raise ValueError(f"llf: sigma={sigma:g} is too small (1 / (2 sigma^2) overflows); "
                         "use sigma >= 1e-150")
    if n_samples > MAX_SAMPLES:
        raise ValueError(f"llf: n_samples={n_samples} is too many; at most {MAX_SAMPLES} are "
                         "allowed (the reference uses 10)")
    h, w = img.shape[:2]
    per_px = BYTES_PER_PIXEL_BASE + 2.0 * n_samples + 8.0
    check_memory("llf", img.shape, per_px * h * w,
                 f"about {per_px:.0f} MB per megapixel at n_samples={n_samples}")
    tune_malloc()

    if img.shape[2] == 3:
        colour = np.ascontiguousarray(img)
        gray = colour @ RGB2GRAY
    else:
        gray = np.ascontiguousarray(img[:, :, 0])
        colour = gray.reshape(gray.shape + (1,))
    out = _llf(gray, colour, fact, sigma, int(n_samples))
    return restore_shape(out, was_2d)


@lru_cache(maxsize=64)
def _level_taps(h: int, w: int):
    """Read-only tap tables of one pyramid level of size h x w: (down rows, down cols, up rows,
    up cols), see :func:`operators._llf_kernels.down_taps` / ``up_taps``."""
    from ._llf_kernels import down_taps, up_taps

    tabs = (down_taps(h), down_taps(w), up_taps(h), up_taps(w))
    for t in tabs:
        for a in t:
            a.setflags(write=False)
    return tabs


def _llf(gray: np.ndarray, colour: np.ndarray, fact: float, sigma: float, n: int) -> np.ndarray:
    """The filter on a C-contiguous float64 gray image; returns (h, w, C) as colour's C."""
    from . import _llf_kernels as K

    refs = np.linspace(0.0, 1.0, n)
    c = 1.0 / (2.0 * sigma * sigma)
    use_rec, up = K.remap_tables(refs, c)
    nchunks = 4 * _num_threads()

    def first(ri, rw, ci, cw):  # level 1 of the n images remapped with LLF's detail curve
        return K.remap_downsample(gray, refs, fact, c, use_rec, up, ri, rw, ci, cw, nchunks)

    return collapse_pyramids(gray, colour, refs, first, nchunks)


def collapse_pyramids(gray: np.ndarray, colour: np.ndarray, refs: np.ndarray, first_level,
                      nchunks: int) -> np.ndarray:
    """The fast-LLF orchestration shared by ``llf``, ``llf_remap`` and ``style``.

    Gaussian pyramids of the input (1 channel) and of the N remapped images (N channels), whose
    first level (and the level-0 detail weights) ``first_level(ri, rw, ci, cw) -> (g_d1, wd)``
    makes in one streaming pass with the remapping of the caller; then the top-down collapse
    that touches the two samples with non-zero hat weight per pixel. Returns (h, w, C) as
    ``colour``.
    """
    from . import _llf_kernels as K

    h, w = gray.shape
    depth = pyramid_depth(h, w)
    sizes = [(h, w)]
    for _ in range(depth - 1):
        hh, ww = sizes[-1]
        sizes.append(((hh + 1) // 2, (ww + 1) // 2))
    taps = [_level_taps(*s) for s in sizes[:-1]]

    g_in = [gray.reshape(h, w, 1)]  # (h, w, 1) views: the kernels take channel-last stacks
    for t in taps:
        (ri, rw), (ci, cw) = t[0], t[1]
        g_in.append(K.downsample(g_in[-1], ri, rw, ci, cw, nchunks))
    (ri, rw), (ci, cw) = taps[0][0], taps[0][1]
    g_d1, wd = first_level(ri, rw, ci, cw)
    g_d = [None, g_d1]
    for t in taps[1:]:
        (ri, rw), (ci, cw) = t[0], t[1]
        g_d.append(K.downsample(g_d[-1], ri, rw, ci, cw, nchunks))

    # Collapse, top-down; the top level of the output pyramid is G_top(I), so D_top = 0.
    d = np.zeros(sizes[-1])
    for lev in range(depth - 2, 0, -1):
        (ri, rw, rc), (ci, cw, _) = taps[lev][2], taps[lev][3]
        d = K.collapse_level(g_in[lev].reshape(sizes[lev]), g_d[lev], g_d[lev + 1], d,
                             ri, rw, rc, ci, cw, refs, nchunks)
    (ri, rw, rc), (ci, cw, _) = taps[0][2], taps[0][3]
    return K.collapse_bottom(gray, colour, wd, g_d[1], d, ri, rw, rc, ci, cw, refs, MATLAB_EPS,
                             nchunks)


def _num_threads() -> int:
    import numba

    return numba.get_num_threads()
