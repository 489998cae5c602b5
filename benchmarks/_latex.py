"""LaTeX for the result tables: one layout per table that a paper can ``\\input``.

Every table is a ``table`` float with booktabs rules, numbers right-aligned with a fixed number of
decimals per column (or per block of rows measuring the same thing), γ symbols in math
(:func:`gamma_symbol`), and a layout that fits the text width of a plain ``article`` (checked by
``tests/test_report.py`` with pdflatex). Packages needed: ``booktabs`` and ``array``.

The layout is a function of the table's CSV rows only (the ``layout`` of its entry in the
registry, :mod:`benchmarks.tables`; a table without its own layout gets :func:`generic`), so the
benchmark run and ``python -m benchmarks.render`` write the same ``.tex`` from the same CSV.
Provenance goes into ``%`` comments (written by :mod:`benchmarks._report`), never into captions.
"""
from __future__ import annotations

import math
import re
import warnings
from dataclasses import dataclass
from typing import Callable

import numpy as np
import pandas as pd

PACKAGES = ("booktabs", "array")

_TEX_SPECIAL = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#",
                "_": r"\_", "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}",
                "^": r"\textasciicircum{}"}
_TEX_UNICODE = {"γ": r"$\gamma$", "σ": r"$\sigma$", "λ": r"$\lambda$", "Δ": r"$\Delta$",
                "²": r"$^2$", "×": r"$\times$", "−": "$-$", "–": "--", "≤": r"$\leq$",
                "≥": r"$\geq$", "→": r"$\to$", "·": r"$\cdot$", "°": r"$^\circ$"}
_GREEK = {"alpha", "beta", "gamma", "delta", "epsilon", "zeta", "eta", "theta", "iota", "kappa",
          "lambda", "mu", "nu", "xi", "pi", "rho", "sigma", "tau", "upsilon", "phi", "chi", "psi",
          "omega"}


def latex_text(text) -> str:
    """Plain text (column names, cells, captions) made safe for LaTeX, with the Greek letters
    and symbols we use written as math (``<=``/``>=`` as ≤/≥), so pdflatex compiles it."""
    text = str(text).replace("<=", "≤").replace(">=", "≥")
    return "".join(_TEX_SPECIAL.get(ch) or _TEX_UNICODE.get(ch) or ch for ch in text)


def gamma_symbol(name: str) -> str:
    """An operator's ``gamma_name`` as LaTeX math: ``lambda`` -> ``$\\lambda$``, ``sigma_s`` ->
    ``$\\sigma_s$``, ``r`` -> ``$r$``, ``fact`` -> ``$\\mathit{fact}$``; ``""`` (an operator
    without a parameter) -> ``""``."""
    if not str(name):
        return ""
    base, _, sub = str(name).partition("_")

    def part(p: str) -> str:
        if p.lower() in _GREEK:
            return "\\" + (p if p[0].islower() else p.capitalize())
        return p if len(p) == 1 else r"\mathit{" + p.replace("_", r"\_") + "}"

    return "$" + part(base) + ("" if not sub else "_{" + part(sub) + "}") + "$"


#: the papers' short names of operators whose names are long (TPAMI 2019 Tables 3 and 6)
SHORT_NAMES = {"llf_remap": "LLF remap", "wls_enhance": "WLS enh.", "style": "Styl.",
               "pencil": "Abstr.", "denoise": "den.", "jpeg": "deb.", "rain": "derain"}


def op_label(op: str) -> str:
    """The paper's name of an operator in tables (L0, WLS, ...)."""
    return latex_text(str(op).upper())


def short_label(op: str) -> str:
    """:func:`op_label`, or the papers' short name of a long one (LLF remap, Abstr., ...)."""
    return latex_text(SHORT_NAMES[op]) if op in SHORT_NAMES else op_label(op)


def _is_missing(v) -> bool:
    return v is None or (isinstance(v, float) and math.isnan(v)) or (
        isinstance(v, str) and v.strip() == "")


def number(v, decimals: int) -> str:
    """A fixed-decimal number for a right-aligned column (``--`` when missing, ``$-$`` sign)."""
    if _is_missing(v):
        return "--"
    v = float(v)
    if math.isinf(v):
        return r"$\infty$" if v > 0 else r"$-\infty$"
    s = f"{v:.{decimals}f}"
    if s.startswith("-") and float(s) == 0:
        s = s[1:]
    return s.replace("-", "$-$", 1) if s.startswith("-") else s


def scientific(v, digits: int = 2) -> str:
    """``5.9e-08`` as ``$5.9\\times10^{-8}$`` (0 as ``0``)."""
    if _is_missing(v):
        return "--"
    v = float(v)
    if v == 0:
        return "0"
    m, e = f"{v:.{digits - 1}e}".split("e")
    return f"${m}\\times10^{{{int(e)}}}$"


def decimals_for(values, significant: int = 3, most: int = 4) -> int:
    """Decimals that show the smallest nonzero magnitude with ``significant`` digits (0..most)."""
    vals = [abs(float(v)) for v in values if not _is_missing(v) and float(v) != 0
            and math.isfinite(float(v))]
    if not vals:
        return 0
    return int(min(most, max(0, significant - 1 - math.floor(math.log10(min(vals))))))


def gamma_value(v) -> str:
    """A γ value with at most three significant digits (``0.21544`` -> ``0.215``)."""
    try:
        return f"{float(v):.3g}"
    except (TypeError, ValueError):
        return latex_text(v)


# --------------------------------------------------------------------------- tabular
@dataclass
class Col:
    """A column: its header (one string per header line), alignment and the LaTeX of a cell."""

    header: tuple[str, ...]
    align: str = "r"

    @property
    def lines(self) -> int:
        return len(self.header)


MIDRULE = "\\midrule"
SPACE = "\\addlinespace"


def section(text: str, ncols: int) -> str:
    """A row naming the block of rows below it."""
    return f"\\multicolumn{{{ncols}}}{{@{{}}l}}{{\\emph{{{text}}}}} \\\\"


def tabular(cols: list[Col], rows: list, *, top: list[str] | None = None,
            headers: bool = True) -> str:
    """A booktabs ``tabular``: ``rows`` holds lists of LaTeX cells, or finished lines
    (:data:`MIDRULE`, :data:`SPACE`, :func:`section`); ``top`` lines go above the column headers
    (or replace them, with ``headers=False``)."""
    spec = "@{}" + "".join(c.align for c in cols) + "@{}"
    depth = max(c.lines for c in cols) if headers else 0
    out = [f"\\begin{{tabular}}{{{spec}}}", "\\toprule", *(top or [])]
    for i in range(depth):
        cells = []
        for c in cols:
            pad = depth - c.lines  # short headers sit on the last line
            cells.append(c.header[i - pad] if i >= pad else "")
        out.append(" & ".join(_header_cell(x, c.align) for x, c in zip(cells, cols)) + " \\\\")
    out.append(MIDRULE)
    for r in rows:
        out.append(r if isinstance(r, str) else " & ".join(r) + " \\\\")
    out += ["\\bottomrule", "\\end{tabular}"]
    return "\n".join(out)


def styled_tabular(cols: list[Col], rows: list[list[str]]) -> str:
    """The booktabs ``tabular`` of :func:`tabular` for a plain grid (every row a list of LaTeX
    cells: no section rows, rules or lines above the headers), written by pandas'
    ``Styler.to_latex``: the headers (short ones on the last line, as :func:`tabular`) become
    the frame's column levels, not sparsified (a header over one column stays over that
    column), the cells are already LaTeX (no escaping), the index is hidden. Gives the same
    text as :func:`tabular` for such a grid; the layouts with section rows (``\\multicolumn``
    rows naming a block), ``\\addlinespace`` or stacked blocks keep :func:`tabular`, which
    ``Styler`` cannot write (its rows are a frame's rows, its rules the header's and the
    table's)."""
    depth = max(c.lines for c in cols)
    heads = [tuple(_header_cell(h, c.align) for h in [""] * (depth - c.lines) + list(c.header))
             for c in cols]
    columns = (pd.MultiIndex.from_tuples(heads) if depth > 1
               else pd.Index([h[0] for h in heads]))
    frame = pd.DataFrame([list(r) for r in rows], columns=columns, dtype=object)
    spec = "@{}" + "".join(c.align for c in cols) + "@{}"
    return frame.style.hide(axis="index").to_latex(
        hrules=True, column_format=spec, sparse_columns=False).rstrip("\n")


def _header_cell(text: str, align: str) -> str:
    # headers of number columns are right-aligned like the numbers; of text columns, left
    if not text:
        return ""
    return text if align in ("r", "l") else f"\\multicolumn{{1}}{{@{{}}l}}{{{text}}}"


def wrap(width: str) -> str:
    """A left-aligned column that wraps its text at ``width`` (needs the array package)."""
    return f">{{\\raggedright\\arraybackslash}}p{{{width}}}"


def table_env(name: str, caption: str, body: str, note: str = "",
              size: str = "\\small") -> str:
    """The float: small type (``size``), tighter columns, caption above, label ``tab:<name>``."""
    lines = ["\\begin{table}[tbp]", "\\centering", size, "\\setlength{\\tabcolsep}{4pt}",
             f"\\caption{{{caption}}}", f"\\label{{tab:{name}}}", body]
    if note:
        lines.append(f"\\par\\smallskip\\parbox{{\\linewidth}}{{\\footnotesize {note}}}")
    lines.append("\\end{table}")
    return "\n".join(lines) + "\n"


def _col_header(key: str) -> tuple[str, ...]:
    """A readable header for a CSV column name (``ours_s`` -> ``ours (s)``)."""
    units = {"_s": "s", "_ms": "ms", "_db": "dB", "_pct": r"\%"}
    for suffix, unit in units.items():
        if key.endswith(suffix):
            return (latex_text(key[: -len(suffix)].replace("_", " ")), f"({unit})")
    return (latex_text(key.replace("_", " ")),)


def generic_columns(df: pd.DataFrame, keys) -> tuple[list[Col], list[Callable]]:
    """Columns and cell formatters for CSV columns shown as they are (numbers right-aligned with
    the decimals :func:`decimals_for` picks per column, text left-aligned)."""
    cols, fmts = [], []
    for k in keys:
        s = df[k]
        if pd.api.types.is_numeric_dtype(s) and not pd.api.types.is_bool_dtype(s):
            if pd.api.types.is_integer_dtype(s) or (
                    s.dropna().size and np.all(np.mod(s.dropna(), 1) == 0)
                    and s.dropna().abs().max() >= 1):
                d = 0
            else:
                d = decimals_for(s)
            fmts.append(lambda v, d=d: number(v, d))
            cols.append(Col(_col_header(k), "r"))
        else:
            fmts.append(lambda v: "" if _is_missing(v) else latex_text(v))
            cols.append(Col(_col_header(k), "l"))
    return cols, fmts


def generic(name: str, df: pd.DataFrame, caption: str) -> str:
    """Any table: its CSV columns as they are (written by ``Styler.to_latex``:
    :func:`styled_tabular`)."""
    cols, fmts = generic_columns(df, list(df.columns))
    rows = [[f(v) for f, v in zip(fmts, r)] for r in df.itertuples(index=False)]
    return table_env(name, latex_text(caption), styled_tabular(cols, rows))


# --------------------------------------------------------------------------- layouts
def _spec(op: str):
    import operators

    try:
        return operators.get(op)
    except (KeyError, ValueError):
        return None


def _gamma_name(op: str) -> str:
    spec = _spec(op)
    return (gamma_symbol(spec.gamma_name) if spec is not None else "") or r"$\gamma$"


def _ops(df: pd.DataFrame) -> list[str]:
    import operators

    seen = list(dict.fromkeys(df.operator))
    order = {n: i for i, n in enumerate(operators.NAMES)}
    return sorted(seen, key=lambda o: (order.get(o, len(order)), seen.index(o)))


def _diff_cell(row) -> str:
    """A difference with ``$^\\dagger$`` when its interval (``diff_psnr_lo``/``_hi``) contains 0
    or the leave-one-photograph-out check (``diff_psnr_lopo``) failed: inconclusive."""
    lo, hi, lopo = row.diff_psnr_lo, row.diff_psnr_hi, row.diff_psnr_lopo
    settled = (lo > 0 or hi < 0) and str(lopo).strip().lower() in ("true", "1", "1.0")
    return number(row.diff_psnr, 2) + ("" if settled else "$^\\dagger$")


def table1(name: str, df: pd.DataFrame) -> str:
    """ECCV 2018 / TPAMI 2019 Table 1: per operator a block of rows, its five test γ across."""
    ops = [o for o in _ops(df) if o != "mean"]  # the mean over the operators: the last row
    per_op = {op: df[(df.operator == op) & (df.gamma.astype(str) != "ave.")] for op in ops}
    k = max(len(d) for d in per_op.values())
    cols = [Col(("",), "l")] + [Col(("",), "r") for _ in range(k)] + [Col(("ave.",), "r"),
                                                                       Col(("paper",), "r")]
    metrics = [("PSNR single", "single_psnr", 2), ("PSNR nume.", "decouple_psnr", 2),
               ("SSIM single", "single_ssim", 3), ("SSIM nume.", "decouple_ssim", 3)]
    intervals = {"diff_psnr_lo", "diff_psnr_hi", "diff_psnr_lopo"} <= set(df.columns)
    paper = {"single_psnr": "paper_single_psnr", "decouple_psnr": "paper_decouple_psnr",
             "single_ssim": "paper_single_ssim", "decouple_ssim": "paper_decouple_ssim"}
    rows: list = []
    for i, op in enumerate(ops):
        d = per_op[op]
        ave = df[(df.operator == op) & (df.gamma.astype(str) == "ave.")]
        gammas = [gamma_value(g) for g in d.gamma] + [""] * (k - len(d))
        if i:
            rows.append(MIDRULE)
        rows.append([f"\\textbf{{{op_label(op)}}}, {_gamma_name(op)}"] + gammas + ["", ""])
        for label, key, dec in metrics:
            vals = [number(v, dec) for v in d[key]] + ["--"] * (k - len(d))
            a = number(ave[key].iloc[0], dec) if len(ave) else "--"
            p = (number(ave[paper[key]].iloc[0], dec)
                 if len(ave) and paper[key] in ave else "--")
            rows.append([f"\\quad {label}"] + vals + [a, p])
        if intervals:  # the difference, marked where its interval does not settle its sign
            vals = [_diff_cell(r) for r in d.itertuples()] + ["--"] * (k - len(d))
            a = _diff_cell(next(ave.itertuples())) if len(ave) else "--"
            p = (number(ave["paper_diff_psnr"].iloc[0], 2)
                 if len(ave) and "paper_diff_psnr" in ave else "--")
            rows.append(["\\quad nume.$-$single"] + vals + [a, p])
    mean = df[df.operator == "mean"]
    if intervals and len(mean):  # over the operators, its interval over every operator's crops
        m = next(mean.itertuples())
        rows += [MIDRULE, [f"\\textbf{{mean of the {len(ops)}}}, nume.$-$single"] + [""] * k
                 + [_diff_cell(m), number(m.paper_diff_psnr, 2)]]
    top = [f"& \\multicolumn{{{k}}}{{c}}{{test $\\gamma$}} & ave. & paper \\\\"]
    caption = ("Single-$\\gamma$ networks (single, one trained at each test $\\gamma$) vs the "
               "decouple network trained on continuously sampled $\\gamma$ (nume.): PSNR (dB) "
               "and SSIM on the test split at each operator's five test $\\gamma$, their "
               "average, and the paper's average (ECCV 2018 / TPAMI 2019 Table 1).")
    if intervals:
        caption += (" nume.$-$single: the PSNR difference; $^\\dagger$: its paired 95\\,\\% "
                    "bootstrap interval over the test crops contains 0, or its sign changes "
                    "with one photograph left out (intervals in the CSV).")
    return table_env(name, caption, tabular(cols, rows, top=top, headers=False))


_T6_METHODS = (("bgu", "BGU"), ("hdrnet", "HDRNet (DBL)"), ("concat", "$\\gamma$ as input"),
               ("single", "single-$\\gamma$"), ("decouple", "decouple"),
               ("realtime", "real-time, joint"), ("identity", "input (identity)"))
_T6_PAPER = (("paper_bgu", "paper: BGU"), ("paper_dbl", "paper: DBL"),
             ("paper_ours", "paper: ours$^*$"))
#: operators per column block of the wide tables (more are split into stacked blocks)
MAX_OP_COLUMNS = 6


def _blocks(items: list, most: int = MAX_OP_COLUMNS) -> list[list]:
    """``items`` in at most ``most`` per block, the blocks as even as possible."""
    n = max(1, -(-len(items) // most))
    size = -(-len(items) // n)
    return [items[i:i + size] for i in range(0, len(items), size)]


def _stack(tabulars: list[str]) -> str:
    return "\n\n\\smallskip\n".join(tabulars)


def _t6_gamma(op: str, g) -> str:
    if _is_missing(g):
        return "(fixed)"
    return f"{_gamma_name(op)}\\,=\\,{gamma_value(g)}"


#: Table 6's mean rows (written with its intervals, issue 24): over every operator, and over
#: those with a γ
T6_MEAN_ROWS = ("mean", "mean γ")
#: Table 6's difference rows (when its CSV has them): column prefix, label
_T6_DIFFS = (("realtime_vs_bgu_psnr", "real-time $-$ BGU"),
             ("realtime_vs_hdrnet_psnr", "real-time $-$ HDRNet"),
             ("realtime_gain_psnr", "real-time $-$ input"))


def table6(name: str, df: pd.DataFrame) -> str:
    """TPAMI 2019 Table 6's layout: methods as rows (PSNR block, SSIM block), operators across
    (more than six: two stacked blocks of operators, the mean in the last).

    With its mean rows (:data:`T6_MEAN_ROWS`, written with the intervals) the last block has
    two mean columns, each over one set of operators for every row (all of them; those with a
    γ), and the PSNR block the real-time model's differences (:data:`_T6_DIFFS`: per operator
    marked where inconclusive, the means with ``±``); a CSV without them (written before) keeps
    its one mean column over the operators each row has."""
    means = [m for m in T6_MEAN_ROWS if m in set(df.operator)]
    ops = [o for o in _ops(df) if o not in means]
    d = df.set_index("operator").loc[ops + means]
    blocks = _blocks(ops)
    parts = []
    for b, block in enumerate(blocks):
        last = b == len(blocks) - 1
        cols = [Col(("", ""), "l")] + [
            Col((short_label(op), _t6_gamma(op, d.loc[op, "gamma"])), "r") for op in block]
        if means:
            cols += [Col(("mean", "all" if m == "mean" else "$\\gamma$ ops"), "r")
                     for m in means] if last else []
        else:
            cols += [Col(("", "mean"), "r")] if last else []
        rows: list = []
        for metric, dec, unit in (("psnr", 2, "PSNR (dB)"), ("ssim", 3, "SSIM")):
            if rows:
                rows.append(MIDRULE)
            rows.append(section(unit, len(cols)))
            for group in (_T6_METHODS, _T6_PAPER):
                if group is _T6_PAPER and len(blocks) == 1:
                    rows.append(SPACE)
                for key, label in group:
                    col = f"{key}_{metric}"
                    if col not in d or (key == "identity" and len(blocks) > 1):
                        continue  # two blocks: the input's figures stay in the CSV
                    if d[col].isna().all():
                        continue  # a method this run did not make (e.g. at the medium scale)
                    vals = d[col].astype(float)
                    cells = [label] + [number(vals.loc[op], dec) for op in block]
                    if not last:
                        rows.append(cells)
                    elif means:
                        rows.append(cells + [number(vals.loc[m], dec) for m in means])
                    else:
                        rows.append(cells + [number(vals.loc[ops].mean(), dec)])
                if metric == "psnr" and group is _T6_METHODS and means:
                    rows += [[label] + [_ci_cell(d.loc[op], key, pm=False) for op in block]
                             + ([_ci_cell(d.loc[m], key) for m in means] if last else [])
                             for key, label in _T6_DIFFS
                             if _has_interval(df, key) and not d[key].isna().all()]
        parts.append(tabular(cols, rows))
    fixed = any(_is_missing(g) for g in d["gamma"])
    joint = "realtime_psnr" in d
    caption = ("Other methods at each operator's default $\\gamma$ (the middle of its five test "
               "$\\gamma$" + ("; fixed-effect operators: their effect" if fixed else "")
               + "): PSNR (dB) and SSIM on the test split, and the paper's figures (TPAMI 2019 "
               "Table 6). BGU is fitted per image; HDRNet and the single-$\\gamma$ network are "
               "trained at that $\\gamma$, the decouple and $\\gamma$-as-input networks on all "
               "$\\gamma$" + (" of one operator, the real-time model once on all operators."
                               if joint else "."))
    if joint and means:
        note = ("$^*$The paper's ``ours'': its real-time model trained jointly on the ten "
                "operators. Means: over all operators (``--'' for a method that lacks some) "
                "and over those with a $\\gamma$ (every row). Differences: per crop, paired; "
                + CI_NOTE + (" The input's figures: in the CSV." if len(blocks) > 1 else ""))
    elif joint:
        note = ("$^*$The paper's ``ours'': its real-time model trained jointly on the ten "
                "operators. Means: over the operators each row has" + ("; the input's figures: "
                                                                       "in the CSV."
                                                                       if len(blocks) > 1
                                                                       else "."))
    else:  # the six-operator table of the first version
        note = ("$^*$The paper's ``ours'' is its single-layer variant trained jointly on ten "
                "operators. Means are over the operators shown (the paper's rows: over those it "
                "reports).")
    return table_env(name, caption, _stack(parts), note,
                     size="\\footnotesize" if len(blocks) > 1 else "\\small")


# ----------------------------------------------------------------------------- intervals
def _has_interval(df: pd.DataFrame, prefix: str) -> bool:
    """Whether the CSV has ``prefix``'s interval columns (tables written before issue 24's
    intervals do not; their layout stays as it was)."""
    return {f"{prefix}_lo", f"{prefix}_hi", f"{prefix}_lopo"} <= set(df.columns)


def _settled(lo, hi, lopo) -> bool:
    return (lo > 0 or hi < 0) and str(lopo).strip().lower() in ("true", "1", "1.0")


def _ci_cell(row, prefix: str, decimals: int = 2, pm: bool = True) -> str:
    """A difference (column ``prefix``) with its interval, compactly: the value, ``±`` half the
    width of its paired 95 % interval (``<prefix>_lo``/``_hi``; the exact ends are in the CSV;
    ``pm`` False: left out, for the wide tables) and ``$^\\dagger$`` when the interval contains
    0 or the photograph check (``<prefix>_lopo``) fails."""
    get = row.get if isinstance(row, (dict, pd.Series)) else lambda k: getattr(row, k)
    v, lo, hi = get(prefix), get(f"{prefix}_lo"), get(f"{prefix}_hi")
    if _is_missing(v) or _is_missing(lo) or _is_missing(hi):
        return number(v, decimals)
    width = f"{{\\scriptsize$\\pm${number((hi - lo) / 2, decimals)}}}" if pm else ""
    return number(v, decimals) + width + ("" if _settled(lo, hi, get(f"{prefix}_lopo"))
                                          else "$^\\dagger$")


#: what the interval marks mean, for the captions
CI_NOTE = ("$\\pm$: half the width of the paired 95\\,\\% bootstrap interval over the test "
           "crops (its ends in the CSV); $^\\dagger$: the interval contains 0, or the sign "
           "changes with one photograph left out.")


# ----------------------------------------------------------------------------- Table 2
def table2(name: str, df: pd.DataFrame) -> str:
    """ECCV 2018 / TPAMI 2019 Table 2: per task a block of rows, its test γ across, ours and
    the paper's PSNR per γ, SSIM, the averages and the paper's; with the interval columns
    (issue 24), the rows nume.−single and nume.−input with their intervals
    (:func:`_ci_cell`)."""
    tasks = list(dict.fromkeys(df.operator))
    per = {t: df[(df.operator == t) & (df.gamma.astype(str) != "ave.")] for t in tasks}
    k = max(len(v) for v in per.values())
    cols = [Col(("",), "l")] + [Col(("",), "r") for _ in range(k)] + [Col(("ave.",), "r"),
                                                                       Col(("paper",), "r")]
    metrics = [("PSNR single", "single_psnr", "paper_single_psnr", 2),
               ("PSNR nume.", "decouple_psnr", "paper_decouple_psnr", 2),
               ("paper: PSNR single", "paper_single_psnr", None, 2),
               ("paper: PSNR nume.", "paper_decouple_psnr", None, 2),
               ("SSIM single", "single_ssim", "paper_single_ssim", 3),
               ("SSIM nume.", "decouple_ssim", "paper_decouple_ssim", 3),
               ("input (identity) PSNR", "identity_psnr", None, 2)]
    rows: list = []
    for i, t in enumerate(tasks):
        d = per[t]
        ave = df[(df.operator == t) & (df.gamma.astype(str) == "ave.")]
        if i:
            rows.append(MIDRULE)
        rows.append([f"\\textbf{{{op_label(t)}}}, {_gamma_name(t)}"]
                    + [gamma_value(g) for g in d.gamma] + [""] * (k - len(d)) + ["", ""])
        for label, key, paper, dec in metrics:
            vals = [number(v, dec) for v in d[key]] + ["--"] * (k - len(d))
            a = number(ave[key].iloc[0], dec) if len(ave) else "--"
            p = number(ave[paper].iloc[0], dec) if paper and len(ave) else ""
            rows.append([f"\\quad {latex_text(label)}"] + vals + [a, p])
        for label, prefix, paper in (("nume.$-$single", "diff_psnr", "paper_diff_psnr"),
                                     ("nume.$-$input", "gain_psnr", None)):
            if not _has_interval(df, prefix):
                continue
            vals = [_ci_cell(r, prefix) for r in d.itertuples()] + ["--"] * (k - len(d))
            a = _ci_cell(next(ave.itertuples()), prefix) if len(ave) else "--"
            p = number(ave[paper].iloc[0], 2) if paper and len(ave) else ""
            rows.append([f"\\quad {label}"] + vals + [a, p])
    top = [f"& \\multicolumn{{{k}}}{{c}}{{test $\\gamma$}} & ave. & paper \\\\"]
    caption = ("Restoration, one network per task: single-$\\gamma$ networks (one trained at "
               "each test $\\gamma$) vs the decouple network trained on the task's $\\gamma$ "
               "range (nume.), PSNR (dB) and SSIM on the test split (Y for SR and deblocking, "
               "gray for denoising), the paper's per-$\\gamma$ PSNR, and its averages (ECCV "
               "2018 / TPAMI 2019 Table 2; its test sets are BSD100, BSD68 and LIVE1).")
    if _has_interval(df, "diff_psnr"):
        caption += (" nume.$-$single, nume.$-$input: the PSNR differences; " + CI_NOTE)
    return table_env(name, caption, tabular(cols, rows, top=top, headers=False))


# ----------------------------------------------------------------------------- Table 3
def table3_joint(name: str, df: pd.DataFrame) -> str:
    """TPAMI 2019 Table 3 / ECCV 2018 Table 4: per variant, the filters and then the
    restoration tasks (with the averages) as two stacked column blocks; ours and the paper's
    rows; per-operator SSIM stays in the CSV (the paper gives SSIM averages only)."""
    parts = []
    for variant in dict.fromkeys(df.variant):
        d = df[df.variant == variant]
        ops = [o for o in dict.fromkeys(d.operator) if o != "avg"]
        filters = [o for o in ops if (_spec(o) is None or _spec(o).kind == "filter")]
        blocks = [b for b in (filters, [o for o in ops if o not in filters]) if b]
        title = ("TPAMI 2019 Table 3 (LLF)" if variant == "tpami" else
                 "ECCV 2018 Table 4 (shock)" if variant == "eccv" else latex_text(variant))
        for b, block in enumerate(blocks):
            last = b == len(blocks) - 1
            cols = [Col(("",), "l")] + [Col((short_label(o),), "r") for o in block]
            cols += [Col(("avg",), "r"), Col(("SSIM",), "r")] if last else []
            rows: list = [] if b else [section(f"{title}: PSNR (dB); average SSIM",
                                               len(cols))]
            for who, key, skey in (("", "psnr", "ssim"), ("paper: ", "paper_psnr",
                                                          "paper_ssim")):
                for row in dict.fromkeys(d.row):
                    r = d[d.row == row].set_index("operator")
                    cells = [latex_text(who + row)]
                    cells += [number(r[key].get(o), 2) for o in block]
                    if last:
                        cells += [number(r[key].get("avg"), 2), number(r[skey].get("avg"), 3)]
                    rows.append(cells)
                if not who:
                    rows += _t3_difference_rows(d, block, last)
            parts.append(tabular(cols, rows))
    caption = ("One network for several operators: PSNR (dB) on the test split per operator "
               "(its test $\\gamma$ averaged) of the one-operator decouple models (1 op), the "
               "6-filter or 4-restoration joint models (6/4 ops), the 10-operator joint model "
               "and the $\\gamma$-as-input network over ten, their average and average SSIM; "
               "the paper's figures below ours (TPAMI 2019 Table 3, ECCV 2018 Table 4).")
    note = ("Per-operator SSIM is in the CSV. ECCV Table 4 has no $\\gamma$-as-input row; for "
            "it the paper gives the shock column, the one-operator restoration columns and the "
            "averages (its one-operator filter columns are Table 1's). ``--'': not given.")
    if _has_interval(df, "diff_psnr"):
        note += (" $\\Delta$: the row's PSNR $-$ 1 op's; $\\gamma$ as input $-$ 10 ops: that "
                 "row $-$ the 10-operator row. " + CI_NOTE)
    return table_env(name, caption, _stack(parts), note)


def _t3_difference_rows(d: pd.DataFrame, block: list, last: bool) -> list:
    """Table 3's difference rows for one variant (``d``) and column block, when its CSV has the
    interval columns: each joint row − 1 op, and γ as input − 10 ops (per operator marked
    $^\\dagger$ where inconclusive; the average with its ``±``, :func:`_ci_cell`)."""
    rows: list = []
    for prefix, label in (("diff_psnr", "$\\Delta$ {}"), ("vs_joint_psnr", "{} $-$ 10 ops")):
        if not _has_interval(d, prefix):
            continue
        for row in dict.fromkeys(d.row):
            r = d[d.row == row].set_index("operator")
            if r[prefix].isna().all():
                continue
            text = latex_text(row if prefix == "diff_psnr" else row.split(",")[0])
            cells = [label.format(text)]
            cells += [_ci_cell(r.loc[o], prefix, pm=False) if o in r.index else "--"
                      for o in block]
            if last:
                cells += [_ci_cell(r.loc["avg"], prefix) if "avg" in r.index else "--", ""]
            rows.append(cells)
    return rows


def table3_summary_rows(df: pd.DataFrame) -> pd.DataFrame:
    """The ``avg`` rows of Table 3 (README summary), with the differences and their intervals
    and verdicts where the CSV has them (row − 1 op, γ as input − 10 ops)."""
    extra = [f"{p}{k}" for p in ("diff_psnr", "vs_joint_psnr") if _has_interval(df, p)
             for k in ("", "_lo", "_hi", "_verdict")]
    return df[df.operator == "avg"][["variant", "row", "psnr", "ssim", "paper_psnr",
                                     "paper_ssim"] + extra].reset_index(drop=True)


# ----------------------------------------------------------------------------- Table 12
#: Table 12's differences on the six operators with a γ, in its summary and LaTeX when its CSV
#: has them: column prefix, header
_T12_DIFFS = (("vs_conv_all_psnr", "$-$conv(all)"), ("gain_psnr", "$-$input"),
              ("vs_matched_psnr", "$-$its conv(all)"))


def _t12_diffs(df: pd.DataFrame) -> list:
    """The differences of :data:`_T12_DIFFS` a Table 12 CSV has (``vs_matched_psnr`` only
    where a variant trained another way has its conv(all) trained the same way)."""
    return [(p, h) for p, h in _T12_DIFFS if _has_interval(df, p)
            and (p != "vs_matched_psnr" or df[p].notna().any())]


def table12_summary_rows(df: pd.DataFrame) -> pd.DataFrame:
    """One row per variant: averages over the ten operators and over the six with a γ, the
    paper's averages (README summary and LaTeX); with the interval columns (issue 24), the
    differences on the six with a γ: ``<prefix>_gamma_ops`` with ``_lo``, ``_hi``, ``_lopo``
    and ``_verdict`` (:data:`_T12_DIFFS`)."""
    out = []
    for v, d in df.groupby("variant", sort=False):
        a, g = d[d.operator == "avg"].iloc[0], d[d.operator == "avg γ"].iloc[0]
        row = {"variant": v, "arch": d.arch.iloc[0], "training": d.training.iloc[0],
               "psnr": a.psnr, "ssim": a.ssim, "psnr_gamma_ops": g.psnr,
               "ssim_gamma_ops": g.ssim, "paper_psnr": a.paper_psnr,
               "paper_ssim": a.paper_ssim}
        for prefix, _ in _t12_diffs(df):
            row.update({f"{prefix}_gamma_ops{k}": g[f"{prefix}{k}"]
                        for k in ("", "_lo", "_hi", "_lopo", "_verdict")})
        out.append(row)
    return pd.DataFrame(out)


def table12_ablation(name: str, df: pd.DataFrame) -> str:
    """TPAMI 2019 Table 12: one row per variant, its averages (ten operators; the six with a
    γ) and the paper's; per-operator figures stay in the CSV."""
    s = table12_summary_rows(df)
    diffs = _t12_diffs(df)
    cols = [Col(("", ""), "l"), Col(("", "trained"), "l"), Col(("10 operators", "PSNR"), "r"),
            Col(("", "SSIM"), "r"), Col(("6 with $\\gamma$", "PSNR"), "r"), Col(("", "SSIM"), "r")]
    cols += [Col(("", h), "r") for _, h in diffs]
    cols += [Col(("paper", "PSNR"), "r"), Col(("", "SSIM"), "r")]
    rows: list = []
    for r in s.itertuples(index=False):
        joint = str(r.training).startswith("joint")
        rows.append([latex_text(r.variant), "jointly" if joint else "per operator",
                     number(r.psnr, 2), number(r.ssim, 3), number(r.psnr_gamma_ops, 2),
                     number(r.ssim_gamma_ops, 3)]
                    + [_ci_cell(r, f"{p}_gamma_ops") for p, _ in diffs]
                    + [number(r.paper_psnr, 2), number(r.paper_ssim, 3)])
    caption = ("Which layer depends on $\\gamma$ (TPAMI 2019 Table 12, and beyond the paper "
               "CResMD, AdaFM, DNI): each variant trained on the ten filter operators with the "
               "same budget, PSNR (dB) and SSIM on the test split averaged over the ten "
               "operators and over the six with a $\\gamma$, and the paper's averages.")
    note = ("norm($K$): only InstanceNorm $K$'s affine depends on $\\gamma$; conv($K$): the "
            "weights of the conv before it; ch1/ch2: an $M\\times1$ / $1\\times N$ slice; "
            "conv(all) is the decouple network. AdaFM and DNI learn one operator between the "
            "ends of its range: one model per operator with a $\\gamma$ (ten-operator average "
            "``--''), each with its share of the budget. Per-operator figures are in the CSV.")
    if diffs:
        note += (" $-$conv(all), $-$input: the variant's PSNR on the six with a $\\gamma$ "
                 "minus conv(all)'s, minus the input's; "
                 + ("$-$its conv(all): minus conv(all)'s trained with the same width or loss; "
                    if len(diffs) > 2 else "") + CI_NOTE)
    return table_env(name, caption, tabular(cols, rows), note,
                     size="\\footnotesize" if diffs else "\\small")


# ----------------------------------------------------------------------------- joint sweep
def sweep_joint_summary(df: pd.DataFrame) -> pd.DataFrame:
    """Per operator and model: mean and worst PSNR over the sweep, the largest change of its
    gain over the input (PSNR − the identity's) between neighbouring γ (the task itself gets
    harder or easier along γ, the gain of a model that is continuous in γ changes smoothly; a
    jump is a discontinuity), and the mean gap to the operator's own decouple model."""
    out = []
    for op in _ops(df):
        d = df[df.operator == op]

        def curve(m):
            return d[d.model == m].sort_values("gamma").psnr.to_numpy()

        own, ident = curve("decouple, 1 operator"), curve("identity")
        for m in dict.fromkeys(d.model):
            p = curve(m)
            gain = p - ident if len(ident) == len(p) else p
            out.append({"operator": op, "model": m, "points": len(p), "mean_psnr": p.mean(),
                        "worst_psnr": p.min(),
                        "max_step": float(np.abs(np.diff(gain)).max()) if len(p) > 1 else 0.0,
                        "gap_to_own": float(np.mean(p - own)) if len(own) == len(p)
                        else float("nan")})
    return pd.DataFrame(out)


def sweep_joint_models(df: pd.DataFrame) -> pd.DataFrame:
    """:func:`sweep_joint_summary` in one row per model, over the operators it holds: mean PSNR,
    the largest gain step and the mean gap to the operators' own networks (results index)."""
    s = sweep_joint_summary(df)
    g = s.groupby("model", sort=False)
    return pd.DataFrame({"operators": g.operator.count(), "mean_psnr": g.mean_psnr.mean(),
                         "max_step": g.max_step.max(),
                         "gap_to_own": g.gap_to_own.mean()}).reset_index()


def table1_summary_rows(df: pd.DataFrame) -> pd.DataFrame:
    """Table 1's per-operator averages (its ``ave.`` rows; results index)."""
    return df[df.gamma.astype(str) == "ave."].reset_index(drop=True)


def gamma_sweep_joint(name: str, df: pd.DataFrame) -> str:
    """The joint sweep as three blocks of models x operators (mean PSNR, worst PSNR, largest
    gain step): one row per model and operator did not fit a page (six operators, seven
    models)."""
    s = sweep_joint_summary(df)
    ops = list(dict.fromkeys(s.operator))
    models = list(dict.fromkeys(s.model))
    cols = [Col(("",), "l")] + [Col((short_label(op),), "r") for op in ops]
    table = s.set_index(["model", "operator"])
    points = s.groupby("operator").points.first()
    rows: list = [["\\#$\\gamma$ swept"] + [str(int(points[op])) for op in ops]]
    for key, title, skip in (("mean_psnr", "PSNR (dB), mean over the sweep", ()),
                             ("worst_psnr", "PSNR (dB), worst $\\gamma$", ()),
                             ("max_step", "largest change of the gain over the input between "
                                          "neighbouring $\\gamma$ (dB)", ("identity",))):
        rows += [SPACE, section(title, len(cols))]
        for m in models:
            if m in skip:
                continue
            rows.append([f"\\quad {latex_text(m)}"]
                        + [number(table[key].get((m, op), float("nan")), 2) for op in ops])
    caption = ("Continuity of the joint models across each filter's $\\gamma$ range: PSNR (dB) "
               "on the test split over the sweep's $\\gamma$ of the operator's own decouple "
               "network, of every joint model that holds the operator and of the input, and "
               "the largest change of a model's gain over the input between neighbouring "
               "$\\gamma$ (a jump: a discontinuity in $\\gamma$, or the operator's own).")
    note = (f"The sweep itself ({len(df)} rows) is in \\texttt{{gamma\\_sweep\\_joint.csv}} and "
            "plotted in \\texttt{figures/gamma\\_sweep\\_joint.png}.")
    return table_env(name, caption, tabular(cols, rows), note)


def gamma_sweep_summary(df: pd.DataFrame) -> pd.DataFrame:
    """The γ sweep in one row per operator: mean PSNR over the sweep's γ of each model (the
    single-γ networks: the mean over the five), the decouple network's worst γ, and the count."""
    out = []
    for op in _ops(df):
        d = df[df.operator == op]
        by = d.groupby("model", sort=False).psnr
        singles = [m for m in by.groups if str(m).startswith("single")]
        dec = d[d.model == "decouple"].psnr
        out.append({"operator": op, "points": int(d.gamma.nunique()),
                    "decouple_mean": dec.mean(), "decouple_min": dec.min(),
                    "concat_mean": d[d.model == "concat"].psnr.mean(),
                    "single_mean": float(np.mean([by.get_group(m).mean() for m in singles]))
                    if singles else float("nan"),
                    "single_best": float(max(by.get_group(m).mean() for m in singles))
                    if singles else float("nan"),
                    "identity_mean": d[d.model == "identity"].psnr.mean()})
    return pd.DataFrame(out)


def gamma_sweep(name: str, df: pd.DataFrame) -> str:
    """The sweep (hundreds of rows) summarised; the rows themselves stay in the CSV."""
    s = gamma_sweep_summary(df)
    cols = [Col(("", ""), "l"), Col(("", "\\#$\\gamma$"), "r"),
            Col(("decouple", "mean"), "r"), Col(("", "worst"), "r"),
            Col(("$\\gamma$ as", "input"), "r"), Col(("single-$\\gamma$", "mean"), "r"),
            Col(("", "best"), "r"), Col(("", "input"), "r")]
    rows = [[f"{op_label(r.operator)} ({_gamma_name(r.operator)})", str(r.points),
             number(r.decouple_mean, 2), number(r.decouple_min, 2), number(r.concat_mean, 2),
             number(r.single_mean, 2), number(r.single_best, 2), number(r.identity_mean, 2)]
            for r in s.itertuples(index=False)]
    caption = ("Continuity across each $\\gamma$ range: PSNR (dB) on the test split averaged "
               "over the sweep's $\\gamma$ (evenly spaced in the sampling law's scale, and the "
               "five test $\\gamma$) for the decouple network (and at its worst $\\gamma$), the "
               "$\\gamma$-as-input network, the five single-$\\gamma$ networks applied at every "
               "$\\gamma$ (their mean, and the best of the five) and the input itself.")
    note = (f"The sweep itself ({len(df)} rows: every $\\gamma$ and model) is in "
            "\\texttt{gamma\\_sweep.csv} and plotted in \\texttt{figures/gamma\\_sweep.png}.")
    return table_env(name, caption, tabular(cols, rows), note)


def _size(v) -> str:
    m = re.fullmatch(r"(\d+)x(\d+)", str(v))
    return f"{m.group(1)}$^2$" if m and m.group(1) == m.group(2) else latex_text(v)


def _target_cell(r) -> str:
    """The target, with its verdict where the table has one (``target_met``, written by
    :func:`benchmarks.speed_targets.target_met`)."""
    if _is_missing(r.target):
        return ""
    met = getattr(r, "target_met", None)
    verdict = "" if met is None or _is_missing(met) else (
        " (met)" if str(met).lower() in ("true", "1", "1.0") else " (not met)")
    return latex_text(str(r.target) + verdict)


def operator_speed(name: str, df: pd.DataFrame) -> str:
    """Operator wall times at the largest size timed (the others, and the first-call times, stay
    in the CSV: the page has room for one block): ours in the suite and in a fresh process, the
    library counterpart and the ratio, the target."""
    known = {"operator", "gamma", "size", "ours_s", "counterpart", "counterpart_s", "ratio",
             "target", "fresh_process_s", "fresh_vs_suite", "first_call_cold_s",
             "first_call_cached_s", "suite_s", "fresh_vs_suite_median", "suite_faults",
             "fresh_faults", "paired_calls", "target_met"}
    extra = [c for c in df.columns if c not in known]
    ecols, efmts = generic_columns(df, extra)
    fresh = "fresh_process_s" in df
    paired = fresh and "suite_s" in df  # the paired measurement (older CSVs: fresh only)
    cols = [Col(("", ""), "l"), Col(("", "$\\gamma$"), "l"),
            *([Col(("suite", "(s)"), "r")] if paired else [Col(("ours", "(s)"), "r")]),
            *([Col(("fresh", "(s)"), "r")] if fresh else []),
            *([] if paired else [Col(("counter-", "part (s)"), "r")]),
            Col(("vs.\\ counter-" if paired else "", "part" if paired else "ratio"), "r"),
            *ecols,
            Col(("", "target"), wrap("2.2cm"))]
    rows: list = []
    sizes = list(dict.fromkeys(df["size"]))
    largest = max(sizes, key=lambda v: int(re.match(r"\d+", str(v)).group()) if re.match(
        r"\d+", str(v)) else 0)
    for size, d in df[df["size"] == largest].groupby("size", sort=False):
        rows.append(section(_size(size), len(cols)))
        last = None
        for r in d.itertuples(index=False):
            first = r.operator != last
            last = r.operator
            g = "" if _is_missing(r.gamma) else (
                f"{_gamma_name(r.operator)}\\,=\\,{gamma_value(r.gamma)}")
            rows.append([op_label(r.operator) if first else "", g,
                         number(r.suite_s if paired else r.ours_s, 3),
                         *([number(r.fresh_process_s, 3)] if fresh else []),
                         *([] if paired else [number(r.counterpart_s, 3)]),
                         number(r.ratio, 2),
                         *[f(getattr(r, k)) for f, k in zip(efmts, extra)],
                         _target_cell(r)])
    body = tabular(cols, rows)
    counterparts = sorted({str(c) for c in df.counterpart if not _is_missing(c)})
    caption = ("Operator wall time per RGB image: " + (
        "inside the benchmark suite and in a fresh process, timed in alternating blocks (lower "
        "quartile of the calls); vs.\\ counterpart: the median of the rounds over the library "
        "counterpart's in the same run (both medians are in the CSV)." if paired else
        "median of the rounds inside the benchmark suite" + (" and in a fresh process"
                                                             if fresh else "")
        + "; the library counterpart timed in the same run, ratio = ours / counterpart."))
    note = ("Counterparts: " + ", ".join(f"\\texttt{{{latex_text(c)}}}" for c in counterparts)
            + " (not faithful to the reference; timed for scale).") if counterparts else ""
    others = [_size(v) for v in sizes if v != largest]
    if others:
        note += f" The rows at {', '.join(others)} are in the CSV."
    if "first_call_cold_s" in df:
        note += " The CSV also has each operator's first call (cold and cached Numba cache)."
    return table_env(name, caption, body, note.strip())


def operator_fidelity(name: str, df: pd.DataFrame) -> str:
    cols = [Col(("", ""), wrap("3.1cm")), Col(("", "entries"), "r"), Col(("", "pass"), "r"),
            Col(("min equal", "(\\%)"), "r"), Col(("max", "levels"), "r"),
            Col(("min PSNR", "(dB)"), "r"), Col(("max", "$|$diff$|$"), "r")]
    rows = []
    for r in df.itertuples(index=False):
        p = float(r.min_psnr_db)
        rows.append([latex_text(r.operator), str(int(r.entries)), str(int(r.passing)),
                     number(r.min_equal_pct, 3), str(int(r.max_levels)),
                     "$\\infty$" if p >= 999 else number(p, 1), scientific(r.max_abs_diff)])
    caption = ("Agreement with the authors' reference outputs (MATLAB/Octave) per operator: "
               "entries passing the bar (uint8 outputs: $\\geq$ 99.9\\,\\% of values equal and "
               "none more than one level apart; float outputs: PSNR $\\geq$ 60 dB), the worst "
               "entry's share of equal values, largest level difference, PSNR and absolute "
               "difference ($\\infty$: identical).")
    return table_env(name, caption, tabular(cols, rows))


def baseline_speed(name: str, df: pd.DataFrame) -> str:
    """(a) BGU's stages per operator beside the operator at full resolution; (b) the networks."""
    bgu = df[df.method == "bgu"]
    full = df[df.method == "operator (full resolution)"].set_index("operator").ms
    stages = [c for c in ("downsample_ms", "operator_ms", "fit_ms", "slice_ms") if c in df]
    heads = {"downsample_ms": ("down-", "sample"), "operator_ms": ("operator", "low-res"),
             "fit_ms": ("", "fit"), "slice_ms": ("", "slice")}
    cols = [Col(("", ""), "l")] + [Col(heads[s], "r") for s in stages] + [
        Col(("BGU", "total"), "r"), Col(("operator", "full-res"), "r")]
    rows = [[op_label(r.operator)] + [number(getattr(r, s), 1) for s in stages]
            + [number(r.ms, 1), number(full.get(r.operator), 1)]
            for r in bgu.itertuples(index=False)]
    a = tabular(cols, rows)
    nets = df[~df.method.isin(["bgu", "operator (full resolution)"])]
    devices = nets.device.nunique() > 1 if len(nets) else False
    cols = [Col(("",), "l")] + ([Col(("device",), "l")] if devices else []) + [
        Col(("setting",), "l"), Col(("ms",), "r")]
    rows = []
    for r in nets.itertuples(index=False):
        setting = latex_text(r.setting) if not _is_missing(r.setting) else ""
        if not _is_missing(getattr(r, "preset", None)):
            setting += f" ({latex_text(r.preset)} preset)"
        rows.append([latex_text(r.method)] + ([latex_text(r.device)] if devices else [])
                    + [setting, number(r.ms, 0)])
    b = tabular(cols, rows) if rows else ""
    body = ("\\textit{(a) BGU, by stage (ms)}\\\\[2pt]\n" + a
            + ("\n\n\\medskip\n\\textit{(b) networks (ms)}\\\\[2pt]\n" + b if b else ""))
    caption = ("Inference time per image (ms, best of the repeats after a warm-up): (a) BGU "
               "split into downsampling, the operator at low resolution, the fit and the "
               "slicing, beside the operator itself at full resolution; (b) the networks, "
               "untrained, at the preset's width (HDRNet: its low-resolution input).")
    return table_env(name, caption, body)


def model_speed(name: str, df: pd.DataFrame) -> str:
    """One block per (device, measure): the models, the value, the ratio to the block's
    reference and the target. (Hand-written :func:`tabular`, not ``Styler.to_latex``: each
    block opens with a row naming it, ``\\multicolumn`` across the table, and blocks are set
    apart by ``\\addlinespace``; a Styler writes a frame's rows only.)"""
    cols = [Col(("",), "l"), Col(("value",), "r"), Col(("vs.\\ ref.",), "r"),
            Col(("target",), "l")]
    rows: list = []
    extra = [m for m in dict.fromkeys(df.measure) if "(extra" in str(m)]
    for (device, measure), d in df.groupby(["device", "measure"], sort=False):
        if measure in extra:  # blocks without a target stay in the CSV (the page is full)
            continue
        ref = [str(x) for x in d.reference if not _is_missing(x)]
        head = f"{device}: {measure}"
        if rows:
            rows.append(SPACE)
        if ref and len(head) + len(ref[0]) > 70:  # the reference on a line of its own
            rows += [section(latex_text(head), len(cols)),
                     section(f"(ref.: {latex_text(ref[0])})", len(cols))]
        else:
            rows.append(section(latex_text(head) + (f" (ref.: {latex_text(ref[0])})" if ref
                                                     else ""), len(cols)))
        dec = decimals_for(d.value)
        for r in d.itertuples(index=False):
            rows.append([f"\\quad {latex_text(r.model)}", number(r.value, dec),
                         number(r.vs_reference, 2),
                         _target_cell(r)])
    caption = ("Network speed on this machine: training samples per second and inference time "
               "per image, each against its reference model (vs.\\ ref.: ratio, higher is "
               "better for samples/s, lower for time).")
    note = ("The CSV also has " + "; ".join(rf"\emph{{{latex_text(m)}}}" for m in extra) + "."
            if extra else "")
    return table_env(name, caption, tabular(cols, rows), note)


def datagen_speed(name: str, df: pd.DataFrame) -> str:
    """One row per setting (written by ``Styler.to_latex``: :func:`styled_tabular`)."""
    cols = [Col(("",), wrap("3.6cm")), Col(("pairs",), "r"), Col(("wall (s)",), "r"),
            Col(("pairs/s",), "r"), Col(("vs.\\ bare",), "r"), Col(("target",), wrap("2.8cm"))]
    rows = [[latex_text(r.setting), str(int(r.pairs)), number(r.wall_s, 1),
             number(r.pairs_per_s, 1), number(r.vs_bare, 2),
             "" if _is_missing(r.target) else latex_text(r.target)]
            for r in df.itertuples(index=False)]
    caption = ("Dataset generation speed: training pairs per second of the bare operator calls "
               "and of \\texttt{datagen build} with one and two workers (vs.\\ bare: wall time "
               "relative to the bare calls).")
    return table_env(name, caption, styled_tabular(cols, rows))


def retune_speed(name: str, df: pd.DataFrame) -> str:
    """One row per method (and device): the first render and a re-tune with a new γ on the same
    image, ms, at each image size (what a re-tune re-runs is in the CSV); written by
    ``Styler.to_latex`` (:func:`styled_tabular`: the size over its "first" column)."""
    sizes = list(dict.fromkeys(df["size"]))
    devices = df.device.nunique() > 1
    cols = [Col(("", ""), "l"), *([Col(("", "device"), "l")] if devices else [])]
    for size in sizes:
        label = latex_text(str(size).replace("x", "\u00d7"))
        cols += [Col((label, "first"), "r"), Col(("", "re-tune"), "r")]
    rows = []
    for (method, device), d in df.groupby(["method", "device"], sort=False):
        by = d.set_index("size")
        cells = [latex_text(method), *([latex_text(device)] if devices else [])]
        for size in sizes:
            r = by.loc[size] if size in by.index else None
            cells += ["" if r is None else number(r.first_ms, 0),
                      "" if r is None else number(r.retune_ms, 0)]
        rows.append(cells)
    caption = ("Interactive re-tuning (TPAMI 2019 Table 5's question): ms per image for the first "
               "render and for a new $\\gamma$ on the same image, where only the layers after "
               "the first $\\gamma$-dependent one run again, per method and image size.")
    return table_env(name, caption, styled_tabular(cols, rows))


#: the paper's setting, stated beside ours where a table prints the paper's figures
PAPER_SETTING = "paper: width 64, GPU"


def scale_sentence(meta: dict, df: pd.DataFrame) -> str:
    """The sentence a caption gets when the table prints the paper's figures beside ours (a
    ``paper_*`` column in the CSV): the scale ours were made at, from the sidecar (``scale``,
    the ``preset``'s width, iterations, batch and crop, CPU or GPU from ``hardware``; the models'
    own iterations where the sidecar's ``iterations`` lists longer ones: the joint budget), beside
    the paper's (:data:`PAPER_SETTING`), since ours are 5–10 dB lower at a small scale. ""
    for other tables, and for a sidecar without a scale."""
    scale = meta.get("scale")
    if not scale or not any(str(c).startswith("paper_") for c in df.columns):
        return ""
    p = meta.get("preset") if isinstance(meta.get("preset"), dict) else {}
    parts = []
    if "width" in p:
        parts.append(f"width {p['width']}")
    if "iterations" in p:
        runs = meta.get("iterations") if isinstance(meta.get("iterations"), dict) else {}
        longest = max((v for v in runs.values() if isinstance(v, (int, float))), default=0)
        only_joint = runs and all(v == longest for v in runs.values())
        parts.append(f"{int(longest) if only_joint else p['iterations']} iterations"
                     + (f" of batch {p['batch']}" if "batch" in p else "")
                     + (f" on {p['crop']}² crops" if "crop" in p else "")
                     + (f" (joint models: {int(longest)})"
                        if not only_joint and longest > p["iterations"] else ""))
    parts.append("GPU" if "GPU" in str(meta.get("hardware", "")) else "CPU")
    return latex_text(f"Ours at the {scale} scale ({', '.join(parts)}); {PAPER_SETTING}.")


def add_to_caption(tex: str, sentence: str) -> str:
    """``tex`` with ``sentence`` appended to its first ``\\caption{...}`` (after a space; the
    braces are matched, escaped ones skipped), so every layout's caption gets it without each
    layout knowing the sidecar. Unchanged for an empty sentence or a float without a caption."""
    start = tex.find("\\caption{")
    if not sentence or start < 0:
        return tex
    depth, i = 0, start + len("\\caption")
    while i < len(tex):
        ch = tex[i]
        if ch == "\\":
            i += 2
            continue
        depth += (ch == "{") - (ch == "}")
        if depth == 0:
            return tex[:i] + " " + sentence + tex[i:]
        i += 1
    return tex  # unbalanced: left as the layout wrote it


def render(name: str, df: pd.DataFrame, caption: str) -> str:
    """The LaTeX float of table ``name`` from its CSV rows, by the layout its entry in the
    registry gives (:class:`benchmarks.tables.Table`; ``caption``: for tables without a layout
    of their own, and for one whose layout does not fit the rows, e.g. after a column was
    renamed: then a warning and :func:`generic`)."""
    from .tables import registry

    table = registry().get(name)
    layout = None if table is None else table.layout
    if layout is None:
        return generic(name, df, caption)
    try:
        return layout(name, df)
    except (KeyError, AttributeError, ValueError) as e:
        warnings.warn(f"{name}: its LaTeX layout does not fit these rows ({e!r}); writing all "
                      "columns as they are instead (update its layout in benchmarks/)",
                      stacklevel=2)
        return generic(name, df, caption)
