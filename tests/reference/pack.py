"""Pack the reference outputs into this folder (``pack``), and unpack them for the tests (``unpack``).

The reference outputs (``../shared/reference``: ``manifest.json``, ``inputs/*.png``,
``outputs/*.npz`` with float32 ``output`` and, for sr/jpeg, ``target``) are 19 MB of npz files. This
module stores the same entries in about half of that, so that every clone can run the fidelity
tests, and restores a folder of the original layout that the tests read unchanged.

Each array is coded as integers, channel planes first:

* **lossless** (every operator whose tests compare the float32 values themselves: wmf, shock,
  llf_remap, wls_enhance, sr, jpeg, and every ``target``): the float32 bit patterns,
  read as int32;
* **quantised** (only where ``tests/test_reference.py`` is the one consumer, ``STEP_LOG2``): the
  value rounded to a multiple of 2**e, with a rounding error 2**(e-1) of at most a fifth of the
  operator's ``MAX_ABS`` bound there and at most 5e-7, so that it moves at most ~0.03 % of the
  uint8 values across a rounding boundary (the bar allows 0.1 % unequal). l0, wls, rtv, rgf:
  2**-23, error <= 6.0e-8 against bounds of 3e-7 and 5e-7 (achieved 3e-8 to 6e-8); llf: 2**-20,
  error <= 4.8e-7 against 3e-5 (achieved 3.3e-6). Decoded values are float32 (every multiple of
  2**e the reference can hold is representable).

then predicted from the left, upper and upper-left neighbours (x[i-1,j] + x[i,j-1] - x[i-1,j-1],
a double difference that unpacks with two cumulative sums), the residual of each channel after
the first taken relative to the previous channel's, zigzag-coded to unsigned, split into byte
planes (most significant first) and compressed with LZMA (xz preset 9). An array equal to the
top-left corner of a larger (or earlier) one of the same input (sr's and jpeg's ``target``: the
luma Y, cropped to a multiple of the scale for sr) is stored as a reference to it.

The entries of the operators that read one of the authors' images (style: the exemplar
``style_ruins.png``; pencil: the texture ``pencil0.jpg``; ``operators.fidelity.AUXILIARY``) are not
packed: those images are not ours to distribute, so the entries could not run from this copy
anyway. They stay in ``manifest.json`` (the tests skip them, saying why) and are listed in
``packed/format.json``.

``python tests/reference/pack.py [SOURCE]`` (default ``../shared/reference``) rewrites
``manifest.json``, ``inputs/`` (the test images) and ``packed/`` here, checks that every array
unpacks within its stated error (exactly for the lossless ones) and prints the sizes.
"""
from __future__ import annotations

import json
import lzma
import shutil
import sys
from pathlib import Path

import numpy as np

from operators.fidelity import AUXILIARY

HERE = Path(__file__).resolve().parent

#: the format of ``packed/*.npz`` (stored in ``packed/format.json``; unpack refuses another)
FORMAT = 1

#: quantisation exponent per operator (``output`` only); absent: lossless. The step is 2**e and the
#: largest error 2**(e-1), at most MAX_ABS[op] / 5 of tests/test_reference.py and 5e-7 (checked by
#: tests/test_packaging.py).
STEP_LOG2 = {"l0": -23, "wls": -23, "rtv": -23, "rgf": -23, "llf": -20}



# ------------------------------------------------------------------------------------ coding
def _planes(a: np.ndarray) -> np.ndarray:
    """(C, H, W) view of an (H, W, C) or (H, W) array."""
    return a.transpose(2, 0, 1) if a.ndim == 3 else a[None]


def _encode(a: np.ndarray, step_log2: int | None) -> tuple[bytes, dict]:
    a = np.asarray(a, dtype=np.float32)
    p = np.ascontiguousarray(_planes(a))
    if step_log2 is None:
        k = p.view(np.int32).astype(np.int64)
    else:
        k = np.round(p.astype(np.float64) * 2.0 ** -step_log2).astype(np.int64)
    d = np.diff(np.diff(k, axis=2, prepend=0), axis=1, prepend=0)
    d[1:] = d[1:] - d[:-1].copy()
    z = ((d << 1) ^ (d >> 63)).astype(np.uint64)  # zigzag: small magnitudes -> small codes
    width = max(1, (int(z.max()).bit_length() + 7) // 8)
    planes = z.ravel().view(np.uint8).reshape(-1, 8)[:, :width][:, ::-1].T  # MSB plane first
    blob = lzma.compress(np.ascontiguousarray(planes).tobytes(), preset=9)
    header = {"shape": list(a.shape), "step_log2": step_log2, "width": width}
    return blob, header


def _decode(blob: bytes, header: dict) -> np.ndarray:
    shape = tuple(header["shape"])
    h, w = shape[:2]
    c = 1 if len(shape) == 2 else shape[2]
    width = header["width"]
    planes = np.frombuffer(lzma.decompress(blob), np.uint8).reshape(width, c * h * w)
    raw = np.zeros((c * h * w, 8), np.uint8)
    raw[:, :width] = planes[::-1].T
    z = raw.view(np.uint64).ravel().reshape(c, h, w)
    d = (z >> np.uint64(1)).astype(np.int64) ^ -(z & np.uint64(1)).astype(np.int64)
    k = np.cumsum(np.cumsum(np.cumsum(d, axis=0), axis=1), axis=2)
    if header["step_log2"] is None:
        p = k.astype(np.int32).view(np.float32)
    else:
        p = (k.astype(np.float64) * 2.0 ** header["step_log2"]).astype(np.float32)
    if len(shape) == 2:
        return np.ascontiguousarray(p[0])
    return np.ascontiguousarray(p.transpose(1, 2, 0))


# ------------------------------------------------------------------------------------ unpack
def is_packed(folder) -> bool:
    """Whether ``folder`` holds packed references (this module's layout) rather than npz files."""
    return (Path(folder) / "packed" / "format.json").is_file()


def unpack(folder, dest) -> Path:
    """Write the references packed in ``folder`` to ``dest`` in the original layout (``manifest.json``,
    ``inputs/``, ``outputs/*.npz``) and return ``dest``. The entries that need the authors' images
    (not packed) get no output file."""
    src, dest = Path(folder), Path(dest)
    fmt = json.loads((src / "packed" / "format.json").read_text())
    if fmt.get("format") != FORMAT:
        raise ValueError(f"{src}/packed is format {fmt.get('format')}, this module reads {FORMAT}")
    (dest / "outputs").mkdir(parents=True, exist_ok=True)
    shutil.copytree(src / "inputs", dest / "inputs", dirs_exist_ok=True)
    shutil.copyfile(src / "manifest.json", dest / "manifest.json")
    decoded: dict[tuple[str, str], np.ndarray] = {}
    pending = []  # arrays stored as a corner of another one: after every stored array
    for entry in json.loads((src / "manifest.json").read_text()):
        stem = Path(entry["output"]).stem
        if stem in fmt["not_packed"]:
            continue
        with np.load(src / "packed" / f"{stem}.npz") as z:
            headers = json.loads(str(z["headers"]))
            for key, header in headers.items():
                if "same_as" in header:
                    pending.append((stem, key, header))
                else:
                    decoded[stem, key] = _decode(z[key].tobytes(), header)
    for stem, key, header in pending:
        other = decoded[tuple(header["same_as"])]
        decoded[stem, key] = np.ascontiguousarray(other[tuple(slice(0, n) for n in header["shape"])])
    by_stem: dict[str, dict] = {}
    for (stem, key), arr in decoded.items():
        by_stem.setdefault(stem, {})[key] = arr
    for stem, arrays in by_stem.items():
        np.savez(dest / "outputs" / f"{stem}.npz", **arrays)
    return dest


# ------------------------------------------------------------------------------------ pack
def pack(source, dest=HERE) -> dict:
    """Pack the reference folder ``source`` into ``dest`` (see the module docstring); returns
    per-operator statistics (bytes, the largest decoding error, uint8 pixels changed)."""
    source, dest = Path(source), Path(dest)
    manifest = json.loads((source / "manifest.json").read_text())
    (dest / "packed").mkdir(parents=True, exist_ok=True)
    (dest / "inputs").mkdir(exist_ok=True)
    for old in (dest / "packed").glob("*.npz"):
        old.unlink()
    shutil.copyfile(source / "manifest.json", dest / "manifest.json")
    authors = {name for _, name in AUXILIARY.values()}
    for name in sorted({e["input"] for e in manifest}):
        if Path(name).name in authors:
            raise ValueError(f"{name} is one of the authors' images: not packed")
        shutil.copyfile(source / name, dest / name)
    not_packed = sorted(Path(e["output"]).stem for e in manifest if e["operator"] in AUXILIARY)
    arrays = []  # (stem, key, operator, input, array)
    for e in manifest:
        if e["operator"] in AUXILIARY:
            continue
        with np.load(source / e["output"]) as z:
            for key in z.files:
                arrays.append((Path(e["output"]).stem, key, e["operator"], e["input"], z[key]))
    # corners: an array equal to the top-left corner of a larger (or equal, earlier) array of the
    # same input is stored as a reference to it
    order = sorted(range(len(arrays)), key=lambda i: (-arrays[i][4].size, i))
    stored: list[int] = []
    same_as: dict[int, int] = {}
    for i in order:
        a = arrays[i][4]
        for j in stored:
            b = arrays[j][4]
            if (arrays[j][3] == arrays[i][3] and b.ndim == a.ndim
                    and all(n <= m for n, m in zip(a.shape, b.shape))
                    and np.array_equal(b[tuple(slice(0, n) for n in a.shape)], a)):
                same_as[i] = j
                break
        else:
            stored.append(i)
    stats: dict[str, dict] = {}
    files: dict[str, dict] = {}
    for i, (stem, key, op, _inp, a) in enumerate(arrays):
        step = STEP_LOG2.get(op) if key == "output" else None
        if i in same_as:
            j = same_as[i]
            header = {"shape": list(a.shape), "same_as": [arrays[j][0], arrays[j][1]]}
            blob = b""
        else:
            blob, header = _encode(a, step)
            back = _decode(blob, header)
            err = float(np.max(np.abs(back.astype(np.float64) - a))) if a.size else 0.0
            limit = 0.0 if step is None else 2.0 ** (step - 1)
            if back.dtype != np.float32 or back.shape != a.shape or err > limit:
                raise AssertionError(f"{stem}/{key}: unpacks with error {err:g} > {limit:g}")
            header["max_error"] = err
            s = stats.setdefault(op, {"bytes": 0, "max_error": 0.0, "uint8_changed": 0})
            s["bytes"] += len(blob)
            s["max_error"] = max(s["max_error"], err)
            u8 = lambda x: np.floor(np.clip(x.astype(np.float64), 0, 1) * 255 + 0.5)  # noqa: E731
            s["uint8_changed"] += int(np.sum(u8(back) != u8(a)))
        f = files.setdefault(stem, {"headers": {}, "blobs": {}})
        f["headers"][key] = header
        f["blobs"][key] = np.frombuffer(blob, np.uint8)
    for stem, f in files.items():
        np.savez(dest / "packed" / f"{stem}.npz", headers=np.array(json.dumps(f["headers"])),
                 **f["blobs"])
    (dest / "packed" / "format.json").write_text(json.dumps(
        {"format": FORMAT, "step_log2": STEP_LOG2, "not_packed": not_packed}, indent=1)
        + "\n")
    return stats


def main(argv=None) -> int:
    args = sys.argv[1:] if argv is None else argv
    source = Path(args[0]) if args else HERE.parents[2] / "shared" / "reference"
    if not (source / "manifest.json").is_file():
        print(f"error: no reference manifest at {source}", file=sys.stderr)
        return 2
    stats = pack(source)
    for op, s in sorted(stats.items()):
        print(f"{op:12s} {s['bytes'] / 1e6:6.2f} MB  max error {s['max_error']:.3g}  "
              f"uint8 values changed {s['uint8_changed']}")
    total = sum(p.stat().st_size for p in HERE.rglob("*") if p.is_file())
    print(f"tests/reference in all: {total / 1e6:.2f} MB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
