"""Helpers shared by the speed benchmarks: the test image, device synchronisation, the timing
function and the thread settings of the operator fresh-process comparison."""
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


def timed_calls(fn, rounds: int) -> dict:
    """Time ``rounds`` calls of ``fn()``: lists of wall seconds (``time.perf_counter``), CPU
    seconds of the whole process (``time.process_time``: all threads, user + system) and minor
    page faults (``resource.getrusage(RUSAGE_SELF).ru_minflt``) per call.

    The one timing function of the operator-speed comparison: the fresh process and the suite
    process both call it (``benchmarks/fresh_process_speed.py``)."""
    import resource
    import time

    walls, cpus, faults = [], [], []
    for _ in range(rounds):
        f0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        c0 = time.process_time()
        t0 = time.perf_counter()
        fn()
        t1 = time.perf_counter()
        c1 = time.process_time()
        f1 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        walls.append(t1 - t0)
        cpus.append(c1 - c0)
        faults.append(f1 - f0)
    return {"wall": walls, "cpu": cpus, "faults": faults}


def thread_settings() -> dict:
    """The thread counts an operator call depends on, as this process has them now: Numba's
    (``numba.get_num_threads``: pocketfft's workers in l0 follow it), OpenCV's, and the
    ``OMP/MKL/OPENBLAS/NUMBA_NUM_THREADS`` variables (MKL/OpenBLAS read them when loaded)."""
    import os

    import numba

    env = {k: os.environ.get(k) for k in ("OMP_NUM_THREADS", "MKL_NUM_THREADS",
                                          "OPENBLAS_NUM_THREADS", "NUMBA_NUM_THREADS")}
    return {"numba": numba.get_num_threads(), "opencv": cv2.getNumThreads(), "env": env}


def apply_thread_settings(s: dict) -> None:
    """Give this process the settings :func:`thread_settings` returned in another one (Numba's
    count at most the pool this process started with; the variables must be set before the
    libraries that read them load, so a child process gets them in its environment too)."""
    import os

    import numba

    for k, v in s["env"].items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v
    numba.set_num_threads(min(s["numba"], numba.config.NUMBA_NUM_THREADS))
    cv2.setNumThreads(s["opencv"])
