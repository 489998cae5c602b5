"""Numba's ``njit``/``prange`` for the project's kernels, imported from here so that
:mod:`operators._numba_cache` is installed before any cached kernel is defined (an edit of any
file of a kernel's package then recompiles it; Numba alone looks at the kernel's own file).
Importing :mod:`operators` stays free of Numba: only the kernel modules import this."""
from numba import get_num_threads, njit, prange

from . import _numba_cache

_numba_cache.install()

__all__ = ["njit", "prange", "get_num_threads"]
