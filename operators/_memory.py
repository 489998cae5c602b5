"""Process memory helpers of the operators: the memory-size guard and the allocator setting.

``available_bytes``/``check_memory``
    Refuse, before any work, an image whose estimated peak memory cannot fit in what the machine
    has available (``MemAvailable`` of ``/proc/meminfo``, else ``os.sysconf``), with a
    ``MemoryError`` that names the operator, the size and the estimate.

``tune_malloc``
    glibc serves allocations above its *mmap threshold* with fresh ``mmap`` pages and returns them
    to the OS on ``free``; the next call faults every page in again (zero-filled by the kernel).
    A fresh process starts with a 128 KiB threshold and a 128 KiB trim threshold, so the 10-100 MB
    work arrays of an operator at 1 MP are re-faulted on every call, while a process that already
    did other large work (the benchmark suite after torch) may not pay that. ``tune_malloc`` sets
    the thresholds once per process, on the first operator call, to 32 MiB (glibc's maximum for
    the dynamic threshold) and 256 MiB, so a fresh process behaves like a warmed-up one: freed
    work arrays stay in the heap and are reused. The price: up to about 256 MiB of freed memory
    may stay mapped in the process for reuse. Set ``DECOUPLE_OPS_KEEP_MALLOC=1`` to leave the
    allocator alone. Nothing is done on non-glibc platforms. See ``docs/operators_speed_memory.md``.
"""
from __future__ import annotations

import ctypes
import os
import sys
import threading

__all__ = ["available_bytes", "check_memory", "tune_malloc", "MMAP_THRESHOLD", "TRIM_THRESHOLD"]

#: glibc ``M_MMAP_THRESHOLD`` and ``M_TRIM_THRESHOLD`` set by :func:`tune_malloc`.
MMAP_THRESHOLD = 32 << 20
TRIM_THRESHOLD = 256 << 20
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # mallopt parameter numbers (malloc.h)

_TUNED: bool | None = None  # None: not tried yet; True: set; False: not applicable or refused
_LOCK = threading.Lock()


def tune_malloc() -> bool:
    """Set glibc's mmap/trim thresholds once per process (see the module docstring).

    Returns whether the setting is in force. Safe to call often: only the first call acts.
    """
    global _TUNED
    if _TUNED is not None:
        return _TUNED
    with _LOCK:
        if _TUNED is not None:
            return _TUNED
        ok = False
        if (sys.platform.startswith("linux")
                and os.environ.get("DECOUPLE_OPS_KEEP_MALLOC", "") in ("", "0")):
            try:
                libc = ctypes.CDLL(None)
                if hasattr(libc, "gnu_get_libc_version") and hasattr(libc, "mallopt"):
                    libc.mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
                    libc.mallopt.restype = ctypes.c_int
                    ok = bool(libc.mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(
                        libc.mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD))
            except (OSError, AttributeError):  # pragma: no cover - exotic libc
                ok = False
        _TUNED = ok
    return _TUNED


def available_bytes() -> int | None:
    """Memory the machine can still give this process, in bytes (None if unknown).

    Linux's ``MemAvailable`` (free memory plus reclaimable caches), else physical pages free
    (``os.sysconf``). Tests monkeypatch this function.
    """
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return int(os.sysconf("SC_AVPHYS_PAGES")) * int(os.sysconf("SC_PAGE_SIZE"))
    except (ValueError, OSError, AttributeError):  # pragma: no cover - non-POSIX
        return None


def check_memory(op: str, shape: tuple, need_bytes: float, per_mp: str) -> None:
    """Raise ``MemoryError`` if ``need_bytes`` (the estimated peak) exceeds available memory.

    ``shape`` is the image shape and ``per_mp`` the operator's documented cost per megapixel,
    both only for the message.
    """
    avail = available_bytes()
    if avail is None or need_bytes <= avail:
        return
    h, w = shape[:2]
    raise MemoryError(
        f"{op}: a {h}x{w} image needs about {need_bytes / 2**30:.3g} GiB ({per_mp}), but only "
        f"{avail / 2**30:.3g} GiB of memory is available; use a smaller image (or tiles), or "
        "free memory"
    )
