"""model: nothing lost, nothing silent, nothing unbounded (issue 26, the model's items).

Each test reproduces a defect found by using the model package as a hostile user: an output
path that is an input (the dataset, the checkpoint, the image itself, through links too), an
output that is a folder, a diverging training that "succeeds", an image too large for memory,
a checkpoint whose config asks for a huge network or lacks entries, a run folder that is not
one, and messages that say too much or too little.
"""
from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

import model
from datagen.fs import atomic_write_bytes, check_output
from model import train as train_module
from model.checkpoint import CKPT_FORMAT, checksum, load, save
from model.cli import main
from model.train import DivergedError, train
from test_model_safety import TINY, tiny_state


def _image(path: Path, shape=(8, 10, 3), seed=0) -> Path:
    img = np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)
    assert cv2.imwrite(str(path), img)
    return path


def _errors(err: str) -> list[str]:
    """The ``error:`` lines of a command's stderr (other lines: the threads note, warnings)."""
    assert "Traceback" not in err, err
    return [line for line in err.splitlines() if line.startswith("error: ")]


def _no_inference(*a, **k):
    raise AssertionError("inference ran before the output path was checked")


# --------------------------------------------------------------------- item 1: outputs
@pytest.fixture
def ckpt(tmp_path) -> Path:
    save(tmp_path / "run" / "last.pt", tiny_state())
    return tmp_path / "run" / "last.pt"


@pytest.fixture
def data_copy(data, tmp_path) -> Path:
    """A private copy of the tiny dataset (a test that fails must not damage the shared one)."""
    copy = tmp_path / "copy.h5"
    copy.write_bytes(Path(data).read_bytes())
    return copy


def _links(tmp_path: Path, target: Path) -> list[Path]:
    sym, hard = tmp_path / "sym.csv", tmp_path / "hard.csv"
    sym.symlink_to(target)
    os.link(target, hard)
    return [target, sym, hard]


def test_eval_csv_that_is_an_input_is_refused_before_anything_is_computed(
        tmp_path, ckpt, data_copy, monkeypatch, capsys):
    import model.evaluate

    monkeypatch.setattr(model.evaluate, "evaluate", _no_inference)
    before = {p: p.read_bytes() for p in (data_copy, ckpt)}
    sub = tmp_path / "links"
    sub.mkdir()
    for target in (data_copy, ckpt):
        folder = sub / target.stem
        folder.mkdir()
        for out in _links(folder, target):
            assert main(["eval", "--ckpt", str(ckpt.parent), "--data", str(data_copy),
                         "--csv", str(out)]) == 2, out
            err = capsys.readouterr().err
            assert len(_errors(err)) == 1 and "input" in _errors(err)[0], err
    assert {p: p.read_bytes() for p in (data_copy, ckpt)} == before


def test_eval_csv_refuses_a_folder_and_a_file_it_did_not_write(tmp_path, ckpt, data,
                                                                 monkeypatch, capsys):
    import model.evaluate

    real = model.evaluate.evaluate
    monkeypatch.setattr(model.evaluate, "evaluate", _no_inference)
    folder = tmp_path / "results"
    folder.mkdir()
    assert main(["eval", "--ckpt", str(ckpt), "--data", str(data), "--csv", str(folder)]) == 2
    assert "is a folder" in capsys.readouterr().err
    notes = tmp_path / "notes.csv"
    notes.write_text("my,own\n1,2\n")
    assert main(["eval", "--ckpt", str(ckpt), "--data", str(data), "--csv", str(notes)]) == 2
    assert "not written by this tool" in capsys.readouterr().err
    assert notes.read_text() == "my,own\n1,2\n"
    monkeypatch.setattr(model.evaluate, "evaluate", real)
    table = tmp_path / "eval.csv"
    for _ in range(2):  # a CSV this tool wrote is replaced, atomically (no temporary left)
        assert main(["eval", "--ckpt", str(ckpt), "--data", str(data), "--ops", "l0",
                     "--csv", str(table)]) == 0
    assert table.read_text().startswith("operator,gamma,")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["eval.csv", "notes.csv", "results",
                                                          "run"]
    assert oct(table.stat().st_mode & 0o777) != oct(0o600)  # ordinary permissions, not mkstemp's


def test_apply_onto_its_input_or_a_folder_is_refused_before_inference(tmp_path, ckpt,
                                                                      monkeypatch, capsys):
    monkeypatch.setattr(model.Predictor, "apply", _no_inference)
    src = _image(tmp_path / "in.png")
    before = src.read_bytes()
    sym, hard = tmp_path / "sym.png", tmp_path / "hard.png"
    sym.symlink_to(src)
    os.link(src, hard)
    for out in (src, sym, hard):
        assert main(["apply", "--ckpt", str(ckpt), "--op", "l0", "--gamma", "0.02", str(src),
                     str(out)]) == 2
        err = capsys.readouterr().err
        assert len(_errors(err)) == 1 and "input" in _errors(err)[0], err
    assert src.read_bytes() == before
    (tmp_path / "out.png").mkdir()
    assert main(["apply", "--ckpt", str(ckpt), "--op", "l0", "--gamma", "0.02", str(src),
                 str(tmp_path / "out.png")]) == 2
    assert "is a folder" in capsys.readouterr().err
    assert main(["apply", "--method", "bgu", "--op", "l0", "--gamma", "0.02", str(src),
                 str(src)]) == 2
    assert src.read_bytes() == before


def test_apply_replaces_a_link_at_the_output_not_its_target(tmp_path, ckpt, capsys):
    """A link to an image of the user's is refused unasked (the target is not ours); with
    --force the link itself is replaced, its target untouched (never written through)."""
    src, victim = _image(tmp_path / "in.png"), _image(tmp_path / "victim.png", seed=1)
    before = victim.read_bytes()
    out = tmp_path / "out.png"
    out.symlink_to(victim)
    assert main(["apply", "--ckpt", str(ckpt), "--op", "l0", "--gamma", "0.02", str(src),
                 str(out)]) == 2
    assert "--force replaces it" in _errors(capsys.readouterr().err)[0]
    assert out.is_symlink() and victim.read_bytes() == before
    assert main(["apply", "--ckpt", str(ckpt), "--op", "l0", "--gamma", "0.02", "--force",
                 str(src), str(out)]) == 0
    assert not out.is_symlink() and out.is_file() and victim.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.png", "out.png", "run",
                                                          "victim.png"]


@pytest.mark.parametrize("ext", [".png", ".jpg", ".tif"])
def test_apply_replaces_its_own_images_only(tmp_path, ckpt, capsys, ext):
    """An existing file at the output is replaced when apply wrote it (PNG and JPEG carry
    datagen.fs's mark; a TIFF cannot, so it needs --force like any image of the user's), never
    an image of the user's unasked; the mark leaves the pixels as OpenCV encoded them."""
    src = _image(tmp_path / "in.png", shape=(12, 9, 3))
    cmd = ["apply", "--ckpt", str(ckpt), "--op", "l0", "--gamma", "0.02", str(src)]
    mine = _image(tmp_path / f"mine{ext}", seed=3)
    before = mine.read_bytes()
    assert main(cmd + [str(mine)]) == 2
    err = _errors(capsys.readouterr().err)
    assert len(err) == 1 and "is not a file this tool wrote" in err[0], err
    assert mine.read_bytes() == before
    out = tmp_path / f"out{ext}"
    assert main(cmd + [str(out)]) == 0
    first = out.read_bytes()
    again = main(cmd + [str(out)])
    assert again == (2 if ext == ".tif" else 0)
    assert main(cmd + ["--force", str(out)]) == 0
    assert main(cmd + ["--force", str(mine)]) == 0
    assert mine.read_bytes() != before and out.read_bytes() == first  # deterministic
    # value level: the file's pixels are what OpenCV encodes of the prediction, mark or not
    with pytest.warns(Warning, match="unfinished"):  # the fixture's state is at iteration 0
        pred = model.load(ckpt).apply(cv2.imread(str(src))[..., ::-1], "l0", 0.02)
    ok, plain = cv2.imencode(ext, pred[..., ::-1])
    np.testing.assert_array_equal(cv2.imread(str(out)), cv2.imdecode(plain, cv2.IMREAD_COLOR))
    assert (len(first) > plain.size) == (ext != ".tif")


def test_atomic_writes_keep_the_old_content_when_interrupted(tmp_path):
    path = tmp_path / "a.bin"
    path.write_bytes(b"old")

    with pytest.raises(TypeError):
        atomic_write_bytes(path, object())  # fails after the temporary file was made
    assert path.read_bytes() == b"old" and sorted(tmp_path.iterdir()) == [path]
    atomic_write_bytes(path, b"new")
    assert path.read_bytes() == b"new" and sorted(tmp_path.iterdir()) == [path]
    with pytest.raises(ValueError, match="is a file, not a folder"):
        check_output(path / "x.csv")
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    with pytest.raises(ValueError, match="not a regular file"):
        check_output(fifo)
    with pytest.raises(ValueError, match="not written by this tool"):
        check_output(path, own_marker="operator,")
    assert check_output(tmp_path / "new.csv", own_marker="operator,") == tmp_path / "new.csv"


# --------------------------------------------------------------------- item 3: divergence
def _train_args(data, out: Path, *extra) -> list[str]:
    return ["train", "--data", str(data), "--ops", "l0", "--preset", "smoke", "--width", "4",
            "--iterations", "6", "--crop", "16", "--batch", "2", "--out", str(out), "--quiet",
            *extra]


def test_a_diverging_training_stops_with_an_error_and_saves_nothing(data, tmp_path, capsys):
    run = tmp_path / "run"
    assert main(_train_args(data, run, "--lr", "1e8")) == 2
    err = capsys.readouterr().err
    assert "error: training diverged at iteration" in err and "--lr" in err, err
    assert not (run / "last.pt").exists()
    assert "nan" not in (run / "log.csv").read_text()


@pytest.mark.parametrize("signame", ["SIGTERM", "SIGINT"])
def test_a_stopped_training_checkpoints_the_step_it_was_in(data, tmp_path, monkeypatch, capsys,
                                                           signame):
    """Ctrl-C (SIGINT) or ``kill``/``prepare`` ending it (SIGTERM) during a training: the step
    in progress finishes, a checkpoint of that iteration is written (not the last periodic
    one: nothing trained is lost), the command says so and exits 128 + the signal; the signal
    handlers are put back; ``--resume`` then ends where an uninterrupted training ends."""
    import signal

    real, calls = train_module._step, []
    sig = getattr(signal, signame)

    def stopped_at_4(*a, **k):  # the signal arrives during the 4th step (checkpoints: 3, 6)
        calls.append(1)
        if len(calls) == 4:
            os.kill(os.getpid(), sig)
        return real(*a, **k)

    before = {s_: signal.getsignal(s_) for s_ in (signal.SIGINT, signal.SIGTERM)}
    monkeypatch.setattr(train_module, "_step", stopped_at_4)
    run = tmp_path / "run"
    assert main(_train_args(data, run)) == 128 + sig
    err = capsys.readouterr().err
    assert f"stopped by {signame} at iteration 4 of 6" in err and "--resume" in err, err
    assert {s_: signal.getsignal(s_) for s_ in before} == before
    assert load(run)["iteration"] == 4
    monkeypatch.setattr(train_module, "_step", real)
    assert main(_train_args(data, run, "--resume")) == 0
    whole = tmp_path / "whole"
    assert main(_train_args(data, whole)) == 0
    resumed, want = load(run), load(whole)
    assert resumed["iteration"] == want["iteration"] == 6
    for k in want["model"]:
        assert torch.equal(resumed["model"][k], want["model"][k]), k
    # in-process callers (benchmarks run, pytest) see an interruption, as before
    calls.clear()
    monkeypatch.setattr(train_module, "_step", stopped_at_4)
    with pytest.raises(KeyboardInterrupt, match="at iteration 4"):
        train(data, ["l0"], tmp_path / "again", preset=TINY, progress=False)


def test_divergence_keeps_the_last_finite_checkpoint_untouched(data, tmp_path, monkeypatch):
    real, calls = train_module._step, []

    def poisoned(model_, net, *a, **k):  # the weights turn NaN after the checkpoint at 3
        calls.append(1)
        if len(calls) == 5:
            with torch.no_grad():
                next(net.parameters()).fill_(float("nan"))
        return real(model_, net, *a, **k)

    monkeypatch.setattr(train_module, "_step", poisoned)
    run = tmp_path / "run"
    with pytest.raises(DivergedError, match="iteration 5.*checkpoint of iteration 3"):
        train(data, ["l0"], run, preset=TINY, progress=False)
    assert load(run)["iteration"] == 3  # loads: finite, checksum intact
    assert [r.split(",")[0] for r in (run / "log.csv").read_text().split()[1:]] == \
        ["1", "2", "3", "4"]


def _nan_state() -> dict:
    state = tiny_state()
    name = next(iter(state["model"]))
    state["model"][name] = state["model"][name].clone().fill_(float("nan"))
    return state


def test_non_finite_weights_are_neither_saved_nor_loaded(tmp_path, data, capsys):
    good = tmp_path / "good" / "last.pt"
    save(good, tiny_state())
    before = good.read_bytes()
    with pytest.raises(ValueError, match="not finite"):
        save(good, _nan_state())
    assert good.read_bytes() == before and sorted(good.parent.iterdir()) == [good]
    # a file written by another program (or before this check) with NaN weights and a valid
    # checksum: refused on load
    state = {**_nan_state(), "format": CKPT_FORMAT}
    state["checksum"] = checksum(state)
    bad = tmp_path / "bad" / "last.pt"
    bad.parent.mkdir()
    torch.save(state, bad)
    with pytest.raises(ValueError, match="not finite"):
        model.load(bad)
    assert main(["eval", "--ckpt", str(bad), "--data", str(data)]) == 2
    src = _image(tmp_path / "in.png")
    assert main(["apply", "--ckpt", str(bad), "--op", "l0", "--gamma", "0.02", str(src),
                 str(tmp_path / "out.png")]) == 2
    assert "not finite" in capsys.readouterr().err
    assert not (tmp_path / "out.png").exists()


def test_non_finite_outputs_are_refused_by_apply_and_eval(tmp_path, data, capsys):
    state = tiny_state()  # finite weights so large that the forward pass overflows
    state["model"] = {k: v * 1e37 if v.is_floating_point() else v
                      for k, v in state["model"].items()}
    save(tmp_path / "last.pt", state)
    m = model.load(tmp_path)
    img = np.random.default_rng(0).integers(0, 256, (8, 8, 3), dtype=np.uint8)
    with pytest.raises(ValueError, match="not finite"):
        m.apply(img, "l0", 0.02)
    with pytest.raises(ValueError, match="not finite"):
        m.retune(img, "l0", 0.02)
    src = _image(tmp_path / "in.png")
    assert main(["apply", "--ckpt", str(tmp_path), "--op", "l0", "--gamma", "0.02", str(src),
                 str(tmp_path / "out.png")]) == 2
    assert not (tmp_path / "out.png").exists()
    assert main(["eval", "--ckpt", str(tmp_path), "--data", str(data)]) == 2
    assert "not finite" in capsys.readouterr().err


# --------------------------------------------------------------------- item 10: untrusted config
def _edited(edit) -> dict:
    state = tiny_state()
    state["config"] = dict(state["config"])
    edit(state)
    return state


def _drop(*path):
    def edit(state):
        target = state
        for k in path[:-1]:
            target = target[k]
        del target[path[-1]]
    return edit


def _set(key, value):
    def edit(state):
        state["config"][key] = value
    return edit


def _set_state(key, value):
    def edit(state):
        state[key] = value
    return edit


def _first_weight(state):
    k = next(iter(state["model"]))
    state["model"] = {**state["model"], k: state["model"][k][..., :2]}


BROKEN = {
    "width 200000": (_set("width", 200000), "width must be an integer in 1..2048"),
    "width 8, weights of 4": (_set("width", 8), "do not fit a decouple network"),
    "10^5 blocks": (_set("dilations", [2] * 100000), "dilations must be"),
    "no config": (_drop("config"), "has no model config"),
    "config a list": (_set_state("config", [1, 2]), "has no model config"),
    "no width": (_drop("config", "width"), "lacks width"),
    "no ops": (_drop("config", "ops"), "lacks ops"),
    "no arch": (_drop("config", "arch"), "lacks arch"),
    "unknown arch": (_set("arch", "resnet"), "unknown arch"),
    "unknown op": (_set("ops", ["nope"]), "nope"),
    "no weights": (_drop("model"), "has no weights"),
    "a weight missing": (lambda s: s.__setitem__("model", dict(list(s["model"].items())[1:])),
                         "do not fit.*lacks"),
    "a weight cut": (_first_weight, "do not fit"),
    "no trained range": (_drop("config", "trained_range"), "trained_range lacks l0"),
    "iteration text": (_set_state("iteration", "ten"), "iteration must be an integer"),
    "gamma text": (_set("gamma", "x"), "gamma must be a finite number"),
    "preset a list": (_set("preset", [1]), "preset must be a mapping"),
}


@pytest.mark.parametrize("case", BROKEN)
def test_an_untrusted_config_is_checked_before_anything_is_built(case, tmp_path, data,
                                                                  monkeypatch, capsys):
    edit, message = BROKEN[case]
    save(tmp_path / "last.pt", _edited(edit))
    import model.registry

    built = []
    real = model.registry._base
    monkeypatch.setattr(model.registry, "_base",
                        lambda cfg, *a: built.append(cfg.width) or real(cfg, *a))
    with pytest.raises(ValueError, match=message):
        model.load(tmp_path)
    assert all(w <= 8 for w in built)  # only on the meta device, and never the huge one
    src = _image(tmp_path / "in.png")
    assert main(["apply", "--ckpt", str(tmp_path), "--op", "l0", "--gamma", "0.02", str(src),
                 str(tmp_path / "out.png")]) == 2
    assert main(["eval", "--ckpt", str(tmp_path), "--data", str(data)]) == 2
    err = capsys.readouterr().err
    assert len(_errors(err)) == 2, err


# --------------------------------------------------------------------- item 15: run folders
def test_train_refuses_a_folder_that_is_not_a_run_folder(data, tmp_path, capsys):
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "config.json").write_text('{"my": "settings"}\n')
    (mine / "log.csv").write_text("date,weight\n2024-01-01,70\n")
    before = {p.name: p.read_bytes() for p in mine.iterdir()}
    assert main(_train_args(data, mine)) == 2
    assert "config.json that model train did not write" in _errors(capsys.readouterr().err)[0]
    assert {p.name: p.read_bytes() for p in mine.iterdir()} == before  # no .lock either
    notes = tmp_path / "notes"
    notes.mkdir()
    (notes / "todo.txt").write_text("x")
    for extra in ([], ["--resume"]):
        with pytest.raises(ValueError, match=r"not empty \(todo.txt\) and is not a run folder"):
            train(data, ["l0"], notes, preset=TINY, progress=False, resume=bool(extra))
    assert sorted(p.name for p in notes.iterdir()) == ["todo.txt"]
    (tmp_path / "file").write_text("x")
    with pytest.raises(ValueError, match="is a file"):
        train(data, ["l0"], tmp_path / "file", preset=TINY, progress=False)


def test_train_takes_an_empty_folder_and_its_own_interrupted_run(data, tmp_path, monkeypatch):
    empty = tmp_path / "empty"
    empty.mkdir()
    train(data, ["l0"], empty, preset=TINY.with_(iterations=2), progress=False)

    def killed(path, state):
        raise KeyboardInterrupt

    run = tmp_path / "run"
    run.mkdir()
    (run / "train.out").write_text("what benchmarks.prepare captures\n")
    monkeypatch.setattr(train_module, "save", killed)
    with pytest.raises(KeyboardInterrupt):  # before its first checkpoint
        train(data, ["l0"], run, preset=TINY, progress=False)
    monkeypatch.undo()
    assert (run / "config.json").is_file() and not (run / "last.pt").exists()
    (run / "eval.csv").write_text("operator,gamma\n")  # a file of the user's beside ours
    assert train(data, ["l0"], run, preset=TINY, progress=False)["iteration"] == 6
    # killed before the log's header was written: an empty log.csv beside our config.json
    (run / "last.pt").unlink()
    (run / "log.csv").write_bytes(b"")
    assert train(data, ["l0"], run, preset=TINY, progress=False)["iteration"] == 6
    assert (run / "log.csv").read_text().startswith("iteration,")
    # ...but not beside a config.json of someone else's, nor a log that is a link
    theirs = tmp_path / "theirs"
    theirs.mkdir()
    (theirs / "config.json").write_text('{"my": "settings"}\n')
    (theirs / "log.csv").write_bytes(b"")
    with pytest.raises(ValueError, match="config.json that model train did not write"):
        train(data, ["l0"], theirs, preset=TINY, progress=False)
    (run / "last.pt").unlink()
    (run / "log.csv").unlink()
    (tmp_path / "elsewhere.csv").write_bytes(b"")
    (run / "log.csv").symlink_to(tmp_path / "elsewhere.csv")
    with pytest.raises(ValueError, match="log.csv that model train did not write"):
        train(data, ["l0"], run, preset=TINY, progress=False)
    assert (tmp_path / "elsewhere.csv").read_bytes() == b""


# --------------------------------------------------------------------- small: messages
def test_a_refused_pickle_does_not_advise_weights_only_false(tmp_path):
    from test_model_safety import evil_checkpoint

    ckpt = evil_checkpoint(tmp_path / "evil.pt", tmp_path / "pwned")
    with pytest.raises(ValueError) as exc:
        model.load(ckpt)
    text = str(exc.value)
    assert "nothing is executed" in text and "posix.system" in text and "\n" not in text
    assert "weights_only" not in text and "False" not in text, text
    assert not (tmp_path / "pwned").exists()


def test_a_refused_resume_says_only_what_changed(data, tmp_path):
    run = tmp_path / "r"
    train(data, ["l0"], run, preset=TINY, stop_at=3, progress=False)
    with pytest.raises(ValueError) as exc:
        train(data, ["l0"], run, preset=TINY.with_(iterations=8), resume=True, progress=False)
    text = str(exc.value)
    assert "preset.iterations: 6 → 8" in text and "'lr'" not in text, text
    with pytest.raises(ValueError) as exc:
        train(data, ["l0", "wmf"], run, preset=TINY, resume=True, progress=False)
    text = str(exc.value)
    assert "ops: ['l0'] → ['l0', 'wmf']" in text and "trained_range.wmf: (none) → [" in text
    assert "{'l0'" not in text, text  # not the whole recorded dict


# --------------------------------------------------------------------- item 9: huge images
def test_an_image_too_large_for_memory_is_refused_before_any_work(tmp_path, monkeypatch,
                                                                 capsys):
    import model.predict

    save(tmp_path / "last.pt", tiny_state())
    m = model.load(tmp_path)
    img = np.zeros((300, 200, 3), np.uint8)
    per_px = model.predict.bytes_per_pixel("decouple", 4)
    monkeypatch.setattr(model.predict, "available_bytes", lambda device: 300 * 200 * per_px - 1)
    real_tensor = model.Predictor.__dict__["_tensor"]  # the staticmethod
    monkeypatch.setattr(model.Predictor, "_tensor", _no_inference)
    for call in (m.apply, m.retune):
        with pytest.raises(MemoryError, match=r"300x200 image needs about .* GiB .* at most "
                                              r"about 0.06 megapixels here"):
            call(img, "l0", 0.02)
    src = _image(tmp_path / "in.png", shape=(300, 200, 3))
    assert main(["apply", "--ckpt", str(tmp_path), "--op", "l0", "--gamma", "0.02", str(src),
                 str(tmp_path / "out.png")]) == 2
    assert "cannot be run in tiles" in _errors(capsys.readouterr().err)[0]
    assert not (tmp_path / "out.png").exists()
    monkeypatch.setattr(model.predict, "available_bytes", lambda device: 300 * 200 * per_px)
    monkeypatch.setattr(model.Predictor, "_tensor", real_tensor)
    assert m.apply(img, "l0", 0.02).shape == img.shape  # fits: runs


_MEASURE = """
import resource, sys, threading, time
import numpy as np, psutil, torch
torch.set_num_threads(1)
from model import registry
from model.config import ModelConfig
from model.predict import Predictor
arch, width, side = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
cfg = ModelConfig(arch=arch, ops=("l0",), width=width, dilations=(2, 4, 4, 8, 8, 16, 1),
                  gamma=0.02 if arch == "single" else None,
                  trained_range={"l0": [0.002, 0.2]}, preset={"iterations": 1})
net, _ = registry.build_model(cfg)
p = Predictor({"config": cfg.to_dict(), "model": net.state_dict(), "iteration": 1}, "cpu")
img = np.random.default_rng(0).integers(0, 256, (side, side, 3), dtype=np.uint8)
p.apply(img[:32, :32], "l0", 0.02)
proc = psutil.Process()
rss = proc.memory_info().rss
peak, done = [rss], threading.Event()
def watch():  # the peak of this inference alone (ru_maxrss also holds earlier peaks)
    while not done.is_set():
        peak[0] = max(peak[0], proc.memory_info().rss)
        time.sleep(0.0005)
t = threading.Thread(target=watch)
t.start()
p.apply(img, "l0", 0.02)
done.set()
t.join()
peak[0] = max(peak[0], proc.memory_info().rss)
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - rss, (peak[0] - rss) / side / side)
"""


@pytest.mark.parametrize("arch", ["single", "realtime"])
def test_the_memory_estimate_bounds_the_measured_peak(arch):
    import subprocess
    import sys

    import model.predict

    pytest.importorskip("psutil")
    out = subprocess.run([sys.executable, "-c", _MEASURE, arch, "32", "512"], check=True,
                         capture_output=True, text=True, timeout=300).stdout
    measured = float(out.split()[-1])
    assert measured <= model.predict.bytes_per_pixel(arch, 32), measured


# ------------------------------------------- damaged cards and checkpoints, too many threads
@pytest.mark.parametrize("damage", ["weights is a string", "no sha256", "no config",
                                    "operators not a list"])
@pytest.mark.parametrize("with_op", [False, True])
def test_a_damaged_card_is_one_error_line(tmp_path, capsys, damage, with_op):
    """A card of an exported model with an entry damaged (found by a hostile-input pass: each
    was a traceback, exit 1) is one ``error:`` line, exit 2, with or without --op (without it,
    apply reads the operators from the card, not with torch.load)."""
    import json
    import shutil

    root = Path(model.__file__).parent / "zoo"
    card = json.loads((root / "l0.json").read_text())
    {"weights is a string": lambda c: c.__setitem__("weights", "l0.safetensors"),
     "no sha256": lambda c: c["weights"].pop("sha256"),
     "no config": lambda c: c.pop("config"),
     "operators not a list": lambda c: c.__setitem__("operators", "l0")}[damage](card)
    (tmp_path / "l0.json").write_text(json.dumps(card))
    shutil.copy(root / "l0.safetensors", tmp_path / "l0.safetensors")
    src = _image(tmp_path / "in.png")
    cmd = ["apply", "--ckpt", str(tmp_path / "l0.json"), "--gamma", "0.02"]
    assert main(cmd + (["--op", "l0"] if with_op else []) + [str(src),
                                                             str(tmp_path / "o.png")]) == 2
    err = _errors(capsys.readouterr().err)
    assert len(err) == 1 and "is damaged" in err[0], err
    assert not (tmp_path / "o.png").exists()


def test_apply_without_op_reads_a_card_or_says_what_the_checkpoint_lacks(tmp_path, capsys):
    """Without --op, apply took the operators from ``torch.load(ckpt)["config"]``: a valid card
    (``NAME.json``) was "not a readable checkpoint (Unsupported operand 123)", a checkpoint
    without a config a KeyError traceback; a file that is no checkpoint at all gave the
    unpickler's bare number as its reason."""
    import shutil

    root = Path(model.__file__).parent / "zoo"
    for f in ("l0.json", "l0.safetensors"):
        shutil.copy(root / f, tmp_path / f)
    src = _image(tmp_path / "in.png", shape=(12, 10, 3))
    out = tmp_path / "o.png"
    assert main(["apply", "--ckpt", str(tmp_path / "l0.json"), "--gamma", "0.02", str(src),
                 str(out)]) == 0
    np.testing.assert_array_equal(cv2.imread(str(out))[..., ::-1], model.load("l0").apply(
        cv2.imread(str(src))[..., ::-1], "l0", 0.02))
    save(tmp_path / "bare.pt", {"weights": torch.zeros(2)})
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"junk\n")
    for ckpt, says in ((tmp_path / "bare.pt", "no model config"),
                       (junk, "not a file torch.save writes")):
        assert main(["apply", "--ckpt", str(ckpt), "--gamma", "0.02", str(src),
                     str(tmp_path / "x.png")]) == 2
        err = _errors(capsys.readouterr().err)
        assert len(err) == 1 and says in err[0], err


def test_too_many_threads_are_refused_before_any_work(tmp_path, capsys, monkeypatch):
    """``--threads 100000`` reserved so much for the thread pools that a library loaded later
    failed, and apply ended with a bare ``error:``; every command now refuses more than
    datagen.threads.max_threads() (4 per core, at least 8) with one line, before any work."""
    from benchmarks import prepare
    from datagen.cli import main as datagen_main
    from datagen.threads import max_threads

    monkeypatch.setattr(model.Predictor, "apply", _no_inference)
    src = _image(tmp_path / "in.png")
    too_many = str(max_threads() + 1)
    assert main(["apply", "--model", "l0", "--gamma", "0.02", "--threads", too_many, str(src),
                 str(tmp_path / "o.png")]) == 2
    assert datagen_main(["build", "--ops", "sr", "--images", str(tmp_path), "--out",
                         str(tmp_path / "d.h5"), "--threads", too_many]) == 2
    assert prepare.main(["--scale", "smoke", "--cache", str(tmp_path / "c"), "--tables",
                         "table1", "--ops", "l0", "--threads", too_many, "--list"]) == 2
    err = capsys.readouterr().err
    assert err.count(f"--threads {too_many} is more than {max_threads()}") == 3, err
    assert "Traceback" not in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.png"]


def test_verify_refuses_a_negative_sample_count(tmp_path, capsys):
    """``datagen verify --samples -1`` was taken, and every operator's check then failed
    ("negative dimensions are not allowed"): a healthy dataset reported as damaged."""
    from datagen.cli import main as datagen_main

    with pytest.raises(SystemExit) as exc:
        datagen_main(["verify", str(tmp_path / "any.h5"), "--samples", "-1"])
    assert exc.value.code == 2
    assert "--samples: must be an integer >= 0, got -1" in capsys.readouterr().err
