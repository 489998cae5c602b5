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
