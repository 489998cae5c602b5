"""MATLAB's ``makecform('srgb2lab')`` / ``makecform('lab2srgb')`` as the reference assumes them.

Used by the WLS multi-scale detail enhancement (``operators.wls_enhance``; Farbman et al. 2008 as
the authors' ``training_data_generation.m`` calls it). Implemented from the written description in
``shared/docs/operators_extra.md`` §3 (no MATLAB code copied). MATLAB's ``srgb2lab`` cform is the
ICC sRGB profile into the ICC profile connection space (D50), not the D65 of ``rgb2lab``:

* linearise sRGB: ``c/12.92`` for ``c <= 0.04045``, else ``((c + 0.055)/1.055)^2.4``;
* XYZ = M·rgb_lin with the ICC sRGB profile's D50-adapted colorants :data:`SRGB_D50` (columns R, G,
  B; every row sums to 1 for Y, so white maps to L = 100);
* CIE L*a*b* relative to ``whitepoint('icc')`` = [31595, 32768, 27030]/32768 (:data:`WHITE_ICC`),
  with ``f(t) = t^(1/3)`` for ``t > 0.008856``, else ``7.787·t + 16/116``; L in 0..100 (double
  data), a*, b* unscaled;
* the inverse (``lab2srgb``): ``t = f^3`` for ``f > 0.008856^(1/3)``, else ``(f − 16/116)/7.787``;
  rgb_lin = M⁻¹·XYZ **clipped to [0, 1]**; encode ``12.92·c`` for ``c <= 0.04045/12.92``, else
  ``1.055·c^(1/2.4) − 0.055``.

The documented part (ICC D50 adapted white, L in 0..100 for double data) is solid; the 4-decimal
colorants and the clipping point are the reference's ASSUMPTION about MATLAB's cform, which a
real-MATLAB run may differ from by up to ~1e-3 (see ``shared/reference/README.md``). The reference
outputs were made with exactly these semantics.
"""
from __future__ import annotations

import numpy as np
from ._jit import njit, prange

__all__ = ["SRGB_D50", "SRGB_D50_INV", "WHITE_ICC", "srgb2lab", "lab2srgb"]

#: ICC sRGB profile colorants adapted to D50 (XYZ = SRGB_D50 @ rgb_lin).
SRGB_D50 = np.array([[0.4361, 0.3851, 0.1431],
                     [0.2225, 0.7169, 0.0606],
                     [0.0139, 0.0971, 0.7141]])
#: Its inverse (XYZ -> linear RGB).
SRGB_D50_INV = np.linalg.inv(SRGB_D50)
#: MATLAB's ``whitepoint('icc')``: the ICC profile connection space white (D50, 16-bit fixed point).
WHITE_ICC = np.array([31595.0, 32768.0, 27030.0]) / 32768.0

_EPS_LAB = 0.008856
_K_LAB = 7.787
_F_THRESH = _EPS_LAB ** (1.0 / 3.0)


@njit(cache=True, inline="always")
def _lin(c):  # pragma: no cover - compiled
    if c <= 0.04045:
        return c / 12.92
    return ((c + 0.055) / 1.055) ** 2.4


@njit(cache=True, inline="always")
def _enc(c):  # pragma: no cover - compiled
    if c <= 0.04045 / 12.92:
        return 12.92 * c
    # c ** (1/2.4) as exp2(log2(c) / 2.4): 9 against 14 ns here, within 3 ulp (1.1e-16) of pow
    # (issue 28: the tone maps of wls_enhance take nine per pixel)
    return 1.055 * np.exp2(np.log2(c) * (1.0 / 2.4)) - 0.055


@njit(cache=True, inline="always")
def _f(t):  # pragma: no cover - compiled
    if t > 0.008856:
        return t ** (1.0 / 3.0)
    return 7.787 * t + 16.0 / 116.0


@njit(cache=True, inline="always")
def _finv(f, thresh):  # pragma: no cover - compiled
    if f > thresh:
        return f * f * f
    return (f - 16.0 / 116.0) / 7.787


@njit(cache=True, inline="always")
def srgb_to_lab_px(r, g, b, m, white):  # pragma: no cover - compiled
    """One pixel sRGB (double) -> (L, a, b) under the ICC D50 cform."""
    return _linear_to_lab_px(_lin(r), _lin(g), _lin(b), m, white)


@njit(cache=True, inline="always")
def _linear_to_lab_px(rl, gl, bl, m, white):  # pragma: no cover - compiled
    """One pixel of linear RGB -> (L, a, b) under the ICC D50 cform."""
    x = m[0, 0] * rl + m[0, 1] * gl + m[0, 2] * bl
    y = m[1, 0] * rl + m[1, 1] * gl + m[1, 2] * bl
    z = m[2, 0] * rl + m[2, 1] * gl + m[2, 2] * bl
    fx = _f(x / white[0])
    fy = _f(y / white[1])
    fz = _f(z / white[2])
    return 116.0 * fy - 16.0, 500.0 * (fx - fy), 200.0 * (fy - fz)


@njit(cache=True, inline="always")
def lab_to_srgb_px(lum, a, b, minv, white, thresh):  # pragma: no cover - compiled
    """One pixel (L, a, b) -> sRGB (double), linear RGB clipped to [0, 1] before encoding."""
    fy = (lum + 16.0) / 116.0
    fx = fy + a / 500.0
    fz = fy - b / 200.0
    x = _finv(fx, thresh) * white[0]
    y = _finv(fy, thresh) * white[1]
    z = _finv(fz, thresh) * white[2]
    out0 = minv[0, 0] * x + minv[0, 1] * y + minv[0, 2] * z
    out1 = minv[1, 0] * x + minv[1, 1] * y + minv[1, 2] * z
    out2 = minv[2, 0] * x + minv[2, 1] * y + minv[2, 2] * z
    out0 = min(max(out0, 0.0), 1.0)
    out1 = min(max(out1, 0.0), 1.0)
    out2 = min(max(out2, 0.0), 1.0)
    return _enc(out0), _enc(out1), _enc(out2)


@njit(cache=True, parallel=True)
def _srgb2lab(rgb, m, white):  # pragma: no cover - compiled
    h, w, _ = rgb.shape
    out = np.empty((h, w, 3))
    for i in prange(h):
        for j in range(w):
            lum, a, b = srgb_to_lab_px(rgb[i, j, 0], rgb[i, j, 1], rgb[i, j, 2], m, white)
            out[i, j, 0] = lum
            out[i, j, 1] = a
            out[i, j, 2] = b
    return out


@njit(cache=True, parallel=True)
def _srgb2lab_u8(rgb, m, white):  # pragma: no cover - compiled
    """``_srgb2lab`` of uint8 ``rgb`` read as x/255: the 256 linearised values are computed once
    (the same ``_lin(x / 255)`` of each pixel's, so the same bits) instead of three powers per
    pixel (issue 28: 0.10 -> 0.06 s of CPU at 1024x1024)."""
    lut = np.empty(256)
    for k in range(256):
        lut[k] = _lin(k / 255.0)
    h, w, _ = rgb.shape
    out = np.empty((h, w, 3))
    for i in prange(h):
        for j in range(w):
            lum, a, b = _linear_to_lab_px(lut[rgb[i, j, 0]], lut[rgb[i, j, 1]],
                                          lut[rgb[i, j, 2]], m, white)
            out[i, j, 0] = lum
            out[i, j, 1] = a
            out[i, j, 2] = b
    return out


@njit(cache=True, parallel=True)
def _lab2srgb(lab, minv, white, thresh):  # pragma: no cover - compiled
    h, w, _ = lab.shape
    out = np.empty((h, w, 3))
    for i in prange(h):
        for j in range(w):
            r, g, b = lab_to_srgb_px(lab[i, j, 0], lab[i, j, 1], lab[i, j, 2], minv, white,
                                     thresh)
            out[i, j, 0] = r
            out[i, j, 1] = g
            out[i, j, 2] = b
    return out


def _check3(a, name):
    arr = np.asarray(a, dtype=np.float64)
    if arr.ndim != 3 or arr.shape[2] != 3:
        raise ValueError(f"{name} expects an HxWx3 array, got shape {arr.shape}")
    return np.ascontiguousarray(arr)


def srgb2lab(rgb) -> np.ndarray:
    """``applycform(rgb, makecform('srgb2lab'))`` for double data: HxWx3 L (0..100), a*, b*.

    ``rgb`` is HxWx3 float (MATLAB double scale, [0, 1]), values used as given, or uint8, read
    as x/255 (``im2double``; the same result as passing ``rgb / 255``, computed faster).
    """
    if isinstance(rgb, np.ndarray) and rgb.dtype == np.uint8:
        if rgb.ndim != 3 or rgb.shape[2] != 3:
            raise ValueError(f"srgb2lab expects an HxWx3 array, got shape {rgb.shape}")
        return _srgb2lab_u8(np.ascontiguousarray(rgb), SRGB_D50, WHITE_ICC)
    return _srgb2lab(_check3(rgb, "srgb2lab"), SRGB_D50, WHITE_ICC)


def lab2srgb(lab) -> np.ndarray:
    """``applycform(lab, makecform('lab2srgb'))`` for double data: HxWx3 sRGB in [0, 1]."""
    return _lab2srgb(_check3(lab, "lab2srgb"), SRGB_D50_INV, WHITE_ICC, _F_THRESH)
