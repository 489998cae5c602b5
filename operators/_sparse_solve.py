"""Direct solves of SPD 5-point grid systems (column-major pixel order), with a cached analysis.

The matrices handled here are ``A = I + weighted 5-point Laplacian`` on an ``H x W`` pixel grid
with pixels numbered column-major (MATLAB's ``A(:)``): pixel ``i = x*H + y`` couples with
``i + 1`` (the pixel below) and ``i + H`` (the pixel to the right). Such a matrix is given by its
**upper triangle in CSR form**: row ``i`` holds, in this order, the diagonal, the coupling with
``i + 1`` (when ``y < H - 1``) and the coupling with ``i + H`` (when ``x < W - 1``). The pattern
depends on ``(H, W)`` only, so :func:`grid_pattern` builds it once and callers fill ``data``.

Two back ends solve ``A x = b`` exactly (to rounding):

``"pardiso"``
    Intel MKL PARDISO through the ``mkl_rt`` library that the ``pypardiso`` wheel ships (x86-64
    Linux and Windows). Matrix type 2 (real SPD, Cholesky), minimum-degree ordering. The factor
    is computed in float32 and the solution refined in float64 to the float64 solve's accuracy
    (~1e-13) when the diagonal bounds the conditioning well enough (``SINGLE_MAX_DIAGONAL``),
    else, or when the refinement does not converge, in float64 (issue 28: 0.88-0.92x the CPU
    time of the float64 factorisation at 1024x1024, refinement included). The
    reordering and symbolic factorisation (phase 11) are done once per grid shape on a fixed,
    image-independent matrix and cached; each solve runs only the numeric factorisation and the
    triangular solves (phase 23). Results do not depend on what was solved before. Each handle
    pins MKL's thread count to the one in force at its analysis: PARDISO silently corrupts
    results (and memory) when the numeric phase runs with another count. Calls on one handle are
    serialised by a lock; PARDISO itself uses MKL's OpenMP threads (both cores here).
``"scipy"``
    SuperLU (``scipy.sparse.linalg.splu``) in symmetric mode with the ``MMD_AT_PLUS_A`` ordering
    and no pivoting. Used automatically when MKL cannot be loaded. About 5-10x slower.

``backend="auto"`` picks PARDISO when it loads, else SciPy.

:class:`PardisoSPD` (one PARDISO handle for any SPD upper-CSR pattern: cached analysis, numeric
factorisation and solves of one or several right-hand sides) and :class:`HandleCache` (an LRU
cache of handles by key) are the project's one PARDISO wrapper: the grid solves here and the
fit of the BGU baseline (``model.bgu``, 3-D grids, METIS ordering) both use them.
"""
from __future__ import annotations

import ctypes
import glob
import os
import site
import sys
import threading
from collections import OrderedDict

import numpy as np
import scipy.sparse as sp
from ._jit import njit, prange
import scipy.sparse.linalg as spla

__all__ = ["grid_pattern", "solve_grid_spd", "solve_grid_spd_many", "pardiso_available",
           "pardiso_threads", "clear_cache", "PardisoSPD", "HandleCache"]

#: PARDISO handles (analysis + factor storage) are kept for the most recently used grid shapes:
#: at most CACHE_ENTRIES handles and CACHE_PIXELS pixels in all (the newest is always kept):
#: room for the three workers' handles of an RGB megapixel (:func:`solve_grid_spd_many`). The
#: factor of a 1024x1024 grid takes about 0.3 GB; :func:`clear_cache` releases everything.
CACHE_ENTRIES = 8
CACHE_PIXELS = 3_300_000
#: Largest diagonal of A for which the float32 factor (with float64 refinement) is used; larger
#: ones (lam/small_num above ~1e5 in WLS) are factored in float64 directly.
SINGLE_MAX_DIAGONAL = 5e5

_PATTERNS: OrderedDict = OrderedDict()
_CACHE_LOCK = threading.Lock()
_MKL = None  # None: not tried yet; False: unavailable; else the ctypes pardiso function
_MKL_LOCK = threading.Lock()


# --------------------------------------------------------------------------- pattern
def grid_pattern(h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    """Upper-triangular CSR pattern ``(indptr, indices)`` (int32) of the column-major grid.

    Row ``i = x*h + y`` lists columns ``i``, ``i + 1`` (if ``y < h-1``), ``i + h`` (if
    ``x < w-1``), sorted ascending. Cached per shape (read-only arrays).
    """
    key = (int(h), int(w))
    with _CACHE_LOCK:
        hit = _PATTERNS.get(key)
        if hit is not None:
            _PATTERNS.move_to_end(key)
            return hit
    n = h * w
    y = np.tile(np.arange(h), w)
    x = np.repeat(np.arange(w), h)
    down = y < h - 1
    right = x < w - 1
    counts = 1 + down.astype(np.int64) + right.astype(np.int64)
    indptr = np.zeros(n + 1, np.int64)
    np.cumsum(counts, out=indptr[1:])
    i = np.arange(n, dtype=np.int64)
    indices = np.empty(int(indptr[-1]), np.int64)
    indices[indptr[:-1]] = i
    indices[indptr[:-1][down] + 1] = i[down] + 1
    indices[indptr[:-1][right] + 1 + down[right]] = i[right] + h
    indptr = indptr.astype(np.int32)
    indices = indices.astype(np.int32)
    indptr.flags.writeable = False
    indices.flags.writeable = False
    with _CACHE_LOCK:
        _PATTERNS[key] = (indptr, indices)
        while len(_PATTERNS) > CACHE_ENTRIES:
            _PATTERNS.popitem(last=False)
    return indptr, indices


def _full_csc(h: int, w: int, data: np.ndarray) -> sp.csc_matrix:
    """The full symmetric matrix from upper-CSR ``data`` (CSR of the upper = CSC of the lower)."""
    indptr, indices = grid_pattern(h, w)
    n = h * w
    upper = sp.csr_matrix((data, indices, indptr), shape=(n, n))
    strict = sp.triu(upper, k=1, format="csr")
    return (upper + strict.T).tocsc()


# --------------------------------------------------------------------------- MKL PARDISO
class _Mkl:
    """The few ``mkl_rt`` entry points used here (ctypes)."""

    def __init__(self, lib):
        vp = ctypes.c_void_p
        self.pardiso = lib.pardiso
        self.pardiso.argtypes = [vp] * 16
        self.pardiso.restype = None
        self.get_max_threads = lib.MKL_Get_Max_Threads
        self.get_max_threads.argtypes = []
        self.get_max_threads.restype = ctypes.c_int
        self.set_threads_local = lib.MKL_Set_Num_Threads_Local
        self.set_threads_local.argtypes = [ctypes.c_int]
        self.set_threads_local.restype = ctypes.c_int


def _load_mkl():
    """The MKL entry points (:class:`_Mkl`), or False when MKL cannot be loaded."""
    global _MKL
    if _MKL is not None:
        return _MKL
    with _MKL_LOCK:
        if _MKL is not None:
            return _MKL
        path = None if "PYPARDISO_MKL_RT" in os.environ else _mkl_rt_path()
        if path is not None:  # tell pypardiso where its library is (its import makes a solver)
            os.environ["PYPARDISO_MKL_RT"] = path
        try:
            import pypardiso  # ships mkl_rt and knows where to find it

            _MKL = _Mkl(pypardiso.PyPardisoSolver().libmkl)
        except Exception:  # ImportError, OSError, missing symbol: fall back to SciPy
            if path is not None and os.environ.get("PYPARDISO_MKL_RT") == path:
                del os.environ["PYPARDISO_MKL_RT"]  # ours did not load: let pypardiso search
                try:
                    import pypardiso

                    _MKL = _Mkl(pypardiso.PyPardisoSolver().libmkl)
                except Exception:
                    _MKL = False
            else:
                _MKL = False
    return _MKL


def _mkl_rt_path() -> str | None:
    """Where the ``pypardiso`` wheel's dependency ``mkl`` installs ``mkl_rt`` (``<prefix>/lib``,
    ``Library/bin`` on Windows, or the user base), found by a few direct globs. Without it,
    pypardiso asks ``ctypes.util.find_library`` (subprocesses) and then searches the whole
    prefix recursively, twice per process (its import makes a solver too): 0.3–0.4 s of CPU in
    every new process's first WLS call (measured), a datagen worker's included."""
    for base in (sys.prefix, site.USER_BASE):
        for pattern in ("lib/libmkl_rt.so*", "lib/libmkl_rt*.dylib", "Library/bin/mkl_rt*.dll"):
            hits = sorted(glob.glob(os.path.join(glob.escape(base), pattern)), key=len)
            if hits:
                return hits[0]
    return None


def pardiso_available() -> bool:
    """Whether MKL PARDISO (via the ``pypardiso`` wheel's ``mkl_rt``) can be used here."""
    return bool(_load_mkl())


_PARDISO_ERRORS = {
    -1: "input inconsistent", -2: "not enough memory", -3: "reordering problem",
    -4: "zero pivot / numerically singular", -5: "unclassified internal error",
    -6: "reordering failed", -7: "diagonal matrix is singular", -8: "32-bit integer overflow",
    -9: "not enough memory for out-of-core", -10: "error opening OOC files",
    -11: "read/write error with OOC files", -12: "pardiso_64 called from 32-bit library",
}


@njit(cache=True, parallel=True)
def _grid_residual(h, w, indptr, data, x, b, r):  # pragma: no cover - numba
    """``r = b - A x`` in float64 for the grid matrix whose upper-CSR values are ``data``."""
    for c in prange(w):
        for y in range(h):
            i = c * h + y
            k = indptr[i]
            acc = data[k] * x[i]
            k += 1
            if y < h - 1:
                acc += data[k] * x[i + 1]
                k += 1
            if c < w - 1:
                acc += data[k] * x[i + h]
            if y > 0:  # the pixel above: its coupling with i is its second entry
                acc += data[indptr[i - 1] + 1] * x[i - 1]
            if c > 0:  # the pixel to the left: its coupling with i is its last entry
                acc += data[indptr[i - h + 1] - 1] * x[i - h]
            r[i] = b[i] - acc


@njit(cache=True, parallel=True)
def _add_correction(x, dx):  # pragma: no cover - numba
    """``x += dx`` (float64 += float32) in one pass that also returns ``max|dx|`` and the new
    ``max|x|`` (the refinement's step and size; three NumPy passes and two temporaries before)."""
    step = 0.0
    size = 0.0
    for i in prange(x.shape[0]):
        d = np.float64(dx[i])
        v = x[i] + d
        x[i] = v
        step = max(step, abs(d))
        size = max(size, abs(v))
    return step, size


class PardisoSPD:
    """One MKL PARDISO handle for the SPD matrices of one upper-triangular CSR pattern.

    The fill-reducing ordering and the symbolic factorisation (phase 11) are done once, at
    construction, on ``analysis_data``: a fixed SPD matrix with the pattern, independent of any
    input, so that results never depend on what the handle solved before. Each :meth:`solve`
    runs the numeric Cholesky factorisation and the triangular solves (phase 23) for one or
    several right-hand sides. WLS (:func:`solve_grid_spd`, 2-D grids, minimum-degree ordering)
    and BGU's fit (``model.bgu``, 3-D grids of affine models, METIS nested dissection) share it.

    Parameters
    ----------
    indptr, indices : int32 upper-triangular CSR pattern (zero-based, sorted, diagonal first).
    analysis_data : values of an SPD matrix with that pattern, used for the analysis only.
    ordering : ``"min-degree"`` (``iparm[1] = 0``: fewest flops on 2-D 5-point grids, fast
        analysis) or ``"metis"`` (``iparm[1] = 2``: nested dissection, fewest on 3-D grids).
    single : factor in float32 (``iparm[27] = 1``); the caller refines (see :class:`_PardisoGrid`).
    nthreads : MKL threads of every call of this handle (default: MKL's count in force now).

    PARDISO silently returns wrong results (and may corrupt memory) when the numeric phase runs
    with a different MKL thread count than the analysis did, so every call of a handle is pinned
    to the count in force at its construction (thread-locally, restored afterwards), and calls on
    one handle are serialised by a lock. Raises ``RuntimeError`` when MKL cannot be loaded.
    """

    MTYPE = 2  # real symmetric positive definite
    ORDERINGS = {"min-degree": 0, "metis": 2}

    def __init__(self, indptr: np.ndarray, indices: np.ndarray, analysis_data: np.ndarray, *,
                 ordering: str = "min-degree", single: bool = False, nthreads: int | None = None):
        if ordering not in self.ORDERINGS:
            raise ValueError(f"ordering must be one of {', '.join(map(repr, self.ORDERINGS))}, "
                             f"got {ordering!r}")
        self.mkl = _load_mkl()
        if not self.mkl:
            raise RuntimeError("MKL PARDISO is unavailable (pip install pypardiso on x86-64 "
                               "Linux/Windows)")
        self.single = bool(single)
        self.dtype = np.float32 if self.single else np.float64
        self.nthreads = max(1, int(self.mkl.get_max_threads() if nthreads is None else nthreads))
        self.indptr = np.ascontiguousarray(indptr, dtype=np.int32)
        self.indices = np.ascontiguousarray(indices, dtype=np.int32)
        self.n = len(self.indptr) - 1
        self.pt = np.zeros(64, np.int64)
        self.iparm = np.zeros(64, np.int32)
        ip = self.iparm
        ip[0] = 1    # we supply iparm
        ip[1] = self.ORDERINGS[ordering]
        ip[7] = 0    # iterative refinement: automatic (only if perturbed pivots, never for SPD)
        ip[9] = 8    # pivot perturbation 1e-8 (default for symmetric types)
        ip[17] = -1  # report nnz(L)
        ip[27] = 1 if self.single else 0  # float32 matrix, factor and vectors
        ip[34] = 1   # zero-based indices
        self.perm = np.zeros(1, np.int32)
        self.lock = threading.Lock()
        self.alive = False
        self._call(11, np.ascontiguousarray(analysis_data, dtype=self.dtype), None, None)
        self.alive = True

    def _call(self, phase, data, b, x, nrhs=1):
        err = ctypes.c_int32(0)
        dummy = np.zeros(1)
        bb = dummy if b is None else b
        xx = dummy if x is None else x
        one = ctypes.c_int32(1)
        args = (self.pt.ctypes.data, ctypes.byref(one), ctypes.byref(one),
                ctypes.byref(ctypes.c_int32(self.MTYPE)), ctypes.byref(ctypes.c_int32(phase)),
                ctypes.byref(ctypes.c_int32(self.n)), data.ctypes.data, self.indptr.ctypes.data,
                self.indices.ctypes.data, self.perm.ctypes.data,
                ctypes.byref(ctypes.c_int32(nrhs)), self.iparm.ctypes.data,
                ctypes.byref(ctypes.c_int32(0)), bb.ctypes.data, xx.ctypes.data,
                ctypes.byref(err))
        prev = self.mkl.set_threads_local(self.nthreads)
        try:
            self.mkl.pardiso(*args)
        finally:
            self.mkl.set_threads_local(prev)
        if err.value != 0:
            raise RuntimeError(f"MKL PARDISO phase {phase} failed with error {err.value} "
                               f"({_PARDISO_ERRORS.get(err.value, 'unknown')})")

    def solve(self, data: np.ndarray, b: np.ndarray):
        """x with A x = b in float64 (``b``: length n, or k x n for k right-hand sides, one
        after another), factoring ``A`` (upper-CSR values ``data``) first; None if this handle
        was released (evicted from its cache) meanwhile."""
        data = np.ascontiguousarray(data, dtype=self.dtype)
        b = np.ascontiguousarray(b, dtype=self.dtype)
        x = np.zeros_like(b)
        with self.lock:
            if not self.alive:
                return None
            self._call(23, data, b, x, 1 if b.ndim == 1 else b.shape[0])
        return x

    def release(self):
        """Free the factor and the analysis (later solves return None)."""
        with self.lock:
            if self.alive:
                self.alive = False
                try:
                    self._call(-1, np.zeros(1), None, None)
                except RuntimeError:  # pragma: no cover - nothing sensible to do
                    pass

    def __del__(self):  # pragma: no cover - depends on interpreter shutdown order
        try:
            self.release()
        except Exception:
            pass


class _PardisoGrid(PardisoSPD):
    """The PARDISO handle of one 2-D grid shape (:func:`grid_pattern`), minimum-degree order.

    ``single=True``: the factor is computed in float32 (PARDISO ``iparm[27] = 1``) and the
    solution refined in float64 (residuals ``b - A x`` in float64, corrections from the float32
    factor) until the error left, the next correction predicted from the last two (they shrink
    geometrically), is below ``REFINE_TOL`` of the solution, or a correction stops shrinking at
    the float64 rounding floor. Half the factor's memory traffic; 0.83-0.85x the CPU time of the
    float64 factorisation at 1024x1024 with the refinement included (issue 28), and the same
    accuracy (max |difference| from the float64 solve at 1024x1024: 5.6e-13 for wls at lambda
    1, 2.6e-12 in wls_enhance's output, 2.2e-12 when the refinement waited for a correction
    below REFINE_TOL). Stopping on the predicted error saves one triangular solve of the 4-5
    per system (issue 28). :meth:`solve` returns ``NOT_CONVERGED`` when the
    refinement does not converge (conditioning too poor for float32); the caller then uses a
    float64 handle.
    """

    #: Accept the refined solution when the error left in it (the last correction, or the next
    #: one predicted from the last two) is at most this, relative to it.
    REFINE_TOL = 1e-12
    #: A correction that no longer halves is the float64 rounding floor when it is at most
    #: this relative size (accept), else a refinement that does not converge (give up).
    REFINE_FLOOR = 1e-9
    REFINE_MAX_STEPS = 12
    NOT_CONVERGED = "not converged"

    def __init__(self, h: int, w: int, single: bool = False, nthreads: int | None = None):
        self.h, self.w = h, w
        indptr, indices = grid_pattern(h, w)
        # the analysis matrix: the 5-point Laplacian of unit weights plus I
        data = np.full(indices.shape[0], -1.0)
        data[indptr[:-1]] = 5.0
        super().__init__(indptr, indices, data, ordering="min-degree", single=single,
                         nthreads=nthreads)

    def solve(self, data: np.ndarray, b: np.ndarray):
        """x with A x = b, None if this handle was released (evicted) meanwhile, or
        ``NOT_CONVERGED`` (float32 handles) when the refinement does not converge."""
        if not self.single:
            return super().solve(data, b)
        data = np.ascontiguousarray(data, dtype=np.float64)
        b = np.ascontiguousarray(b, dtype=np.float64)
        with self.lock:
            if not self.alive:
                return None
            return self._solve_refined(data, b)

    def _solve_refined(self, data, b):
        """Float32 Cholesky + float64 iterative refinement (the lock is held)."""
        d32 = data.astype(np.float32)
        try:
            self._call(22, d32, None, None)  # numeric factorisation only
        except RuntimeError:  # e.g. a float32 pivot lost to rounding: let float64 do it
            return self.NOT_CONVERGED
        x = np.zeros_like(b)
        r = b.astype(np.float32)  # the residual b - A x, computed in float64, stored in float32
        dx = np.zeros(self.n, np.float32)
        prev = np.inf
        for _ in range(self.REFINE_MAX_STEPS):
            self._call(33, d32, r, dx)  # forward/backward solve
            step, size = _add_correction(x, dx)
            if not np.isfinite(step) or not np.isfinite(size):
                return self.NOT_CONVERGED
            if step <= self.REFINE_TOL * size:
                return x
            if step > 0.5 * prev:  # no longer converging: at the rounding floor, or diverging
                return x if step <= self.REFINE_FLOOR * size else self.NOT_CONVERGED
            # the corrections shrink geometrically, by q = step/prev each: the error left in x
            # (the next correction) is about q * step; accept x when that meets the tolerance
            # (from the second correction on: the first is the whole float32 solution)
            if prev < np.inf and step * step <= self.REFINE_TOL * size * prev:
                return x
            prev = step
            _grid_residual(self.h, self.w, self.indptr, data, x, b, r)
        return self.NOT_CONVERGED


class HandleCache:
    """A least-recently-used cache of PARDISO handles (:class:`PardisoSPD`) by key.

    ``too_many(handles)`` says, after an insertion, whether the oldest handle must go (it is
    read at each insertion, so module-level limits can change); the newest is always kept.
    Handles are built outside the lock (the analysis takes time); an evicted handle is released,
    and a solve on it returns None, so callers fetch again (:meth:`solve`).
    """

    def __init__(self, too_many):
        self.handles: OrderedDict = OrderedDict()
        self.lock = threading.Lock()
        self.too_many = too_many

    def get(self, key, make):
        """The handle for ``key``, built by ``make()`` when it is not cached."""
        with self.lock:
            hd = self.handles.get(key)
            if hd is not None:
                self.handles.move_to_end(key)
                return hd
        hd = make()  # analysis outside the lock
        evicted = []
        with self.lock:
            other = self.handles.get(key)
            if other is not None:  # another thread built it meanwhile: keep theirs
                evicted.append(hd)
                hd = other
            else:
                self.handles[key] = hd
                while len(self.handles) > 1 and self.too_many(self.handles):
                    evicted.append(self.handles.popitem(last=False)[1])
        for e in evicted:
            e.release()
        return hd

    def solve(self, key, make, data, b):
        """``get(key, make).solve(data, b)``, fetched again if another thread evicted the
        handle between the fetch and the solve."""
        while True:
            x = self.get(key, make).solve(data, b)
            if x is not None:
                return x

    def clear(self) -> None:
        """Release every handle."""
        with self.lock:
            handles = list(self.handles.values())
            self.handles.clear()
        for hd in handles:
            hd.release()


#: The grid handles of :func:`solve_grid_spd`, by (h, w, single).
_GRID_HANDLES = HandleCache(lambda hs: len(hs) > CACHE_ENTRIES
                            or sum(k[0] * k[1] for k in hs) > CACHE_PIXELS)
_HANDLES = _GRID_HANDLES.handles


def clear_cache() -> None:
    """Release every cached PARDISO analysis/factor and grid pattern."""
    _GRID_HANDLES.clear()
    with _CACHE_LOCK:
        _PATTERNS.clear()


# --------------------------------------------------------------------------- public solve
def solve_grid_spd(h: int, w: int, data: np.ndarray, b: np.ndarray, *,
                   backend: str = "auto") -> np.ndarray:
    """Solve ``A x = b`` for the SPD grid matrix whose upper-CSR values are ``data``.

    Parameters
    ----------
    h, w : grid shape; ``data`` follows :func:`grid_pattern` ``(h, w)``.
    data : float64 values of the upper triangle in that pattern's order. ``A`` must be SPD.
    b : float64 right-hand side of length ``h*w`` (column-major pixel order).
    backend : ``"auto"`` (PARDISO if available, else SciPy), ``"pardiso"`` or ``"scipy"``.

    Returns
    -------
    x : float64 array of length ``h*w``.
    """
    if _use_pardiso(backend):
        return _solve_pardiso(h, w, data, b)
    a = _full_csc(h, w, np.asarray(data, dtype=np.float64))
    lu = spla.splu(a, permc_spec="MMD_AT_PLUS_A", diag_pivot_thresh=0.0,
                   options={"SymmetricMode": True})
    return lu.solve(np.asarray(b, dtype=np.float64))


def solve_grid_spd_many(h: int, w: int, systems, *, backend: str = "auto",
                        workers: int = 1) -> list[np.ndarray]:
    """Solve independent systems ``[(data, b), ...]`` of one grid shape; their ``x``, in order.

    ``workers > 1`` (PARDISO only): up to that many systems are solved at the same time, on
    Python threads (PARDISO runs without the GIL), each worker with a handle of its own (cache
    slot 1, 2, ...) pinned to ``max(1, MKL threads // workers)`` threads. One factorisation on
    two MKL threads costs more CPU than on one (1.5 s against 1.23 s at 1024x1024 here: its
    threads wait on each other), independent factorisations do not wait; each worker's factor
    needs its own memory, so the caller chooses ``workers`` (``operators.wls`` from the memory
    available). Same results as one after the other, to rounding (identical at 1024x1024).
    """
    systems = list(systems)
    workers = min(int(workers), len(systems))
    if workers < 2 or not _use_pardiso(backend):
        return [solve_grid_spd(h, w, d, b, backend=backend) for d, b in systems]
    nthreads = max(1, pardiso_threads() // workers)
    from concurrent.futures import ThreadPoolExecutor

    import numba

    numba_threads = numba.get_num_threads()  # thread-local: the workers take the caller's

    def run(slot):  # worker ``slot`` solves systems slot-1, slot-1+workers, ... in turn
        numba.set_num_threads(numba_threads)
        return [(i, _solve_pardiso(h, w, *systems[i], slot=slot, nthreads=nthreads))
                for i in range(slot - 1, len(systems), workers)]

    out = [None] * len(systems)
    with ThreadPoolExecutor(workers) as ex:
        for part in ex.map(run, range(1, workers + 1)):
            for i, x in part:
                out[i] = x
    return out


def pardiso_threads() -> int:
    """MKL's thread count in force in this thread now (what a new PARDISO handle would use);
    1 where PARDISO is unavailable."""
    mkl = _load_mkl()
    return max(1, int(mkl.get_max_threads())) if mkl else 1


def _use_pardiso(backend: str) -> bool:
    """Whether ``backend`` means PARDISO here (``"auto"``: when it loads); raises on a bad name
    or on ``"pardiso"`` where MKL is missing."""
    if backend not in ("auto", "pardiso", "scipy"):
        raise ValueError(f"backend must be 'auto', 'pardiso' or 'scipy', got {backend!r}")
    if backend == "pardiso" and not pardiso_available():
        raise RuntimeError("MKL PARDISO is unavailable (pip install pypardiso on x86-64 "
                           "Linux/Windows), use backend='scipy'")
    return backend == "pardiso" or (backend == "auto" and pardiso_available())


def _solve_pardiso(h: int, w: int, data, b, slot: int = 0, nthreads: int | None = None):
    """One PARDISO solve with the cached handle of ``(h, w, single)`` (slot 0) or of a worker's
    slot ``(h, w, single, slot)``; float32 factor first where it can hold the conditioning."""
    h, w = int(h), int(w)
    data = np.ascontiguousarray(data, dtype=np.float64)
    # float32 factor + float64 refinement where float32 can hold the conditioning: A = I +
    # a weighted Laplacian has eigenvalues in [1, 2 max(diag) - 1] (Gershgorin), so the
    # refinement contracts by at most ~2 max(diag) * 6e-8 per step (<= 0.06 here).
    single = float(data[grid_pattern(h, w)[0][:-1]].max()) <= SINGLE_MAX_DIAGONAL
    for sgl in ((True, False) if single else (False,)):
        key = (h, w, sgl) + ((slot,) if slot else ())
        x = _GRID_HANDLES.solve(key, lambda: _PardisoGrid(h, w, sgl, nthreads), data, b)
        if x is not _PardisoGrid.NOT_CONVERGED:  # else float32 was not enough: float64
            return x
    raise AssertionError("a float64 handle always converges")  # pragma: no cover
