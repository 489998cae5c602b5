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
    the dynamic threshold) and 1 GiB, so a fresh process behaves like a warmed-up one: freed
    work arrays stay in the heap and are reused. The trim threshold was 256 MiB until it showed
    too small for a process that runs several operators: after ``wls`` (whose freed work memory
    sits just below the heap top) each ``rtv`` call at 1 MP freed enough to leave more than
    256 MiB free at the top, glibc gave it back, and the next solve grew the heap again — 30-42 k
    page faults (120-170 MB zero-filled) and ~15 % more CPU per call, in the suite process only.
    With 1 GiB it faults 0 times from its second call. Arrays above the 32 MiB threshold (the N = 20
    first-level stacks of ``llf_remap`` and ``style`` at 1 MP: 42 MB) are still served from the
    heap when its free top is large enough, so it also sets ``M_TOP_PAD`` to 64 MiB (the heap
    grows, and is trimmed, with 64 MiB of slack) and grows the heap once by one block below the
    threshold, freed at once: a process that has done nothing large yet gets the top a warmed-up
    one has. The price: freed memory at the top of the heap, up to 1 GiB, stays mapped in the
    process for reuse (the pad is part of it; untouched pad pages cost address space, not
    memory). It never exceeds the heap the process's largest calls needed: a process that ran
    only millisecond operators keeps a few MB, one that ran ``wls`` at 1 MP (~0.9 GB peak) keeps
    up to that, which its next call of the same size needs again anyway. Set
    ``DECOUPLE_OPS_KEEP_MALLOC=1`` to leave the allocator alone. Nothing is done on non-glibc
    platforms. See ``docs/operators_speed_memory.md``.
"""
from __future__ import annotations

import ctypes
import os
import sys
import threading

__all__ = ["available_bytes", "check_memory", "tune_malloc", "MMAP_THRESHOLD", "TRIM_THRESHOLD",
           "TOP_PAD"]

#: glibc ``M_MMAP_THRESHOLD``, ``M_TRIM_THRESHOLD`` and ``M_TOP_PAD`` set by :func:`tune_malloc`.
MMAP_THRESHOLD = 32 << 20
TRIM_THRESHOLD = 1 << 30
TOP_PAD = 64 << 20
_M_TRIM_THRESHOLD, _M_TOP_PAD, _M_MMAP_THRESHOLD = -1, -2, -3  # mallopt parameters (malloc.h)

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
                        libc.mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD)) and bool(
                        libc.mallopt(_M_TOP_PAD, TOP_PAD))
                    if ok:  # one heap extension now, so the top holds the pad from the start
                        libc.malloc.argtypes = [ctypes.c_size_t]
                        libc.malloc.restype = ctypes.c_void_p
                        libc.free.argtypes = [ctypes.c_void_p]
                        libc.free.restype = None
                        block = libc.malloc(MMAP_THRESHOLD - (1 << 20))  # below: from the heap
                        libc.free(block)  # free(NULL) is a no-op if malloc failed
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
