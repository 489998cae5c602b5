"""The benchmark cache: models are trained once, resumed when interrupted, never mixed up."""
from __future__ import annotations

import pytest

from benchmarks._experiments import Experiment, Run, middle_gamma, table1_runs
from model.checkpoint import load, save
from model.presets import get_preset
from model.train import train


def test_runs_are_trained_once_resumed_and_tied_to_their_dataset(data, tmp_path):
    exp = Experiment("smoke", tmp_path, data=data)
    run = Run("decouple", "l0")
    assert not exp.is_done(run)
    assert exp.run_dir(run).parent.name == f"runs-{exp.digest()[:12]}"  # not the default's runs/
    # an interrupted run is resumed to the end, not restarted
    preset = get_preset("smoke")
    train(data, ["l0"], exp.run_dir(run), preset=preset, stop_at=10, progress=False,
          residual=preset.residual)
    assert load(exp.run_dir(run))["iteration"] == 10 and not exp.is_done(run)
    exp.ensure(run)
    assert exp.is_done(run) and load(exp.run_dir(run))["iteration"] == preset.iterations
    logged = [int(line.split(",")[0]) for line in
              (exp.run_dir(run) / "log.csv").read_text().splitlines()[1:]]
    assert logged == list(range(5, preset.iterations + 1, 5))  # continued from 10, once
    stamp = (exp.run_dir(run) / "last.pt").stat().st_mtime_ns
    exp.ensure(run)  # done: only loaded
    assert (exp.run_dir(run) / "last.pt").stat().st_mtime_ns == stamp
    # a checkpoint from another dataset is refused, not silently evaluated
    state = load(exp.run_dir(run))
    state["config"]["data_digest"] = "0" * 64
    save(exp.run_dir(run) / "last.pt", {k: v for k, v in state.items() if k != "format"})
    with pytest.raises(ValueError, match="another dataset"):
        exp.is_done(run)


def test_run_lists():
    runs = table1_runs(["l0"])
    assert Run("decouple", "l0") in runs and Run("concat", "l0") in runs
    assert [r.gamma for r in runs if r.arch == "single"] == [0.002, 0.00431, 0.02, 0.09283, 0.2]
    assert middle_gamma("wmf") == 5.5 and Run("single", "l0", 0.02).name == "single-l0-0.02"


def test_joint_runs_names_budgets_and_train_args():
    from benchmarks._experiments import JOINT_CAP, JOINT_GROUPS, joint_budget

    r = Run.joint("norm:7", "tpami10", joint_budget(10))
    assert r.operators == JOINT_GROUPS["tpami10"] and r.is_joint and len(r.operators) == 10
    assert r.name == "norm_7-tpami10-b2"  # no ':' in a folder name; the budget in the name
    assert joint_budget(10) == JOINT_CAP == 2 and joint_budget(1) == 1
    small = get_preset("small").iterations
    assert r.iterations("small") == 2 * small
    assert r.train_args("small") == ["--ops", ",".join(JOINT_GROUPS["tpami10"]),
                                     "--iterations", str(2 * small)]
    one = Run("decouple", "l0")  # a one-operator run: the preset's iterations, no override
    assert one.operators == ("l0",) and not one.is_joint and one.name == "decouple-l0"
    assert one.train_args("small") == ["--ops", "l0"]
    share = Run("adafm", "wls", budget=2, share=6)
    assert share.name == "adafm-wls-b2of6" and share.iterations("small") == 2 * small // 6
    assert Run("adafm", "l0", budget=1, share=1000).iterations("smoke") == 2  # two end points
    with pytest.raises(ValueError, match="budget"):
        Run("decouple", "l0", budget=0)
    with pytest.raises(ValueError, match="unknown operator set"):
        Run.joint("decouple", "tpami11")
    with pytest.raises(ValueError, match="once"):
        Run("decouple", "x", ops=("l0", "l0"))


def test_issue12_run_lists():
    from benchmarks._experiments import (TABLES, table2_runs, table3_runs, table6_runs,
                                         table12_arch, table12_runs)

    t2 = table2_runs(None, "small")
    assert sorted(r.gamma for r in t2 if r.op == "sr" and r.arch == "single") == [2, 3, 4]
    assert sorted(r.gamma for r in t2 if r.op == "denoise" and r.arch == "single") == [15, 25, 50]
    assert sorted(r.gamma for r in t2 if r.op == "jpeg" and r.arch == "single") == [10, 20]
    assert {r.op for r in t2 if r.arch == "decouple"} == {"sr", "denoise", "jpeg"}
    assert len(t2) == 11 and table2_runs(None, "smoke") == table2_runs(["jpeg"], "small")
    t3 = table3_runs()
    joint = {r.name for r in t3 if r.is_joint}
    assert joint == {"decouple-filters6-b2", "decouple-restoration4-b2", "decouple-ten-tpami-b2",
                     "concat-ten-tpami-b2", "decouple-eccv6-b2", "decouple-ten-eccv-b2"}
    assert {r.op for r in t3 if not r.is_joint} == {"l0", "wls", "rtv", "rgf", "wmf", "llf",
                                                     "shock", "sr", "denoise", "jpeg", "rain"}
    assert len(t3) == len(set(t3))  # shared models (the restoration one) listed once
    t6 = table6_runs()
    assert Run("hdrnet", "pencil") in t6 and Run("hdrnet", "l0", 0.02) in t6
    assert [r.name for r in t6 if r.is_joint] == ["realtime-tpami10-b2"]
    assert not any(r.op == "style" and r.arch == "decouple" for r in t6)
    # Table 12: the paper's K at the small preset (19 InstanceNorm layers), mapped at smoke (9)
    assert table12_arch("norm:19", "small") == "norm:19"
    assert table12_arch("norm:19", "smoke") == "norm:9" and table12_arch("norm:1", "smoke") == \
        "norm:1" and table12_arch("conv:14", "smoke") == "conv:7"
    assert table12_arch("decouple", "smoke") == "decouple"
    t12 = table12_runs(None, "small")
    assert len([r for r in t12 if r.is_joint]) == 10
    per_op = [r for r in t12 if r.arch in ("adafm", "dni")]
    assert len(per_op) == 12 and all(r.share == 6 and r.budget == 2 for r in per_op)
    # the same total budget per method: six shares of the joint budget
    assert sum(r.iterations("small") for r in per_op if r.arch == "dni") == \
        Run.joint("decouple", "tpami10", 2).iterations("small")
    assert [r.name for r in table12_runs(None, "smoke")] == [
        "norm_9-tpami10-b2", "decouple-tpami10-b2", "adafm-l0-b2of6"]
    # --ops keeps the models that hold one of the operators
    assert all("l0" in r.operators for r in table3_runs(["l0"]))
    assert table2_runs(["l0"]) == []
    assert set(TABLES) == {"table1", "table2", "table3", "table6", "table12", "sweep_joint"}
    for name, f in TABLES.items():
        assert f(None, "small") and all(isinstance(r, Run) for r in f(None, "small")), name


def test_run_preset_and_train_args_follow_the_run(data, tmp_path):
    """A joint run trains its own iterations."""
    from benchmarks._experiments import Experiment, joint_budget

    exp = Experiment("smoke", tmp_path, data=data)
    run = Run.joint("decouple", "filters6", joint_budget(6))
    preset = exp.run_preset(run)
    # smoke checks that code runs: the preset's iterations whatever the budget; small: 2x
    assert preset.iterations == get_preset("smoke").iterations == run.iterations("smoke")
    assert run.iterations("small") == 2 * get_preset("small").iterations
    assert preset.crop == get_preset("smoke").crop  # the test dataset's pairs are 40²
    assert exp.train_args(run) == ["--ops", ",".join(run.operators)]
    assert exp.train_args(Run("adafm", "l0", budget=2, share=6)) == ["--ops", "l0",
                                                                     "--iterations", "5"]
    assert exp.train_args(Run("decouple", "l0")) == ["--ops", "l0"]  # train() caps the crop


def test_ops_all_means_every_operator_each_table_keeping_its_own(tmp_path, capsys):
    """``--ops all`` is every operator, as for ``python -m datagen``/``model`` (fifteen), and
    each table's run list keeps the operators it reports: the same models as the default (each
    table's own set); an operator a table does not report trains nothing for it (Table 1 on the
    restoration tasks trained eleven models no table evaluates)."""
    import operators
    from benchmarks import prepare
    from benchmarks._experiments import TABLES

    assert len(operators.resolve("all")) == len(operators.ALL) == 15
    for name, f in TABLES.items():
        for scale in ("smoke", "small"):
            assert f(operators.resolve("all"), scale) == f(None, scale), (name, scale)
    assert table1_runs(["sr", "shock"]) == [] and table1_runs("restoration,l0") == \
        table1_runs(["l0"])
    args = ["--scale", "smoke", "--cache", str(tmp_path), "--list"]
    assert prepare.main(args) == 0
    default = capsys.readouterr().out
    assert prepare.main(args + ["--ops", "all"]) == 0
    assert capsys.readouterr().out == default and len(default.splitlines()) > 50
    assert prepare.main(args + ["--ops", "sr", "--tables", "table1"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: no model of --tables table1"), err
