"""datagen: plans, determinism across executors, crash safety, verification, the torch reader."""
from __future__ import annotations

import errno
import signal
from pathlib import Path

import cv2
import h5py
import numpy as np
import pytest

import operators
from datagen import build as build_mod
from datagen.build import BuildError, build
from datagen.cli import main
from datagen.inspection import contact_sheet, info, verify
from datagen.plan import SINGLE, TEST, TRAIN, Options, draw_gammas, make_plan

OPS = ("l0", "llf")  # fast ones; each operator's own correctness is tested elsewhere


@pytest.fixture(scope="module")
def image_dir(tmp_path_factory) -> Path:
    """Five small textured RGB images, one unreadable file and one too small."""
    d = tmp_path_factory.mktemp("images")
    rng = np.random.default_rng(5)
    for i in range(5):
        base = rng.integers(0, 256, (12, 15, 3), dtype=np.uint8)
        img = cv2.resize(base, (90, 72), interpolation=cv2.INTER_CUBIC)
        img = np.clip(img.astype(int) + rng.integers(-20, 21, img.shape), 0, 255).astype(np.uint8)
        cv2.imwrite(str(d / f"img{i}.png"), img)
    (d / "broken.jpg").write_bytes(b"not a jpeg at all")
    cv2.imwrite(str(d / "tiny.png"), np.zeros((10, 10, 3), np.uint8) + 128)
    return d


def options(image_dir, **kw) -> Options:
    files = tuple(sorted(str(p) for p in image_dir.iterdir()))
    base = dict(ops=OPS, images=files, images_label=str(image_dir), size=32, per_image=3,
                test_fraction=0.3, seed=1, max_crops=3, scales=(1.0,))
    return Options(**{**base, **kw})


def arrays(path) -> dict[str, np.ndarray]:
    with h5py.File(path, "r") as f:
        out = {"sources": f["sources/pixels"][:]}
        for n in f["ops"]:
            for k in ("output", "gamma", "gamma_effective", "source", "split"):
                out[f"{n}/{k}"] = f["ops"][n][k][:]
    return out


def assert_same(a, b):
    assert a.keys() == b.keys()
    for k in a:
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)


def test_plan_split_by_image_and_laws(image_dir):
    with pytest.warns(UserWarning):
        plan = make_plan(options(image_dir))
    assert len(plan.skipped) == 2  # the broken file and the tiny image
    assert any("unreadable" in s for s in plan.skipped) and any("smaller" in s for s in plan.skipped)
    split = plan.crop_split
    assert set(split) == {TRAIN, TEST}
    for c, s in zip(plan.crops, split):  # never one image in both splits
        assert plan.image_split[c.image] == s
    for name, op in plan.ops.items():
        spec = operators.get(name)
        test = op.split == TEST
        assert np.all(np.isin(op.gamma[test], spec.test_gammas))
        assert np.all((op.gamma >= spec.gamma_range[0]) & (op.gamma <= spec.gamma_range[1]))
        train, single = op.split == TRAIN, op.split == SINGLE
        assert train.sum() == 3 * (split == TRAIN).sum()
        assert single.sum() == 5 * (split == TRAIN).sum()  # the one-network-per-γ pairs
        assert np.all(np.isin(op.gamma[single], spec.test_gammas))
        assert np.all(split[op.source[single]] == TRAIN)
    # same options, same plan; another seed, another plan
    with pytest.warns(UserWarning):
        again = make_plan(options(image_dir))
        other = make_plan(options(image_dir, seed=2))
    assert again.digest() == plan.digest() and other.digest() != plan.digest()


def test_llf_draws_every_integer_like_the_paper():
    g = draw_gammas("llf", np.random.default_rng(0), 7)
    assert sorted(g) == [2, 3, 4, 5, 6, 7, 8]
    assert len(draw_gammas("llf", np.random.default_rng(0), 10)) == 10


def test_one_operator_does_not_depend_on_the_others(image_dir):
    with pytest.warns(UserWarning):
        both = make_plan(options(image_dir))
        alone = make_plan(options(image_dir, ops=("llf",)))
    np.testing.assert_array_equal(both.ops["llf"].gamma, alone.ops["llf"].gamma)


@pytest.fixture(scope="module")
def reference_build(image_dir, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("ref") / "ref.h5"
    with pytest.warns(UserWarning):
        plan = make_plan(options(image_dir))
    build(plan, out, workers=1, progress=False)
    return out


def test_build_dataset_is_the_build_command_as_one_call(image_dir, reference_build, tmp_path):
    """``datagen.build_dataset(out, datagen.dataset_options(...))`` is ``python -m datagen
    build`` as a library call (issue 27: the benchmarks built their dataset by calling the
    command line's ``main``): the command's flags give the same options, and the file is the one
    the plan-level API writes (same digest, same arrays), recording the command it is given."""
    import datagen
    from datagen.cli import build_options, parser

    opts = datagen.dataset_options("l0,llf", image_dir, size=32, per_image=3, test_fraction=0.3,
                                   seed=1, max_crops=3)
    argv = ["build", "--ops", "l0,llf", "--images", str(image_dir), "--size", "32",
            "--per-image", "3", "--test-fraction", "0.3", "--seed", "1", "--max-crops", "3"]
    assert build_options(parser().parse_args(argv)).portable() == opts.portable()
    with pytest.warns(UserWarning):  # the broken and the tiny image are skipped, and said so
        result = datagen.build_dataset(tmp_path / "lib.h5", opts, workers=1, progress=False,
                                       command="mine")
    assert result.out == tmp_path / "lib.h5"
    with h5py.File(reference_build, "r") as a, h5py.File(result.out, "r") as b:
        assert a.attrs["digest"] == b.attrs["digest"] and b.attrs["command"] == "mine"
    assert_same(arrays(reference_build), arrays(result.out))
    with pytest.raises(ValueError, match="--workers must be >= 1"):
        datagen.build_dataset(tmp_path / "none.h5", opts, workers=0)
    assert not (tmp_path / "none.h5").exists()


def test_workers_and_dask_give_identical_arrays(image_dir, reference_build, tmp_path):
    with pytest.warns(UserWarning):
        plan = make_plan(options(image_dir))
    build(plan, tmp_path / "two.h5", workers=2, progress=False)
    assert_same(arrays(reference_build), arrays(tmp_path / "two.h5"))

    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  host="127.0.0.1", dashboard_address=None) as cluster:
        build(plan, tmp_path / "dask.h5", scheduler=cluster.scheduler_address, progress=False)
    assert_same(arrays(reference_build), arrays(tmp_path / "dask.h5"))


def test_file_describes_itself(reference_build):
    with h5py.File(reference_build, "r") as f:
        for key in ("format", "version", "code", "command", "created", "seed", "options", "digest"):
            assert key in f.attrs
        g = f["ops/l0"]
        assert g.attrs["law"] == "log-uniform" and list(g.attrs["gamma_range"]) == [0.002, 0.2]
        assert "kappa" in g.attrs["fixed"] and "doi" in g.attrs["paper"]
        assert g["output"].chunks == (1, 32, 32, 3) and g["output"].compression == "gzip"


def test_verify_passes_and_catches_corruption(reference_build, tmp_path):
    report, ok = verify(reference_build, samples=2)
    assert ok, report
    bad = tmp_path / "bad.h5"
    bad.write_bytes(reference_build.read_bytes())
    with h5py.File(bad, "r+") as f:
        f["ops/l0/output"][:] = 255 - f["ops/l0/output"][:]
        f["ops/llf/gamma"][0] = 99.0
    report, ok = verify(bad, samples=2)
    assert not ok
    assert "FAIL  l0: 2 random pairs recomputed identically" in report
    assert "FAIL  llf: training γ inside" in report


def test_info_and_show(reference_build, tmp_path):
    text = info(reference_build)
    assert "l0" in text and "train" in text and "log-uniform" in text
    png = contact_sheet(reference_build, tmp_path / "sheet.png", ops=["l0"])
    assert cv2.imread(str(png)).shape[1] > 300


def test_show_never_writes_through_a_link_or_over_a_file_not_its_own(reference_build, tmp_path,
                                                                      capsys):
    """``show -o`` (a bug: it wrote through a symbolic link at -o into the user's image, and over
    any file there): a link or an image of the user's is refused unless --force, and then the
    link is replaced, its target untouched; the dataset itself, a folder and an extension
    matplotlib cannot write are refused before any work; a sheet show wrote is replaced."""
    victim = tmp_path / "photo.png"
    assert cv2.imwrite(str(victim), np.full((4, 5, 3), 7, np.uint8))
    before = victim.read_bytes()
    link = tmp_path / "link.png"
    link.symlink_to(victim)
    show = ["show", str(reference_build), "--op", "l0", "-o"]
    for out in (link, victim):
        assert main(show + [str(out)]) == 2
        err = capsys.readouterr().err
        assert "is not a file this tool wrote" in err and "--force replaces it" in err, err
    assert link.is_symlink() and victim.read_bytes() == before
    assert main(show + [str(link), "--force"]) == 0
    assert not link.is_symlink() and victim.read_bytes() == before
    first = link.read_bytes()
    assert main(show + [str(link)]) == 0  # its own sheet: replaced without --force
    assert link.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and len(first) > 1000
    data_before = reference_build.read_bytes()
    for out, message in ((reference_build, "is an input of this command"),
                         (tmp_path, "is a folder"), (tmp_path / "s.h5", "not a format")):
        assert main(show + [str(out), "--force"]) == 2
        assert message in capsys.readouterr().err
    assert reference_build.read_bytes() == data_before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["link.png", "photo.png"]


def test_contact_sheet_text_says_L0_and_lambda(reference_build, tmp_path, monkeypatch):
    """The sheet's row label is ``L0`` (``l0`` reads as ``I0``) and its tiles say ``λ=``."""
    from matplotlib.axes import Axes

    texts = []
    for method in ("set_title", "set_ylabel"):
        real = getattr(Axes, method)
        monkeypatch.setattr(Axes, method, lambda self, t, *a, _real=real, **k:
                            (texts.append(str(t)), _real(self, t, *a, **k))[1])
    contact_sheet(reference_build, tmp_path / "sheet.png", ops=["l0"])
    assert "L0" in texts and "l0" not in texts
    assert any(t.startswith("λ=") for t in texts)
    assert not any("lambda" in t for t in texts)


def test_existing_output_and_partial_builds_are_protected(image_dir, reference_build, tmp_path):
    with pytest.warns(UserWarning):
        plan = make_plan(options(image_dir))
    with pytest.raises(BuildError, match="--force"):
        build(plan, reference_build, workers=1, progress=False)
    out = tmp_path / "x.h5"
    partial = tmp_path / "x.h5.partial"
    partial.mkdir()
    (partial / "plan.json").write_text('{"digest": "something else"}')
    (partial / "l0.000000.npz").write_bytes(b"finished work of another plan")
    with pytest.raises(BuildError, match="--resume"):
        build(plan, out, workers=1, progress=False)
    with pytest.raises(BuildError, match="other options"):
        build(plan, out, workers=1, progress=False, resume=True)
    build(plan, out, workers=1, progress=False, force=True)
    assert out.exists() and not partial.exists()


def test_full_disk_is_a_clear_error_and_resumable(image_dir, reference_build, tmp_path,
                                                  monkeypatch):
    with pytest.warns(UserWarning):
        plan = make_plan(options(image_dir))
    real_savez, calls = np.savez, []

    def savez_until_full(*args, **kw):
        calls.append(1)
        if len(calls) > 2:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_savez(*args, **kw)

    monkeypatch.setattr(build_mod, "FLUSH_EVERY_PAIRS", 4)
    monkeypatch.setattr(build_mod.np, "savez", savez_until_full)
    out = tmp_path / "full.h5"
    with pytest.raises(BuildError, match="disk full.*--resume"):
        build(plan, out, workers=1, progress=False)
    assert not out.exists()
    assert len(list((tmp_path / "full.h5.partial").glob("*.npz"))) == 2
    assert not list((tmp_path / "full.h5.partial").glob("*.tmp"))
    monkeypatch.setattr(build_mod.np, "savez", real_savez)
    result = build(plan, out, workers=1, progress=False, resume=True)
    assert result.resumed_pairs > 0
    assert_same(arrays(reference_build), arrays(out))


def test_resume_after_killing_a_real_build(image_dir, tmp_path):
    """Kill -9 a running build, resume it, and get exactly the uninterrupted file.

    No race against the clock: the build pauses after its third journal shard (the ordinary CLI,
    with ``Journal.flush`` wrapped by :data:`test_datagen_reliability.PAUSED_BUILD`) and is
    killed there."""
    from test_datagen_reliability import start_paused

    args = ["--ops", "l0,llf", "--images", str(image_dir), "--size", "32", "--per-image", "3",
            "--max-crops", "3", "--test-fraction", "0.3", "--seed", "3", "--workers", "1",
            "--quiet"]
    out = tmp_path / "killed.h5"
    partial = tmp_path / "killed.h5.partial"
    proc, flag = start_paused(tmp_path, ["build", *args, "--out", str(out)], after=3)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=60)
    flag.unlink()
    assert not out.exists()
    assert len(list(partial.glob("*.npz"))) == 3

    assert main(["build", *args, "--out", str(out)]) == 2  # refuses without --resume
    assert main(["build", *args, "--out", str(out), "--resume"]) == 0
    assert out.exists() and not partial.exists()
    assert main(["build", *args, "--out", str(tmp_path / "clean.h5")]) == 0
    assert_same(arrays(out), arrays(tmp_path / "clean.h5"))
    assert main(["verify", str(out), "--samples", "1"]) == 0


def test_cli_errors_are_clear(tmp_path, capsys):
    assert main(["build", "--images", str(tmp_path / "nope"), "--out", str(tmp_path / "a.h5")]) == 2
    assert "does not exist" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["build", "--ops", "l0,foo"])
    assert "unknown operator or group 'foo'" in capsys.readouterr().err
    assert main(["info", str(tmp_path / "missing.h5")]) == 2
    (tmp_path / "junk.h5").write_bytes(b"junk")
    assert main(["verify", str(tmp_path / "junk.h5")]) == 2
    assert "not a readable HDF5" in capsys.readouterr().err


def test_dataset_reader_with_worker_processes(reference_build):
    torch = pytest.importorskip("torch")
    from torch.utils.data import DataLoader

    from datagen.dataset import PairDataset

    ds = PairDataset(reference_build, split="train", crop=16, flip=True)
    with h5py.File(reference_build, "r") as f:
        assert len(ds) == sum(int((f["ops"][n]["split"][:] == TRAIN).sum()) for n in OPS)
    item = ds[0]
    assert item["input"].shape == (3, 16, 16) and item["input"].dtype == torch.uint8
    loader = DataLoader(ds, batch_size=4, num_workers=2, shuffle=True,
                        generator=torch.Generator().manual_seed(0))
    batches = list(loader)
    assert sum(len(b["gamma"]) for b in batches) == len(ds)
    test = PairDataset(reference_build, ops=["l0"], split="test", gamma=0.02)
    assert len(test) > 0 and all(test[i]["gamma"] == 0.02 for i in range(len(test)))
    whole = PairDataset(reference_build, ops=["llf"], split="test")[0]
    with h5py.File(reference_build, "r") as f:
        k = int(np.flatnonzero(f["ops/llf/split"][:] == TEST)[0])
        np.testing.assert_array_equal(whole["target"].numpy().transpose(1, 2, 0),
                                      f["ops/llf/output"][k])
    with pytest.raises(ValueError, match="no pairs for"):
        PairDataset(reference_build, ops=["wls"])


def test_a_failing_task_keeps_finished_work(image_dir, reference_build, tmp_path, monkeypatch):
    with pytest.warns(UserWarning):
        plan = make_plan(options(image_dir))
    real, calls = build_mod.run_task, []

    def fail_on_fourth(*args):
        calls.append(1)
        if len(calls) == 4:
            raise RuntimeError("operator crashed")
        return real(*args)

    monkeypatch.setattr(build_mod, "run_task", fail_on_fourth)
    out = tmp_path / "crash.h5"
    with pytest.raises(RuntimeError, match="operator crashed"):
        build(plan, out, workers=1, progress=False)
    assert not out.exists()
    assert list((tmp_path / "crash.h5.partial").glob("*.npz"))  # three tasks' work was saved
    monkeypatch.setattr(build_mod, "run_task", real)
    assert build(plan, out, workers=1, progress=False, resume=True).resumed_pairs > 0
    assert_same(arrays(reference_build), arrays(out))


def test_the_default_plan_is_the_one_the_zoo_was_trained_on():
    """The default build (``python -m datagen build --ops all``) draws the same crops, pixels and
    γ on every machine: its plan digest is the one every zoo card records. (It once differed on
    AVX-512 CPUs, where numpy's exp rounds otherwise: see operators.LogUniform.sample.)"""
    import json

    from datagen.plan import dataset_options

    zoo = Path(__file__).resolve().parents[1] / "model" / "zoo"
    recorded = {json.loads(p.read_text())["dataset"]["digest"] for p in zoo.glob("*.json")}
    assert len(recorded) == 1, recorded
    assert make_plan(dataset_options()).digest() == recorded.pop()


def test_same_plan_digests():
    """Only equal digests, or a recorded build of the same plan (the default build's digest on
    AVX-512 CPUs before the γ draw used the C library's exp), name the same plan."""
    from datagen.plan import SAME_PLAN_DIGESTS, same_plan

    old, now = next(iter(SAME_PLAN_DIGESTS.items()))
    assert old.startswith("dee0485dfa40") and now.startswith("992de38b67cd")
    assert same_plan(old, now) and same_plan(now, old) and same_plan(now, now)
    assert not same_plan(old, "0" * 64) and not same_plan("0" * 64, "1" * 64)
    assert not same_plan(None, None) and not same_plan(now, None)
    assert all(v not in SAME_PLAN_DIGESTS for v in SAME_PLAN_DIGESTS.values())
