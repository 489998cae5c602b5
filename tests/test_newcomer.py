"""Issue 29, a newcomer's first hour: threads chosen for a busy machine and said, progress
outside a terminal, unfinished models named, packages shadowed by a user's own files."""
from __future__ import annotations

import os

import pytest
import torch

import datagen.threads as threads
from datagen.threads import choose
from model.cli import main as model_main

TINY_TRAIN = ["--preset", "smoke", "--width", "4", "--iterations", "2", "--crop", "16",
              "--batch", "2"]


# ------------------------------------------------------------------ 1. threads on a busy machine
@pytest.mark.parametrize("cores,load,default,expected", [
    (2, 0.0, 2, 2),    # quiet: every core
    (2, 0.4, 2, 2),
    (2, 0.5, 2, 1),    # half a core busy rounds up to one
    (2, 1.9, 2, 1),    # the machine: one thread, not two
    (2, 7.0, 2, 1),    # never fewer than one
    (8, 3.2, 8, 5),    # the free cores
    (8, 0.0, 4, 4),    # never more than the default (torch's: physical cores)
    (2, None, 2, 2),   # load unknown (no getloadavg): the default
])
def test_thread_count_follows_the_free_cores(cores, load, default, expected):
    choice = choose(cores=cores, load=load, default=default, env={})
    assert choice.n == expected and choice.source == "auto"
    assert choice.busy == (load is not None and expected < default)


def test_explicit_threads_and_omp_num_threads_win():
    assert choose(3, cores=2, load=9.0, env={"OMP_NUM_THREADS": "1"}).n == 3
    env = choose(cores=2, load=9.0, env={"OMP_NUM_THREADS": "2"})
    assert (env.n, env.source) == (2, "OMP_NUM_THREADS=")
    assert choose(cores=2, load=0.0, env={"OMP_NUM_THREADS": "x"}).source == "auto"
    for bad in (0, -1, 1.5, True):
        with pytest.raises(ValueError, match="threads must be a positive integer"):
            choose(bad, cores=2, load=0.0, env={})


def test_the_reason_and_the_warning_say_load_and_cores():
    busy = choose(cores=2, load=1.9, default=2, env={})
    assert busy.describe() == ("threads: 1 (load 1.9 on 2 cores: 1, not 2, as threads that wait "
                               "for a core stall the others; --threads N to choose)")
    assert busy.warning().startswith("the machine is busy (load 1.9 on 2 cores)")
    quiet = choose(cores=2, load=0.1, default=2, env={})
    assert quiet.describe() == "threads: 2 (2 cores, load 0.1; --threads N to choose)"
    assert quiet.warning() is None
    forced = choose(2, cores=2, load=1.9, env={})
    assert forced.describe() == "threads: 2 (--threads 2; 2 cores, load 1.9)"
    assert "--threads 1 is often faster" in forced.warning()


def test_limit_sets_every_pool_and_restores_them(monkeypatch):
    import cv2

    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    before = cv2.getNumThreads()
    restore = threads.limit(1)
    assert cv2.getNumThreads() == 1 and os.environ["OMP_NUM_THREADS"] == "1"
    from threadpoolctl import threadpool_info

    assert all(p["num_threads"] == 1 for p in threadpool_info())
    restore()
    assert cv2.getNumThreads() == before and "OMP_NUM_THREADS" not in os.environ


@pytest.fixture
def busy_machine(monkeypatch):
    """Two cores, load 1.9, torch's default of 2 threads, no OMP_NUM_THREADS."""
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr(threads, "cpu_cores", lambda: 2)
    monkeypatch.setattr(threads, "load_average", lambda: 1.9)
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(before)


def test_model_commands_say_their_threads_first(data, tmp_path, capsys, monkeypatch,
                                                busy_machine):
    seen = []
    import model.train as train_module

    real = train_module.train

    def spy(*args, **kwargs):
        seen.append(torch.get_num_threads())
        return real(*args, **kwargs)

    monkeypatch.setattr(train_module, "train", spy)
    run = tmp_path / "run"
    assert model_main(["train", "--data", str(data), "--ops", "l0", *TINY_TRAIN,
                       "--out", str(run), "--quiet"]) == 0
    err = capsys.readouterr().err.splitlines()
    assert err[0].startswith("threads: 1 (load 1.9 on 2 cores: 1, not 2"), err
    assert err[1].startswith("warning: the machine is busy (load 1.9 on 2 cores)")
    assert seen == [1] and torch.get_num_threads() == 2  # used, then restored
    assert model_main(["eval", "--ckpt", str(run), "--data", str(data), "--threads", "2"]) == 0
    err = capsys.readouterr().err.splitlines()
    assert err[0] == "threads: 2 (--threads 2; 2 cores, load 1.9)"


def test_datagen_build_says_its_workers_and_threads_first(tmp_path, capsys, busy_machine):
    import cv2
    import numpy as np

    from datagen.cli import main as datagen_main

    imgs = tmp_path / "imgs"
    imgs.mkdir()
    rng = np.random.default_rng(0)
    for i in range(3):
        cv2.imwrite(str(imgs / f"{i}.png"), rng.integers(0, 256, (40, 40, 3), dtype=np.uint8))
    assert datagen_main(["build", "--images", str(imgs), "--ops", "l0", "--size", "32",
                         "--max-crops", "1", "--per-image", "1", "--workers", "1", "--no-single",
                         "--out", str(tmp_path / "d.h5"), "--quiet"]) == 0
    err = capsys.readouterr().err.splitlines()
    assert err[0].startswith("workers: 1 × 1 thread (load 1.9 on 2 cores"), err
    assert err[1].startswith("warning: the machine is busy")


# ------------------------------------------------------------------ 2. progress outside a terminal
def _images(folder, n=3, side=40):
    import cv2
    import numpy as np

    folder.mkdir(exist_ok=True)
    rng = np.random.default_rng(0)
    for i in range(n):
        small = rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)
        cv2.imwrite(str(folder / f"{i}.png"),
                    cv2.resize(small, (side, side), interpolation=cv2.INTER_CUBIC))
    return folder


def _run(args, tmp_path, **env):
    import subprocess
    import sys

    return subprocess.run([sys.executable, *args], cwd=tmp_path, capture_output=True, text=True,
                          env={**os.environ, "OMP_NUM_THREADS": "1", **env}, timeout=600)


def test_progress_lines_count_rate_and_time_left():
    import io

    from datagen.progress import Progress

    now = [100.0]
    out = io.StringIO()
    p = Progress(3000, desc="train decouple", noun="iteration", initial=500, file=out,
                 every=30, clock=lambda: now[0])
    for _ in range(100):
        now[0] += 2.0
        p.update(1)
        p.set_postfix(loss="12.5")
    p.close()
    lines = out.getvalue().splitlines()
    assert lines[0] == ("train decouple: 2500 iterations to go (500 of 3000 done before); a line "
                        "every 30 s (DECOUPLE_PROGRESS_S to change)")
    assert lines[1] == ("train decouple: 515/3000 iterations (17 %), 2 s/iteration, "
                        "1 h 22 min left; loss 12.5")
    assert len(lines) == 1 + 6 + 1 and lines[-1] == "train decouple: 600/3000 iterations after 3 min 20 s"
    out = io.StringIO()
    p = Progress(10, desc="build", noun="pair", file=out, every=None)
    p.update(10)
    p.close()
    assert out.getvalue() == ""  # lines off


def test_progress_interval_comes_from_the_environment():
    from datagen.progress import DEFAULT_S, interval_s

    assert interval_s({}) == DEFAULT_S
    assert interval_s({"DECOUPLE_PROGRESS_S": "2.5"}) == 2.5
    assert interval_s({"DECOUPLE_PROGRESS_S": "off"}) is None
    assert interval_s({"DECOUPLE_PROGRESS_S": "0"}) is None
    for bad in ("soon", "-1", "inf", "nan"):
        with pytest.raises(ValueError, match="DECOUPLE_PROGRESS_S must be the seconds"):
            interval_s({"DECOUPLE_PROGRESS_S": bad})


def test_build_and_train_report_progress_into_a_log(tmp_path):
    """stdout and stderr are pipes here (as under nohup or tee): progress lines, no bar."""
    import re

    imgs = _images(tmp_path / "imgs")
    r = _run(["-m", "datagen", "build", "--images", str(imgs), "--ops", "l0", "--size", "32",
              "--max-crops", "2", "--per-image", "2", "--workers", "1",
              "--out", str(tmp_path / "d.h5")], tmp_path, DECOUPLE_PROGRESS_S="0.001")
    assert r.returncode == 0, r.stderr[-2000:]
    err = [ln for ln in r.stderr.splitlines() if not ln.startswith("warning: ")]  # busy or not
    assert err[0].startswith("workers: 1 × 1 thread (OMP_NUM_THREADS=1;"), err
    assert re.match(r"build: \d+ pairs to go; a line every 0 s", err[1]), err
    assert [ln for ln in err if re.fullmatch(
        r"build: \d+/\d+ pairs \(\d+ %\), [\d.]+ (pairs/s|s/pair), .* left", ln)], err
    assert "\r" not in r.stderr
    r = _run(["-m", "model", "train", "--data", str(tmp_path / "d.h5"), "--ops", "l0",
              *TINY_TRAIN, "--out", str(tmp_path / "run")], tmp_path, DECOUPLE_PROGRESS_S="0.001")
    assert r.returncode == 0, r.stderr[-2000:]
    err = [ln for ln in r.stderr.splitlines() if not ln.startswith("warning: ")]
    assert err[0].startswith("threads: 1 (OMP_NUM_THREADS=1;"), err
    assert err[1] == "train decouple: 2 iterations to go; a line every 0 s (DECOUPLE_PROGRESS_S to change)"
    assert re.fullmatch(r"train decouple: 2/2 iterations \(100 %\), .* left; loss [\d.]+", err[3]), err
    assert "\r" not in r.stderr
    r = _run(["-m", "model", "train", "--data", str(tmp_path / "d.h5"), "--ops", "l0",
              *TINY_TRAIN, "--out", str(tmp_path / "run2")], tmp_path, DECOUPLE_PROGRESS_S="x")
    assert r.returncode == 2 and "error: DECOUPLE_PROGRESS_S must be" in r.stderr


def test_verify_prints_failures_and_a_summary_unless_verbose(data, capsys):
    from datagen.cli import main as datagen_main

    assert datagen_main(["verify", str(data), "--samples", "1"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 1 and out[0].startswith(f"{data}: all checks passed (")
    assert out[0].endswith("; --verbose lists every check")
    assert datagen_main(["verify", str(data), "--samples", "1", "--verbose"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert len([ln for ln in out if ln.startswith("PASS  ")]) > 10


# ------------------------------------------------------------------ 6. unfinished models
def test_an_unfinished_run_is_named_by_load_eval_and_apply(data, tmp_path, capsys):
    import warnings

    import cv2
    import numpy as np

    import model
    from model import UnfinishedWarning

    run, done = tmp_path / "run", tmp_path / "done"
    args = ["train", "--data", str(data), "--ops", "l0", *TINY_TRAIN, "--quiet", "--threads", "1"]
    assert model_main([*args, "--out", str(run), "--stop-at", "1"]) == 0  # as a run still training
    assert model_main([*args, "--out", str(done)]) == 0
    capsys.readouterr()
    with pytest.warns(UnfinishedWarning, match=r"last\.pt is from iteration 1 of 2: its training "
                                                r"is unfinished"):
        m = model.load(run)
    assert (m.iteration, m.iterations, m.finished) == (1, 2, False)
    assert m.trained_text() == "iteration 1 of 2 (unfinished)"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        finished = model.load(done)
    assert finished.finished and finished.trained_text() == "iteration 2 of 2"

    assert model_main(["eval", "--ckpt", str(run), "--data", str(data), "--threads", "1"]) == 0
    out, err = capsys.readouterr()
    assert out.splitlines()[0] == f"checkpoint {run}: decouple on l0, iteration 1 of 2 (unfinished)"
    assert f"warning: {run / 'last.pt'} is from iteration 1 of 2" in err
    assert model_main(["eval", "--ckpt", str(done), "--data", str(data), "--threads", "1"]) == 0
    out, err = capsys.readouterr()
    assert out.splitlines()[0] == f"checkpoint {done}: decouple on l0, iteration 2 of 2"
    assert "unfinished" not in err

    src = tmp_path / "in.png"
    cv2.imwrite(str(src), np.full((8, 8, 3), 128, np.uint8))
    assert model_main(["apply", "--ckpt", str(run), "--op", "l0", "--gamma", "0.05",
                       "--threads", "1", str(src), str(tmp_path / "out.png")]) == 0
    err = capsys.readouterr().err
    assert [ln for ln in err.splitlines() if "unfinished" in ln][0].startswith(
        f"warning: {run / 'last.pt'} is from iteration 1 of 2")


# ------------------------------------------------------------------ 8. generic package names
@pytest.mark.parametrize("own,code,shadowed", [
    ("operators.py", "import datagen", "operators"),
    ("model.py", "import sys; sys.path.append({repo!r}); import benchmarks", "model"),
    ("datagen.py", "import model", "datagen"),
])
def test_a_users_own_module_that_shadows_a_package_is_named(tmp_path, own, code, shadowed):
    """A researcher's model.py (operators.py, datagen.py) in the working folder: the import
    error names that file, instead of an AttributeError or "'model' is not a package" later."""
    from pathlib import Path

    repo = str(Path(__file__).resolve().parents[1])
    (tmp_path / own).write_text("x = 1\n")
    r = _run(["-c", code.format(repo=repo)], tmp_path)
    assert r.returncode != 0
    last = r.stderr.strip().splitlines()[-1]
    assert last.startswith("ImportError") and str(tmp_path / own) in last, r.stderr[-1500:]
    if shadowed != "datagen":  # datagen itself: Python's own message names the file
        assert f"not the {shadowed} package of decouple-ops" in last


def test_require_accepts_the_packages_and_names_a_shadow(monkeypatch):
    import sys
    import types

    from datagen import require

    for name, attr in (("operators", "resolve"), ("datagen", "code_version"), ("model", "load")):
        require(name, attr)
    fake = types.ModuleType("model")
    fake.__file__ = "/home/me/experiments/model.py"
    monkeypatch.setitem(sys.modules, "model", fake)
    with pytest.raises(ImportError, match="`import model` finds /home/me/experiments/model.py"):
        require("model", "load")
