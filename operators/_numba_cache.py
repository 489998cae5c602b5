"""Numba's on-disk kernel cache, made stale by an edit of *any* source file of the package.

Numba keys a cached kernel (``@njit(cache=True)``) on its own source file only: a kernel that
calls a jitted helper from another file keeps the machine code compiled from the helper's old
source after the helper is edited, in every later process, until the cache files are removed
(the fix proposed upstream, numba/numba pull requests 8396 and 9563, "Extend cache invalidation
to include changes in other files", was not merged; Numba 0.68's stamp hashes the one file). Here
that would silently run stale code: ``wls_enhance``'s tone maps inline ``_lab``'s sRGB encoding,
BGU's kernels sit beside the operators' solver, and ``tox`` keeps one Numba cache across runs
(``NUMBA_CACHE_DIR = {envdir}/numba_cache``).

:func:`install` (called by :mod:`operators._jit`, where every cached kernel gets ``njit``)
puts locators in front of Numba's own for the files of the packages given to :func:`register`
(``operators``, here; ``model``, by its ``__init__``, with ``operators`` as a source it builds
on): the same cache folders as Numba's own locators (user-provided, in-tree, user-wide, in that
order), but the freshness stamp of a kernel is the SHA-256 of every ``.py`` file of its package
and of the packages it builds on, so an edit anywhere in them recompiles the package's kernels
once, on their next call.
Numba's private locator API is pinned with Numba itself (``constraints.txt``); where it is
missing (another Numba) nothing is installed and Numba's per-file stamp applies
(:func:`installed` says which; a test checks it is installed with the pinned Numba).
"""
from __future__ import annotations

import hashlib
import threading
from pathlib import Path

#: the ``operators`` package's folder (registered at the end of this module)
PACKAGE = Path(__file__).resolve().parent
#: package folder -> the folders whose ``.py`` files make its kernels' stamp (itself first)
_ROOTS: dict[Path, tuple[Path, ...]] = {}
_STAMPS: dict[Path, str] = {}
_LOCK = threading.Lock()
_INSTALLED: list = []


def register(package: str | Path, *builds_on: str | Path) -> None:
    """Stamp the kernels defined in ``package`` (a folder; not its sub-folders) with the sources
    of ``package`` and of each folder of ``builds_on``."""
    root = Path(package).resolve()
    with _LOCK:
        _ROOTS[root] = (root, *(Path(p).resolve() for p in builds_on))
        _STAMPS.pop(root, None)


def sources_digest(*folders: Path) -> str:
    """SHA-256 over the ``.py`` files directly in ``folders`` (each file's folder position, name,
    length and bytes, in sorted order), as hex."""
    h = hashlib.sha256()
    for i, folder in enumerate(folders):
        for path in sorted(Path(folder).glob("*.py")):
            data = path.read_bytes()
            h.update(f"{i}/{path.name}/{len(data)}\n".encode())
            h.update(data)
    return h.hexdigest()


def _root_of(py_file: str) -> Path | None:
    try:
        parent = Path(py_file).resolve().parent
    except (OSError, RuntimeError):
        return None
    return parent if parent in _ROOTS else None


def stamp(root: Path) -> str:
    """The freshness stamp of the kernels of registered package ``root`` (computed once per
    process)."""
    with _LOCK:
        if root not in _STAMPS:
            _STAMPS[root] = sources_digest(*_ROOTS[root])
        return _STAMPS[root]


def _package_locator(base: type) -> type:
    """``base`` (one of Numba's source-file locators) for the registered packages' files only,
    stamped with :func:`stamp`."""

    class PackageSourcesLocator(base):
        @classmethod
        def from_function(cls, py_func, py_file):
            root = _root_of(py_file)
            if root is None:
                return None  # not ours: Numba's own locators decide
            self = super().from_function(py_func, py_file)
            if self is not None:
                self._package_root = root
            return self

        def get_source_stamp(self):
            return ("decouple-ops package sources", stamp(self._package_root))

    PackageSourcesLocator.__name__ = PackageSourcesLocator.__qualname__ = \
        f"PackageSources{base.__name__}"
    return PackageSourcesLocator


def install() -> bool:
    """Put the package locators in front of Numba's (idempotent). True when installed."""
    with _LOCK:
        if _INSTALLED:
            return True
        try:
            from numba.core import caching

            classes = caching.CacheImpl._locator_classes
            bases = [caching.UserProvidedCacheLocator, caching.InTreeCacheLocator,
                     caching.UserWideCacheLocator]
            if not all(isinstance(b, type) and hasattr(b, "get_source_stamp") for b in bases):
                return False
        except (ImportError, AttributeError):
            return False
        ours = [_package_locator(b) for b in bases]
        classes[:0] = ours
        _INSTALLED.extend(ours)
        return True


def installed() -> bool:
    """Whether :func:`install` put the package locators in front of Numba's."""
    return bool(_INSTALLED)


register(PACKAGE)
