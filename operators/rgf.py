"""Rolling guidance filter (Zhang, Shen, Xu & Jia 2014), as the authors' MATLAB code computes it."""
from __future__ import annotations

import math

import numpy as np

from ._rgf_kernels import bilateral_grid_pass
from ._memory import check_memory, tune_malloc
from ._validate import as_count, as_float_image, as_positive, restore_shape

__all__ = ["rolling_guidance"]

#: Target number of grid rows per parallel task: enough that the 3 halo rows each task
#: recomputes stay a few per cent of its work.
_GRID_ROWS_PER_TASK = 32
#: At most this many row blocks per channel (3 channels x 8 blocks keep 2 threads balanced).
_MAX_BLOCKS = 8
#: Refuse parameters whose per-task grid buffers (10 grid rows of float64) would exceed this.
_MAX_TASK_BYTES = 1 << 30
#: Refuse more guide updates than this (each is ~0.03 s at 1 MP; the reference runs 4).
MAX_ITERATIONS = 1000
#: Peak memory per pixel and channel (bytes): input, guide and result planes (float64) plus the
#: channel-last copies of the input and the output; measured 157 MB per RGB megapixel.
BYTES_PER_PIXEL_CHANNEL = 56


def rolling_guidance(image, sigma_s: float = 3.0, *, sigma_r: float = 0.05,
                     iterations: int = 4) -> np.ndarray:
    """Remove small structures and keep large edges with the rolling guidance filter.

    Starting from an all-zero guide, each iteration replaces the guide by a joint bilateral filter
    of the *input*, guided by the previous result. The first pass (constant guide) is a Gaussian
    blur that erases structures smaller than about σs; the following passes bring back the edges of
    the larger structures that survived it. Each channel is filtered separately with the
    bilateral grid of Chen, Paris & Durand (grid cells of σs pixels by σr intensity), exactly as
    the authors' ``RollingGuidanceFilter.m`` / ``bilateralFilter2.m`` do.

    Parameters
    ----------
    image : ndarray
        HxW (gray), HxWx1 or HxWx3 image, uint8 (read as x/255) or float in [0, 1].
    sigma_s : float, default 3.0
        Spatial scale σs > 0 in pixels: structures smaller than about σs are removed. It is also
        the size of a grid cell. The paper's training range is [1, 10] (uniform).
    sigma_r : float, default 0.05
        Range scale σr > 0 in intensity units of [0, 1] data; also the grid's depth cell. The
        authors' training data uses 0.05.
    iterations : int, default 4
        Number of guide updates, 1 to 1000 (4 in the training data).

    Returns
    -------
    ndarray
        float64 array of the input's shape, not clipped. Every output value is a weighted mean
        of input values of its channel, so it stays within their range up to float rounding.

    Notes
    -----
    Per channel and iteration, with the guide ``g`` (the previous result, 0 at the start):

    - grid of (floor((H-1)/σs)+7) x (floor((W-1)/σs)+7) x (floor((max g - min g)/σr)+7) cells;
    - splat pixel (i, j) (0-based) into the cell (round(i/σs)+3, round(j/σs)+3,
      round((g-min g)/σr)+3), MATLAB rounding (half away from zero), summing values and counts;
    - blur values and counts with the unnormalised separable kernel [e^-1/2, 1, e^-1/2] on all
      three axes (zero padding), then divide them, cells of zero count giving 0;
    - read the result back by trilinear interpolation at the unrounded coordinates (i/σs+3,
      j/σs+3, (g-min g)/σr+3); a NaN would fall back to the input value.

    The grid is streamed one spatial row at a time and stores per grid column only the depth range
    that can be non-zero, so memory is O(W/σs · depth) per thread and the cost is
    O(HW + (HW/σs²)·r) per pass, r being the local depth spread (a few cells at σs = 1, where the
    dense grid would be larger than the image). At σs = 1 exactly, where each grid cell holds one
    pixel, no grid is built: each pixel's two blurred cells are summed directly from its 3x3
    neighbourhood with the same operations (same bits, ~0.2x the CPU time). Tasks are (channel,
    block of rows) run in parallel with Numba; the result does not depend on the number of
    threads.

    Differences from the reference: none beyond float64 rounding. The blur is applied as separable
    passes instead of one 3x3x3 ``convn``, which changes the order of additions (about 1e-16
    relative). Unlike the paper, which filters colour images jointly, the reference filters each
    channel on its own, and so does this function. OpenCV's ``cv2.ximgproc.rollingGuidanceFilter``
    is a different approximation (brute-force bilateral, L1 colour distance, and its first pass is
    guided by the input, opencv_contrib issue #1738): it differs by several grey levels.

    References
    ----------
    Q. Zhang, X. Shen, L. Xu, J. Jia. Rolling Guidance Filter. ECCV 2014.
    doi:10.1007/978-3-319-10578-9_53

    J. Chen, S. Paris, F. Durand. Real-time Edge-Aware Image Processing with the Bilateral Grid.
    ACM TOG 26(3) (SIGGRAPH 2007). doi:10.1145/1276377.1276506

    Examples
    --------
    >>> import numpy as np
    >>> from operators.rgf import rolling_guidance
    >>> img = np.zeros((32, 32), np.uint8)
    >>> img[:, 16:] = 200                       # one strong edge ...
    >>> img[4:6, 4:6] = 255                     # ... and a 2-pixel speck
    >>> out = rolling_guidance(img, 3.0)
    >>> out.shape, out.dtype
    ((32, 32), dtype('float64'))
    >>> bool(out[5, 5] < 0.1)                   # the speck is gone
    True
    >>> float(out[16, 15].round(3)), float(out[16, 16].round(3))  # the edge stays sharp
    (0.0, 0.784)
    """
    img, was_2d = as_float_image(image)
    sigma_s = as_positive(sigma_s, name="rgf sigma_s")
    sigma_r = as_positive(sigma_r, name="rgf sigma_r")
    iterations = as_count(iterations, name="rgf iterations", minimum=1)
    if iterations > MAX_ITERATIONS:
        raise ValueError(f"rgf: iterations={iterations} is too many; at most {MAX_ITERATIONS} "
                         "are allowed (the reference runs 4)")

    h, w = img.shape[:2]
    # the guide spans at most [0, 1]: that bounds the grid depth of every pass
    row_bytes = 8.0 * ((w - 1) / sigma_s + 7) * (1.0 / sigma_r + 7)
    if 10 * row_bytes > _MAX_TASK_BYTES:
        raise ValueError(
            f"sigma_s={sigma_s:g}, sigma_r={sigma_r:g} need a bilateral grid of "
            f"{10 * row_bytes / 2**30:.3g} GiB per thread for a {w}-pixel-wide image; "
            "use larger sigmas"
        )
    check_memory("rgf", img.shape, BYTES_PER_PIXEL_CHANNEL * h * w * img.shape[2],
                 f"about {BYTES_PER_PIXEL_CHANNEL * 3:.0f} MB per RGB megapixel")
    tune_malloc()
    data = np.ascontiguousarray(img.transpose(2, 0, 1))  # C x H x W, one plane per task
    grid_rows = math.floor((h - 1) / sigma_s) + 1
    blocks = max(1, min(_MAX_BLOCKS, grid_rows // _GRID_ROWS_PER_TASK))
    chunk = -(-h // blocks)

    guide = np.zeros_like(data)
    for _ in range(int(iterations)):
        flat = guide.reshape(guide.shape[0], -1)
        gmin = flat.min(axis=1)
        gmax = flat.max(axis=1)
        res = np.empty_like(data)
        bilateral_grid_pass(data, guide, gmin, gmax, sigma_s, sigma_r, chunk, res)
        guide = res
    return restore_shape(np.ascontiguousarray(guide.transpose(1, 2, 0)), was_2d)
