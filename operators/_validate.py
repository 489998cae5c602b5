"""Input checks shared by every operator: one place, so operator bodies never re-validate."""
from __future__ import annotations

import math
import numbers

import numpy as np

#: MATLAB's ``eps`` (2^-52), used by WLS's log guide and LLF's colour ratio.
MATLAB_EPS = 2.220446049250313e-16

_FLOAT_KINDS = (np.float16, np.float32, np.float64)


def image_array(image, *, name: str = "image") -> tuple[np.ndarray, bool]:
    """Validate an image without converting it: (HxWxC uint8/float array, C = 1 or 3; 'was 2-D').

    The checks of :func:`as_float_image` (type, dtype, shape, size, finite, float range), for
    callers that read uint8 data directly (lookup tables) instead of converting it first.
    """
    if isinstance(image, (str, bytes)) or image is None:
        raise TypeError(f"{name} must be a numpy array, got {type(image).__name__}")
    arr = np.asarray(image)
    if arr.dtype == object or not (arr.dtype == np.uint8 or arr.dtype.type in _FLOAT_KINDS):
        raise TypeError(
            f"{name} has unsupported dtype {arr.dtype}; use uint8 (0..255) or float in [0, 1]"
        )
    if arr.ndim == 2:
        arr = arr[:, :, None]
        was_2d = True
    elif arr.ndim == 3 and arr.shape[2] in (1, 3):
        was_2d = False
    else:
        raise ValueError(
            f"{name} must be HxW (gray) or HxWx3 (RGB), got shape {np.shape(image)}"
        )
    h, w = arr.shape[:2]
    if h == 0 or w == 0:
        raise ValueError(f"{name} is empty (shape {np.shape(image)})")
    if h < 2 or w < 2:
        raise ValueError(f"{name} must be at least 2x2 pixels, got {h}x{w}")
    if arr.dtype == np.uint8:
        return arr, was_2d
    if not np.isfinite(arr).all():
        raise ValueError(f"{name} contains NaN or infinite values")
    lo, hi = float(arr.min()), float(arr.max())
    if lo < 0.0 or hi > 1.0:
        raise ValueError(
            f"float {name} must lie in [0, 1] (got min {lo:.4g}, max {hi:.4g}); "
            "pass uint8 for 0..255 data, or clip/rescale it yourself"
        )
    return arr, was_2d


def as_float_image(image, *, name: str = "image") -> tuple[np.ndarray, bool]:
    """Validate an image and return it as float64 HxWxC (C = 1 or 3) plus a 'was 2-D' flag.

    Accepts HxW, HxWx1 or HxWx3 arrays, either ``uint8`` (converted as MATLAB's ``im2double``,
    x/255) or floating point already in [0, 1]. Anything else raises a ``TypeError`` (wrong type or
    dtype) or ``ValueError`` (wrong shape, too small, non-finite, out of range) naming the problem.
    """
    arr, was_2d = image_array(image, name=name)
    if arr.dtype == np.uint8:
        return arr.astype(np.float64) / 255.0, was_2d
    return arr.astype(np.float64), was_2d


def restore_shape(out: np.ndarray, was_2d: bool) -> np.ndarray:
    """Give an HxWx1 result back as HxW when the caller passed a 2-D (gray) image."""
    return out[:, :, 0] if was_2d and out.ndim == 3 else out


def as_gamma(value, *, name: str = "gamma") -> float:
    """A finite real scalar parameter, as float."""
    if isinstance(value, bool) or not isinstance(value, (numbers.Real, np.generic)):
        if isinstance(value, np.ndarray) and value.ndim == 0:
            value = value.item()
        else:
            raise TypeError(f"{name} must be a real number, got {type(value).__name__}")
    try:
        v = float(value)
    except (TypeError, ValueError) as exc:  # e.g. a complex numpy scalar
        raise TypeError(f"{name} must be a real number, got {value!r}") from exc
    if not math.isfinite(v):
        raise ValueError(f"{name} must be finite, got {v}")
    return v


def as_positive(value, *, name: str, minimum: float = 0.0, why: str = "") -> float:
    """A finite real parameter strictly greater than ``minimum`` (``why`` explains the bound)."""
    v = as_gamma(value, name=name)
    if not v > minimum:
        raise ValueError(f"{name} must be > {minimum:g}{why}, got {v:g}")
    return v


def as_count(value, *, name: str, minimum: int) -> int:
    """An integer parameter (bool and floats are refused with a ``TypeError``) >= ``minimum``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer, got {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value}")
    return int(value)


def to_uint8(x) -> np.ndarray:
    """MATLAB's ``im2uint8`` / ``imwrite`` conversion of a float image.

    Clip to [0, 1], multiply by 255 and round half away from zero (not NumPy's half-to-even, not
    truncation). NaN raises a ``ValueError``; uint8 input is returned unchanged.
    """
    arr = np.asarray(x)
    if arr.dtype == np.uint8:
        return arr.copy()
    if not np.issubdtype(arr.dtype, np.floating):
        raise TypeError(f"to_uint8 expects a float image, got dtype {arr.dtype}")
    if np.isnan(arr).any():
        raise ValueError("to_uint8: image contains NaN")
    return np.floor(np.clip(arr, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
