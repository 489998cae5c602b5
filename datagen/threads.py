"""How many threads a command computes with, chosen so that a busy machine does not collapse.

A process whose parallel regions use more threads than there are free cores stalls at every
region: each waits for its slowest thread, and that thread waits for a core another process
holds. Measured on a 2-core machine running other jobs (load average 3.6-7): ``model train
--preset smoke`` trained in 35.4 s and 26.8 s with 2 threads (torch's default), 6.7 s and 4.6 s
with 1, the same losses (docs/model.md). So the command lines (``model train/eval/apply``,
``datagen build``) default to :func:`choose`: the cores this process may use, less those the
other processes keep busy (the 1-minute load average, rounded), at least one. An explicit
``--threads N`` (or ``OMP_NUM_THREADS`` in the environment, as ``torchrun`` sets it) wins.

:func:`limit` applies a count to what this process computes with (BLAS and OpenMP pools through
``threadpoolctl``, OpenCV, Numba) and to the processes it starts (``OMP_NUM_THREADS``,
``MKL_NUM_THREADS``, ``OPENBLAS_NUM_THREADS``); ``model.device`` adds torch's own pool.
``NUMBA_NUM_THREADS`` is never changed in this process: Numba re-reads it when it compiles and
raises once it differs from the pool it launched (its pool is limited with
``numba.set_num_threads`` instead; dataset workers set their own in their initializer). The library functions never call it: only the command lines change
process-wide settings.
"""
from __future__ import annotations

import math
import os
import sys
from dataclasses import dataclass

#: the variables :func:`limit` sets for child processes (not ``NUMBA_NUM_THREADS``: Numba
#: refuses a value other than the pool it launched with, see the module docstring)
ENV_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")


def cpu_cores() -> int:
    """The CPUs this process may run on (its affinity mask where the OS has one, else all)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


#: the most threads a command takes per core (:func:`max_threads`)
MAX_THREADS_PER_CORE = 4


def max_threads() -> int:
    """The most threads a command computes with: :data:`MAX_THREADS_PER_CORE` per core (at
    least 8). Beyond the cores threads only stall each other; far beyond them (``--threads
    100000``) the pools' reserved stacks left no address space, and a later library failed to
    load with an empty message."""
    return max(8, MAX_THREADS_PER_CORE * cpu_cores())


def check_threads(n: int | None, flag: str = "--threads") -> None:
    """A ValueError for a thread count below 1 or above :func:`max_threads` (None: fine), said
    as the command-line option ``flag``; every command checks its ``--threads`` with it before
    any work (an ``OMP_NUM_THREADS`` of the environment is taken as it is)."""
    if n is None:
        return
    if n < 1:
        raise ValueError(f"{flag} must be >= 1, got {n}")
    if n > max_threads():
        raise ValueError(f"{flag} {n} is more than {max_threads()} ({MAX_THREADS_PER_CORE} per "
                         f"core of the {cpu_cores()} here): threads beyond the cores only wait "
                         "for each other, and tens of thousands exhaust the memory their pools "
                         "reserve")


def load_average() -> float | None:
    """The 1-minute load average (runnable processes, averaged), or None where the OS has none."""
    try:
        return float(os.getloadavg()[0])
    except (AttributeError, OSError):
        return None


@dataclass(frozen=True)
class Threads:
    """A thread count and why: ``source`` is ``"--threads"``, ``"OMP_NUM_THREADS="`` or
    ``"auto"``; ``busy`` says that the other processes keep at least one core busy."""

    n: int
    source: str
    cores: int
    load: float | None
    default: int

    @property
    def free(self) -> int | None:
        """The cores the other processes leave free (``cores - round(load)``, at least 0), or None
        when the load is unknown."""
        if self.load is None:
            return None
        return max(0, self.cores - math.floor(self.load + 0.5))  # round half up

    @property
    def busy(self) -> bool:
        """Whether the other processes leave fewer free cores than the default thread count."""
        return self.free is not None and self.free < min(self.default, self.cores)

    def reason(self) -> str:
        """Why this count, e.g. ``load 1.9 on 2 cores: 1, not 2, as threads that wait for a core
        stall the others; --threads N to choose``."""
        load = "load unknown" if self.load is None else f"load {self.load:.1f}"
        if self.source != "auto":
            sep = "" if self.source.endswith("=") else " "
            return f"{self.source}{sep}{self.n}; {self.cores} cores, {load}"
        if self.n < self.default:
            return (f"{load} on {self.cores} cores: {self.n}, not {self.default}, as threads "
                    "that wait for a core stall the others; --threads N to choose")
        return f"{self.cores} cores, {load}; --threads N to choose"

    def describe(self) -> str:
        """The first line a command prints: ``threads: N (why)``."""
        return f"threads: {self.n} ({self.reason()})"

    def warning(self) -> str | None:
        """A one-line warning when the machine is busy (None when it is not)."""
        if not self.busy:
            return None
        text = (f"the machine is busy (load {self.load:.1f} on {self.cores} cores): this run is "
                "slower than on a quiet machine")
        if self.source != "auto" and self.n > 1:
            text += (f"; {self.n} threads may stall each other waiting for cores "
                     "(--threads 1 is often faster here)")
        return text


#: ``choose(load=MACHINE)``: read this machine's load average
MACHINE = object()


def choose(explicit: int | None = None, *, default: int | None = None, cores: int | None = None,
           load: float | None = MACHINE, env=None) -> Threads:
    """The thread count for a command: ``explicit`` when given, else ``OMP_NUM_THREADS`` from
    ``env`` (default ``os.environ``) when it is a positive integer, else ``default`` (default:
    the cores) lowered to the cores the other processes leave free: ``cores - round(load)``,
    at least 1. ``cores`` and ``load`` (None: unknown) default to this machine's; tests pass
    their own."""
    n_cores = cpu_cores() if cores is None else max(1, int(cores))
    if load is MACHINE:
        load = load_average()
    default = n_cores if default is None else max(1, int(default))
    if explicit is not None:
        if isinstance(explicit, bool) or not isinstance(explicit, int) or explicit < 1:
            raise ValueError(f"threads must be a positive integer, got {explicit!r}")
        return Threads(explicit, "--threads", n_cores, load, default)
    env = os.environ if env is None else env
    value = env.get("OMP_NUM_THREADS", "").strip()
    if value.isdigit() and int(value) >= 1:
        return Threads(int(value), "OMP_NUM_THREADS=", n_cores, load, default)
    auto = Threads(min(default, n_cores), "auto", n_cores, load, default)
    if auto.free is None:
        return auto
    return Threads(max(1, min(auto.n, auto.free)), "auto", n_cores, load, default)


def limit(n: int):
    """Compute with ``n`` threads in this process (BLAS/OpenMP pools via ``threadpoolctl``,
    OpenCV, Numba: at most the pool it started with) and in the processes it starts (the
    :data:`ENV_VARS`); returns a function that puts back what it changed (a command run
    inside a test leaves the test process as it found it). Torch's pool is
    ``model.device.set_threads``'s."""
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"threads must be a positive integer, got {n!r}")
    env = {k: os.environ.get(k) for k in ENV_VARS}
    for k in ENV_VARS:
        os.environ[k] = str(n)
    from threadpoolctl import threadpool_limits

    pools = threadpool_limits(limits=n)  # the BLAS and OpenMP libraries loaded so far
    try:
        import cv2
    except ImportError:  # pragma: no cover - OpenCV is a dependency
        cv2 = None
    cv_before = cv2.getNumThreads() if cv2 is not None else None
    if cv2 is not None:
        cv2.setNumThreads(n)
    import numba  # now, so that its pool starts from the environment as it was

    numba_before = numba.get_num_threads()
    numba.set_num_threads(min(n, numba.config.NUMBA_NUM_THREADS))

    def restore() -> None:
        for k, v in env.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        pools.restore_original_limits()
        if cv_before is not None:
            cv2.setNumThreads(cv_before)
        numba.set_num_threads(numba_before)

    return restore
