"""TPAMI 2019 Table 12: which layer depends on γ (and CResMD, AdaFM, DNI beyond the paper).

``table12_ablation``: each variant (norm(k): only the k-th InstanceNorm's affine depends on γ;
conv(19) and its 1×N slices; norm(all); conv(all), our decouple network) trained on the ten
TPAMI filter operators with the same budget, and CResMD, AdaFM and DNI (AdaFM and DNI learn one
operator between the ends of its γ range: one model per operator with a γ, each with 1/6 of the
joint budget); per operator (its test γ averaged) and averages (``avg``: the ten, ``avg γ``: the
six with a γ), the paper's averages (:data:`benchmarks.paper.PAPER_TABLE12`) beside. With its
per-crop scores (``.crops.csv``), the paired bootstrap intervals of each variant − conv(all) and
− the input (:func:`intervals`). ``figures/table12_ablation.png``: both differences per variant
as a forest plot with those intervals (:func:`benchmarks._figures.plot_table12`, re-drawn from the
CSV by ``python -m benchmarks.render``).

At the medium scale the variants are the scale's runs (a width or loss variant after ``@``,
:data:`benchmarks._experiments.MEDIUM`); at smoke scale three variants on four operators.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

import operators

from .. import _latex
from .._figures import plot_table12
from .._stats import claim_columns, difference, in_scope, no_interval
from ..paper import PAPER_TABLE12
from . import Measured, Table, claim
from ._common import (budget_note, crop_frame, evaluate_op, predictor, table_ops,
                      write_scored)

NAME = "table12_ablation"
#: the variants' names in the table (the paper's where it has them), by arch key
LABELS = {"norm:1": "norm(1)", "norm:7": "norm(7)", "norm:14": "norm(14)",
          "norm:19": "norm(19)", "conv:19": "conv(19)", "conv-ch1:19": "conv ch1(19)",
          "conv-ch2:19": "conv ch2(19)", "norm:all": "norm(all)", "decouple": "conv(all)",
          "cresmd": "CResMD", "adafm": "AdaFM", "dni": "DNI"}
#: Table 12's reference variant, the decouple network (the paper's conv(all))
REFERENCE = "decouple"
#: the forest plot of each variant against conv(all) and against its input
#: (:func:`benchmarks._figures.plot_table12`), drawn from the CSV
FIGURE = "figures/table12_ablation.png"
CAPTION = ("Which layer depends on γ: PSNR (dB) / SSIM on the test split per operator (its test "
           "γ averaged) of each variant trained on the ten TPAMI filter operators with the same "
           "budget, avg (ten operators) and avg γ (the six with a γ); paper_*: TPAMI 2019 "
           "Table 12")
CAPTION_INTERVALS = ("; vs_conv_all_psnr: variant − conv(all), gain_psnr: variant − input, "
                     "each with its paired 95 % bootstrap interval over the test crops (_lo, "
                     "_hi), its sign check with one photograph left out (_lopo) and the verdict "
                     "on the paper's claim (_verdict, benchmarks/_stats.py); per-crop scores: "
                     "the .crops.csv")


def run_key(run) -> str:
    """A row's key: the paper's arch name, with ``@w<width>`` or ``@<loss>norm`` for the medium
    scale's variants of a model (no paper figure is attached to those)."""
    extra = (f"@w{run.width}" if run.width is not None else "") + \
        (f"@{run.loss_norm}norm" if run.loss_norm != "none" else "")
    return run.arch + extra


def variant_name(key: str) -> str:
    """The table's name of the variant of key ``key`` (:data:`LABELS`, and the medium scale's
    width or loss)."""
    arch, _, extra = key.partition("@")
    label = LABELS.get(arch, arch)
    if extra.startswith("w"):
        return f"{label}, width {extra[1:]}"
    if extra == "identitynorm":
        return f"{label}, loss / identity MSE"
    return label


def keys(scale: str | None) -> tuple[str, ...]:
    """The variants' keys at ``scale``."""
    from .._experiments import SMOKE, TABLE12_ARCHS, table12_runs

    if scale == "medium":  # its runs, a variant's width or loss after '@' (MEDIUM)
        return tuple(run_key(r) for r in table12_runs(None, scale))
    return SMOKE["table12"] if scale == "smoke" else TABLE12_ARCHS


def columns(scale: str | None) -> tuple[str, ...]:
    """The operators every variant is measured on (smoke: four of the ten)."""
    from .._experiments import SMOKE, TABLE6_OPS

    return SMOKE["table12_columns"] if scale == "smoke" else TABLE6_OPS


def units(scale=None, ops=None) -> list[tuple[str, tuple[str, ...]]]:
    """``(variant key, its column operators)``: every variant, on the columns among ``ops``
    (none: no unit)."""
    cols = tuple(table_ops(columns(scale), ops))
    return [(k, cols) for k in keys(scale)] if cols else []


def unit_id(unit) -> str:
    """A unit's test id (the variant's key, ``norm:19``)."""
    return unit[0]


def measure(experiment, unit) -> Measured:
    """One variant's rows, one per column operator (NaN for an operator a per-operator method
    does not learn), and its per-crop scores (named by its key, and the input's as
    ``identity``)."""
    from model.registry import get as get_arch

    from .._experiments import table12_arch, table12_runs

    key, cols = unit
    scale = experiment.scale
    data = experiment.data()
    arch = table12_arch(key.partition("@")[0], scale)
    runs = [r for r in table12_runs(None, scale) if r.arch == arch and
            (scale != "medium" or run_key(r) == key)]
    if not runs:
        raise ValueError(f"no Table 12 run of {key} ({arch}) at the {scale} scale")
    joint = not get_arch(arch).one_op
    training = ("joint, 10 operators" if joint else
                f"per operator ({len(runs)} with a γ), 1/{runs[0].share} of the budget each")
    rows, crops = [], []
    for op in cols:
        run = runs[0] if joint else next((r for r in runs if r.op == op), None)
        row = {"variant": variant_name(key), "arch": arch, "arch_paper": key,
               "training": training, "operator": op}
        if run is None:  # a per-operator method on an operator it does not learn
            row.update(psnr=float("nan"), ssim=float("nan"), identity_psnr=float("nan"),
                       identity_ssim=float("nan"), images=0, iterations=float("nan"))
        else:
            row.update(evaluate_op(predictor(experiment, run), data, op, crops=crops,
                                   name=key),
                       iterations=run.iterations(experiment.preset))
        rows.append(row)
    return Measured(rows, crops)


def check(measured: Measured, scale: str) -> None:
    """Every score measured is a number; beyond the smoke scale a joint variant beats copying
    the input on the fixed-effect operators (whose input is 8-20 dB from the target: it has
    learnt the operators at all; averaged over all ten it need not: at the small budget the
    one-layer variants stay near their input on the γ operators, and norm(19) below it, which
    is what the table measures), a per-operator method on its operators."""
    df = pd.DataFrame(measured.rows).dropna(subset=["psnr"])
    claim(np.isfinite(df[["psnr", "ssim"]].to_numpy(float)).all(), df)
    if scale != "smoke" and len(df):
        if df.training.iloc[0].startswith("joint"):
            fixed = df[[not operators.get(o).has_gamma for o in df.operator]]
            claim(not len(fixed) or fixed.psnr.mean() > fixed.identity_psnr.mean(), df)
        else:
            claim(df.psnr.mean() > df.identity_psnr.mean(), df)


def check_table(df: pd.DataFrame, scale: str) -> str | None:
    """After every variant's rows, the paper's claim that holds at the small scale too:
    predicting every layer (conv(all), norm(all)) beats predicting any single layer (norm(k),
    conv(19) and its slices) on the ten-operator average, and beats copying the input."""
    if scale == "smoke" or len(df) < 2:
        return "needs the small or paper scale and the rows of two variants or more"
    # the paper's variants (not the medium scale's wider or loss-normalised ones)
    df = df[df.training.str.startswith("joint") & ~df.arch_paper.str.contains("@")]
    avg = df.groupby("arch_paper").psnr.mean()
    whole = [a for a in ("decouple", "norm:all") if a in avg.index]
    one = [a for a in avg.index if a.split(":")[0] in ("norm", "conv", "conv-ch1", "conv-ch2")
           and a not in whole]
    if not whole or not one:
        return f"needs both kinds of variant (measured: {sorted(avg.index)})"
    claim(avg[whole].min() > avg[one].max(), avg)
    claim(avg[whole].min() > df.groupby("arch_paper").identity_psnr.mean()[whole].max(), avg)
    return None


def frame(df: pd.DataFrame, crops: pd.DataFrame | None = None) -> pd.DataFrame:
    """Per variant its operators, then ``avg`` (over all ten; NaN unless all were measured) and
    ``avg γ`` (over the six operators with a γ, where every variant was measured) rows, with
    the paper's averages (and its L0 figure where given); with ``crops`` (the per-crop scores
    of each variant, named by its ``arch_paper`` key, and ``identity``), the interval columns
    of :func:`intervals`."""
    from .._experiments import TABLE6_OPS

    parts = []
    for variant, d in df.groupby("variant", sort=False):
        d = d.copy()
        num = d.select_dtypes("number")
        measured = d.dropna(subset=["psnr"])
        allten = len(measured) == len(TABLE6_OPS)
        gamma_ops = measured[[operators.get(o).has_gamma for o in measured.operator]]
        base = d.iloc[0][["variant", "arch", "training"]].to_dict()
        rows = []
        for name, part, ok in (("avg", measured, allten), ("avg γ", gamma_ops, True)):
            v = part[num.columns].mean().to_dict() if ok and len(part) else {
                k: float("nan") for k in num.columns}
            v["images"] = int(part.images.sum()) if len(part) else 0
            rows.append({**base, "operator": name, **v})
        key = d.arch_paper.iloc[0]
        paper = PAPER_TABLE12.get(key)
        d["paper_psnr"] = [paper[2] if paper and o == "l0" and paper[2] else float("nan")
                           for o in d.operator]
        d["paper_ssim"] = float("nan")
        extra = pd.DataFrame(rows)
        extra["paper_psnr"] = [paper[0] if paper and r == "avg" else float("nan")
                               for r in extra.operator]
        extra["paper_ssim"] = [paper[1] if paper and r == "avg" else float("nan")
                               for r in extra.operator]
        parts += [d, extra]
    out = pd.concat(parts, ignore_index=True)
    row_keys = out.variant.map(dict(zip(df.variant, df.arch_paper)))
    out = out[["variant", "arch", "training", "operator", "psnr", "ssim", "identity_psnr",
               "identity_ssim", "images", "iterations", "paper_psnr", "paper_ssim"]]
    if crops is not None and len(crops):
        out = pd.concat([out, intervals(out, row_keys, crops)], axis=1)
    return out


def paper_sign(key: str) -> int | None:
    """The sign of the paper's variant ``key`` − conv(all) (its ten-operator averages), the
    direction its Table 12 claims; None where the paper lacks the variant or shows no
    difference."""
    mine, ref = PAPER_TABLE12.get(key), PAPER_TABLE12[REFERENCE]
    return int(np.sign(mine[0] - ref[0])) if mine and mine[0] != ref[0] else None


def intervals(out: pd.DataFrame, row_keys: pd.Series, crops: pd.DataFrame) -> pd.DataFrame:
    """Per row of :func:`frame` (``row_keys``: each row's variant key, as its per-crop scores
    are named) the paired bootstrap intervals (:mod:`benchmarks._stats`) over the row's
    operators (``avg``: all ten, ``avg γ``: those with a γ the variant has) of:

    - ``vs_conv_all_psnr`` (the variant − conv(all)) with ``_lo``/``_hi``/``_lopo`` and
      ``_verdict``: the paper's claim, the sign of its own averages' difference (Table 12 gives
      averages only; no verdict for a variant it does not have), inconclusive where the
      variant is not above its input by more than its interval;
    - ``gain_psnr`` (the variant − the input) with ``_lo``/``_hi``/``_lopo``/``_verdict``;
    - ``vs_matched_psnr``, for a medium-scale variant trained another way (``norm:1@w32``,
      ``norm:1@identitynorm``): the variant − conv(all) trained the same way (``decouple@w32``,
      ``decouple@identitynorm``), with the paper's claim for the variant as above. Its
      ``vs_conv_all_psnr`` still compares it with the plain conv(all); for ``decouple@...`` that
      is what the other width or loss did to conv(all) (no claim).

    Rows whose figure is NaN (an average over operators a variant lacks) get none."""
    from .._experiments import TABLE6_OPS

    found = []
    ref = REFERENCE if (crops.model == REFERENCE).any() else None
    ident = crops[crops.model == "identity"]
    models = set(crops.model)

    def above_input(model, ops):  # the model − the input, on ``ops``
        both = pd.concat([crops[crops.model == model], ident])
        return difference(in_scope(both, ops), model, "identity")

    for r, key in zip(out.itertuples(), row_keys):
        cols = {**no_interval("vs_conv_all_psnr"), **no_interval("gain_psnr"),
                **no_interval("vs_matched_psnr")}
        mine = crops[crops.model == key]
        if r.operator == "avg":
            ops = list(TABLE6_OPS)
        elif r.operator == "avg γ":
            ops = [o for o in dict.fromkeys(mine.operator) if operators.get(o).has_gamma]
        else:
            ops = [r.operator]
        if r.psnr != r.psnr or not set(ops) <= set(mine.operator) or not ops:
            found.append(cols)
            continue
        gain = above_input(key, ops)
        cols.update(claim_columns("gain_psnr", gain, +1))
        if ref is not None and key != ref:
            iv = difference(in_scope(crops, ops), key, ref)
            cols.update({"vs_conv_all_psnr_verdict": "",
                         **claim_columns("vs_conv_all_psnr", iv, paper_sign(key),
                                         above_input=[gain])})
        arch, _, extra = key.partition("@")
        matched = f"{REFERENCE}@{extra}"
        if extra and arch != REFERENCE and matched in models:
            iv = difference(in_scope(crops, ops), key, matched)
            cols.update({"vs_matched_psnr_verdict": "",
                         **claim_columns("vs_matched_psnr", iv, paper_sign(arch),
                                         above_input=[gain, above_input(matched, ops)])})
        found.append(cols)
    return pd.DataFrame(found, index=out.index)


def summary_text(long: pd.DataFrame, scale: str) -> str:
    """What the table shows, in words, from its own numbers (for results/README.md)."""
    avg = long[long.operator == "avg γ"]
    best = avg.sort_values("psnr", ascending=False)
    ours = ", ".join(f"{v} {p:.2f}" for v, p in zip(best.variant, best.psnr))
    known = long[(long.operator == "avg") & long.paper_psnr.notna()]
    paper = ", ".join(f"{v} {p:.2f}" for v, p in
                      zip(*known.sort_values("paper_psnr", ascending=False)[["variant",
                                                                          "paper_psnr"]].T.values))
    return (f"{scale} scale. Average PSNR (dB) over the six operators with a γ, best first: "
            f"ours {ours}. Paper (ten operators, best first): {paper}. The paper's claim: "
            "predicting an early layer (norm(1)) or all of them is as good as conv(all); "
            "only the last layer's normalisation (norm(19)) or a 1xN slice of the last conv "
            "loses several dB.")


def write(experiment, results_dir: Path, df: pd.DataFrame, crops: pd.DataFrame | None,
          started: float, **facts) -> None:
    """The CSV (:func:`frame`), its per-crop scores (each model, operator, γ and crop once),
    LaTeX and sidecar (provenance: the dataset, the models behind it, the budget rule, how K
    maps onto a shorter preset, :func:`summary_text`; ``facts`` besides)."""
    from .._experiments import table12_runs

    crops = crop_frame(pd.DataFrame() if crops is None else crops)
    long = frame(df, crops)
    runs = [r for r in table12_runs(None, experiment.scale) if r.arch in set(df.arch)]
    write_scored(
        experiment, results_dir, NAME, long, crops, started, runs, facts,
        caption=CAPTION + (CAPTION_INTERVALS if len(crops) else ""),
        summary=summary_text(long, experiment.scale),
        table="TPAMI 2019 Table 12 (and CResMD, AdaFM, DNI beyond the paper)",
        budget=budget_note(experiment) + "; adafm, dni (one operator at the two ends of its "
               "range, cannot be joint): one model per operator with a γ, each with 1/6 of "
               "the joint budget (the same total)",
        layers="K as the paper numbers N_base's 19 InstanceNorm layers; a shorter preset maps "
               "K onto its own (benchmarks._experiments.table12_arch)", figure=FIGURE)
    plot_table12(long, Path(results_dir) / FIGURE, experiment.scale)


TABLES = (Table(NAME, "table12", "TPAMI 2019 Table 12", runs="table12", units=units,
                unit_id=unit_id, measure=measure, check=check, check_table=check_table, frame=frame,
                write=write, layout=_latex.table12_ablation,
                summary=_latex.table12_summary_rows, paper=PAPER_TABLE12,
                figure=(plot_table12, FIGURE),
                scales=("smoke", "small", "medium", "paper"),
                suite="benchmarks/test_joint_tables.py"),)
