"""Figures made from the result tables' CSV rows (so ``python -m benchmarks.render`` re-makes them).

- :func:`plot_gamma_sweep`: ``figures/gamma_sweep.png`` from ``gamma_sweep.csv``, one panel per
  operator (PSNR across its γ range), one legend that is correct for every panel.
- :func:`plot_gamma_sweep_joint`: ``figures/gamma_sweep_joint.png`` from
  ``gamma_sweep_joint.csv``: the joint models and each operator's own decouple network.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

import operators

from ._latex import gamma_symbol


def _gamma_panel(ax, op: str, spec, d) -> str:
    """Axes of one operator's PSNR-over-γ panel (log scale for a log-uniform law); returns the
    γ symbol for the labels that follow."""
    if spec.law == "log-uniform":
        ax.set_xscale("log")
        log_ticks(ax, float(d.gamma.min()), float(d.gamma.max()))
    symbol = gamma_symbol(spec.gamma_name)
    ax.set_title(f"{op.upper()}: {spec.title}", fontsize=9)
    ax.set_xlabel(symbol + (" (log scale)" if spec.law == "log-uniform" else ""))
    ax.set_ylabel("PSNR (dB)")
    ax.tick_params(labelsize=8)
    ax.grid(alpha=0.3, which="major")
    return symbol

def _ops(df: pd.DataFrame) -> list[str]:
    seen = list(dict.fromkeys(df.operator))
    order = {n: i for i, n in enumerate(operators.NAMES)}
    return sorted(seen, key=lambda o: (order.get(o, len(order)), seen.index(o)))


def _single_gamma(model: str) -> float:
    """Where a single-γ network was trained, from its name (``single lambda=0.02``)."""
    return float(str(model).rsplit("=", 1)[1])


def log_ticks(ax, lo: float, hi: float) -> None:
    """Readable ticks on a log x axis over [lo, hi]: 1-2-5 steps labelled as plain numbers
    (a range of less than two decades, like RTV's, otherwise gets one labelled tick)."""
    import matplotlib.ticker as mticker

    ax.xaxis.set_major_locator(mticker.LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    ax.xaxis.set_major_formatter(mticker.FuncFormatter(lambda v, _: f"{v:g}"))
    ax.xaxis.set_minor_locator(mticker.LogLocator(base=10, subs=np.arange(1, 10)))
    ax.xaxis.set_minor_formatter(mticker.NullFormatter())
    ax.set_xlim(lo / 1.08, hi * 1.08)


def plot_gamma_sweep(df: pd.DataFrame, out, scale: str) -> Path:
    """PSNR across each operator's γ range: the decouple network, the γ-as-input network, the
    input, and the five single-γ networks (dashed, a dot where each was trained, coloured by
    the rank of that γ among the five: the same rank has the same colour in every panel)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D

    ops = _ops(df)
    cols = min(3, len(ops))
    rows = -(-len(ops) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.6 * cols, 3.3 * rows + 0.6), squeeze=False)
    cmap = plt.get_cmap("viridis")
    n_single = 1
    for ax, op in zip(axes.flat, ops):
        spec = operators.get(op)
        d = df[df.operator == op]
        singles = sorted((m for m in dict.fromkeys(d.model) if str(m).startswith("single")),
                         key=_single_gamma)
        n_single = max(n_single, len(singles))
        for k, m in enumerate(singles):
            s = d[d.model == m]
            colour = cmap(k / max(1, len(singles) - 1) * 0.9)
            ax.plot(s.gamma, s.psnr, "--", lw=1, color=colour)
            g0 = _single_gamma(m)
            at = np.isclose(s.gamma.to_numpy(), g0)
            ax.plot(s.gamma.to_numpy()[at][:1], s.psnr.to_numpy()[at][:1], "o", color=colour,
                    ms=4)
        i = d[d.model == "identity"]
        ax.plot(i.gamma, i.psnr, ":", color="gray", lw=1)
        c = d[d.model == "concat"]
        ax.plot(c.gamma, c.psnr, "-", color="black", lw=1.2)
        dd = d[d.model == "decouple"]
        ax.plot(dd.gamma, dd.psnr, "-", color="crimson", lw=2.2)
        symbol = _gamma_panel(ax, op, spec, d)
        # the five single-γ networks of this panel, named with this operator's own γ
        names = ", ".join(f"{_single_gamma(m):g}" for m in singles)
        if singles:
            ax.text(0.02, 0.02, f"single-γ networks at {symbol} = {names}", fontsize=6,
                    transform=ax.transAxes, va="bottom", ha="left",
                    bbox=dict(facecolor="white", alpha=0.7, lw=0, pad=1))
    for ax in list(axes.flat)[len(ops):]:
        ax.axis("off")
    handles = [Line2D([], [], color="crimson", lw=2.2, label="decouple (all γ)"),
               Line2D([], [], color="black", lw=1.2, label="concat (γ as input)"),
               Line2D([], [], color="gray", lw=1, ls=":", label="identity (the input)")]
    for k in range(n_single):
        handles.append(Line2D([], [], color=cmap(k / max(1, n_single - 1) * 0.9), lw=1, ls="--",
                              marker="o", ms=4,
                              label=f"single-γ network, {_ordinal(k + 1)} test γ "
                                    f"(● where trained)"))
    fig.legend(handles=handles, loc="lower center", ncol=min(4, len(handles)), fontsize=7,
               frameon=False)
    fig.suptitle(f"Decouple network across γ vs single-γ networks ({scale} scale)", fontsize=11)
    fig.tight_layout(rect=(0, 0.55 / (3.3 * rows + 0.6), 1, 1))
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def _ordinal(n: int) -> str:
    return {1: "1st", 2: "2nd", 3: "3rd"}.get(n, f"{n}th")


#: line styles of the joint sweep's models (others: the default cycle)
_JOINT_STYLE = {"decouple, 1 operator": dict(color="crimson", lw=2.2),
                "identity": dict(color="gray", lw=1, ls=":")}


def plot_gamma_sweep_joint(df: pd.DataFrame, out, scale: str) -> Path:
    """PSNR across each filter's γ range of the operator's own decouple network and of the
    joint models that hold it (``gamma_sweep_joint.csv``), one panel per operator, one legend."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D

    ops = _ops(df)
    models = list(dict.fromkeys(df.model))
    cmap = plt.get_cmap("tab10")
    others = [m for m in models if m not in _JOINT_STYLE]
    palette = [cmap(i) for i in (0, 1, 2, 4, 5, 6, 8, 9)]  # tab10 without red and gray
    style = {m: dict(color=palette[i % len(palette)], lw=1.3) for i, m in enumerate(others)}
    style.update(_JOINT_STYLE)
    cols = min(3, len(ops))
    rows = -(-len(ops) // cols)
    ncol = min(len(models), cols if cols > 1 else 2)
    legend = 0.25 + 0.17 * -(-len(models) // ncol)  # inches below the panels
    fig, axes = plt.subplots(rows, cols, figsize=(max(4.6 * cols, 7.0), 3.3 * rows + legend),
                             squeeze=False)
    for ax, op in zip(axes.flat, ops):
        spec = operators.get(op)
        d = df[df.operator == op]
        for m in models:
            s = d[d.model == m].sort_values("gamma")
            if len(s):
                ax.plot(s.gamma, s.psnr, **style[m])
        _gamma_panel(ax, op, spec, d)
    for ax in list(axes.flat)[len(ops):]:
        ax.axis("off")
    handles = [Line2D([], [], label=m, **{k: v for k, v in style[m].items()}) for m in models]
    fig.legend(handles=handles, loc="lower center", ncol=ncol, fontsize=7, frameon=False)
    fig.suptitle(f"Joint models across γ vs each operator's own decouple network ({scale} "
                 "scale)", fontsize=11)
    fig.tight_layout(rect=(0, legend / (3.3 * rows + legend), 1, 1))
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def _table12_points(df: pd.DataFrame, reference: str = "conv(all)") -> pd.DataFrame:
    """The numbers :func:`plot_table12` draws, each read from the CSV or, where it has no
    interval columns (a table made before them), computed from its PSNR columns: per variant
    and average row (``avg``: the ten filters, ``avg γ``: the six with a γ) the difference to
    ``reference`` (``diff``, ``diff_lo``/``diff_hi``) and to the input (``gain``, ...), and the
    paper's difference of the averages (``paper_diff``)."""
    rows = []
    ref = df[df.variant == reference].set_index("operator")
    for variant, d in df.groupby("variant", sort=False):
        d = d.set_index("operator")
        for avg in ("avg", "avg γ"):
            if avg not in d.index or d.loc[avg, "psnr"] != d.loc[avg, "psnr"]:
                continue
            r = d.loc[avg]

            def col(name, fallback):
                v = r.get(name, float("nan"))
                return float(v) if v == v else fallback

            diff = (float(r.psnr - ref.loc[avg, "psnr"]) if avg in ref.index
                    and variant != reference else float("nan"))
            gain = float(r.psnr - r.identity_psnr)
            paper = (float(r.paper_psnr - ref.loc[avg, "paper_psnr"]) if avg in ref.index
                     and variant != reference and "paper_psnr" in r else float("nan"))
            rows.append({"variant": variant, "row": avg,
                         "diff": col("vs_conv_all_psnr", diff),
                         "diff_lo": col("vs_conv_all_psnr_lo", float("nan")),
                         "diff_hi": col("vs_conv_all_psnr_hi", float("nan")),
                         "gain": col("gain_psnr", gain),
                         "gain_lo": col("gain_psnr_lo", float("nan")),
                         "gain_hi": col("gain_psnr_hi", float("nan")),
                         "paper_diff": paper,
                         "matched": col("vs_matched_psnr", float("nan")),
                         "matched_lo": col("vs_matched_psnr_lo", float("nan")),
                         "matched_hi": col("vs_matched_psnr_hi", float("nan"))})
    return pd.DataFrame(rows)


def plot_table12(df: pd.DataFrame, out, scale: str) -> Path:
    """TPAMI Table 12 (``table12_ablation.csv``) as two forest plots, one row per variant:
    left, its PSNR minus conv(all)'s (the paper's comparison; a red cross: the paper's
    difference of the ten-filter averages; grey dots: each filter); right, its PSNR minus the
    input's (a model left of 0 does not beat copying its input, so its ranking says nothing).
    Filled circles: the ten filters' average; open squares: the six with a γ; bars: their
    paired 95 % bootstrap intervals over the test crops, where the CSV has them. Orange
    diamonds (left): a medium-scale variant trained another way against conv(all) trained the
    same way (``vs_matched_psnr``), where the CSV has such a pair."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    pts = _table12_points(df)
    variants = list(dict.fromkeys(df.variant))
    y = {v: i for i, v in enumerate(variants)}
    styles = {"avg": dict(marker="o", color="tab:blue", mfc="tab:blue", dy=-0.13,
                          label="ten filters (avg)"),
              "avg γ": dict(marker="s", color="tab:green", mfc="white", dy=0.13,
                            label="six with a γ (avg γ)")}
    height = 1.6 + 0.42 * len(variants)  # inches: title, panels, axis labels and legend
    fig, (left, right) = plt.subplots(1, 2, figsize=(11.0, height), sharey=True)
    ref = df[df.variant == "conv(all)"].set_index("operator").psnr
    for variant, d in df[~df.operator.isin(["avg", "avg γ"])].groupby("variant", sort=False):
        if variant == "conv(all)" or ref.empty:
            continue
        diffs = [p - ref.get(o, float("nan")) for o, p in zip(d.operator, d.psnr)]
        left.plot(diffs, [y[variant]] * len(diffs), ".", color="0.72", ms=4, zorder=1)
    for ax, key in ((left, "diff"), (right, "gain")):
        for row, st in styles.items():
            p = pts[(pts.row == row) & pts[key].notna()]
            ys = [y[v] + st["dy"] for v in p.variant]
            err = np.array([p[key] - p[key + "_lo"], p[key + "_hi"] - p[key]])
            has = ~np.isnan(err).any(axis=0)
            ax.errorbar(p[key][has], np.array(ys)[has], xerr=err[:, has], fmt="none",
                        ecolor=st["color"], elinewidth=1.4, capsize=2.5, zorder=2)
            ax.plot(p[key], ys, st["marker"], color=st["color"], mfc=st["mfc"], ms=6,
                    zorder=3, label=st["label"])
        ax.axvline(0, color="0.3", lw=0.9)
        ax.grid(axis="x", alpha=0.3)
        ax.tick_params(labelsize=8)
    paper = pts[(pts.row == "avg") & pts.paper_diff.notna()]
    left.plot(paper.paper_diff, [y[v] for v in paper.variant], "x", color="crimson", ms=7,
              mew=1.8, zorder=4, label="paper (ten filters)")
    same = pts[(pts.row == "avg") & pts.matched.notna()]  # a diagnostic pair's own conv(all)
    if len(same):
        ys = [y[v] - 0.36 for v in same.variant]
        left.errorbar(same.matched, ys, xerr=np.array([same.matched - same.matched_lo,
                                                        same.matched_hi - same.matched]),
                      fmt="D", color="tab:orange", ms=5, elinewidth=1.4, capsize=2.5, zorder=3,
                      label="ten filters, against conv(all) trained the same way")
    left.set_yticks(range(len(variants)), variants, fontsize=9)
    left.invert_yaxis()
    left.set_xlabel("PSNR − conv(all)'s (dB)", fontsize=9)
    right.set_xlabel("PSNR − the input's (dB): right of 0 beats copying the input", fontsize=9)
    left.set_title("Each variant against conv(all)", fontsize=10)
    right.set_title("Each variant against its input", fontsize=10)
    bars = "bars: paired 95 % bootstrap intervals over test crops" if pts.diff_lo.notna().any() \
        else "no intervals in this CSV"
    fig.suptitle(f"TPAMI Table 12, {scale} scale ({bars}; grey dots: each filter)", fontsize=10)
    handles, labels = left.get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=3, fontsize=8, frameon=False)
    fig.tight_layout(rect=(0, 0.3 / height, 1, 1))
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out
