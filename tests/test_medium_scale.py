"""The medium scale (issue 24, item 4): its run lists, the authors' joint budget ratio at the
medium and paper scales (the small scale keeps its x2), and its dataset shared with small."""
from __future__ import annotations

from pathlib import Path

import pytest

from benchmarks import prepare
from benchmarks._experiments import (TABLES, Experiment, Run, joint_budget, table6_runs,
                                     table12_runs)
from model.presets import get_preset


def test_joint_budget_per_scale():
    assert joint_budget(10, "medium") == joint_budget(6, "paper") == 1.3
    assert joint_budget(10, "small") == joint_budget(10) == 2  # the small scale's rule stays
    assert joint_budget(1, "medium") == 1
    paper = [r for r in table6_runs(None, "paper") if r.is_joint][0]
    assert paper.iterations("paper") == 173_030  # 130 epochs of 1331 iterations


def test_medium_run_lists():
    for t in ("table1", "table2", "table3", "sweep_joint"):  # stay at the small scale
        assert TABLES[t](None, "medium") == []
    (rt,) = table6_runs(None, "medium")
    assert rt.arch == "realtime" and rt.is_joint and rt.iterations("medium") == 24_000
    runs = table12_runs(None, "medium")
    assert len({r.name for r in runs}) == len(runs)
    plain = {r.arch for r in runs if r.width is None and r.loss_norm == "none"}
    assert {"decouple", "norm:all", "norm:1", "norm:19", "conv-ch2:19"} <= plain
    wide = [r for r in runs if r.width == 32]
    assert {r.arch for r in wide} == {"decouple", "norm:1"}
    diag = [r for r in runs if r.loss_norm == "identity"]
    assert {r.arch for r in diag} == {"decouple", "norm:1"}
    assert all(r.iterations("medium") == 24_000 and r.ops == rt.ops for r in runs)
    assert "--width" in wide[0].train_args("medium") and \
        wide[0].train_args("medium")[-2:] == ["--width", "32"]
    assert diag[0].train_args("medium")[-2:] == ["--loss-norm", "identity"]
    assert diag[0].name == "decouple-tpami10-b1.3-identitynorm"
    assert wide[0].name == "decouple-tpami10-b1.3-w32"


def test_small_run_names_are_unchanged():
    names = {r.name: r.iterations("small") for r in table12_runs(None, "small")}
    assert names["norm_7-tpami10-b2"] == names["decouple-tpami10-b2"] == 6000
    assert names["adafm-l0-b2of6"] == 1000


def test_run_checks_its_fields():
    with pytest.raises(ValueError, match="budget"):
        Run("decouple", "l0", budget=0.5)
    with pytest.raises(ValueError, match="width"):
        Run("decouple", "l0", width=0)
    with pytest.raises(ValueError, match="loss_norm"):
        Run("decouple", "l0", loss_norm="l1")


def test_medium_experiment_reads_the_small_dataset_and_the_runs_width(tmp_path):
    exp = Experiment("medium", tmp_path)
    assert exp.data_root == tmp_path / "small" and exp.root == tmp_path / "medium"
    wide = [r for r in table12_runs(None, "medium") if r.width == 32][0]
    p = exp.run_preset(wide)
    assert (p.width, p.crop, p.batch, p.iterations) == (32, 128, 4, 24_000)
    assert p.for_ops(10).lr_steps == get_preset("medium").joint_lr_steps
    assert exp.run_dir(wide) == tmp_path / "medium" / "runs" / wide.name


def test_prepare_medium_dry_run_lists_the_ten_models(tmp_path, capsys):
    assert prepare.main(["--scale", "medium", "--dry-run", "--estimate-steps", "0",
                         "--cache", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "preset medium (width 16, batch 4, 128² crops, 18462 iterations)" in out
    rows = [line for line in out.splitlines() if "-tpami10-b1.3" in line]
    assert len(rows) == 10 and all(" 24000 " in line for line in rows)
    assert str(Path(tmp_path) / "small" / "data.h5") in out
    # the runs exported beside the committed tables or in the model zoo are done (loaded, not
    # trained), matched to the digest the dataset's build will record, before it is built
    import json

    from benchmarks._report import REPO

    exported = {p.stem for p in (REPO / "results" / "medium" / "models").glob("*.json")}
    zoo = [json.loads(p.read_text()) for p in (REPO / "model" / "zoo").glob("*.json")]
    exported |= {c["trained"]["run"] for c in zoo if c["scale"] == "medium"}
    assert exported
    for line in rows:
        name = line.split()[0]
        assert line.rstrip().endswith("done") == (name in exported), line
    assert not (tmp_path / "small" / "data.h5").exists()


def test_prepare_runs_picks_runs_of_the_tables_by_name(tmp_path, capsys):
    """``--runs``: only the named runs of the tables (e.g. one pair of a table first); a name
    that is not one of them is refused (exit 2) with the tables' run names."""
    pair = "decouple-tpami10-b1.3-identitynorm,norm_1-tpami10-b1.3-identitynorm"
    args = ["--scale", "medium", "--tables", "table12", "--cache", str(tmp_path)]
    assert prepare.main([*args, "--runs", pair, "--dry-run", "--estimate-steps", "0"]) == 0
    rows = [line.split()[0] for line in capsys.readouterr().out.splitlines()
            if "-tpami10-b1.3" in line]
    assert rows == pair.split(",")
    assert prepare.main([*args, "--runs", "norm_1-tpami10-b1.3", "--list"]) == 0
    listed = [line for line in capsys.readouterr().out.splitlines() if line.strip()]
    assert len(listed) == 1 and listed[0].endswith("norm_1-tpami10-b1.3.json")
    assert prepare.main([*args, "--runs", "norm_1-tpami10-b2", "--list"]) == 2
    err = capsys.readouterr().err
    assert "--runs norm_1-tpami10-b2: not a run of --tables table12" in err
    assert "conv-ch2_19-tpami10-b1.3" in err  # the names it could have been


def test_pytest_benchmarks_at_the_medium_scale_runs_tables_6_and_12_only(tmp_path):
    """Every other benchmark is skipped at the medium scale, with the reason (before any
    fixture: nothing is built or trained for them)."""
    import subprocess
    import sys

    repo = Path(__file__).resolve().parents[1]
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "benchmarks", "--scale", "medium", "-q", "-rs",
         "-p", "no:cacheprovider", "--cache", str(tmp_path / "cache"), "--results",
         str(tmp_path / "results"), "-k",
         "(test_table1 and not test_table12) or test_gamma_sweep or test_table3"],
        cwd=repo, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert "the medium scale is Tables 6 and 12 only" in proc.stdout
    assert " passed" not in proc.stdout and "skipped" in proc.stdout
    assert not (tmp_path / "cache" / "small" / "data.h5").exists()


def _exported_cards(folder, runs: dict, scale: str):
    """The checks every committed models folder gets (``results/medium/models``,
    ``results/models``): each card readable, its weights matching its SHA-256 (nothing executed:
    safetensors), naming a run of ``runs`` at ``scale`` trained to that run's iterations; the
    folder holds nothing but cards, their weights and its README. Returns ``(card path, card,
    run)`` for the caller's dataset checks."""
    from model import zoo

    cards = sorted(folder.glob("*.json"))
    assert cards, f"no exported models in {folder}"
    found = []
    for path in cards:
        c = zoo.read_card_file(path)
        tensors = zoo._read_weights(folder, c, "model card")  # SHA-256 and finite values
        assert sum(v.numel() for v in tensors.values()) == c["parameters"]
        run = runs[c["trained"]["run"]]
        assert path.stem == run.name and c["operators"] == list(run.operators)
        assert c["iteration"] >= run.iterations(scale) and c["scale"] == scale
        found.append((path, c, run))
    names = {p.name for p in folder.iterdir()}
    assert names == {"README.md"} | {p.name for p in cards} | {p.stem + ".safetensors"
                                                                for p in cards}
    return found


def test_the_exported_medium_models_are_usable_cards_of_its_runs():
    """results/medium/models (committed): each card is readable, its weights match its SHA-256
    (nothing executed: safetensors), it names a medium run of Tables 6 or 12 trained to that
    run's iterations, and its dataset is the one the committed medium tables record that used
    it (or a build of the same plan that the table names: trained_on_same_plan); the folder
    holds nothing but cards, their weights and its README."""
    import json

    from benchmarks._report import REPO
    from datagen.plan import same_plan

    runs = {r.name: r for r in table6_runs(None, "medium") + table12_runs(None, "medium")}
    used = {}
    for meta in (REPO / "results" / "medium").glob("*.meta.json"):
        m = json.loads(meta.read_text())
        exported = m.get("exported_models") or {}
        for name in exported.get("runs", []):
            used[name] = (m["dataset_digest"], exported.get("trained_on_same_plan", {}))
    for _, c, run in _exported_cards(REPO / "results" / "medium" / "models", runs, "medium"):
        if run.name in used:  # the table's dataset, or a build of the same plan it names
            digest, same = used[run.name]
            assert c["dataset"]["digest"] in (digest, same.get(run.name))
            assert same_plan(c["dataset"]["digest"], digest)


def test_the_exported_small_models_are_usable_cards_of_its_runs():
    """results/models (committed: the small-scale models a sitting exported before the tables
    that use them could be re-run, ``prepare --scale small --export-finished``): each card is
    readable, its weights match its SHA-256, it names a small run of one of the tables trained
    to that run's iterations on the small scale's dataset (the build recorded for the scale),
    and the folder holds nothing but cards, their weights and its README; a committed
    unfinished state beside it is named as a run of the small scale."""
    from benchmarks._report import REPO
    from datagen.plan import same_plan

    folder = REPO / "results" / "models"
    if not folder.is_dir():
        pytest.skip("no small-scale models committed")
    runs = {r.name: r for table in TABLES.values() for r in table(None, "small")}
    digest = Experiment("small", Path("/nonexistent")).scale_digest()
    cards = _exported_cards(folder, runs, "small")
    for path, c, _ in cards:
        assert same_plan(c["dataset"]["digest"], digest), path.name  # one ulp apart on AVX-512
    unfinished = REPO / "results" / "unfinished"
    if unfinished.is_dir():
        states = {p.name for p in unfinished.iterdir() if p.is_dir()}
        assert states <= set(runs) and not states & {p.stem for p, _, _ in cards}
