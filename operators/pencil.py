"""Colour pencil drawing (Lu, Xu, Jia, NPAR 2012), as the paper's data generator runs it.

Operator ``pencil`` of Fan et al. (TPAMI 2019, Table 6): ``PencilDrawing(I, 8, 1, 8, 1, 1)`` of the
authors' ``PencilDrawing_NPAR_12`` code. Implemented from the written description in
``shared/docs/operators_extra.md`` §5 (no MATLAB code copied). On Y of MATLAB's YCbCr:

1. stroke map S: 3x3 median (zero padding), forward-difference gradient magnitude E, each pixel
   classified to the direction n (of 8) whose rotated line kernel responds most, and the strokes
   drawn as Σₙ conv2(E·[class = n], thick line kernel n), normalised, S = 1 − Sp;
2. tone map J: histogram matching of Y to the paper's three-part pencil-drawing histogram
   (bright layer, mild mid-tones, dark layer) with MATLAB's ``histeq(Y, hgram)``, then a 10x10
   box average (zero padding);
3. texture T = P^β: the pencil texture P shrunk to the image size (MATLAB's antialiased bicubic
   ``imresize``) and β from ``min θ‖∇β‖² + ‖β·ln P − ln J‖²`` by MATLAB's ``pcg``
   (tolerance 1e-6, 60 iterations, minimum-residual iterate);
4. Y ← S·T, colour restored with ``ycbcr2rgb`` (clipped).
"""
from __future__ import annotations

import hashlib
import math
import os
from functools import lru_cache
from pathlib import Path

import cv2
import numpy as np

from . import _pencil_kernels as pk
from ._color import rgb2gray, rgb2ycbcr, ycbcr2rgb
from ._io import ImageReadError, display, read_image
from ._imresize import imresize
from ._validate import as_count, as_float_image, as_positive
from ._memory import tune_malloc

__all__ = ["pencil_drawing", "procedural_texture", "load_texture", "texture_id",
           "tone_histogram", "histeq_target", "stroke_map", "tone_map", "texture_map"]

#: Weight of the smoothness term of the texture rendering (the paper's λ, the file's θ).
THETA = 0.2
#: MATLAB ``pcg`` settings of the texture solve.
PCG_TOL = 1e-6
PCG_MAXIT = 60
#: Size of the box filter smoothing the tone map.
TONE_BOX = 10
#: Version tag of :func:`procedural_texture` (part of :func:`texture_id`).
PROCEDURAL_VERSION = "procedural-hatching-v1"

_PROC_SHAPE = (730, 1095)  # the authors' pencil0.jpg size (rows, cols)
_PROC_SEED = 20120604      # NPAR 2012, fixed: the texture is a deterministic constant


# --------------------------------------------------------------------------- tone
def tone_histogram() -> np.ndarray:
    """The target histogram p(v), v = 0..255, of the pencil tone map (sums to 1).

    ``p(v) ∝ ω₁/σ_b·e^(−(255−v)/σ_b) + ω₂·u(v) + ω₃/√(2π·σ_d)·e^(−(v−μ_d)²/(2σ_d²))`` with the
    file's final parameters Ub = 225, Ua = 105, μ_d = 90, σ_b = 9, σ_d = 11, ω = (76, 22, 2), u the
    uniform density on [Ua, Ub] (note √(2π·σ_d), as the file has it).
    """
    ub, ua, mud, deltab, deltad = 225.0, 105.0, 90.0, 9.0, 11.0
    om1, om2, om3 = 76.0, 22.0, 2.0
    v = np.arange(256, dtype=np.float64)
    bright = om1 * (1.0 / deltab * np.exp(-(255.0 - v) / deltab))
    mid = om2 * np.where((v >= ua) & (v <= ub), 1.0 / (ub - ua), 0.0)
    dark = om3 * (1.0 / np.sqrt(2.0 * np.pi * deltad)
                  * np.exp(-(v - mud) ** 2 / (2.0 * deltad ** 2)))
    p = 0.01 * (bright + mid + dark)
    return p / p.sum()


def histeq_target(y: np.ndarray, hgram: np.ndarray) -> np.ndarray:
    """MATLAB ``histeq(y, hgram)`` of a double image in [0, 1] (256 input bins).

    Bins ``floor(clip(y)·255 + 0.5)``; cumulative counts C; target scaled to the pixel count and
    accumulated, Q; ``err(k, j) = Q_k − C_j + c_j/2`` (no half-count at the two end bins), entries
    below ``−N·sqrt(eps)`` replaced by N; bin j maps to ``(first argmin_k err(k, j))/(m − 1)``.
    """
    y = np.asarray(y, dtype=np.float64)
    n_pix = y.size
    bins = np.floor(np.clip(y, 0.0, 1.0) * 255.0 + 0.5).astype(np.int64)
    counts = np.bincount(bins.ravel(), minlength=256).astype(np.float64)
    cum = np.cumsum(counts)
    hgram = np.asarray(hgram, dtype=np.float64)
    m = hgram.size
    cumd = np.cumsum(hgram * (n_pix / hgram.sum()))
    tol = counts / 2.0
    tol[0] = 0.0
    tol[-1] = 0.0
    err = (cumd[:, None] - cum[None, :]) + tol[None, :]
    err[err < -n_pix * math.sqrt(np.finfo(np.float64).eps)] = n_pix
    lut = np.argmin(err, axis=0).astype(np.float64) / (m - 1)
    return lut[bins]


def tone_map(y: np.ndarray) -> np.ndarray:
    """J: the histogram-matched luma, box-averaged (10x10, zero padding)."""
    j0 = histeq_target(y, tone_histogram())
    return pk.box_filter_zero(np.ascontiguousarray(j0), TONE_BOX)


# --------------------------------------------------------------------------- strokes
@lru_cache(maxsize=8)
def _taps(ks: int, width: int, n_dir: int):
    thin = pk.stroke_taps(ks, 0, n_dir)
    thick = pk.stroke_taps(ks, width, n_dir)
    return thin, thick


def stroke_map(y: np.ndarray, ks: int = 8, width: int = 1, n_dir: int = 8) -> np.ndarray:
    """S = 1 − normalised Σₙ conv2(E·[class = n], K'ₙ) (the paper's line-drawing step).

    A constant image (no gradient anywhere) gives S = 1 (MATLAB would divide 0 by 0).
    """
    y1 = pk.medfilt3_zero(np.ascontiguousarray(y, dtype=np.float64))
    e = pk.edge_magnitude(y1)
    (o0, w0, c0), (o1, w1, c1) = _taps(ks, width, n_dir)
    idx = pk.direction_index(e, o0, w0, c0, ks)
    sp = pk.stroke_scatter(e, idx, o1, w1, c1, ks)
    lo, hi = sp.min(), sp.max()
    if hi > lo:
        sp = (sp - lo) / (hi - lo)
    else:
        sp = np.zeros_like(sp)
    return 1.0 - sp


# --------------------------------------------------------------------------- texture
@lru_cache(maxsize=1)
def _procedural_base() -> np.ndarray:
    rng = np.random.default_rng(_PROC_SEED)
    h, w = _PROC_SHAPE

    def streaks(angle, length, weight):
        # white noise smeared along a direction: pencil strokes of random darkness
        k = pk.imrotate_bilinear_crop(pk.line_kernel(length // 2, 0), angle)
        k /= k.sum()
        noise = rng.standard_normal((h, w))
        s = cv2.filter2D(noise, -1, k, borderType=cv2.BORDER_REFLECT)
        return weight * s / s.std()

    layer = (streaks(97.0, 60, 1.0) + streaks(83.0, 44, 0.8) + streaks(135.0, 36, 0.7)
             + streaks(30.0, 30, 0.55))
    layer /= layer.std()
    strokes = np.tanh(1.5 * layer)  # soft threshold: graphite on the ridges of the paper
    grain = cv2.GaussianBlur(rng.standard_normal((h, w)), (0, 0), 0.7,
                             borderType=cv2.BORDER_REFLECT)
    grain /= grain.std()
    # faint low-frequency shading: blurred noise on an 8x coarser grid (σ = 60 px at full size)
    shade = cv2.GaussianBlur(rng.standard_normal(((h + 7) // 8, (w + 7) // 8)), (0, 0), 7.5,
                             borderType=cv2.BORDER_REFLECT)
    shade = cv2.resize(shade, (w, h), interpolation=cv2.INTER_LINEAR)
    shade /= shade.std()
    t = strokes + 0.45 * grain
    t = 0.68 - 0.075 * (t - t.mean()) / t.std() + 0.02 * shade
    # an 8-bit gray image, like a scanned texture (and bit-stable across platforms)
    q = np.floor(np.clip(t, 0.25, 0.96) * 255.0 + 0.5) / 255.0
    q.flags.writeable = False
    return q


def procedural_texture() -> np.ndarray:
    """The default pencil texture: a deterministic, procedurally generated 730x1095 gray image.

    Four layers of oriented strokes (white noise smeared by line kernels of 30-60 px at 97°, 83°,
    135° and 30°, the cross-hatching of a shaded pencil patch) pass a soft threshold (tanh), get
    fine isotropic paper grain (Gaussian-blurred noise, σ = 0.7 px) and a faint low-frequency
    shading (σ = 60 px), and are mapped to mean 0.68, spread ~0.075 (the statistics of the
    authors' ``pencil0.jpg``: mean 0.68, 1-99 % range 0.49-0.82), clipped to [0.25, 0.96] and
    quantised to 8 bits. Fixed seed: the same array on every call and platform (up to OpenCV
    filtering rounding that the quantisation absorbs). Values are strictly positive (the
    rendering takes ``ln P``). Returns a read-only float64 array.
    """
    return _procedural_base()


def read_texture_file(path) -> np.ndarray:
    """The pixels of a texture file as the operator takes them: uint8 (8-bit files) or float64
    in [0, 1] (16-bit files, x/65535), HxW gray or HxWx3 RGB (alpha dropped).
    ``load_texture(path)`` is ``load_texture(read_texture_file(path))``, so a caller may read a
    file once and pass the array on (``datagen`` sends it to its workers).

    Read by the project's one image reader (:mod:`operators._io`: a regular file's bytes,
    capped, decoded by ``cv2.imdecode``, libjpeg-turbo: the same pixels as MATLAB/Octave for the
    authors' ``pencil0.jpg``; any file name; no EXIF rotation, as MATLAB).
    """
    try:
        img = read_image(path)
    except ImageReadError as exc:
        raise ValueError(f"pencil texture {display(path)} is not a readable image "
                         f"({exc.reason})") from None
    if img.dtype == np.uint16:
        img = img.astype(np.float64) / 65535.0
    elif img.dtype != np.uint8:
        raise ValueError(f"pencil texture {display(path)} has unsupported pixel type {img.dtype}")
    if img.ndim == 3:
        if img.shape[2] == 4:
            img = img[:, :, :3]
        img = img[:, :, ::-1] if img.shape[2] == 3 else img[:, :, 0]  # BGR -> RGB
    return np.ascontiguousarray(img)


def _read_texture_file(path: Path) -> np.ndarray:
    if not path.exists():
        raise ValueError(f"pencil texture file not found: {display(path)}")
    return _texture_array(read_texture_file(path))


@lru_cache(maxsize=4)
def _file_texture(path: str, mtime_ns: int, size: int) -> np.ndarray:
    t = _read_texture_file(Path(path))
    t.flags.writeable = False
    return t


def load_texture(texture=None) -> np.ndarray:
    """The pencil texture P as a float64 gray HxW array in [0, 1].

    ``None``: :func:`procedural_texture`. A path (``str`` / ``os.PathLike``): the image file,
    read by :func:`read_texture_file` (OpenCV's decoder, libjpeg-turbo: the same pixels as
    MATLAB/Octave for the authors' ``pencil0.jpg``), RGB converted with MATLAB's ``rgb2gray`` of
    ``im2double``. An array: HxW,
    HxWx1 or HxWx3, uint8 or float in [0, 1] (RGB is converted with ``rgb2gray``).
    """
    if texture is None:
        return procedural_texture()
    if isinstance(texture, (str, os.PathLike)):
        path = Path(texture)
        if not path.exists():
            raise ValueError(f"pencil texture file not found: {display(path)}")
        st = path.stat()
        return _file_texture(str(path.resolve()), st.st_mtime_ns, st.st_size)
    if isinstance(texture, bytes):
        raise TypeError("pencil texture must be None, a path or an image array, got bytes")
    if not isinstance(texture, np.ndarray):
        raise TypeError(f"pencil texture must be None, a path (str/Path) or a numpy image array, "
                        f"got {type(texture).__name__}")
    return _texture_array(texture)


def _texture_array(texture: np.ndarray) -> np.ndarray:
    """P of a texture array (the one conversion of arrays and of files' pixels)."""
    t, _ = as_float_image(texture, name="pencil texture")
    return rgb2gray(t) if t.shape[2] == 3 else np.ascontiguousarray(t[:, :, 0])


def texture_id(texture=None) -> str:
    """A short description of the texture for dataset metadata: ``name:sha256-prefix``.

    The hash is of the gray float64 texture as :func:`load_texture` returns it, so the same
    pixels give the same id whatever the file name.
    """
    arr = np.ascontiguousarray(load_texture(texture), dtype=np.float64)
    digest = hashlib.sha256(str(arr.shape).encode() + arr.tobytes()).hexdigest()[:16]
    if texture is None:
        name = PROCEDURAL_VERSION
    elif isinstance(texture, (str, os.PathLike)):
        name = Path(texture).name
    else:
        name = "array"
    return f"{name}:{digest}"


def texture_map(y_shape: tuple[int, int], p_tex: np.ndarray, j: np.ndarray) -> np.ndarray:
    """T = P^β with β from the texture rendering's sparse system, solved by MATLAB's pcg.

    ``p_tex`` is the pencil texture (any size; resized to ``y_shape`` with MATLAB's bicubic
    ``imresize``), ``j`` the tone map (HxW). Minimises, over column-major β,
    ``θ(‖Dxᵀβ‖² + ‖Dyᵀβ‖²) + ‖ln P·β − ln J‖²`` (Dx, Dy: −1 on the diagonal, +1 on the H-th /
    first superdiagonal, so the first column and first pixel are pulled towards 0 and the last
    pixel of a column couples with the first of the next, as in the authors' file).
    """
    h, w = y_shape
    if p_tex.shape != (h, w):
        p_tex = imresize(p_tex, shape=(h, w))
    if not np.all(p_tex > 0.0):
        raise ValueError(
            "pencil texture must be strictly positive after resizing to the image (the rendering "
            f"takes ln P; got min {float(p_tex.min()):.4g}); use a texture without black pixels"
        )
    n = h * w
    logp = np.log(np.ascontiguousarray(p_tex.T).ravel())  # column-major
    logj = np.log(np.ascontiguousarray(j.T).ravel())
    m = np.arange(n)
    dd = (1.0 + (m < n - h)) + (1.0 + (m < n - 1))
    diag = THETA * dd + logp * logp
    beta, _, _ = pk.pcg_texture(diag, logp * logj, THETA, h, PCG_TOL, PCG_MAXIT)
    return p_tex ** beta.reshape(w, h).T


# --------------------------------------------------------------------------- operator
def pencil_drawing(image, *, texture=None, kernel_size: int = 8, stroke_width: int = 1,
                   directions: int = 8, gamma_s: float = 1.0, gamma_i: float = 1.0) -> np.ndarray:
    """Colour pencil drawing (Lu, Xu, Jia, NPAR 2012) on Y of YCbCr, colour kept.

    Y of MATLAB's YCbCr is replaced by S·T: S, a line drawing that follows the image's gradient
    (each edge pixel draws a short stroke along the strongest of ``directions`` orientations), and
    T, the pencil texture P raised to a smooth power field β so that it reproduces a tone map J
    (Y matched to the three-part histogram of real pencil drawings, then box-averaged).

    Parameters
    ----------
    image : ndarray
        HxWx3 RGB, uint8 (read as x/255) or float in [0, 1]; at least 2x2. Gray input is refused
        (the operator draws on Y of YCbCr and restores the colour).
    texture : None, path or ndarray
        The pencil texture. ``None`` (default): :func:`procedural_texture`, a deterministic
        generated hatching. The authors used their ``pencils/pencil0.jpg``; pass its path to
        reproduce their outputs. Arrays: HxW / HxWx3, uint8 or float in [0, 1]; RGB is
        converted with ``rgb2gray``. It must stay > 0 after resizing (ln P).
    kernel_size, stroke_width, directions, gamma_s, gamma_i
        ``PencilDrawing(I, ks, width, dirNum, gammaS, gammaI)``; the paper's data use 8, 1, 8,
        1, 1. Line kernels are (2·ks+1)², directions are (n−1)·180/dirNum degrees; S^γ_S, J^γ_I.

    Returns
    -------
    ndarray
        HxWx3 float64 in [0, 1] (``ycbcr2rgb`` clips).

    Notes
    -----
    Follows ``shared/docs/operators_extra.md`` §5: zero-padded ``medfilt2`` and ``conv2``, MATLAB's
    ``imrotate(.., 'bilinear', 'crop')`` with bilinear blending of the zero-extended kernel at the
    edges (the reference's rule; Octave's own rule changes 30-80 % of the pixels), ``histeq``'s
    target-histogram algorithm, ``imresize`` bicubic with antialiasing
    (:func:`operators._imresize.imresize`), and MATLAB ``pcg`` (no preconditioner, x0 = 0, 1e-6,
    60 iterations, minimum-residual iterate). Because of the discrete steps and the truncated
    CG, agreement with the reference is at the uint8 level (>= 99 % of pixels equal), not 1e-12.
    A constant image gives S = 1 where MATLAB would produce NaN (0/0).

    References
    ----------
    C. Lu, L. Xu, J. Jia. "Combining Sketch and Tone for Pencil Drawing Production". NPAR 2012
    (Proc. Symposium on Non-Photorealistic Animation and Rendering), pp. 65-73.
    doi:10.2312/PE/NPAR/NPAR12/065-073
    Q. Fan, D. Chen, L. Yuan, G. Hua, N. Yu, B. Chen. "A General Decoupled Learning Framework for
    Parameterized Image Operators". TPAMI 43(1), 2021 (Table 6). doi:10.1109/TPAMI.2019.2925793

    Examples
    --------
    >>> import numpy as np
    >>> from operators.pencil import pencil_drawing
    >>> rng = np.random.default_rng(0)
    >>> img = (rng.random((24, 32, 3)) * 255).astype(np.uint8)
    >>> out = pencil_drawing(img)
    >>> out.shape, out.dtype, bool(0 <= out.min() and out.max() <= 1)
    ((24, 32, 3), dtype('float64'), True)
    """
    tune_malloc()
    img, _ = as_float_image(image)
    if img.shape[2] != 3:
        raise ValueError(
            "pencil works on RGB images (HxWx3: it draws on Y of YCbCr and restores the colour), "
            f"got a gray image of shape {np.shape(image)}; replicate it to three channels if meant"
        )
    ks = as_count(kernel_size, name="pencil kernel_size", minimum=1)
    width = as_count(stroke_width, name="pencil stroke_width", minimum=0)
    n_dir = as_count(directions, name="pencil directions", minimum=1)
    if width >= ks:
        raise ValueError(f"pencil stroke_width must be < kernel_size ({ks}), got {width}")
    gamma_s = as_positive(gamma_s, name="pencil gamma_s")
    gamma_i = as_positive(gamma_i, name="pencil gamma_i")
    p_tex = load_texture(texture)
    ycc = rgb2ycbcr(img)
    y = np.ascontiguousarray(ycc[:, :, 0])
    s = stroke_map(y, ks, width, n_dir)
    if gamma_s != 1.0:
        s = s ** gamma_s
    j = tone_map(y)
    if gamma_i != 1.0:
        j = j ** gamma_i
    t = texture_map(y.shape, p_tex, j)
    ycc[:, :, 0] = s * t
    return ycbcr2rgb(ycc)

