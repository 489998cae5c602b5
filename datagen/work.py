"""The worker side of a build: one task's pairs computed, then encoded as the HDF5 chunks they are
stored as, so that the process that writes the file only copies bytes.

A worker process imports this module, NumPy and :mod:`operators`, nothing of the writer (h5py,
the planner, tqdm): what a spawned worker loads before its first task is what its tasks need.

Every image dataset of a build is chunked one row per chunk with HDF5's filter pipeline
``shuffle, deflate(GZIP_LEVEL), fletcher32`` (:data:`datagen.build.CHECKSUM`). For uint8 data
the shuffle filter is the identity (it permutes the bytes of multi-byte elements), so a stored
chunk is ``zlib.compress(row, GZIP_LEVEL)`` followed by the Fletcher-32 checksum of those bytes,
4 bytes little-endian, exactly as HDF5's own filters write it (:func:`fletcher32` is HDF5's
algorithm, tested against chunks that HDF5 wrote). The writer stores such chunks with h5py's
``write_direct_chunk``; any HDF5 reader decodes them with the dataset's filters, and ``verify``
checks their checksums like any other.
"""
from __future__ import annotations

import os
import sys
import threading
import time
import zlib

import numpy as np

import operators

from .store import store_keys

#: The deflate level of every image dataset (recorded in the file as the datasets'
#: ``compression_opts``).
GZIP_LEVEL = 1
#: What the journal's encoded shards hold: rows as stored chunks (deflate, then Fletcher-32).
CODEC = "hdf5-chunk:deflate+fletcher32"


def run_task(name: str, pixels: np.ndarray, gammas: np.ndarray, seeds=None, size=None,
             overrides=None) -> dict[str, np.ndarray]:
    """One source crop through one operator at several γ, as uint8 (MATLAB rounding).

    Every pair is ``operators.pair(name, crop, γ, seed=seed)`` of the crop's top-left ``size``
    block (the whole crop but for ``sr``), γ None for NaN (fixed-effect operators). A filter
    returns ``{"output": f(crop)}`` (its input is the stored source crop); a degradation
    ``{"input": d(crop), "target": clean}`` in the operator's channels (HxW for y/gray).
    """
    spec = operators.get(name)
    if size is not None and size != pixels.shape[0]:
        pixels = pixels[:size, :size]
    overrides = overrides or {}
    keys = store_keys(spec.kind)
    out: dict[str, list[np.ndarray]] = {k: [] for k in keys}
    for j, g in enumerate(gammas):
        g = None if np.isnan(g) else float(g)
        seed = None if seeds is None else int(seeds[j])
        x, y = spec.pair(pixels, g, seed=seed, **overrides)
        if spec.kind == "filter":
            out["output"].append(operators.to_uint8(y))
        else:
            out["input"].append(operators.to_uint8(x))
            out["target"].append(operators.to_uint8(y))
    return {k: np.stack(v) for k, v in out.items()}


def compute_task(name: str, pixels: np.ndarray, gammas: np.ndarray, seeds=None, size=None,
                 overrides=None) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """What a worker does with one task: :func:`run_task`, each dataset's rows encoded
    (:func:`encode_rows`)."""
    arrays = run_task(name, pixels, gammas, seeds, size, overrides)
    return {k: encode_rows(v) for k, v in arrays.items()}


# --------------------------------------------------------------------------- stored chunks
_BLOCK = 360  # HDF5 folds its 32-bit sums every 360 16-bit words
#: Block weights L, L-1, ..., 1 as float64: every block sum is below 2**53, so the matrix product
#: (BLAS) is exact.
_WEIGHTS = np.arange(_BLOCK, 0, -1, dtype=np.float64)


def fletcher32(data) -> int:
    """HDF5's Fletcher-32 checksum (``H5_checksum_fletcher32``) of a byte string.

    16-bit big-endian words; both sums folded to 16 bits (end-around carry) after every 360
    words, a trailing odd byte counted as the high byte of a word, and a final fold. Each block's
    contribution is computed at once: after words w_0..w_{L-1}, sum1 grows by Σ w_i and sum2 by
    L·sum1 + Σ (L-i) w_i (sum2 adds sum1 after every word).
    """
    b = memoryview(data).cast("B")
    n = len(b) // 2
    words = np.frombuffer(b, ">u2", count=n).astype(np.float64)
    full = n // _BLOCK
    blocks = words[:full * _BLOCK].reshape(full, _BLOCK)
    sums = blocks.sum(axis=1).astype(np.int64).tolist()
    weighted = (blocks @ _WEIGHTS).astype(np.int64).tolist()
    lengths = [_BLOCK] * full
    if n % _BLOCK:
        tail = words[full * _BLOCK:]
        sums.append(int(tail.sum()))
        weighted.append(int(tail @ _WEIGHTS[_BLOCK - len(tail):]))
        lengths.append(len(tail))
    s1 = s2 = 0
    for total, wsum, length in zip(sums, weighted, lengths):
        s2 = (s2 + length * s1 + wsum) & 0xFFFFFFFF
        s1 = (s1 + total) & 0xFFFFFFFF
        s1 = (s1 & 0xFFFF) + (s1 >> 16)
        s2 = (s2 & 0xFFFF) + (s2 >> 16)
    if len(b) % 2:
        s1 = (s1 + (b[-1] << 8)) & 0xFFFFFFFF
        s2 = (s2 + s1) & 0xFFFFFFFF
        s1 = (s1 & 0xFFFF) + (s1 >> 16)
        s2 = (s2 & 0xFFFF) + (s2 >> 16)
    s1 = (s1 & 0xFFFF) + (s1 >> 16)
    s2 = (s2 & 0xFFFF) + (s2 >> 16)
    return ((s2 << 16) | s1) & 0xFFFFFFFF


def encode_chunk(row: np.ndarray, level: int = GZIP_LEVEL) -> bytes:
    """One uint8 row as HDF5 stores it in a chunk of pipeline shuffle, deflate, Fletcher-32."""
    if row.dtype != np.uint8:
        raise TypeError(f"encode_chunk needs uint8 rows (shuffle is the identity only for "
                        f"one-byte elements), got {row.dtype}")
    z = zlib.compress(np.ascontiguousarray(row).data, level)
    return z + fletcher32(z).to_bytes(4, "little")


def encode_rows(rows: np.ndarray, level: int = GZIP_LEVEL) -> tuple[np.ndarray, np.ndarray]:
    """(chunks, ends): the stored chunk of every row of ``rows`` concatenated (uint8) and where
    each ends (int64, cumulative), the form a journal shard keeps them in."""
    parts = [encode_chunk(r, level) for r in rows]
    ends = np.cumsum([len(p) for p in parts], dtype=np.int64)
    return np.frombuffer(b"".join(parts), np.uint8), ends


def decode_chunk(chunk) -> bytes:
    """The row bytes of a stored chunk (its checksum checked): for tests and inspection."""
    chunk = bytes(chunk)
    if len(chunk) < 4 or fletcher32(chunk[:-4]) != int.from_bytes(chunk[-4:], "little"):
        raise ValueError("the chunk's Fletcher-32 checksum does not match its data")
    return zlib.decompress(chunk[:-4])


# --------------------------------------------------------------------------- worker processes
def init_worker(threads: int, parent: int | None = None) -> None:
    """Pool workers share the cores (each one's Numba threads are limited) and never outlive the
    build: they exit when their parent dies, even by ``kill -9``."""
    if parent is not None:
        exit_with_parent(parent)
    os.environ.setdefault("OMP_NUM_THREADS", str(threads))
    os.environ.setdefault("MKL_NUM_THREADS", str(threads))
    import numba  # noqa: F401

    numba.set_num_threads(max(1, min(threads, numba.config.NUMBA_NUM_THREADS)))


def exit_with_parent(parent: int, poll_s: float = 0.5) -> None:
    """End this process when ``parent`` is gone: the kernel's parent-death signal on Linux (works
    even while a task holds the GIL), and everywhere a daemon thread that watches ``getppid``."""
    if sys.platform.startswith("linux"):
        try:
            import ctypes
            import signal

            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(1, int(signal.SIGKILL), 0, 0, 0)  # PR_SET_PDEATHSIG
        except (OSError, AttributeError):
            pass
    if os.getppid() != parent:  # the parent died before the signal was armed
        os._exit(1)

    def watch() -> None:
        while True:
            if os.getppid() != parent:
                os._exit(1)
            time.sleep(poll_s)

    threading.Thread(target=watch, name="datagen-parent-watch", daemon=True).start()


def warm_up() -> int:
    """The first task of a pool worker: the imports every task needs (this module imported
    NumPy and the operators when it was unpickled; Numba here), done while the parent plans the
    build or reads its journal."""
    import numba  # noqa: F401

    return os.getpid()
