"""Rain streaks: a procedural, parameterized rain synthesis (operator ``rain``).

Fan et al. learn deraining as one of their restoration operators (ECCV 2018 §4 / TPAMI 2019 §5,
Table 2) on the data set of X. Fu, J. Huang, D. Zeng, Y. Huang, X. Ding, J. Paisley, "Removing Rain
from Single Images via a Deep Detail Network", CVPR 2017 (doi:10.1109/CVPR.2017.186): 1,000 clean
images, each with 14 rain images rendered in Photoshop with different streak orientations and
magnitudes. That data set cannot be downloaded here, so this operator *synthesises* rain in the
spirit of the Photoshop recipe Fu et al. used (S. Patterson, "Photoshop Rain Effect",
https://www.photoshopessentials.com/photo-effects/rain/, the tutorial cited for the synthetic rain
of Fu et al.'s data and its successors): on a black layer, Add Noise (Gaussian, monochromatic),
Gaussian Blur by about half a pixel, a Levels step that keeps only the brightest specks, Motion
Blur along the rain's angle, then the layer is set to the Screen blend mode over the photo.

Here, with γ = **density**, the percentage of pixels that seed a rain drop (the Levels black
point), and a NumPy ``Generator`` seeded by the caller:

1. noise u ~ U[0, 1) per pixel (float32; Photoshop's Add Noise offers a uniform distribution too);
2. levels with the black point at 1 − γ/100: drops = clip((u − (1 − γ/100))/(γ/100), 0, 1), so a
   fraction γ/100 of the pixels seeds a drop, of intensity uniform in (0, 1]; the drops are then
   softened by a 3x3 Gaussian of σ = 0.5 px (the recipe blurs before its Levels step; blurring
   after keeps the density exact and gives the same soft one-pixel drops);
3. motion blur: a box of ``length`` L ~ U[LENGTH_RANGE] pixels along the columns, then a shear
   x' = x + tan(θ)·y with θ ~ U[−ANGLE_MAX, ANGLE_MAX] degrees from vertical (bilinear, wrapping
   round the borders, so the streaks have the same statistics everywhere); the streaks are
   brightened by L·``brightness`` so that one isolated drop becomes a streak of that intensity
   (overlaps saturate at 1);
4. screen blend on every channel: out = 1 − (1 − I)(1 − R).

The result is a *parameterized* degradation (the paper's deraining had no parameter), so RAIN12
and Fu et al.'s figures are not comparable with models trained on it. Pairs are (rainy, clean);
a gray image gets gray rain. The draws happen in a fixed order (angle, length, noise), so a seed
reproduces the pair exactly and independently of worker count.
"""
from __future__ import annotations

import math

import cv2
import numpy as np

from ._degrade_kernels import screen
from ._memory import tune_malloc
from ._validate import as_gamma, image_array, restore_shape

__all__ = ["DENSITY_RANGE", "ANGLE_MAX", "LENGTH_RANGE", "rain_layer", "add_rain", "rain_pair"]

#: Training range of the density γ (percent of pixels seeding a drop), sampled log-uniformly.
DENSITY_RANGE = (0.2, 2.0)
#: Largest streak angle from vertical, degrees (θ ~ U[−ANGLE_MAX, ANGLE_MAX]).
ANGLE_MAX = 30.0
#: Streak length range in pixels (L ~ U[LENGTH_RANGE], rounded to an integer).
LENGTH_RANGE = (15.0, 40.0)
_BLUR_SIGMA = 0.5


def _check_rng(rng) -> np.random.Generator:
    if rng is None:
        return np.random.default_rng()
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"rain: rng must be a numpy.random.Generator, got {type(rng).__name__}")
    return rng


def rain_layer(shape: tuple[int, int], density, *, rng: np.random.Generator | None = None,
               brightness: float = 0.9) -> np.ndarray:
    """The rain layer R (HxW float32 in [0, 1]) of the given density (percent of seeding pixels)."""
    d = as_gamma(density, name="rain density")
    if not 0.0 < d < 100.0:
        raise ValueError(f"rain: density must be a percentage in (0, 100), got {d:g}")
    b = as_gamma(brightness, name="rain brightness")
    if not 0.0 < b <= 1.0:
        raise ValueError(f"rain: brightness must be in (0, 1], got {b:g}")
    rng = _check_rng(rng)
    h, w = (int(v) for v in shape)
    theta = math.radians(rng.uniform(-ANGLE_MAX, ANGLE_MAX))
    length = int(round(rng.uniform(*LENGTH_RANGE)))
    noise = rng.random((h, w), dtype=np.float32)
    p = np.float32(d / 100.0)
    drops = np.clip((noise - (np.float32(1.0) - p)) / p, 0.0, 1.0)
    drops = cv2.GaussianBlur(drops, (3, 3), sigmaX=_BLUR_SIGMA, sigmaY=_BLUR_SIGMA,
                             borderType=cv2.BORDER_REFLECT_101)
    a = length // 2  # vertical box of L rows, wrapping round (OpenCV's blur cannot wrap)
    padded = drops[np.arange(-a, h + length - 1 - a) % h]
    streaks = cv2.blur(padded, (1, length))[a:a + h]
    shear = math.tan(theta)
    m = np.float32([[1.0, shear, -shear * (h - 1) / 2.0], [0.0, 1.0, 0.0]])
    streaks = cv2.warpAffine(streaks, m, (w, h), flags=cv2.INTER_LINEAR,
                             borderMode=cv2.BORDER_WRAP)
    return np.clip(streaks * np.float32(length * b), 0.0, 1.0)


def add_rain(image, density, *, rng: np.random.Generator | None = None,
             brightness: float = 0.9) -> np.ndarray:
    """The rainy image: screen blend of :func:`rain_layer` over ``image`` (float64, same layout).

    The same draws as :func:`rain_pair` (same ``rng`` state, same rain), without the clean copy.
    """
    tune_malloc()
    arr, was_2d = image_array(image)
    r = rain_layer(arr.shape[:2], density, rng=rng, brightness=brightness)
    return restore_shape(screen(arr, r, clean=False), was_2d)


def rain_pair(image, density, *, rng: np.random.Generator | None = None,
              brightness: float = 0.9) -> tuple[np.ndarray, np.ndarray]:
    """(rainy image, clean image), float64 in [0, 1], HxWx3 (or HxW for a gray HxW input)."""
    tune_malloc()
    arr, was_2d = image_array(image)
    r = rain_layer(arr.shape[:2], density, rng=rng, brightness=brightness)
    out, clean = screen(arr, r)
    return restore_shape(out, was_2d), restore_shape(clean, was_2d)
