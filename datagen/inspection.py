"""Looking at a dataset: ``info`` (a table), ``verify`` (every chunk read + checks + recomputation), ``show``."""
from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np

import operators

from . import code_version
from .plan import AUX, aux_record, effective_gammas, read_aux
from .store import (ATTRIBUTES_DIGEST, SPLITS, UnsafeFileError, attributes_digest,
                    integrity_problems, op_attrs, op_kind, op_names, open_file, pair_datasets,
                    store_keys, summary)

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
        lines += ["", f"{'operator':<12}{'kind':<12}{'channels':<9}{'split':<7}{'pairs':>7}  "
                      f"{'γ min':>9}  {'γ max':>9}  law"]
        for r in summary(f):
            lo, hi = (("-", "-") if np.isnan(r["gamma_min"]) else
                      (f"{r['gamma_min']:.5g}", f"{r['gamma_max']:.5g}"))
            lines.append(f"{r['operator']:<12}{r['kind']:<12}{r['channels']:<9}{r['split']:<7}"
                         f"{r['pairs']:>7}  {lo:>9}  {hi:>9}  {r['law']}")
        lines.append("")
        for name in op_names(f):
            at = op_attrs(f, name)
            gamma = (f"{at['gamma_name']} in {[float(x) for x in at['gamma_range']]} ({at['law']})"
                     if len(at["gamma_range"]) else "no γ (fixed effect)")
            pair = ""
            if "pair_input" in at:
                size = int(at["pair_size"])
                pair = (f"; pair = ({at['pair_input']}, {at['pair_target']}), {size}x{size}, "
                        f"{at['pair_layout']}")
            lines.append(f"{name}: {at['title']}; {gamma}; fixed {at['fixed']}{pair}")
    return "\n".join(lines)


#: Every dataset a file must have (``<op>`` for each operator group).
REQUIRED = ("images/file", "images/split", "sources/pixels", "sources/image", "sources/box",
            "sources/scale", "sources/split")
OP_REQUIRED = ("gamma", "gamma_effective", "source", "split")


def op_required(f, name: str) -> list[str]:
    """The datasets of ``/ops/<name>``: the index arrays, the images of its kind, the seeds of a
    random degradation."""
    keys = list(store_keys(op_kind(f, name))) + list(OP_REQUIRED)
    try:
        if operators.get(name).random:
            keys.append("seed")
    except ValueError:  # an operator this version does not know: its checks report it
        pass
    return keys


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


def verify(path, *, samples: int = 3, seed: int = 0, exemplar=None,
           texture=None, verbose: bool = True) -> tuple[str, bool]:
    """Check that every chunk of every dataset reads back intact (Fletcher-32 checksums in files of
    format 2), then structure, dtypes, γ laws, indices and the split, and recompute ``samples``
    pairs per operator from the recorded parameters (``operators.pair`` with the recorded γ and
    seed). A damaged file gives failed checks naming the damaged datasets, never an exception.
    ``exemplar``/``texture``: the style exemplar / pencil texture the file was made with, when
    not the operators' defaults (the file records only their name and hash). ``verbose``:
    the report lists every check (PASS and FAIL); without it only the failed ones, the notes
    and the summary (a dataset of 15 operators has some 230 checks).

    Returns (report, all passed).
    """
    aux_paths = {"style": exemplar, "pencil": texture}
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

    try:
        f = open_file(path, check=False)
    except UnsafeFileError as exc:  # nothing of it is read: the reasons are the report
        lines = [f"FAIL  all data inside the file  [{r}]" for r in exc.reasons]
        lines.append(f"note: {exc}")
        return "\n".join(lines) + f"\n\n{path}: SOME CHECKS FAILED (0/1)", False
    with f:
        # 0. the cheap checks every reader makes on open (format version, lengths, storage)
        try:
            structure = integrity_problems(f)
        except Exception as exc:  # noqa: BLE001 - damage: the chunk reads below say where
            check("format version known, datasets as long as their index arrays",
                  False, _short(exc))
            structure = None
        sizes: list[str] = []
        if structure is not None:
            version_ok = not (structure and structure[0].startswith("format version"))
            check("format version known", version_ok, structure[0] if not version_ok else "")
            if not version_ok:  # nothing else can be judged by this version
                structure = sizes = ["unknown format"]
            else:
                sizes = [p for p in structure if " rows" in p or " is missing" in p]
                check("datasets as long as their index arrays and stored in full", not sizes,
                      "; ".join(sizes[:5])
                      + (f" and {len(sizes) - 5} more" if len(sizes) > 5 else ""))
        # a dataset that declares more than it stores is not read (it would read fill values,
        # possibly for ever); a file of an unknown format not at all
        oversized = {p.split(" ")[0] for p in sizes}
        skip_all = sizes == ["unknown format"]
        # 1. every chunk of every dataset, checksums verified where the file has them
        datasets: list[tuple[str, object]] = []

        def collect():
            f.visititems(lambda name, obj: datasets.append((name, obj))
                         if hasattr(obj, "dtype") and name not in oversized else None)

        if not skip_all:
            guarded("file structure readable", collect)
        names = {n for n, _ in datasets} | oversized
        expected = list(REQUIRED)
        if not skip_all:
            guarded("operator groups readable",
                    lambda: expected.extend(f"ops/{op}/{k}" for op in op_names(f)
                                            for k in op_required(f, op)))
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
        # 2. meaning: structure, γ laws, split, recomputed pairs (not on a file whose datasets
        # do not hold together: every figure would be a fill value)
        if not sizes:
            guarded("attributes readable and consistent",
                    lambda: _content_checks(f, check, guarded, samples, seed, aux_paths, notes))
    ok = all(c[1] for c in checks)
    lines = [f"{'PASS' if c[1] else 'FAIL'}  {c[0]}" + (f"  [{c[2]}]" if c[2] and not c[1] else "")
             for c in checks if verbose or not c[1]]
    lines += [f"note: {n}" for n in notes]
    damaged = sorted({c[0].split(":")[0] for c in checks if not c[1] and "every chunk" in c[0]})
    if damaged:
        lines.append(f"damaged datasets: {', '.join(damaged)}")
    lines.append(f"\n{path}: {'all checks passed' if ok else 'SOME CHECKS FAILED'} "
                 f"({sum(c[1] for c in checks)}/{len(checks)})"
                 + ("" if verbose else "; --verbose lists every check"))
    return "\n".join(lines).lstrip("\n"), ok


def _content_checks(f, check, guarded, samples: int, seed: int, aux_paths: dict,
                    notes: list) -> None:
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
            f, name, px, n, s, src_split, rng, samples, file_code, check, aux_paths, notes))


def _aux_overrides(name: str, at: dict, aux_paths: dict, notes: list):
    """Keyword arguments that remake the recorded auxiliary image of ``name`` (style exemplar,
    pencil texture), {} for the others, or None when the recorded one is not at hand."""
    key = AUX.get(name)
    if key is None:
        return {}
    recorded = at["fixed"].get(key)
    given = aux_paths.get(name)
    given = None if given is None else str(given)
    if given is not None and not Path(given).is_file():
        raise ValueError(f"--{key} {given}: no such file")
    # read once: the pixels compared with the record are the pixels the pairs are remade with
    read = None if given is None else read_aux(name, given)
    if not isinstance(recorded, dict):  # made before auxiliary images were recorded
        return {} if read is None else {key: read.array}
    have = aux_record(name, None) if read is None else read.record
    if have["sha256"] != recorded.get("sha256"):
        notes.append(f"{name}: pairs not recomputed: the file was made with {key} "
                     f"{recorded.get('name')} (sha256 {str(recorded.get('sha256'))[:16]}), "
                     f"{'not the default' if given is None else 'not ' + have['name']}; "
                     f"pass --{key} FILE")
        return None
    return {} if read is None else {key: read.array}


def _op_checks(f, name, px, n, s, src_split, rng, samples, file_code, check, aux_paths,
               notes) -> None:
    g, at = f["ops"][name], op_attrs(f, name)
    spec = operators.get(name)
    kind = op_kind(f, name)
    check(f"{name}: kind and channels as the registry says",
          kind == spec.kind and str(at.get("channels", "rgb")) == spec.channels
          or "kind" not in at, f"file: {kind}/{at.get('channels')}, registry: "
                               f"{spec.kind}/{spec.channels}")
    inp, tgt = pair_datasets(f, name)
    gamma = g["gamma"][:]
    geff, src, split = g["gamma_effective"][:], g["source"][:], g["split"][:]
    m = len(gamma)
    p = int(at.get("pair_size", s))
    single = kind == "degradation" and spec.channels in ("y", "gray")
    shape = (m, p, p) if single else (m, p, p, 3)
    for key in store_keys(kind):
        ds = g[key]
        check(f"{name}: {key} {shape} uint8", ds.dtype == np.uint8 and ds.shape == shape,
              f"{ds.shape} {ds.dtype}")
    seeds = g["seed"][:] if "seed" in g else None
    if spec.random:
        check(f"{name}: one seed per pair", seeds is not None and len(seeds) == m)
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
    tr = split == 0
    if not spec.has_gamma:
        check(f"{name}: fixed effect: no γ, one pair per crop",
              np.all(np.isnan(gamma)) and np.array_equal(np.sort(src), np.arange(n)))
    else:
        law = spec.law
        lo, hi = at["gamma_range"]
        inside = (gamma[tr] >= lo) & (gamma[tr] <= hi)
        if law == "integer":
            inside &= gamma[tr] == np.round(gamma[tr])
        if law == "discrete":
            inside = np.isin(gamma[tr], np.asarray(law.values))
        check(f"{name}: training γ inside [{lo:g}, {hi:g}] ({at['law']})", np.all(inside))
        check(f"{name}: test and single γ are the paper's test values",
              np.all(np.isin(gamma[~tr], np.asarray(at["test_gammas"]))))
    check(f"{name}: effective γ consistent",
          np.array_equal(geff, effective_gammas(name, gamma), equal_nan=True))
    fixed = {k: v for k, v in at["fixed"].items() if k != AUX.get(name)}
    aux = _aux_overrides(name, at, aux_paths, notes)
    if aux is None:
        return
    picks = rng.choice(m, size=min(samples, m), replace=False) if m else []
    bad = []
    for k in sorted(int(q) for q in picks):
        crop = px[src[k]][:p, :p]
        gk = None if np.isnan(gamma[k]) else float(gamma[k])
        sk = None if seeds is None else int(seeds[k])
        try:
            x, y = operators.pair(name, crop, gk, seed=sk, **fixed, **aux)
        except ValueError as exc:  # a γ outside the law (already reported above)
            bad.append(f"pair {k}: {exc}")
            continue
        want = {tgt: y} if inp is None else {inp: x, tgt: y}
        for key, value in want.items():
            diff = np.abs(operators.to_uint8(value).astype(int) - g[key][k].astype(int))
            if diff.max() > 0:
                bad.append(f"pair {k} {key}: {np.mean(diff > 0):.3%} pixels differ, "
                           f"max {diff.max()}")
    check(f"{name}: {len(picks)} random pairs recomputed identically", not bad,
          "; ".join(bad) + (f" (file made by {file_code}, this is {code_version()})"
                            if bad and file_code != code_version() else ""))


def contact_sheet(path, out, *, ops=None, index: int = 0, force: bool = False) -> Path:
    """A PNG: one test source crop and its pairs at the test γ, one row per operator.

    A filter's row shows the source crop, then its outputs; a degradation's row the clean target,
    then the degraded inputs; single-channel (Y, gray) images are drawn in gray.

    ``out`` (its extension sets the format, PNG unless it names another that matplotlib writes)
    is written atomically and never over the dataset, a folder or a special file, nor, unless
    ``force``, over an existing file this function (or ``python -m model apply``) did not write
    (:func:`datagen.fs.check_output` with :func:`datagen.fs.image_is_ours`): checked before any
    work and again before writing. A symbolic link at ``out`` is replaced, its target untouched.
    """
    from .fs import check_output, image_is_ours, mark_image, write_checked

    guard = dict(inputs=(path,), what="sheet", own_marker=None if force else image_is_ours,
                 replace_hint="; --force replaces it")
    check_output(out, **guard)
    import matplotlib
    from matplotlib.backend_bases import FigureCanvasBase

    fmt = Path(out).suffix[1:].lower() or "png"
    if fmt not in FigureCanvasBase.get_supported_filetypes():
        raise ValueError(f"cannot write {out}: its extension (.{fmt}) is not a format matplotlib "
                         "writes; use .png, .jpg, .pdf, .svg, ...")

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
            inp, tgt = pair_datasets(f, name)
            sel = np.flatnonzero(g["source"][:] == src)
            order = sel[np.argsort(g["gamma"][sel])]
            spec = operators.get(name) if name in operators.ALL else None
            gname = (spec.gamma_text if spec is not None else g.attrs["gamma_name"]) or "fixed"
            if inp is None:
                first, shown = ("input", source), tgt
            else:
                first, shown = ("target (clean)", g[tgt][int(order[0])]), inp
            cells = [(f"{gname}={float(g['gamma'][k]):.4g}" if not np.isnan(g["gamma"][k])
                      else "output", g[shown][k]) for k in order]
            rows.append((name, first, cells))
        image_file = f["images/file"][f["sources/image"][src]].decode()
    ncol = 1 + max(len(r[2]) for r in rows)
    fig, axes = plt.subplots(len(rows), ncol, figsize=(2.2 * ncol, 2.35 * len(rows)),
                             squeeze=False)

    def draw(ax, img, title):
        if img.ndim == 2:
            ax.imshow(img, cmap="gray", vmin=0, vmax=255)
        else:
            ax.imshow(img)
        ax.set_title(title, fontsize=9)

    for r, (name, (title, first), cells) in enumerate(rows):
        draw(axes[r, 0], first, title)
        axes[r, 0].set_ylabel(name.upper(), fontsize=11)  # "L0", never "l0" (reads as I0)
        for c, (label, img) in enumerate(cells, start=1):
            draw(axes[r, c], img, label)
        for ax in axes[r]:
            ax.set_xticks([])
            ax.set_yticks([])
            if not ax.images:
                ax.axis("off")
    fig.suptitle(f"{Path(path).name}: test crop {src} of {Path(image_file).name}", fontsize=10)
    fig.tight_layout(rect=(0, 0, 1, 0.985))
    out = Path(out)
    buf = io.BytesIO()
    try:
        fig.savefig(buf, dpi=100, format=fmt)
    finally:
        plt.close(fig)
    write_checked(out, mark_image(buf.getvalue()), **guard)
    return out
