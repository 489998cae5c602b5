"""The figures the README and docs/paper_results.md quote are the committed results, not numbers
typed by hand. The long results discussion (per-table tables, operator speed, training and dataset
throughput) lives in docs/paper_results.md; the README keeps a summary of it."""
from __future__ import annotations

import re
from pathlib import Path

import pandas as pd
import pytest

from benchmarks.speed_targets import target_met

REPO = Path(__file__).resolve().parents[1]
README = (REPO / "README.md").read_text()
#: the results discussion moved out of the README (issue 29, item 4)
PAPER_RESULTS = (REPO / "docs" / "paper_results.md").read_text()
RESULTS = REPO / "results"


def _table_after(heading: str, text: str = PAPER_RESULTS) -> list[list[str]]:
    """The cells of the first Markdown table after the paragraph starting with ``heading``."""
    start = text.index(heading)
    rows = []
    for line in text[start:].splitlines()[1:]:
        if line.startswith("|"):
            rows.append([c.strip() for c in line.strip("|").split("|")])
        elif rows:
            break
    assert len(rows) > 2, f"no table after {heading!r}"
    return rows[2:]  # without the header and the rule


def _prose(start: str, end: str | None, text: str = PAPER_RESULTS) -> str:
    """``text`` from ``start`` to ``end`` (None: its end), whitespace collapsed (line breaks do
    not matter)."""
    i = text.index(start)
    return " ".join(text[i:text.index(end, i) if end else None].split())


def _num(cell: str) -> float:
    return float(cell.replace("+", ""))


def _dash(v: float) -> str:
    """A figure as the README and the docs print it: two decimals, a typographic minus."""
    return f"{v:.2f}".replace("-", "−")


def test_table1_rows_are_the_committed_csv():
    full = pd.read_csv(RESULTS / "table1_single_vs_decouple.csv")
    t = full[full.operator != "mean"]  # the mean over the operators (a run with intervals)
    mean = full[full.operator == "mean"].iloc[0]
    means = t.groupby("operator")[["single_psnr", "decouple_psnr", "diff_psnr",
                                   "paper_diff_psnr"]].mean()
    rows = _table_after("**Table 1**")
    assert {r[0] for r in rows} == set(means.index)
    ave = t[t.gamma == "ave."].set_index("operator")
    text = _prose("**Table 1**", "**Table 2**")
    for op, single, decouple, diff, interval, paper in rows:
        m = means.loc[op]
        assert _num(single) == pytest.approx(m.single_psnr, abs=0.005), op
        assert _num(decouple) == pytest.approx(m.decouple_psnr, abs=0.005), op
        assert _num(diff) == pytest.approx(m.diff_psnr, abs=0.005), op
        assert _num(paper) == pytest.approx(m.paper_diff_psnr, abs=0.005), op
        lo, hi = (_num(v) for v in interval.strip("[]").split(","))
        assert (lo, hi) == (pytest.approx(ave.diff_psnr_lo[op], abs=0.005),
                            pytest.approx(ave.diff_psnr_hi[op], abs=0.005)), op
    mean_gap = re.search(r"\(mean ([0-9.]+) dB\) of five networks", PAPER_RESULTS).group(1)
    assert float(mean_gap) == pytest.approx(-means.diff_psnr.mean(), abs=0.005)
    r = means.diff_psnr.corr(means.paper_diff_psnr)  # per operator, ours vs the paper's
    assert f"our gaps correlate r = {r:.2f} with the paper's" in text
    # the verdicts: the mean over every crop, and per operator where the paper's Δ lies
    assert mean.paper_diff_inside
    assert (f"the gap is {_dash(mean.diff_psnr)} dB [{_dash(mean.diff_psnr_lo)}, "
            f"{_dash(mean.diff_psnr_hi)}], which holds the paper's {_dash(mean.paper_diff_psnr)}: "
            f"ours **agrees** on the average") in text
    name = {"l0": "L0", "wls": "WLS", "rtv": "RTV", "rgf": "RGF", "wmf": "WMF", "llf": "LLF"}
    inside = " and ".join(name[o] for o in ave.index if ave.paper_diff_inside[o])
    more = " and ".join(name[o] for o in ave.index if ave.diff_psnr_hi[o] < ave.paper_diff_psnr[o])
    less = " and ".join(name[o] for o in ave.index if ave.diff_psnr_lo[o] > ave.paper_diff_psnr[o])
    assert (f"the paper's Δ lies in our interval for {inside}; {more} lose more than the "
            f"paper's, {less} less (beyond our interval)") in text
    assert ave.diff_psnr_lopo.all()  # "No sign depends on one photograph"
    assert "No sign depends on one photograph" in text


def test_table6_rows_are_the_committed_csv():
    t = pd.read_csv(RESULTS / "table6_baselines.csv")
    rows = _table_after("**Table 6**")
    assert [r[0] for r in rows] == list(t.operator) + ["mean"]
    columns = ("bgu_psnr", "hdrnet_psnr", "realtime_psnr", "decouple_psnr", "identity_psnr",
               "paper_bgu_psnr", "paper_dbl_psnr", "paper_ours_psnr")
    means = t.mean(numeric_only=True)
    for row in rows:
        values = t[t.operator == row[0]].iloc[0] if row[0] != "mean" else means
        for cell, col in zip(row[1:], columns):
            if row[0] == "mean" and col == "decouple_psnr":  # six operators only
                assert cell == "–"
            elif values[col] != values[col]:
                assert cell == "–", (row[0], col)
            else:
                assert _num(cell) == pytest.approx(values[col], abs=0.005), (row[0], col)
    text = _prose("**Table 6**", "Every other table")
    beats = lambda a, b: int((t[f"{a}_psnr"] > t[f"{b}_psnr"]).sum())
    assert f"beats DBL on {beats('realtime', 'hdrnet')} of the 10" in text
    assert f"beating BGU on {beats('realtime', 'bgu')} of the 10" in text
    assert f"(mean {means.realtime_psnr:.2f} vs {means.paper_ours_psnr:.2f})" in text
    g = t.dropna(subset=["decouple_psnr"])
    assert (g.decouple_psnr > g.hdrnet_psnr).all() and (g.decouple_psnr > g.realtime_psnr).all()
    assert f"and BGU on {int((g.decouple_psnr > g.bgu_psnr).sum())} (not L0 and LLF)" in text


def test_every_operator_is_in_the_readme_table():
    import operators

    rows = _table_after("take no γ. Names are case-insensitive", README)
    names = {r[0].strip("`") for r in rows}
    assert names == set(operators.ALL)
    full = _table_after("## The fifteen operators", (REPO / "docs" / "operators.md").read_text())
    assert [r[0] for r in full] == [r[0] for r in rows]  # the full table, same order


def test_methods_table_parameter_counts():
    """The methods table's parameter counts (width 64, two operators; docs/usage_details.md) are
    the built networks'."""
    from model.config import ModelConfig
    from model.registry import build_model

    rows = _table_after("Every method trains, evaluates, applies and re-tunes",
                        (REPO / "docs" / "usage_details.md").read_text())
    assert rows[0][0].startswith("`decouple`")  # the table's first row is checked too
    checked = 0
    for row in rows:
        archs = re.findall(r"`([a-zA-Z0-9:-]+)`", row[0])
        counts = [re.match(r"\s*([0-9][0-9,]*)", part) for part in row[2].split(" / ")]
        if not archs or not all(counts):  # the BGU row has nothing to count
            continue
        for arch, count in zip(archs, (m.group(1) for m in counts)):
            arch = arch.replace(":K", ":19")
            net, _ = build_model(ModelConfig(arch=arch, ops=("l0", "wls"), width=64,
                                             dilations=(2, 4, 4, 8, 8, 16, 1), lowres=256))
            assert sum(p.numel() for p in net.parameters()) == int(count.replace(",", "")), arch
            checked += 1
    assert checked >= 11


def test_operator_speed_rows_are_the_committed_csv():
    speed = pd.read_csv(RESULTS / "operator_speed.csv")
    speed = speed[speed["size"] == "1024x1024"]
    rows = _table_after("**Speed at 1024² RGB and fidelity**")
    assert len(rows) == len(speed)
    for row, (_, r) in zip(rows, speed.iterrows()):
        assert row[0].strip("`") == r.operator
        assert float(row[2]) == pytest.approx(r.suite_s, abs=5e-4), r.operator
        assert float(row[3]) == pytest.approx(r.fresh_process_s, abs=5e-4), r.operator
        assert float(row[4]) == pytest.approx(r.fresh_vs_suite, abs=0.005), r.operator
        if row[6] != "–":
            assert float(row[6]) == pytest.approx(r.ratio, abs=0.005), r.operator
    text = PAPER_RESULTS[PAPER_RESULTS.index("**Speed at 1024² RGB"):
                         PAPER_RESULTS.index("## Training throughput")]
    low, high = speed.fresh_vs_suite.min(), speed.fresh_vs_suite.max()
    med = speed.fresh_vs_suite_median
    assert (f"fresh / suite\n{low:.2f}–{high:.2f} (lower quartiles; medians "
            f"{med.min():.2f}–{med.max():.2f})") in text
    # the verdicts the text states are the targets' verdicts on the committed rows
    met = [target_met(r) for _, r in speed.iterrows()]
    if "target_met" in speed:
        assert [None if pd.isna(v) else bool(v) for v in speed.target_met] == met
    missed = [f"`{op}`" for op, m in zip(speed.operator, met) if m is False]
    said = " ".join(text.split())
    if missed:
        assert f"meets every target but {', '.join(missed)} (" in said
    else:
        assert "meets every target" in said and "but `" not in said


def test_training_throughput_figures_are_the_committed_csv():
    t = pd.read_csv(RESULTS / "model_speed.csv")
    t = t[t.device == "cpu"]

    def ratio(measure, model):
        return float(t[(t.measure == measure) & (t.model == model)].vs_reference.iloc[0])

    text = PAPER_RESULTS[PAPER_RESULTS.index("**Training throughput**"):
                         PAPER_RESULTS.index("**Dataset throughput**")]
    main = "train samples/s"
    assert f"`decouple` {ratio(main, 'decouple (grouped)'):.2f}× (target" in text
    few = t[(t.measure == main) & (t.target == ">= 0.95x")].vs_reference
    assert f"`concat` {few.min():.2f}–{few.max():.2f}×" in text
    assert (few >= 0.95).all() and ratio(main, "decouple (grouped)") >= 0.9  # "met"
    rt = ratio("train samples/s (realtime backbone)", "realtime")
    assert f"`realtime` {rt:.2f}× of its own" in text and rt >= 0.95
    inf = t[t.measure.str.startswith("inference") & (t.target == "<= 1.1x")].vs_reference.iloc[0]
    assert f"generated once {inf:.2f}× single" in text
    forms = "train samples/s, decouple forms"
    assert (f"grouped {ratio(forms, 'decouple (grouped)'):.2f}×, linear "
            f"{ratio(forms, 'decouple (linear)'):.2f}×") in text
    stage2 = t[t.model.str.startswith("adafm (stage 2")].vs_reference.iloc[0]
    assert f"second\nstage {stage2:.2f}×" in text


def test_table3_rows_are_the_committed_csv():
    t = pd.read_csv(RESULTS / "table3_joint.csv")
    avg = t[t.operator == "avg"]
    for variant, heading in (("tpami", "**Table 3** (TPAMI"), ("eccv", "**ECCV Table 4**")):
        d = avg[avg.variant == variant]
        if heading not in PAPER_RESULTS:
            assert d.empty, f"{variant} rows in the CSV but not in docs/paper_results.md"
            continue
        rows = _table_after(heading)
        assert [r[0] for r in rows] == list(d.row)
        one, pone = d.psnr.iloc[0], d.paper_psnr.iloc[0]
        for (row, psnr, diff, interval, ssim, paper, pdiff), r in zip(rows, d.itertuples()):
            assert _num(psnr) == pytest.approx(r.psnr, abs=0.005), row
            assert _num(diff) == pytest.approx(r.psnr - one, abs=0.005), row
            assert interval == ("–" if r.row == "1 op" else
                                f"[{r.diff_psnr_lo:.2f}, {r.diff_psnr_hi:.2f}]"), row
            assert float(ssim) == pytest.approx(r.ssim, abs=0.0005), row
            if r.paper_psnr == r.paper_psnr:
                assert _num(paper) == pytest.approx(r.paper_psnr, abs=0.005), row
                assert _num(pdiff) == pytest.approx(r.paper_psnr - pone, abs=0.005), row
            else:
                assert paper == pdiff == "–", row
    # "for the averages", not gap for gap: the per-operator losses of each joint model against the
    # one-operator networks, correlated with the paper's
    text = _prose("**Table 3** (TPAMI", "**ECCV Table 4**")
    d = t[(t.variant == "tpami") & (t.operator != "avg")]
    one = d[d.row == "1 op"].set_index("operator")
    corr = {row: (e.set_index("operator").psnr - one.psnr).corr(
                e.set_index("operator").paper_psnr - one.paper_psnr)
            for row, e in d[d.row != "1 op"].groupby("row")}
    r = {row: _dash(v) for row, v in corr.items()}
    assert (f"correlate r = {r['10 ops']} with the paper's (the six-filter/four-restoration "
            f"models' r = {r['6/4 ops']}, γ as input r = {r['γ as input, 10 ops']}") in text


def test_table2_rows_are_the_committed_csv():
    t = pd.read_csv(RESULTS / "table2_restoration.csv")
    ave = t[t.gamma == "ave."].set_index("operator")
    rows = _table_after("**Table 2**")
    assert [r[0] for r in rows] == list(ave.index)
    for task, single, decouple, diff, interval, paper, identity in rows:
        r = ave.loc[task]
        assert _num(single) == pytest.approx(r.single_psnr, abs=0.005), task
        assert _num(decouple) == pytest.approx(r.decouple_psnr, abs=0.005), task
        assert _num(diff) == pytest.approx(r.diff_psnr, abs=0.005), task
        assert interval == f"[{r.diff_psnr_lo:.2f}, {r.diff_psnr_hi:.2f}]", task
        assert _num(paper) == pytest.approx(r.paper_diff_psnr, abs=0.005), task
        assert _num(identity) == pytest.approx(r.identity_psnr, abs=0.005), task
    text = _prose("**Table 2**", "**Table 3**")
    for g in ("15", "25", "50"):  # the per-σ gaps the discussion quotes
        d = t[(t.operator == "denoise") & (t.gamma == g)].diff_psnr.iloc[0]
        assert f"σ {g}: {d:+.2f}".replace("-", "−") in text, g
    # "the paper's Δ lies inside our interval for both" (SR, deblocking), not for denoising;
    # "the decouple network beats its degraded input at every γ by more than its interval"
    assert ave.paper_diff_inside["sr"] and ave.paper_diff_inside["jpeg"]
    assert not ave.paper_diff_inside["denoise"]
    assert (t.gain_psnr_verdict == "supported").all() and (t.gain_psnr_lo > 0).all()
    assert "the paper's Δ lies inside our interval for both" in text
    assert "beats its degraded input at every γ by more than its interval" in text


def test_dataset_throughput_figures_are_the_committed_results():
    import json

    meta = json.loads((RESULTS / "datagen_speed.meta.json").read_text())
    text = _prose("**Dataset throughput**", None)
    per = meta["speedup_2_workers_per_round"]
    ceiling = meta["speedup_bare_2_processes_per_round"]
    assert (f"2 workers {meta['speedup_2_workers']:.2f}× one worker (best of {len(per)}; per "
            f"repetition {min(per):.2f}–{max(per):.2f}, median "
            f"{meta['speedup_2_workers_median']:.2f}") in text
    assert (f"two bare processes at once reach {meta['speedup_bare_2_processes']:.2f}× one (per "
            f"repetition {min(ceiling):.2f}–{max(ceiling):.2f})") in text
    ratios = [a / b for a, b in zip(per, ceiling)]
    assert f"({min(ratios):.2f}–{max(ratios):.2f} of the ceiling in each repetition)" in text
    one = pd.read_csv(RESULTS / "datagen_speed.csv").set_index("setting").vs_bare
    assert f"took {one['build --workers 1']:.2f}× the bare calls" in text  # the CSV's, unrounded
    assert abs(one["build --workers 1"] - 1 - meta["overhead_1_worker_pct"] / 100) < 0.001


def test_table4_shock_figures_are_the_committed_csv():
    t = pd.read_csv(RESULTS / "table3_joint.csv")
    text = _prose("**ECCV Table 4**", "**Table 6**")
    shock = t[(t.variant == "eccv") & (t.operator == "shock")].set_index("row")
    assert (f"its own network reaches {shock.psnr['1 op']:.2f} dB, the six-filter one "
            f"{shock.psnr['6/4 ops']:.2f}, the ten-operator one {shock.psnr['10 ops']:.2f}, "
            f"below its input ({shock.identity_psnr['10 ops']:.2f})") in text
    for variant, left_out in (("eccv", "shock"), ("tpami", "llf")):
        d = t[(t.variant == variant) & ~t.operator.isin(["avg", left_out])]
        g = d.groupby("row", sort=False).psnr.mean()
        assert f"{g['10 ops'] - g['1 op']:+.2f}".replace("-", "−") in text, variant


def test_table12_compares_adafm_and_dni_with_table3s_one_operator_networks():
    t = pd.read_csv(RESULTS / "table3_joint.csv")
    six = t[(t.variant == "tpami") & (t.row == "1 op")
            & t.operator.isin(["l0", "wls", "rtv", "rgf", "wmf", "llf"])]
    assert len(six) == 6
    assert (f"one-operator decouple networks of Table 3 ({six.psnr.mean():.2f} dB over the same "
            "six") in _prose("**Table 12**", None)


def _cell(v: float, digits: int = 2) -> str:
    return "–" if v != v else f"{v:.{digits}f}"


def test_table12_rows_are_the_committed_csv():
    t = pd.read_csv(RESULTS / "table12_ablation.csv")
    rows = _table_after("**Table 12**")
    variants = list(dict.fromkeys(t.variant))
    assert [r[0] for r in rows] == variants
    for row in rows:
        d = t[t.variant == row[0]].set_index("operator")
        a, g, l0 = d.loc["avg"], d.loc["avg γ"], d.loc["l0"]
        assert row[1:] == [_cell(a.psnr), _cell(a.ssim, 3), _cell(g.psnr), _cell(l0.psnr),
                           _cell(a.paper_psnr), _cell(a.paper_ssim, 3), _cell(l0.paper_psnr)], row
    text = _prose("**Table 12**", "**The joint models across γ**")
    ident = t[t.operator.isin(["avg", "avg γ"])].groupby("operator").identity_psnr.first()
    assert (f"The input scores {ident['avg']:.2f} dB over the ten operators, "
            f"{ident['avg γ']:.2f} over the six with a γ") in text
    avg = t[t.operator == "avg"].set_index("variant").psnr.dropna()
    one = avg[[v for v in avg.index if v.startswith(("norm(", "conv(", "conv ch"))
               and v not in ("norm(all)", "conv(all)")]]
    gap = avg["conv(all)"] - one
    assert f"below conv(all) (norm(1): {gap['norm(1)']:.1f} dB)" in text
    assert f"Every one-layer variant is {gap.min():.1f}–{gap.max():.1f} dB" in text
    assert one.idxmin() == "norm(19)" and avg["norm(19)"] < ident["avg"]
    assert f"CResMD, joint, scores {avg['CResMD']:.2f} dB over the ten" in text
    assert one.min() < avg["CResMD"] < one.max()  # "among the one-layer variants"
    ranks = list(avg.drop(["AdaFM", "DNI"], errors="ignore").sort_values(ascending=False).index)
    nth = {1: "1st", 2: "2nd", 3: "3rd"}.get(ranks.index("conv ch2(19)") + 1,
                                              f"{ranks.index('conv ch2(19)') + 1}th")
    assert f"is {nth} of the ten joint variants here" in text
    g = t[t.operator == "avg γ"].set_index("variant").psnr
    lo, hi = g[one.index].min(), g[one.index].max()
    assert f"({lo:.2f}–{hi:.2f} dB vs {ident['avg γ']:.2f})" in text
    # Tables 6 and 12 inconclusive: every joint variant within 2.4 dB of the input
    joint = avg.drop(["AdaFM", "DNI"], errors="ignore")
    assert joint.max() - ident["avg"] <= 2.4 and joint.min() < ident["avg"]
    assert "every joint variant ends within 2.4 dB of its input" in text
    assert (f"every joint model over these ten operators ends within 2.4 dB of its input "
            f"(Table 12's variants score {joint.min():.2f}–{joint.max():.2f} dB over the ten, "
            f"the input {ident['avg']:.2f})") in _prose("**Table 6**", "**Table 12**")


def test_joint_sweep_figures_are_the_committed_csv():
    import sys

    sys.path.insert(0, str(REPO))
    from benchmarks._latex import sweep_joint_models, sweep_joint_summary

    df = pd.read_csv(RESULTS / "gamma_sweep_joint.csv")
    s = sweep_joint_summary(df)
    text = _prose("**The joint models across γ**", "Every other table")
    gaps = sweep_joint_models(df).set_index("model").gap_to_own
    for model, quoted in (("decouple, 6 filters", "for the six-filter model"),
                          ("decouple, 10 operators", "for the ten-operator one"),
                          ("γ as input, 10 operators", "for γ as input"),
                          ("realtime, 10 filters (Table 6)", "for the real-time model"),
                          ("decouple, 10 filters (Table 12)", "for Table 12's conv(all)")):
        assert f"{gaps[model]:+.2f}".replace("-", "−") + " dB " + quoted in text, model
    steps = s.set_index(["operator", "model"]).max_step
    own = steps.xs("decouple, 1 operator", level="model")
    joint = s[~s.model.isin(["identity", "decouple, 1 operator"])]
    excess = joint.max_step.to_numpy() - own[joint.operator].to_numpy()
    assert f"at most {excess.max():.2f} dB above the own network's" in text
    big = s.groupby("operator").max_step.max()
    assert (f"the largest steps, {big['rgf']:.1f} dB on RGF and {big['wmf']:.1f} dB on WMF, are "
            f"the operator's own, and the own network's curve has them too ({own['rgf']:.1f} "
            f"and {own['wmf']:.1f} dB)") in text
    l0 = s[s.operator == "l0"].set_index("model").mean_psnr
    below = {m for m in l0.index if l0[m] < l0["identity"]}
    assert below == {"decouple, 10 operators", "γ as input, 10 operators",
                     "realtime, 10 filters (Table 6)"}, l0


def test_readme_summary_is_the_committed_csv():
    """The README's "Results at a glance" table and the sentences below it: every figure from the
    committed CSVs, every verdict from the figures."""
    table = _table_after("Small scale (CPU, width 16 against", README)

    class Rows(dict):
        def __missing__(self, prefix):  # the one row whose claim starts with ``prefix``
            (row,) = [r[1:] for r in table if r[0].startswith(prefix)]
            return row

    rows = Rows()
    assert len(table) == 9
    t1 = pd.read_csv(RESULTS / "table1_single_vs_decouple.csv")
    t1 = t1[t1.gamma == "ave."]
    if "diff_psnr_lo" in t1:  # a run with intervals: its mean row, the interval over all crops
        m = t1[t1.operator == "mean"].iloc[0]
        t1 = t1[t1.operator != "mean"]
        assert m.diff_psnr == pytest.approx(t1.diff_psnr.mean(), abs=1e-9)
        verdict = ("agrees" if m.paper_diff_inside else
                   "larger gap" if m.diff_psnr_hi < m.paper_diff_psnr else "smaller gap")
        assert rows["Table 1: one network"] == [
            f"{_dash(m.diff_psnr)} [{_dash(m.diff_psnr_lo)}, {_dash(m.diff_psnr_hi)}]",
            _dash(m.paper_diff_psnr), verdict]
    else:
        assert rows["Table 1: one network"] == [_dash(t1.diff_psnr.mean()),
                                                _dash(t1.paper_diff_psnr.mean()), "agrees"]
    t2 = pd.read_csv(RESULTS / "table2_restoration.csv")
    t2 = t2[t2.gamma == "ave."].set_index("operator")
    for key, task in (("Table 2: the same for SR", "sr"), ("Table 2: the same for deb", "jpeg"),
                      ("Table 2: the same for den", "denoise")):
        r = t2.loc[task]
        # agrees: the paper's Δ inside our interval; larger gap: ours below it, beyond its end
        verdict = ("agrees" if r.paper_diff_inside else
                   "larger gap" if r.diff_psnr_hi < r.paper_diff_psnr else None)
        assert rows[key] == [
            f"{_dash(r.diff_psnr)} [{_dash(r.diff_psnr_lo)}, {_dash(r.diff_psnr_hi)}]",
            _dash(r.paper_diff_psnr), verdict], key
    t3 = pd.read_csv(RESULTS / "table3_joint.csv")
    t3 = t3[t3.operator == "avg"]
    for key, variant, row in (("Table 3: one network", "tpami", "10 ops"),
                              ("Table 3: γ as an inpu", "tpami", "γ as input, 10 ops"),
                              ("ECCV Table 4: ten operato", "eccv", "10 ops")):
        d = t3[t3.variant == variant].set_index("row")
        ours, paper = d.psnr[row] - d.psnr["1 op"], d.paper_psnr[row] - d.paper_psnr["1 op"]
        if "diff_psnr_lo" in d:  # a run with intervals: the figure with its interval
            lo, hi = d.diff_psnr_lo[row], d.diff_psnr_hi[row]
            cell = f"{_dash(ours)} [{_dash(lo)}, {_dash(hi)}]"
            verdict = ("agrees" if lo <= paper <= hi else
                       "larger gap" if hi < paper else "smaller gap")
        else:  # "agrees": within 0.8 dB of the paper's; "larger gap": ours loses over 1 dB more
            cell = _dash(ours)
            verdict = ("agrees" if abs(ours - paper) < 0.8 else
                       "larger gap" if ours < paper - 1 else None)
        assert rows[key] == [cell, _dash(paper), verdict], key
    t6 = pd.read_csv(RESULTS / "table6_baselines.csv")
    assert rows["Table 6: the real-ti"] == [_dash(t6.realtime_psnr.mean()),
                                            _dash(t6.paper_ours_psnr.mean()), "inconclusive"]
    t12 = pd.read_csv(RESULTS / "table12_ablation.csv")
    avg = t12[t12.operator == "avg"].set_index("variant")
    # the small Table 12 has no intervals (its models were not kept): its differences are
    # stated at the medium scale only (test_readme_medium_summary_is_the_committed_csv)
    assert not any(r[0].startswith("Table 12") for r in table)
    # the summary's prose in full is docs/paper_results.md's "What the summary rests on"; the
    # README keeps its verdict
    rests_on = _prose("### What the summary rests on", "**Table 1**")
    assert "norm(1) − conv(all) is stated at the medium scale only, with its interval" in rests_on
    assert "**Tables 6 and 12 are inconclusive at this budget**" in _prose(
        "## Results at a glance", "## Dependencies", README)
    # inconclusive: every joint variant of Table 12 within 2.4 dB of the input
    joint = avg.psnr.drop(["AdaFM", "DNI"], errors="ignore")
    assert (joint - avg.identity_psnr[joint.index]).max() <= 2.4
    text = rests_on
    assert "every joint model over their ten filters ends within 2.4 dB of its input" in text
    m1 = t1.set_index("operator")
    r1 = m1.diff_psnr.corr(m1.paper_diff_psnr)
    d = pd.read_csv(RESULTS / "table3_joint.csv")
    d = d[(d.variant == "tpami") & (d.operator != "avg")]
    one, ten = (d[d.row == r].set_index("operator") for r in ("1 op", "10 ops"))
    r3 = (ten.psnr - one.psnr).corr(ten.paper_psnr - one.paper_psnr)
    assert (f"per operator our gaps correlate r = {r1:.2f} (Table 1) and r = {r3:.2f} (Table 3, "
            f"ten operators) with the paper's") in text
    # the joint models' smoothness: no joint curve steps more than 1 dB beyond its own network's
    sys_path = str(REPO)
    import sys

    if sys_path not in sys.path:
        sys.path.insert(0, sys_path)
    from benchmarks._latex import sweep_joint_summary

    s = sweep_joint_summary(pd.read_csv(RESULTS / "gamma_sweep_joint.csv"))
    own = s[s.model == "decouple, 1 operator"].set_index("operator").max_step
    joint_s = s[~s.model.isin(["identity", "decouple, 1 operator"])]
    assert (joint_s.max_step.to_numpy() - own[joint_s.operator].to_numpy()).max() < 1
    assert rows["the joint models stay s"] == ["yes", "yes", "agrees"]


def test_readme_medium_summary_is_the_committed_csv():
    """The README's medium-scale rows (Table 6: real-time − BGU, Table 12: variant − conv(all),
    with their intervals) and docs/paper_results.md's paragraph on them: every figure, interval
    and verdict word from results/medium's CSVs."""
    table = _table_after("Medium scale ([results/medium]", README)
    t6 = pd.read_csv(RESULTS / "medium" / "table6_baselines.csv").set_index("operator")
    sign = lambda v: f"{v:+.2f}".replace("-", "−")
    ival = lambda r, c: f"{sign(r[c])} [{sign(r[c + '_lo'])}, {sign(r[c + '_hi'])}]"
    assert len(table) == 11
    for row, mean in zip(table, ("mean", "mean γ")):
        r = t6.loc[mean]
        assert row[1:] == [ival(r, "realtime_vs_bgu_psnr"),
                           sign(r.paper_ours_psnr - r.paper_bgu_psnr),
                           r.realtime_vs_bgu_psnr_verdict], row
    # the per-filter sentences: docs/paper_results.md's paragraph on the README's rows
    text = _prose("**The medium scale, per filter**", "**Table 12 at the medium scale**")
    ops = t6.drop(["mean", "mean γ"])
    above = (ops.realtime_gain_psnr_verdict == "supported").sum()
    gain = ival(t6.loc["mean"], "realtime_gain_psnr").replace(" [", " dB [")
    assert f"above its input on {above} of the ten filters (mean {gain})" in text
    counts = ops.realtime_vs_bgu_psnr_verdict.value_counts()
    names = {"llf": "LLF", "wls_enhance": "WLS enhancement", "style": "style", "l0": "L0",
             "rtv": "RTV"}
    listed = lambda v: ", ".join(names[o] for o in ops.index[ops.realtime_vs_bgu_psnr_verdict == v])
    assert (f"supported on {counts['supported']}, contradicted on {counts['contradicted']} "
            f"({listed('contradicted')}) and inconclusive on {counts['inconclusive']} "
            f"({listed('inconclusive')}, where the model is not above its input)") in text
    # inconclusive per filter only where the model has not learnt it
    assert (ops.realtime_gain_psnr_verdict[ops.realtime_vs_bgu_psnr_verdict == "inconclusive"]
            != "supported").all()
    # Table 12: the variant − conv(all) with its interval; a gap's verdict (agrees: the paper's
    # Δ inside our interval; larger / smaller gap: beyond its end), inconclusive where the
    # variant is not above its input; the paper gives ten-operator averages only
    t12 = pd.read_csv(RESULTS / "medium" / "table12_ablation.csv")
    key = lambda v, o: t12[(t12.variant == v) & (t12.operator == o)].iloc[0]
    conv = key("conv(all)", "avg")
    for row, (variant, scope) in zip(table[2:], (("norm(1)", "avg"), ("norm(1)", "avg γ"),
                                                 ("norm(19)", "avg"), ("conv ch2(19)", "avg"),
                                                 ("norm(all)", "avg"))):
        r = key(variant, scope)
        paper = r.paper_psnr - conv.paper_psnr if scope == "avg" else None
        if r.gain_psnr_verdict != "supported":
            verdict = "inconclusive"
        else:
            verdict = ("agrees" if r.vs_conv_all_psnr_lo <= paper <= r.vs_conv_all_psnr_hi else
                       "larger gap" if r.vs_conv_all_psnr_hi < paper else "smaller gap")
        assert row[1:] == [ival(r, "vs_conv_all_psnr"),
                           "—" if paper is None else sign(paper), verdict], row
    # the diagnostic pair (each filter's loss divided by its identity MSE): norm(1) against
    # conv(all) trained the same way, its verdict as above; and norm(1) against its input
    one, ref = "norm(1), loss / identity MSE", "conv(all), loss / identity MSE"
    r, row = key(one, "avg"), table[7]
    assert r.paper_psnr != r.paper_psnr  # not a variant of the paper's: its norm(1) gap
    paper = key("norm(1)", "avg").paper_psnr - conv.paper_psnr
    assert r.gain_psnr_verdict == "supported" and key(ref, "avg").gain_psnr_verdict == "supported"
    verdict = ("agrees" if r.vs_matched_psnr_lo <= paper <= r.vs_matched_psnr_hi else
               "larger gap" if r.vs_matched_psnr_hi < paper else "smaller gap")
    assert row[1:] == [ival(r, "vs_matched_psnr"), sign(paper), verdict], row
    assert abs(r.vs_matched_psnr) < 1 and abs(r.vs_matched_psnr_lo) < 1
    summary = _prose("### What the summary rests on", "**Table 1**")
    assert ("norm(1) learns the γ filters and ends within 1 dB of conv(all) trained the same "
            "way") in summary
    r = key(one, "avg γ")
    assert table[8][1:] == [ival(r, "gain_psnr"), "—", r.gain_psnr_verdict], table[8]
    assert r.gain_psnr_verdict == "supported"
    gain = lambda v, o: ival(key(v, o), "gain_psnr").replace(" [", " dB [")
    assert (t12[(t12.variant == "conv(all)") & ~t12.operator.str.startswith("avg")]
            .gain_psnr_verdict == "supported").all()
    assert (t12[(t12.variant == "norm(all)") & ~t12.operator.str.startswith("avg")]
            .gain_psnr_verdict == "supported").all()
    assert f"each of the ten filters (mean {gain('conv(all)', 'avg')}" in text
    assert (f"norm(1) is below its input on the six filters with a γ "
            f"({gain('norm(1)', 'avg γ').lstrip('+')}") in text
    # norm(19): below its input on the six with a γ but where the CSV says it is above it,
    # above it over the ten; its gap to conv(all) in the Table 12 paragraph
    n19 = t12[(t12.variant == "norm(19)") & t12.operator.isin(
        ["l0", "wls", "rtv", "rgf", "wmf", "llf"])].set_index("operator")
    above = " and ".join({"wls": "WLS", "llf": "LLF", "l0": "L0", "rtv": "RTV", "rgf": "RGF",
                          "wmf": "WMF"}[o] for o in n19.index[n19.gain_psnr_verdict == "supported"])
    assert (f"norm(19) is below its input on the six filters with a γ too "
            f"({gain('norm(19)', 'avg γ')}; above it on {above} only), and above it over the ten "
            f"({gain('norm(19)', 'avg')})") in text
    assert key("norm(19)", "avg γ").gain_psnr_verdict == "contradicted"
    t12_text = _prose("**Table 12 at the medium scale**", "**The joint models across γ**")
    gap19 = ival(key("norm(19)", "avg"), "vs_conv_all_psnr").replace(" [", " dB [")
    assert f"norm(19) − conv(all) is {gap19} over the ten" in " ".join(t12_text.split())
    paper19 = key("norm(19)", "avg").paper_psnr - conv.paper_psnr
    assert (f"(the paper: {sign(paper19)}) and "
            f"{ival(key('norm(19)', 'avg γ'), 'vs_conv_all_psnr')} over the six") in t12_text
    # conv-ch2(19): its gaps, below its input on the six with a γ (above it where the CSV
    # says), and the three one-layer variants within the stated spread of each other
    ch2 = "conv ch2(19)"
    flat = " ".join(t12_text.split())
    paper_ch2 = key(ch2, "avg").paper_psnr - conv.paper_psnr
    assert (f"the paper's worst by far ({sign(paper_ch2)}), conv-ch2(19) − conv(all) is "
            + ival(key(ch2, "avg"), "vs_conv_all_psnr").replace(" [", " dB [")
            + f" over the ten and {ival(key(ch2, 'avg γ'), 'vs_conv_all_psnr')} over the six "
            "with a γ, where it too is below its input") in flat
    assert key(ch2, "avg γ").gain_psnr_verdict == "contradicted"
    one_layer = [key(v, "avg").vs_conv_all_psnr for v in ("norm(1)", "norm(19)", ch2)]
    assert max(one_layer) - min(one_layer) <= 0.3 and "end within 0.3 dB of each other" in flat
    ch2_ops = t12[(t12.variant == ch2) & t12.operator.isin(
        ["l0", "wls", "rtv", "rgf", "wmf", "llf"])].set_index("operator")
    assert list(ch2_ops.index[ch2_ops.gain_psnr_verdict == "supported"]) == ["llf"]
    assert (f"conv-ch2(19) is below its input on the six filters with a γ as well "
            f"({gain(ch2, 'avg γ')}; above it on LLF only), and above it over the ten "
            f"({gain(ch2, 'avg')})") in text
    # the loss-normalised pair (Table 12 paragraph): norm(1) above its input on each filter,
    # its gaps to conv(all) trained the same way, and what the loss did to conv(all)
    one, ref = "norm(1), loss / identity MSE", "conv(all), loss / identity MSE"
    per = t12[(t12.variant == one) & ~t12.operator.str.startswith("avg")]
    assert len(per) == 10 and (per.gain_psnr_verdict == "supported").all()
    m = lambda v, o, c: ival(key(v, o), c).replace(" [", " dB [", 1)
    assert (f"norm(1) is above its input on each of the ten filters, by "
            f"{m(one, 'avg γ', 'gain_psnr')} on the six with a γ, and "
            f"{m(one, 'avg', 'vs_matched_psnr')} below conv(all) trained the same way over the "
            "ten") in flat
    assert (f"{ival(key(one, 'avg γ'), 'vs_matched_psnr')} over the six; the paper: "
            f"{sign(key('norm(1)', 'avg').paper_psnr - conv.paper_psnr)})") in flat
    assert (f"lifts conv(all) too, by {m(ref, 'avg γ', 'vs_conv_all_psnr')} on the six with a γ "
            f"({ival(key(ref, 'avg'), 'vs_conv_all_psnr')} over the ten)") in flat
    psnr = lambda v, o: f"{key(v, o).psnr:.2f}"
    assert (f"away from pencil ({psnr('conv(all)', 'pencil')} → {psnr(ref, 'pencil')} dB) and "
            f"style ({psnr('conv(all)', 'style')} → {psnr(ref, 'style')})") in flat
    # the width-32 pair (README rows 9 and 10; the Table 12 paragraph): norm(1) against conv(all)
    # both at width 32, its verdict as the loss-normalised pair's; norm(1) against its input
    w1, w_ref = "norm(1), width 32", "conv(all), width 32"
    r = key(w1, "avg")
    assert r.paper_psnr != r.paper_psnr  # not a variant of the paper's: its norm(1) gap applies
    assert key(w1, "avg γ").gain_psnr_verdict == key(w_ref, "avg").gain_psnr_verdict == "supported"
    verdict = ("agrees" if r.vs_matched_psnr_lo <= paper <= r.vs_matched_psnr_hi else
               "larger gap" if r.vs_matched_psnr_hi < paper else "smaller gap")
    assert table[9][1:] == [ival(r, "vs_matched_psnr"), sign(paper), verdict], table[9]
    r = key(w1, "avg γ")
    assert table[10][1:] == [ival(r, "gain_psnr"), "—", r.gain_psnr_verdict], table[10]
    per = t12[(t12.variant == w1) & ~t12.operator.str.startswith("avg")].set_index("operator")
    names = {"l0": "L0", "wls": "WLS", "rtv": "RTV", "rgf": "RGF", "wmf": "WMF", "llf": "LLF"}
    with_g = per[per.index.isin(list(names))]
    missed = [names[o] for o in with_g.index[with_g.gain_psnr_verdict != "supported"]]
    assert missed == ["L0"] and (per[~per.index.isin(list(names))].gain_psnr_verdict
                                 == "supported").all()
    assert (f"norm(1) at width 32 is above its input on the six filters with a γ "
            f"({m(w1, 'avg γ', 'gain_psnr')}; on five of them, all but {missed[0]}) and on each "
            "of the four without") in flat
    assert (f"{m(w1, 'avg', 'vs_matched_psnr')} below conv(all) at width 32 over the ten "
            f"({ival(key(w1, 'avg γ'), 'vs_matched_psnr')} over the six; the paper: "
            f"{sign(paper)})") in flat
    assert (f"lifts conv(all), by {m(w_ref, 'avg', 'vs_conv_all_psnr')} over the ten "
            f"({ival(key(w_ref, 'avg γ'), 'vs_conv_all_psnr')} over the six), most on style and "
            f"pencil ({psnr('conv(all)', 'style')} → {psnr(w_ref, 'style')} and "
            f"{psnr('conv(all)', 'pencil')} → {psnr(w_ref, 'pencil')} dB)") in flat
    lift = (t12[t12.variant == w_ref].set_index("operator").psnr
            - t12[t12.variant == "conv(all)"].set_index("operator").psnr).drop(["avg", "avg γ"])
    assert set(lift.nlargest(2).index) == {"style", "pencil"}
    # the summary: "and so does norm(1) at width 32" (learns the γ filters, within 1 dB of conv(all)
    # at its width), and so at width 16 it was too narrow, where it stayed below its input
    r = key(w1, "avg")
    assert abs(r.vs_matched_psnr) < 1 and abs(r.vs_matched_psnr_lo) < 1
    assert key("norm(1)", "avg γ").gain_psnr_verdict == "contradicted"
    assert ("and so does norm(1) at width 32 with the plain loss and the same budget, so at width "
            "16 its one generated layer was too narrow for the budget") in summary


def test_explore_speed_figures_are_the_committed_csv():
    """docs/zoo.md's explorer times are results/explore_speed.csv's (median release to image
    and the operator's own time, rounded to the ms), and within the 150 ms target as it says."""
    zoo_doc = (REPO / "docs" / "zoo.md").read_text()
    t = pd.read_csv(RESULTS / "explore_speed.csv").set_index("operator")
    for op in ("l0", "wls"):
        assert f"**{t.release_to_image_ms[op]:.0f} ms** (`{op}`)" in zoo_doc, op
        assert t.within_target[op]
    assert (f"own {t.operator_ms['l0']:.0f} ms and {t.operator_ms['wls']:.0f} ms"
            in " ".join(zoo_doc.split()))


def test_readme_joint_zoo_models_are_their_cards_and_tables():
    """The README's sentence on the zoo's three joint models: their test PSNR is their cards',
    and "above their input on each of the ten" / "on eight of the ten" are the medium tables'
    verdicts of the same runs (Table 12's conv(all) at widths 16 and 32, Table 6's real-time)."""
    import json

    flat = " ".join(README.split())
    card = lambda n: json.loads((REPO / "model" / "zoo" / f"{n}.json").read_text())
    joint = {n: card(n)["test"]["psnr"]
             for n in ("decouple-tpami10", "decouple-tpami10-w32", "realtime-tpami10")}
    assert max(joint, key=joint.get) == "decouple-tpami10-w32"  # "the best of the zoo's joint"
    w16, w32 = (f"{joint[n]:.2f}" for n in ("decouple-tpami10", "decouple-tpami10-w32"))
    assert f"(the same at width 32: {w32} dB against {w16}, the best of the zoo's" in flat
    t12 = pd.read_csv(RESULTS / "medium" / "table12_ablation.csv")
    for variant in ("conv(all)", "conv(all), width 32"):
        per = t12[(t12.variant == variant) & ~t12.operator.str.startswith("avg")]
        assert len(per) == 10 and (per.gain_psnr_verdict == "supported").all(), variant
    assert "both above their input on each of the ten" in flat
    t6 = pd.read_csv(RESULTS / "medium" / "table6_baselines.csv").set_index("operator")
    above = (t6.drop(["mean", "mean γ"]).realtime_gain_psnr_verdict == "supported").sum()
    words = {8: "eight", 9: "nine", 10: "each"}
    assert f"(TPAMI's real-time model, above its input on {words[above]} of the ten;" in flat
