"""Source images: the bundled default set or a user folder, read safely and cropped deterministically."""
from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

#: Natural colour photographs shipped inside scikit-image's wheel (no download needed).
DEFAULT_FILES = ("astronaut.png", "chelsea.png", "coffee.png", "hubble_deep_field.jpg",
                 "ihc.png", "motorcycle_left.png", "rocket.jpg", "retina.jpg")
#: Scales at which the default set is cropped (more crops, more variety of structure sizes).
DEFAULT_SCALES = (1.0, 0.5)
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".ppm", ".webp")
#: Crops flatter than this (std of the 0..255 values) carry no structure to learn and are skipped.
MIN_CROP_STD = 6.0


def default_image_dir() -> Path:
    import skimage.data

    return Path(skimage.data.__file__).parent


def default_images() -> list[Path]:
    """The bundled default image set (scikit-image's colour sample photographs)."""
    root = default_image_dir()
    return [root / f for f in DEFAULT_FILES]


def list_images(folder) -> list[Path]:
    """Image files directly in ``folder`` (sorted, so the order and the data are reproducible)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"image folder {folder} does not exist or is not a folder")
    files = sorted(p for p in folder.iterdir()
                   if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise FileNotFoundError(f"no PNG/JPEG images in {folder}")
    return files


def read_rgb(path) -> np.ndarray | None:
    """An image file as RGB uint8, or None (with a warning) if it cannot be read.

    Gray images are replicated to three channels, alpha is dropped, 16-bit images are scaled.
    """
    try:
        img = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    except cv2.error:
        img = None
    if img is None or img.size == 0:
        warnings.warn(f"skipping unreadable image {path}", stacklevel=2)
        return None
    if img.dtype == np.uint16:
        img = (img.astype(np.float64) / 257.0 + 0.5).astype(np.uint8)
    elif img.dtype != np.uint8:
        warnings.warn(f"skipping {path}: unsupported pixel type {img.dtype}", stacklevel=2)
        return None
    if img.ndim == 2:
        img = cv2.cvtColor(img, cv2.COLOR_GRAY2RGB)
    elif img.shape[2] == 4:
        img = cv2.cvtColor(img, cv2.COLOR_BGRA2RGB)
    else:
        img = cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
    return img


@dataclass(frozen=True)
class Crop:
    image: int  # index into the list of source image files
    scale: float  # the image was resized by this factor (cv2.INTER_AREA) before cropping
    y: int
    x: int
    size: int

    def cut(self, img: np.ndarray) -> np.ndarray:
        if self.scale != 1.0:
            img = scaled(img, self.scale)
        return np.ascontiguousarray(img[self.y:self.y + self.size, self.x:self.x + self.size])


def scaled(img: np.ndarray, scale: float) -> np.ndarray:
    h, w = img.shape[:2]
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    return cv2.resize(img, size, interpolation=cv2.INTER_AREA)


def grid_crops(img: np.ndarray, image_index: int, size: int, scales) -> list[Crop]:
    """Non-overlapping size x size crops on a centred grid, at each scale, skipping flat ones."""
    crops = []
    for s in scales:
        im = img if s == 1.0 else scaled(img, s)
        h, w = im.shape[:2]
        ny, nx = h // size, w // size
        oy, ox = (h - ny * size) // 2, (w - nx * size) // 2
        for i in range(ny):
            for j in range(nx):
                y, x = oy + i * size, ox + j * size
                if im[y:y + size, x:x + size].std() >= MIN_CROP_STD:
                    crops.append(Crop(image_index, float(s), y, x, size))
    return crops
