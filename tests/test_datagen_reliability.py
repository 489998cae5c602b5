"""datagen under hostile conditions (issue 13): two writers, odd file names, truncated images, a full
disk, damaged files, killed builds, unwritable outputs; and the content of a build checked
independently (issue 16), with a digest that does not depend on where the images are (issue 15).

Concurrency is tested with real processes, every wait bounded by a timeout. A build is paused
deterministically (no race against the clock) by :data:`PAUSED_BUILD`, which runs the ordinary
CLI with ``Journal.flush`` wrapped to stop after N shards until a flag file is removed.
"""
from __future__ import annotations

import errno
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import h5py
import numpy as np
import pytest

import operators
from datagen import build as build_mod
from datagen.build import BuildError, build
from datagen.cli import main
from datagen.inspection import verify
from datagen.lock import OutputLock
from datagen.plan import Options, make_plan
from datagen.sources import list_images

REPO = Path(__file__).resolve().parents[1]
TIMEOUT = 180  # seconds any one subprocess may take on a loaded 2-core runner

#: Runs ``python -m datagen ARGS`` but stops after the journal has AFTER shards, writes FLAG (its
#: pid) and waits until FLAG is removed: a deterministic point at which to kill or race it.
PAUSED_BUILD = r"""
import os, sys, time
from pathlib import Path

def main():
    import datagen.build as b
    from datagen.cli import main as cli
    flag, after = Path(sys.argv[1]), int(sys.argv[2])
    real = b.Journal.flush
    state = {"paused": False}

    def flush(self):
        real(self)
        if not state["paused"] and len(self.shards()) >= after:
            state["paused"] = True
            flag.write_text(str(os.getpid()))
            while flag.exists():
                time.sleep(0.02)

    b.Journal.flush = flush
    sys.exit(cli(sys.argv[3:]))

if __name__ == "__main__":  # spawned pool workers import this file too
    main()
"""


def env(**extra) -> dict:
    return {**os.environ, "PYTHONPATH": str(REPO), "DATAGEN_FLUSH_PAIRS": "2", **extra}


def start_paused(tmp_path: Path, argv: list[str], after: int = 2, **extra_env):
    """(process, flag): a real build paused after ``after`` journal shards (bounded wait)."""
    script = tmp_path / "paused_build.py"
    script.write_text(PAUSED_BUILD)
    flag = tmp_path / f"paused-{time.monotonic_ns()}"
    proc = subprocess.Popen([sys.executable, str(script), str(flag), str(after), *argv],
                            env=env(**extra_env), cwd=tmp_path, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    deadline = time.monotonic() + TIMEOUT
    while not flag.exists():
        if proc.poll() is not None:
            pytest.fail(f"the build ended before pausing: {proc.stderr.read().decode()[-2000:]}")
        if time.monotonic() > deadline:
            proc.kill()
            pytest.fail("the build did not reach its pause point in time")
        time.sleep(0.05)
    return proc, flag


def run_cli(args: list[str], tmp_path: Path, timeout: float = TIMEOUT, **kw):
    return subprocess.run([sys.executable, "-m", "datagen", *args], env=env(), cwd=tmp_path,
                          capture_output=True, timeout=timeout, **kw)


def textured(rng, h=72, w=90) -> np.ndarray:
    base = rng.integers(0, 256, (12, 15, 3), dtype=np.uint8)
    img = cv2.resize(base, (w, h), interpolation=cv2.INTER_CUBIC)
    return np.clip(img.astype(int) + rng.integers(-20, 21, img.shape), 0, 255).astype(np.uint8)


@pytest.fixture(scope="module")
def images(tmp_path_factory) -> Path:
    """Four small textured PNGs."""
    d = tmp_path_factory.mktemp("rel_images")
    rng = np.random.default_rng(11)
    for i in range(4):
        cv2.imwrite(str(d / f"im{i}.png"), textured(rng))
    return d


def tiny_args(images: Path, out: Path, *extra: str) -> list[str]:
    return ["build", "--ops", "l0", "--images", str(images), "--out", str(out), "--size", "32",
            "--per-image", "2", "--max-crops", "2", "--test-fraction", "0.25", "--seed", "1",
            "--no-single", "--quiet", "--workers", "1", *extra]


def tiny_options(images: Path, **kw) -> Options:
    files = tuple(str(p) for p in list_images(images))
    base = dict(ops=("l0",), images=files, images_label="tiny", size=32, per_image=2,
                test_fraction=0.25, seed=1, max_crops=2, scales=(1.0,), single=False)
    return Options(**{**base, **kw})


def arrays(path) -> dict[str, np.ndarray]:
    with h5py.File(path, "r") as f:
        out = {"sources": f["sources/pixels"][:]}
        for n in f["ops"]:
            for k in ("output", "gamma", "source", "split"):
                out[f"{n}/{k}"] = f["ops"][n][k][:]
    return out


def assert_same(a, b):
    assert a.keys() == b.keys()
    for k in a:
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)


@pytest.fixture(scope="module")
def reference(images, tmp_path_factory) -> Path:
    """The tiny build, uninterrupted, in this process."""
    out = tmp_path_factory.mktemp("rel_ref") / "ref.h5"
    assert main(tiny_args(images, out)) == 0
    return out


def no_temporaries(folder: Path) -> bool:
    return not [p for p in folder.rglob("*") if ".tmp" in p.name]


# ------------------------------------------------------------------ 1. one writer per output
def test_a_second_build_on_the_same_output_is_refused_and_named(images, reference, tmp_path):
    out = tmp_path / "shared.h5"
    first, flag = start_paused(tmp_path, tiny_args(images, out))
    try:
        for extra in ((), ("--resume",), ("--force",)):
            r = run_cli(tiny_args(images, out, *extra), tmp_path)
            err = r.stderr.decode()
            assert r.returncode == 2, err
            assert "another build is writing" in err and f"pid {first.pid}" in err, err
            assert "interrupted" not in err
        # readers are told a build is running, not that one was interrupted
        r = run_cli(["info", str(out)], tmp_path)
        err = r.stderr.decode()
        assert r.returncode == 2 and "a build is writing it now" in err and str(first.pid) in err
        assert "--resume" not in err
    finally:
        flag.unlink(missing_ok=True)
        rc = first.wait(timeout=TIMEOUT)
    assert rc == 0, first.stderr.read().decode()
    assert not (tmp_path / "shared.h5.lock").exists() and not (tmp_path / "shared.h5.partial").exists()
    assert_same(arrays(reference), arrays(out))  # the refused builds changed nothing


def test_the_lock_is_released_by_a_killed_holder(images, tmp_path):
    out = tmp_path / "k.h5"
    proc, flag = start_paused(tmp_path, tiny_args(images, out))
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=TIMEOUT)
    flag.unlink()
    r = run_cli(["info", str(out)], tmp_path)
    assert "interrupted build" in r.stderr.decode() and "--resume" in r.stderr.decode()
    with OutputLock(out, "test"):  # the kernel released the dead holder's lock
        pass


def test_lock_refusal_in_process_names_the_holder(images, tmp_path):
    out = tmp_path / "held.h5"
    plan = make_plan(tiny_options(images))
    with OutputLock(out, "the other build"):
        with pytest.raises(BuildError, match=f"pid {os.getpid()} .*the other build"):
            build(plan, out, workers=1, progress=False)
    assert not (tmp_path / "held.h5.partial").exists()
    build(plan, out, workers=1, progress=False)
    assert not (tmp_path / "held.h5.lock").exists()


def test_assembly_checks_the_shards_it_reads(images, reference, tmp_path, monkeypatch):
    """A shard that vanished before assembly stops it: no file with zeros, and --resume heals."""
    plan = make_plan(tiny_options(images))
    real = build_mod._assemble

    def lose_a_shard(plan, journal, out, **kw):
        journal.shards()[1].unlink()
        return real(plan, journal, out, **kw)

    monkeypatch.setattr(build_mod, "FLUSH_EVERY_PAIRS", 2)
    monkeypatch.setattr(build_mod, "_assemble", lose_a_shard)
    out = tmp_path / "lost.h5"
    with pytest.raises(BuildError, match="lacks .* pairs.*--resume"):
        build(plan, out, workers=1, progress=False)
    assert not out.exists() and no_temporaries(tmp_path)
    monkeypatch.setattr(build_mod, "_assemble", real)
    assert build(plan, out, workers=1, progress=False, resume=True).resumed_pairs > 0
    assert_same(arrays(reference), arrays(out))


def test_a_damaged_shard_is_set_aside_and_recomputed(images, reference, tmp_path, monkeypatch):
    plan = make_plan(tiny_options(images))
    out = tmp_path / "d.h5"
    partial = tmp_path / "d.h5.partial"
    monkeypatch.setattr(build_mod, "FLUSH_EVERY_PAIRS", 2)
    real, calls = build_mod.run_task, []

    def fail_on_fourth(*args):
        calls.append(1)
        if len(calls) == 4:
            raise RuntimeError("stop")
        return real(*args)

    monkeypatch.setattr(build_mod, "run_task", fail_on_fourth)
    with pytest.raises(RuntimeError):
        build(plan, out, workers=1, progress=False)
    shard = sorted(partial.glob("*.npz"))[0]
    shard.write_bytes(shard.read_bytes()[:100])  # truncated, as by a failing disk
    monkeypatch.setattr(build_mod, "run_task", real)
    result = build(plan, out, workers=1, progress=False, resume=True)
    assert any("damaged" in n for n in result.notes)
    assert_same(arrays(reference), arrays(out))


# ------------------------------------------------------------------ 3, 5a. odd and damaged images
def test_a_file_name_that_is_not_utf8_is_read_not_a_crash(tmp_path):
    d = tmp_path / "odd"
    d.mkdir()
    rng = np.random.default_rng(3)
    for name in (b"plain.png", b"caf\xe9-\xff.png"):  # latin-1 bytes: not valid UTF-8
        ok, buf = cv2.imencode(".png", textured(rng))
        Path(os.fsdecode(os.fsencode(d) + b"/" + name)).write_bytes(buf.tobytes())
    Path(os.fsdecode(os.fsencode(d) + b"/\xfe-junk.png")).write_bytes(b"not an image")
    out = tmp_path / "odd.h5"
    # a subprocess: OpenCV's imread crashed the interpreter on such names
    r = run_cli(tiny_args(d, out, "--test-fraction", "0"), tmp_path)
    assert r.returncode == 0, r.stderr.decode(errors="replace")[-2000:]
    text = r.stdout.decode()
    assert "skipped 1 image(s)" in text and "\\xfe-junk.png" in text
    with h5py.File(out, "r") as f:
        names = [n.decode() for n in f["images/file"][:]]
        used = set(f["sources/image"][:])
    assert names == ["caf\\xe9-\\xff.png", "plain.png", "\\xfe-junk.png"]
    assert used == {0, 1}  # the odd name's pixels are used


def jpeg_bytes(rng) -> bytes:
    ok, buf = cv2.imencode(".jpg", textured(rng, 96, 96), [cv2.IMWRITE_JPEG_QUALITY, 95])
    return buf.tobytes()


@pytest.mark.parametrize("progressive", [False, True])
def test_a_truncated_jpeg_is_skipped_and_listed(tmp_path, progressive):
    from datagen.sources import jpeg_truncated, read_image

    rng = np.random.default_rng(4)
    ok, buf = cv2.imencode(".jpg", textured(rng, 96, 96),
                           [cv2.IMWRITE_JPEG_PROGRESSIVE, int(progressive)])
    data = buf.tobytes()
    for cut in (2, 1, 200, len(data) // 2):
        assert jpeg_truncated(data[:-cut])
        p = tmp_path / f"cut{cut}.jpg"
        p.write_bytes(data[:-cut])
        img, reason = read_image(p)
        assert img is None and "truncated" in reason
    assert not jpeg_truncated(data)
    (tmp_path / "whole.jpg").write_bytes(data + b"trailing bytes after EOI")  # still complete
    img, reason = read_image(tmp_path / "whole.jpg")
    assert reason == "" and img.shape == (96, 96, 3)
    np.testing.assert_array_equal(img, cv2.cvtColor(cv2.imdecode(buf, cv2.IMREAD_COLOR),
                                                    cv2.COLOR_BGR2RGB))
    with pytest.warns(UserWarning, match="truncated"):
        plan = make_plan(Options(ops=("l0",), images=(str(tmp_path / "whole.jpg"),
                                                      str(tmp_path / "cut200.jpg")),
                                 images_label="t", size=32, max_crops=2))
    assert plan.skipped == ["cut200.jpg: unreadable (truncated JPEG: the file ends before the "
                            "image data does)"]
    assert {c.image for c in plan.crops} == {0}


def test_a_symlink_loop_is_skipped_and_listed(images, tmp_path, capsys):
    d = tmp_path / "loopy"
    shutil.copytree(images, d)
    os.symlink("loop_b.png", d / "loop_a.png")
    os.symlink("loop_a.png", d / "loop_b.png")
    os.symlink("missing.png", d / "dangling.png")
    assert main(tiny_args(d, tmp_path / "l.h5")) == 0
    text = capsys.readouterr().out
    assert "skipped 3 image(s)" in text
    assert "loop_a.png: unreadable (symbolic link loop)" in text
    assert "dangling.png: unreadable (broken symbolic link)" in text
    with h5py.File(tmp_path / "l.h5", "r") as f:
        assert len(json.loads(f.attrs["skipped"])) == 3


# ------------------------------------------------------------------ 4. disk full while assembling
def test_too_little_space_is_found_before_assembly(images, reference, tmp_path, monkeypatch):
    plan = make_plan(tiny_options(images))
    monkeypatch.setattr(build_mod, "_free_bytes", lambda folder: 1000)
    out = tmp_path / "full.h5"
    with pytest.raises(BuildError, match=r"disk full.*needs about .* MiB.*--resume"):
        build(plan, out, workers=1, progress=False)
    assert not out.exists() and no_temporaries(tmp_path)
    assert list((tmp_path / "full.h5.partial").glob("*.npz"))
    monkeypatch.undo()
    assert build(plan, out, workers=1, progress=False, resume=True).computed == 0
    assert_same(arrays(reference), arrays(out))


def test_a_disk_that_fills_during_assembly_is_a_clear_error(images, reference, tmp_path,
                                                            monkeypatch):
    plan = make_plan(tiny_options(images))

    real_pwrite, written = os.pwrite, []

    def pwrite(fd, data, offset):  # a disk that is full after 20 kB
        written.append(len(data))
        if sum(written) > 20_000:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_pwrite(fd, data, offset)

    monkeypatch.setattr(build_mod.os, "pwrite", pwrite)
    out = tmp_path / "filling.h5"
    with pytest.raises(BuildError, match=r"disk full.*--resume"):
        build(plan, out, workers=1, progress=False)
    assert not out.exists() and no_temporaries(tmp_path)
    monkeypatch.undo()
    build(plan, out, workers=1, progress=False, resume=True)
    assert_same(arrays(reference), arrays(out))


def test_a_real_write_failure_in_hdf5_does_not_crash(images, reference, tmp_path):
    """A real process whose file-size limit lets the journal through but not the HDF5 file: HDF5's
    own driver segfaulted at exit after such a failure; now a message and exit status 2."""
    import resource

    # a limit that the journal's shards (raw uint8 outputs) fit under but the finished HDF5 file
    # (sources + outputs + metadata) does not
    cap = os.path.getsize(reference) - 1
    with h5py.File(reference, "r") as f:
        shard = sum(f[f"ops/{n}/output"].nbytes for n in f["ops"]) + 8192
    assert shard < cap, f"the test's premise fails: a shard ({shard} B) would not fit under {cap} B"

    def limit():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # EFBIG instead of a signal
        resource.setrlimit(resource.RLIMIT_FSIZE, (cap, cap))

    out = tmp_path / "limited.h5"
    r = run_cli(tiny_args(images, out), tmp_path, preexec_fn=limit)
    err = r.stderr.decode()
    assert r.returncode == 2, (r.returncode, err[-2000:])
    assert "writing" in err and "--resume" in err and "Traceback" not in err
    assert not out.exists() and no_temporaries(tmp_path)
    assert main(tiny_args(images, out, "--resume")) == 0
    assert_same(arrays(reference), arrays(out))


# ------------------------------------------------------------------ 6. verify reads every chunk
def flip(path: Path, offset: int, n: int = 4) -> None:
    with open(path, "r+b") as fh:
        fh.seek(offset)
        data = bytearray(fh.read(n))
        fh.seek(offset)
        fh.write(bytes(b ^ 0xFF for b in data))


def test_every_dataset_is_checksummed(reference):
    with h5py.File(reference, "r") as f:
        kinds = []
        f.visititems(lambda n, o: kinds.append((n, o.fletcher32)) if hasattr(o, "dtype") else None)
        assert len(kinds) == 7 + 5 * len(f["ops"]) and all(fl for _, fl in kinds), kinds
        assert f.attrs["format_version"] == 3


def test_verify_finds_a_flipped_byte_in_any_chunk(reference, tmp_path, capsys):
    bad = tmp_path / "bad.h5"
    shutil.copy(reference, bad)
    with h5py.File(bad, "r") as f:
        ds = f["ops/l0/output"]
        info = ds.id.get_chunk_info_by_coord((13, 0, 0, 0))
        gamma_at = f["ops/l0/gamma"].id.get_chunk_info(0).byte_offset
    flip(bad, info.byte_offset + info.size // 2)
    flip(bad, gamma_at + 3, 1)
    report, ok = verify(bad, samples=0)  # no recomputation: the checksums alone must find it
    assert not ok
    assert "FAIL  ops/l0/output: every chunk intact (checksums verified)  [rows 13 unreadable" in report
    assert "FAIL  ops/l0/gamma: every chunk intact" in report
    assert "damaged datasets: ops/l0/gamma, ops/l0/output" in report
    assert main(["verify", str(bad), "--samples", "0"]) == 1
    captured = capsys.readouterr()
    assert "Traceback" not in captured.out + captured.err
    report, ok = verify(reference, samples=0)
    assert ok, report


VERIFY_FUZZ = r"""
import json, sys, h5py, numpy as np
from datagen.inspection import verify
src, bad, offsets = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
data = open(src, "rb").read()

def content(path):
    with h5py.File(path, "r") as f:
        out = {k: repr(v) for k, v in sorted(f.attrs.items())}
        def visit(name, obj):
            if hasattr(obj, "dtype"):
                out[name] = obj[()].tobytes().hex()
            out[name + "@"] = repr(sorted((k, repr(v)) for k, v in obj.attrs.items()))
        f.visititems(visit)
    return out

clean = content(src)
results = []
for off in offsets:
    b = bytearray(data)
    b[off] ^= 0xFF
    open(bad, "wb").write(bytes(b))
    try:
        report, ok = verify(bad, samples=0)
    except ValueError:  # not even openable as HDF5: the CLI prints a message, exit status 2
        results.append([off, "unopenable"]); continue
    if ok:  # passing is only allowed when nothing that is read changed
        try:
            same = content(bad) == clean
        except Exception as exc:
            same = False
        results.append([off, "pass-same" if same else "pass-DIFFERENT"])
    else:
        results.append([off, "fail"])
print(json.dumps(results))
"""


def test_verify_never_passes_a_changed_file_and_never_raises(reference, tmp_path):
    """Flip one byte at 40 places spread over the file: verify either fails, or the flip touched
    nothing a reader sees. Run in a subprocess (a crash of the HDF5 library would show too)."""
    size = reference.stat().st_size
    offsets = sorted({int(v) for v in np.linspace(0, size - 1, 40)})
    script = tmp_path / "fuzz.py"
    script.write_text(VERIFY_FUZZ)
    r = subprocess.run([sys.executable, str(script), str(reference), str(tmp_path / "f.h5"),
                        json.dumps(offsets)], env=env(), capture_output=True, timeout=TIMEOUT)
    assert r.returncode == 0, r.stderr.decode()[-3000:]
    results = json.loads(r.stdout.decode().strip().splitlines()[-1])
    assert len(results) == len(offsets)
    assert not [o for o, k in results if k == "pass-DIFFERENT"], results
    assert sum(k == "fail" for _, k in results) >= len(offsets) // 2, results


def test_files_without_checksums_still_verify(reference, tmp_path):
    """A file made before checksums (format 1): verified as before, every chunk read, with a note."""
    old = tmp_path / "old.h5"
    with h5py.File(reference, "r") as src, h5py.File(old, "w") as dst:
        dst.attrs.update({k: v for k, v in src.attrs.items() if k != "attributes_sha256"})
        dst.attrs["format_version"] = 1

        def copy(name, obj):
            if hasattr(obj, "dtype"):
                kw = dict(chunks=obj.chunks, compression="gzip", shuffle=True) \
                    if obj.ndim == 4 else {}
                dst.create_dataset(name, data=obj[()], **kw)
            else:
                dst.require_group(name).attrs.update(dict(obj.attrs))
        src.visititems(copy)
    report, ok = verify(old, samples=1)
    assert ok, report
    assert "note: 12 dataset(s) have no checksum" in report
    assert "PASS  ops/l0/output: every chunk intact" in report
    assert "note: the attributes have no checksum" in report


# ------------------------------------------------------------------ 7. no orphaned workers
def children(pid: int) -> list[int]:
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state not in ("Z", "X")


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs Linux /proc")
def test_workers_exit_when_the_build_is_killed(images, tmp_path):
    out = tmp_path / "w.h5"
    proc, flag = start_paused(tmp_path, tiny_args(images, out, "--workers", "2"))
    kids = children(proc.pid)
    assert len(kids) >= 2, kids  # the two workers (and the resource tracker)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=TIMEOUT)
    flag.unlink()
    deadline = time.monotonic() + 30
    while [k for k in kids if alive(k)] and time.monotonic() < deadline:
        time.sleep(0.1)
    left = [k for k in kids if alive(k)]
    for k in left:  # do not leave them behind even when the test fails
        os.kill(k, signal.SIGKILL)
    assert not left, f"orphaned processes {left}"


# ------------------------------------------------------------------ 9. clear messages, checked first
def test_out_in_a_folder_that_cannot_be_written(images, tmp_path, monkeypatch, capsys):
    ro = tmp_path / "ro"
    ro.mkdir()
    import datagen.plan

    def no_planning(*a, **k):
        raise AssertionError("the plan was made before --out was checked")

    monkeypatch.setattr(datagen.plan, "make_plan", no_planning)
    if os.geteuid() != 0:
        ro.chmod(0o555)
    else:  # root writes anywhere: make the folder refuse as a read-only file system does
        real = build_mod.tempfile.TemporaryFile

        def refuse(*a, dir=None, **k):
            if Path(dir) == ro:
                raise OSError(errno.EROFS, "Read-only file system")
            return real(*a, dir=dir, **k)

        monkeypatch.setattr(build_mod.tempfile, "TemporaryFile", refuse)
    try:
        assert main(tiny_args(images, ro / "x.h5")) == 2
    finally:
        ro.chmod(0o755)
    err = capsys.readouterr().err
    assert f"cannot write in {ro}" in err and "Traceback" not in err
    assert list(ro.iterdir()) == []


def test_out_naming_a_folder_is_refused_first(images, tmp_path, monkeypatch, capsys):
    import datagen.plan

    monkeypatch.setattr(datagen.plan, "make_plan", lambda *a, **k: pytest.fail("computed"))
    folder = tmp_path / "a_folder"
    folder.mkdir()
    assert main(tiny_args(images, folder, "--force")) == 2
    assert "is a folder" in capsys.readouterr().err
    assert folder.is_dir() and list(folder.iterdir()) == []


def test_scheduler_without_dask_leaves_nothing_behind(images, tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "distributed", None)  # import fails as if not installed
    out = tmp_path / "s.h5"
    assert main(tiny_args(images, out, "--scheduler", "tcp://127.0.0.1:1")) == 2
    assert "not installed" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == []
    monkeypatch.undo()
    assert main(tiny_args(images, out)) == 0  # not called an interrupted build


def test_an_empty_journal_is_not_an_interrupted_build(images, tmp_path):
    out = tmp_path / "e.h5"
    (tmp_path / "e.h5.partial").mkdir()
    (tmp_path / "e.h5.partial" / "plan.json").write_text('{"digest": "x"}')
    assert main(tiny_args(images, out)) == 0


# ------------------------------------------------------------------ issue 15: portable digest
def test_the_digest_does_not_depend_on_where_the_images_are(images, tmp_path):
    digests = []
    for where in ("machine_a/photos", "elsewhere/deeper/copy"):
        d = tmp_path / where
        shutil.copytree(images, d)
        out = tmp_path / f"{where.split('/')[0]}.h5"
        assert main(tiny_args(d, out)) == 0
        with h5py.File(out, "r") as f:
            digests.append(f.attrs["digest"])
            assert [n.decode() for n in f["images/file"][:]] == [f"im{i}.png" for i in range(4)]
            assert str(tmp_path) not in f.attrs["options"]
            assert json.loads(f.attrs["options"])["images"] == [f"im{i}.png" for i in range(4)]
        assert_same(arrays(tmp_path / "machine_a.h5"), arrays(out))
    assert digests[0] == digests[1]
    # content still counts: other pixels, another digest
    other = tmp_path / "other"
    shutil.copytree(images, other)
    img = cv2.imread(str(other / "im0.png"))
    cv2.imwrite(str(other / "im0.png"), 255 - img)
    assert make_plan(tiny_options(other)).digest() != digests[0]
    renamed = tmp_path / "renamed"
    shutil.copytree(images, renamed)
    (renamed / "im3.png").rename(renamed / "im9.png")
    assert make_plan(tiny_options(renamed)).digest() != digests[0]


# ------------------------------------------------------------------ issue 16: content, independently
def test_every_stored_pair_and_crop_is_what_it_claims(tmp_path):
    """Every output equals to_uint8(operators.apply(...)) of its stored source crop at its stored
    γ, and every source crop equals the image resized (INTER_AREA) at its stored scale and cut
    at its stored box; both scales present; a flat image skipped."""
    d = tmp_path / "content"
    d.mkdir()
    rng = np.random.default_rng(21)
    for i in range(3):
        cv2.imwrite(str(d / f"p{i}.png"), textured(rng, 80, 100))
    cv2.imwrite(str(d / "flat.png"), np.full((80, 100, 3), 77, np.uint8))
    out = tmp_path / "content.h5"
    assert main(["build", "--ops", "l0,llf", "--images", str(d), "--out", str(out), "--size", "32",
                 "--per-image", "1", "--max-crops", "7", "--scales", "1,0.5", "--no-single",
                 "--test-fraction", "0.34", "--seed", "2", "--quiet", "--workers", "1"]) == 0
    with h5py.File(out, "r") as f:
        names = [n.decode() for n in f["images/file"][:]]
        pixels, image = f["sources/pixels"][:], f["sources/image"][:]
        box, scale = f["sources/box"][:], f["sources/scale"][:]
        assert json.loads(f.attrs["skipped"]) == ["flat.png: no crop with structure (flat image)"]
        assert names.index("flat.png") not in set(image)
        assert set(scale.tolist()) == {1.0, 0.5}
        for k in range(len(pixels)):
            bgr = cv2.imread(str(d / names[image[k]]), cv2.IMREAD_COLOR)
            rgb = bgr[:, :, ::-1]
            h, w = rgb.shape[:2]
            if scale[k] != 1:
                rgb = cv2.resize(np.ascontiguousarray(rgb), (round(w * float(scale[k])),
                                                             round(h * float(scale[k]))),
                                 interpolation=cv2.INTER_AREA)
            y, x, bh, bw = box[k]
            np.testing.assert_array_equal(pixels[k], rgb[y:y + bh, x:x + bw], err_msg=f"crop {k}")
        checked = 0
        for name in f["ops"]:
            g = f["ops"][name]
            fixed = json.loads(g.attrs["fixed"])
            outputs, gamma, source = g["output"][:], g["gamma"][:], g["source"][:]
            assert len(outputs) > 0
            for k in range(len(outputs)):
                expect = operators.to_uint8(operators.apply(name, pixels[source[k]], gamma[k],
                                                            **fixed))
                np.testing.assert_array_equal(outputs[k], expect, err_msg=f"{name} pair {k}")
                checked += 1
    assert checked > 40


def test_the_journal_is_written_by_the_projects_one_atomic_writer(images, tmp_path,
                                                                  monkeypatch):
    """The journal's plan.json and every shard go through :func:`datagen.fs.atomic_open`, the
    project's one atomic writer (issue 27: the journal had its own copy, with a fixed temporary
    name that a second writer or a link there would share)."""
    import datagen.build
    from datagen.fs import atomic_open

    written = []

    def recording(path, *a, **kw):
        written.append(Path(path).name)
        return atomic_open(path, *a, **kw)

    monkeypatch.setattr(datagen.build, "atomic_open", recording)
    build(make_plan(tiny_options(images)), tmp_path / "x.h5", workers=1, progress=False)
    assert written[0] == "plan.json" and any(n.endswith(".npz") for n in written), written
    assert no_temporaries(tmp_path)


def test_a_journal_write_failure_is_a_clear_error(images, tmp_path, monkeypatch):
    """Any failed journal write (not only a full disk) ends with a message and --resume."""
    import datagen.build

    def failing_savez(fh, *a, **kw):  # a shard's bytes going to its temporary file
        fh.write(b"PK")  # a partly written temporary: removed, never renamed
        raise OSError(errno.EFBIG, "File too large")

    monkeypatch.setattr(datagen.build.np, "savez", failing_savez)
    with pytest.raises(BuildError, match=r"writing .*\.npz failed \(File too large\).*--resume"):
        build(make_plan(tiny_options(images)), tmp_path / "x.h5", workers=1, progress=False)
    assert no_temporaries(tmp_path)
