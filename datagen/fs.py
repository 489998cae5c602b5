"""Writing the files a user names without losing anything: one place for the whole project.

Two rules, used by ``python -m model`` (eval's ``--csv``, apply's output image, checkpoints,
``config.json``, ``log.csv``) and ``python -m datagen show``'s sheet, and open to any other
writer:

* :func:`check_output` before any work: an output path that is (or resolves to, through a
  symbolic or hard link: same ``st_dev``/``st_ino``) one of the command's inputs, that is a
  folder or a special file (FIFO, device), that sits under a path component that is a file, or
  that is an existing file the tool did not write itself (``own_marker``: how its files begin,
  or for images :func:`image_is_ours`, the mark :func:`mark_image` puts in them) is a
  ``ValueError`` naming the path and the reason, so nothing is computed for an output that
  would destroy something;
* :func:`atomic_open`/:func:`atomic_write_bytes`/:func:`atomic_write_text`: the content goes to
  a uniquely named temporary file in the target's folder (``.<name>.XXXX.tmp``), is fsynced, and
  is renamed over the target (``os.replace``; then the folder is fsynced), so the target is
  either its old content or the complete new one, never a truncated mix, whatever kills the
  process. A symbolic link at the target is replaced by the file, its own target is untouched.
  New files get the ordinary permissions (0666 less the umask), not ``mkstemp``'s 0600.
"""
from __future__ import annotations

import os
import stat
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Callable

__all__ = ["IMAGE_MARK", "atomic_open", "atomic_write_bytes", "atomic_write_text", "check_output",
           "fsync_folder", "image_is_ours", "mark_image", "same_file", "write_checked"]

#: how many bytes of an existing output :func:`check_output` reads to recognise its own files
_MARKER_READ = 4096

#: what the project's image writers (``python -m model apply``, ``python -m datagen show``) put
#: into the PNG and JPEG files they write (:func:`mark_image`): a PNG ``tEXt`` chunk
#: ``Software`` and a JPEG comment (``COM``) segment with this text, so that writing such a file
#: again replaces it, while an image the tool did not write is never replaced unasked
#: (:func:`image_is_ours`, passed to :func:`check_output` as its ``own_marker``)
IMAGE_MARK = b"decouple-ops"

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_PNG_TEXT = b"Software\x00" + IMAGE_MARK


def _png_chunks(data: bytes):
    """(offset, type, payload) of each whole PNG chunk in ``data`` up to the first IDAT."""
    pos = len(_PNG_SIGNATURE)
    while pos + 8 <= len(data):
        size = int.from_bytes(data[pos:pos + 4], "big")
        kind = data[pos + 4:pos + 8]
        if kind == b"IDAT" or pos + 12 + size > len(data):
            return
        yield pos, kind, data[pos + 8:pos + 8 + size]
        pos += 12 + size


def _jpeg_segments(data: bytes):
    """(offset, marker byte, payload) of each JPEG marker segment in ``data`` after SOI, up to
    the start of the scan (SOS) or anything that is not a segment."""
    pos = 2
    while pos + 4 <= len(data) and data[pos] == 0xFF:
        marker = data[pos + 1]
        if marker == 0xDA:  # start of scan: the entropy-coded data follows
            return
        size = int.from_bytes(data[pos + 2:pos + 4], "big")
        if size < 2 or pos + 2 + size > len(data):
            return
        yield pos, marker, data[pos + 4:pos + 2 + size]
        pos += 2 + size


def mark_image(data: bytes) -> bytes:
    """An encoded PNG or JPEG image ``data`` with :data:`IMAGE_MARK` added (PNG: a ``tEXt``
    chunk ``Software`` right after ``IHDR``; JPEG: a comment segment after the ``APP0`` header,
    else right after ``SOI``); the pixels are untouched and any other format is returned as it
    is (an existing file in such a format is replaced only when asked)."""
    import zlib

    if data.startswith(_PNG_SIGNATURE):
        for pos, kind, payload in _png_chunks(data):
            if kind == b"IHDR":
                end = pos + 12 + len(payload)
                chunk = (len(_PNG_TEXT).to_bytes(4, "big") + b"tEXt" + _PNG_TEXT
                         + zlib.crc32(b"tEXt" + _PNG_TEXT).to_bytes(4, "big"))
                return data[:end] + chunk + data[end:]
        return data
    if data.startswith(b"\xff\xd8"):
        at = 2
        for pos, marker, payload in _jpeg_segments(data):
            if marker == 0xE0:  # JFIF's APP0 comes first; the comment after it
                at = pos + 4 + len(payload)
            break
        segment = b"\xff\xfe" + (len(IMAGE_MARK) + 2).to_bytes(2, "big") + IMAGE_MARK
        return data[:at] + segment + data[at:]
    return data


def image_is_ours(head: bytes) -> bool:
    """Whether ``head`` (the start of a file) is a PNG or JPEG image :func:`mark_image`
    marked."""
    if head.startswith(_PNG_SIGNATURE):
        return any(kind == b"tEXt" and payload == _PNG_TEXT
                   for _, kind, payload in _png_chunks(head))
    if head.startswith(b"\xff\xd8"):
        return any(marker == 0xFE and payload == IMAGE_MARK
                   for _, marker, payload in _jpeg_segments(head))
    return False


#: how :func:`check_output`'s message explains what :func:`image_is_ours` accepts
image_is_ours.recognises = "it knows its own PNG and JPEG images by the mark it puts in them"


def same_file(a, b) -> bool:
    """Whether ``a`` and ``b`` name one file (the same resolved path, or the same device and
    inode: a symbolic or hard link); False when either does not exist."""
    try:
        if os.path.realpath(a) == os.path.realpath(b):
            return True
        sa, sb = os.stat(a), os.stat(b)
    except (OSError, ValueError):
        return False
    return (sa.st_dev, sa.st_ino) == (sb.st_dev, sb.st_ino)


def _umask() -> int:
    """This process's umask, without changing it (Linux: /proc; else set and restore)."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def check_output(path, *, inputs=(),
                 own_marker: bytes | str | Callable[[bytes], bool] | None = None,
                 what: str = "output", replace_hint: str = "") -> Path:
    """``path`` as a Path if writing it (with :func:`atomic_open`) loses nothing, else a
    ValueError whose one-line message names ``what``, the path and the reason.

    Refused: a path that is the same file as one of ``inputs`` (by resolved path or by device
    and inode: symbolic and hard links included; inputs that do not exist are ignored), an
    existing folder, an existing special file (FIFO, socket, device), a path below a file, and,
    when ``own_marker`` is given, an existing regular file whose content does not start with it
    (a file this tool did not write), or for which ``own_marker(start)`` is false where it is a
    function of the file's first bytes (:func:`image_is_ours`); ``replace_hint`` ends that
    message (e.g. the option that replaces it anyway). ``own_marker=None`` lets an existing
    regular file that is no input be replaced."""
    path = Path(path)
    for item in inputs:
        if item is not None and same_file(path, item):
            shown = f"{item}" if os.fspath(item) == os.fspath(path) else f"{item} (the same file)"
            raise ValueError(f"{what} {path} is an input of this command, {shown}: writing it "
                             "would destroy the input; choose another path")
    parent = path.parent
    while not os.path.lexists(parent) and parent != parent.parent:
        parent = parent.parent
    if os.path.lexists(parent) and not parent.is_dir():
        raise ValueError(f"{what} {path}: {parent} is a file, not a folder")
    try:
        st = os.stat(path)
    except FileNotFoundError:  # new (a dangling link is replaced, its target untouched)
        return path
    except OSError as exc:
        raise ValueError(f"{what} {path} cannot be checked: {exc.strerror or exc}") from None
    if stat.S_ISDIR(st.st_mode):
        raise ValueError(f"{what} {path} is a folder, not a file: give a file name (a file "
                         "inside it, for example)")
    if not stat.S_ISREG(st.st_mode):
        raise ValueError(f"{what} {path} exists and is not a regular file (a FIFO, socket or "
                         "device): choose another path")
    if own_marker is not None:
        if callable(own_marker):
            marker, size = None, _MARKER_READ
        else:
            marker = own_marker.encode() if isinstance(own_marker, str) else bytes(own_marker)
            size = max(len(marker), 1) if len(marker) <= _MARKER_READ else _MARKER_READ
        try:
            with open(path, "rb") as fh:
                head = fh.read(size)
        except OSError as exc:
            raise ValueError(f"{what} {path} exists and cannot be read ({exc.strerror or exc}): "
                             "it is not replaced; choose another path") from None
        if marker is None and not own_marker(head):
            how = getattr(own_marker, "recognises", "")
            raise ValueError(f"{what} {path} exists and is not a file this tool wrote"
                             f"{f' ({how})' if how else ''}: it is not replaced; remove it or "
                             f"choose another path{replace_hint}")
        if marker is not None and not head.startswith(marker):
            raise ValueError(f"{what} {path} exists and was not written by this tool (it does "
                             f"not begin with {marker.decode(errors='replace')[:40]!r}): it is "
                             f"not replaced; remove it or choose another path{replace_hint}")
    return path


def fsync_folder(folder: Path) -> None:
    """Make a rename in ``folder`` durable (a no-op where folders cannot be opened)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@contextmanager
def atomic_open(path, mode: int | None = None):
    """A binary file to write ``path``'s new content into; on a normal exit it is fsynced and
    renamed over ``path`` (created with its folders if needed), on an exception removed and
    ``path`` left as it was. ``mode``: the new file's permissions (default 0666 less the
    umask)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            os.fchmod(fh.fileno(), (0o666 & ~_umask()) if mode is None else mode)
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    fsync_folder(path.parent)


def atomic_write_bytes(path, data: bytes, mode: int | None = None) -> None:
    """Replace ``path`` with ``data`` atomically (see :func:`atomic_open`)."""
    with atomic_open(path, mode) as fh:
        fh.write(data)


def atomic_write_text(path, text: str, encoding: str = "utf-8", mode: int | None = None) -> None:
    """Replace ``path`` with ``text`` atomically, written as given (no newline translation)."""
    atomic_write_bytes(path, text.encode(encoding), mode)


def write_checked(path, data: bytes | str, **check) -> None:
    """The end of a command that checked its output with :func:`check_output` (``**check``)
    before its work: the same check again (the path may have changed meanwhile), then the
    atomic write of ``data`` (text as UTF-8)."""
    check_output(path, **check)
    atomic_write_bytes(path, data.encode("utf-8") if isinstance(data, str) else data)
