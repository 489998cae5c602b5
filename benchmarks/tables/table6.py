"""TPAMI 2019 Table 6: other methods over its ten filter operators.

``table6_baselines``: per operator at its default γ (the middle of the five test γ; the paper
does not say which it used; fixed-effect operators: their one effect), PSNR/SSIM (the paper's
protocol) on the test split of BGU (Chen et al. 2016, fitted per image: the operator on a 4×
box-downsampled input, :func:`bgu_scores`), DBL/HDRNet (Gharbi et al. 2017, one network per
operator, trained at that γ), the ``realtime`` model trained once jointly on all ten (the
paper's "ours") and, for operators with a γ, our one-operator γ-as-input ("concat"), single-γ
and decouple networks; the paper's figures (:data:`benchmarks.paper.PAPER_TABLE6`) beside them.
With its per-crop scores (``.crops.csv``), two mean rows (over every operator, and over those
with a γ) and the paired bootstrap intervals of what it states (:func:`frame`).

At the medium scale only the real-time model is trained (and BGU fitted).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

import operators

from .. import _latex
from .._latex import T6_MEAN_ROWS
from .._stats import claim_columns, difference, in_scope, no_interval
from ..paper import PAPER_TABLE6
from . import Measured, Table, claim
from ._common import budget_note, crop_frame, evaluate_op, predictor, table_ops, write_scored

NAME = "table6_baselines"
LABEL = "TPAMI 2019 Table 6 (ten operators)"
#: the methods, in the table's order (BGU is fitted per image, the others trained)
METHODS = ("bgu", "hdrnet", "concat", "single", "decouple", "realtime")
#: the one-operator networks, which exist for operators with a γ only
ONE_OP = ("concat", "single", "decouple")
#: Table 6's baselines that the real-time model ("ours") is compared with, and the paper's
#: name of each
BASELINES = {"bgu": "bgu", "hdrnet": "dbl"}
#: the mean rows (with per-crop scores): over all its operators, and over those with a γ (the
#: only ones the one-operator networks have), so that every mean of one row is over one set of
#: operators for every method
MEANS = T6_MEAN_ROWS
#: BGU's downsampling factor (google/bgu's default)
BGU_FACTOR = 4
CAPTION = ("Other methods at each operator's default γ: PSNR (dB) / SSIM on the test split; "
           "realtime: one model trained jointly on the ten operators (the paper's 'ours'); "
           "concat, single, decouple: our one-operator networks (operators with a γ); paper_*: "
           "TPAMI 2019 Table 6")
CAPTION_INTERVALS = ("; rows mean (all operators) and mean γ (those with a γ); "
                     "realtime_vs_bgu/hdrnet_psnr: realtime − BGU / HDRNet, <method>_gain_psnr: "
                     "method − input, each with its paired 95 % bootstrap interval over the test "
                     "crops (_lo, _hi), its sign check with one photograph left out (_lopo) and "
                     "the verdict on the paper's claim (_verdict, benchmarks/_stats.py); "
                     "per-crop scores: the .crops.csv")


def bgu_factor(size: int) -> int:
    """BGU's default 4x, or less where a crop is too small for it (smoke's 32² crops: 2x)."""
    from model.bgu import MIN_LOWRES

    return max(1, min(BGU_FACTOR, size // MIN_LOWRES))


def bgu_scores(data, op: str, gamma: float | None,
               crops: list | None = None) -> tuple[float, float, int, int]:
    """BGU's mean PSNR, SSIM over the test pairs of ``op`` at ``gamma``, their number and the
    downsampling factor; ``crops`` (a list) receives the per-crop scores as model ``bgu``
    (the rows of :func:`benchmarks._stats.crop_rows`)."""
    from datagen.dataset import PairDataset
    from model.bgu import bgu
    from model.evaluate import photos_of
    from model.metrics import psnr, ssim

    ds = PairDataset(data, [op], "test", gamma=gamma)
    p, s = [], []
    factor = bgu_factor(min(ds[0]["input"].shape[1:]))
    for i in range(len(ds)):
        d = ds[i]
        x, ref = d["input"].permute(1, 2, 0).numpy(), d["target"].permute(1, 2, 0).numpy()
        out = operators.to_uint8(bgu(x, op, gamma, factor=factor))
        p.append(psnr(out, ref))
        s.append(ssim(out, ref))
    if crops is not None:
        photo = photos_of(data)
        crops += [{"model": "bgu", "operator": op,
                   "gamma": float("nan") if gamma is None else gamma, "crop": int(src),
                   "photo": photo[int(src)], "psnr": a, "ssim": b}
                  for src, a, b in zip(ds.index[:, 2], p, s)]
    return float(np.mean(p)), float(np.mean(s)), len(ds), factor


def trained_methods(scale: str | None) -> tuple[str, ...]:
    """The trained methods at ``scale`` (the medium scale: the real-time model)."""
    return ("realtime",) if scale == "medium" else METHODS[1:]


def method_run(method: str, op: str, scale: str | None = None):
    """The run of ``method`` on ``op`` (the real-time model: the joint one of the scale)."""
    from .._experiments import Run, middle_gamma, table6_runs

    if method == "realtime":
        return [r for r in table6_runs([op], scale) if r.arch == "realtime"][0]
    has_gamma = operators.get(op).has_gamma
    g = middle_gamma(op) if has_gamma else None
    return Run(method, op, g if method in ("single", "hdrnet") else None)


def units(scale=None, ops=None) -> list[str]:
    """The ten operators of TPAMI Table 6 (smoke: four of them), those in ``ops``."""
    from .._experiments import SMOKE, TABLE6_OPS

    return table_ops(SMOKE["table6"] if scale == "smoke" else TABLE6_OPS, ops)


def measure(experiment, op: str) -> Measured:
    """One operator's row: every method's PSNR/SSIM at its default γ (NaN for a method it does
    not have), the input's, BGU's factor; and every method's per-crop scores."""
    from .._experiments import middle_gamma

    scale = experiment.scale
    data = experiment.data()
    has_gamma = operators.get(op).has_gamma
    g = middle_gamma(op) if has_gamma else None
    gammas = [g] if has_gamma else None
    row = {"operator": op, "gamma": g if has_gamma else float("nan")}
    crops: list = []
    for method in METHODS[1:]:
        if method not in trained_methods(scale) or (method in ONE_OP and not has_gamma):
            row.update({f"{method}_psnr": float("nan"), f"{method}_ssim": float("nan")})
            continue
        s = evaluate_op(predictor(experiment, method_run(method, op, scale)), data, op, gammas,
                        crops=crops, name=method)
        row.update({f"{method}_psnr": s["psnr"], f"{method}_ssim": s["ssim"],
                    "identity_psnr": s["identity_psnr"], "identity_ssim": s["identity_ssim"],
                    "images": s["images"]})
    row["bgu_psnr"], row["bgu_ssim"], n, row["bgu_factor"] = bgu_scores(data, op, g,
                                                                        crops=crops)
    if n != row["images"]:
        raise ValueError(f"{op}: BGU scored {n} test pairs, the networks {row['images']}")
    return Measured([row], crops)


def check(measured: Measured, scale: str) -> None:
    """Every score is a number; beyond the smoke scale a one-operator network beats copying its
    input (the medium scale trains none; the joint real-time model, at a small budget, may not
    on every operator, e.g. L0 whose input already scores 28 dB: :func:`check_table`)."""
    row = measured.rows[0]
    has_gamma = operators.get(row["operator"]).has_gamma
    values = np.array([row[f"{m}_{k}"] for m in ("bgu",) + trained_methods(scale)
                       for k in ("psnr", "ssim")
                       if has_gamma or m not in ONE_OP])
    claim(np.isfinite(values).all(), row)
    if scale not in ("smoke", "medium") and has_gamma:
        claim(row["decouple_psnr"] > row["identity_psnr"], row)


def check_table(df: pd.DataFrame, scale: str) -> str | None:
    """After every operator's row: the joint real-time model, averaged over the operators
    measured, beats copying the input (it has learnt the ten operators at all)."""
    if scale == "smoke" or len(df) < 2:
        return "needs the small or paper scale and the rows of two operators or more"
    claim(df.realtime_psnr.mean() > df.identity_psnr.mean(),
          df[["operator", "realtime_psnr", "identity_psnr"]])
    return None


def frame(df: pd.DataFrame, crops: pd.DataFrame | None = None) -> pd.DataFrame:
    """The measured rows with the paper's figures (``paper_<bgu|dbl|ours>_<psnr|ssim>``); with
    ``crops`` (the per-crop scores of the methods and ``identity``), also per row:

    - ``realtime_vs_<bgu|hdrnet>_psnr`` (the real-time model − the baseline) with its paired
      95 % interval (``_lo``, ``_hi``), photograph check (``_lopo``) and ``_verdict`` on the
      paper's claim (the sign of its "ours" − BGU / DBL for the operator; inconclusive where
      the real-time model is not above its input by more than its interval);
    - ``<method>_gain_psnr`` (the method − the input) with the same columns (the claim: it
      beats its input);

    and two mean rows (:data:`MEANS`): ``mean`` over every operator (NaN for a method that
    lacks some) and ``mean γ`` over the operators with a γ (every method), their differences
    with intervals over the same operators."""
    df = df.copy()
    for method, figures in PAPER_TABLE6.items():
        nan = (float("nan"), float("nan"))
        df[f"paper_{method}_psnr"] = [figures.get(o, nan)[0] for o in df.operator]
        df[f"paper_{method}_ssim"] = [figures.get(o, nan)[1] for o in df.operator]
    if crops is None or not len(crops):
        return df
    ops = list(df.operator)
    with_gamma = [o for o in ops if operators.get(o).has_gamma]
    means = []
    for name, scope in zip(MEANS, (ops, with_gamma)):
        part = df[df.operator.isin(scope)]
        num = part.select_dtypes("number").drop(columns=["gamma", "bgu_factor"],
                                                errors="ignore")
        # a method missing on some of the operators has no mean over them
        m = {k: (num[k].mean() if num[k].notna().all() else float("nan")) for k in num}
        m["images"] = int(part.images.sum())
        means.append({"operator": name, "gamma": float("nan"), **m})
    out = pd.concat([df, pd.DataFrame(means)], ignore_index=True)
    scopes = [[o] for o in ops] + [ops, with_gamma]
    return pd.concat([out, intervals(out, crops, scopes)], axis=1)


def intervals(out: pd.DataFrame, crops: pd.DataFrame, scopes: list) -> pd.DataFrame:
    """The interval columns of :func:`frame`, row by row (``scopes``: each row's operators)."""
    methods = [m for m in METHODS if (crops.model == m).any()]
    found = []
    for r, ops in zip(out.itertuples(), scopes):
        scope = in_scope(crops, ops)
        has = {m for m in methods  # (none over no operator: the mean γ row of γ-less ones)
               if ops and set(scope[scope.model == m].operator) == set(ops)}
        cols, gains = {}, {}
        for m in METHODS:
            prefix = f"{m}_gain_psnr"
            if m in has:
                gains[m] = difference(scope, m, "identity")
                cols.update(claim_columns(prefix, gains[m], +1))
            else:
                cols.update(no_interval(prefix))
        for base, paper in BASELINES.items():
            prefix = f"realtime_vs_{base}_psnr"
            if not {"realtime", base} <= has:
                cols.update(no_interval(prefix))
                continue
            a, b = getattr(r, "paper_ours_psnr"), getattr(r, f"paper_{paper}_psnr")
            if len(ops) > 1:  # a mean row: the paper's means over the same operators
                a = np.mean([PAPER_TABLE6["ours"][o][0] for o in ops])
                b = np.mean([PAPER_TABLE6[paper][o][0] for o in ops])
            sign = int(np.sign(a - b)) if a == a and b == b and a != b else None
            cols[f"{prefix}_verdict"] = ""
            cols.update(claim_columns(prefix, difference(scope, "realtime", base), sign,
                                      above_input=[gains["realtime"]]))
        found.append(cols)
    return pd.DataFrame(found, index=out.index)


def summary_text(df: pd.DataFrame, scale: str) -> str:
    """What the table shows, in words, from its own numbers (for results/README.md)."""
    ours = ", ".join(f"{m} {df[f'{m}_psnr'].mean():.2f}" for m in METHODS
                     if df[f"{m}_psnr"].notna().any())
    known = [o for o in df.operator if o in PAPER_TABLE6["bgu"]]
    paper = ", ".join(f"{k} {np.mean([PAPER_TABLE6[k][o][0] for o in known]):.2f}"
                      for k in ("bgu", "dbl", "ours"))
    return (f"{scale} scale, {len(df)} operators; mean PSNR (dB) over the operators each method "
            f"has (concat, single, decouple: those with a γ): {ours}; identity "
            f"{df.identity_psnr.mean():.2f}. Paper (same operators): {paper}. The paper's "
            "claim: the joint real-time model beats BGU and DBL on almost every operator.")


def write(experiment, results_dir: Path, df: pd.DataFrame, crops: pd.DataFrame | None,
          started: float, **facts) -> None:
    """The CSV (:func:`frame`), its per-crop scores, LaTeX and sidecar (provenance: the dataset,
    the models behind it, each method's settings, :func:`summary_text`; ``facts`` besides)."""
    from model.presets import get_preset

    crops = crop_frame(pd.DataFrame() if crops is None else crops)
    df = frame(df, crops)
    preset = get_preset(experiment.preset)
    runs = [method_run(m, o, experiment.scale) for o in df.operator if o not in MEANS
            for m in trained_methods(experiment.scale)
            if m in ("hdrnet", "realtime") or operators.get(o).has_gamma]
    write_scored(
        experiment, results_dir, NAME, df, crops, started, list(dict.fromkeys(runs)), facts,
        caption=CAPTION + (CAPTION_INTERVALS if len(crops) else ""),
        summary=summary_text(df[~df.operator.isin(MEANS)], experiment.scale), table=LABEL,
        gamma="the middle of each operator's five test γ; fixed-effect operators: their effect",
        budget=budget_note(experiment),
        bgu="operator on a box-downsampled input (bgu_factor: 4x, less for crops too small for "
            "it); grid round(h/16) x round(w/16) x 8 of the low-res image, 3x4 affines, "
            "lambda_spatial 1, second-derivative intensity smoothness 4e-7, luminance guide "
            "(google/bgu defaults)",
        hdrnet=f"16x16x8 grid, low-res stream at {preset.hdrnet_lowres}², Adam "
               f"{preset.hdrnet_lr:g} constant, the preset's iterations/batch/crop, one "
               "network per operator",
        realtime="TPAMI 2019 §3.3 real-time model (only the last InstanceNorm's affine "
                 "depends on the code), trained once jointly on the ten operators over their "
                 "full γ ranges, as the paper's 'ours'")


TABLES = (Table(NAME, "table6", "TPAMI 2019 Table 6", runs="table6", units=units,
                measure=measure, check=check, check_table=check_table, frame=frame,
                write=write, layout=_latex.table6, paper=PAPER_TABLE6,
                scales=("smoke", "small", "medium", "paper"),
                suite="benchmarks/test_joint_tables.py"),)
