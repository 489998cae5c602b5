"""ECCV 2018 / TPAMI 2019 Table 1: single-γ networks vs the decouple network, and a figure per
operator.

- ``table1_single_vs_decouple``: for each operator and each of its five test γ, PSNR/SSIM (the
  paper's protocol, see :mod:`model.metrics`) of the single-γ network trained at that γ and of the
  decouple network trained on continuously sampled γ ("numerous" in Fan et al., ECCV 2018,
  Table 1), their difference, the identity baseline, and per-operator ``ave.`` rows beside the
  paper's own averages (:data:`benchmarks.paper.PAPER_TABLE1`). Every network gets the same
  preset (iterations, batch, crop). The per-crop scores go into ``.crops.csv``, and each
  difference gets its paired bootstrap interval (:mod:`benchmarks._stats`).
- ``figures/visual_<op>.png`` (:func:`visual`): a test crop, the operator's output and the
  networks' at the five test γ.

Models and the dataset come from the benchmark cache, trained there on first use.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

import operators

from .. import _latex
from .._stats import crop_rows
from ..paper import PAPER_TABLE1
from . import Measured, Table, claim
from ._common import predictor, run_model, runs_behind, source_crops, table_ops, write_scored

NAME = "table1_single_vs_decouple"
LABEL = "ECCV 2018 / TPAMI 2019 Table 1"
CAPTION = ("Single-γ networks vs the decouple network trained on continuously sampled γ "
           "(\"numerous\"), PSNR (dB) / SSIM on the test split at the five test γ; paper_* "
           "columns: the paper's averages (ave. rows); diff_psnr_lo/hi: paired 95 % bootstrap "
           "interval of decouple − single over the test crops, diff_psnr_lopo: its sign holds "
           "with any one photograph left out (per-crop scores: the .crops.csv)")
#: the models behind the table (the γ-as-input network of the same run list is the sweep's)
ARCHS = ("decouple", "single")


def units(scale=None, ops=None) -> list[str]:
    """The six filters of the paper's Table 1 (:data:`operators.NAMES`), those in ``ops``."""
    return table_ops(operators.NAMES, ops)


def measure(experiment, op: str) -> Measured:
    """One operator's five rows (its test γ: single-γ network at that γ vs the decouple network,
    and the identity) and the per-crop scores of the three."""
    from model.evaluate import evaluate

    from .._experiments import Run

    data = experiment.data()
    dec_crops, single_crops = [], []
    dec = evaluate(predictor(experiment, Run("decouple", op)), data, ops=[op], crops=dec_crops)
    single = pd.concat([evaluate(predictor(experiment, Run("single", op, float(g))), data,
                                 ops=[op], identity=False, crops=single_crops)
                        for g in operators.get(op).test_gammas], ignore_index=True)
    crops = (crop_rows("decouple", dec_crops, identity="identity")
             + crop_rows("single", single_crops))
    if not (len(dec) == len(single) == 5
            and np.allclose(dec.gamma.to_numpy(), single.gamma.to_numpy())):
        raise ValueError(f"{op}: the decouple and single-γ evaluations do not cover the same "
                         f"five test γ:\n{dec}\n{single}")
    rows = [{"operator": op, "gamma": d.gamma, "single_psnr": s.psnr, "decouple_psnr": d.psnr,
             "single_ssim": s.ssim, "decouple_ssim": d.ssim, "identity_psnr": d.identity_psnr,
             "identity_ssim": d.identity_ssim, "images": d.images}
            for (_, d), (_, s) in zip(dec.iterrows(), single.iterrows())]
    return Measured(rows, crops)


def check(measured: Measured, scale: str) -> None:
    """Every score is a number (SSIM at most 1); beyond the smoke scale, which checks that code
    runs, the decouple network beats copying its input."""
    d = pd.DataFrame(measured.rows)
    values = d[["decouple_psnr", "decouple_ssim", "single_psnr", "single_ssim"]].to_numpy()
    claim(np.isfinite(values).all() and (values[:, [1, 3]] <= 1).all(), d)
    if scale != "smoke":  # a trained model must beat copying its input
        claim(d.decouple_psnr.mean() > d.identity_psnr.mean(), d)


def frame(df: pd.DataFrame, crops: pd.DataFrame | None = None) -> pd.DataFrame:
    """One row per operator and γ, plus ``ave.`` rows with the paper's averages (the LaTeX
    layout, operators as blocks of rows and the five γ across, is made from these rows by
    :func:`benchmarks._latex.table1`); with ``crops`` (the per-crop scores), the paired
    bootstrap interval of decouple − single PSNR per row (``diff_psnr_lo``, ``diff_psnr_hi``,
    ``diff_psnr_lopo``)."""
    parts = []
    for op in [o for o in operators.NAMES if o in set(df.operator)]:
        d = df[df.operator == op].sort_values("gamma")
        ave = d.drop(columns=["operator", "gamma"]).mean().to_dict()
        ps, pn, ss, sn = PAPER_TABLE1.get(op, (float("nan"),) * 4)  # not in the paper: NaN
        d = d.assign(gamma=[f"{g:g}" for g in d.gamma])
        ave.update(operator=op, gamma="ave.", paper_single_psnr=ps, paper_decouple_psnr=pn,
                   paper_diff_psnr=round(pn - ps, 2), paper_single_ssim=ss,
                   paper_decouple_ssim=sn)
        parts += [d, pd.DataFrame([ave])]
    long = pd.concat(parts, ignore_index=True)
    long["diff_psnr"] = long.decouple_psnr - long.single_psnr
    long["diff_ssim"] = long.decouple_ssim - long.single_ssim
    cols = ["operator", "gamma", "single_psnr", "decouple_psnr", "diff_psnr", "single_ssim",
            "decouple_ssim", "diff_ssim", "identity_psnr", "identity_ssim", "images",
            "paper_single_psnr", "paper_decouple_psnr", "paper_diff_psnr", "paper_single_ssim",
            "paper_decouple_ssim"]
    long = long[cols]
    if crops is not None and len(crops):
        from .._stats import interval_columns, intervals_by_gamma

        found = {op: intervals_by_gamma(crops[crops.operator == op], "decouple", "single")
                 for op in dict.fromkeys(long.operator)}
        extra = [interval_columns("diff_psnr", found[o][g])
                 for o, g in zip(long.operator, long.gamma)]
        long = pd.concat([long, pd.DataFrame(extra, index=long.index)], axis=1)
        long = pd.concat([long, pd.DataFrame([mean_row(long, crops)])], ignore_index=True)
        ave = long.gamma == "ave."
        long["paper_diff_inside"] = [
            bool(lo <= p <= hi) if a and p == p else None
            for a, p, lo, hi in zip(ave, long.paper_diff_psnr, long.diff_psnr_lo,
                                    long.diff_psnr_hi)]
    return long


#: the ``operator`` of :func:`frame`'s last row: the mean over the operators
MEAN = "mean"


def mean_row(long: pd.DataFrame, crops: pd.DataFrame) -> dict:
    """The mean over the operators of their ``ave.`` rows (the figure the README compares with
    the paper's mean gap), with the paired bootstrap interval of decouple − single over every
    operator's crops (:func:`benchmarks._stats.difference`: per cell, then per operator over
    its γ, then over the operators, so an operator counts once; the crops are resampled with
    all their cells, every operator's at once)."""
    from .._stats import difference, interval_columns

    ave = long[long.gamma == "ave."]
    row = ave.select_dtypes("number").mean().to_dict()
    row.update(operator=MEAN, gamma="ave.", images=float(ave.images.sum()),
               paper_diff_psnr=round(float(ave.paper_diff_psnr.mean()), 2))
    iv = difference(crops[crops.model.isin(["decouple", "single"])], "decouple", "single")
    row.update(interval_columns("diff_psnr", iv))
    return row


def summary_text(long: pd.DataFrame, scale: str) -> str:
    """What the table shows, in words, from its own numbers (for results/README.md)."""
    from model.presets import get_preset

    p = get_preset(scale)
    ave = long[(long.gamma == "ave.") & (long.operator != MEAN)]
    ours = ", ".join(f"{o} {d:+.2f}" for o, d in zip(ave.operator, ave.diff_psnr))
    known = [o for o in ave.operator if o in PAPER_TABLE1]  # operators the paper's Table 1 has
    paper = ", ".join(f"{o} {PAPER_TABLE1[o][1] - PAPER_TABLE1[o][0]:+.2f}" for o in known)
    return (f"{scale} scale: width {p.width}, {p.iterations} iterations of batch {p.batch} on "
            f"{p.crop}² crops per network (the paper: width 64, 100 epochs on VOC2012, GPU), so "
            f"absolute PSNR is far below the paper's; the claim to compare is the difference at "
            f"equal budget. Decouple − single, average PSNR (dB): ours {ours} (mean "
            f"{ave.diff_psnr.mean():+.2f}); paper {paper} (mean "
            f"{np.mean([PAPER_TABLE1[o][1] - PAPER_TABLE1[o][0] for o in known]):+.2f}).")


def write(experiment, results_dir: Path, df: pd.DataFrame, crops: pd.DataFrame | None,
          started: float, **facts) -> None:
    """The CSV (:func:`frame`), its per-crop scores, LaTeX and sidecar (provenance: the dataset,
    the models behind it, the paper's table, :func:`summary_text`; ``facts`` besides)."""
    long = frame(df, crops)
    write_scored(experiment, results_dir, NAME, long, crops, started, runs_behind(df, ARCHS),
                 facts, caption=CAPTION, summary=summary_text(long, experiment.scale),
                 table=LABEL)


def visual(experiment, op: str, results_dir: Path) -> Path:
    """Figure ``figures/visual_<op>.png``: the busiest test crop, the operator's output and the
    decouple and single-γ networks' at the five test γ (with their PSNR)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from datagen.build import run_task
    from model.metrics import psnr

    from .._experiments import Run

    sources = source_crops(experiment)
    src = sources[int(np.argmax([s.std() for s in sources]))]  # the busiest crop
    spec = operators.get(op)
    dec = predictor(experiment, Run("decouple", op))
    gs = [float(g) for g in spec.test_gammas]
    refs = run_task(op, src, gs)["output"]
    rows = [("operator (reference)", list(refs)),
            ("decouple", [run_model(dec, src[None], op, g)[0] for g in gs]),
            ("single-γ", [run_model(predictor(experiment, Run("single", op, g)), src[None], op,
                                    g)[0] for g in gs])]
    fig, axes = plt.subplots(3, 6, figsize=(13, 6.9), squeeze=False)
    for r, (label, outs) in enumerate(rows):
        axes[r, 0].imshow(src if r == 0 else np.full_like(src, 255))
        axes[r, 0].set_title("input" if r == 0 else "", fontsize=8)
        axes[r, 1].set_ylabel(label, fontsize=9)
        for c, (g, o) in enumerate(zip(gs, outs), start=1):
            axes[r, c].imshow(o)
            extra = "" if r == 0 else f"\n{psnr(o, refs[c - 1]):.2f} dB"
            axes[r, c].set_title(f"{spec.gamma_text}={g:g}{extra}", fontsize=8)
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    for ax in axes[1:, 0]:
        ax.axis("off")
    fig.suptitle(f"{spec.title}: reference vs networks ({experiment.scale} scale)", fontsize=11)
    fig.tight_layout()
    out = Path(results_dir) / "figures" / f"visual_{op}.png"
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return out


TABLES = (Table(NAME, "table1", LABEL, runs="table1", units=units, measure=measure, check=check,
                frame=frame, write=write, layout=_latex.table1,
                summary=_latex.table1_summary_rows, visual=visual, paper=PAPER_TABLE1,
                suite="benchmarks/test_paper_tables.py"),)
