"""model: nothing executed, nothing corrupt, nothing lost (issue 13 items 2, 5, 8, 9; issue 15 items 3, 4, 7).

Each test reproduces a defect found by trying to break the model package: a checkpoint whose
pickle runs a command, flipped bytes in the weights, γ outside the law's domain, a log with
duplicate rows after a resume, two trainings of one folder, and bad command-line values.
"""
from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
import warnings
import zipfile
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

import model
import operators
from model import train as train_module
from model.checkpoint import CKPT_FORMAT, checksum, load, save
from model.cli import main, parser
from model.predict import ExtrapolationWarning, OutOfRangeError
from model.presets import get_preset
from model.registry import build_model
from model.train import RunLock, RunLockedError, train
from tiny_data import RecordingWriter

REPO = Path(__file__).resolve().parents[1]
TINY = get_preset("smoke").with_(width=4, dilations=(2,), crop=16, batch=3, iterations=6,
                                 log_every=1, ckpt_every=3)


def tiny_state(arch="decouple", ops=("l0",), seed=0) -> dict:
    """A checkpoint state of an untrained tiny network (no dataset needed)."""
    torch.manual_seed(seed)
    config = {"arch": arch, "ops": list(ops), "width": 4, "dilations": [2], "norm": "law",
              "op_code": "scalar", "mode": "grouped", "init": "paper", "residual": True,
              "gamma": 0.02 if arch == "single" else None,
              "trained_range": {o: list(operators.get(o).gamma_range) for o in ops},
              "preset": TINY.to_dict(), "seed": seed, "data": "tiny.h5", "data_digest": "0" * 64,
              "code": "test"}
    net, _ = build_model(config)
    return {"config": config, "model": net.state_dict(), "iteration": 0, "elapsed_s": 0.0}


class Evil:
    """Pickles as a call of os.system: whoever unpickles it with the full unpickler runs it."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def evil_checkpoint(path: Path, marker: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    state = tiny_state()
    torch.save({"format": CKPT_FORMAT, **state, "payload": Evil(marker)}, path)
    assert not marker.exists()
    return path


# --------------------------------------------------------------------- nothing executed
def test_a_checkpoint_that_would_run_a_command_is_refused_without_running_it(tmp_path, data):
    marker = tmp_path / "pwned"
    ckpt = evil_checkpoint(tmp_path / "evil" / "last.pt", marker)
    with pytest.raises(ValueError, match="nothing is executed"):
        model.load(ckpt)
    with pytest.raises(ValueError, match="not a readable checkpoint"):
        load(tmp_path / "evil")
    assert main(["eval", "--ckpt", str(ckpt), "--data", str(data)]) == 2
    src = tmp_path / "in.png"
    cv2.imwrite(str(src), np.zeros((8, 8, 3), np.uint8))
    assert main(["apply", "--ckpt", str(ckpt), "--op", "l0", "--gamma", "0.02", str(src),
                 str(tmp_path / "out.png")]) == 2
    # train --resume on a run folder holding such a last.pt
    assert main(["train", "--data", str(data), "--ops", "l0", "--preset", "smoke", "--width", "4",
                 "--iterations", "2", "--out", str(tmp_path / "evil"), "--resume",
                 "--quiet"]) == 2
    assert not marker.exists()
    assert not (tmp_path / "out.png").exists()


def test_checkpoints_hold_only_plain_data_and_load_weights_only(tmp_path):
    save(tmp_path / "a.pt", tiny_state())
    state = torch.load(tmp_path / "a.pt", weights_only=True)  # the strict unpickler reads it
    assert state["format"] == CKPT_FORMAT and isinstance(state["model"], dict)
    with pytest.raises(TypeError, match="plain data"):
        save(tmp_path / "b.pt", {**tiny_state(), "extra": object()})
    assert not (tmp_path / "b.pt").exists() and not list(tmp_path.glob("*.tmp"))


# --------------------------------------------------------------------- nothing corrupt
def _data_offset(path: Path, member_suffix: str) -> tuple[int, int]:
    with zipfile.ZipFile(path) as z:
        info = next(i for i in z.infolist() if i.filename.endswith(member_suffix))
    with open(path, "rb") as fh:
        fh.seek(info.header_offset + 26)
        name_len, extra_len = np.frombuffer(fh.read(4), "<u2")
    return info.header_offset + 30 + int(name_len) + int(extra_len), info.file_size


def test_flipped_bytes_in_the_weights_are_a_clear_refusal(tmp_path):
    path = tmp_path / "last.pt"
    save(path, tiny_state())
    good = model.load(path)
    state = load(path)
    assert state["checksum"] == checksum(state)
    # flip one byte in the middle of the largest tensor's stored bytes
    with zipfile.ZipFile(path) as z:
        biggest = max((i for i in z.infolist() if "/data/" in i.filename),
                      key=lambda i: i.file_size)
    offset, size = _data_offset(path, biggest.filename)
    raw = bytearray(path.read_bytes())
    raw[offset + size // 2] ^= 0x40
    path.write_bytes(bytes(raw))
    with pytest.raises(ValueError, match="corrupt: the checksum"):
        model.load(path)
    assert good.net is not None
    # a checksum that was stripped is also refused
    state.pop("checksum")
    torch.save(state, tmp_path / "nosum.pt")
    with pytest.raises(ValueError, match="no checksum"):
        model.load(tmp_path / "nosum.pt")


def test_checkpoints_are_written_through_unique_temporary_names(tmp_path):
    (tmp_path / "last.pt.tmp").mkdir()  # what another writer's fixed temporary name would be
    save(tmp_path / "last.pt", tiny_state())
    assert load(tmp_path / "last.pt")["iteration"] == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.pt", "last.pt.tmp"]


@pytest.mark.parametrize("gamma", [0.0, -0.01, float("nan"), float("inf")])
def test_gamma_outside_the_laws_domain_is_refused_strict_or_not(tmp_path, gamma):
    save(tmp_path / "last.pt", tiny_state())
    m = model.load(tmp_path)
    img = np.zeros((6, 6, 3), np.uint8)
    for strict in (True, False):
        with pytest.raises(ValueError, match="domain|finite"):
            m.apply(img, "l0", gamma, strict=strict)
    with pytest.raises(ValueError, match="domain|finite"):
        m.coder(["l0"], [gamma])
    src, dst = tmp_path / "in.png", tmp_path / "out.png"
    cv2.imwrite(str(src), img)
    assert main(["apply", "--ckpt", str(tmp_path), "--op", "l0", "--gamma", str(gamma),
                 "--extrapolate", str(src), str(dst)]) == 2
    assert not dst.exists()


def test_gamma_zero_message_names_the_domain(tmp_path, capsys):
    save(tmp_path / "last.pt", tiny_state())
    cv2.imwrite(str(tmp_path / "in.png"), np.zeros((6, 6, 3), np.uint8))
    assert main(["apply", "--ckpt", str(tmp_path), "--op", "l0", "--gamma", "0",
                 str(tmp_path / "in.png"), str(tmp_path / "o.png")]) == 2
    err = capsys.readouterr().err
    assert "outside" in err and "domain" in err and "l0" in err


# --------------------------------------------------------------------- one API policy
def test_extrapolation_is_refused_unless_allowed_and_then_warned(tmp_path, capsys):
    save(tmp_path / "last.pt", tiny_state())
    m = model.load(tmp_path)
    img = np.random.default_rng(0).integers(0, 256, (7, 9, 3), dtype=np.uint8)
    with pytest.raises(OutOfRangeError, match="strict=False"):
        m.apply(img, "l0", 0.5)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out = m.apply(img, "l0", 0.5, strict=False)
    assert len(caught) == 1 and caught[0].category is ExtrapolationWarning  # warned once
    assert "outside the trained range" in str(caught[0].message)
    assert out.shape == img.shape
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        m.apply(img, "L0", 0.05)  # inside: no warning; names are case-insensitive
    assert issubclass(ExtrapolationWarning, Warning)
    if hasattr(operators, "ExtrapolationWarning"):
        assert ExtrapolationWarning is operators.ExtrapolationWarning
    src = tmp_path / "in.png"
    cv2.imwrite(str(src), img[..., ::-1])  # the file holds img in RGB
    assert main(["apply", "--ckpt", str(tmp_path), "--op", "l0", "--gamma", "0.5", str(src),
                 str(tmp_path / "o.png")]) == 2
    err = capsys.readouterr().err
    assert "--extrapolate" in err and "strict=False" not in err
    with pytest.warns(ExtrapolationWarning):
        assert main(["apply", "--ckpt", str(tmp_path), "--op", "L0", "--gamma", "0.5",
                     "--extrapolate", str(src), str(tmp_path / "o.png")]) == 0
    np.testing.assert_array_equal(cv2.imread(str(tmp_path / "o.png"))[..., ::-1], out)


def test_float_images_in_0_1_are_taken_like_operators_apply(tmp_path):
    save(tmp_path / "last.pt", tiny_state())
    m = model.load(tmp_path)
    img = np.random.default_rng(1).integers(0, 256, (9, 11, 3), dtype=np.uint8)
    a = m.apply(img, "l0", 0.05)
    f = m.apply(img / 255.0, "l0", 0.05)
    assert f.dtype == np.float32 and f.shape == img.shape
    np.testing.assert_array_equal(operators.to_uint8(f.astype(np.float64)), a)
    ref = m.run(torch.from_numpy(img.transpose(2, 0, 1).copy())[None], "l0", 0.05)
    np.testing.assert_allclose(f, ref[0].permute(1, 2, 0).numpy() / 255.0, atol=1e-6)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        m.apply(img * 2.0, "l0", 0.05)
    with pytest.raises(ValueError, match="NaN"):
        m.apply(np.full((4, 4, 3), np.nan), "l0", 0.05)


# --------------------------------------------------------------------- nothing lost
def _rows(run: Path) -> list[dict]:
    with open(run / "log.csv") as fh:
        return list(csv.DictReader(fh))


class Crash(Exception):
    pass


def test_resume_after_a_crash_logs_each_iteration_once(data, tmp_path, monkeypatch):
    full = tmp_path / "full"
    train(data, ["l0"], full, preset=TINY, progress=False)
    real_save, calls = train_module.save, []

    def crash_on_second(path, state):
        calls.append(state["iteration"])
        if len(calls) == 2:  # the checkpoint at iteration 6 is never written
            raise Crash("killed")
        real_save(path, state)

    monkeypatch.setattr(train_module, "save", crash_on_second)
    with pytest.raises(Crash):
        train(data, ["l0"], tmp_path / "part", preset=TINY, progress=False)
    monkeypatch.setattr(train_module, "save", real_save)
    assert load(tmp_path / "part")["iteration"] == 3
    assert [int(r["iteration"]) for r in _rows(tmp_path / "part")] == [1, 2, 3, 4, 5, 6]
    train(data, ["l0"], tmp_path / "part", preset=TINY, resume=True, progress=False)
    rows = _rows(tmp_path / "part")
    assert [int(r["iteration"]) for r in rows] == [1, 2, 3, 4, 5, 6]
    assert [r["loss"] for r in rows] == [r["loss"] for r in _rows(full)]


_HOLD = """
import sys, time
from model.train import RunLock
with RunLock(sys.argv[1]):
    print("locked", flush=True)
    sys.stdin.readline()
"""


def test_two_trainings_of_one_folder_are_refused_naming_the_other(data, tmp_path, capsys):
    run = tmp_path / "run"
    holder = subprocess.Popen([sys.executable, "-c", _HOLD, str(run)], cwd=REPO,
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(RunLockedError, match=f"pid {holder.pid}"):
            train(data, ["l0"], run, preset=TINY, progress=False)
        assert main(["train", "--data", str(data), "--ops", "l0", "--preset", "smoke",
                     "--width", "4", "--iterations", "2", "--out", str(run), "--quiet"]) == 2
        assert f"pid {holder.pid}" in capsys.readouterr().err
        assert not (run / "last.pt").exists() and not (run / "log.csv").exists()
    finally:
        holder.communicate("\n", timeout=30)
    train(data, ["l0"], run, preset=TINY.with_(iterations=2), progress=False)  # free again
    with RunLock(run):  # released after training
        pass


def test_resume_with_other_settings_is_refused_and_the_config_kept(data, tmp_path):
    run = tmp_path / "r"
    train(data, ["l0"], run, preset=TINY, stop_at=3, progress=False)
    before = (run / "config.json").read_text()
    with pytest.raises(ValueError, match=r"preset\.iterations: 6 → 8"):
        train(data, ["l0"], run, preset=TINY.with_(iterations=8), resume=True, progress=False)
    assert (run / "config.json").read_text() == before
    assert load(run)["config"]["preset"]["iterations"] == 6
    state = train(data, ["L0"], run, preset=TINY, resume=True, progress=False, mode="linear")
    assert state["iteration"] == 6 and state["config"]["mode"] == "grouped"
    assert state["config"]["resumes"][0]["iteration"] == 3
    assert state["config"]["resumes"][0]["mode"] == "linear"


def test_config_json_is_the_full_readable_configuration(data, tmp_path):
    state = train(data, ["l0"], tmp_path / "r", preset=TINY.with_(iterations=2), progress=False)
    cfg = json.loads((tmp_path / "r" / "config.json").read_text())
    assert cfg == json.loads(json.dumps(state["config"]))
    assert cfg["preset"]["iterations"] == 2 and cfg["arch"] == "decouple"
    assert cfg["residual"] is True  # the preset's, as on the command line


def test_tensorboard_scalars_when_available(data, tmp_path, monkeypatch):
    logged = []
    monkeypatch.setattr(train_module, "summary_writer", lambda out: RecordingWriter(logged))
    train(data, ["l0"], tmp_path / "r", preset=TINY, progress=False)
    tags = {t for t, _, _ in logged}
    assert {"train/loss", "train/lr", "val/psnr", "closed"} <= tags
    losses = [(s, v) for t, v, s in logged if t == "train/loss"]
    assert [s for s, _ in losses] == [1, 2, 3, 4, 5, 6]
    assert [f"{v:.6g}" for _, v in losses] == [r["loss"] for r in _rows(tmp_path / "r")]
    psnrs = [v for t, v, _ in logged if t == "val/psnr"]
    assert len(psnrs) == 3 and all(5 < v <= 100 for v in psnrs)  # iterations 3, 6 and the end
    monkeypatch.undo()
    try:
        import tensorboard  # noqa: F401
    except ImportError:  # optional: without it, training logs no scalars and says nothing
        assert train_module.summary_writer(tmp_path / "x") is None


# --------------------------------------------------------------------- clear messages
@pytest.mark.parametrize("flag", ["--batch", "--width", "--iterations", "--crop"])
def test_zero_sizes_are_refused_by_the_cli(data, tmp_path, capsys, flag):
    with pytest.raises(SystemExit) as exc:
        main(["train", "--data", str(data), "--ops", "l0", "--out", str(tmp_path / "r"),
              flag, "0"])
    assert exc.value.code == 2
    assert f"argument {flag}: must be a positive integer, got 0" in capsys.readouterr().err
    with pytest.raises(ValueError, match="must be a positive integer"):
        get_preset("smoke").with_(**{flag[2:]: 0})


def test_devices_that_do_not_exist_are_named(data, tmp_path, capsys):
    save(tmp_path / "last.pt", tiny_state())
    with pytest.raises(ValueError, match="devices here: cpu"):
        model.load(tmp_path, device="gpu")
    with pytest.raises(ValueError, match="unknown device 'gpu'"):
        train(data, ["l0"], tmp_path / "r", preset=TINY, device="gpu", progress=False)
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA is not available"):
            model.load(tmp_path, device="cuda")
        assert main(["eval", "--ckpt", str(tmp_path), "--data", str(data),
                     "--device", "cuda"]) == 2
        assert "devices here: cpu" in capsys.readouterr().err


def test_apply_checks_the_output_extension_before_inference(tmp_path, monkeypatch, capsys):
    save(tmp_path / "last.pt", tiny_state())
    src = tmp_path / "in.png"
    cv2.imwrite(str(src), np.zeros((6, 6, 3), np.uint8))

    def no_inference(*a, **k):
        raise AssertionError("inference ran before the output path was checked")

    monkeypatch.setattr(model.Predictor, "apply", no_inference)
    for out in ("result", "result.xyz"):
        assert main(["apply", "--ckpt", str(tmp_path), "--op", "l0", "--gamma", "0.02",
                     str(src), str(tmp_path / out)]) == 2
        assert "not an image format" in capsys.readouterr().err
        assert not (tmp_path / out).exists()


def test_help_has_text_for_every_argument_and_no_none_defaults(capsys):
    p = parser()
    subs = next(a for a in p._actions if isinstance(a, type(p._subparsers._group_actions[0])))
    for name, sp in subs.choices.items():
        for action in sp._actions:
            if action.dest == "help":
                continue
            assert action.help, f"{name} {action.option_strings or action.dest} has no help"
        text = sp.format_help()
        assert "(default: None)" not in text and "(default: False)" not in text, name
    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0
    assert capsys.readouterr().out.startswith("decouple-ops model ")


def test_training_progress_bars_only_on_a_terminal(data, tmp_path, capfd):
    train(data, ["l0"], tmp_path / "r", preset=TINY.with_(iterations=2), progress=True)
    assert "it/s" not in capfd.readouterr().err  # stderr is not a terminal here


def test_operator_names_are_case_insensitive_in_train(data, tmp_path):
    assert main(["train", "--data", str(data), "--ops", "L0", "--preset", "smoke", "--width", "4",
                 "--iterations", "2", "--crop", "16", "--batch", "2",
                 "--out", str(tmp_path / "r"), "--quiet"]) == 0
    assert load(tmp_path / "r")["config"]["ops"] == ["l0"]
