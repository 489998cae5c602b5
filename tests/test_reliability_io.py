"""What is read and what is locked (issue 26): lock files never follow links; one image reader
(bytes, then decode) that reads regular files only, never blocks and caps what it reads; the
auxiliary images of a build read once; datasets that would make a reader read other files, or
that do not hold together, refused on open; a Dask build without workers stops and says so.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from datagen.lock import LockPathError, OutputLock, lock_path

REPO = Path(__file__).resolve().parents[1]


# ------------------------------------------------------------------ 2. lock files follow no links
def _victim(tmp_path: Path) -> Path:
    victim = tmp_path / "precious.txt"
    victim.write_text("the user's data\n")
    return victim


def test_a_symlink_at_a_builds_lock_path_is_refused_and_its_target_kept(tmp_path):
    out = tmp_path / "data.h5"
    victim = _victim(tmp_path)
    os.symlink(victim, lock_path(out))
    with pytest.raises(LockPathError, match="symbolic link"):
        OutputLock(out, "test").acquire()
    assert victim.read_text() == "the user's data\n"
    assert os.path.islink(lock_path(out))  # left as it was


def test_a_symlink_at_a_training_lock_path_is_refused_and_its_target_kept(tmp_path):
    from model.train import RunLock

    run = tmp_path / "run"
    run.mkdir()
    victim = _victim(tmp_path)
    os.symlink(victim, run / ".lock")
    with pytest.raises(ValueError, match="symbolic link"):
        with RunLock(run):
            pass
    assert victim.read_text() == "the user's data\n"


@pytest.mark.parametrize("what", ["fifo", "hardlink", "dangling"])
def test_other_things_at_a_lock_path_are_refused(tmp_path, what):
    out = tmp_path / "data.h5"
    path = lock_path(out)
    victim = _victim(tmp_path)
    if what == "fifo":
        os.mkfifo(path)
    elif what == "hardlink":
        os.link(victim, path)
    else:
        os.symlink(tmp_path / "nowhere", path)
    with pytest.raises(LockPathError, match={"fifo": "a FIFO", "hardlink": "2 hard links",
                                             "dangling": "symbolic link"}[what]):
        OutputLock(out, "test").acquire()
    assert victim.read_text() == "the user's data\n"
    assert not (tmp_path / "nowhere").exists()


def test_a_build_with_a_symlinked_lock_is_one_line_exit_2(tmp_path, capsys):
    from datagen.cli import main

    out = tmp_path / "data.h5"
    victim = _victim(tmp_path)
    os.symlink(victim, lock_path(out))
    assert main(["build", "--ops", "l0", "--out", str(out), "--quiet", "--workers", "1",
                 "--max-crops", "1", "--size", "32"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "symbolic link" in err and "Traceback" not in err
    assert victim.read_text() == "the user's data\n"


def test_one_lock_for_datagen_and_model(tmp_path):
    """RunLock is datagen.lock's FileLock: same holder record, same refusal, file removed."""
    from model.train import RunLock, RunLockedError

    run = tmp_path / "run"
    with RunLock(run):
        from datagen.lock import FileLock, LockedError, read_holder

        holder = read_holder(run / ".lock")
        assert holder["pid"] == os.getpid() and "command" in holder
        with pytest.raises(RunLockedError, match=f"pid {os.getpid()}"):
            with RunLock(run):
                pass
        with pytest.raises(LockedError, match=f"pid {os.getpid()}"):
            with FileLock(run / ".lock", "other"):
                pass
    assert not (run / ".lock").exists()
