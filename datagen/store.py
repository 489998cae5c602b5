"""The HDF5 layout of a dataset (documented in the README), and reading helpers.

::

    /                         attrs: format, version, code, command, created, seed, size,
                                     per_image, test_fraction, max_crops, scales, images,
                                     options (JSON), digest, skipped (JSON)
    /images/file    (F,)      str      source image files relative to their folder, in option order
    /images/split   (F,)      uint8    0 = train, 1 = test (the split is by source image)
    /sources/pixels (N,S,S,3) uint8    the crops every operator was applied to (stored once)
    /sources/image  (N,)      int32    index into /images
    /sources/box    (N,4)     int32    y, x, height, width of the crop in the scaled image
    /sources/scale  (N,)      float32  the image was resized by this factor before cropping
    /sources/split  (N,)      uint8
    /ops/<name>/              attrs: operator, title, paper, kind, channels, gamma_name,
                                     gamma_meaning, law, law_description, gamma_range,
                                     test_gammas, fixed (JSON; auxiliary images by name and
                                     hash), effective_note, pair_input, pair_target, pair_size,
                                     pair_region, pair_layout, pair_rule, seed, seeds
    /ops/<name>/gamma           (M,)      float64 sampled γ (NaN: a fixed-effect operator)
    /ops/<name>/gamma_effective (M,)      float64 the γ the operator used (WMF: integer radius)
    /ops/<name>/source          (M,)      int32   index into /sources
    /ops/<name>/split           (M,)      uint8   0 train, 1 test, 2 single (train crops at test γ)
    /ops/<name>/seed            (M,)      int64   random degradations only: each pair's seed
  a filter (kind "filter", pair = (source crop, f(crop))):
    /ops/<name>/output          (M,S,S,3) uint8   operator output, MATLAB rounding
  a degradation (kind "degradation", pair = (d(crop), clean)), P = pair_size (S but for sr):
    /ops/<name>/input           (M,P,P[,3]) uint8 the degraded image (operators.apply's output)
    /ops/<name>/target          (M,P,P[,3]) uint8 the clean image in the operator's channels
                                (no channel axis for channels "y" and "gray")

Image datasets are chunked one sample per chunk and gzip-compressed. Format version 2 adds HDF5's
Fletcher-32 checksum filter to every dataset (``verify`` reads every chunk, so a flipped byte is
found) and stores image names relative to their folder (the digest is the same on every machine).
Format version 3 adds every registered operator: the ``kind``/``channels``/``pair_*``
attributes, degradations' ``input``/``target``, fixed-effect operators (NaN γ) and per-pair
seeds. A file without ``kind`` attributes (versions 1, 2) holds filters only and reads as before.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # build workers import this module and need no h5py
    import h5py

FORMAT = "decouple-ops dataset"
FORMAT_VERSION = 3
#: Pair splits: continuous-γ training pairs, test pairs at the paper's test γ (on held-out source
#: images), and training crops at the test γ for the one-network-per-γ ("single") baseline.
SPLITS = {"train": 0, "test": 1, "single": 2}


#: The format versions this code reads.
KNOWN_VERSIONS = (1, 2, 3)


class UnsafeFileError(ValueError):
    """A dataset file whose data would be read from elsewhere (HDF5 external storage, an external
    or soft link, a virtual dataset): refused before anything is read. ``reasons`` lists them."""

    def __init__(self, path, reasons: list[str]):
        more = f" (and {len(reasons) - 1} more)" if len(reasons) > 1 else ""
        super().__init__(f"{path} is refused: {reasons[0]}{more}; a dataset file keeps all its "
                         "data inside itself (datagen never writes these), so this one was made "
                         "by something else and may read other files")
        self.reasons = reasons


def open_file(path, *, check: bool = True) -> h5py.File:
    """Open a dataset read-only, with a clear ``ValueError`` for a missing, foreign, unsafe or
    inconsistent file. Used by everything that reads a dataset (``info``, ``verify``, ``show``,
    :class:`~datagen.dataset.PairDataset`, ``model train/eval``).

    Always (before any data is read): :class:`UnsafeFileError` for storage outside the file
    (:func:`storage_problems`), which would make a reader read any local file. With ``check``
    (``verify`` passes False and reports the same as failed checks): :func:`integrity_problems`,
    cheap checks that the file holds together (a known format version, every dataset as long as
    its index arrays and stored in full, the attribute checksum), so that a file is not trusted
    for carrying a ``digest`` attribute.
    """
    import h5py

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no dataset at {path}{build_state(path)}")
    try:
        f = h5py.File(path, "r")
    except OSError as exc:
        raise ValueError(f"{path} is not a readable HDF5 file ({exc})") from None
    try:
        if f.attrs.get("format") != FORMAT:
            raise ValueError(f"{path} is not a {FORMAT} file (no 'format' attribute)")
        unsafe = storage_problems(f)
        if unsafe:
            raise UnsafeFileError(path, unsafe)
        if check:
            problems = integrity_problems(f)
            if problems:
                more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
                raise ValueError(f"{path} does not hold together: {problems[0]}{more}; "
                                 f"`python -m datagen verify {path}` reports every check")
    except ValueError:
        f.close()
        raise
    except Exception as exc:  # noqa: BLE001 - h5py's errors on a damaged file: one line
        f.close()
        raise ValueError(f"{path} is damaged ({type(exc).__name__}: "
                         f"{str(exc).splitlines()[0] if str(exc) else ''})") from None
    return f


#: How deep and how many objects :func:`storage_problems` looks at: a dataset file is three
#: groups deep with some hundred objects; a file beyond either was not written by datagen.
MAX_DEPTH, MAX_OBJECTS = 8, 100_000


def storage_problems(f: h5py.File) -> list[str]:
    """Why the file's data would not all come from the file itself: HDF5 external storage
    (``dset.external``: raw data in another file, e.g. ``/etc/passwd``), virtual datasets
    (``dset.is_virtual``: data mapped from other files), external links, soft links (datagen
    writes hard links only). Links are inspected, never followed. [] for a safe file."""
    import h5py

    problems: list[str] = []
    count = 0

    def walk(group, prefix: str, depth: int) -> None:
        nonlocal count
        for key in group:
            name = f"{prefix}{key}"
            count += 1
            if count > MAX_OBJECTS or depth > MAX_DEPTH:
                problems.append(f"more than {MAX_OBJECTS} objects or {MAX_DEPTH} levels")
                return
            link = group.get(key, getlink=True)
            if isinstance(link, h5py.ExternalLink):
                problems.append(f"{name} is an external link (to {link.filename}:{link.path})")
                continue
            if isinstance(link, h5py.SoftLink):
                problems.append(f"{name} is a soft link (to {link.path})")
                continue
            if not isinstance(link, h5py.HardLink):
                problems.append(f"{name} is a link of an unknown kind")
                continue
            obj = group[key]
            if isinstance(obj, h5py.Group):
                walk(obj, name + "/", depth + 1)
            elif isinstance(obj, h5py.Dataset):
                if obj.is_virtual:
                    files = sorted({m.file_name for m in obj.virtual_sources()})
                    problems.append(f"dataset {name} is virtual (mapped from {', '.join(files)})")
                elif obj.external:
                    files = sorted({str(e[0], "utf-8", "backslashreplace")
                                    if isinstance(e[0], bytes) else str(e[0])
                                    for e in obj.external})
                    problems.append(f"dataset {name} uses HDF5 external storage (its data is "
                                    f"read from {', '.join(files)})")

    walk(f, "", 0)
    return problems


def _rows(f, name: str) -> int | None:
    ds = f.get(name)
    return None if ds is None or not hasattr(ds, "shape") or not ds.shape else int(ds.shape[0])


def _unstored(ds) -> str | None:
    """Why dataset ``ds`` does not hold all its declared elements in the file (a dataset whose
    chunks were never written reads the fill value, zeros), or None."""
    from h5py import h5d

    if ds.shape is None or ds.size == 0:
        return None
    layout = ds.id.get_create_plist().get_layout()
    if layout == h5d.CHUNKED:
        expected = 1
        for dim, chunk in zip(ds.shape, ds.chunks):
            expected *= -(-dim // chunk)
        stored = ds.id.get_num_chunks()
        if stored != expected:
            return f"{ds.name[1:]} declares {ds.shape[0]} rows but stores {stored} of its " \
                   f"{expected} chunks"
    elif ds.dtype.kind != "O" and ds.id.get_storage_size() < ds.size * ds.dtype.itemsize:
        return f"{ds.name[1:]} declares {ds.shape[0]} rows but stores " \
               f"{ds.id.get_storage_size()} of its {ds.size * ds.dtype.itemsize} bytes"
    return None


def integrity_problems(f: h5py.File) -> list[str]:
    """Cheap checks that a dataset file holds together, none of which reads a chunk: its format
    version is one this code reads; every per-image, per-crop and per-pair dataset is as long as
    its index arrays (``/images/split``, ``/sources/image``, ``/ops/<op>/gamma``) and stores
    every chunk it declares; the attribute checksum (formats 2, 3) matches. [] when it does."""
    problems: list[str] = []
    version = f.attrs.get("format_version")
    try:
        known = int(version) in KNOWN_VERSIONS and float(version) == int(version)
    except (TypeError, ValueError):
        known = False
    if not known:
        shown = version.item() if isinstance(version, np.generic) else version
        return [f"format version {shown!r} is not one this version of datagen reads "
                f"({', '.join(map(str, KNOWN_VERSIONS))}; a file made by a newer datagen?)"]
    groups = [("images/split", ["images/file"]),
              ("sources/image", ["sources/pixels", "sources/box", "sources/scale",
                                 "sources/split"])]
    for name in (f["ops"] if "ops" in f else []):
        base = f"ops/{name}/"
        groups.append((base + "gamma", [base + k for k in ("gamma_effective", "source", "split",
                                                           "seed", "output", "input", "target")
                                        if base + k in f]))
    for index, members in groups:
        n = _rows(f, index)
        if n is None:
            problems.append(f"{index} is missing")
            continue
        for name in [index, *members]:
            m = _rows(f, name)
            if name != index and m != n:
                problems.append(f"{name} has {m} rows, {index} {n}")
                continue
            why = _unstored(f[name])
            if why:
                problems.append(why)
    if int(version) >= 2:
        stored = f.attrs.get(ATTRIBUTES_DIGEST)
        if stored is None:
            problems.append(f"the attribute checksum ({ATTRIBUTES_DIGEST}) of a format "
                            f"{int(version)} file is missing")
        elif stored != attributes_digest(f):
            problems.append("the attribute checksum does not match: an attribute was changed "
                            "or damaged")
    return problems


def build_state(path) -> str:
    """'' or a hint about a build of ``path``: running now (named), or interrupted (resumable)."""
    from .lock import describe, holder

    path = Path(path)
    running = holder(path)
    if running is not None:
        return (f"; a build is writing it now ({describe(running)}): wait for it to finish")
    partial = path.with_name(path.name + ".partial")
    if partial.exists():
        return (f"; an interrupted build is in {partial}: run `python -m datagen build --resume "
                f"--out {path}` with the same options")
    return ""


#: Root attribute holding :func:`attributes_digest`: HDF5 keeps string attributes in heaps that
#: carry no checksum of their own, so the file checksums its attributes itself (format 2).
ATTRIBUTES_DIGEST = "attributes_sha256"


def _plain(value):
    if isinstance(value, bytes):
        return value.decode("utf-8", "backslashreplace")
    if isinstance(value, np.ndarray):
        return [_plain(v) for v in value.tolist()]
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def attributes_digest(f: h5py.File) -> str:
    """SHA-256 of every attribute of every object in the file (except this digest itself)."""
    import hashlib

    items = []

    def collect(name, obj):
        for key in sorted(obj.attrs):
            if not (name == "/" and key == ATTRIBUTES_DIGEST):
                items.append([name, key, _plain(obj.attrs[key])])

    collect("/", f)
    f.visititems(collect)
    items.sort(key=lambda it: (it[0], it[1]))
    return hashlib.sha256(json.dumps(items, sort_keys=True, default=str).encode()).hexdigest()


def op_names(f: h5py.File) -> list[str]:
    """The operators in a file, in the registry's order (HDF5 lists groups alphabetically)."""
    import operators

    names = list(f["ops"].keys()) if "ops" in f else []
    order = {n: i for i, n in enumerate(operators.ALL)}
    return sorted(names, key=lambda n: (order.get(n, len(order)), n))


def store_keys(kind: str) -> tuple[str, ...]:
    """The image datasets of an operator group: ``output`` (filter) or ``input``, ``target``."""
    return ("output",) if kind == "filter" else ("input", "target")


def pair_shape(spec, size: int) -> tuple[int, ...]:
    """The shape of one stored image of operator ``spec``'s pairs of side ``size``: (S, S, 3),
    or (S, S) for the single-channel (y/gray) degradations."""
    if spec.kind == "degradation" and spec.channels in ("y", "gray"):
        return (size, size)
    return (size, size, 3)


def op_kind(f: h5py.File, name: str) -> str:
    """``"filter"`` or ``"degradation"`` (files before format 3 hold filters only)."""
    kind = f["ops"][name].attrs.get("kind", "filter")
    return kind.decode() if isinstance(kind, bytes) else str(kind)


def pair_datasets(f: h5py.File, name: str) -> tuple[str | None, str]:
    """Where the pairs of operator ``name`` are: (input dataset, target dataset) inside
    ``/ops/<name>``; input None means ``/sources/pixels[source]`` (a filter)."""
    return (None, "output") if op_kind(f, name) == "filter" else ("input", "target")


def op_attrs(f: h5py.File, name: str) -> dict:
    a = dict(f["ops"][name].attrs)
    a["fixed"] = json.loads(a["fixed"])
    return a


def summary(f: h5py.File) -> list[dict]:
    """One row per operator and split: pairs and the γ they span."""
    rows = []
    for name in op_names(f):
        g = f["ops"][name]
        split, gamma = g["split"][:], g["gamma"][:]
        for sname, code in SPLITS.items():
            sel = split == code
            known = sel & ~np.isnan(gamma)
            rows.append({"operator": name, "split": sname, "pairs": int(sel.sum()),
                         "gamma_min": float(gamma[known].min()) if known.any() else np.nan,
                         "gamma_max": float(gamma[known].max()) if known.any() else np.nan,
                         "law": g.attrs["law"], "kind": op_kind(f, name),
                         "channels": g.attrs.get("channels", "rgb")})
    return rows
