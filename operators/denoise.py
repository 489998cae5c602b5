"""Denoising input: Gaussian noise on MATLAB's gray, stored as 8 bits (operator ``denoise``).

Fan et al. learn Gaussian denoising as one of their restoration operators (ECCV 2018 §4 / TPAMI
2019 §5 and Table 2, σ ∈ [10, 70] on the 0..255 scale, tested at 15, 25, 50 as DnCNN: K. Zhang,
W. Zuo, Y. Chen, D. Meng, L. Zhang, "Beyond a Gaussian Denoiser: Residual Learning of Deep CNN
for Image Denoising", IEEE TIP 26(7), 2017, doi:10.1109/TIP.2017.2662206). The authors'
``training_data_generation.m``, as described in ``shared/docs/operators_extra.md`` §8:

* patch = ``rgb2gray(im2double(I))`` (MATLAB's unrounded coefficients, float64);
* noisy = patch + (σ/255)·randn(H, W);
* both are written with ``imwrite``, so the network sees round(clip(noisy, 0, 1)·255)/255 — not
  Gaussian near black and white, quantised to 1/255 — and learns to recover round(255·patch)/255.

The authors' noise was unseeded (MATLAB's global generator under ``parpool``); here it comes from
``numpy.random.default_rng(seed)``, so a seed reproduces the pair exactly. ``quantize=False``
gives the float64 noisy image (unclipped) and the float gray instead.
"""
from __future__ import annotations

import numpy as np

from ._degrade_kernels import gray as _gray
from ._degrade_kernels import noisy_quantised
from ._memory import tune_malloc
from ._validate import as_gamma

__all__ = ["gray", "denoise_pair", "denoise_degrade"]


def gray(image) -> np.ndarray:
    """MATLAB ``rgb2gray`` of an RGB image, or a gray image itself (HxW float64)."""
    return _gray(image)


def denoise_pair(image, sigma, *, rng: np.random.Generator | None = None,
                 quantize: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """(noisy input, clean target), both HxW float64.

    ``sigma`` is the noise standard deviation on the 0..255 scale (≥ 0); ``rng`` a NumPy
    ``Generator`` (a fresh unseeded one when None).
    """
    s = as_gamma(sigma, name="denoise sigma")
    if s < 0:
        raise ValueError(f"denoise: sigma must be >= 0 (0..255 scale), got {s:g}")
    if rng is None:
        rng = np.random.default_rng()
    elif not isinstance(rng, np.random.Generator):
        raise TypeError(f"denoise: rng must be a numpy.random.Generator, got {type(rng).__name__}")
    tune_malloc()
    g = gray(image)
    noise = rng.standard_normal(g.shape)
    if quantize:
        return noisy_quantised(g, noise, s / 255.0)
    return g + (s / 255.0) * noise, g


def denoise_degrade(image, sigma, *, rng: np.random.Generator | None = None,
                    quantize: bool = True) -> np.ndarray:
    """The noisy network input alone (see :func:`denoise_pair`)."""
    return denoise_pair(image, sigma, rng=rng, quantize=quantize)[0]
