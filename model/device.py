"""Which torch device to run on, with a clear message for one that does not exist here."""
from __future__ import annotations

import torch


def available() -> list[str]:
    """The devices this machine offers: ``cpu``, then ``cuda:0`` ... when CUDA works."""
    devs = ["cpu"]
    if torch.cuda.is_available():
        devs += ["cuda"] + [f"cuda:{i}" for i in range(torch.cuda.device_count())]
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        devs.append("mps")
    return devs


def resolve(device: str | None) -> str:
    """``device`` checked (None: ``cuda`` when available, else ``cpu``); a ValueError lists the
    devices that exist here."""
    if device is None:
        return "cuda" if torch.cuda.is_available() else "cpu"
    if not isinstance(device, str):
        device = str(device)
    here = ", ".join(available())
    try:
        dev = torch.device(device)
    except (RuntimeError, ValueError):
        raise ValueError(f"unknown device {device!r}; devices here: {here}") from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"device {device!r}: CUDA is not available on this machine "
                             f"(torch {torch.__version__}); devices here: {here}")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise ValueError(f"device {device!r} does not exist; devices here: {here}")
    elif dev.type == "mps":
        if "mps" not in available():
            raise ValueError(f"device {device!r} is not available; devices here: {here}")
    elif dev.type != "cpu":
        raise ValueError(f"device {device!r} is not supported; devices here: {here}")
    return device


def set_threads(n: int | None) -> None:
    """Use ``n`` threads for what this process computes (None: leave the defaults).

    Sets torch's intra-op threads, OpenCV's and Numba's (when loaded; at most the pool Numba
    started with), and ``OMP_NUM_THREADS``/``MKL_NUM_THREADS``/``NUMBA_NUM_THREADS`` for the
    processes started from this one (DataLoader workers, spawned datagen workers). On a busy
    machine fewer threads than cores are often faster (threads that wait for a core stall the
    others at every parallel region)."""
    if n is None:
        return
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"threads must be a positive integer, got {n!r}")
    import os
    import sys

    for k in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
        os.environ[k] = str(n)
    torch.set_num_threads(n)
    try:
        import cv2

        cv2.setNumThreads(n)
    except ImportError:  # pragma: no cover - OpenCV is a dependency
        pass
    numba = sys.modules.get("numba")
    if numba is not None:
        numba.set_num_threads(min(n, numba.config.NUMBA_NUM_THREADS))


def distributed_env() -> tuple[int, int, int] | None:
    """``(rank, world_size, local_rank)`` when this process is one of several started by
    ``torchrun`` (its ``RANK``, ``WORLD_SIZE`` and ``LOCAL_RANK`` variables, ``WORLD_SIZE`` > 1),
    else None (one process)."""
    import os

    try:
        world = int(os.environ.get("WORLD_SIZE", "1"))
        rank = int(os.environ.get("RANK", "0"))
        local = int(os.environ.get("LOCAL_RANK", str(rank)))
    except ValueError:
        raise ValueError("WORLD_SIZE, RANK and LOCAL_RANK must be integers (as torchrun sets "
                         "them)") from None
    if world <= 1:
        return None
    if not 0 <= rank < world:
        raise ValueError(f"RANK={rank} is not in [0, WORLD_SIZE={world})")
    return rank, world, local


def for_rank(device: str | None, local_rank: int) -> str:
    """The device of the process with ``local_rank`` on its machine: ``cuda`` (or no device
    when CUDA works) becomes ``cuda:<local_rank>``, one GPU per process as torchrun expects;
    anything else is kept."""
    dev = resolve(device)
    if dev == "cuda":
        if local_rank >= torch.cuda.device_count():
            raise ValueError(f"process with LOCAL_RANK={local_rank} has no GPU: this machine "
                             f"has {torch.cuda.device_count()}; start at most that many "
                             "processes per node (torchrun --nproc_per_node)")
        return f"cuda:{local_rank}"
    return dev


#: ``--amp`` choices: autocast dtypes (``auto``: bfloat16 where the GPU supports it, else float16)
AMP = ("auto", "bf16", "fp16")


def check_amp(amp: str | None, device: str) -> str | None:
    """The autocast dtype (``"bf16"`` or ``"fp16"``) for ``--amp`` on ``device``, or None
    without it; a ValueError off CUDA (autocast on the CPU runs the convolutions in bfloat16
    more slowly than float32, and a GradScaler needs CUDA)."""
    if amp is None or amp is False:
        return None
    if amp is True:
        amp = "auto"
    if amp not in AMP:
        raise ValueError(f"amp must be one of {list(AMP)}, got {amp!r}")
    if not str(device).startswith("cuda"):
        raise ValueError(f"--amp (mixed precision, torch.autocast) needs a CUDA device; this run "
                         f"is on {device!r}: train without --amp")
    if amp == "auto":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    return amp
