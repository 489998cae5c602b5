"""The result tables' writer: LaTeX that a paper can \\input (compiles and fits a page, checked
with pdflatex where it is installed), provenance without machine paths, the render command and
the figures made from CSV rows."""
from __future__ import annotations

import io
import json
import math
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import operators
from benchmarks import _latex, render
from benchmarks._figures import log_ticks, plot_gamma_sweep
from benchmarks._latex import latex_text
from benchmarks._report import (ResultsScaleError, check_results_scale, portable_meta,
                                portable_path, results_scale, write_table, write_tex)

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "results"
PDFLATEX = shutil.which("pdflatex")
META = {"command": "pytest benchmarks", "scale": "smoke", "hardware": "Acme CPU_X, 2 cores",
        "python": "3.11", "commit": "0.1.0+gabc1234", "created": "now", "wall_time_s": 1.0}


# --------------------------------------------------------------------------- text
def test_latex_text():
    assert latex_text("γ=0.5, σ_s") == r"$\gamma$=0.5, $\sigma$\_s"
    assert latex_text("a\\b{c}") == r"a\textbackslash{}b\{c\}"
    assert latex_text("<= 0.6 s, >= 1.8x & 5%") == r"$\leq$ 0.6 s, $\geq$ 1.8x \& 5\%"


def test_gamma_symbols_are_math():
    assert _latex.gamma_symbol("lambda") == r"$\lambda$"
    assert _latex.gamma_symbol("sigma_s") == r"$\sigma_{s}$"
    assert _latex.gamma_symbol("r") == "$r$"
    assert _latex.gamma_symbol("fact") == r"$\mathit{fact}$"
    assert _latex.gamma_symbol("") == ""  # an operator without a parameter
    for name in getattr(operators, "ALL", operators.NAMES):  # every registered operator's γ
        g = operators.get(name).gamma_name
        if g:
            sym = _latex.gamma_symbol(g)
            assert sym.startswith("$") and sym.endswith("$") and "_" not in sym.replace("_{", "")
            assert "mathit{}" not in sym


def test_numbers_fixed_decimals():
    assert _latex.number(31.6349, 2) == "31.63"
    assert _latex.number(-0.861, 2) == "$-$0.86"
    assert _latex.number(-0.0001, 2) == "0.00"
    assert _latex.number(float("nan"), 2) == "--"
    assert _latex.scientific(5.9091953e-08) == r"$5.9\times10^{-8}$"
    assert _latex.decimals_for([18.9, 23.3]) == 1 and _latex.decimals_for([0.0012]) == 4


# --------------------------------------------------------------------------- writer
def _sweep_rows(ops=("l0", "rgf")) -> pd.DataFrame:
    rows = []
    for op in ops:
        spec = operators.get(op)
        for g in np.linspace(*spec.gamma_range, 4):
            for m in ["decouple", "concat", "identity"] + [
                    f"single {spec.gamma_name}={t:g}" for t in spec.test_gammas]:
                rows.append({"operator": op, "gamma": float(g), "gamma_effective": float(g),
                             "gamma_norm": 0.5, "model": m, "psnr": 30 + g, "ssim": 0.9,
                             "images": 3})
    return pd.DataFrame(rows)


def test_tex_is_ascii_escaped_and_provenance_only_in_comments(tmp_path):
    df = pd.DataFrame({"psnr_db": [31.5], "setting": ["low-res 64² & 5%"], "γ": ["σs=1"]})
    write_table(df, "t", tmp_path, META, caption="Δ of γ_1 (dB)")
    text = (tmp_path / "t.tex").read_text()
    assert text.isascii(), text
    comments = [line for line in text.splitlines() if line.startswith("%")]
    body = "\n".join(line for line in text.splitlines() if not line.startswith("%"))
    assert "% scale: smoke" in comments and "% commit: 0.1.0+gabc1234" in comments
    assert "Acme" not in body and "abc1234" not in body  # no hardware/commit in the caption
    assert "\\toprule" in body and "\\bottomrule" in body
    assert r"64$^2$ \& 5\%" in body and "psnr & " in body and "(dB)" in body
    assert not re.search(r"(?<![\\])_", body.replace("\\_", "").replace("_{", ""))
    assert pd.read_csv(tmp_path / "t.csv").psnr_db[0] == 31.5  # the CSV keeps plain names
    assert json.loads((tmp_path / "t.meta.json").read_text())["caption"] == "Δ of γ_1 (dB)"
    assert "## t" in (tmp_path / "README.md").read_text()


def test_render_remakes_the_same_tex(tmp_path):
    """The benchmark's writer and ``python -m benchmarks.render`` give the same table."""
    write_table(_sweep_rows(), "gamma_sweep", tmp_path, {**META, "figure": "figures/g.png"},
                caption="sweep")
    before = (tmp_path / "gamma_sweep.tex").read_text()
    csv_before = (tmp_path / "gamma_sweep.csv").read_bytes()
    assert render.main([str(tmp_path), "--check"]) == 0  # nothing would change
    assert render.main([str(tmp_path)]) == 0
    after = (tmp_path / "gamma_sweep.tex").read_text()
    assert render._body(after) == render._body(before)
    assert (tmp_path / "gamma_sweep.csv").read_bytes() == csv_before  # numbers untouched
    meta = json.loads((tmp_path / "gamma_sweep.meta.json").read_text())
    assert meta["command"] == "pytest benchmarks"  # the provenance of the numbers stays
    assert "rendered" not in meta  # nothing changed: not re-stamped (see the test below)
    assert (tmp_path / "figures" / "g.png").stat().st_size > 10_000  # re-drawn from the CSV
    assert render.main([str(tmp_path / "missing")]) == 2


def test_long_table_is_summarised(tmp_path):
    df = _sweep_rows()
    write_table(df, "gamma_sweep", tmp_path, META, caption="sweep")
    tex = (tmp_path / "gamma_sweep.tex").read_text()
    assert tex.count("\\\\") < 10  # one row per operator, not one per γ and model
    assert f"{len(df)} rows" in tex
    readme = (tmp_path / "README.md").read_text()
    assert f"{len(df)} rows: see the CSV" in readme and len(readme.splitlines()) < 40
    s = _latex.gamma_sweep_summary(df)
    assert list(s.operator) == ["l0", "rgf"] and (s.points == 4).all()
    d = df[(df.operator == "l0") & (df.model == "decouple")]
    assert s.decouple_mean[0] == pytest.approx(d.psnr.mean())
    assert s.decouple_min[0] == pytest.approx(d.psnr.min())


def test_operator_speed_layout_shows_each_targets_verdict():
    """The target column carries the verdict of benchmarks.speed_targets (as read back from the
    CSV: True/False, NaN for rows without a target); tables without the column stay as they
    were."""
    from benchmarks.speed_targets import target_met

    rows = [{"operator": op, "gamma": g, "size": "1024x1024", "ours_s": s, "counterpart": "",
             "counterpart_s": math.nan, "ratio": math.nan, "target": t, "suite_s": s,
             "fresh_process_s": f}
            for op, g, s, f, t in (("wls", 1.0, 2.06, 2.08, "<= 2.5 s"),
                                   ("wls_enhance", math.nan, 1.56, 1.60, "<= 1.5 s"),
                                   ("shock", math.nan, 0.03, 0.03, ""))]
    df = pd.DataFrame(rows)
    plain = _latex.operator_speed("operator_speed", df)
    assert "(met)" not in plain and "(not met)" not in plain
    df["target_met"] = [target_met(r) for r in rows]
    tex = _latex.operator_speed("operator_speed", pd.read_csv(io.StringIO(df.to_csv(index=False))))
    lines = {ln.split("&")[0].strip(): ln for ln in tex.splitlines() if "&" in ln}
    assert lines["WLS"].rstrip("\\ ").endswith("2.5 s (met)")
    assert lines["WLS\\_ENHANCE"].rstrip("\\ ").endswith("1.5 s (not met)")
    assert "met" not in lines["SHOCK"]


def test_layout_that_does_not_fit_the_rows_falls_back(tmp_path):
    df = pd.DataFrame({"operator": ["l0"], "gamma": [0.02], "ours": [1.0]})  # renamed columns
    with pytest.warns(UserWarning, match="layout does not fit"):
        write_table(df, "operator_speed", tmp_path, META, caption="speed")
    assert "ours" in (tmp_path / "operator_speed.tex").read_text()


# --------------------------------------------------------------------------- paths
def test_paths_are_portable(tmp_path):
    cache = tmp_path / "cache"
    assert portable_path(cache / "small" / "data.h5", cache) == "<cache>/small/data.h5"
    assert portable_path(Path.home() / "x" / "d.h5") == "~/x/d.h5"
    assert portable_path(REPO / "results" / "a.csv") == "results/a.csv"
    assert portable_path("/elsewhere/d.h5") == "d.h5"
    meta = portable_meta({"scale": "small", "dataset": str(cache / "small" / "data.h5"),
                          "models_dir": str(cache / "small" / "runs"),
                          "command": f"pytest benchmarks --cache {cache} --results {REPO}/r"},
                         cache)
    assert meta["dataset"] == "<cache>/small/data.h5"
    assert meta["models_dir"] == "<cache>/small/runs"
    assert meta["command"] == "pytest benchmarks --cache <cache> --results r"
    other = portable_meta({"command": "pytest benchmarks --results /scratch/x/res "
                                      "--data=/scratch/d.h5 -k 'a b'"})
    assert other["command"] == "pytest benchmarks --results res --data=d.h5 -k 'a b'"
    # an old sidecar (cache folder unknown) that follows the cache layout
    old = portable_meta({"scale": "small", "dataset": "/root/.cache/decouple/small/data.h5",
                         "models_dir": "/root/.cache/decouple/small/runs"}, cache_layout=True)
    assert old == {"scale": "small", "dataset": "<cache>/small/data.h5",
                   "models_dir": "<cache>/small/runs"}


def test_experiment_provenance_is_portable(tmp_path):
    """The model tables' provenance names the dataset and models relative to the cache."""
    import time

    from benchmarks._experiments import Experiment

    cache = tmp_path / "cache"
    exp = Experiment("smoke", cache)
    (cache / "smoke").mkdir(parents=True)
    (cache / "smoke" / "data.h5").touch()
    exp._attrs = ("ab" * 32, f"python -m datagen build --out {cache}/smoke/data.h5")
    meta = exp.provenance(time.perf_counter(), [])
    assert meta["dataset"] == "<cache>/smoke/data.h5"
    assert meta["models_dir"] == "<cache>/smoke/runs"
    assert meta["dataset_command"] == "python -m datagen build --out <cache>/smoke/data.h5"
    assert str(tmp_path) not in json.dumps(meta)


#: every folder of committed tables: the small (and paper) scale's, and the medium scale's
TABLE_FOLDERS = (RESULTS, RESULTS / "medium")


def test_committed_sidecars_have_no_machine_paths():
    home = str(Path.home())
    sidecars = [p for folder in TABLE_FOLDERS for p in folder.glob("*.meta.json")]
    assert any(p.parent == RESULTS / "medium" for p in sidecars)
    for p in sidecars:
        text = p.read_text()
        assert "/root/" not in text and home + "/" not in text and str(REPO) not in text, p


def test_committed_tables_are_one_scale_above_smoke():
    """results/ is one run's scale (a smoke run once overwrote one committed small table), and
    results/medium the medium scale's."""
    for folder in TABLE_FOLDERS:
        scales = {json.loads(p.read_text())["scale"] for p in folder.glob("*.meta.json")}
        assert len(scales) == 1 and "smoke" not in scales, (folder, scales)
    assert scales == {"medium"}


def test_smaller_scale_run_is_refused(tmp_path):
    assert results_scale(tmp_path) is None
    check_results_scale(tmp_path, "smoke")  # an empty folder takes any scale
    write_table(pd.DataFrame({"a": [1]}), "t", tmp_path, {**META, "scale": "small"}, caption="c")
    (tmp_path / "broken.meta.json").write_text("{not json")  # ignored, not fatal
    assert results_scale(tmp_path) == "small"
    check_results_scale(tmp_path, "small")
    check_results_scale(tmp_path, "paper")
    with pytest.raises(ResultsScaleError, match="small scale.*--results DIR"):
        check_results_scale(tmp_path, "smoke")


def test_smoke_run_stops_before_replacing_larger_tables(tmp_path):
    """The suite refuses at start-up, before training or writing anything; a smoke run's
    default folder is in the cache, not results/."""
    import sys

    from benchmarks.conftest import results_path

    write_table(pd.DataFrame({"a": [1]}), "t", tmp_path, {**META, "scale": "small"}, caption="c")
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir() if p.is_file()}
    run = subprocess.run([sys.executable, "-m", "pytest", "benchmarks", "--scale", "smoke",
                          "--results", str(tmp_path), "--cache", str(tmp_path / "cache"),
                          "-p", "no:cacheprovider", "-q", "-k", "operators"],
                         cwd=REPO, capture_output=True, text=True, timeout=120)
    assert run.returncode == 4, run.stdout + run.stderr
    assert "holds tables made at the small scale" in run.stderr
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir() if p.is_file()} == before

    class Config:
        def __init__(self, **opts):
            self.opts = {"--results": None, "--cache": str(tmp_path), **opts}

        def getoption(self, name):
            return self.opts[name]

    assert results_path(Config(**{"--scale": "smoke"})) == tmp_path / "smoke" / "results"
    assert results_path(Config(**{"--scale": "small"})) == RESULTS
    assert results_path(Config(**{"--scale": "smoke", "--results": "x"})) == Path("x")


def test_committed_readme_summarises():
    readme = (RESULTS / "README.md").read_text()
    sections = readme.split("\n## ")[1:]
    assert sections
    for section in sections:  # each table's entry stays a summary, however many tables
        assert len(section.splitlines()) <= 60, section.splitlines()[0]
    for p in RESULTS.glob("*.meta.json"):
        name = p.name.removesuffix(".meta.json")
        assert f"]({name}.csv)" in readme and f"]({name}.tex)" in readme


def _caption(tex: str) -> str:
    """The text of the ``\\caption{...}`` line of a written table."""
    line = next(x for x in tex.splitlines() if x.startswith("\\caption{"))
    assert line.endswith("}")
    return line[len("\\caption{"):-1]


def test_caption_states_the_sidecars_scale_beside_the_papers_figures(tmp_path):
    """A table that prints the paper's figures (a ``paper_*`` column) says in its caption the
    scale ours come from, read from the sidecar (scale, preset, CPU or GPU); one without them
    does not; re-rendering keeps it (the caption is made from the CSV and sidecar)."""
    preset = {"name": "small", "width": 16, "iterations": 3000, "batch": 8, "crop": 64}
    df = pd.DataFrame({"operator": ["l0"], "ours_psnr": [25.0], "paper_psnr": [35.0]})
    write_table(df, "t", tmp_path, {**META, "scale": "small", "preset": preset}, caption="T.")
    assert _caption((tmp_path / "t.tex").read_text()).endswith(
        "T. Ours at the small scale (width 16, 3000 iterations of batch 8 on 64$^2$ crops, "
        "CPU); paper: width 64, GPU.")
    gpu = {**META, "scale": "paper", "hardware": "Xeon, 8 cores, GPU NVIDIA H100",
           "preset": {**preset, "width": 64, "iterations": 100000}}
    write_table(df, "t", tmp_path, gpu, caption="T.")
    assert _caption((tmp_path / "t.tex").read_text()).endswith(
        "Ours at the paper scale (width 64, 100000 iterations of batch 8 on 64$^2$ crops, "
        "GPU); paper: width 64, GPU.")
    # the models' own iterations (the sidecar's run -> iterations): joint ones trained longer
    mixed = {**META, "scale": "small", "preset": preset,
             "iterations": {"decouple-l0": 3000, "realtime-tpami10-b2": 6000}}
    write_table(df, "t", tmp_path, mixed, caption="T.")
    assert _caption((tmp_path / "t.tex").read_text()).endswith(
        "(width 16, 3000 iterations of batch 8 on 64$^2$ crops (joint models: 6000), CPU); "
        "paper: width 64, GPU.")
    joint = {**mixed, "iterations": {"realtime-tpami10-b1.3": 24000}}
    write_table(df, "t", tmp_path, joint, caption="T.")
    assert "(width 16, 24000 iterations of batch 8 on 64$^2$ crops, CPU)" in \
        _caption((tmp_path / "t.tex").read_text())
    write_table(df.drop(columns="paper_psnr"), "u", tmp_path, {**META, "preset": preset},
                caption="U.")
    assert _caption((tmp_path / "u.tex").read_text()) == "U."  # no paper figures: no sentence
    assert render.main([str(tmp_path), "--check"]) == 0
    # a layout's caption with nested braces: the sentence goes inside its closing brace
    assert _latex.add_to_caption("\\caption{a $^{b}$ \\{c}\n\\label{x}", "S.") == \
        "\\caption{a $^{b}$ \\{c S.}\n\\label{x}"
    # the committed tables with the paper's figures say their scale
    for name in ("table1_single_vs_decouple", "table6_baselines"):
        meta = json.loads((RESULTS / f"{name}.meta.json").read_text())
        assert f"Ours at the {meta['scale']} scale (width {meta['preset']['width']}, " in \
            _caption((RESULTS / f"{name}.tex").read_text())


def test_styler_writes_the_plain_grids_as_the_hand_written_tabular(monkeypatch):
    """``styled_tabular`` (pandas' ``Styler.to_latex``) gives the text of the hand-written
    ``tabular`` for a grid: one- and two-line headers (short ones on the last line), wrapped
    text columns (their header left-aligned), a missing value, duplicate names, no rows; the
    generic layout and the speed tables' grids are written by it."""
    from benchmarks._latex import Col, generic_columns, styled_tabular, tabular, wrap

    frames = [pd.DataFrame({"psnr_db": [31.5, 2.25], "setting": ["low-res 64² & 5%", "x"]}),
              pd.DataFrame({"operator": ["l0", "wls"], "x": [1.0, np.nan], "y_ms": [3, 4]}),
              pd.DataFrame({"a": [], "b_s": []})]
    for df in frames:
        cols, fmts = generic_columns(df, list(df.columns))
        rows = [[f(v) for f, v in zip(fmts, r)] for r in df.itertuples(index=False)]
        assert styled_tabular(cols, rows) == tabular(cols, rows)
    cols = [Col(("",), wrap("3cm")), Col(("640×480", "first"), "r"), Col(("", "re-tune"), "r"),
            Col(("x",), "r"), Col(("x",), "r"), Col(("target",), wrap("2cm"))]
    rows = [["bare calls", "1", "2", "3", "4", "$\\leq$ 10 \\%"], ["b", "--", "", "", "", ""]]
    assert styled_tabular(cols, rows) == tabular(cols, rows)
    calls = []
    real = pd.io.formats.style.Styler.to_latex
    monkeypatch.setattr(pd.io.formats.style.Styler, "to_latex",
                        lambda self, *a, **k: calls.append(1) or real(self, *a, **k))
    _latex.generic("t", frames[0], "c")
    _latex.datagen_speed("datagen_speed", pd.read_csv(RESULTS / "datagen_speed.csv"))
    _latex.retune_speed("retune_speed", pd.read_csv(RESULTS / "retune_speed.csv"))
    assert len(calls) == 3


def test_committed_tex_is_rendered_from_committed_csv(tmp_path):
    """Each committed .tex, the medium scale's too, is what the writer makes from the committed
    CSV (no hand edits)."""
    checked = 0
    for folder in TABLE_FOLDERS:
        copy = tmp_path / folder.relative_to(RESULTS.parent)
        shutil.copytree(folder, copy, ignore=shutil.ignore_patterns("figures", "medium"))
        for name in render.tables(copy):
            committed = (folder / f"{name}.tex").read_text()
            assert render._body(write_tex(copy, name).read_text()) == \
                render._body(committed), (folder.name, name)
            checked += folder.name == "medium"
    assert checked == 2  # Tables 6 and 12 at the medium scale


# --------------------------------------------------------------------------- pdflatex
def _compile(tex: Path, tmp_path: Path) -> str:
    doc = tmp_path / f"doc_{tex.stem}.tex"
    doc.write_text("\\documentclass{article}\n"
                   f"\\usepackage{{{','.join(_latex.PACKAGES)}}}\n"
                   "\\begin{document}\n"
                   f"\\input{{{tex.as_posix()}}}\n"
                   "\\end{document}\n")
    run = subprocess.run([PDFLATEX, "-interaction=nonstopmode", "-halt-on-error",
                          f"-output-directory={tmp_path}", str(doc)], cwd=tmp_path,
                         capture_output=True, text=True, timeout=120)
    log = (tmp_path / f"doc_{tex.stem}.log").read_text(errors="replace")
    assert run.returncode == 0, f"{tex.name} does not compile:\n{log[-3000:]}"
    return log


def _fits(log: str, name: str) -> None:
    over = [float(x) for x in re.findall(r"Overfull \\hbox \((\d+(?:\.\d+)?)pt too wide", log)]
    assert all(x <= 1.0 for x in over), f"{name}: overfull by {max(over)} pt"
    tall = re.findall(r"Overfull \\vbox \((\d+(?:\.\d+)?)pt too high", log)
    assert not tall, f"{name}: {tall} pt too high for the page"
    assert "Float too large for page" not in log, f"{name}: float too large for the page"


@pytest.mark.skipif(PDFLATEX is None, reason="pdflatex is not installed (apt-get install "
                                             "texlive-latex-base texlive-latex-recommended)")
@pytest.mark.parametrize("tex", sorted(p for f in TABLE_FOLDERS for p in f.glob("*.tex")),
                         ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_committed_tables_compile_and_fit(tex, tmp_path):
    _fits(_compile(tex, tmp_path), tex.name)


@pytest.mark.skipif(PDFLATEX is None, reason="pdflatex is not installed (apt-get install "
                                             "texlive-latex-base texlive-latex-recommended)")
def test_written_tables_compile_and_fit(tmp_path):
    """Tables from fresh rows, with every registered operator (more than the committed six)."""
    ops = list(operators.NAMES)
    write_table(_sweep_rows(ops), "gamma_sweep", tmp_path, META, caption="sweep")
    df = pd.DataFrame({"psnr_db": [31.5, 2.25], "setting": ["low-res 64² & 5%", "x"]})
    write_table(df, "generic", tmp_path, META, caption="A generic table")
    for name in ("gamma_sweep", "generic"):
        _fits(_compile(tmp_path / f"{name}.tex", tmp_path), name)


def _paper_tables(tmp_path) -> list[str]:
    """Table 1 and Table 6 written from synthetic rows by the benchmark's own builders, for every
    registered operator (operators the paper does not have get no paper figures)."""
    from benchmarks.paper import PAPER_TABLE6
    from benchmarks.tables.table1 import frame as table1_frame
    from benchmarks.tables.table6 import METHODS

    rng = np.random.default_rng(0)
    rows, rows6 = [], []
    for op in operators.NAMES:
        for g in operators.get(op).test_gammas:
            rows.append({"operator": op, "gamma": float(g), "single_psnr": rng.uniform(20, 40),
                         "decouple_psnr": rng.uniform(20, 40), "single_ssim": rng.random(),
                         "decouple_ssim": rng.random(), "identity_psnr": 20.0,
                         "identity_ssim": 0.5, "images": 3})
        r6 = {"operator": op, "gamma": float(operators.get(op).test_gammas[2]),
              "identity_psnr": 20.0, "identity_ssim": 0.5, "images": 3, "bgu_factor": 4}
        for m in [m for m in METHODS if m != "realtime"]:  # (a table without it)
            r6.update({f"{m}_psnr": rng.uniform(20, 40), f"{m}_ssim": rng.random()})
        for k, figs in PAPER_TABLE6.items():
            r6.update({f"paper_{k}_psnr": figs.get(op, (np.nan,))[0],
                       f"paper_{k}_ssim": figs.get(op, (np.nan, np.nan))[1]})
        rows6.append(r6)
    long = table1_frame(pd.DataFrame(rows))
    assert (long.gamma == "ave.").sum() == len(operators.NAMES)
    write_table(long, "table1_single_vs_decouple", tmp_path, META, caption="t1")
    write_table(pd.DataFrame(rows6), "table6_baselines", tmp_path, META, caption="t6")
    tex = (tmp_path / "table1_single_vs_decouple.tex").read_text()
    assert "lambda" not in tex.replace("\\lambda", "")  # γ symbols in math, not spelled out
    return ["table1_single_vs_decouple", "table6_baselines"]


@pytest.mark.skipif(PDFLATEX is None, reason="pdflatex is not installed (apt-get install "
                                             "texlive-latex-base texlive-latex-recommended)")
def test_paper_tables_from_fresh_rows_compile_and_fit(tmp_path):
    for name in _paper_tables(tmp_path):
        _fits(_compile(tmp_path / f"{name}.tex", tmp_path), name)


def test_paper_tables_from_fresh_rows(tmp_path):
    names = _paper_tables(tmp_path)
    for name in names:
        body = render._body((tmp_path / f"{name}.tex").read_text())
        assert "\\toprule" in body and "nan" not in body.lower()


# --------------------------------------------------------------------------- figures
def test_gamma_sweep_figure_legend_and_ticks(tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = plot_gamma_sweep(_sweep_rows(("l0", "rtv", "rgf")), tmp_path / "f.png", "smoke")
    assert out.stat().st_size > 10_000
    fig, ax = plt.subplots()
    ax.set_xscale("log")
    ax.plot([0.002, 0.05], [1, 2])
    log_ticks(ax, 0.002, 0.05)  # RTV's range: less than two decades
    fig.canvas.draw()
    labels = [t.get_text() for t in ax.get_xticklabels() if t.get_visible() and t.get_text()]
    lo, hi = ax.get_xlim()
    shown = [float(x) for x in labels if lo <= float(x) <= hi]
    assert len(shown) >= 4 and "0.01" in labels and "0.005" in labels, labels
    plt.close(fig)


# --------------------------------------------------------------------------- issue 12's tables
def _joint_tables(tmp_path) -> list[str]:
    """Tables 2, 3/4, 6 (ten operators), 12 and the joint sweep written from synthetic rows by
    the benchmarks' own frame builders and layouts."""
    from benchmarks._experiments import JOINT_GROUPS, TABLE6_OPS, TABLE12_ARCHS
    from benchmarks.paper import PAPER_TABLE6
    from benchmarks.tables.table2 import frame as table2_frame
    from benchmarks.tables.table3 import frame as table3_frame
    from benchmarks.tables.table6 import METHODS as T6_METHODS
    from benchmarks.tables.table12 import LABELS as T12_LABELS
    from benchmarks.tables.table12 import frame as table12_frame

    rng = np.random.default_rng(1)

    def scores():
        return {"psnr": rng.uniform(20, 40), "ssim": rng.uniform(0.5, 1),
                "identity_psnr": 20.0, "identity_ssim": 0.5, "images": 9}

    rows2 = [{"operator": t, "gamma": float(g), "single_psnr": rng.uniform(20, 35),
              "decouple_psnr": rng.uniform(20, 35), "single_ssim": rng.random(),
              "decouple_ssim": rng.random(), "identity_psnr": 20.0, "identity_ssim": 0.5,
              "images": 9} for t in ("sr", "denoise", "jpeg")
             for g in operators.get(t).test_gammas]
    write_table(table2_frame(pd.DataFrame(rows2)), "table2_restoration", tmp_path, META,
                caption="t2")
    rows3 = []
    for variant, ten in (("tpami", "ten-tpami"), ("eccv", "ten-eccv")):
        names = ["1 op", "6/4 ops", "10 ops"] + (["γ as input, 10 ops"] if variant == "tpami"
                                                 else [])
        for row in names:
            rows3 += [{"variant": variant, "row": row, "operator": o, "model": "m", **scores()}
                      for o in JOINT_GROUPS[ten]]
    t3 = table3_frame(pd.DataFrame(rows3))
    write_table(t3, "table3_joint", tmp_path, META, caption="t3")
    rows6 = []
    for op in TABLE6_OPS:
        has = operators.get(op).has_gamma
        r = {"operator": op, "gamma": float(operators.get(op).test_gammas[2]) if has else np.nan,
             "identity_psnr": 20.0, "identity_ssim": 0.5, "images": 9, "bgu_factor": 4}
        for m in T6_METHODS:
            ok = has or m in ("bgu", "hdrnet", "realtime")
            r.update({f"{m}_psnr": rng.uniform(20, 40) if ok else np.nan,
                      f"{m}_ssim": rng.random() if ok else np.nan})
        for k, figs in PAPER_TABLE6.items():
            r.update({f"paper_{k}_psnr": figs[op][0], f"paper_{k}_ssim": figs[op][1]})
        rows6.append(r)
    write_table(pd.DataFrame(rows6), "table6_baselines", tmp_path, META, caption="t6")
    rows12 = []
    for label in TABLE12_ARCHS:
        per_op = label in ("adafm", "dni")
        for op in TABLE6_OPS:
            skip = per_op and not operators.get(op).has_gamma
            s = scores()
            if skip:
                s = {k: (0 if k == "images" else np.nan) for k in s}
            rows12.append({"variant": T12_LABELS[label], "arch": label, "arch_paper": label,
                           "training": "per operator" if per_op else "joint, 10 operators",
                           "operator": op, **s, "iterations": np.nan if skip else 6000})
    t12 = table12_frame(pd.DataFrame(rows12))
    write_table(t12, "table12_ablation", tmp_path, META, caption="t12")
    sweep = []
    for op in ("l0", "rgf"):
        for g in operators.get(op).test_gammas:
            for m in ("decouple, 1 operator", "decouple, 10 operators", "identity"):
                sweep.append({"operator": op, "gamma": float(g), "gamma_norm": 0.5, "model": m,
                              "psnr": rng.uniform(20, 40), "ssim": rng.random(), "images": 9})
    write_table(pd.DataFrame(sweep), "gamma_sweep_joint", tmp_path, META, caption="sweep")
    return ["table2_restoration", "table3_joint", "table6_baselines", "table12_ablation",
            "gamma_sweep_joint"]


def test_joint_tables_from_fresh_rows(tmp_path):
    """The frames carry the paper's figures where the paper gives them, the averages are the
    means of the rows, and every layout is its own (no fallback to the generic one)."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a layout that does not fit its rows warns
        names = _joint_tables(tmp_path)
    t3 = pd.read_csv(tmp_path / "table3_joint.csv")
    avg = t3[(t3.variant == "tpami") & (t3.row == "10 ops") & (t3.operator == "avg")].iloc[0]
    ten = t3[(t3.variant == "tpami") & (t3.row == "10 ops") & (t3.operator != "avg")]
    assert len(ten) == 10 and avg.psnr == pytest.approx(ten.psnr.mean())
    assert avg.paper_psnr == 32.18 and avg.paper_ssim == 0.913
    assert ten.set_index("operator").paper_psnr["rain"] == 30.45
    eccv = t3[t3.variant == "eccv"].set_index(["row", "operator"])
    assert eccv.paper_psnr["1 op", "shock"] == 37.88 and eccv.paper_psnr["10 ops", "avg"] == 32.89
    assert np.isnan(eccv.paper_psnr["10 ops", "l0"])  # not in the ECCV figures we have
    t12 = pd.read_csv(tmp_path / "table12_ablation.csv")
    adafm = t12[t12.variant == "AdaFM"].set_index("operator")
    assert np.isnan(adafm.psnr["avg"])  # not measured on the four fixed-effect operators
    six = adafm.psnr[[o for o in adafm.index if o in operators.NAMES]]
    assert adafm.psnr["avg γ"] == pytest.approx(six.mean())
    conv_all = t12[t12.variant == "conv(all)"].set_index("operator")
    assert conv_all.paper_psnr["avg"] == 31.63 and conv_all.paper_psnr["l0"] == 31.64
    t2 = pd.read_csv(tmp_path / "table2_restoration.csv")
    sr2 = t2[(t2.operator == "sr") & (t2.gamma == "2")].iloc[0]
    assert sr2.paper_single_psnr == 31.78 and sr2.paper_decouple_psnr == 31.62
    for name in names:
        body = render._body((tmp_path / f"{name}.tex").read_text())
        assert "\\toprule" in body and "nan" not in body.lower(), name
    six_ops = render._body((tmp_path / "table6_baselines.tex").read_text())
    assert six_ops.count("\\begin{tabular}") == 2 and "real-time, joint" in six_ops
    readme = (tmp_path / "README.md").read_text()
    assert "Summary (as in the LaTeX table)" in readme  # Tables 3 and 12 are summarised


@pytest.mark.skipif(PDFLATEX is None, reason="pdflatex is not installed (apt-get install "
                                             "texlive-latex-base texlive-latex-recommended)")
def test_joint_tables_from_fresh_rows_compile_and_fit(tmp_path):
    for name in _joint_tables(tmp_path):
        _fits(_compile(tmp_path / f"{name}.tex", tmp_path), name)


def test_gamma_sweep_joint_figure(tmp_path):
    from benchmarks._figures import plot_gamma_sweep_joint

    rows = [{"operator": op, "gamma": float(g), "model": m, "psnr": 30.0 + k, "ssim": 0.9}
            for op in ("l0", "rgf") for g in operators.get(op).test_gammas
            for k, m in enumerate(("decouple, 1 operator", "decouple, 10 operators",
                                   "identity"))]
    out = plot_gamma_sweep_joint(pd.DataFrame(rows), tmp_path / "j.png", "smoke")
    assert out.stat().st_size > 10_000


def test_table12_figure_draws_the_csvs_differences_and_intervals(tmp_path):
    """The Table 12 forest plot's numbers (benchmarks._figures._table12_points) are the CSV's
    interval columns where it has them, and otherwise the same differences computed from its
    PSNR columns: checked against the committed medium CSV (the average rows' PSNR
    differences, computed here independently, equal its bootstrap point estimates), with the
    interval columns and without them; the paper's difference is that of its averages."""
    from benchmarks._figures import _table12_points, plot_table12

    df = pd.read_csv(REPO / "results" / "medium" / "table12_ablation.csv")
    pts = _table12_points(df).set_index(["variant", "row"])
    bare = _table12_points(df[[c for c in df.columns if not c.endswith(
        ("_lo", "_hi", "_lopo", "_verdict", "vs_conv_all_psnr", "gain_psnr"))]]
    ).set_index(["variant", "row"])
    ref = df[df.variant == "conv(all)"].set_index("operator")
    for r in df[df.operator.isin(["avg", "avg γ"])].itertuples():
        key = (r.variant, r.operator)
        mine = df[(df.variant == r.variant) & ~df.operator.isin(["avg", "avg γ"])]
        ops = list(mine.operator) if r.operator == "avg" else [
            o for o in mine.operator if operators.get(o).has_gamma]
        mean = mine.set_index("operator").psnr[ops].mean()
        gain = mean - mine.set_index("operator").identity_psnr[ops].mean()
        assert pts.loc[key, "gain"] == pytest.approx(gain, abs=1e-9)
        assert bare.loc[key, "gain"] == pytest.approx(gain, abs=1e-9)
        assert (pts.loc[key, "gain_lo"], pts.loc[key, "gain_hi"]) == (r.gain_psnr_lo,
                                                                      r.gain_psnr_hi)
        assert np.isnan(bare.loc[key, "gain_lo"]) and np.isnan(bare.loc[key, "diff_hi"])
        if r.variant == "conv(all)":
            assert np.isnan(pts.loc[key, "diff"]) and np.isnan(bare.loc[key, "diff"])
            continue
        diff = mean - ref.psnr[ops].mean()
        assert pts.loc[key, "diff"] == pytest.approx(diff, abs=1e-9)
        assert bare.loc[key, "diff"] == pytest.approx(diff, abs=1e-9)
        assert pts.loc[key, "diff_lo"] == r.vs_conv_all_psnr_lo
        assert pts.loc[key, "matched"] == pytest.approx(r.vs_matched_psnr, nan_ok=True)
        assert pts.loc[key, "matched_hi"] == pytest.approx(r.vs_matched_psnr_hi, nan_ok=True)
        paper = r.paper_psnr - ref.loc["avg", "paper_psnr"] if r.operator == "avg" else np.nan
        assert pts.loc[key, "paper_diff"] == pytest.approx(paper, nan_ok=True)
    # the diagnostic pairs: norm(1) against conv(all) trained the same way (the loss divided by
    # the identity MSE; width 32), recomputed here; only their avg and avg γ rows have one
    pairs = 0
    for one, ref2 in (("norm(1), loss / identity MSE", "conv(all), loss / identity MSE"),
                      ("norm(1), width 32", "conv(all), width 32")):
        if one in set(df.variant):
            pairs += 1
            for row in ("avg", "avg γ"):
                a, b = (df[(df.variant == v) & (df.operator == row)].psnr.iloc[0]
                        for v in (one, ref2))
                assert pts.loc[(one, row), "matched"] == pytest.approx(a - b, abs=1e-9)
    assert pairs == 2 and pts.matched.notna().sum() == 2 * pairs
    for frame, name in ((df, "m.png"), (df[[c for c in df.columns if "_lo" not in c]], "b.png")):
        assert plot_table12(frame, tmp_path / name, "medium").stat().st_size > 10_000


# --------------------------------------------------------------------------- a user's folder
def test_results_folder_readme_that_is_not_ours_is_kept(tmp_path, capsys):
    """``--results DIR`` with the user's own README.md: refused before anything is written
    (write_table, render, the suite's start-up), never replaced by the index; the index the
    tool wrote itself is replaced."""
    from benchmarks._report import INDEX_HEADER, ForeignFileError
    from benchmarks.conftest import pytest_configure

    mine = "# My notes\n\nresults of last week, do not lose\n"
    (tmp_path / "README.md").write_text(mine)
    with pytest.raises(ForeignFileError, match="README.md.*not written by"):
        write_table(pd.DataFrame({"a": [1]}), "t", tmp_path, META, caption="c")
    assert (tmp_path / "README.md").read_text() == mine
    assert sorted(p.name for p in tmp_path.iterdir()) == ["README.md"]  # nothing written

    class Config:
        def getoption(self, name):
            return {"--results": str(tmp_path), "--scale": "smoke",
                    "--cache": str(tmp_path / "cache")}[name]

    with pytest.raises(pytest.UsageError, match="not written by"):
        pytest_configure(Config())  # the suite stops at start-up, before any table is computed
    # render refuses too, before rewriting anything
    other = tmp_path / "other"
    write_table(pd.DataFrame({"a": [1]}), "t", other, META, caption="c")
    (other / "README.md").write_text(mine)
    before = {p.name: p.read_bytes() for p in other.iterdir() if p.is_file()}
    assert render.main([str(other)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and "README.md" in err[0], err
    assert {p.name: p.read_bytes() for p in other.iterdir() if p.is_file()} == before
    # a link at README.md is not followed: refused as well
    (other / "README.md").unlink()
    (other / "README.md").symlink_to(tmp_path / "README.md")
    with pytest.raises(ForeignFileError):
        write_table(pd.DataFrame({"a": [2]}), "t", other, META, caption="c")
    assert (tmp_path / "README.md").read_text() == mine
    # the index the tool wrote is replaced (a second table is added)
    fresh = tmp_path / "fresh"
    write_table(pd.DataFrame({"a": [1]}), "t", fresh, META, caption="c")
    write_table(pd.DataFrame({"a": [1]}), "u", fresh, META, caption="c")
    index = (fresh / "README.md").read_text()
    assert index.startswith(INDEX_HEADER) and "## t" in index and "## u" in index


def test_unreadable_sidecars_are_skipped_with_a_warning(tmp_path, capsys):
    """Another tool's ``*.meta.json`` in the folder (not JSON, or JSON that is not a table's
    sidecar) does not fail the run after the table was computed: skipped, one warning line."""
    (tmp_path / "notes.meta.json").write_text("{not json")
    (tmp_path / "other.meta.json").write_text('{"tool": "something else"}')
    (tmp_path / "other.csv").write_text("x\n1\n")  # render: a CSV beside it, still not a table
    write_table(pd.DataFrame({"a": [1]}), "t", tmp_path, META, caption="c")
    readme = (tmp_path / "README.md").read_text()
    assert "## t" in readme and "notes" not in readme and "## other" not in readme
    err = capsys.readouterr().err
    assert "warning: skipping" in err and "notes.meta.json" in err and "other.meta.json" in err
    assert render.main([str(tmp_path)]) == 0
    assert "other.meta.json" in capsys.readouterr().err
    assert (tmp_path / "notes.meta.json").read_text() == "{not json"  # left as it was
    assert render.tables(tmp_path) == ["t"]


def test_render_leaves_unchanged_files_untouched(tmp_path, capsys):
    """A render that changes nothing writes nothing: same bytes and modification times of every
    file (sidecars, .tex, README, the re-drawn figure); a change is still written and stamped."""
    import os

    write_table(_sweep_rows(), "gamma_sweep", tmp_path, {**META, "figure": "figures/g.png"},
                caption="sweep")
    write_table(pd.DataFrame({"a": [1.5]}), "t", tmp_path, META, caption="c")
    assert render.main([str(tmp_path)]) == 0  # the figure is drawn; nothing else changes
    files = sorted(p for p in tmp_path.rglob("*") if p.is_file())
    for p in files:  # an old time: a rewrite shows even within the clock's resolution
        os.utime(p, ns=(1_000_000_000, 1_000_000_000))
    before = {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in files}
    capsys.readouterr()
    assert render.main([str(tmp_path)]) == 0
    assert {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in files} == before
    assert "changed: none; files written: none" in capsys.readouterr().out
    # a sidecar with a machine path is made portable: that table's files are rewritten
    meta = json.loads((tmp_path / "t.meta.json").read_text())
    meta["dataset"] = "/root/.cache/decouple/smoke/data.h5"
    (tmp_path / "t.meta.json").write_text(json.dumps(meta))
    os.utime(tmp_path / "t.meta.json", ns=(1_000_000_000, 1_000_000_000))
    assert render.main([str(tmp_path)]) == 0
    assert "files written: t.meta.json, t.tex, README.md" in capsys.readouterr().out
    new = json.loads((tmp_path / "t.meta.json").read_text())
    assert new["dataset"] == "<cache>/smoke/data.h5" and new["command"] == "pytest benchmarks"
    assert new["rendered"]["command"].startswith("python -m benchmarks.render")
    assert re.fullmatch(r"[0-9a-f]{7,}(\+dirty)?|.+", new["rendered"]["commit"])
    assert (tmp_path / "gamma_sweep.tex").stat().st_mtime_ns == 1_000_000_000


def test_render_version(capsys):
    from datagen import code_version

    with pytest.raises(SystemExit) as exc:
        render.main(["--version"])
    assert exc.value.code == 0
    assert capsys.readouterr().out.strip() == f"decouple-ops benchmarks.render {code_version()}"


def test_index_links_the_results_of_other_scales(tmp_path):
    """results/README.md lists the sub-folders holding a results index (results/medium, one
    scale per folder); a sub-folder whose README.md is someone else's, or a link, is not."""
    df = pd.DataFrame({"operator": ["l0"], "psnr": [25.0]})
    write_table(df, "t", tmp_path, META, caption="T.")
    assert "## Other scales" not in (tmp_path / "README.md").read_text()
    write_table(df, "t", tmp_path / "medium", {**META, "scale": "medium"}, caption="T.")
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "README.md").write_text("# My notes\n")
    (tmp_path / "linked").mkdir()
    (tmp_path / "linked" / "README.md").symlink_to(tmp_path / "medium" / "README.md")
    write_table(df, "t", tmp_path, META, caption="T.")
    index = (tmp_path / "README.md").read_text()
    assert "## Other scales\n\n- [`medium/`](medium/README.md)\n" in index
    assert "notes" not in index and "linked" not in index


def test_index_says_which_models_were_loaded_from_the_exported_ones(tmp_path):
    """A table whose models came from the exported folder beside the committed tables
    (Experiment.training_facts: exported_models) says so, with how many, in the index, and
    how many of them were trained on a build of the same plan (trained_on_same_plan)."""
    df = pd.DataFrame({"operator": ["l0"], "psnr": [25.0]})
    meta = {**META, "models": 3,
            "exported_models": {"folder": "results/medium/models", "runs": ["a", "b"]}}
    write_table(df, "t", tmp_path, meta, caption="T.")
    text = (tmp_path / "README.md").read_text()
    assert ("- models: 2 of 3 loaded from the exported models in `results/medium/models` "
            "(committed; not retrained)\n") in text
    assert "same plan" not in text
    meta["exported_models"]["trained_on_same_plan"] = {"a": "dee0485dfa40" + "0" * 52}
    write_table(df, "t", tmp_path, meta, caption="T.")
    assert ("  - 1 of them trained on dataset dee0485dfa40: the same plan as this one's (γ one "
            "ulp apart; `datagen.plan.SAME_PLAN_DIGESTS`)\n"
            ) in (tmp_path / "README.md").read_text()
    meta["zoo_models"] = {"folder": "model/zoo", "runs": ["c"]}  # Experiment.zoo
    write_table(df, "t", tmp_path, meta, caption="T.")
    assert ("- models: 1 of 3 loaded from the model zoo in `model/zoo` (committed; not "
            "retrained)\n") in (tmp_path / "README.md").read_text()
    write_table(df, "t", tmp_path, META, caption="T.")
    assert "- models:" not in (tmp_path / "README.md").read_text()
