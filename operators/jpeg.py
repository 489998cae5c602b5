"""JPEG deblocking input: a JPEG round trip of the luma at quality q (operator ``jpeg``).

Fan et al. learn JPEG deblocking as one of their restoration operators (ECCV 2018 §4 / TPAMI 2019
§5 and Table 2; the "deblock" code of the joint models), following ARCNN (C. Dong, Y. Deng,
C. C. Loy, X. Tang, "Compression Artifacts Reduction by a Deep Convolutional Network", ICCV 2015,
doi:10.1109/ICCV.2015.73). The authors' ``training_data_generation.m``, as described in
``shared/docs/operators_extra.md`` §7:

* Y = ``rgb2ycbcr(im2double(I))(:,:,1)`` (float64, not quantised, no modcrop);
* ``imwrite(Y, f, 'jpg', 'Quality', q)``: MATLAB converts the double image with ``im2uint8``
  (round half away from zero) and IJG libjpeg writes a one-component baseline JPEG with the
  standard luminance table scaled by q (slow integer DCT);
* the network input is the decoded file (/255), the target is Y.

OpenCV's libjpeg-turbo encodes and decodes ``im2uint8(Y)`` to the same pixels as the reference
(100 % of pixels on every reference entry). MATLAB's handling of a non-integer Quality is not
documented, so only integer qualities 1..100 are accepted.
"""
from __future__ import annotations

import math
import numbers

import cv2
import numpy as np

from ._degrade_kernels import luma_and_bytes
from ._memory import tune_malloc

__all__ = ["jpeg_roundtrip", "jpeg_degrade", "jpeg_pair", "check_quality"]


def check_quality(quality) -> int:
    """An integer JPEG quality in 1..100 (an integral float such as 10.0 is accepted)."""
    if isinstance(quality, bool) or not isinstance(quality, (numbers.Real, np.generic)):
        raise TypeError(f"jpeg: quality must be an integer in 1..100, got {quality!r}")
    q = float(quality)
    if not math.isfinite(q) or q != math.floor(q):
        raise ValueError(f"jpeg: quality must be an integer in 1..100 (libjpeg's integer "
                         f"quality), got {quality!r}")
    if not 1 <= q <= 100:
        raise ValueError(f"jpeg: quality must be an integer in 1..100, got {quality!r}")
    return int(q)


def jpeg_roundtrip(samples: np.ndarray, quality: int) -> np.ndarray:
    """Encode a 2-D uint8 array as a grayscale baseline JPEG at ``quality``; decode it (uint8)."""
    ok, buf = cv2.imencode(".jpg", samples, params=[cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:  # pragma: no cover - OpenCV refuses only invalid arguments
        raise RuntimeError("jpeg: OpenCV could not encode the image")
    out = cv2.imdecode(buf, cv2.IMREAD_GRAYSCALE)
    if out is None:  # pragma: no cover
        raise RuntimeError("jpeg: OpenCV could not decode its own JPEG")
    return out


def jpeg_pair(image, quality) -> tuple[np.ndarray, np.ndarray]:
    """(decoded luma /255, luma Y), both HxW float64.

    ``image`` is RGB (HxWx3; its MATLAB Y is compressed) or gray (HxW/HxWx1; taken as Y itself),
    uint8 or float in [0, 1].
    """
    q = check_quality(quality)
    tune_malloc()
    y, samples = luma_and_bytes(image)
    return jpeg_roundtrip(samples, q) / 255.0, y


def jpeg_degrade(image, quality) -> np.ndarray:
    """The network input at ``quality``: decoded luma /255, HxW float64 (reference ``output``)."""
    return jpeg_pair(image, quality)[0]
