"""The one image reader of the project: bytes read by Python, then decoded by ``cv2.imdecode``.

Every image file the toolkit reads goes through :func:`read_image` (the style exemplar and the
pencil texture here, the source images of ``datagen``, ``model apply``'s input), because reading a
path is where a hostile or unlucky file does harm:

* OpenCV never sees the path: ``cv2.imread`` crashes the interpreter on a name that is not valid
  UTF-8; Python opens any name.
* Only regular files are read (after resolving symbolic links): ``os.stat`` first, so a FIFO is
  never opened (it would block for ever), a device never read (``/dev/zero`` would be read until
  memory runs out); the file is then opened with ``O_NONBLOCK`` and checked again with ``fstat``
  (something swapped in between is refused too).
* At most :data:`MAX_IMAGE_BYTES` bytes are read, whatever the file claims.
* A JPEG that ends before its last scan does is refused rather than decoded with grey fill.

EXIF orientation is ignored (``IMREAD_UNCHANGED``): pixels come in the order stored, as
MATLAB's ``imread`` returns them.
"""
from __future__ import annotations

import errno
import os
import stat

import numpy as np

#: The most bytes read from one image file (512 MiB): a larger file is refused before reading.
MAX_IMAGE_BYTES = 512 * 2**20


class ImageReadError(ValueError):
    """An image file that cannot be used; ``reason`` says why in a few words ("symbolic link
    loop", "a FIFO, not a regular file", "truncated JPEG: ..."), the message adds the path."""

    def __init__(self, path, reason: str):
        super().__init__(f"{display(path)}: {reason}")
        self.path, self.reason = path, reason


def display(path) -> str:
    """A file name that can always be printed and stored as UTF-8 (undecodable bytes as \\xNN)."""
    return os.fsencode(os.fspath(path)).decode("utf-8", "backslashreplace")


def _kind(mode: int) -> str:
    for test, name in ((stat.S_ISDIR, "a folder"), (stat.S_ISFIFO, "a FIFO"),
                       (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
                       (stat.S_ISSOCK, "a socket")):
        if test(mode):
            return name
    return "something"


def _size(n: int) -> str:
    return f"{n / 2**20:.0f} MiB" if n >= 2**20 else f"{n} bytes"


def _os_reason(path, exc: OSError) -> str:
    if exc.errno == errno.ELOOP:
        return "symbolic link loop"
    if exc.errno == errno.ENOENT and os.path.islink(path):
        return "broken symbolic link"
    return exc.strerror or str(exc)


def read_bytes(path, *, limit: int | None = None) -> bytes:
    """The bytes of the regular file ``path`` (symbolic links resolved), at most ``limit``
    (default :data:`MAX_IMAGE_BYTES`).

    Raises :class:`ImageReadError` for anything that is not a regular file (a FIFO is never
    opened, a device never read), for a file larger than ``limit`` and for any ``OSError``.
    """
    limit = MAX_IMAGE_BYTES if limit is None else limit
    try:
        st = os.stat(path)
        if not stat.S_ISREG(st.st_mode):
            raise ImageReadError(path, f"{_kind(st.st_mode)}, not a regular file")
        if st.st_size > limit:
            raise ImageReadError(path, f"{_size(st.st_size)}, larger than the {_size(limit)} "
                                       "an image file may have")
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0)
                     | getattr(os, "O_CLOEXEC", 0))
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode):  # swapped after the stat above
                raise ImageReadError(path, f"{_kind(st.st_mode)}, not a regular file")
            chunks, size = [], 0
            while size <= limit:
                chunk = os.read(fd, min(1 << 24, limit + 1 - size))
                if not chunk:
                    break
                chunks.append(chunk)
                size += len(chunk)
        finally:
            os.close(fd)
    except OSError as exc:
        raise ImageReadError(path, _os_reason(path, exc)) from None
    if size > limit:  # grew while being read
        raise ImageReadError(path, f"larger than the {_size(limit)} an image file may have")
    return b"".join(chunks)


def jpeg_truncated(data: bytes) -> bool:
    """True when a JPEG stream ends before its last scan does (no EOI marker after the last SOS).

    Inside entropy-coded data a 0xFF byte is always followed by 0x00 or a restart marker, so the
    last SOS (FF DA) starts the image's last scan and a complete file has an EOI (FF D9) after it;
    an EXIF thumbnail's EOI comes before the main image's scans and cannot hide a truncation.
    """
    sos = data.rfind(b"\xff\xda")
    return sos < 0 or data.rfind(b"\xff\xd9") < sos


def decode_image(data: bytes, path="<bytes>") -> np.ndarray:
    """``cv2.imdecode(data, IMREAD_UNCHANGED)``: OpenCV's channel order (BGR, BGRA, or 2-D gray),
    its sample type (uint8, uint16, ...), EXIF orientation ignored. :class:`ImageReadError` for an
    empty, truncated (JPEG) or undecodable stream; ``path`` only names it in the message."""
    import cv2

    if not data:
        raise ImageReadError(path, "empty file")
    if data[:2] == b"\xff\xd8" and jpeg_truncated(data):
        raise ImageReadError(path, "truncated JPEG: the file ends before the image data does")
    try:
        img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    except cv2.error:
        img = None
    if img is None or img.size == 0:
        raise ImageReadError(path, "not an image OpenCV can decode, or a damaged file")
    return img


def read_image(path, *, limit: int | None = None) -> np.ndarray:
    """The image file ``path`` as ``cv2.imdecode`` gives it (:func:`decode_image`), its bytes
    read by :func:`read_bytes`; :class:`ImageReadError` says why a file cannot be used."""
    return decode_image(read_bytes(path, limit=limit), path)
