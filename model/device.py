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


def set_threads(n: int | None):
    """Use ``n`` threads for what this process computes (None: leave the defaults); returns a
    function that puts back the settings it changed.

    Sets torch's intra-op threads, the BLAS/OpenMP pools (``threadpoolctl``), OpenCV's and
    Numba's (at most the pool Numba started with), and ``OMP_NUM_THREADS``,
    ``MKL_NUM_THREADS``, ``OPENBLAS_NUM_THREADS`` for the processes started from this one
    (DataLoader workers; dataset workers set their own): see
    :func:`datagen.threads.limit`. On a busy machine fewer threads than cores are often much
    faster (threads that wait for a core stall the others at every parallel region)."""
    if n is None:
        return lambda: None
    from datagen.threads import limit

    restore_others = limit(n)
    before = torch.get_num_threads()
    torch.set_num_threads(n)

    def restore() -> None:
        torch.set_num_threads(before)
        restore_others()

    return restore


def command_threads(explicit: int | None, *, file=None, say: bool = True):
    """The threads of a command line (``python -m model train/eval/apply``): ``--threads``
    when given, else ``OMP_NUM_THREADS``, else torch's default lowered to the cores the other
    processes leave free (:func:`datagen.threads.choose`). Applies it (:func:`set_threads`),
    prints it and why as one line (``threads: 1 (load 1.9 on 2 cores: ...)``) on ``file``
    (stderr), with a warning line when the machine is busy, unless ``say`` is False; returns
    (the choice, a function that restores the previous settings)."""
    import sys

    from datagen.threads import check_threads, choose

    check_threads(explicit)  # before anything: --threads 100000 left no memory for later loads
    choice = choose(explicit, default=torch.get_num_threads())
    restore = set_threads(choice.n)
    if say:
        file = sys.stderr if file is None else file
        print(choice.describe(), file=file)
        warning = choice.warning()
        if warning:
            print(f"warning: {warning}", file=file)
        file.flush()
    return choice, restore


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
