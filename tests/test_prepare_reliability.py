"""``python -m benchmarks.prepare`` as a hostile user and a failing machine treat it (issue 26
items 11 and 13): stopped by SIGINT or SIGTERM it stops the trainings it started and says how to
go on; a second one on the same cache is refused with one line naming the first.

The trainings are a fake command (a few lines of Python that lock their run folder as
``python -m model train`` does, write their pid, sleep, and mark the run done), so each test
takes seconds; everything else (the run list, the job loop, the signals, the lock) is the real
``benchmarks.prepare``.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

#: a training: locks its run folder (non-blocking, failing when held, as model train does),
#: writes its pid, sleeps $FAKE_SECONDS and marks the run done
FAKE_TRAIN = r"""
import fcntl, os, pathlib, sys, time
d = pathlib.Path(sys.argv[1])
d.mkdir(parents=True, exist_ok=True)
fh = open(d / ".lock", "a+")
fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
(d / "pid").write_text(str(os.getpid()))
time.sleep(float(sys.argv[2]))
(d / "done").write_text("")
"""

#: ``benchmarks.prepare``'s main with the dataset, the done test and the training command
#: replaced by the fake (nothing else)
DRIVER = r"""
import os, sys
import benchmarks._experiments as E
from benchmarks import prepare

def data(self, progress=False):
    path = self.root / "data.h5"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch()
    return path

E.Experiment.data = data
E.Experiment.is_done = lambda self, run: (self.run_dir(run) / "done").exists()
E.Experiment.train_command = lambda self, run, quiet=True, threads=None: [
    sys.executable, "-c", os.environ["FAKE_TRAIN"], str(self.run_dir(run)),
    os.environ["FAKE_SECONDS"]]
sys.exit(prepare.main(sys.argv[1:]))
"""


def _start(cache: Path, seconds: float, *extra: str) -> subprocess.Popen:
    env = {**os.environ, "FAKE_TRAIN": FAKE_TRAIN, "FAKE_SECONDS": str(seconds),
           "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    args = ["--scale", "smoke", "--cache", str(cache), "--tables", "table1", "--ops", "l0",
            "--jobs", "2", *extra]
    return subprocess.Popen([sys.executable, "-c", DRIVER, *args], cwd=REPO, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _pids(cache: Path) -> list[int]:
    return [int(p.read_text()) for p in (cache / "smoke" / "runs").glob("*/pid")
            if p.read_text()]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def _wait_for_trainings(cache: Path, proc: subprocess.Popen, n: int = 2) -> list[int]:
    deadline = time.monotonic() + 60
    while len(_pids(cache)) < n:
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "the trainings did not start"
        time.sleep(0.1)
    return _pids(cache)


def _cleanup(cache: Path, *procs: subprocess.Popen) -> None:
    """End what a failing test left running: the drivers it started and their trainings."""
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    for pid in _pids(cache) if (cache / "smoke" / "runs").is_dir() else []:
        if _alive(pid):
            os.kill(pid, signal.SIGKILL)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_stopped_prepare_stops_its_trainings_and_resumes(tmp_path, sig):
    cache = tmp_path / "cache"
    first = _start(cache, 120)
    second = None
    try:
        pids = _wait_for_trainings(cache, first)
        first.send_signal(sig)
        _, err = first.communicate(timeout=60)
        assert first.returncode not in (0, None), err
        assert "Traceback" not in err, err
        last = err.strip().splitlines()[-1]
        assert last.startswith("error: ") and "again" in last and "resume" in last, err
        assert not [p for p in pids if _alive(p)], "trainings left running"
        # restarted, it finishes every run (none counted failed for a lock an orphan holds)
        second = _start(cache, 0)
        out, err = second.communicate(timeout=120)
        assert second.returncode == 0, err
        assert "failed: " not in err and len(list((cache / "smoke" / "runs").glob("*/done"))) == 7
    finally:
        _cleanup(cache, first, *(p for p in [second] if p is not None))


def test_prepare_that_fails_stops_the_trainings_it_started(tmp_path, monkeypatch):
    """An exception in the job loop (here: the second training cannot be started) ends the
    first training too, instead of leaving it running with its lock."""
    from benchmarks._experiments import Experiment, Run

    exp = Experiment("smoke", tmp_path)
    runs = [Run("decouple", "l0"), Run("concat", "l0")]

    def command(run, quiet=True, threads=None):
        if run == runs[1]:  # once the first one runs
            deadline = time.monotonic() + 30
            while not (exp.run_dir(runs[0]) / "pid").is_file() and time.monotonic() < deadline:
                time.sleep(0.05)
            raise RuntimeError("cannot start")
        return [sys.executable, "-c", FAKE_TRAIN, str(exp.run_dir(run)), "120"]

    monkeypatch.setattr(exp, "data", lambda progress=False: tmp_path / "data.h5")
    monkeypatch.setattr(exp, "is_done", lambda run: False)
    monkeypatch.setattr(exp, "train_command", command)
    started = time.monotonic()
    with pytest.raises(RuntimeError, match="cannot start"):
        exp.prepare(runs, jobs=2, progress=False)
    assert time.monotonic() - started < 30  # SIGTERM ended it, no grace period needed
    pid = int((exp.run_dir(runs[0]) / "pid").read_text())
    try:
        assert not _alive(pid), "training left running"
    finally:
        if _alive(pid):
            os.kill(pid, signal.SIGKILL)


def test_a_training_stopped_from_outside_is_stopped_not_failed(tmp_path, monkeypatch):
    """A user who stops one training (``kill`` of its pid: it checkpoints and exits 128 + the
    signal's number, or dies of the signal before its handler was set) has not seen it fail:
    ``prepare`` lists it as stopped, does not count it done, and trains the other runs; a
    training that fails (exit 1) is still failed and one that ends well is neither."""
    from benchmarks._experiments import Experiment, Run, stopped_by_signal

    exits = {"decouple": "sys.exit(143)", "concat": "os.kill(os.getpid(), signal.SIGTERM)",
             "single": "sys.exit(130)", "hdrnet": "sys.exit(1)", "realtime": "sys.exit(0)",
             "dni": "os.kill(os.getpid(), signal.SIGKILL)"}
    runs = [Run(arch, "l0") for arch in exits]
    exp = Experiment("smoke", tmp_path)

    def command(run, quiet=True, threads=None):
        return [sys.executable, "-c", "import os, signal, sys; " + exits[run.arch]]

    monkeypatch.setattr(exp, "data", lambda progress=False: tmp_path / "data.h5")
    monkeypatch.setattr(exp, "is_done", lambda run: False)
    monkeypatch.setattr(exp, "train_command", command)
    failed = exp.prepare(runs, jobs=2, progress=False)
    assert sorted(r.arch for r in failed.stopped) == ["concat", "decouple", "single"]
    assert sorted(r.arch for r in failed) == ["dni", "hdrnet"]  # SIGKILL: no checkpoint
    assert [stopped_by_signal(c) for c in (0, 1, 2, 130, 143, 137, -2, -15, -9, None)] == \
        [False, False, False, True, True, False, True, True, False, False]


def test_second_prepare_on_one_cache_is_refused_with_one_line(tmp_path):
    """Two ``prepare`` on one cache and scale: the second stops at once, exit 2, one line naming
    the first (its pid), and starts nothing; the first is not disturbed."""
    cache = tmp_path / "cache"
    first = _start(cache, 120)
    second = None
    try:
        pids = _wait_for_trainings(cache, first)
        second = _start(cache, 0)
        _, err = second.communicate(timeout=60)
        assert second.returncode == 2, err
        lines = err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: "), err
        assert f"pid {first.pid}" in lines[0] and str(cache / "smoke") in lines[0], err
        assert "Traceback" not in err
        assert first.poll() is None and all(_alive(p) for p in pids)
        assert not list((cache / "smoke" / "runs").glob("*/done"))  # it trained nothing
    finally:
        _cleanup(cache, first, *(p for p in [second] if p is not None))


def test_dry_run_times_steps_with_the_jobs_threads(tmp_path):
    """``--dry-run --jobs 2`` measures with one thread, as each of the two trainings runs, not
    with one per core (its estimate was many times off on a busy machine)."""
    from benchmarks._experiments import job_threads

    assert job_threads(2) == 1 and job_threads(1) is None and job_threads(2, 3) == 3
    run = subprocess.run([sys.executable, "-m", "benchmarks.prepare", "--dry-run", "--scale",
                          "smoke", "--cache", str(tmp_path), "--tables", "table1", "--ops", "l0",
                          "--jobs", "2", "--estimate-steps", "1"],
                         cwd=REPO, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    assert "with 1 thread(s)" in run.stdout, run.stdout
    assert "with 2 at a time" in run.stdout.splitlines()[-1], run.stdout
    assert not (tmp_path / "smoke" / "data.h5").exists()  # nothing built


def test_cache_that_is_a_file_is_one_line(tmp_path, capsys):
    """A ``--cache`` that cannot hold folders (a file) is an error line, exit 2, no traceback."""
    from benchmarks import prepare

    cache = tmp_path / "cache"
    cache.write_text("mine")
    assert prepare.main(["--scale", "smoke", "--cache", str(cache), "--tables", "table1",
                         "--ops", "l0"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and str(cache) in err[0], err
    assert cache.read_text() == "mine"


def test_prepare_uses_the_cache_that_pytest_benchmarks_and_run_use(tmp_path, monkeypatch,
                                                                    capsys):
    """``$DECOUPLE_CACHE`` sets prepare's default cache as it sets pytest benchmarks' and
    ``python -m benchmarks run``'s (a bug: prepare trained into ~/.cache/decouple whatever it
    said, so the benchmark run that followed found nothing and trained everything again)."""
    from benchmarks import prepare
    from benchmarks._report import default_cache

    monkeypatch.setenv("DECOUPLE_CACHE", str(tmp_path / "mine"))
    assert default_cache() == tmp_path / "mine"
    assert prepare.main(["--scale", "smoke", "--tables", "table1", "--ops", "l0", "--list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines and all(str(tmp_path / "mine" / "smoke" / "runs") in line
                         for line in lines if line.startswith("to do"))
    assert any(line.startswith("to do") for line in lines)


def test_dry_run_with_one_job_times_with_the_threads_that_training_chooses(tmp_path,
                                                                          monkeypatch):
    """``--dry-run --jobs 1`` (no ``--threads``) timed its steps with torch's default, one
    thread per core, while the training it estimates (``python -m model train``) lowers that
    to the cores the load leaves free: on a busy machine the estimate was many times too slow
    and the dry run minutes long. It times with the training's choice, says the load it measured
    at, and leaves this process's threads as they were."""
    import io

    import torch

    from benchmarks import prepare
    from benchmarks._experiments import Experiment, table1_runs
    from datagen import threads

    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr(threads, "cpu_cores", lambda: 4)
    monkeypatch.setattr(threads, "load_average", lambda: 2.6)  # 3 cores busy: 1 free
    before = torch.get_num_threads()
    torch.set_num_threads(4)  # torch's default on 4 cores
    out = io.StringIO()
    try:
        prepare.dry_run(Experiment("smoke", tmp_path), table1_runs(["l0"], "smoke"), steps=1,
                        jobs=1, out=out)
        assert torch.get_num_threads() == 4
    finally:
        torch.set_num_threads(before)
    text = out.getvalue()
    assert "with 1 thread(s) per training (load 2.6 on 4 cores: 1, not 4" in text, text
    assert "measured at load 2.6 on 4 cores: busy" in text.splitlines()[-1], text
