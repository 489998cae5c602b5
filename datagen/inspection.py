"""Looking at a dataset: ``info`` (a table), ``verify`` (integrity + recomputation), ``show``."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

import operators

from . import code_version
from .store import SPLITS, op_attrs, op_names, open_file, summary

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


def verify(path, *, samples: int = 3, seed: int = 0) -> tuple[str, bool]:
    """Check structure, dtypes, γ laws, indices and the split; recompute ``samples`` pairs per op.

    Returns (report, all passed).
    """
    checks: list[tuple[str, bool, str]] = []

    def check(name, ok, detail=""):
        checks.append((name, bool(ok), detail))

    with open_file(path) as f:
        px = f["sources/pixels"]
        n, s = px.shape[0], int(f.attrs["size"])
        check("sources: (N,S,S,3) uint8", px.dtype == np.uint8 and px.shape[1:] == (s, s, 3),
              f"{px.shape} {px.dtype}")
        img_split = f["images/split"][:]
        src_image, src_split = f["sources/image"][:], f["sources/split"][:]
        check("sources: image indices valid",
              src_image.min() >= 0 and src_image.max() < len(img_split))
        check("split by source image", np.array_equal(src_split, img_split[src_image]),
              "every crop has its image's split")
        rng = np.random.default_rng(seed)
        file_code = f.attrs["code"]
        for name in op_names(f):
            g, at = f["ops"][name], op_attrs(f, name)
            spec = operators.get(name)
            out, gamma = g["output"], g["gamma"][:]
            geff, src, split = g["gamma_effective"][:], g["source"][:], g["split"][:]
            m = len(gamma)
            check(f"{name}: output (M,S,S,3) uint8",
                  out.dtype == np.uint8 and out.shape == (m, s, s, 3), f"{out.shape} {out.dtype}")
            check(f"{name}: index arrays have M={m} entries",
                  len(geff) == len(src) == len(split) == m)
            check(f"{name}: source indices valid", m and src.min() >= 0 and src.max() < n)
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
                redo = operators.to_uint8(operators.apply(name, px[src[k]], gamma[k],
                                                          **at["fixed"]))
                diff = np.abs(redo.astype(int) - out[k].astype(int))
                if diff.max() > 0:
                    bad.append(f"pair {k}: {np.mean(diff > 0):.3%} pixels differ, max {diff.max()}")
            check(f"{name}: {len(picks)} random pairs recomputed identically", not bad,
                  "; ".join(bad) + (f" (file made by {file_code}, this is {code_version()})"
                                    if bad and file_code != code_version() else ""))
    ok = all(c[1] for c in checks)
    lines = [f"{'PASS' if c[1] else 'FAIL'}  {c[0]}" + (f"  [{c[2]}]" if c[2] and not c[1] else "")
             for c in checks]
    lines.append(f"\n{path}: {'all checks passed' if ok else 'SOME CHECKS FAILED'} "
                 f"({sum(c[1] for c in checks)}/{len(checks)})")
    return "\n".join(lines), ok


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
