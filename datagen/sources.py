"""Source images: the bundled default set or a user folder, read safely and cropped deterministically."""
from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from operators._io import ImageReadError, display, jpeg_truncated  # noqa: F401  (re-exported)
from operators._io import read_image as _read_file

#: Natural colour photographs shipped inside scikit-image's wheel (no download needed).
DEFAULT_FILES = ("astronaut.png", "chelsea.png", "coffee.png", "hubble_deep_field.jpg",
                 "ihc.png", "motorcycle_left.png", "rocket.jpg", "retina.jpg")
#: The default set's held-out test images: three ordinary photographs of different kinds (a
#: portrait with fabric and a flag, an indoor still life, a street scene), 51 crops at the default
#: size and scales. The training images keep two photographs (a cat's fur, a rocket outdoors)
#: and the scientific images (Hubble deep field, IHC microscopy, retina), whose textures and
#: edges the operators also see, but a test figure then says how a model does on photographs
#: (Fan et al. test the filters on 100 held-out VOC photographs, the restorations on BSD100,
#: BSD68 and LIVE1: photographs too).
DEFAULT_TEST_FILES = ("astronaut.png", "coffee.png", "motorcycle_left.png")
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
    """Image files directly in ``folder`` (sorted, so the order and the data are reproducible).

    Every entry with an image suffix that is not a folder is listed, including broken links,
    symbolic-link loops, FIFOs and devices (or links to them): :func:`read_image` then says why
    it cannot be used, without reading or blocking, and the build lists it among the skipped
    images instead of dropping it silently.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"image folder {display(folder)} does not exist or is not a folder")
    files = sorted(p for p in folder.iterdir()
                   if p.suffix.lower() in IMAGE_SUFFIXES and not p.is_dir())
    if not files:
        raise FileNotFoundError(f"no PNG/JPEG images in {display(folder)}")
    return files


def read_image(path) -> tuple[np.ndarray | None, str]:
    """``(RGB uint8 image, "")`` or ``(None, reason)``; never raises for a bad file.

    The project's one image reader (:mod:`operators._io`): the bytes of a regular file only
    (a FIFO, a device such as a link to ``/dev/zero``, a folder are refused without being read),
    at most ``operators._io.MAX_IMAGE_BYTES``, decoded by ``cv2.imdecode`` (OpenCV never sees the
    path: ``cv2.imread`` crashes on names that are not valid UTF-8). A truncated JPEG is refused
    rather than decoded with grey fill. Gray images are replicated to three channels, alpha is
    dropped, 16-bit images are scaled. EXIF orientation is ignored, as MATLAB's ``imread`` does.
    """
    try:
        img = _read_file(path)
    except ImageReadError as exc:
        return None, f"unreadable ({exc.reason})"
    if img.dtype == np.uint16:
        img = (img.astype(np.float64) / 257.0 + 0.5).astype(np.uint8)
    elif img.dtype != np.uint8:
        return None, f"unsupported pixel type {img.dtype}"
    if img.ndim == 2:
        img = cv2.cvtColor(img, cv2.COLOR_GRAY2RGB)
    elif img.shape[2] == 4:
        img = cv2.cvtColor(img, cv2.COLOR_BGRA2RGB)
    else:
        img = cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
    return img, ""


def read_rgb(path) -> np.ndarray | None:
    """An image file as RGB uint8, or None (with a warning saying why) if it cannot be used."""
    img, reason = read_image(path)
    if img is None:
        warnings.warn(f"skipping {display(path)}: {reason}", stacklevel=2)
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
