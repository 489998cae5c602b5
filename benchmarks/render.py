"""Re-make the LaTeX tables, the README and the figures of a results folder from its CSVs.

    python -m benchmarks.render results/            # every table with a CSV and a sidecar
    python -m benchmarks.render results/ --check    # only report .tex files that would change

The numbers are not recomputed: each ``NAME.tex`` is written from ``NAME.csv`` and
``NAME.meta.json`` by the same writer the benchmark suite uses (:func:`benchmarks._report.
write_tex`), so a benchmark run and a render of its CSV give the same table. Figures whose data
is a CSV (``figures/gamma_sweep.png``, ``figures/gamma_sweep_joint.png``) are re-drawn; the
others need the trained models (run ``pytest benchmarks``). Each sidecar keeps its provenance
(the command that computed the numbers) and, when its table's ``.tex`` or the sidecar itself
changes, gains ``rendered``: this command, the commit (``git rev-parse --short HEAD``) and the
time. Absolute paths recorded by older versions are made portable on the way
(:func:`benchmarks._report.portable_meta`). A file whose content would not change is not
written (bytes and modification time stay): a render of an up-to-date folder touches nothing.
"""
from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd

from datagen import code_version

from ._report import (CHECKOUT, check_results_folder, portable_meta, portable_path,
                      read_sidecars, tex_text, update_index, write_if_changed)


def head_commit() -> str:
    """``git rev-parse --short HEAD`` of the checkout, ``+dirty`` when tracked files differ
    (the code version otherwise: an installed package, whose working folder's git repository,
    if any, is not this code's)."""
    if CHECKOUT is None:
        return code_version()
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=CHECKOUT, check=True,
                              capture_output=True, text=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                               cwd=CHECKOUT, check=True, capture_output=True, text=True).stdout
        return head + ("+dirty" if dirty.strip() else "")
    except (OSError, subprocess.CalledProcessError):
        return code_version()


def tables(results_dir: Path, warn: bool = False) -> list[str]:
    """Names of the tables that have both a CSV and a sidecar (a ``*.meta.json`` that is not a
    table's sidecar is skipped: :func:`benchmarks._report.read_sidecars`)."""
    return [name for name in read_sidecars(results_dir, warn=warn)
            if (Path(results_dir) / f"{name}.csv").is_file()]


def render(results_dir, *, command: str, check: bool = False,
           written: list | None = None) -> list[str]:
    """Re-write every table's ``.tex`` (and sidecar, figures, README) in ``results_dir``.

    Returns the names whose ``.tex`` changed (with ``check``: would change; nothing written).
    Only files whose content changes are written (``written`` gets their paths): a table whose
    sidecar is already portable and whose ``.tex`` is already what its CSV and sidecar make keeps
    both untouched, bytes, modification time and the ``rendered`` stamp of the render that last
    changed them; a figure or README that is drawn the same is not rewritten either.
    """
    results_dir = Path(results_dir)
    written = [] if written is None else written
    if not results_dir.is_dir():
        raise FileNotFoundError(f"no results folder at {results_dir}")
    if not check:
        check_results_folder(results_dir)  # a README.md of the user's: refused before writing
    names = tables(results_dir, warn=check)  # (without check, the index warns when it is made)
    if not names:
        raise FileNotFoundError(f"{results_dir} has no table (NAME.csv with NAME.meta.json)")
    sidecars = read_sidecars(results_dir, warn=False)
    commit = head_commit()
    changed = []
    for name in names:
        meta_path = results_dir / f"{name}.meta.json"
        tex_path = results_dir / f"{name}.tex"
        before = tex_path.read_text() if tex_path.is_file() else None
        old = sidecars[name]
        df = pd.read_csv(results_dir / f"{name}.csv")
        unstamped = {k: v for k, v in old.items() if k != "rendered"}
        meta = portable_meta(unstamped, cache_layout=True)
        figure = _registered_figure(name)
        if figure is not None and "figure" not in meta:  # a table made before it had one
            meta["figure"] = figure
        if meta == unstamped and tex_text(name, df, old) == before:  # nothing to re-make
            if not check:
                _figures(results_dir, name, old, written)
            continue
        meta["rendered"] = {"command": command, "commit": commit,
                            "created": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
                            "note": "LaTeX, README and CSV-based figures re-made from the CSV; "
                                    "the numbers are those of `command` above"}
        after = tex_text(name, df, meta)
        if _body(after) != _body(before):
            changed.append(name)
        if check:
            continue
        for path, text in ((meta_path, json.dumps(meta, indent=1, ensure_ascii=True) + "\n"),
                           (tex_path, after)):
            if write_if_changed(path, text):
                written.append(path)
        _figures(results_dir, name, meta, written)
    if not check:
        if update_index(results_dir):  # (written only if its text changes)
            written.append(results_dir / "README.md")
    return changed


def _body(tex: str | None) -> str | None:
    """A .tex without its comment lines (provenance), to tell a changed table from a re-stamp."""
    if tex is None:
        return None
    return "\n".join(line for line in tex.splitlines() if not line.startswith("%"))


def _registered_figure(name: str) -> str | None:
    """The default path of table ``name``'s CSV-based figure (:mod:`benchmarks.tables`), or
    None when it has none."""
    from .tables import registry

    table = registry().get(name)
    return None if table is None or table.figure is None else table.figure[1]


def _figures(results_dir: Path, name: str, meta: dict, written: list) -> None:
    """Re-draw the figure of table ``name`` from its CSV if it has one (the ``figure`` of its
    entry in :mod:`benchmarks.tables`: the plot and its default path in the results folder,
    used when the sidecar names none); the file is replaced only when the drawing differs from
    it (drawn into a temporary file beside it first)."""
    from .tables import registry

    table = registry().get(name)
    if table is None or table.figure is None:
        return
    import os
    import tempfile

    plot, default = table.figure
    out = results_dir / meta.get("figure", default)
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=out.parent, prefix=f".{out.stem}.", suffix=out.suffix)
    os.close(fd)
    try:
        plot(pd.read_csv(results_dir / f"{name}.csv"), Path(tmp), str(meta.get("scale", "")))
        drawn = Path(tmp).read_bytes()
        if not (out.is_file() and out.read_bytes() == drawn):
            out.write_bytes(drawn)
            written.append(out)
    finally:
        Path(tmp).unlink(missing_ok=True)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.render",
        description="Re-make the LaTeX tables, results/README.md and the CSV-based figures from "
                    "the committed CSVs and sidecars (no benchmark is re-run).")
    parser.add_argument("--version", action="version",
                        version=f"decouple-ops benchmarks.render {code_version()}")
    parser.add_argument("results", nargs="?", default="results",
                        help="results folder (default: results)")
    parser.add_argument("--check", action="store_true",
                        help="write nothing; exit 1 if a .tex would change")
    args = parser.parse_args(argv)
    argv = sys.argv[1:] if argv is None else list(argv)
    command = shlex.join(["python", "-m", "benchmarks.render",
                          *[portable_path(a) if Path(a).is_absolute() else a for a in argv]])
    try:
        written: list[Path] = []
        changed = render(args.results, command=command, check=args.check, written=written)
    except (FileNotFoundError, ValueError) as e:  # ValueError: a README.md that is not ours
        print(f"error: {e}", file=sys.stderr)
        return 2
    verb = "would change" if args.check else "changed"
    shown = [Path(p).relative_to(args.results).as_posix() for p in written]
    print(f"{len(tables(Path(args.results)))} tables rendered; {verb}: "
          + (", ".join(changed) or "none")
          + ("" if args.check else "; files written: " + (", ".join(shown) or "none")))
    return 1 if args.check and changed else 0


if __name__ == "__main__":
    sys.exit(main())
