"""Looking at a dataset: ``info`` (a table), ``verify`` (every chunk read + checks + recomputation), ``show``."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

import operators

from . import code_version
from .store import (ATTRIBUTES_DIGEST, SPLITS, attributes_digest, op_attrs, op_names, open_file,
                    summary)

_TEST, _SINGLE = SPLITS["test"], SPLITS["single"]


def info(path) -> str:
    """A human-readable description of a dataset file."""
    with open_file(path) as f:
        a = f.attrs
        n_src = f["sources/pixels"].shape[0]
        lines = [
            f"{path}: {Path(path).stat().st_size / 2**20:.1f} MiB, format v{a['format_version']}, "
            f"made by {a['version']} ({a['code']}) on {a['created']}",
            f"command: {a['command']}",
            f"images: {a['images']}; {len(f['images/file'])} files, {n_src} crops of "
            f"{a['size']}x{a['size']} at scales {[float(x) for x in a['scales']]}; test images: "
            f"{int((f['images/split'][:] == _TEST).sum())}; seed {a['seed']}, "
            f"{a['per_image']} γ per training crop",
        ]
        skipped = json.loads(a["skipped"])
        if skipped:
            lines.append(f"skipped images: {len(skipped)} ({'; '.join(skipped[:3])}"
                         f"{' ...' if len(skipped) > 3 else ''})")
        lines += ["", f"{'operator':<9}{'split':<7}{'pairs':>7}  {'γ min':>9}  {'γ max':>9}  law"]
        for r in summary(f):
            lines.append(f"{r['operator']:<9}{r['split']:<7}{r['pairs']:>7}  {r['gamma_min']:>9.5g}"
                         f"  {r['gamma_max']:>9.5g}  {r['law']}")
        lines.append("")
        for name in op_names(f):
            at = op_attrs(f, name)
            lines.append(f"{name}: {at['title']}; {at['gamma_name']} in {[float(x) for x in at['gamma_range']]} "
                         f"({at['law']}); fixed {at['fixed']}")
    return "\n".join(lines)


#: Every dataset a file must have (``<op>`` for each operator group).
REQUIRED = ("images/file", "images/split", "sources/pixels", "sources/image", "sources/box",
            "sources/scale", "sources/split")
OP_REQUIRED = ("output", "gamma", "gamma_effective", "source", "split")


def _short(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}"[:200]


def read_every_chunk(ds, block: int = 64) -> list[str]:
    """Read all of ``ds``; returns what could not be read ('rows 3, 17: <error>'), [] if intact.

    With the Fletcher-32 filter (files of format 2) every chunk's checksum is verified by HDF5
    as it is read; without it only damage that breaks decompression or the file's structure shows.
    """
    n = ds.shape[0] if ds.shape else 0
    if n == 0 or ds.ndim == 0:
        try:
            ds[()]
            return []
        except Exception as exc:  # noqa: BLE001 - any failure is damage to report
            return [_short(exc)]
    bad, first_error = [], None
    for a in range(0, n, block):
        b = min(n, a + block)
        try:
            ds[a:b]
            continue
        except Exception as exc:  # noqa: BLE001
            first_error = first_error or exc
        for r in range(a, b):  # find the damaged rows of this block
            try:
                ds[r:r + 1]
            except Exception as exc:  # noqa: BLE001
                first_error = first_error or exc
                bad.append(r)
    if first_error is None:
        return []
    rows = ", ".join(map(str, bad[:10])) + (f" and {len(bad) - 10} more" if len(bad) > 10 else "")
    return [f"rows {rows} unreadable ({_short(first_error)})" if bad else _short(first_error)]


def verify(path, *, samples: int = 3, seed: int = 0) -> tuple[str, bool]:
    """Check that every chunk of every dataset reads back intact (Fletcher-32 checksums in files of
    format 2), then structure, dtypes, γ laws, indices and the split, and recompute ``samples``
    pairs per operator from the recorded parameters. A damaged file gives failed checks naming
    the damaged datasets, never an exception.

    Returns (report, all passed).
    """
    checks: list[tuple[str, bool, str]] = []
    notes: list[str] = []

    def check(name, ok, detail=""):
        checks.append((name, bool(ok), detail))

    def guarded(name, fn):
        """Run one check; an exception (a damaged or incomplete file) is a failed check."""
        try:
            fn()
        except Exception as exc:  # noqa: BLE001 - reported as a failed check
            check(name, False, _short(exc))

    with open_file(path) as f:
        # 1. every chunk of every dataset, checksums verified where the file has them
        datasets: list[tuple[str, object]] = []

        def collect():
            f.visititems(lambda name, obj: datasets.append((name, obj))
                         if hasattr(obj, "dtype") else None)

        guarded("file structure readable", collect)
        names = {n for n, _ in datasets}
        expected = list(REQUIRED)
        guarded("operator groups readable",
                lambda: expected.extend(f"ops/{op}/{k}" for op in op_names(f) for k in OP_REQUIRED))
        missing = [n for n in expected if n not in names]
        check("every dataset present", not missing, f"missing: {', '.join(missing)}")
        unchecked = []
        for name, ds in datasets:
            def read(name=name, ds=ds):
                if not ds.fletcher32:
                    unchecked.append(name)
                damage = read_every_chunk(ds)
                check(f"{name}: every chunk intact" + (" (checksums verified)" if ds.fletcher32
                                                       else ""), not damage, "; ".join(damage))
            guarded(f"{name}: every chunk intact", read)
        def attributes():
            stored = f.attrs.get(ATTRIBUTES_DIGEST)
            actual = attributes_digest(f)  # reads every attribute of every object
            if stored is None:
                notes.append("the attributes have no checksum (a file of format 1): they were "
                             "read, not verified")
                return
            check("attributes intact (checksum)", stored == actual,
                  "an attribute was changed or damaged")

        guarded("attributes intact (checksum)", attributes)
        if unchecked:
            notes.append(f"{len(unchecked)} dataset(s) have no checksum (a file of format 1, made "
                         "before checksums): flipped bytes are found only where they break "
                         "decompression; rebuild the file to get checksums")
        # 2. meaning: structure, γ laws, split, recomputed pairs
        guarded("attributes readable and consistent",
                lambda: _content_checks(f, check, guarded, samples, seed))
    ok = all(c[1] for c in checks)
    lines = [f"{'PASS' if c[1] else 'FAIL'}  {c[0]}" + (f"  [{c[2]}]" if c[2] and not c[1] else "")
             for c in checks]
    lines += [f"note: {n}" for n in notes]
    damaged = sorted({c[0].split(":")[0] for c in checks if not c[1] and "every chunk" in c[0]})
    if damaged:
        lines.append(f"damaged datasets: {', '.join(damaged)}")
    lines.append(f"\n{path}: {'all checks passed' if ok else 'SOME CHECKS FAILED'} "
                 f"({sum(c[1] for c in checks)}/{len(checks)})")
    return "\n".join(lines), ok


def _content_checks(f, check, guarded, samples: int, seed: int) -> None:
    px = f["sources/pixels"]
    n, s = px.shape[0], int(f.attrs["size"])
    check("sources: (N,S,S,3) uint8", px.dtype == np.uint8 and px.shape[1:] == (s, s, 3),
          f"{px.shape} {px.dtype}")
    img_split = f["images/split"][:]
    src_image, src_split = f["sources/image"][:], f["sources/split"][:]
    check("sources: image indices valid",
          len(src_image) and src_image.min() >= 0 and src_image.max() < len(img_split))
    check("split by source image", np.array_equal(src_split, img_split[src_image]),
          "every crop has its image's split")
    rng = np.random.default_rng(seed)
    file_code = f.attrs.get("code", "?")
    for name in op_names(f):
        guarded(f"{name}: readable", lambda name=name: _op_checks(
            f, name, px, n, s, src_split, rng, samples, file_code, check))


def _op_checks(f, name, px, n, s, src_split, rng, samples, file_code, check) -> None:
    g, at = f["ops"][name], op_attrs(f, name)
    spec = operators.get(name)
    out, gamma = g["output"], g["gamma"][:]
    geff, src, split = g["gamma_effective"][:], g["source"][:], g["split"][:]
    m = len(gamma)
    check(f"{name}: output (M,S,S,3) uint8",
          out.dtype == np.uint8 and out.shape == (m, s, s, 3), f"{out.shape} {out.dtype}")
    if not len(geff) == len(src) == len(split) == m:
        check(f"{name}: index arrays have M={m} entries", False)
        return
    check(f"{name}: index arrays have M={m} entries", True)
    if not (m and src.min() >= 0 and src.max() < n):
        check(f"{name}: source indices valid", False)
        return
    check(f"{name}: source indices valid", True)
    check(f"{name}: pair split agrees with its source's split",
          np.all((split == src_split[src]) | ((split == _SINGLE) & (src_split[src] == 0))))
    lo, hi = at["gamma_range"]
    tr = split == 0
    check(f"{name}: training γ inside [{lo:g}, {hi:g}] ({at['law']})",
          np.all((gamma[tr] >= lo) & (gamma[tr] <= hi)) and
          (at["law"] != "integer" or np.all(gamma[tr] == np.round(gamma[tr]))))
    check(f"{name}: test and single γ are the paper's test values",
          np.all(np.isin(gamma[~tr], np.asarray(at["test_gammas"]))))
    check(f"{name}: effective γ consistent",
          np.array_equal(geff, [spec.effective_gamma(v) for v in gamma]))
    picks = rng.choice(m, size=min(samples, m), replace=False) if m else []
    bad = []
    for k in sorted(int(p) for p in picks):
        try:
            redo = operators.to_uint8(operators.apply(name, px[src[k]], gamma[k], **at["fixed"]))
        except ValueError as exc:  # a γ outside the law (already reported above)
            bad.append(f"pair {k}: {exc}")
            continue
        diff = np.abs(redo.astype(int) - out[k].astype(int))
        if diff.max() > 0:
            bad.append(f"pair {k}: {np.mean(diff > 0):.3%} pixels differ, max {diff.max()}")
    check(f"{name}: {len(picks)} random pairs recomputed identically", not bad,
          "; ".join(bad) + (f" (file made by {file_code}, this is {code_version()})"
                            if bad and file_code != code_version() else ""))


def contact_sheet(path, out, *, ops=None, index: int = 0) -> Path:
    """A PNG: one test source crop and its outputs at the five test γ, one row per operator."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    with open_file(path) as f:
        names = list(ops) if ops else op_names(f)
        missing = [n for n in names if n not in op_names(f)]
        if missing:
            raise ValueError(f"{path} has no operator {missing}; it has {op_names(f)}")
        test_sources = np.flatnonzero(f["sources/split"][:] == _TEST)
        if not len(test_sources):
            raise ValueError(f"{path} has no test crops")
        if not 0 <= index < len(test_sources):
            raise ValueError(f"--index must be in [0, {len(test_sources) - 1}]")
        src = int(test_sources[index])
        source = f["sources/pixels"][src]
        rows = []
        for name in names:
            g = f["ops"][name]
            sel = np.flatnonzero(g["source"][:] == src)
            order = sel[np.argsort(g["gamma"][sel])]
            rows.append((name, g.attrs["gamma_name"],
                         [(float(g["gamma"][k]), g["output"][k]) for k in order]))
        image_file = f["images/file"][f["sources/image"][src]].decode()
    ncol = 1 + max(len(r[2]) for r in rows)
    fig, axes = plt.subplots(len(rows), ncol, figsize=(2.2 * ncol, 2.35 * len(rows)),
                             squeeze=False)
    for r, (name, gname, outs) in enumerate(rows):
        axes[r, 0].imshow(source)
        axes[r, 0].set_title("input", fontsize=9)
        axes[r, 0].set_ylabel(name, fontsize=11)
        for c, (gval, img) in enumerate(outs, start=1):
            axes[r, c].imshow(img)
            axes[r, c].set_title(f"{gname}={gval:.4g}", fontsize=9)
        for ax in axes[r]:
            ax.set_xticks([])
            ax.set_yticks([])
            if not ax.images:
                ax.axis("off")
    fig.suptitle(f"{Path(path).name}: test crop {src} of {Path(image_file).name}", fontsize=10)
    fig.tight_layout(rect=(0, 0, 1, 0.985))
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return out
