"""The build plan: which crops, which split, which γ for each operator, in fixed slots.

Everything here is a pure function of the options and the image files, so every executor (one
process, a pool, a Dask cluster) and every resumed build fills the same slots with the same data.
"""
from __future__ import annotations

import functools
import hashlib
import json
import math
import os
import warnings
import zlib
from dataclasses import asdict, dataclass, field

import numpy as np

import operators

from .sources import Crop, display, grid_crops, read_image

TRAIN, TEST, SINGLE = 0, 1, 2


@dataclass(frozen=True)
class Options:
    """What a build is made of; stored in the file so the file can be rebuilt from itself."""

    ops: tuple[str, ...]
    images: tuple[str, ...]  # image files, in order
    images_label: str  # "default (...)" or the folder given
    size: int = 128
    per_image: int = 7
    test_fraction: float = 0.1
    seed: int = 0
    max_crops: int = 40
    scales: tuple[float, ...] = (1.0,)
    single: bool = True  # training crops also at the test γ (one-network-per-γ baseline)
    #: names (relative, as :meth:`image_names` gives them) of the held-out test images; empty:
    #: ``test_fraction`` of the images, chosen with ``seed``
    test_images: tuple[str, ...] = ()
    #: auxiliary images (paths on this machine, or None for the operators' defaults): the style
    #: exemplar and the pencil texture. Only their name and hash are stored and hashed.
    exemplar: str | None = None
    texture: str | None = None

    def __post_init__(self):
        for name in self.ops:
            operators.get(name)  # raises on an unknown operator
        if self.size < 16 or self.size % 2:
            raise ValueError(f"--size must be an even number >= 16, got {self.size}")
        if self.per_image < 1:
            raise ValueError(f"--per-image must be >= 1, got {self.per_image}")
        if not 0.0 <= self.test_fraction < 1.0:
            raise ValueError(f"--test-fraction must be in [0, 1), got {self.test_fraction}")
        if self.max_crops < 1:
            raise ValueError(f"--max-crops must be >= 1, got {self.max_crops}")
        if not self.scales or any(not 0 < s <= 1 for s in self.scales):
            raise ValueError(f"--scales must be in (0, 1], got {self.scales}")
        if not self.images:
            raise ValueError("no images given")
        for key in ("exemplar", "texture"):
            path = getattr(self, key)
            if path is not None and not os.path.isfile(path):
                raise ValueError(f"--{key} {display(path)}: no such file")
        # each auxiliary image is read here, once: the hash stored and the pixels every pair is
        # made with come from this one read (a file replaced later changes nothing; a relative
        # path is resolved here, not in each worker's folder)
        aux = {name: read_aux(name, getattr(self, key)) for name, key in AUX.items()
               if name in self.ops and getattr(self, key) is not None}
        object.__setattr__(self, "_aux", aux)

    def to_json(self) -> str:
        """The options as given (image paths as on this machine)."""
        return json.dumps(asdict(self), sort_keys=True)

    def image_root(self) -> str:
        """The folder the image paths are relative to: the deepest folder holding all of them."""
        parents = [os.path.dirname(os.path.abspath(p)) for p in self.images]
        return os.path.commonpath(parents) if parents else ""

    def image_names(self) -> tuple[str, ...]:
        """Image paths relative to :meth:`image_root` ('/'-separated, printable): the same on
        every machine that holds the same images, whatever folder they are in."""
        root = self.image_root()
        return tuple(display(os.path.relpath(os.path.abspath(p), root)).replace(os.sep, "/")
                     for p in self.images)

    def portable(self) -> dict:
        """The options without machine paths (images by their relative names): stored in the file
        and hashed by :meth:`Plan.digest`."""
        d = asdict(self)
        d["images"] = list(self.image_names())
        d["scales"] = list(self.scales)
        d["ops"] = list(self.ops)
        d["test_images"] = list(self.test_images)
        # auxiliary images by name and hash, never a machine path (nor the pixels)
        d["exemplar"] = self.aux_record("style") if "style" in self.ops else None
        d["texture"] = self.aux_record("pencil") if "pencil" in self.ops else None
        return d

    def portable_json(self) -> str:
        return json.dumps(self.portable(), sort_keys=True)

    def aux_record(self, name: str) -> dict:
        """The record of operator ``name``'s auxiliary image: of the pixels read when these
        options were made, or of the operator's default."""
        got = self._aux.get(name)
        return dict(got.record) if got is not None else aux_record(name, None)

    def overrides(self, name: str) -> dict:
        """Keyword arguments given to operator ``name`` beyond its registry defaults: the
        auxiliary image's pixels as read once with these options (:func:`read_aux`), never its
        path, so every worker makes its pairs with the image whose hash the file records."""
        got = self._aux.get(name)
        return {} if got is None else {AUX[name]: got.array}

    def fixed_record(self, name: str) -> dict:
        """The fixed parameters of operator ``name`` as stored in the file (JSON-able): the
        registry's, with auxiliary images replaced by their name and hash (never the pixels or a
        path), so that a file says which exemplar or texture made it."""
        fixed = dict(operators.get(name).fixed)
        if name in AUX:
            fixed[AUX[name]] = self.aux_record(name)
        return fixed


#: Which fixed parameter of which operator is an auxiliary image.
AUX = {"style": "exemplar", "pencil": "texture"}


@dataclass(frozen=True)
class AuxImage:
    """An auxiliary image read once: ``array``, the pixels the operator takes (what
    :func:`operators.style.read_exemplar_file` / :func:`operators.pencil.read_texture_file`
    give, read-only), and ``record``, their ``{"name", "sha256"[, "shape"]}`` as the file
    stores them."""

    array: np.ndarray
    record: dict


def read_aux(name: str, path) -> AuxImage:
    """Read the style exemplar (``name="style"``) or pencil texture (``"pencil"``) file at
    ``path`` once, and identify it by the hash of those pixels (as
    :func:`operators.style.exemplar_info` / :func:`operators.pencil.texture_id` do: the same
    hash as the path gives; the texture's is a 16-hex-digit prefix)."""
    label = os.path.basename(os.fspath(path))
    if name == "style":
        from operators.style import exemplar_info, read_exemplar_file

        array = read_exemplar_file(path)
        info = exemplar_info(array)
        record = {"name": label, "sha256": info["sha256"], "shape": list(info["shape"])}
    else:
        from operators.pencil import read_texture_file, texture_id

        array = read_texture_file(path)
        record = {"name": label, "sha256": texture_id(array).rpartition(":")[2]}
    array.setflags(write=False)
    return AuxImage(array, record)


@functools.lru_cache(maxsize=2)
def _default_record(name: str) -> tuple:
    if name == "style":
        from operators.style import exemplar_info

        info = exemplar_info(None)
        return (("name", info["name"]), ("sha256", info["sha256"]),
                ("shape", list(info["shape"])))
    from operators.pencil import texture_id

    label, _, digest = texture_id(None).rpartition(":")
    return (("name", label), ("sha256", digest))


def aux_record(name: str, path) -> dict:
    """``{"name", "sha256"[, "shape"]}`` of the style exemplar (``name="style"``) or the pencil
    texture (``"pencil"``) at ``path`` (None: the operator's default), as
    :func:`operators.style.exemplar_info` / :func:`operators.pencil.texture_id` identify it (the
    texture's hash is a 16-hex-digit prefix)."""
    if path is None:
        return dict(_default_record(name))
    return read_aux(name, path).record


@dataclass
class OpPlan:
    """One operator's pairs: source crop, γ and split per slot, and the tasks that fill them."""

    name: str
    source: np.ndarray  # (M,) int32: index into the plan's crops
    gamma: np.ndarray  # (M,) float64: sampled γ
    split: np.ndarray  # (M,) uint8: TRAIN / TEST / SINGLE
    tasks: list[tuple[int, np.ndarray]] = field(default_factory=list)  # (crop, slots)
    seeds: np.ndarray | None = None  # (M,) int64 seed of each pair (random degradations)
    size: int = 0  # side of the stored pair (the crop size; smaller for sr, see pair_size)

    @property
    def gamma_effective(self) -> np.ndarray:
        return effective_gammas(self.name, self.gamma)


def effective_gammas(name: str, gamma: np.ndarray) -> np.ndarray:
    """The γ each pair's operator used (WMF: integer radius); NaN for fixed-effect operators."""
    spec = operators.get(name)
    return np.array([math.nan if math.isnan(g) else spec.effective_gamma(g) for g in gamma],
                    dtype=np.float64)


@functools.lru_cache(maxsize=64)
def pair_size(name: str, size: int) -> int:
    """Side of operator ``name``'s stored pairs made from ``size`` x ``size`` crops.

    ``size`` for every operator whose pair keeps the image size. ``sr`` crops its target to a
    multiple of the scale's modulus (SRCNN's ``modcrop``: 2, 6, 4 for s = 2, 3, 4), so its pairs
    are made from the top-left ``size - size mod 12`` block of each crop, where every scale keeps
    the whole block: all three scales of a crop then share one size (120 for 128).
    """
    spec = operators.get(name)
    if spec.kind != "degradation":
        return size
    gammas = sorted(set(spec.test_gammas) | set(getattr(spec.law, "values", ())))
    side = size
    while side >= 1:
        probe = np.zeros((side, side, 3), np.uint8)
        shapes = {operators.pair(name, probe, g, seed=0)[1].shape[:2] for g in gammas}
        if shapes == {(side, side)}:
            return side
        side = min(min(sh) for sh in shapes)
    raise ValueError(f"{name}: no pair can be made from {size}x{size} crops")


@dataclass
class Plan:
    options: Options
    crops: list[Crop]
    pixels: np.ndarray  # (N, S, S, 3) uint8 source crops
    image_split: np.ndarray  # (n_images,) uint8 split of each source image
    skipped: list[str]  # images that could not be used, with the reason
    ops: dict[str, OpPlan]

    @property
    def crop_split(self) -> np.ndarray:
        return self.image_split[[c.image for c in self.crops]].astype(np.uint8)

    def digest(self) -> str:
        """Identifies the plan by content: the options without machine paths (image names relative
        to their folder, not the free-text ``images_label``), the crops and their pixels and the γ
        of every slot. The same images built in two folders or on two machines give one digest
        (Fan et al.'s datasets are defined by images and γ, not by where they were stored)."""
        options = self.options.portable()
        del options["images_label"]
        h = hashlib.sha256(json.dumps(options, sort_keys=True).encode())
        h.update(json.dumps([asdict(c) for c in self.crops]).encode())
        h.update(self.pixels.tobytes())
        for name in self.options.ops:
            h.update(self.ops[name].gamma.tobytes())
            if self.ops[name].seeds is not None:
                h.update(self.ops[name].seeds.tobytes())
        return h.hexdigest()


#: Digests of builds that drew the same plan as another digest, recorded before the γ draw was
#: made the same on every CPU (:meth:`operators.LogUniform.sample`), → the digest that plan has
#: now. ``dee0485dfa40``: the default build (``python -m datagen build --ops all``) on an
#: AVX-512 CPU, where numpy's vector ``exp`` rounded some log-uniform γ one unit in the last
#: place away from the C library's: the same options, crops, pixels and γ to within 1 ulp (the
#: medium models trained on it record the same trained γ range as those trained on
#: ``992de38b67cd`` but for l0's largest γ, one ulp apart; the medium Table 12 of three such
#: models re-evaluated on a ``992de38b67cd`` build gave every PSNR within 4e-6 dB of the one
#: recorded on ``dee0485dfa40`` and the inputs' PSNR within 2e-15 dB). Only exported models
#: are matched through it (:func:`same_plan`); a dataset file is still identified by its own
#: digest.
SAME_PLAN_DIGESTS = {
    "dee0485dfa407dfc03dee4c42b3f456e4ebd6f16fbedf10856043b103a538d0d":
        "992de38b67cd4c295c29a98007a2de55a1df4c6b399fceedcae40e9901727777",
}


def same_plan(a, b) -> bool:
    """Whether two dataset digests name the same plan: equal, or one recorded for the other in
    :data:`SAME_PLAN_DIGESTS`."""
    if not isinstance(a, str) or not isinstance(b, str):
        return False
    return SAME_PLAN_DIGESTS.get(a, a) == SAME_PLAN_DIGESTS.get(b, b)


def op_rng(seed: int, name: str) -> np.random.Generator:
    """Each operator has its own stream, so `--ops l0` and `--ops all` give the same l0 pairs."""
    return np.random.default_rng([seed, zlib.crc32(name.encode())])


def seed_rng(seed: int, name: str) -> np.random.Generator:
    """The stream of per-pair seeds of a random degradation (apart from its γ stream, so adding
    seeds changed no γ)."""
    return np.random.default_rng([seed, zlib.crc32(name.encode()), 0x5EED5])


def draw_gammas(name: str, rng: np.random.Generator, n: int) -> np.ndarray:
    """n training γ for one crop from the operator's law.

    Integer laws (LLF, JPEG quality) cycle through a random permutation of all values, so 7
    draws give each of LLF's 2..8 once, as the authors' script did; continuous laws draw
    independently. A discrete law (the SR scales) gives every value once, whatever ``n`` (the
    protocol of SRCNN and the paper: every scale of every crop); fixed-effect operators none.
    """
    spec = operators.get(name)
    if not spec.has_gamma:
        return np.empty(0)
    if spec.law == "discrete":
        return np.asarray(spec.law.values, dtype=np.float64)
    if spec.law == "integer":
        lo, hi = (int(v) for v in spec.gamma_range)
        values = np.arange(lo, hi + 1, dtype=np.float64)
        reps = math.ceil(n / len(values))
        return np.concatenate([rng.permutation(values) for _ in range(reps)])[:n]
    return np.asarray(spec.sample(rng, n), dtype=np.float64)


def make_plan(options: Options) -> Plan:
    """Read the images, cut the crops, split by source image and draw every γ."""
    crops: list[Crop] = []
    pixels: list[np.ndarray] = []
    skipped: list[str] = []
    names = options.image_names()
    for i, path in enumerate(options.images):
        img, reason = read_image(path)
        if img is None:
            skipped.append(f"{names[i]}: {reason}")
            warnings.warn(f"skipping {display(path)}: {reason}", stacklevel=2)
            continue
        if min(img.shape[:2]) < options.size:
            skipped.append(f"{names[i]}: {img.shape[1]}x{img.shape[0]} is smaller than --size "
                           f"{options.size}")
            warnings.warn(f"skipping {display(path)}: smaller than the crop size {options.size}",
                          stacklevel=2)
            continue
        found = grid_crops(img, i, options.size, options.scales)
        if not found:
            skipped.append(f"{names[i]}: no crop with structure (flat image)")
            continue
        rng = np.random.default_rng([options.seed, i])
        if len(found) > options.max_crops:
            keep = np.sort(rng.choice(len(found), options.max_crops, replace=False))
            found = [found[k] for k in keep]
        crops += found
        pixels += [c.cut(img) for c in found]
    if not crops:
        raise ValueError(f"no usable image in {display(options.image_root())}: " + "; ".join(skipped))

    used = sorted({c.image for c in crops})
    image_split = np.full(len(options.images), TRAIN, np.uint8)
    if options.test_images:
        image_split[_named_test_images(options, used)] = TEST
    else:
        n_test = round(options.test_fraction * len(used))
        if options.test_fraction > 0 and len(used) >= 2:
            n_test = min(max(1, n_test), len(used) - 1)
        else:
            n_test = 0
        perm = np.random.default_rng([options.seed, 0x5EED]).permutation(used)
        image_split[perm[:n_test]] = TEST

    plan = Plan(options, crops, np.stack(pixels), image_split, skipped, {})
    split = plan.crop_split
    for name in options.ops:
        spec, rng = operators.get(name), op_rng(options.seed, name)
        tests = np.asarray(spec.test_gammas, dtype=np.float64)
        source, gamma, pair_split, tasks = [], [], [], []
        for k, s in enumerate(split):
            if not spec.has_gamma:  # fixed effect: one pair per crop (the paper's protocol)
                g, sp = np.array([math.nan]), [int(s)]
            elif s == TRAIN:
                g = draw_gammas(name, rng, options.per_image)
                sp = [TRAIN] * len(g)
                if options.single:
                    g = np.concatenate([g, tests])
                    sp += [SINGLE] * len(tests)
            else:
                g, sp = tests, [TEST] * len(tests)
            tasks.append((k, np.arange(len(gamma), len(gamma) + len(g))))
            source += [k] * len(g)
            gamma += list(g)
            pair_split += sp
        seeds = None
        if spec.random:  # one seed per pair, from the plan: the same whatever runs the pair
            seeds = seed_rng(options.seed, name).integers(0, 2**63 - 1, len(gamma), np.int64)
        plan.ops[name] = OpPlan(name, np.asarray(source, np.int32),
                                np.asarray(gamma, dtype=np.float64),
                                np.asarray(pair_split, np.uint8), tasks, seeds,
                                pair_size(name, options.size))
    return plan


def _named_test_images(options: Options, used: list[int]) -> list[int]:
    """Indices of ``options.test_images`` (matched by relative name or by file name)."""
    names = options.image_names()
    index = []
    for want in options.test_images:
        hits = [i for i, n in enumerate(names) if n == want or n.rsplit("/", 1)[-1] == want]
        if len(hits) != 1:
            what = "ambiguous" if hits else "not among the images"
            raise ValueError(f"test image {want!r} is {what}; the images are {', '.join(names)}")
        if hits[0] not in used:
            raise ValueError(f"test image {want!r} gave no crop (it was skipped or is flat)")
        index += hits
    if set(used) <= set(index):
        raise ValueError("every usable image is a test image: keep at least one for training")
    return index


def dataset_options(ops="all", images=None, *, size: int = 128, per_image: int = 7,
                    test_fraction: float | None = None, test_images=(), seed: int = 0,
                    max_crops: int = 40, scales=None, single: bool = True, exemplar=None,
                    texture=None) -> Options:
    """The :class:`Options` of ``python -m datagen build`` with the same flags (each keyword is
    the flag of that name, with the same default), for a program that builds a dataset without
    going through the command line (:func:`datagen.build.build_dataset`).

    ``ops``: names and/or groups (``"all"``, ``"filters,jpeg"``, or a sequence). ``images``: a
    folder of images, or None for the photographs bundled with scikit-image; for those the
    defaults are the command's: its named test images (:data:`~datagen.sources.DEFAULT_TEST_FILES`)
    unless ``test_fraction`` or ``test_images`` is given, and the scales 1 and 0.5; for a folder,
    a test fraction of 0.1 and the scale 1. The same flags give the same options, so the same
    dataset digest, whichever way the build is started."""
    from .sources import DEFAULT_SCALES, DEFAULT_TEST_FILES, default_images, list_images

    test_images = tuple(test_images or ())
    if images is None:
        import skimage

        files = default_images()
        label = f"default: scikit-image {skimage.__version__} sample photographs"
        scales = scales or DEFAULT_SCALES
        if test_fraction is None and not test_images:
            test_images = DEFAULT_TEST_FILES
    else:
        from pathlib import Path

        files = list_images(images)
        label = display(Path(images).resolve().name)  # the folder's name: no machine path
        scales = scales or (1.0,)
    return Options(ops=tuple(operators.resolve(ops)), images=tuple(str(f) for f in files),
                   images_label=label, size=size, per_image=per_image,
                   test_fraction=0.1 if test_fraction is None else test_fraction, seed=seed,
                   max_crops=max_crops, scales=tuple(scales), single=single,
                   test_images=test_images,
                   exemplar=None if exemplar is None else str(exemplar),
                   texture=None if texture is None else str(texture))
