"""Photographic style transfer with the fast local Laplacian filter, as the authors'
``style_transfer.m`` (fast_LLF_tog_14) computes it (TPAMI Table 6's "style transfer")."""
from __future__ import annotations

import hashlib
import os
from functools import lru_cache

import numpy as np

from ._color import rgb2gray
from ._io import ImageReadError, display, read_image
from ._memory import tune_malloc
from ._validate import as_count, as_float_image, restore_shape

__all__ = ["style_transfer", "load_exemplar", "exemplar_info", "DEFAULT_EXEMPLAR"]

#: The default exemplar: scikit-image's ``camera`` (see :func:`load_exemplar`).
DEFAULT_EXEMPLAR = "skimage.data.camera"

#: Bins of the two histograms of the transfer function (``hist`` centres linspace(0, 1, K)).
BINS_SOURCE = 256
BINS_TARGET = 65536


def style_transfer(image, *, exemplar=None, n_samples: int = 20, iterations: int = 3) -> np.ndarray:
    """Give a photograph the tonal look of an exemplar: its global tones and its local texture.

    The fast local Laplacian filter (Aubry et al. 2014) as used in their style-transfer demo, a
    fast variant of Bae et al.'s two-scale tone transfer:

    1. Oi = ap(I, tf(I, M)): match the histogram of the gray input I to that of the exemplar M.
    2. ``iterations`` times: f = tf(|∇Oi|, |∇M|), the curve that gives Oi's gradient magnitudes
       the exemplar's distribution; Og = the fast LLF of Oi with N samples r_k and the remapping
       r_k ↦ sign(Oi − r_k)·f(|255·(Oi − r_k)|) (the *detail* is remapped, so local contrast
       takes the exemplar's texture statistics); rescale Og to [0, 1]; re-match its histogram to
       M's.

    tf(A, B) is the 256-entry table j*/65536 with j* the first index where the cumulative
    65536-bin histogram of B reaches that of A's 256-bin histogram (MATLAB ``hist`` semantics:
    bins split at the midpoints of linspace(0, 1, K), a value on a midpoint goes to the lower bin,
    outer bins open-ended); ap(A, f) looks A up in f with the reference's doubly-divided
    interpolation weight; |∇X| uses forward differences without padding ((H−1)x(W−1)); the LLF
    pyramid starts from the Laplacian of Oi (as ``llf.m``), 5-tap filter, reweighted borders.
    All of it follows ``shared/docs/operators_extra.md`` §4 and §0.4.

    Parameters
    ----------
    image : ndarray
        HxWx3 RGB (filtered as ``rgb2gray``, MATLAB's exact weights), HxW or HxWx1 gray; uint8
        (read as x/255) or float in [0, 1].
    exemplar : ndarray or str or os.PathLike, optional
        The style image M: an array (uint8 or float in [0, 1], gray or RGB; RGB goes through
        ``rgb2gray``) or the path of an 8-bit image file. ``None`` (default) uses
        scikit-image's bundled ``camera`` photograph (512x512), see :func:`load_exemplar`.
        The reference outputs used the authors' ``ruins.png`` (``demo_style_transfer.m``),
        which the project does not ship: pass its path to reproduce them.
    n_samples : int, default 20
        Number N >= 2 of LLF intensity samples linspace(0, 1, N) (the reference's 20).
    iterations : int, default 3
        Number of gradient-transfer LLF passes (the reference's 3; 0 gives the plain histogram
        match).

    Returns
    -------
    ndarray
        float64 in [0, 1]: HxWx3 with three equal channels for RGB input (as the reference writes
        its output), otherwise the input's gray layout (HxW or HxWx1).

    Notes
    -----
    Speed: the LLF passes run on the fused streaming kernels of :mod:`operators.llf` with the
    table remapping (:mod:`operators._llf_general_kernels`); the histograms are single Numba
    passes that place each value by arithmetic and correct the bin with the exact midpoint
    comparisons; the exemplar's two 65536-bin cumulative histograms are cached per exemplar
    content (a hash of M), so a dataset pays for them once.

    Fidelity: the transfer tables come from histogram bins and ``≥`` comparisons of cumulative
    sums, and ``ap`` floors 255·A, so a one-ulp difference can move a pixel by a table step.
    Against the reference outputs (with the authors' exemplar) at least 99.9 % of uint8 pixels
    agree (see ``tests/test_op_style.py``), not 1e-12.

    A flat image (max Og = min Og) would make the reference divide 0 by 0 and fail on NaN
    indices; here the rescaled image is 0 there instead.

    References
    ----------
    M. Aubry, S. Paris, S. W. Hasinoff, J. Kautz, F. Durand. Fast Local Laplacian Filters:
    Theory and Applications. ACM TOG 33(5), 2014. doi:10.1145/2629645

    S. Bae, S. Paris, F. Durand. Two-scale Tone Management for Photographic Look. ACM TOG 25(3)
    (SIGGRAPH 2006). doi:10.1145/1141911.1141935

    Examples
    --------
    >>> import numpy as np
    >>> from operators.style import style_transfer
    >>> rng = np.random.default_rng(0)
    >>> img = rng.integers(0, 256, (24, 32, 3), dtype=np.uint8)
    >>> ex = np.linspace(0, 1, 64 * 64).reshape(64, 64) ** 2     # a dark-heavy exemplar
    >>> out = style_transfer(img, exemplar=ex, iterations=1)
    >>> out.shape, bool(np.array_equal(out[..., 0], out[..., 2]))
    ((24, 32, 3), True)
    >>> bool(out.min() >= 0 and out.max() <= 1)
    True
    """
    tune_malloc()
    img, was_2d = as_float_image(image)
    n_samples = as_count(n_samples, name="style n_samples", minimum=2)
    iterations = as_count(iterations, name="style iterations", minimum=0)
    model = _exemplar(exemplar)
    key = hashlib.blake2b(np.ascontiguousarray(model).view(np.uint8),
                          digest_size=16, person=repr(model.shape).encode()[:16]).digest()
    cdf_m, cdf_gm = _exemplar_cdfs(key, model)

    rgb = img.shape[2] == 3
    gray = rgb2gray(img) if rgb else np.ascontiguousarray(img[:, :, 0])
    out = _style(gray, cdf_m, cdf_gm, n_samples, iterations)
    if rgb:
        return np.repeat(out[:, :, None], 3, axis=2)
    return restore_shape(out[:, :, None], was_2d)


def load_exemplar(exemplar=None) -> np.ndarray:
    """The style exemplar M as a float64 HxW gray image in [0, 1].

    ``None`` gives scikit-image's ``camera`` (``skimage.data.camera()``, 512x512, bundled with
    the wheel: no download). It was chosen because, like the authors' exemplar (a
    black-and-white photograph of temple ruins with dense stone texture), it is a genuine
    black-and-white photograph with a full tonal range, deep shadows and fine texture (grass,
    coat), so both the tone curve and the gradient statistics it transfers are those of a
    photographic "look" rather than of a synthetic texture.

    An array is read like an operator input (uint8 as x/255, float in [0, 1]; RGB through
    MATLAB's ``rgb2gray``), as ``rgb2gray(double(imread(...))/255)`` in ``demo_style_transfer.m``.
    A path is read by :func:`read_exemplar_file` (the project's one image reader, any file
    name); only 8-bit gray, RGB or RGBA files (alpha dropped) are accepted.
    """
    return np.array(_exemplar(exemplar), copy=True)


def exemplar_info(exemplar=None) -> dict:
    """What identifies an exemplar in a dataset's metadata: ``{"name", "sha256", "shape"}``.

    ``name`` is ``DEFAULT_EXEMPLAR`` for ``None``, the file name for a path, ``"array"``
    otherwise; ``sha256`` is the hash of M as :func:`load_exemplar` returns it (float64,
    C order), so the same picture given as a file or as an array has the same hash.
    """
    m = _exemplar(exemplar)
    if exemplar is None:
        name = DEFAULT_EXEMPLAR
    elif isinstance(exemplar, (str, os.PathLike)):
        name = os.path.basename(os.fspath(exemplar))
    else:
        name = "array"
    return {"name": name, "sha256": hashlib.sha256(m.tobytes()).hexdigest(),
            "shape": tuple(int(v) for v in m.shape)}


def _exemplar(exemplar) -> np.ndarray:
    """M, possibly a cached read-only array."""
    if exemplar is None:
        return _default_exemplar()
    if isinstance(exemplar, (str, os.PathLike)):
        p = os.path.abspath(os.fspath(exemplar))
        if not os.path.exists(p):
            raise ValueError(f"style exemplar file not found: {display(p)!r}")
        st = os.stat(p)
        return _read_exemplar_file(p, st.st_mtime_ns, st.st_size)
    return _gray(exemplar)


def _gray(exemplar) -> np.ndarray:
    """M of an exemplar array (the one conversion of arrays and of files' pixels)."""
    m, _ = as_float_image(exemplar, name="style exemplar")
    return rgb2gray(m) if m.shape[2] == 3 else np.ascontiguousarray(m[:, :, 0])


@lru_cache(maxsize=1)
def _default_exemplar() -> np.ndarray:
    from skimage import data

    m = data.camera() / 255.0
    m.setflags(write=False)
    return m


@lru_cache(maxsize=8)
def _read_exemplar_file(p: str, mtime_ns: int, size: int) -> np.ndarray:
    """M from an image file, cached per (path, modification time, size): read-only."""
    del mtime_ns, size  # only the cache key: a changed file is read again
    m = _gray(read_exemplar_file(p))
    m.setflags(write=False)
    return m


def read_exemplar_file(path) -> np.ndarray:
    """The pixels of an exemplar file as the operator takes them: uint8, HxW gray or HxWx3 RGB
    (alpha dropped). ``load_exemplar(path)`` is ``load_exemplar(read_exemplar_file(path))``, so a
    caller may read a file once and pass the array on (``datagen`` sends it to its workers).

    Read by the project's one image reader (:mod:`operators._io`: a regular file's bytes,
    capped, decoded by ``cv2.imdecode``; any file name; EXIF orientation ignored, as MATLAB);
    a ``ValueError`` says why a file cannot be used.
    """
    try:
        arr = read_image(path)
    except ImageReadError as exc:
        raise ValueError(f"style exemplar {display(path)!r} is not a usable image "
                         f"({exc.reason})") from None
    if arr.dtype != np.uint8:
        raise ValueError(f"style exemplar {display(path)!r} has {arr.dtype} samples; use an "
                         "8-bit image (or pass the array yourself, as float in [0, 1])")
    if arr.ndim == 3:
        if arr.shape[2] == 4:
            arr = arr[:, :, :3]
        if arr.shape[2] == 3:
            arr = arr[:, :, ::-1]  # OpenCV's BGR -> RGB
        else:  # gray with alpha
            arr = arr[:, :, 0]
    return np.ascontiguousarray(arr)


def _edges(k: int) -> np.ndarray:
    """Bin boundaries of MATLAB ``hist(y, linspace(0, 1, k))``: midpoints of the centres."""
    c = np.linspace(0.0, 1.0, k)
    return (c[:-1] + c[1:]) / 2.0


@lru_cache(maxsize=None)
def _edges_cached(k: int) -> np.ndarray:
    e = _edges(k)
    e.setflags(write=False)
    return e


def _cdf(counts: np.ndarray) -> np.ndarray:
    """cumsum(h)/sum(h) in float64 (exact integer sums, one division)."""
    c = np.cumsum(counts).astype(np.float64)
    return c / c[-1]


_CDF_CACHE: dict[bytes, tuple[np.ndarray, np.ndarray]] = {}
_CDF_CACHE_SIZE = 8


def _exemplar_cdfs(key: bytes, model: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The 65536-bin cdfs of M and of |∇M|, cached by ``key`` (a hash of M's content and shape)."""
    from ._style_kernels import gradient_magnitude, hist_counts

    hit = _CDF_CACHE.get(key)
    if hit is not None:
        return hit
    nc = _nchunks()
    edges = _edges_cached(BINS_TARGET)
    cdf_m = _cdf(hist_counts(model, edges, nc))
    cdf_gm = _cdf(hist_counts(gradient_magnitude(model, nc), edges, nc))
    for a in (cdf_m, cdf_gm):
        a.setflags(write=False)
    if len(_CDF_CACHE) >= _CDF_CACHE_SIZE:
        _CDF_CACHE.pop(next(iter(_CDF_CACHE)))
    _CDF_CACHE[key] = (cdf_m, cdf_gm)
    return cdf_m, cdf_gm


def _transfer(a: np.ndarray, cdf_target: np.ndarray) -> np.ndarray:
    """tf(A, B) with B's cdf given, plus f(257) = 1: 257 entries j*/65536."""
    from ._style_kernels import hist_counts

    cdf1 = _cdf(hist_counts(a, _edges_cached(BINS_SOURCE), _nchunks()))
    j = np.searchsorted(cdf_target, cdf1, side="left")  # first j with cdf2[j] >= cdf1[i]
    f = np.empty(BINS_SOURCE + 1)
    f[:-1] = (j + 1) / float(BINS_TARGET)
    f[-1] = 1.0
    return f


def _style(gray, cdf_m, cdf_gm, n_samples, iterations):
    from ._llf_general_kernels import MODE_TABLE, run_llf
    from ._style_kernels import apply_table, gradient_magnitude, normalise

    nc = _nchunks()
    refs = np.linspace(0.0, 1.0, n_samples)
    oi = apply_table(gray, _transfer(gray, cdf_m), nc)
    for _ in range(iterations):
        f = _transfer(gradient_magnitude(oi, nc), cdf_gm)
        og = run_llf(oi, oi.reshape(oi.shape + (1,)), refs, MODE_TABLE, f, nc)[:, :, 0]
        oi = normalise(og, nc)
        oi = apply_table(oi, _transfer(oi, cdf_m), nc)
    return oi


def _nchunks() -> int:
    import numba

    return 4 * numba.get_num_threads()
