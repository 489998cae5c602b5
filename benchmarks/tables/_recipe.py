"""A one-page "reproduce this table" recipe, generated from the registry and the committed
results: the commands (train the models, make the table, re-render it), the models it trains at
that scale (its run list), how long the committed run took (its sidecar: hardware, wall time of
the measuring, total training time of its models) and the figures to expect (its CSV, or its
summary for a long table, each difference with its interval where the CSV has one).

``python -m benchmarks recipe TABLE`` prints it (:func:`recipe`); nothing is run or written.
"""
from __future__ import annotations

import json
import math
from collections import Counter
from pathlib import Path

import pandas as pd

from . import get

#: at most this many rows of figures (a longer table shows its summary, else its first rows)
MAX_ROWS = 16
#: suffixes of a difference's interval columns (:mod:`benchmarks._stats`)
_INTERVAL = ("_lo", "_hi")
_HIDDEN = ("_lo", "_hi", "_lopo", "_verdict", "_inside")


def _value(v) -> str:
    if isinstance(v, float):
        return "" if math.isnan(v) else f"{v:.4g}" if abs(v) < 100 else f"{v:.1f}"
    return str(v)


def figures(df: pd.DataFrame) -> pd.DataFrame:
    """``df``'s columns a reader compares (the paper's own figures and the interval columns
    left out), each difference with an interval written ``value [lo, hi]``, as text."""
    keep = [c for c in df.columns if not str(c).startswith("paper_")
            and not str(c).endswith(_HIDDEN)]
    out = pd.DataFrame(index=df.index)
    for c in keep:
        lo, hi = (f"{c}{s}" for s in _INTERVAL)
        if lo in df and hi in df:
            out[c] = [_value(v) + ("" if pd.isna(a) or pd.isna(b)
                                   else f" [{_value(a)}, {_value(b)}]")
                      for v, a, b in zip(df[c], df[lo], df[hi])]
        else:
            out[c] = [_value(v) for v in df[c]]
    return out.reset_index(drop=True)


def _runs(runs: list) -> list[str]:
    """The run list in a few lines: per architecture, how many models and on which operators
    (or joint operator sets)."""
    by: dict[str, Counter] = {}
    for r in runs:
        by.setdefault(r.arch, Counter())[r.op] += 1
    lines = []
    for arch, ops in by.items():
        per = set(ops.values())
        each = f", {per.pop()} each (one per γ)" if len(per) == 1 and max(ops.values()) > 1 \
            else ""
        lines.append(f"- `{arch}`: {sum(ops.values())} on {', '.join(ops)}{each}")
    return lines


def recipe(name: str, scale: str | None = None, results=None) -> str:
    """The recipe of table ``name`` (alias or CSV name) at ``scale`` (default: the scale of the
    committed table in ``results``, else small) as Markdown."""
    from .._report import REPO, markdown

    table = get(name)
    results = Path(results) if results is not None else REPO / "results"
    meta_path, csv = results / f"{table.name}.meta.json", results / f"{table.name}.csv"
    meta = json.loads(meta_path.read_text()) if meta_path.is_file() else {}
    scale = scale or meta.get("scale") or "small"
    out = [f"# Reproduce {table.label or table.name}", "",
           f"Table `{table.name}` (alias `{table.alias}`) at the {scale} scale.", "",
           "## Commands", "", "```bash"]
    runs = table.run_list(None, scale) if scale in table.scales else []
    if runs:
        out.append(f"python -m benchmarks.prepare --tables {table.runs} --scale {scale}"
                   "   # train its models (resumable)")
    if table.runnable:
        out.append(f"python -m benchmarks run {table.alias} --scale {scale}   # measure, write")
    else:
        out.append(f"pytest {table.suite} --scale {scale}   # measure, write")
    out += ["python -m benchmarks.render results/   # re-make its LaTeX from the CSV", "```", ""]
    out += ["## Models it trains", ""]
    if runs:
        out += [f"{len(runs)} models (run list `{table.runs}`, `python -m benchmarks.prepare "
                f"--tables {table.runs} --scale {scale} --list`):", ""] + _runs(runs)
    else:
        out.append("None (its networks are untrained or it times operators: nothing to train).")
    out += ["", "## Expected time", ""]
    if meta and meta.get("scale") == scale:
        train = meta.get("training_wall_s_total")
        out.append(f"From the committed sidecar (`{meta_path.name}`), on {meta.get('hardware')}: "
                   f"{meta.get('wall_time_s')} s to measure and write the table"
                   + (f", after {float(train) / 3600:.1f} h of training the {meta.get('models')}"
                      f" models behind it one after another (the sum of their training times; "
                      "`prepare --jobs` runs several at once)" if train else "")
                   + ".")
    else:
        out.append(f"No committed run at the {scale} scale to time it by; "
                   "`python -m benchmarks.prepare --dry-run` estimates the training.")
    out += ["", "## Expected figures", ""]
    if csv.is_file() and meta.get("scale") == scale:
        df = pd.read_csv(csv)
        shown = (table.summary(df) if table.summary is not None and len(df) > MAX_ROWS
                 else df)
        note = "" if shown is df else " (its summary; every row is in the CSV)"
        intervals = any(f"{c}_lo" in shown for c in shown.columns)
        paper = any(str(c).startswith("paper_") for c in df.columns)
        out += [f"From the committed `{csv.name}`{note}."
                + (" `value [lo, hi]`: the paired 95 % bootstrap interval over the test crops."
                   if intervals else "")
                + (" The paper's own figures are its `paper_*` columns." if paper else ""), "",
                markdown(figures(shown.head(MAX_ROWS)))]
        if len(shown) > MAX_ROWS:
            out += ["", f"(first {MAX_ROWS} of {len(shown)} rows)"]
    else:
        out.append(f"No committed table at the {scale} scale: run it to see its figures.")
    return "\n".join(out) + "\n"
