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

Per operator (:func:`protocol`, :func:`score`; Fan et al. ECCV 2018 §4, TPAMI 2019 §4–5 report
"PSNR and SSIM"; paper.md §2 "Metrics"):

==========================================  ============  =====================================
operators                                   colour space  PSNR / SSIM on
==========================================  ============  =====================================
every filter (l0 ... wmf, llf, shock,       ``rgb``       PSNR over the 3 uint8 RGB channels;
llf_remap, wls_enhance, style, pencil) and                SSIM on MATLAB ``rgb2gray`` of both
rain                                                      (the stored targets are colour images:
                                                          the y/gray/lab filters restore colour)
sr, jpeg (deblocking)                       ``y``         the one channel: MATLAB ``rgb2gray``
denoise                                     ``gray``      of the network's 3-channel uint8
                                                          output vs the stored single channel
==========================================  ============  =====================================

Single-channel tasks: their pairs are stored as one channel (sr, jpeg: MATLAB's Y of YCbCr;
denoise: ``rgb2gray``) and replicated to three equal channels for the network, as the authors'
loader did. The output is reduced to one channel by MATLAB's ``rgb2gray`` of the uint8 output
(weights 0.2989, 0.5870, 0.1140, rounded half away from zero): the channel the authors'
``compute_error.m`` takes SSIM on; ``rgb2gray`` of three equal channels v is v itself (the weights
sum to 1 within 1e-15), so the target and the identity baseline keep their stored channel
exactly. PSNR and SSIM are then taken on that one channel. (The authors' Python PSNR on the
3-channel output against the replicated target also counts the disagreement between the
output's channels; it equals ours when the three channels agree.) No border is cropped (as ``compute_error.m``;
the SR literature's crop of ``scale`` pixels is not applied); every image is the network output
rounded half away from zero to uint8 before any reduction.
"""
from __future__ import annotations

import numpy as np
from skimage.metrics import structural_similarity

import operators
from operators._color import RGB2GRAY  # MATLAB rgb2gray's exact coefficients, one definition

PSNR_CAP = 100.0


def _check(a, b):
    a, b = np.asarray(a), np.asarray(b)
    if a.dtype != np.uint8 or b.dtype != np.uint8:
        raise TypeError(f"metrics take uint8 images, got {a.dtype} and {b.dtype}")
    if a.shape != b.shape or a.ndim != 3 or a.shape[2] != 3:
        raise ValueError(f"metrics take two HxWx3 images of one shape, got {a.shape} and {b.shape}")
    return a, b


def _check1(a, b):
    a, b = np.asarray(a), np.asarray(b)
    if a.dtype != np.uint8 or b.dtype != np.uint8:
        raise TypeError(f"metrics take uint8 images, got {a.dtype} and {b.dtype}")
    if a.shape != b.shape or a.ndim != 2:
        raise ValueError(f"one-channel metrics take two HxW images of one shape, got {a.shape} "
                         f"and {b.shape}")
    return a, b


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return PSNR_CAP if mse == 0 else min(PSNR_CAP, 10.0 * np.log10(255.0 ** 2 / mse))


def _ssim(a: np.ndarray, b: np.ndarray) -> float:
    return float(structural_similarity(a, b, gaussian_weights=True, sigma=1.5,
                                       use_sample_covariance=False, data_range=255))


def psnr(a, b) -> float:
    """PSNR in dB of two uint8 RGB images over all channels (peak 255), capped at 100 dB."""
    return _psnr(*_check(a, b))


def rgb2gray(rgb_uint8) -> np.ndarray:
    """MATLAB ``rgb2gray`` of a uint8 image: weighted sum, rounded half away from zero, uint8."""
    g = np.asarray(rgb_uint8, dtype=np.float64) @ RGB2GRAY
    return np.floor(np.clip(g, 0, 255) + 0.5).astype(np.uint8)


def ssim(a, b) -> float:
    """SSIM of the MATLAB gray versions of two uint8 RGB images (see the module notes)."""
    a, b = _check(a, b)
    return _ssim(rgb2gray(a), rgb2gray(b))


def psnr1(a, b) -> float:
    """PSNR in dB of two uint8 one-channel (HxW) images (peak 255, no border crop), capped."""
    return _psnr(*_check1(a, b))


def ssim1(a, b) -> float:
    """SSIM of two uint8 one-channel (HxW) images, the settings of :func:`ssim`."""
    return _ssim(*_check1(a, b))


def protocol(op: str) -> str:
    """The space operator ``op`` is scored in: ``"rgb"`` (PSNR over RGB, SSIM on rgb2gray) or
    ``"y"``/``"gray"`` (one channel: the degradations whose pairs are stored single-channel,
    sr and jpeg on Y, denoise on gray; see the module notes)."""
    spec = operators.get(op)
    if spec.kind == "degradation" and spec.channels in ("y", "gray"):
        return spec.channels
    return "rgb"


def one_channel(rgb_uint8) -> np.ndarray:
    """A 3-channel uint8 image (network output, or a replicated single-channel image) reduced
    to the one channel single-channel tasks are scored on: MATLAB ``rgb2gray`` (the identity on
    three equal channels)."""
    img = np.asarray(rgb_uint8)
    if img.dtype != np.uint8 or img.ndim != 3 or img.shape[2] != 3:
        raise ValueError(f"expected an HxWx3 uint8 image, got {img.dtype} {img.shape}")
    return rgb2gray(img)


def score(op: str, output, target) -> tuple[float, float]:
    """(PSNR, SSIM) of an HxWx3 uint8 ``output`` against the HxWx3 uint8 ``target`` (as
    :class:`datagen.dataset.PairDataset` gives it: single-channel targets replicated) by
    ``op``'s protocol (:func:`protocol`). A single-channel task's target must have three equal
    channels: its first channel is the stored one."""
    output, target = _check(output, target)
    if protocol(op) == "rgb":
        return _psnr(output, target), _ssim(rgb2gray(output), rgb2gray(target))
    if not (np.array_equal(target[..., 0], target[..., 1])
            and np.array_equal(target[..., 0], target[..., 2])):
        raise ValueError(f"{op} is scored on one channel: its target must be a single channel "
                         "replicated to three equal channels")
    out1, ref1 = one_channel(output), target[..., 0]
    return _psnr(out1, ref1), _ssim(out1, ref1)
