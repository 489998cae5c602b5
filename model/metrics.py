"""The paper's evaluation protocol (the authors' ``compute_error.m``), on uint8 images.

* PSNR: MATLAB ``psnr`` on uint8 RGB: 10·log10(255² / MSE) over all three channels, no border
  crop; identical images are capped at 100 dB so that averages stay finite.
* SSIM: MATLAB ``ssim`` on ``rgb2gray`` images: uint8 gray with MATLAB's coefficients and
  rounding, Gaussian window σ = 1.5 (11 taps), K1 = 0.01, K2 = 0.03, data range 255; computed with
  scikit-image's ``structural_similarity(gaussian_weights=True, sigma=1.5,
  use_sample_covariance=False)`` (its documented Wang et al. settings). scikit-image averages the
  SSIM map without the 5-pixel border where the window leaves the image, while MATLAB averages
  the whole map with replicated borders; the difference is in the third decimal at most on
  natural 128x128 crops.
Averages are over images, then over γ values (the paper's "AVE").
"""
from __future__ import annotations

import numpy as np
from skimage.metrics import structural_similarity

from operators._color import RGB2GRAY  # MATLAB rgb2gray's exact coefficients, one definition
PSNR_CAP = 100.0


def _check(a, b):
    a, b = np.asarray(a), np.asarray(b)
    if a.dtype != np.uint8 or b.dtype != np.uint8:
        raise TypeError(f"metrics take uint8 images, got {a.dtype} and {b.dtype}")
    if a.shape != b.shape or a.ndim != 3 or a.shape[2] != 3:
        raise ValueError(f"metrics take two HxWx3 images of one shape, got {a.shape} and {b.shape}")
    return a, b


def psnr(a, b) -> float:
    """PSNR in dB of two uint8 RGB images over all channels (peak 255), capped at 100 dB."""
    a, b = _check(a, b)
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return PSNR_CAP if mse == 0 else min(PSNR_CAP, 10.0 * np.log10(255.0 ** 2 / mse))


def rgb2gray(rgb_uint8) -> np.ndarray:
    """MATLAB ``rgb2gray`` of a uint8 image: weighted sum, rounded half away from zero, uint8."""
    g = np.asarray(rgb_uint8, dtype=np.float64) @ RGB2GRAY
    return np.floor(np.clip(g, 0, 255) + 0.5).astype(np.uint8)


def ssim(a, b) -> float:
    """SSIM of the MATLAB gray versions of two uint8 RGB images (see the module notes)."""
    a, b = _check(a, b)
    return float(structural_similarity(rgb2gray(a), rgb2gray(b), gaussian_weights=True,
                                       sigma=1.5, use_sample_covariance=False, data_range=255))
