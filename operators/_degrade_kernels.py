"""Fused one-pass kernels for the restoration degradations (sr, jpeg, denoise, rain).

The degradations themselves are cheap (a resampling, a libjpeg round trip, a noise draw); at
1024² the colour conversion and the float64 temporaries of NumPy expressions cost more than
they do. These kernels compute exactly the same arithmetic as :mod:`operators._color` and
:func:`operators._validate.to_uint8`, in the same order of operations, in one pass:

* a uint8 channel value u enters as u/255 (``im2double``); per-channel lookup tables hold
  (u/255)·coef, so ``Y = ((L0[r] + L1[g]) + L2[b]) + 16/255`` with coef = T/255 (MATLAB's
  ``imlincomb`` order, as ``_color.rgb2y``) is bit-identical to ``rgb2y(rgb/255)`` (and likewise
  ``rgb2gray``);
* ``im2uint8`` is floor(clip(x, 0, 1)·255 + 0.5).
"""
from __future__ import annotations

import numpy as np
from ._jit import njit, prange

from ._color import RGB2GRAY, YCBCR_OFFSET, YCBCR_T
from ._validate import image_array

_U = np.arange(256, dtype=np.float64) / 255.0
#: coef·(u/255) for u = 0..255: rows Y (R, G, B) of rgb2ycbcr and rgb2gray.
_Y_COEF = np.ascontiguousarray(YCBCR_T[0] / 255.0)
_Y_OFF = float(YCBCR_OFFSET[0] / 255.0)
_Y_LUT = np.ascontiguousarray(_U[None, :] * _Y_COEF[:, None])
_GRAY_LUT = np.ascontiguousarray(_U[None, :] * RGB2GRAY[:, None])


@njit(cache=True, parallel=True)
def _y_u8(rgb, lut, off):  # pragma: no cover - compiled
    h, w, _ = rgb.shape
    out = np.empty((h, w))
    for i in prange(h):
        for j in range(w):
            out[i, j] = (lut[0, rgb[i, j, 0]] + lut[1, rgb[i, j, 1]]
                         + lut[2, rgb[i, j, 2]]) + off
    return out


@njit(cache=True, parallel=True)
def _y_and_bytes_u8(rgb, lut, off):  # pragma: no cover - compiled
    """Y (float64) and im2uint8(Y) in one pass."""
    h, w, _ = rgb.shape
    out = np.empty((h, w))
    q = np.empty((h, w), np.uint8)
    for i in prange(h):
        for j in range(w):
            v = (lut[0, rgb[i, j, 0]] + lut[1, rgb[i, j, 1]] + lut[2, rgb[i, j, 2]]) + off
            out[i, j] = v
            q[i, j] = np.uint8(np.floor(min(max(v, 0.0), 1.0) * 255.0 + 0.5))
    return out, q


@njit(cache=True, parallel=True)
def _gray_u8(rgb, lut):  # pragma: no cover - compiled
    h, w, _ = rgb.shape
    out = np.empty((h, w))
    for i in prange(h):
        for j in range(w):
            out[i, j] = lut[0, rgb[i, j, 0]] + lut[1, rgb[i, j, 1]] + lut[2, rgb[i, j, 2]]
    return out


@njit(cache=True, parallel=True)
def _im2uint8(x):  # pragma: no cover - compiled
    h, w = x.shape
    out = np.empty((h, w), np.uint8)
    for i in prange(h):
        for j in range(w):
            v = min(max(x[i, j], 0.0), 1.0)
            out[i, j] = np.uint8(np.floor(v * 255.0 + 0.5))
    return out


@njit(cache=True, parallel=True)
def _noisy_quantised(g, noise, scale):  # pragma: no cover - compiled
    """(round(clip(g + scale·noise)·255)/255, round(clip(g)·255)/255) in one pass."""
    h, w = g.shape
    a = np.empty((h, w))
    b = np.empty((h, w))
    for i in prange(h):
        for j in range(w):
            v = min(max(g[i, j] + scale * noise[i, j], 0.0), 1.0)
            a[i, j] = np.floor(v * 255.0 + 0.5) / 255.0
            u = min(max(g[i, j], 0.0), 1.0)
            b[i, j] = np.floor(u * 255.0 + 0.5) / 255.0
    return a, b


@njit(cache=True, parallel=True)
def _screen_u8(img, r):  # pragma: no cover - compiled
    """1 − (1 − u/255)(1 − r) and u/255, per channel, for a uint8 HxWxC image."""
    h, w, c = img.shape
    out = np.empty((h, w, c))
    clean = np.empty((h, w, c))
    for i in prange(h):
        for j in range(w):
            rr = 1.0 - np.float64(r[i, j])
            for k in range(c):
                x = img[i, j, k] / 255.0
                clean[i, j, k] = x
                out[i, j, k] = 1.0 - (1.0 - x) * rr
    return out, clean


@njit(cache=True, parallel=True)
def _screen_f_u8(img, r):  # pragma: no cover - compiled
    h, w, c = img.shape
    out = np.empty((h, w, c))
    for i in prange(h):
        for j in range(w):
            rr = 1.0 - np.float64(r[i, j])
            for k in range(c):
                out[i, j, k] = 1.0 - (1.0 - img[i, j, k] / 255.0) * rr
    return out


@njit(cache=True, parallel=True)
def _screen_f(img, r):  # pragma: no cover - compiled
    h, w, c = img.shape
    out = np.empty((h, w, c))
    for i in prange(h):
        for j in range(w):
            rr = 1.0 - np.float64(r[i, j])
            for k in range(c):
                out[i, j, k] = 1.0 - (1.0 - img[i, j, k]) * rr
    return out


def luma(image) -> np.ndarray:
    """MATLAB's Y of YCbCr (HxW float64) of an RGB image; a gray image is returned as float64."""
    arr, _ = image_array(image)
    if arr.shape[2] == 1:
        x = arr[:, :, 0]
        return x / 255.0 if x.dtype == np.uint8 else x.astype(np.float64)
    if arr.dtype == np.uint8:
        return _y_u8(np.ascontiguousarray(arr), _Y_LUT, _Y_OFF)
    x = arr.astype(np.float64)
    t = _Y_COEF
    return x[..., 0] * t[0] + x[..., 1] * t[1] + x[..., 2] * t[2] + _Y_OFF


def luma_and_bytes(image) -> tuple[np.ndarray, np.ndarray]:
    """(:func:`luma`, its ``im2uint8``), for the JPEG encoder."""
    arr, _ = image_array(image)
    if arr.dtype == np.uint8 and arr.shape[2] == 3:
        return _y_and_bytes_u8(np.ascontiguousarray(arr), _Y_LUT, _Y_OFF)
    y = luma(arr)
    return y, im2uint8(y)


def gray(image) -> np.ndarray:
    """MATLAB's ``rgb2gray`` (HxW float64) of an RGB image; a gray image as float64."""
    arr, _ = image_array(image)
    if arr.shape[2] == 1:
        x = arr[:, :, 0]
        return x / 255.0 if x.dtype == np.uint8 else x.astype(np.float64)
    if arr.dtype == np.uint8:
        return _gray_u8(np.ascontiguousarray(arr), _GRAY_LUT)
    x = arr.astype(np.float64)
    c = RGB2GRAY
    return x[..., 0] * c[0] + x[..., 1] * c[1] + x[..., 2] * c[2]


def im2uint8(x: np.ndarray) -> np.ndarray:
    """MATLAB's ``im2uint8`` of an HxW float64 array (NaN-free), one pass."""
    return _im2uint8(np.ascontiguousarray(x, dtype=np.float64))


def noisy_quantised(g: np.ndarray, noise: np.ndarray, scale: float):
    return _noisy_quantised(g, noise, float(scale))


def screen(arr: np.ndarray, r: np.ndarray, *, clean: bool = True):
    """Screen blend of the rain layer ``r`` (HxW) over a validated HxWxC image (see
    :func:`operators._validate.image_array`): (rainy, clean) float64 HxWxC, or rainy alone when
    ``clean=False`` (each fresh float64 image costs more in page faults than the arithmetic)."""
    if arr.dtype == np.uint8:
        if clean:
            return _screen_u8(np.ascontiguousarray(arr), r)
        return _screen_f_u8(np.ascontiguousarray(arr), r)
    x = np.ascontiguousarray(arr, dtype=np.float64)
    return (_screen_f(x, r), x) if clean else _screen_f(x, r)
