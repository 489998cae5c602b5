"""What is read and what is locked (issue 26): lock files never follow links; one image reader
(bytes, then decode) that reads regular files only, never blocks and caps what it reads; the
auxiliary images of a build read once; datasets that would make a reader read other files, or
that do not hold together, refused on open; a Dask build without workers stops and says so.
"""
from __future__ import annotations

import os
import subprocess
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
    last = err.strip().splitlines()[-1]
    assert last.startswith("error: ") and "symbolic link" in last and "Traceback" not in err
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


# ------------------------------------------------------------------ 7, 8. the one image reader
def _png(rng, h=40, w=48) -> bytes:
    import cv2
    import numpy as np

    img = cv2.resize(rng.integers(0, 256, (8, 10, 3), dtype=np.uint8), (w, h),
                     interpolation=cv2.INTER_CUBIC)
    return cv2.imencode(".png", img)[1].tobytes()


def _odd_name(folder: Path, name: bytes) -> Path:
    return Path(os.fsdecode(os.fsencode(folder) + b"/" + name))


AUX_NOT_UTF8 = r"""
import sys
from pathlib import Path
import numpy as np
import operators
from operators.pencil import load_texture
from operators.style import exemplar_info, load_exemplar
p = Path(sys.argv[1])
img = np.random.default_rng(0).integers(0, 256, (24, 24, 3), dtype=np.uint8)
operators.apply("style", img, exemplar=p)
operators.apply("pencil", img, texture=p)
assert exemplar_info(p)["sha256"] == exemplar_info(load_exemplar(p))["sha256"]
assert load_texture(p).shape == (40, 48)
# a build records them (the command, with the name, is stored as printable UTF-8)
import cv2, h5py, json
from datagen.cli import main
d = p.parent / "imgs"
d.mkdir()
cv2.imwrite(str(d / "a.png"), cv2.resize(img, (64, 64), interpolation=cv2.INTER_CUBIC))
out = p.parent / "o.h5"
assert main(["build", "--ops", "style,pencil", "--images", str(d), "--out", str(out), "--size",
             "32", "--max-crops", "1", "--test-fraction", "0", "--workers", "1", "--quiet",
             "--exemplar", str(p), "--texture", str(p)]) == 0
with h5py.File(out, "r") as f:
    assert json.loads(f["ops/style"].attrs["fixed"])["exemplar"]["name"] == "ex\udce9\udcff.png"
    assert "ex\\xe9\\xff.png" in f.attrs["command"]
print("ok")
"""


def test_an_aux_image_whose_name_is_not_utf8_is_read_not_a_crash(tmp_path):
    """``cv2.imread`` crashed the interpreter (SIGSEGV) on such names: run in a subprocess."""
    import numpy as np

    p = _odd_name(tmp_path, b"ex\xe9\xff.png")
    p.write_bytes(_png(np.random.default_rng(1)))
    script = tmp_path / "aux.py"
    script.write_text(AUX_NOT_UTF8)
    r = subprocess.run([sys.executable, str(script), os.fsdecode(p)], capture_output=True,
                       timeout=300, env={**os.environ, "PYTHONPATH": str(REPO)})
    assert r.returncode == 0 and r.stdout.strip().endswith(b"\nok"), \
        r.stderr.decode(errors="replace")


def test_files_and_arrays_of_aux_images_give_the_same_pixels(tmp_path):
    """What a worker is sent (the array read once) is what the path gives."""
    import cv2
    import numpy as np

    from operators.pencil import load_texture, read_texture_file, texture_id
    from operators.style import exemplar_info, load_exemplar, read_exemplar_file

    rng = np.random.default_rng(2)
    for name, data in (("rgb.png", _png(rng)), ("rgba.png", cv2.imencode(
            ".png", rng.integers(1, 256, (30, 20, 4), dtype=np.uint8))[1].tobytes()),
            ("gray.jpg", cv2.imencode(".jpg", rng.integers(1, 256, (30, 20), np.uint8))[1]
             .tobytes()), ("deep.png", cv2.imencode(".png", rng.integers(
                 1, 65536, (16, 16, 3), dtype=np.uint16))[1].tobytes())):
        p = tmp_path / name
        p.write_bytes(data)
        t = read_texture_file(p)
        np.testing.assert_array_equal(load_texture(p), load_texture(t))
        assert texture_id(p).split(":")[1] == texture_id(t).split(":")[1]
        if name != "deep.png":
            m = read_exemplar_file(p)
            np.testing.assert_array_equal(load_exemplar(p), load_exemplar(m))
            assert exemplar_info(p)["sha256"] == exemplar_info(m)["sha256"]


def _fifo_and_zero(folder: Path) -> None:
    os.mkfifo(folder / "pipe.png")
    os.symlink("/dev/zero", folder / "zero.png")


IMAGES_THAT_ARE_NOT_FILES = r"""
import sys
from datagen.cli import main
sys.exit(main(["build", "--ops", "l0", "--images", sys.argv[1], "--out", sys.argv[2],
               "--size", "32", "--per-image", "1", "--max-crops", "1", "--test-fraction", "0",
               "--no-single", "--workers", "1", "--quiet"]))
"""


def test_fifos_and_devices_among_the_images_are_skipped_and_listed(tmp_path):
    """A FIFO blocked the build for ever, a link to /dev/zero was read until memory ran out:
    a subprocess, with a timeout and a memory limit, so that the old behaviour fails the test."""
    import resource

    import numpy as np

    d = tmp_path / "imgs"
    d.mkdir()
    (d / "good.png").write_bytes(_png(np.random.default_rng(3), 64, 64))
    _fifo_and_zero(d)
    script = tmp_path / "b.py"
    script.write_text(IMAGES_THAT_ARE_NOT_FILES)

    def limit_memory():
        resource.setrlimit(resource.RLIMIT_AS, (4 * 2**30, 4 * 2**30))

    try:
        r = subprocess.run([sys.executable, str(script), str(d), str(tmp_path / "o.h5")],
                           capture_output=True, timeout=240, preexec_fn=limit_memory,
                           env={**os.environ, "PYTHONPATH": str(REPO)}, cwd=tmp_path)
    except subprocess.TimeoutExpired:
        pytest.fail("the build blocked on the FIFO")
    out = r.stdout.decode()
    assert r.returncode == 0, r.stderr.decode()[-2000:]
    assert "skipped 2 image(s)" in out
    assert "pipe.png: unreadable (a FIFO, not a regular file)" in out
    assert "zero.png: unreadable (a character device, not a regular file)" in out


def test_the_reader_caps_the_bytes_it_reads(tmp_path, monkeypatch):
    from datagen.sources import read_image
    from operators import _io

    p = tmp_path / "big.png"
    p.write_bytes(_png(__import__("numpy").random.default_rng(4)))
    assert read_image(p)[1] == ""
    monkeypatch.setattr(_io, "MAX_IMAGE_BYTES", 100)
    img, reason = read_image(p)
    assert img is None and "larger than the 100 bytes an image file may have" in reason


@pytest.mark.parametrize("what", ["fifo", "zero"])
def test_aux_images_and_apply_inputs_that_are_not_files_are_refused(tmp_path, what):
    """The style exemplar, the pencil texture and ``model apply``'s input (datagen.sources.
    read_image) go through the same reader: refused with the reason, never read or waited on."""
    from datagen.sources import read_image
    from operators.pencil import load_texture
    from operators.style import load_exemplar

    _fifo_and_zero(tmp_path)
    p = tmp_path / ("pipe.png" if what == "fifo" else "zero.png")
    reason = "a FIFO" if what == "fifo" else "a character device"
    with pytest.raises(ValueError, match=f"style exemplar .*{reason}, not a regular file"):
        load_exemplar(p)
    with pytest.raises(ValueError, match=f"pencil texture .*{reason}, not a regular file"):
        load_texture(p)
    assert read_image(p) == (None, f"unreadable ({reason}, not a regular file)")


# ------------------------------------------------------------------ 4. auxiliary images read once
def _aux_setup(tmp_path: Path):
    """(images folder, texture A path, texture B bytes): two small photographs-like images."""
    import cv2
    import numpy as np

    rng = np.random.default_rng(5)
    d = tmp_path / "imgs"
    d.mkdir()
    for i in range(2):
        (d / f"im{i}.png").write_bytes(_png(rng, 48, 48))
    a = rng.integers(60, 250, (20, 30), dtype=np.uint8)
    b = 255 - a // 2
    tex = tmp_path / "tex.png"
    tex.write_bytes(cv2.imencode(".png", a)[1].tobytes())
    return d, tex, cv2.imencode(".png", b)[1].tobytes(), a


def _aux_options(d: Path, **kw):
    from datagen.plan import Options
    from datagen.sources import list_images

    return Options(ops=("pencil",), images=tuple(str(p) for p in list_images(d)),
                   images_label="t", size=32, max_crops=1, test_fraction=0.0, single=False, **kw)


def _check_pencil_pairs(out: Path, texture) -> None:
    import json

    import h5py
    import numpy as np

    import operators
    from operators.pencil import texture_id

    with h5py.File(out, "r") as f:
        fixed = json.loads(f["ops/pencil"].attrs["fixed"])
        assert fixed["texture"]["sha256"] == texture_id(texture).split(":")[1]
        assert fixed["texture"]["name"] == "tex.png"
        px, src, output = f["sources/pixels"][:], f["ops/pencil/source"][:], f["ops/pencil/output"][:]
    for k in range(len(src)):
        want = operators.to_uint8(operators.pair("pencil", px[src[k]], None, texture=texture)[1])
        np.testing.assert_array_equal(output[k], want)


def test_a_texture_replaced_during_a_build_changes_nothing(tmp_path):
    """The file is read once, when the options are made: the hash recorded and the pixels every
    pair is made with are that read's, whatever happens to the file afterwards."""
    from datagen.build import build
    from datagen.plan import make_plan

    d, tex, other, a = _aux_setup(tmp_path)
    options = _aux_options(d, texture=str(tex))
    plan = make_plan(options)
    tex.write_bytes(other)  # replaced after planning: the workers used to read this one
    os.utime(tex, ns=(1, 10**18))
    build(plan, tmp_path / "o.h5", workers=1, progress=False)
    _check_pencil_pairs(tmp_path / "o.h5", a)


def test_a_relative_texture_is_resolved_where_the_build_was_planned(tmp_path, monkeypatch):
    """A relative ``--texture`` was opened by each worker in its own folder (a Dask worker's);
    now its pixels travel with the tasks: planned in one folder, computed from another."""
    from datagen.build import build
    from datagen.plan import make_plan

    d, tex, _, a = _aux_setup(tmp_path)
    monkeypatch.chdir(tmp_path)
    plan = make_plan(_aux_options(d, texture="tex.png"))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    build(plan, tmp_path / "o.h5", workers=1, progress=False)
    _check_pencil_pairs(tmp_path / "o.h5", a)


# ------------------------------------------------------------------ 5, 6. what a dataset may hold
@pytest.fixture(scope="module")
def tiny_file(tmp_path_factory) -> Path:
    """A small l0 dataset built by the command line."""
    import numpy as np

    from datagen.cli import main

    d = tmp_path_factory.mktemp("io_images")
    rng = np.random.default_rng(6)
    for i in range(3):
        (d / f"im{i}.png").write_bytes(_png(rng, 48, 48))
    out = d / "tiny.h5"
    assert main(["build", "--ops", "l0", "--images", str(d), "--out", str(out), "--size", "32",
                 "--per-image", "2", "--max-crops", "1", "--test-fraction", "0.34",
                 "--no-single", "--workers", "1", "--quiet"]) == 0
    return out


def _crafted(tiny_file: Path, tmp_path: Path, change) -> Path:
    """A copy of the tiny file changed by ``change(f, tmp_path)``, with its attribute checksum
    recomputed so that only the change is wrong."""
    import shutil

    import h5py

    from datagen.store import ATTRIBUTES_DIGEST, attributes_digest

    bad = tmp_path / "crafted.h5"
    shutil.copy(tiny_file, bad)
    with h5py.File(bad, "r+") as f:
        change(f, tmp_path)
        f.attrs[ATTRIBUTES_DIGEST] = attributes_digest(f)
    return bad


def _external(f, tmp_path):
    ds = f["ops/l0/output"]
    shape, n = ds.shape, ds.size
    secret = tmp_path / "secret.txt"  # stands for /etc/passwd
    secret.write_bytes((b"root:x:0:0:secret\n" * (n // 18 + 1))[:n])
    del f["ops/l0/output"]
    f.create_dataset("ops/l0/output", shape=shape, dtype="u1", external=[(str(secret), 0, n)])


def _virtual(f, tmp_path):
    import h5py

    ds = f["ops/l0/output"]
    shape = ds.shape
    with h5py.File(tmp_path / "other.h5", "w") as o:
        o.create_dataset("x", shape=shape, dtype="u1")
    layout = h5py.VirtualLayout(shape=shape, dtype="u1")
    layout[:] = h5py.VirtualSource(str(tmp_path / "other.h5"), "x", shape=shape)
    del f["ops/l0/output"]
    f.create_virtual_dataset("ops/l0/output", layout)


def _external_link(f, tmp_path):
    import h5py

    with h5py.File(tmp_path / "other.h5", "w") as o:
        o.create_dataset("x", data=[1, 2, 3])
    f["ops/l0/extra"] = h5py.ExternalLink(str(tmp_path / "other.h5"), "/x")


@pytest.mark.parametrize("change, reason", [
    (_external, "uses HDF5 external storage"), (_virtual, "is virtual"),
    (_external_link, "is an external link")])
def test_datasets_that_read_other_files_are_refused_on_open(tiny_file, tmp_path, capsys,
                                                             change, reason):
    """``train``, ``eval``, ``show`` (all through ``open_file`` / ``PairDataset``) trained on the
    bytes of whatever file the crafted dataset named; ``verify`` called it "format 1"."""
    from datagen.cli import main
    from datagen.dataset import PairDataset
    from datagen.inspection import verify
    from datagen.store import UnsafeFileError, open_file

    bad = _crafted(tiny_file, tmp_path, change)
    with pytest.raises(UnsafeFileError, match=reason):
        open_file(bad)
    with pytest.raises(ValueError, match=reason):
        PairDataset(bad, "l0")
    report, ok = verify(bad, samples=0)
    assert not ok and reason in report and "format 1" not in report
    assert main(["verify", str(bad)]) == 1
    assert reason in capsys.readouterr().out
    assert main(["info", str(bad)]) == 2
    err = capsys.readouterr().err
    assert err.strip().splitlines()[-1].startswith("error: ") and reason in err
    assert "Traceback" not in err


def _version(f, tmp_path):
    f.attrs["format_version"] = 9


def _ten_billion_rows(f, tmp_path):
    ds = f["ops/l0/output"]
    del f["ops/l0/output"]
    f.create_dataset("ops/l0/output", shape=(10**10, *ds.shape[1:]), dtype="u1",
                     chunks=(1, *ds.shape[1:]), compression="gzip", fletcher32=True)


def _unwritten_rows(f, tmp_path):
    ds = f["ops/l0/output"]
    first = ds[0]
    del f["ops/l0/output"]
    new = f.create_dataset("ops/l0/output", shape=ds.shape, dtype="u1", chunks=ds.chunks,
                           compression="gzip", fletcher32=True)
    new[0] = first


def _short_index(f, tmp_path):
    gamma = f["ops/l0/gamma"][:]
    del f["ops/l0/gamma"]
    f.create_dataset("ops/l0/gamma", data=gamma[:-1], fletcher32=True)


@pytest.mark.parametrize("change, reason", [
    (_version, "format version 9 is not one this version of datagen reads"),
    (_ten_billion_rows, "ops/l0/output has 10000000000 rows, ops/l0/gamma"),
    (_unwritten_rows, "ops/l0/output declares .* rows but stores 1 of its"),
    (_short_index, "ops/l0/gamma_effective has .* rows, ops/l0/gamma")])
def test_files_that_do_not_hold_together_are_refused_on_open(tiny_file, tmp_path, change,
                                                              reason):
    """``train`` trusted any file with a ``digest``: a file declaring 10^10 rows read fill-value
    zeros, and ``verify`` ran for ever on it. Now refused on open; ``verify`` names the reason
    at once and reads nothing that is not stored."""
    import time

    from datagen.dataset import PairDataset
    from datagen.inspection import verify
    from datagen.store import open_file

    bad = _crafted(tiny_file, tmp_path, change)
    with pytest.raises(ValueError, match=reason):
        open_file(bad)
    with pytest.raises(ValueError, match=reason):
        PairDataset(bad, "l0")
    started = time.monotonic()
    report, ok = verify(bad, samples=0)
    assert not ok and __import__("re").search(reason, report), report
    assert time.monotonic() - started < 60


def test_a_changed_attribute_is_refused_on_open(tiny_file, tmp_path):
    import shutil

    import h5py

    from datagen.store import open_file

    bad = tmp_path / "attr.h5"
    shutil.copy(tiny_file, bad)
    with h5py.File(bad, "r+") as f:
        f["ops/l0"].attrs["gamma_range"] = [0.0, 1e9]  # the digest not recomputed
    with pytest.raises(ValueError, match="attribute checksum does not match"):
        open_file(bad)
    with open_file(tiny_file):  # the intact file opens
        pass


# ------------------------------------------------------------------ 12. a Dask build without workers
class _NoWorkersClient:
    """A Dask client whose scheduler has lost every worker: tasks are accepted and never run."""

    def __init__(self, address, timeout=None):
        self.address, self.closed = address, False

    def get_executor(self):
        import concurrent.futures as cf

        class Never(cf.Executor):
            def submit(self, fn, /, *args, **kwargs):
                return cf.Future()  # never completes

        return Never()

    def nthreads(self, workers=None):
        return {}

    def close(self):
        self.closed = True


def test_a_dask_build_without_workers_stops_and_says_so(tmp_path, monkeypatch, capsys):
    """It waited for ever, silently. Now it says that no worker is connected, and after
    ``NO_WORKERS_S`` stops with the --resume hint (run in a thread: the old code never returns)."""
    import threading

    import numpy as np

    from datagen import build as build_mod
    from datagen.build import BuildError, build
    from datagen.plan import Options, make_plan
    from datagen.sources import list_images

    d = tmp_path / "imgs"
    d.mkdir()
    for i in range(2):
        (d / f"im{i}.png").write_bytes(_png(np.random.default_rng(7 + i), 48, 48))
    plan = make_plan(Options(ops=("l0",), images=tuple(str(p) for p in list_images(d)),
                             images_label="t", size=32, max_crops=1, test_fraction=0.0,
                             single=False))
    monkeypatch.setattr(build_mod, "_dask_client", lambda: _NoWorkersClient)
    monkeypatch.setattr(build_mod, "NO_WORKERS_S", 0.5, raising=False)
    monkeypatch.setattr(build_mod, "WORKER_POLL_S", 0.1, raising=False)
    result = {}

    def run():
        try:
            build(plan, tmp_path / "o.h5", scheduler="tcp://127.0.0.1:8786", progress=False)
        except BaseException as exc:  # noqa: BLE001 - examined below
            result["error"] = exc

    t = threading.Thread(target=run, daemon=True)
    t.start()
    t.join(timeout=60)
    assert not t.is_alive(), "the build waits for ever without workers"
    err = result.get("error")
    assert isinstance(err, BuildError), err
    assert "no Dask workers for " in str(err) and "--resume" in str(err)
    assert "no Dask workers are connected" in capsys.readouterr().err
    assert not (tmp_path / "o.h5").exists()


# ------------------------------------------------------------------ the mark of our own images
def test_image_mark_keeps_the_pixels_and_is_recognised_only_where_written():
    """datagen.fs.mark_image: PNG gets a tEXt chunk ``Software`` with a valid CRC, JPEG a
    comment; both decode to the same pixels (OpenCV and Pillow) and image_is_ours finds the
    mark in the file's first bytes; other formats, unmarked files, a mark in the pixels, and
    truncated or crafted heads are not ours, and no head makes the reader loop or fail."""
    import io
    import zlib

    import cv2
    import numpy as np
    from PIL import Image

    from datagen.fs import IMAGE_MARK, image_is_ours, mark_image

    img = np.random.default_rng(0).integers(0, 256, (9, 13, 3), dtype=np.uint8)
    for ext, info_key in ((".png", "Software"), (".jpg", "comment")):
        plain = cv2.imencode(ext, img)[1].tobytes()
        marked = mark_image(plain)
        assert not image_is_ours(plain) and image_is_ours(marked[:4096])
        assert len(marked) - len(plain) == (12 + 9 + len(IMAGE_MARK) if ext == ".png"
                                            else 4 + len(IMAGE_MARK))
        for data in (plain, marked):
            assert np.array_equal(cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR),
                                  cv2.imdecode(np.frombuffer(plain, np.uint8), cv2.IMREAD_COLOR))
        pil = Image.open(io.BytesIO(marked))
        pil.load()
        assert pil.info[info_key] in (IMAGE_MARK.decode(), IMAGE_MARK)
        if ext == ".png":  # the chunk right after IHDR, its CRC over type and data
            size = int.from_bytes(marked[33:37], "big")
            body = marked[37:41 + size]
            assert body[:4] == b"tEXt" and body[4:] == b"Software\x00" + IMAGE_MARK
            assert int.from_bytes(marked[41 + size:45 + size], "big") == zlib.crc32(body)
        for cut in range(0, len(marked[:80])):  # any truncation: an answer, no exception
            image_is_ours(marked[:cut])
    for ext in (".tif", ".bmp", ".webp"):
        data = cv2.imencode(ext, img)[1].tobytes()
        assert mark_image(data) == data and not image_is_ours(data)
    # the mark's text elsewhere than in a mark (e.g. in a user's file) is not the mark
    assert not image_is_ours(b"\x89PNG\r\n\x1a\n" + IMAGE_MARK * 4)
    assert not image_is_ours(b"\xff\xd8" + IMAGE_MARK)
    # a crafted chunk size far beyond the head, a JPEG segment of length 0: stops, not ours
    assert not image_is_ours(b"\x89PNG\r\n\x1a\n\xff\xff\xff\xfftEXt")
    assert not image_is_ours(b"\xff\xd8\xff\xfe\x00\x00" + IMAGE_MARK)


def test_fresh_process_speed_csv_is_checked_first_and_written_atomically(tmp_path, monkeypatch):
    """``python -m benchmarks.fresh_process_speed --csv PATH`` (a bug: it opened PATH with
    "w", so it wrote through a link into the target and truncated any file there, after minutes
    of timing): a link to a file, a file it did not write and a folder are refused before any
    timing; its own table is replaced; the written table holds the rows the run printed."""
    from benchmarks import fresh_process_speed as fps

    theirs = tmp_path / "theirs.csv"
    theirs.write_text("operator,gamma,size,ours_s\nwls,1,1024,2.2\n")
    link = tmp_path / "link.csv"
    link.symlink_to(theirs)
    timed = []
    monkeypatch.setattr(fps, "paired", lambda *a, **k: timed.append(a) or {
        side: {"wall": [0.5, 0.25], "cpu": [0.5, 0.5], "faults": [3, 5]}
        for side in ("fresh", "here")})
    args = ["--size", "8", "--ops", "sr", "--blocks", "1", "--no-torch", "--csv"]
    for bad in (link, theirs, tmp_path):
        with pytest.raises(SystemExit) as exc:
            fps.main(args + [str(bad)])
        assert exc.value.code == 2
    assert not timed and theirs.read_text().startswith("operator,gamma,size,ours_s")
    assert link.is_symlink()
    out = tmp_path / "speed.csv"
    for _ in range(2):  # a second run replaces its own table
        assert fps.main(args + [str(out)]) == 0
    lines = out.read_text().splitlines()
    assert len(timed) == 2 and len(lines) == 2 and lines[0].startswith(fps.CSV_HEADER)
    row = dict(zip(lines[0].split(","), lines[1].split(",")))
    # low() of [0.5, 0.25] and the medians, as summary() computes them
    assert row["operator"] == "sr" and float(row["fresh_median_s"]) == 0.375
    assert float(row["fresh_vs_suite"]) == 1.0 and row["calls"] == "2"
    assert float(row["fresh_s"]) == fps.low([0.5, 0.25])
