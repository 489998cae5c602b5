"""ECCV 2018 / TPAMI 2019 Table 2: restoration, one network per task.

``table2_restoration``: per task (SR ×2/×3/×4, denoising σ 15/25/50, JPEG deblocking q 10/20)
and test γ, PSNR/SSIM (the paper's protocol: Y for SR and deblocking, gray for denoising, see
:func:`model.metrics.score`) of the single-γ network trained at that γ and of the decouple
network trained on the task's whole γ range, their difference, the identity (the degraded
input), ``ave.`` rows, and the paper's figures (:data:`benchmarks.paper.PAPER_TABLE2_PSNR`, per
γ PSNR, and :data:`~benchmarks.paper.PAPER_TABLE2_AVE`, averages) beside them. Every network
gets the same preset. Its per-crop scores go into ``table2_restoration.crops.csv``, and each
difference it states gets its paired bootstrap interval (:func:`frame`,
:mod:`benchmarks._stats`).

At smoke scale only JPEG is trained (the same code path as the other tasks).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

import operators

from .. import _latex
from .._stats import claim_columns, crop_rows, difference, in_scope
from ..paper import PAPER_TABLE2_AVE, PAPER_TABLE2_PSNR
from . import Measured, Table, claim
from ._common import predictor, table_ops, write_scored

NAME = "table2_restoration"
LABEL = "ECCV 2018 / TPAMI 2019 Table 2"
COLUMNS = ["operator", "gamma", "single_psnr", "decouple_psnr", "diff_psnr", "single_ssim",
           "decouple_ssim", "diff_ssim", "identity_psnr", "identity_ssim", "images",
           "paper_single_psnr", "paper_decouple_psnr", "paper_diff_psnr", "paper_single_ssim",
           "paper_decouple_ssim"]
CAPTION = ("Restoration, one network per task: single-γ networks vs the decouple network "
           "trained on the task's γ range, PSNR (dB) / SSIM on the test split at each test γ "
           "(SR scale, noise σ, JPEG quality); paper_* columns: ECCV 2018 / TPAMI 2019 Table 2; "
           "diff_psnr_lo/hi and gain_psnr_lo/hi: paired 95 % bootstrap intervals over the test "
           "crops of decouple − single and decouple − input, _lopo: the sign holds with any one "
           "photograph left out, _verdict: the paper's claim (the sign of its difference; the "
           "network beats its input) supported, contradicted or inconclusive "
           "(benchmarks/_stats.py); per-crop scores: the .crops.csv")


def units(scale=None, ops=None) -> list[str]:
    """The restoration tasks (:data:`benchmarks._experiments.TABLE2_TASKS`; smoke: JPEG only),
    those in ``ops``."""
    from .._experiments import SMOKE, TABLE2_TASKS

    return table_ops(SMOKE["table2"] if scale == "smoke" else TABLE2_TASKS, ops)


def measure(experiment, task: str) -> Measured:
    """One task's rows (its test γ: the single-γ network at that γ vs the decouple network, and
    the identity) and the per-crop scores of the three."""
    from model.evaluate import evaluate

    from .._experiments import Run

    data = experiment.data()
    dec_crops, single_crops = [], []
    dec = evaluate(predictor(experiment, Run("decouple", task)), data, ops=[task],
                   crops=dec_crops)
    single = pd.concat([evaluate(predictor(experiment, Run("single", task, float(g))), data,
                                 ops=[task], identity=False, crops=single_crops)
                        for g in operators.get(task).test_gammas], ignore_index=True)
    crops = (crop_rows("decouple", dec_crops, identity="identity")
             + crop_rows("single", single_crops))
    n = len(operators.get(task).test_gammas)
    if not (len(dec) == len(single) == n
            and np.allclose(dec.gamma.to_numpy(float), single.gamma.to_numpy(float))):
        raise ValueError(f"{task}: the decouple and single-γ evaluations do not cover the same "
                         f"{n} test γ:\n{dec}\n{single}")
    rows = [{"operator": task, "gamma": float(d.gamma), "single_psnr": s.psnr,
             "decouple_psnr": d.psnr, "single_ssim": s.ssim, "decouple_ssim": d.ssim,
             "identity_psnr": d.identity_psnr, "identity_ssim": d.identity_ssim,
             "images": int(d.images)}
            for (_, d), (_, s) in zip(dec.iterrows(), single.iterrows())]
    return Measured(rows, crops)


def check(measured: Measured, scale: str) -> None:
    """Every score is a number (SSIM at most 1); beyond the smoke scale, a trained restoration
    network beats its degraded input."""
    d = pd.DataFrame(measured.rows)
    values = d[["decouple_psnr", "decouple_ssim", "single_psnr", "single_ssim"]].to_numpy(float)
    claim(np.isfinite(values).all() and (values[:, [1, 3]] <= 1).all(), d)
    if scale != "smoke":
        claim(d.decouple_psnr.mean() > d.identity_psnr.mean(), d)


def frame(df: pd.DataFrame, crops: pd.DataFrame | None = None) -> pd.DataFrame:
    """One row per task and γ with the paper's per-γ PSNR, and an ``ave.`` row per task with
    the paper's averages (PSNR and SSIM); with ``crops`` (the per-crop scores of the models
    ``decouple``, ``single`` and ``identity``), the interval columns of :func:`intervals`."""
    from .._experiments import TABLE2_TASKS

    parts = []
    for op in [t for t in TABLE2_TASKS if t in set(df.operator)]:
        d = df[df.operator == op].sort_values("gamma")
        paper = PAPER_TABLE2_PSNR.get(op, {})
        nan = (float("nan"), float("nan"))
        d = d.assign(paper_single_psnr=[paper.get(float(g), nan)[0] for g in d.gamma],
                     paper_decouple_psnr=[paper.get(float(g), nan)[1] for g in d.gamma],
                     paper_single_ssim=float("nan"), paper_decouple_ssim=float("nan"))
        ave = d.drop(columns=["operator", "gamma"]).mean().to_dict()
        ave["images"] = int(d.images.sum())
        ps, pn, ss, sn = PAPER_TABLE2_AVE.get(op, (float("nan"),) * 4)
        ave.update(operator=op, gamma="ave.", paper_single_psnr=ps, paper_decouple_psnr=pn,
                   paper_single_ssim=ss, paper_decouple_ssim=sn)
        d = d.assign(gamma=[f"{g:g}" for g in d.gamma])
        parts += [d, pd.DataFrame([ave])]
    long = pd.concat(parts, ignore_index=True)
    long["diff_psnr"] = long.decouple_psnr - long.single_psnr
    long["diff_ssim"] = long.decouple_ssim - long.single_ssim
    long["paper_diff_psnr"] = (long.paper_decouple_psnr - long.paper_single_psnr).round(2)
    long = long[COLUMNS]
    if crops is not None and len(crops):
        long = pd.concat([long, intervals(long, crops)], axis=1)
    return long


def intervals(long: pd.DataFrame, crops: pd.DataFrame) -> pd.DataFrame:
    """Per row (a task at one γ, or its ``ave.``: the mean over its γ) the paired bootstrap
    intervals (:func:`benchmarks._stats.difference`) of what the table states:

    - ``diff_psnr_lo``/``_hi``/``_lopo``: decouple − single; ``diff_psnr_verdict``: the paper's
      claim, the sign of its own difference (``paper_diff_psnr``; none where it is 0 or not
      given), inconclusive where the decouple network is not above its input by more than its
      interval; ``paper_diff_inside``: the paper's difference lies in our interval;
    - ``gain_psnr`` (decouple − the degraded input) with ``gain_psnr_lo``/``_hi``/``_lopo``
      and ``gain_psnr_verdict`` (the claim: the network beats its input).
    """
    out = []
    for r in long.itertuples():
        scope = in_scope(crops, r.operator, r.gamma)
        gain = difference(scope, "decouple", "identity")
        diff = difference(scope, "decouple", "single")
        paper = r.paper_diff_psnr
        sign = None if paper != paper or paper == 0 else int(np.sign(paper))
        cols = claim_columns("diff_psnr", diff, sign, above_input=[gain])
        del cols["diff_psnr"]  # the table's own column (the means' difference, the same)
        cols.setdefault("diff_psnr_verdict", "")
        cols["paper_diff_inside"] = (bool(diff["lo"] <= paper <= diff["hi"]) if paper == paper
                                     else None)
        cols.update(claim_columns("gain_psnr", gain, +1))
        out.append(cols)
    return pd.DataFrame(out, index=long.index)


def summary_text(long: pd.DataFrame, scale: str) -> str:
    """What the table shows, in words, from its own numbers (for results/README.md)."""
    from model.presets import get_preset

    p = get_preset(scale)
    ave = long[long.gamma == "ave."]
    ours = ", ".join(f"{o} {d:+.2f}" for o, d in zip(ave.operator, ave.diff_psnr))
    paper = ", ".join(f"{o} {PAPER_TABLE2_AVE[o][1] - PAPER_TABLE2_AVE[o][0]:+.2f}"
                      for o in ave.operator if o in PAPER_TABLE2_AVE)
    gain = ", ".join(f"{o} {d - i:+.2f}" for o, d, i in
                     zip(ave.operator, ave.decouple_psnr, ave.identity_psnr))
    return (f"{scale} scale: width {p.width}, {p.iterations} iterations of batch {p.batch} on "
            f"{p.crop}² crops per network. Decouple − single, average PSNR (dB): ours {ours}; "
            f"paper {paper} (the paper's claim: one network for the whole range of a "
            f"restoration task costs ~0.1 dB). Decouple − degraded input: {gain}.")


def write(experiment, results_dir: Path, df: pd.DataFrame, crops: pd.DataFrame | None,
          started: float, **facts) -> None:
    """The CSV (:func:`frame`), its per-crop scores, LaTeX and sidecar (provenance: the dataset,
    the models behind it, the protocol, :func:`summary_text`; ``facts`` besides)."""
    from .._experiments import table2_runs

    crops = pd.DataFrame() if crops is None else crops
    long = frame(df, crops)
    runs = table2_runs(list(dict.fromkeys(df.operator)), experiment.scale)
    write_scored(
        experiment, results_dir, NAME, long, crops, started, runs, facts, caption=CAPTION,
        summary=summary_text(long, experiment.scale), table=LABEL,
        protocol="PSNR/SSIM on Y for SR and deblocking, gray for denoising (model.metrics.score)",
        paper_data="the paper's test sets are BSD100 (SR), BSD68 (denoising), LIVE1 (deblocking);"
                   " ours are the dataset's test split")


TABLES = (Table(NAME, "table2", LABEL, runs="table2", units=units, measure=measure,
                check=check, frame=frame, write=write, layout=_latex.table2,
                paper=PAPER_TABLE2_PSNR, suite="benchmarks/test_restoration_table.py"),)
