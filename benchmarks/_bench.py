"""Helpers shared by the speed benchmarks: the test image and device synchronisation."""
from __future__ import annotations

import cv2
import numpy as np


def bench_image(size: int) -> np.ndarray:
    """A natural RGB test image (scikit-image's astronaut) resized to size x size."""
    import skimage.data

    img = skimage.data.astronaut()
    interp = cv2.INTER_AREA if size < img.shape[0] else cv2.INTER_CUBIC
    return cv2.resize(img, (size, size), interpolation=interp)


def sync(device: str) -> None:
    """Wait for queued CUDA work before reading the clock (a no-op on the CPU)."""
    if device == "cuda":
        import torch

        torch.cuda.synchronize()
