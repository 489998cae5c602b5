"""MATLAB's colour conversions for double images (``shared/docs/operators_extra.md`` §0.1).

One place for the conversions several operators share: ``rgb2gray`` with MATLAB's unrounded
coefficients (LLF, the general-remapping LLF, style transfer, denoising), and the BT.601
``rgb2ycbcr``/``ycbcr2rgb`` pair with MATLAB's 3-decimal matrix (shock, pencil, SR, JPEG).
All functions take and return float64 in MATLAB's double scale ([0, 1] for RGB).
"""
from __future__ import annotations

import numpy as np

#: MATLAB's ``rgb2gray`` weights: the first row of the inverse NTSC (YIQ) matrix, unrounded
#: (Octave rounds them to 6 decimals; MATLAB does not).
RGB2GRAY = np.array([0.298936021293775, 0.587043074451121, 0.114020904255103])

#: MATLAB's ``rgb2ycbcr`` matrix T (BT.601 studio swing, rows Y, Cb, Cr) for R, G, B in [0, 255]
#: giving Y, Cb, Cr in [0, 255] before the offsets.
YCBCR_T = np.array([[65.481, 128.553, 24.966],
                    [-37.797, -74.203, 112.0],
                    [112.0, -93.786, -18.214]])
YCBCR_OFFSET = np.array([16.0, 128.0, 128.0])
_T_INV = np.linalg.inv(YCBCR_T)
_SHIFT = _T_INV @ YCBCR_OFFSET


def rgb2gray(rgb: np.ndarray) -> np.ndarray:
    """MATLAB ``rgb2gray`` of an HxWx3 double image: HxW float64."""
    rgb = np.asarray(rgb, dtype=np.float64)
    return rgb[..., 0] * RGB2GRAY[0] + rgb[..., 1] * RGB2GRAY[1] + rgb[..., 2] * RGB2GRAY[2]


def rgb2ycbcr(rgb: np.ndarray) -> np.ndarray:
    """MATLAB ``rgb2ycbcr`` of an HxWx3 double image in [0, 1]: HxWx3 Y, Cb, Cr in [0, 1].

    Evaluated as MATLAB does (``imlincomb`` with the coefficients T/255 and the offset added last),
    not as (offset + T·rgb)/255: the two differ in the last bit, which decides exact rounding ties
    (the shock filter's reference has such ties).
    """
    rgb = np.asarray(rgb, dtype=np.float64)
    out = np.empty_like(rgb)
    for c in range(3):
        out[..., c] = _lincomb(rgb, YCBCR_T[c] / 255.0, YCBCR_OFFSET[c] / 255.0)
    return out


def rgb2y(rgb: np.ndarray) -> np.ndarray:
    """The Y channel of :func:`rgb2ycbcr` alone (HxW), as ``rgb2ycbcr(I)(:,:,1)``."""
    return _lincomb(np.asarray(rgb, dtype=np.float64), YCBCR_T[0] / 255.0, YCBCR_OFFSET[0] / 255.0)


def _lincomb(planes: np.ndarray, coef: np.ndarray, offset: float) -> np.ndarray:
    """``imlincomb(c1, P1, c2, P2, c3, P3, offset)``: accumulated left to right in double."""
    return planes[..., 0] * coef[0] + planes[..., 1] * coef[1] + planes[..., 2] * coef[2] + offset


def ycbcr2rgb(ycc: np.ndarray) -> np.ndarray:
    """MATLAB ``ycbcr2rgb`` of an HxWx3 double YCbCr image: RGB clipped to [0, 1].

    RGB = (255·T⁻¹)·YCbCr − T⁻¹·offset with the inverse of the same rounded matrix (``imlincomb``
    order), then clipped as MATLAB does for double output.
    """
    ycc = np.asarray(ycc, dtype=np.float64)
    out = np.empty_like(ycc)
    for c in range(3):
        out[..., c] = _lincomb(ycc, 255.0 * _T_INV[c], -_SHIFT[c])
    return np.clip(out, 0.0, 1.0, out=out)
