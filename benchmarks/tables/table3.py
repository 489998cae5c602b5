"""TPAMI 2019 Table 3 / ECCV 2018 Table 4: one network for several operators.

``table3_joint``: TPAMI 2019 Table 3 (variant ``tpami``: LLF in the six filters) and ECCV 2018
Table 4 (``eccv``: the shock filter instead): per column operator PSNR/SSIM (its test γ
averaged, the paper's protocol) of its one-operator decouple model, of the 6-filter or
4-restoration joint model, of the 10-operator joint model and (TPAMI) of the γ-as-input network
over the ten, with the paper's figures (:data:`benchmarks.paper.PAPER_TABLE3`,
:data:`~benchmarks.paper.PAPER_TABLE4`); ``avg`` rows over the columns. With its per-crop scores
(``.crops.csv``), the paired bootstrap intervals of what it states (:func:`intervals`).

Joint models get ``min(n_ops, JOINT_CAP)`` times a one-operator training budget (see
:data:`benchmarks._experiments.JOINT_CAP`); the sidecar records the rule. At smoke scale each
variant has two columns (a filter and a restoration task: the same code paths).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

import operators

from .. import _latex
from .._stats import claim_columns, difference
from ..paper import PAPER_TABLE3, PAPER_TABLE4, TABLE3_COLUMNS
from . import Measured, Table, claim
from ._common import budget_note, crop_frame, evaluate_op, predictor, write_scored

NAME = "table3_joint"
LABEL = "TPAMI 2019 Table 3 / ECCV 2018 Table 4"
CAPTION = ("One network for several operators: PSNR (dB) / SSIM on the test split per operator "
           "(its test γ averaged) of the one-operator decouple models, the 6-filter / "
           "4-restoration and the 10-operator joint models and the γ-as-input network over 10; "
           "variant tpami: TPAMI 2019 Table 3 (LLF), eccv: ECCV 2018 Table 4 (shock); paper_*: "
           "the paper's figures; diff_psnr: row − 1 op, vs_joint_psnr: γ as input − 10 ops, "
           "gain_psnr: row − input, each with its paired 95 % bootstrap interval over the test "
           "crops (_lo, _hi), its sign check with one photograph left out (_lopo) and the "
           "verdict on the paper's claim (_verdict, benchmarks/_stats.py); per-crop scores: the "
           ".crops.csv")


def columns(variant: str, scale: str | None) -> tuple[str, ...]:
    """The column operators of ``variant`` (``tpami`` or ``eccv``) at ``scale``."""
    from .._experiments import JOINT_GROUPS, SMOKE, TABLE3_VARIANTS

    if scale == "smoke":  # the same code paths: a filter and a restoration task per variant
        return SMOKE["table3_columns"][variant]
    return JOINT_GROUPS[TABLE3_VARIANTS[variant][1]]


def units(scale=None, ops=None) -> list[tuple[str, str]]:
    """``(variant, column operator)`` for both variants, the columns among ``ops``."""
    from .._experiments import TABLE3_VARIANTS

    keep = None if ops is None else set(operators.resolve(ops))
    return [(v, o) for v in TABLE3_VARIANTS for o in columns(v, scale)
            if keep is None or o in keep]


def unit_id(unit: tuple[str, str]) -> str:
    """A unit's test id (``tpami-llf``)."""
    return "-".join(unit)


def models(variant: str, op: str) -> dict:
    """The rows of Table 3 (``variant`` 'tpami') or ECCV Table 4 ('eccv') for column ``op``:
    row name -> run."""
    from .._experiments import JOINT_GROUPS, TABLE3_VARIANTS, Run, table3_runs

    six, ten, baseline = TABLE3_VARIANTS[variant]
    runs = {(r.arch, r.op): r for r in table3_runs(None, None, variants=(variant,))
            if r.is_joint}
    group = six if op in JOINT_GROUPS[six] else "restoration4"
    rows = {"1 op": Run("decouple", op), "6/4 ops": runs["decouple", group],
            "10 ops": runs["decouple", ten]}
    if baseline:
        rows["γ as input, 10 ops"] = runs["concat", ten]
    return rows


def measure(experiment, unit: tuple[str, str]) -> Measured:
    """One column's rows (each row's model on the column operator, its test γ averaged) and
    their per-crop scores (by run name, and the input's as ``identity``)."""
    variant, op = unit
    data = experiment.data()
    rows, crops = [], []
    for row, run in models(variant, op).items():
        s = evaluate_op(predictor(experiment, run), data, op, crops=crops, name=run.name)
        rows.append({"variant": variant, "row": row, "operator": op, "model": run.name, **s})
    return Measured(rows, crops)


def check(measured: Measured, scale: str) -> None:
    """Every score is a number (SSIM at most 1); beyond the smoke scale the one-operator model
    beats copying its input (a joint model at a small budget may not: small scale, on l0, SR and
    deblocking, whose inputs are already close to their targets; what it reaches is what the
    table measures)."""
    df = pd.DataFrame(measured.rows)
    claim(np.isfinite(df[["psnr", "ssim"]].to_numpy(float)).all() and (df.ssim <= 1).all(), df)
    if scale != "smoke":
        one = df[df.row == "1 op"]
        claim((one.psnr > one.identity_psnr).all(), one)


def paper_figures(variant: str, row: str, op: str) -> tuple[float, float]:
    """The paper's PSNR and SSIM for ``row`` at column ``op`` (or ``avg``); NaN where it gives
    none."""
    nan = float("nan")
    if variant == "tpami":
        if op == "avg":
            return PAPER_TABLE3[row][1], PAPER_TABLE3[row][2]
        if op in TABLE3_COLUMNS:
            return PAPER_TABLE3[row][0][TABLE3_COLUMNS.index(op)], nan
        return nan, nan
    if row not in PAPER_TABLE4:
        return nan, nan
    per, avg, ssim = PAPER_TABLE4[row]
    if op == "avg":
        return avg, ssim
    if row == "1 op" and op in operators.NAMES[:5]:  # the one-operator filters: Table 1's
        return PAPER_TABLE3["1 op"][0][TABLE3_COLUMNS.index(op)], nan
    return per.get(op, nan), nan


def paper_sign(variant: str, row: str, ref: str, op: str) -> int | None:
    """The sign of the paper's ``row`` − ``ref`` PSNR for column ``op``, or, where the paper
    gives no figure for the column, for its average (None: neither given)."""
    for col in (op, "avg"):
        a, b = paper_figures(variant, row, col)[0], paper_figures(variant, ref, col)[0]
        if a == a and b == b and a != b:
            return int(np.sign(a - b))
    return None


def _row_crops(d: pd.DataFrame, crops: pd.DataFrame, row: str, ops) -> pd.DataFrame:
    """The per-crop scores behind row ``row`` (``d``: its rows of one variant) on ``ops``,
    named ``row`` (a row's models differ by column: the 6-filter model for filters, the
    4-restoration one for restoration), for :func:`benchmarks._stats.difference`."""
    parts = [crops[(crops.model == m) & (crops.operator == o)].assign(model=row)
             for o, m in zip(d.operator, d.model) if o in ops]
    return pd.concat(parts, ignore_index=True)


def intervals(out: pd.DataFrame, crops: pd.DataFrame) -> pd.DataFrame:
    """Per row of :func:`frame` (an operator, or ``avg``: per operator the mean over its γ, then
    over the operators) the paired bootstrap intervals (:mod:`benchmarks._stats`) of:

    - ``diff_psnr`` (row − the one-operator models) with ``_lo``/``_hi``/``_lopo`` and
      ``_verdict``: the paper's claim, the sign of its own difference (:func:`paper_sign`),
      inconclusive where the row's model is not above its input by more than its interval;
    - ``vs_joint_psnr`` (the γ-as-input row − the 10-operator decouple model: the paper's claim
      that generated weights beat γ as an input) with the same columns;
    - ``gain_psnr`` (row − the input) with ``_lo``/``_hi``/``_lopo``/``_verdict``.
    """
    ident = crops[crops.model == "identity"]
    found = []
    for r in out.itertuples():
        d = out[(out.variant == r.variant) & (out.operator != "avg")]
        ops = list(dict.fromkeys(d.operator)) if r.operator == "avg" else [r.operator]
        mine = _row_crops(d[d.row == r.row], crops, r.row, ops)
        gain = difference(pd.concat([mine, ident[ident.operator.isin(ops)]]), r.row,
                          "identity")
        cols = {}
        for prefix, ref, shown in (("diff_psnr", "1 op", r.row != "1 op"),
                                   ("vs_joint_psnr", "10 ops", r.row == "γ as input, 10 ops")):
            if not shown:
                cols.update({prefix: np.nan, f"{prefix}_lo": np.nan, f"{prefix}_hi": np.nan,
                             f"{prefix}_lopo": None, f"{prefix}_verdict": ""})
                continue
            iv = difference(pd.concat([mine, _row_crops(d[d.row == ref], crops, ref, ops)]),
                            r.row, ref)
            sign = paper_sign(r.variant, r.row, ref, r.operator)
            cols.update({f"{prefix}_verdict": "",
                         **claim_columns(prefix, iv, sign, above_input=[gain])})
        cols.update(claim_columns("gain_psnr", gain, +1))
        found.append(cols)
    return pd.DataFrame(found, index=out.index)


def frame(df: pd.DataFrame, crops: pd.DataFrame | None = None) -> pd.DataFrame:
    """The measured rows in the paper's order, ``avg`` rows (mean over the columns measured),
    and the paper's figures (``paper_psnr``: per column where the paper gives it; SSIM: averages
    only); with ``crops`` (the per-crop scores of its models, by run name, and ``identity``),
    the interval columns of :func:`intervals`."""
    from .._experiments import JOINT_GROUPS, TABLE3_VARIANTS

    parts = []
    for variant in [v for v in TABLE3_VARIANTS if v in set(df.variant)]:
        d = df[df.variant == variant]
        cols = list(dict.fromkeys(JOINT_GROUPS[TABLE3_VARIANTS[variant][1]]))
        for row in dict.fromkeys(d.row):
            r = d[d.row == row].copy()
            r["order"] = [cols.index(o) for o in r.operator]
            r = r.sort_values("order").drop(columns="order")
            avg = r.drop(columns=["variant", "row", "operator", "model"]).mean().to_dict()
            avg.update(variant=variant, row=row, operator="avg", model="",
                       images=int(r.images.sum()))
            r = pd.concat([r, pd.DataFrame([avg])], ignore_index=True)
            papers = [paper_figures(variant, row, o) for o in r.operator]
            r["paper_psnr"] = [p for p, _ in papers]
            r["paper_ssim"] = [s for _, s in papers]
            parts.append(r)
    out = pd.concat(parts, ignore_index=True)
    out = out[["variant", "row", "operator", "model", "psnr", "ssim", "identity_psnr",
               "identity_ssim", "images", "paper_psnr", "paper_ssim"]]
    if crops is not None and len(crops):
        out = pd.concat([out, intervals(out, crops)], axis=1)
    return out


def summary_text(long: pd.DataFrame, scale: str) -> str:
    """What the table shows, in words, from its own numbers (for results/README.md)."""
    avg = long[long.operator == "avg"]
    parts = []
    for variant, d in avg.groupby("variant", sort=False):
        one = d[d.row == "1 op"].psnr.iloc[0]
        ours = "; ".join(f"{r} {p:.2f} ({p - one:+.2f})" for r, p in zip(d.row, d.psnr))
        pone = d[d.row == "1 op"].paper_psnr.iloc[0]
        paper = "; ".join(f"{r} {p:.2f} ({p - pone:+.2f})" for r, p in zip(d.row, d.paper_psnr)
                          if p == p)
        name = "TPAMI Table 3" if variant == "tpami" else "ECCV Table 4"
        parts.append(f"{name}, average PSNR (dB) and its difference to the one-operator row: "
                     f"ours {ours}; paper {paper}")
    return (f"{scale} scale. " + ". ".join(parts) + ". The paper's claim: one network for ten "
            "operators costs ~2 dB against one network per operator, and less than giving γ as "
            "an input.")


def write(experiment, results_dir: Path, df: pd.DataFrame, crops: pd.DataFrame | None,
          started: float, **facts) -> None:
    """The CSV (:func:`frame`), its per-crop scores (each model, operator, γ and crop once),
    LaTeX and sidecar (provenance: the dataset, the models behind it, the budget rule, the code
    encoding and protocol, :func:`summary_text`; ``facts`` besides)."""
    crops = crop_frame(pd.DataFrame() if crops is None else crops)
    long = frame(df, crops)
    runs = [r for v in dict.fromkeys(df.variant) for o in dict.fromkeys(df.operator)
            for r in models(v, o).values()]
    write_scored(
        experiment, results_dir, NAME, long, crops, started, list(dict.fromkeys(runs)), facts,
        caption=CAPTION, summary=summary_text(long, experiment.scale),
        table="TPAMI 2019 Table 3 and ECCV 2018 Table 4", budget=budget_note(experiment),
        encoding="joint models: code [γ normalised, operator code] (the paper's order); "
                 "restoration blind to its γ in joint models; the 4-restoration model takes "
                 "the operator code only",
        protocol="per operator, mean over its test γ; PSNR/SSIM on Y for SR and deblocking, "
                 "gray for denoising (model.metrics.score)")


TABLES = (Table(NAME, "table3", LABEL, runs="table3", units=units, unit_id=unit_id,
                measure=measure, check=check, frame=frame, write=write,
                layout=_latex.table3_joint,
                summary=_latex.table3_summary_rows, paper=PAPER_TABLE3,
                suite="benchmarks/test_joint_tables.py"),)
