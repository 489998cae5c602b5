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
