"""Super-resolution input: bicubic down- then up-sampling of the luma (operator ``sr``).

Fan et al. learn single-image super-resolution as one of their restoration operators (ECCV 2018
§4 / TPAMI 2019 §5 and Table 2, scales 2, 3, 4, following SRCNN: C. Dong, C. C. Loy, K. He,
X. Tang, "Image Super-Resolution Using Deep Convolutional Networks", TPAMI 38(2), 2016,
doi:10.1109/TPAMI.2015.2439281). The authors' ``training_data_generation.m`` ("super resolution"
block), as described in ``shared/docs/operators_extra.md`` §6:

* Y = ``rgb2ycbcr(im2double(I))(:,:,1)`` (float64, MATLAB's BT.601 matrix, not quantised);
* T = ``modcrop(Y, m)`` with m = s for s = 2, 4 and m = 6 for s = 3 (the top-left
  (H − H mod m) × (W − W mod m) block, SRCNN's definition);
* input = ``imresize(imresize(T, 1/s, 'bicubic'), [h w], 'bicubic')`` with MATLAB's antialiased
  bicubic (:func:`operators._imresize.imresize`); target = T.
"""
from __future__ import annotations

import numpy as np

from ._degrade_kernels import luma as _luma
from ._imresize import imresize
from ._memory import tune_malloc

__all__ = ["SCALES", "luma", "modcrop", "sr_degrade", "sr_pair"]

#: The scale factors of the paper (and the only ones the registry accepts).
SCALES = (2, 3, 4)


def luma(image) -> np.ndarray:
    """MATLAB's Y of YCbCr for an RGB image, or the image itself (HxW) for a gray one.

    A gray image (HxW or HxWx1) is taken to be the luma already (it is not re-encoded).
    """
    return _luma(image)


def _modulus(scale: int) -> int:
    return 2 * scale if scale == 3 else scale


def _check_scale(scale) -> int:
    if isinstance(scale, bool) or not isinstance(scale, (int, float, np.integer, np.floating)):
        raise TypeError(f"sr: scale must be one of {SCALES}, got {scale!r}")
    if not (float(scale) == float(scale) and float(scale) in SCALES):
        raise ValueError(f"sr: scale must be one of {SCALES} (integer), got {scale!r}")
    return int(scale)


def modcrop(y: np.ndarray, m: int) -> np.ndarray:
    """Keep the top-left (H − H mod m) × (W − W mod m) block (SRCNN's ``modcrop``)."""
    h, w = y.shape[:2]
    return y[: h - h % m, : w - w % m]


def sr_pair(image, scale) -> tuple[np.ndarray, np.ndarray]:
    """(degraded input, target T), both HxW float64; T is the modcropped luma.

    Raises a ``ValueError`` when the image is smaller than the modcrop block or so small that the
    shrunk image would be empty.
    """
    s = _check_scale(scale)
    tune_malloc()
    y = luma(image)
    m = _modulus(s)
    if y.shape[0] < m or y.shape[1] < m:
        raise ValueError(f"sr: image {y.shape[0]}x{y.shape[1]} is smaller than the {m}x{m} "
                         f"modcrop block of scale {s}")
    t = np.ascontiguousarray(modcrop(y, m))
    low = imresize(t, 1.0 / s)
    return imresize(low, shape=t.shape), t


def sr_degrade(image, scale) -> np.ndarray:
    """The network input of scale ``scale``: HxW float64, unclipped (the reference's ``output``)."""
    return sr_pair(image, scale)[0]
