"""Continuity of the joint models across each filter's γ range.

``gamma_sweep_joint``: PSNR/SSIM at ~20 γ per filter (evenly spaced in the sampling law's scale,
and the test γ; :func:`benchmarks.tables.gamma_sweep.sweep_gammas`) of the operator's own
decouple network and of every joint model that holds the operator (Tables 3, 6 and 12's), and
of the identity, against the operator's own output at each γ; plotted in
``figures/gamma_sweep_joint.png`` (:func:`benchmarks._figures.plot_gamma_sweep_joint`, re-drawn
from the CSV by ``python -m benchmarks.render``). Restoration operators are not swept: joint
models are blind to their γ. At smoke scale L0 only.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

import operators

from .. import _latex
from .._figures import plot_gamma_sweep_joint
from .._latex import sweep_joint_models, sweep_joint_summary
from .._report import write_table
from . import Measured, Table, claim
from ._common import budget_note, predictor, run_model, scores, source_crops, table_ops
from .gamma_sweep import sweep_gammas

NAME = "gamma_sweep_joint"
FIGURE = "figures/gamma_sweep_joint.png"
#: the joint decouple models' names in the table, by their operator group
LABELS = {"filters6": "decouple, 6 filters", "ten-tpami": "decouple, 10 operators",
          "tpami10": "decouple, 10 filters (Table 12)"}
CAPTION = ("Continuity of the joint models: PSNR/SSIM across each filter's γ range (evenly "
           "spaced in the sampling law's scale, and the test γ) of the operator's own decouple "
           "network and of every joint model that holds the operator, and of the identity")


def models(op: str, scale: str | None) -> dict:
    """The sweep's models for filter ``op``: its own decouple model and every joint one, by
    their names in the table."""
    from .._experiments import Run, sweep_joint_runs

    found = {"decouple, 1 operator": Run("decouple", op)}
    for r in sweep_joint_runs(None, scale):
        if not r.is_joint or op not in r.operators:
            continue
        if r.arch == "decouple":
            label = LABELS[r.op]
        elif r.arch == "concat":
            label = "γ as input, 10 operators"
        else:
            label = f"{r.arch}, 10 filters (Table 6)"
        found[label] = r
    return found


def units(scale=None, ops=None) -> list[str]:
    """Table 1's six filters (smoke: L0), those in ``ops``."""
    return table_ops(("l0",) if scale == "smoke" else operators.NAMES, ops)


def measure(experiment, op: str) -> Measured:
    """One filter's rows: every model's PSNR/SSIM on the test crops at each sweep γ against the
    operator's own output at that γ."""
    from datagen.build import run_task

    from .._experiments import SWEEP_POINTS

    sources = source_crops(experiment)
    spec = operators.get(op)
    found = models(op, experiment.scale)
    rows = []
    for g in sweep_gammas(op, SWEEP_POINTS[experiment.scale]):
        refs = np.stack([run_task(op, s, [g])["output"][0] for s in sources])
        outs = {name: run_model(predictor(experiment, run), sources, op, g)
                for name, run in found.items()}
        outs["identity"] = sources
        for name, o in outs.items():
            p, s = scores(o, refs)
            rows.append({"operator": op, "gamma": g, "gamma_norm": float(spec.normalize(g)),
                         "model": name, "psnr": p, "ssim": s, "images": len(sources)})
    return Measured(rows)


#: how much more than the operator's own network a joint model's gain over the input may change
#: between neighbouring γ (dB)
MAX_EXTRA_STEP = 2.0


def check(measured: Measured, scale: str) -> None:
    """Every score is a number and every model swept; beyond the smoke scale the operator's own
    network beats the identity, and continuity: a joint model's gain over the input changes
    between neighbouring γ by at most :data:`MAX_EXTRA_STEP` dB more than the operator's own
    network's does (the operator itself may jump: WMF's radius is an integer, RGF's target moves
    fast at the smallest σ_s; a code path that breaks at some γ shows as a jump of several dB).
    Whether each joint model beats the input is checked on average (:func:`check_table`): at
    the small budget some stay near it on L0."""
    df = pd.DataFrame(measured.rows)
    claim(np.isfinite(df[["psnr", "ssim"]].to_numpy(float)).all(), df)
    names = set(df.model) - {"identity"}
    claim("identity" in set(df.model) and "decouple, 1 operator" in names, sorted(set(df.model)))
    if scale != "smoke":
        summary = sweep_joint_summary(df).set_index("model")
        claim(summary.mean_psnr["decouple, 1 operator"] > summary.mean_psnr["identity"], df)
        steps = summary.max_step
        for m in names:
            claim(steps[m] <= steps["decouple, 1 operator"] + MAX_EXTRA_STEP, steps)


def check_table(df: pd.DataFrame, scale: str) -> str | None:
    """After every operator's sweep: each joint model, its PSNR averaged over the swept γ and
    operators, beats copying the input (small scale: all do by 1.3 dB or more; on L0 alone
    several are below it, as in Tables 3 and 6)."""
    if scale == "smoke" or len(df) < 2:
        return "needs the small or paper scale and the rows of the sweep"
    per_op = sweep_joint_summary(df).pivot(index="model", columns="operator",
                                           values="mean_psnr")
    ident = per_op.loc["identity"]
    for m in per_op.index.drop("identity"):
        ops = per_op.loc[m].dropna().index
        claim(per_op.loc[m, ops].mean() > ident[ops].mean(), per_op.T)
    return None


def summary_text(df: pd.DataFrame, scale: str) -> str:
    """What the table shows, in words, from its own numbers (for results/README.md)."""
    s = sweep_joint_summary(df)
    worst = s[s.model != "identity"].sort_values("max_step", ascending=False).iloc[0]
    return (f"{scale} scale. Largest change of a model's gain over the input between "
            f"neighbouring γ: {worst.max_step:.2f} dB ({worst.model}, {worst.operator}). Mean "
            "gap of each joint model to the operator's own decouple model (dB): "
            + "; ".join(f"{r.model} {r.gap_to_own:+.2f}"
                        for r in sweep_joint_models(df).itertuples()
                        if r.model not in ("identity", "decouple, 1 operator"))
            + ". Restoration operators are not swept: joint models are blind to their γ "
              "(Tables 2 and 3 measure them at the test γ).")


def write(experiment, results_dir: Path, df: pd.DataFrame, crops, started: float,
          **facts) -> None:
    """The CSV (the rows as measured), LaTeX, sidecar (provenance: the models behind it, the
    budget rule, :func:`summary_text`) and ``figures/gamma_sweep_joint.png``."""
    from .._experiments import SWEEP_POINTS

    runs = list(dict.fromkeys(r for op in dict.fromkeys(df.operator)
                              for r in models(op, experiment.scale).values()))
    meta = experiment.provenance(
        started, runs, points=SWEEP_POINTS[experiment.scale], budget=budget_note(experiment),
        figure=FIGURE, summary=summary_text(df, experiment.scale), **facts)
    write_table(df, NAME, results_dir, meta, caption=CAPTION)
    plot_gamma_sweep_joint(df, Path(results_dir) / FIGURE, experiment.scale)


TABLES = (Table(NAME, "sweep_joint", runs="sweep_joint", units=units, measure=measure,
                check=check, check_table=check_table, write=write,
                layout=_latex.gamma_sweep_joint, summary=_latex.sweep_joint_models,
                figure=(plot_gamma_sweep_joint, FIGURE),
                suite="benchmarks/test_joint_tables.py"),)
