"""The build plan: which crops, which split, which γ for each operator, in fixed slots.

Everything here is a pure function of the options and the image files, so every executor (one
process, a pool, a Dask cluster) and every resumed build fills the same slots with the same data.
"""
from __future__ import annotations

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
        return d

    def portable_json(self) -> str:
        return json.dumps(self.portable(), sort_keys=True)


@dataclass
class OpPlan:
    """One operator's pairs: source crop, γ and split per slot, and the tasks that fill them."""

    name: str
    source: np.ndarray  # (M,) int32: index into the plan's crops
    gamma: np.ndarray  # (M,) float64: sampled γ
    split: np.ndarray  # (M,) uint8: TRAIN / TEST / SINGLE
    tasks: list[tuple[int, np.ndarray]] = field(default_factory=list)  # (crop, slots)

    @property
    def gamma_effective(self) -> np.ndarray:
        spec = operators.get(self.name)
        return np.array([spec.effective_gamma(g) for g in self.gamma], dtype=np.float64)


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
        return h.hexdigest()


def op_rng(seed: int, name: str) -> np.random.Generator:
    """Each operator has its own stream, so `--ops l0` and `--ops all` give the same l0 pairs."""
    return np.random.default_rng([seed, zlib.crc32(name.encode())])


def draw_gammas(name: str, rng: np.random.Generator, n: int) -> np.ndarray:
    """n training γ for one crop from the operator's law.

    Integer laws (LLF) cycle through a random permutation of all values, so 7 draws give each of
    2..8 once, as the authors' script did; continuous laws draw independently.
    """
    spec = operators.get(name)
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
            if s == TRAIN:
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
        plan.ops[name] = OpPlan(name, np.asarray(source, np.int32), np.asarray(gamma),
                                np.asarray(pair_split, np.uint8), tasks)
    return plan
