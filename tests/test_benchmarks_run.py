"""The result tables as a library: one registry (:mod:`benchmarks.tables`), and
``python -m benchmarks run`` / :func:`benchmarks.run_table`, which make a table without pytest
and write what ``pytest benchmarks`` writes."""
from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from benchmarks import tables
from benchmarks.__main__ import main
from benchmarks._report import write_table

REPO = Path(__file__).resolve().parents[1]
META = {"command": "test", "scale": "small", "hardware": "h", "commit": "c", "created": "t",
        "wall_time_s": 0.0}


def test_every_committed_table_is_registered_once_with_its_run_list():
    from benchmarks._experiments import TABLES

    registry = tables.registry()
    committed = {p.name.removesuffix(".meta.json") for p in (REPO / "results").glob("*.meta.json")}
    assert committed <= set(registry), committed - set(registry)
    keys = [k for t in registry.values() for k in {t.name, t.alias}]
    assert len(keys) == len(set(keys))  # one table per name or alias
    assert {t.runs for t in registry.values()} - {None} == set(TABLES)  # prepare's run lists
    assert tables.get("table1") is registry["table1_single_vs_decouple"]
    assert tables.get("sweep") is registry["gamma_sweep"] and tables.find("nope") is None
    with pytest.raises(ValueError, match="unknown table 'nope'; choose from .*table1"):
        tables.get("nope")
    for t in registry.values():
        assert t.suite and (REPO / t.suite).is_file(), t.name
        assert not t.runnable or (t.units is not None and t.units(None, None)), t.name


def test_the_latex_writer_and_the_index_read_the_registry(tmp_path, monkeypatch):
    """A table's layout and README summary are those of its registry entry (a table the
    registry does not know gets every column as it is)."""
    df = pd.DataFrame({"operator": ["l0"] * 13, "x": range(13)})
    entry = tables.Table("my_table", "mine", layout=lambda name, d: f"LAYOUT {name} {len(d)}\n",
                         summary=lambda d: d.head(2), suite="benchmarks/test_paper_tables.py")
    monkeypatch.setitem(tables.registry(), "my_table", entry)
    write_table(df, "my_table", tmp_path, META, caption="mine")
    assert (tmp_path / "my_table.tex").read_text().endswith("LAYOUT my_table 13\n")
    assert "13 rows: see the CSV. Summary" in (tmp_path / "README.md").read_text()
    write_table(df, "other_table", tmp_path, META, caption="other")
    assert "\\toprule" in (tmp_path / "other_table.tex").read_text()


def test_cli_refuses_bad_input_with_one_line_and_writes_nothing(tmp_path, capsys):
    cache = tmp_path / "cache"
    write_table(pd.DataFrame({"a": [1]}), "t", tmp_path, META, caption="c")  # a small table
    before = sorted(p.name for p in tmp_path.rglob("*"))
    cases = [(["run", "nope"], "error: unknown table 'nope'"),
             (["run", "operator_speed"], "error: operator_speed is still made by its benchmark "
                                         "test module only: run pytest "
                                         "benchmarks/test_operators.py"),
             (["run", "table12", "--ops", "restoration"], "error: table12_ablation measures "
                                                          "none of the operators"),
             (["run", "table1", "--ops", "bogus"], "error: unknown operator or group 'bogus'"),
             (["run", "table1", "--ops", "restoration"], "error: table1_single_vs_decouple "
                                                         "measures none of the operators"),
             (["run", "table1", "--scale", "medium"], "error: table1_single_vs_decouple is "
                                                      "not made at the medium scale"),
             (["run", "table1", "--results", str(tmp_path)],  # smoke over small-scale tables
              "holds tables made at the small scale")]
    for argv, message in cases:
        assert main(argv + ["--cache", str(cache)]) == 2, argv
        err = capsys.readouterr().err
        assert err.startswith("error: ") and message in err and err.count("\n") == 1, err
    assert sorted(p.name for p in tmp_path.rglob("*")) == before and not cache.exists()
    with pytest.raises(SystemExit):
        main(["--version"])
    from operators import __version__

    assert capsys.readouterr().out.strip() == f"decouple-ops benchmarks {__version__}"
    assert main(["list"]) == 0
    assert "table1_single_vs_decouple" in capsys.readouterr().out


def test_an_installed_copy_writes_results_in_the_working_folder(tmp_path):
    """Run from the checkout, benchmarks writes its results/ and records its commit; a copy
    installed outside a checkout (site-packages) has neither, so its default results folder is
    ``./results`` of the folder the command runs in (``python -m benchmarks run --help`` says
    so) and its commit is the code version of the installed packages (datagen.code_version), not
    that folder's git repository's."""
    import os
    import shutil
    import subprocess
    import sys

    from benchmarks import _report

    assert _report.CHECKOUT == REPO and _report.REPO == REPO
    assert _report.results_folder("small", tmp_path) == REPO / "results"
    site, work = tmp_path / "site", tmp_path / "work"
    shutil.copytree(REPO / "benchmarks", site / "benchmarks",
                    ignore=shutil.ignore_patterns("__pycache__", "test_*.py", "conftest.py"))
    work.mkdir()
    git = ["git", "-c", "user.name=u", "-c", "user.email=u@x"]
    subprocess.run(git + ["init", "-q"], cwd=work, check=True)  # the user's own repository
    subprocess.run(git + ["commit", "-q", "--allow-empty", "-m", "x"], cwd=work, check=True)
    assert _report.checkout(site / "benchmarks") is None
    code = ("import benchmarks, benchmarks._report as r, benchmarks.render as m, datagen; "
            "print(benchmarks.__file__); print(r.CHECKOUT, r.REPO, r.results_folder('small', "
            "'c'), r.results_folder('medium', 'c'), m.head_commit() == datagen.code_version())")
    out = subprocess.run([sys.executable, "-c", code], cwd=work, capture_output=True, text=True,
                         env={**os.environ, "PYTHONPATH": str(site)}, timeout=120, check=True)
    lines = out.stdout.splitlines()
    assert lines[0] == str(site / "benchmarks" / "__init__.py")  # the copy, not the checkout
    assert lines[1].split() == ["None", str(work), str(work / "results"),
                                str(work / "results" / "medium"), "True"]
    helptext = subprocess.run([sys.executable, "-m", "benchmarks", "run", "--help"], cwd=work,
                              capture_output=True, text=True, timeout=120,
                              env={**os.environ, "PYTHONPATH": str(site)}).stdout
    assert "./results" in " ".join(helptext.split())


def test_no_unit_test_imports_a_benchmark_test_module():
    """What the unit tests need of a table (its frame, labels, methods) comes from the library
    (:mod:`benchmarks.tables`), not from a ``benchmarks/test_*.py`` module; and what
    ``python -m benchmarks run`` writes is checked where the models are trained, by the
    benchmark suite's smoke run (each migrated test module's ``..._is_what_run_table_writes``,
    :func:`benchmarks.conftest.same_as_run_table`)."""
    import re

    pattern = re.compile(r"(from|import)\s+benchmarks\.test_|from\s+benchmarks\s+import\s+test_")
    offenders = [p.name for p in (REPO / "tests").glob("*.py") if pattern.search(p.read_text())]
    assert offenders == []
    suites: dict[str, int] = {}  # each model table's test module checks it once
    for alias in ("table1", "sweep", "table2", "table3", "table6", "table12", "sweep_joint"):
        suites[tables.get(alias).suite] = suites.get(tables.get(alias).suite, 0) + 1
    for suite, n in suites.items():  # (test_paper_tables.py makes its two with one factory)
        named = set(re.findall(r"\btest_\w+_is_what_run_table_writes\b",
                               (REPO / suite).read_text()))
        assert len(named) == n, (suite, named)


def test_a_unit_of_every_migrated_table_is_selected_by_ops():
    """``--ops`` picks the units of a table: operators, (variant, column) or (variant, columns)
    ones; operators a table does not report leave none (``run`` then refuses)."""
    assert tables.get("table2").units("small", "jpeg") == ["jpeg"]
    assert tables.get("table3").units("small", "llf") == [("tpami", "llf")]
    assert tables.get("table3").units("small", "shock") == [("eccv", "shock")]
    assert tables.get("table6").units("small", "l0,pencil") == ["l0", "pencil"]
    assert [u[1] for u in tables.get("table12").units("small", "l0,sr")] == [("l0",)] * 12
    assert tables.get("table12").units("small", "sr") == []
    assert tables.get("sweep_joint").units("smoke", None) == ["l0"]
    assert tables.get("sweep_joint").units("small", "denoise") == []


def _my_table(monkeypatch, units, unit_id=None) -> list:
    """Register a table ``mine`` (``my_table``) of ``units`` (``(name, n)``: one row each) for
    this test; returns the list of the units it measures, in order."""
    measured = []

    def measure(experiment, unit):
        measured.append(unit)
        return tables.Measured([{"unit": unit[0], "n": unit[1]}])

    def write(experiment, results_dir, df, crops, started, **facts):
        write_table(df, "my_table", results_dir, {**META, **facts}, caption="mine")

    entry = tables.Table("my_table", "mine", units=lambda scale=None, ops=None: list(units),
                         unit_id=unit_id, measure=measure, write=write,
                         suite="benchmarks/test_paper_tables.py")
    monkeypatch.setitem(tables.registry(), "my_table", entry)
    return measured


def test_run_table_measures_only_the_chosen_units(tmp_path, monkeypatch):
    """``run_table(units=[...])`` measures only those of the table's units, in the table's
    order, and records its call as the command (a table without unit ids cannot have its units
    chosen on the command line: the benchmark suite's one-unit check,
    :func:`benchmarks.conftest.same_as_run_table`); a unit the table does not have is refused
    before anything is measured or written."""
    import json
    import shlex

    measured = _my_table(monkeypatch, [("a", 1), ("b", 2), ("c", 3)])
    with pytest.raises(ValueError, match=r"^my_table has no unit \('d', 4\) at the smoke scale$"):
        tables.run_table("mine", units=[("a", 1), ("d", 4)], results=tmp_path / "r",
                         cache=tmp_path / "c")
    assert measured == [] and not (tmp_path / "r").exists()
    done = tables.run_table("mine", units=[("c", 3), ("a", 1)], results=tmp_path / "r",
                            cache=tmp_path / "c")
    assert measured == [("a", 1), ("c", 3)] and done.failed == []
    assert pd.read_csv(tmp_path / "r" / "my_table.csv").to_dict("list") == {"unit": ["a", "c"],
                                                                           "n": [1, 3]}
    command = json.loads((tmp_path / "r" / "my_table.meta.json").read_text())["command"]
    words = shlex.split(command)
    assert words[:2] == ["python", "-c"] and words[2].startswith(
        "from benchmarks import run_table; run_table('mine', scale='smoke', "
        "units=[('c', 3), ('a', 1)], results="), command
    compile(words[2], "command", "exec")  # Python as written


def test_units_are_chosen_by_their_ids_on_the_command_line(tmp_path, monkeypatch, capsys):
    """A table whose units have ids (:attr:`Table.unit_id`: Table 12's variant keys, Table 3's
    variant-operator) takes ``--units ID,ID``: only those are measured, the sidecar's command
    is that command line (re-runnable as it is), an unknown id is refused listing the ids,
    and a table whose units are operators refuses ``--units`` (exit 2, nothing written)."""
    import json
    import shlex

    from benchmarks.__main__ import main

    measured = _my_table(monkeypatch, [("a:1", 1), ("b:2", 2), ("c:3", 3)],
                         unit_id=lambda u: u[0])
    out = tmp_path / "r"
    assert main(["run", "mine", "--units", "c:3, a:1", "--results", str(out),
                 "--cache", str(tmp_path / "c")]) == 0
    assert measured == [("a:1", 1), ("c:3", 3)]
    command = json.loads((out / "my_table.meta.json").read_text())["command"]
    words = shlex.split(command)
    assert words[:7] == ["python", "-m", "benchmarks", "run", "mine", "--scale", "smoke"]
    assert words[words.index("--units") + 1] == "c:3,a:1", command
    # the same call from Python, with the units themselves, records the same command line
    out2 = tmp_path / "r2"
    done = tables.run_table("mine", units=[("c:3", 3), ("a:1", 1)], results=out2,
                            cache=tmp_path / "c")
    assert done.failed == [] and measured[2:] == [("a:1", 1), ("c:3", 3)]
    again = shlex.split(json.loads((out2 / "my_table.meta.json").read_text())["command"])
    at = words.index("--results") + 1
    assert again[:at] + again[at + 1:] == words[:at] + words[at + 1:]
    assert main(["run", "mine", "--units", "d:4", "--results", str(tmp_path / "s"),
                 "--cache", str(tmp_path / "c")]) == 2
    assert "no unit 'd:4' at the smoke scale; its units: a:1, b:2, c:3" in capsys.readouterr().err
    assert main(["run", "table1", "--units", "l0", "--results", str(tmp_path / "t"),
                 "--cache", str(tmp_path / "c")]) == 2
    assert "choose them with --ops" in capsys.readouterr().err
    assert not (tmp_path / "s").exists() and not (tmp_path / "t").exists()


def test_speed_tables_run_without_pytest(tmp_path, monkeypatch, capsys):
    """The speed tables are made by ``run_table`` as by their test modules: the re-tuning table
    (two methods at a tiny setting) gets the committed CSV's columns, its claims checked and its
    settings in the sidecar; the model-speed table's load average before (its ``begin``) and
    after reach the sidecar; a speed table refuses ``--ops`` (exit 2, nothing written)."""
    import json

    from benchmarks import run_table
    from benchmarks.tables import model_speed, retune_speed

    monkeypatch.setitem(retune_speed.SETTINGS, "smoke", (4, (2,), [(16, 12)], 1))
    monkeypatch.setattr(retune_speed, "METHODS", ["single", "norm:{last}"])
    done = run_table("retune_speed", scale="smoke", results=tmp_path / "r",
                     cache=tmp_path / "c")
    assert done.failed == []
    df = pd.read_csv(tmp_path / "r" / "retune_speed.csv")
    committed = pd.read_csv(REPO / "results" / "retune_speed.csv")
    assert list(df.columns) == list(committed.columns)
    assert list(df.method) == ["single", "norm:7"] and (df["size"] == "16x12").all()
    assert (df.first_ms > 0).all() and (df.retune_ms > 0).all()
    meta = json.loads((tmp_path / "r" / "retune_speed.meta.json").read_text())
    assert (meta["width"], meta["dilations"], meta["repeats"]) == (4, [2], 1)
    assert meta["command"].startswith("python -m benchmarks run retune_speed --scale smoke")

    def training(scale, device):
        return [{"device": device, "measure": "train samples/s", "model": m, "value": 1.0,
                 "vs_reference": 1.0, "vs_reference_best": 1.0, "reference": "", "target": ""}
                for m in [model_speed.REFERENCE, "decouple (grouped)", "decouple (linear)",
                          "decouple (loop)", *model_speed.FEW_LAYERS,
                          "adafm (stage 1: base, λ = 0)", "adafm (stage 2: filters, λ = 1)"]]

    monkeypatch.setattr(model_speed, "training", training)
    monkeypatch.setattr(model_speed, "inference", lambda scale, device: [])
    monkeypatch.setattr(model_speed, "_load", iter([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]]).__next__)
    assert run_table("model_speed", scale="smoke", results=tmp_path / "m",
                     cache=tmp_path / "c").failed == []
    meta = json.loads((tmp_path / "m" / "model_speed.meta.json").read_text())
    assert meta["load_average_before"] == [1.0, 2.0, 3.0]
    assert meta["load_average_after"] == [4.0, 5.0, 6.0] and meta["batch"] == 8
    for name in ("model_speed", "retune_speed", "datagen_speed"):
        assert main(["run", name, "--ops", "l0", "--results", str(tmp_path / "x"),
                     "--cache", str(tmp_path / "c")]) == 2
        assert "leave out --ops" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()


def test_retune_check_judges_tail_only_methods_on_their_speedup():
    """At the small and paper scales a method that re-runs only the network's tail must re-tune
    at least MIN_TAIL_SPEEDUP times faster than its first render; the others and the smoke
    scale are not judged; the committed table passes its own check."""
    from benchmarks.tables import Measured, retune_speed as rs

    assert [m for m in ("single", "decouple", "realtime", "norm:1", "norm:19", "norm:all",
                        "conv:19", "conv-ch1:19", "conv-ch2:19", "cresmd", "conv:7")
            if rs.tail_only(m, "small")] == ["realtime", "norm:19", "conv:19", "conv-ch1:19",
                                             "conv-ch2:19"]
    assert rs.tail_only("norm:9", "smoke") and not rs.tail_only("norm:19", "smoke")

    def rows(method, speedup):
        return Measured([{"device": "cpu", "method": method, "size": "640x480",
                          "first_ms": 10.0 * speedup, "retune_ms": 10.0, "speedup": speedup}])

    rs.check(rows("norm:19", 2.0), "small")
    rs.check(rows("norm:1", 0.9), "small")  # re-runs nearly everything: not judged
    rs.check(rows("realtime", 1.5), "smoke")
    for method in ("realtime", "norm:19", "conv-ch2:19"):
        with pytest.raises(AssertionError, match="only 1.90x faster"):
            rs.check(rows(method, 1.9), "small")
    committed = pd.read_csv(REPO / "results" / "retune_speed.csv")
    rs.check(Measured(committed.to_dict("records")), "small")
    assert committed.method.map(lambda m: rs.tail_only(m, "small")).sum() == 5 * 3


def test_recipe_is_made_from_the_registry_and_the_committed_table(tmp_path, capsys):
    """``python -m benchmarks recipe TABLE``: the commands for the table's alias and run list,
    its models at the scale (the run list), the time its sidecar records and the figures of its
    CSV with each difference's interval (the paper's columns and the interval columns not shown
    as figures of their own)."""
    import json

    from benchmarks.tables._recipe import recipe

    pd.DataFrame({"operator": ["l0", "l0"], "gamma": ["0.002", "ave."],
                  "diff_psnr": [-0.25, -0.5], "diff_psnr_lo": [-0.625, -0.75],
                  "diff_psnr_hi": [0.125, -0.25], "paper_diff_psnr": [None, -0.86]}
                 ).to_csv(tmp_path / "table1_single_vs_decouple.csv", index=False)
    (tmp_path / "table1_single_vs_decouple.meta.json").write_text(json.dumps(
        {**META, "hardware": "Acme, 2 cores", "wall_time_s": 12.5, "models": 36,
         "training_wall_s_total": 7200.0}))
    text = recipe("table1", results=tmp_path)
    assert "python -m benchmarks.prepare --tables table1 --scale small" in text
    assert "python -m benchmarks run table1 --scale small" in text
    assert "42 models (run list `table1`" in text  # the run list: 6 decouple, 6 concat, 30 single
    assert "- `single`: 30 on l0, wls, rtv, rgf, wmf, llf, 5 each (one per γ)" in text
    assert ("on Acme, 2 cores: 12.5 s to measure and write the table, after 2.0 h of training "
            "the 36 models behind it") in text
    assert "| operator | gamma | diff_psnr |" in text and "paper_diff_psnr |" not in text
    assert "| l0 | 0.002 | -0.25 [-0.625, 0.125] |" in text
    assert "| l0 | ave. | -0.5 [-0.75, -0.25] |" in text
    assert "No committed run at the paper scale" in recipe("table1", "paper", tmp_path)
    speed = recipe("retune_speed", results=tmp_path)
    assert "python -m benchmarks run retune_speed --scale small" in speed and "None (" in speed
    assert main(["recipe", "nope"]) == 2
    assert capsys.readouterr().err.startswith("error: unknown table 'nope'")


def test_explore_speed_sidecar_names_the_model_it_timed(monkeypatch):
    """The explorer's speed table says in its sidecar whether it timed the zoo's real-time model
    or the untrained stand-in of the scale's width (the CSV's model column is only an id)."""
    from benchmarks.tables import explore_speed
    from model import zoo

    monkeypatch.setattr(explore_speed, "_EXPLORERS", {})
    monkeypatch.setattr(zoo, "names", lambda *a, **k: ["l0"])
    note = explore_speed.model_note("small")
    assert note.startswith("ckpt1: an untrained real-time network (width 16,") and "l0, wls" in note
    monkeypatch.setattr(zoo, "names", lambda *a, **k: ["l0", "realtime-tpami10"])
    assert explore_speed.model_note("small").startswith("realtime-tpami10: the zoo's")
    monkeypatch.setattr(explore_speed, "_EXPLORERS", {"small": (None, "ckpt1", object())})
    assert explore_speed.model_note("small").startswith("ckpt1: an untrained")
