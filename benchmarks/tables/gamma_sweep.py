"""Continuity across γ: the decouple network at ~20 γ across each operator's range.

``gamma_sweep``: against the five single-γ networks at every γ (their output does not depend on
γ), the γ-as-input network ("concat", the other way to learn every γ) and the identity, with the
reference output computed by the operator itself at each γ; plotted in
``figures/gamma_sweep.png`` (:func:`benchmarks._figures.plot_gamma_sweep`, re-drawn from the
CSV by ``python -m benchmarks.render``). The models are Table 1's.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

import operators

from .. import _latex
from .._figures import plot_gamma_sweep
from .._report import write_table
from . import Measured, Table, claim
from ._common import predictor, run_model, runs_behind, scores, source_crops, table_ops

NAME = "gamma_sweep"
CAPTION = ("Continuity: PSNR/SSIM of the decouple network across each γ range (evenly spaced in "
           "the sampling law's scale, and the test γ), of the five single-γ networks at every "
           "γ, of the γ-as-input network and of the identity")
FIGURE = "figures/gamma_sweep.png"
ARCHS = ("decouple", "single", "concat")


def sweep_gammas(op: str, points: int) -> np.ndarray:
    """``points`` γ evenly spaced in the sampling law's own scale (every integer for integer laws),
    and the five test γ (where the single-γ networks were trained)."""
    spec = operators.get(op)
    if spec.law == "integer":
        lo, hi = spec.gamma_range
        gammas = np.arange(int(lo), int(hi) + 1, dtype=float)
    else:
        gammas = np.asarray(spec.denormalize(np.linspace(0.0, 1.0, points)), dtype=float)
    gammas = [float(f"{g:.6g}") for g in gammas]  # 0.002, not 0.0020000000000000005
    return np.array(sorted(set(gammas) | {float(g) for g in spec.test_gammas}))


def units(scale=None, ops=None) -> list[str]:
    """Table 1's six filters (:data:`operators.NAMES`), those in ``ops``."""
    return table_ops(operators.NAMES, ops)


def measure(experiment, op: str) -> Measured:
    """One operator's rows: every model's PSNR/SSIM on the test crops at each sweep γ against
    the operator's own output at that γ."""
    from datagen.build import run_task

    from .._experiments import SWEEP_POINTS, Run

    sources = source_crops(experiment)
    gammas = sweep_gammas(op, SWEEP_POINTS[experiment.scale])
    spec = operators.get(op)
    dec = predictor(experiment, Run("decouple", op))
    concat = predictor(experiment, Run("concat", op))
    singles = {float(g): run_model(predictor(experiment, Run("single", op, float(g))),
                                   sources, op, float(g)) for g in spec.test_gammas}
    rows = []
    for g in gammas:
        refs = np.stack([run_task(op, s, [g])["output"][0] for s in sources])
        u = float(spec.normalize(g))
        models = {"decouple": run_model(dec, sources, op, g),
                  "concat": run_model(concat, sources, op, g), "identity": sources}
        models.update({f"single {spec.gamma_name}={g0:g}": out for g0, out in singles.items()})
        for name, outs in models.items():
            p, s = scores(outs, refs)
            rows.append({"operator": op, "gamma": g, "gamma_effective": spec.effective_gamma(g),
                         "gamma_norm": u, "model": name, "psnr": p, "ssim": s,
                         "images": len(sources)})
    return Measured(rows)


def check(measured: Measured, scale: str) -> None:
    """Every score is a number; beyond the smoke scale the decouple network beats the identity
    on average over the sweep."""
    df = pd.DataFrame(measured.rows)
    claim(np.isfinite(df[["psnr", "ssim"]].to_numpy()).all(), df)
    if scale != "smoke":
        d, i = df[df.model == "decouple"], df[df.model == "identity"]
        claim(d.psnr.mean() > i.psnr.mean(), df)


def write(experiment, results_dir: Path, df: pd.DataFrame, crops, started: float,
          **facts) -> None:
    """The CSV (the rows as measured), LaTeX, sidecar and ``figures/gamma_sweep.png``."""
    from .._experiments import SWEEP_POINTS

    meta = experiment.provenance(started, runs_behind(df, ARCHS),
                                 points=SWEEP_POINTS[experiment.scale], figure=FIGURE, **facts)
    write_table(df, NAME, results_dir, meta, caption=CAPTION)
    plot_gamma_sweep(df, Path(results_dir) / FIGURE, experiment.scale)


TABLES = (Table(NAME, "sweep", runs="table1",
                units=units, measure=measure, check=check, write=write,
                layout=_latex.gamma_sweep, summary=_latex.gamma_sweep_summary,
                figure=(plot_gamma_sweep, FIGURE), suite="benchmarks/test_paper_tables.py"),)
