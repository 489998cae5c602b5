"""Tiny datasets for the tests: three smooth random images and a one-worker build of them."""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from datagen.build import build
from datagen.plan import Options, make_plan


def tiny_build(folder: Path, name: str, ops, *, side: int = 40, seed: int = 0,
               label: str = "tiny", **options) -> Path:
    """``folder/name``: a dataset of ``ops`` from three ``side``² images (8x8 random pixels,
    bicubically enlarged, from ``seed``) with the tests' usual options (a third of the images
    held out, two crops of each at scale 1), ``options`` overriding them (``size`` at least)."""
    folder = Path(folder)
    rng = np.random.default_rng(seed)
    for i in range(3):
        img = cv2.resize(rng.integers(0, 256, (8, 8, 3), dtype=np.uint8), (side, side),
                         interpolation=cv2.INTER_CUBIC)
        cv2.imwrite(str(folder / f"{i}.png"), img)
    files = tuple(sorted(str(p) for p in folder.glob("*.png")))
    kw = dict(images_label=label, test_fraction=0.34, seed=0, max_crops=2, scales=(1.0,))
    opts = Options(ops=tuple(ops), images=files, **{**kw, **options})
    out = folder / name
    build(make_plan(opts), out, workers=1, progress=False)
    return out


class RecordingWriter:
    """A stand-in for TensorBoard's ``SummaryWriter`` (``model.train.summary_writer`` returns
    one) that records ``(tag, value, step)``; ``close`` records ``("closed", 0.0, 0)``."""

    def __init__(self, logged: list):
        self.logged = logged

    def add_scalar(self, tag, value, step):
        self.logged.append((tag, float(value), step))

    def flush(self):
        pass

    def close(self):
        self.logged.append(("closed", 0.0, 0))
