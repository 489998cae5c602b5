"""The benchmark cache: models are trained once, resumed when interrupted, never mixed up."""
from __future__ import annotations

from pathlib import Path

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


def _tiny_scale(tmp_path, monkeypatch, folder: str = "imgs", **change):
    """The smoke scale's dataset made tiny for a test (l0 on three 40² images of ``folder``,
    tiny_data's options): returns the folder and a build with exactly the scale's options, or
    with ``change`` (another ``seed`` of the images, another ``per_image``)."""
    import benchmarks._experiments as E
    from tiny_data import tiny_build

    imgs = tmp_path / folder
    imgs.mkdir()
    made = tiny_build(imgs, "built.h5", ("l0",), **{"size": 32, "per_image": 1, **change})
    if not change:
        monkeypatch.setitem(E.DATA_OPTIONS, "smoke", dict(
            ops="l0", images=imgs, size=32, per_image=1, test_fraction=0.34, max_crops=2,
            scales=(1.0,)))
    return imgs, made


def test_the_dataset_is_built_through_datagens_library_not_its_command_line(tmp_path,
                                                                           monkeypatch):
    """Issue 27: ``Experiment.data`` built the scale's dataset by calling ``datagen.cli.main``
    with an argv; it calls :func:`datagen.build.build_dataset` with the scale's options, and the
    file records the command a user would type for it."""
    import datagen.cli
    from benchmarks._experiments import dataset_record

    imgs, made = _tiny_scale(tmp_path, monkeypatch)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(datagen.cli, "main",
                        lambda argv=None: pytest.fail(f"built through the command line: {argv}"))
    exp = Experiment("smoke", tmp_path / "cache")
    path = exp.data()
    assert path == tmp_path / "cache" / "smoke" / "data.h5"
    record = dataset_record(path)
    assert record["command"] == exp.data_command(path) == (
        f"python -m datagen build --ops l0 --out {path} --images {imgs} --size 32 --per-image 1 "
        "--test-fraction 0.34 --max-crops 2 --scales 1.0")
    assert record["digest"] == dataset_record(made)["digest"] == exp.scale_digest()


def test_a_quick_start_dataset_of_the_scale_is_used_not_rebuilt(tmp_path, monkeypatch, capsys):
    """Issue 27 item 6: ``prepare`` planned to build ``<cache>/<scale>/data.h5`` although the
    quick start's ``data/decouple.h5`` came from the same command. A file there (or given with
    ``--data``) whose recorded options and digest are the scale's build is used as it is (only
    read, never written), its models are the scale's (``runs/``), and the dry run says which
    dataset and why; a file of other options or other images is not."""
    import hashlib

    from benchmarks import prepare

    _, made = _tiny_scale(tmp_path, monkeypatch)
    work = tmp_path / "work"
    (work / "data").mkdir(parents=True)
    monkeypatch.chdir(work)
    quick = work / "data" / "decouple.h5"
    quick.write_bytes(made.read_bytes())
    quick.chmod(0o444)
    stamp = (quick.stat().st_mtime_ns, hashlib.sha256(quick.read_bytes()).hexdigest())
    cache = tmp_path / "cache"
    run = Run("decouple", "l0")

    exp = Experiment("smoke", cache)
    found = exp.locate_data()
    assert found.path == Path("data/decouple.h5") and found.exists and found.scale_build
    assert "quick start" in found.why and "only read" in found.why, found.why
    assert exp.data() == found.path and not (cache / "smoke" / "data.h5").exists()
    assert exp.run_dir(run) == cache / "smoke" / "runs" / run.name
    given = Experiment("smoke", cache, data=quick)  # --data: the scale's build, the scale's runs
    assert given.locate_data().scale_build and given.run_dir(run) == exp.run_dir(run)
    assert prepare.main(["--dry-run", "--scale", "smoke", "--cache", str(cache), "--tables",
                         "table1", "--ops", "l0", "--estimate-steps", "0"]) == 0
    out = capsys.readouterr().out
    assert "dataset: data/decouple.h5 (the quick start's dataset is the smoke scale's build" in out
    assert not (cache / "smoke" / "data.h5").exists()
    assert (quick.stat().st_mtime_ns, hashlib.sha256(quick.read_bytes()).hexdigest()) == stamp

    for change, reason in (({"seed": 1}, "its digest"), ({"per_image": 2}, "per_image")):
        quick.chmod(0o644)
        _, other = _tiny_scale(tmp_path, monkeypatch, "other-" + "-".join(change), **change)
        quick.write_bytes(other.read_bytes())
        exp = Experiment("smoke", cache)
        found = exp.locate_data()
        assert found.path == cache / "smoke" / "data.h5" and not found.exists, found
        assert "data/decouple.h5 is not the smoke scale's build" in found.why, found.why
        assert reason in found.why, found.why
        given = Experiment("smoke", cache, data=quick)
        assert not given.locate_data().scale_build
        assert given.run_dir(run).parent.name == f"runs-{given.digest()[:12]}"


@pytest.fixture(scope="module")
def l0_export(data, tmp_path_factory) -> tuple[Path, Path]:
    """A smoke run of decouple on L0 at a tiny width (seconds) and its export (``zoo
    export_run``, named as the run): (run folder, folder of the card and weights). Read-only:
    a test that changes the export copies it first."""
    from model import zoo

    base = tmp_path_factory.mktemp("export")
    run, preset = Run("decouple", "l0"), get_preset("smoke")
    folder = Experiment("smoke", base / "a", data=data, models=None).run_dir(run)
    train(data, ["l0"], folder, preset=preset.with_(width=4, dilations=(2,)), progress=False,
          residual=preset.residual)
    zoo.export_run(folder, run.name, base / "models", data, command="test", log=lambda *a: None)
    return folder, base / "models"


def test_exported_models_are_loaded_instead_of_trained(data, tmp_path, monkeypatch, l0_export):
    """A run's model exported beside the committed tables (``results/medium/models``: card and
    safetensors, ``python -m model zoo export ... RUN=RUN``) is used as the run: nothing is
    trained, the table's predictor gives the run folder's outputs, the provenance says where it
    came from; a card of another run, dataset or iteration is ignored and says why."""
    import json
    import os

    import numpy as np

    import shutil

    from benchmarks.tables._common import predictor
    from model.predict import load as load_model

    run, preset = Run("decouple", "l0"), get_preset("smoke")
    folder = l0_export[0]
    assert Experiment("smoke", folder.parents[2], data=data, models=None).is_done(run)
    models = shutil.copytree(l0_export[1], tmp_path / "models")
    card = models / f"{run.name}.json"

    exp = Experiment("smoke", tmp_path / "b", data=data, models=models)
    assert exp.stored(run) == card and exp.is_done(run) and "exported in" in exp.store_note(run)
    assert exp.ensure(run) == card and not exp.run_dir(run).exists()  # nothing trained
    img = np.random.default_rng(3).integers(0, 256, (18, 22, 3), dtype=np.uint8)
    want = load_model(folder).apply(img, "l0", 0.05)
    assert np.array_equal(predictor(exp, run).apply(img, "l0", 0.05), want)
    assert np.array_equal(load_model(str(card)).apply(img, "l0", 0.05), want)
    facts = exp.training_facts([run])
    state = load(folder)
    assert facts["models"] == 1
    assert facts["exported_models"]["runs"] == [run.name]
    assert facts["training_code"] == [state["config"]["code"]]
    assert facts["training_wall_s_total"] == round(state["elapsed_s"], 1)
    # switched off: the cache alone (empty: to train)
    assert not Experiment("smoke", tmp_path / "b", data=data, models=None).is_done(run)

    # ignored, with the reason: another dataset, fewer iterations, another run's export, a link
    original = card.read_text()
    for change, why in ((lambda c: c["dataset"].update(digest="0" * 64), "trained on dataset"),
                        (lambda c: c.update(iteration=preset.iterations - 1), "from iteration"),
                        (lambda c: c["trained"].update(run="decouple-wmf"), "exported from run")):
        c = json.loads(original)
        change(c)
        card.write_text(json.dumps(c))
        assert exp.stored(run) is None and not exp.is_done(run)
        assert why in exp.store_note(run)
    # a card of a build recorded as the same plan (datagen.plan.SAME_PLAN_DIGESTS) is used,
    # and the provenance names its digest
    import datagen.plan

    monkeypatch.setattr(datagen.plan, "SAME_PLAN_DIGESTS", {"a" * 64: exp.digest()})
    c = json.loads(original)
    c["dataset"]["digest"] = "a" * 64
    card.write_text(json.dumps(c))
    assert exp.stored(run) == card and "the same plan as" in exp.store_note(run)
    same = exp.training_facts([run])["exported_models"]
    assert same["runs"] == [run.name] and same["trained_on_same_plan"] == {run.name: "a" * 64}
    assert "trained_on_same_plan" not in facts["exported_models"]
    monkeypatch.setattr(datagen.plan, "SAME_PLAN_DIGESTS", {"a" * 64: "b" * 64})
    assert exp.stored(run) is None and "trained on dataset aaaaaaaaaaaa" in exp.store_note(run)
    card.unlink()
    (tmp_path / "elsewhere.json").write_text(original)
    os.symlink(tmp_path / "elsewhere.json", card)
    assert exp.stored(run) is None and "not a regular file" in exp.store_note(run)
    card.unlink()
    card.write_text(original)
    # damaged weights: the card is taken, loading them is a clear refusal
    weights = models / f"{run.name}.safetensors"
    blob = bytearray(weights.read_bytes())
    blob[-3] ^= 0xFF
    weights.write_bytes(bytes(blob))
    with pytest.raises(ValueError, match="corrupt"):
        load_model(str(card))


def test_the_model_zoo_stands_in_for_the_runs_it_was_exported_from(data, tmp_path,
                                                                   monkeypatch, l0_export):
    """The zoo's one-operator models are small-scale runs (``decouple-<op>``, Tables 1-3): at
    a scale whose models are the default, a zoo card exported from a run of that name, scale,
    dataset and iterations stands in for it (nothing trained, the provenance says so under
    ``zoo_models``); a folder given with ``--models`` (or none) leaves the zoo out, and a card
    of another scale is ignored, saying why."""
    import json
    import shutil

    import numpy as np

    from benchmarks.tables._common import predictor
    from model import zoo
    from model.predict import load as load_model

    run = Run("decouple", "l0")
    folder = l0_export[0]
    shelf = shutil.copytree(l0_export[1], tmp_path / "zoo")
    card = shelf / f"{run.name}.json"  # found by the run it names, whatever its file name
    c = json.loads(card.read_text())  # as if trained at the small scale (its 3000 iterations)
    c.update(scale="small", iteration=get_preset("small").iterations)
    card.write_text(json.dumps(c))
    monkeypatch.setenv(zoo.ENV, str(shelf))

    exp = Experiment("small", tmp_path / "b", data=data)
    assert exp.zoo == shelf and exp.stored(run) == card and exp.is_done(run)
    assert exp.store_note(run).startswith(f"the model zoo in {card}")
    assert not exp.is_done(Run("decouple", "wls"))  # no card of that run
    assert exp.ensure(run) == card and not exp.run_dir(run).exists()  # nothing trained
    img = np.random.default_rng(5).integers(0, 256, (18, 22, 3), dtype=np.uint8)
    assert np.array_equal(predictor(exp, run).apply(img, "l0", 0.05),
                          load_model(folder).apply(img, "l0", 0.05))
    facts = exp.training_facts([run])
    assert facts["zoo_models"]["runs"] == [run.name] and "exported_models" not in facts
    # the smoke scale, --models FOLDER and --models none: the zoo is not looked at
    assert Experiment("smoke", tmp_path / "b", data=data).zoo is None
    for models in (tmp_path / "elsewhere", None):
        other = Experiment("small", tmp_path / "b", data=data, models=models)
        assert other.zoo is None and other.stored(run) is None
    # a card of another scale: ignored, with the reason
    c["scale"] = "medium"
    card.write_text(json.dumps(c))
    exp = Experiment("small", tmp_path / "b", data=data)
    assert exp.stored(run) is None and "trained at the medium scale" in exp.store_note(run)


def test_an_unfinished_run_is_saved_and_resumed_on_another_machine(data, tmp_path, capsys):
    """A run that takes more than one sitting: ``save_unfinished`` copies its checkpoint and
    log beside the models folder (``unfinished/RUN/``, this machine's paths made portable), and
    a later ``ensure``/``prepare`` with another cache and another path to the same dataset
    resumes from it: the model it ends with is the one the first cache's own resume gives,
    and the resume is recorded. A state is saved once per iteration, never replaces a cache's
    own checkpoint, and is ignored, saying why, when it is a link, damaged, or of another run."""
    import os
    import shutil

    import torch

    from model.train import train as train_run

    run = Run("decouple", "l0")
    models = tmp_path / "results" / "models"
    a = Experiment("smoke", tmp_path / "a", data=data, models=models)
    preset = a.run_preset(run)
    half = preset.iterations // 2
    train_run(a.data(), run.operators, a.run_dir(run), preset=preset, arch=run.arch,
              resume=True, progress=False, init=preset.init, residual=preset.residual,
              stop_at=half)
    assert not a.is_done(run)
    assert a.progress_note(run) == f"at iteration {half} of {preset.iterations} in the cache"
    saved = a.save_unfinished([run])
    assert len(saved) == 1 and f"iteration {half} of {preset.iterations}" in saved[0]
    assert a.save_unfinished([run]) == []  # already saved at this iteration
    kept = tmp_path / "results" / "unfinished" / run.name
    assert sorted(p.name for p in kept.iterdir()) == ["last.pt", "log.csv"]
    state = load(kept / "last.pt")
    assert state["iteration"] == half and state["config"]["data"] == Path(data).name
    a.ensure(run)  # the first cache's own resume, to the end
    want = load(a.run_dir(run) / "last.pt")

    moved = tmp_path / "elsewhere" / "tiny.h5"  # the same dataset, at another path
    moved.parent.mkdir()
    shutil.copyfile(data, moved)
    b = Experiment("smoke", tmp_path / "b", data=moved, models=models)
    # what prepare --list says of it in each cache, and --save-unfinished from the command line
    from benchmarks.prepare import main as prepare

    args = ["--scale", "smoke", "--tables", "table1", "--ops", "l0", "--models", str(models)]
    assert prepare([*args, "--cache", str(tmp_path / "b"), "--data", str(moved), "--list"]) == 0
    line = next(x for x in capsys.readouterr().out.splitlines() if x.endswith(
        f"{run.name}  (resumes from {kept / 'last.pt'} (iteration {half}))"))
    assert line.startswith("to do")
    assert prepare([*args, "--cache", str(tmp_path / "a"), "--data", str(data),
                    "--save-unfinished"]) == 0
    assert "no unfinished run to save" in capsys.readouterr().out  # a's run is done now
    b.run_dir(run).mkdir(parents=True)  # a start there that died before its first checkpoint
    (b.run_dir(run) / "log.csv").write_text("iteration,epoch,loss,lr,elapsed_s\n5,0,9,1,1\n")
    assert "resumed from" in b.carry_in(run) and not b.is_done(run)
    assert (b.run_dir(run) / "log.csv").read_bytes() == (kept / "log.csv").read_bytes()
    assert b.carry_in(run) == ""  # the cache's own checkpoint now: never replaced
    b.ensure(run)
    got = load(b.run_dir(run) / "last.pt")
    assert got["iteration"] == preset.iterations
    assert got["config"]["data"] == str(moved)
    assert [r["iteration"] for r in got["config"]["resumes"]] == [half]
    assert got["model"].keys() == want["model"].keys()
    for k in want["model"]:
        assert torch.equal(got["model"][k], want["model"][k]), k

    # a run folder being trained (by hand, its lock held) is never written under
    from model.train import RunLock

    c = Experiment("smoke", tmp_path / "c", data=data, models=models)
    with RunLock(c.run_dir(run)):
        note = c.carry_in(run)
    assert "not resumed from" in note and "is being trained by" in note, note
    assert not os.path.lexists(c.run_dir(run) / "last.pt")
    assert "resumed from" in c.carry_in(run)  # the lock released: carried in
    shutil.rmtree(c.run_dir(run))

    # ignored, saying why: another run's state, a link, a damaged file
    other = Run("concat", "l0")
    shutil.copytree(kept, kept.parent / other.name)
    assert "is a state of decouple" in c.carry_in(other)
    assert not os.path.lexists(c.run_dir(other) / "last.pt")
    (kept.parent / "elsewhere.pt").write_bytes((kept / "last.pt").read_bytes())
    (kept / "last.pt").unlink()
    os.symlink(kept.parent / "elsewhere.pt", kept / "last.pt")
    assert "not a regular file" in c.carry_in(run)
    (kept / "last.pt").unlink()
    blob = bytearray((kept.parent / "elsewhere.pt").read_bytes())
    blob[len(blob) // 2] ^= 0xFF
    (kept / "last.pt").write_bytes(bytes(blob))
    assert "ignored" in c.carry_in(run) and not os.path.lexists(c.run_dir(run) / "last.pt")

    # the hand-over at the end of a sitting: the finished run is exported into the models
    # folder (its card records the command) and its unfinished state, now superseded, deleted
    import json

    assert prepare([*args, "--cache", str(tmp_path / "b"), "--data", str(moved),
                    "--export-finished", "--save-unfinished"]) == 0
    out = capsys.readouterr().out
    assert f"{run.name}: exported -> " in out and "deleted" in out, out
    assert "exported 1 finished run(s)" in out and "no unfinished run to save" in out
    assert not kept.exists() and (kept.parent / other.name).is_dir()  # only the run's own
    card = models / f"{run.name}.json"
    shipped = json.loads(card.read_text())
    assert shipped["trained"]["run"] == run.name and shipped["iteration"] == preset.iterations
    command = shipped["exported"]["command"]
    assert command.startswith("python -m benchmarks.prepare --scale smoke") and (
        "--cache <cache>" in command), command
    assert b.stored(run) == card
    before = card.read_bytes()
    assert prepare([*args, "--cache", str(tmp_path / "b"), "--data", str(moved),
                    "--export-finished"]) == 0
    assert "no finished run to export" in capsys.readouterr().out
    assert card.read_bytes() == before  # never written again
    card.rename(tmp_path / "card.json")  # a weights file without its card: not ours to replace
    assert prepare([*args, "--cache", str(tmp_path / "b"), "--data", str(moved),
                    "--export-finished"]) == 0
    assert "no finished run to export" in capsys.readouterr().out and not card.exists()
    (tmp_path / "card.json").rename(card)
    # an unfinished state that is a link to a folder elsewhere: that folder is never touched
    elsewhere = tmp_path / "theirs"
    elsewhere.mkdir()
    (elsewhere / "last.pt").write_bytes(b"not ours")
    os.symlink(elsewhere, kept)
    card.unlink()
    (models / f"{run.name}.safetensors").unlink()
    assert prepare([*args, "--cache", str(tmp_path / "b"), "--data", str(moved),
                    "--export-finished"]) == 0
    assert "is a link or not a folder: left" in capsys.readouterr().out
    assert card.is_file() and (elsewhere / "last.pt").read_bytes() == b"not ours"
    assert kept.is_symlink()


def test_a_single_gamma_run_exports_with_check_figures_at_its_gamma(data, tmp_path):
    """A single-γ network (Table 1's runs) exports (``zoo export_run``, what ``prepare
    --export-finished`` calls): its check figures are at the one γ it was trained for, which
    it accepts, instead of every test γ, which it refuses (found exporting the small scale's
    Table 1 runs)."""
    import operators
    from model import zoo

    g = float(operators.get("l0").test_gammas[2])
    run, preset = Run("single", "l0", g), get_preset("smoke")
    folder = Experiment("smoke", tmp_path / "a", data=data, models=None).run_dir(run)
    train(data, ["l0"], folder, preset=preset.with_(width=4, dilations=(2,), batch=2),
          progress=False, residual=preset.residual, arch="single", gamma=g)
    zoo.export_run(folder, run.name, tmp_path / "models", data, command="test",
                   log=lambda *a: None)
    card = zoo.read_card_file(tmp_path / "models" / f"{run.name}.json")
    assert [(r["operator"], r["gamma"]) for r in card["check"]["rows"]] == [("l0", g)]
    assert {r["gamma"] for r in card["test"]["rows"]} == {g}
