"""Value-level checks of inference: the predictor, the residual output form and ``model apply``.

Every figure is compared with one computed here by another route (a direct forward pass with the
γ code written out by hand, the image file read back), so a predictor that ignores γ, a CLI that
swaps channels or an output that loses its offset fails (issue 16, bugs 1, 3 and 5).
"""
from __future__ import annotations

import math
import re
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

import model
import operators
from model.bgu import bgu
from model.checkpoint import load as load_state, save as save_state
from model.cli import main
from model.data import prepare
from model.networks import OperatorNet
from model.predict import OutOfRangeError
from model.presets import get_preset
from model.train import train

REPO = Path(__file__).resolve().parents[1]
TINY = get_preset("smoke").with_(width=4, dilations=(2,), crop=16, batch=2, iterations=2,
                                 log_every=1, ckpt_every=2)
L0_LO, L0_HI = 0.002, 0.2  # l0's λ range (the registry's; law log-uniform)


def l0_code(gamma: float) -> torch.Tensor:
    """The γ code of a one-operator ``norm="law"`` model, written out: log-scale position in range."""
    return torch.tensor([[math.log(gamma / L0_LO) / math.log(L0_HI / L0_LO)]])


def coloured(h: int, w: int, seed: int = 0) -> np.ndarray:
    """A smooth RGB image whose R and B channels differ everywhere that matters."""
    rng = np.random.default_rng(seed)
    img = cv2.resize(rng.integers(0, 256, (5, 6, 3), dtype=np.uint8), (w, h),
                     interpolation=cv2.INTER_CUBIC)
    img[..., 0] = np.clip(img[..., 0].astype(int) // 2 + 120, 0, 255)  # R bright
    img[..., 2] //= 3  # B dark
    return img


@pytest.fixture(scope="module", params=[True, False], ids=["residual", "direct"])
def run(request, data, tmp_path_factory) -> Path:
    """A decouple l0 model after two training iterations, its last layer scaled up so that γ and
    the channel order move the uint8 output by many levels (a fresh network's last conv is small)."""
    out = tmp_path_factory.mktemp("run")
    train(data, ["l0"], out, preset=TINY, progress=False, init="conv", residual=request.param)
    pred = model.load(out)
    with torch.no_grad():
        for p in pred.net.weight_net[-1].parameters():
            p.mul_(40.0)
    state = load_state(out)
    state["model"] = pred.net.state_dict()
    save_state(out / "last.pt", state)
    return out


def direct(pred: model.Predictor, img: np.ndarray, gamma: float) -> torch.Tensor:
    """The network run on one image with the per-sample code path (no cached weights)."""
    x = prepare(torch.from_numpy(np.ascontiguousarray(img.transpose(2, 0, 1)))[None])
    with torch.no_grad():
        return pred.net(x, l0_code(gamma))[0].permute(1, 2, 0)


def matlab_uint8(y: torch.Tensor) -> np.ndarray:
    return np.floor(np.clip(y.numpy().astype(np.float64), 0, 255) + 0.5).astype(np.uint8)


def test_apply_follows_gamma_and_equals_a_direct_forward_pass(run):
    pred = model.load(run)
    assert pred.config["norm"] == "law"  # the code above is the law normalisation
    img = coloured(16, 20)
    outs = {}
    for g in (0.005, 0.1, 0.005, 0.05):  # back and forth: no stale weights may be reused
        out = pred.apply(img, "l0", g)
        ref = direct(pred, img, g)
        assert out.dtype == np.uint8 and out.shape == img.shape
        f = pred.run(torch.from_numpy(img.transpose(2, 0, 1).copy())[None], "l0", g)[0]
        torch.testing.assert_close(f.permute(1, 2, 0), ref, rtol=0, atol=2e-3)
        diff = np.abs(out.astype(int) - matlab_uint8(ref).astype(int))
        assert diff.max() <= 1 and np.mean(diff == 0) > 0.99, g
        if g in outs:
            np.testing.assert_array_equal(out, outs[g])
        outs[g] = out
    assert np.abs(outs[0.005].astype(int) - outs[0.1].astype(int)).max() >= 10
    assert np.mean(outs[0.005] != outs[0.05]) > 0.05


def test_apply_odd_size_pads_by_replication(run):
    """An odd-sized image: the network input (RGB and edge map, computed on the image itself) is
    padded to even size by replicating its last row and column, and the output cropped back."""
    pred = model.load(run)
    img = coloured(15, 21, seed=3)
    x = prepare(torch.from_numpy(img.transpose(2, 0, 1).copy())[None])
    x = torch.cat([x, x[:, :, -1:]], dim=2)
    x = torch.cat([x, x[:, :, :, -1:]], dim=3)
    with torch.no_grad():
        ref = pred.net(x, l0_code(0.02))[0, :, :15, :21].permute(1, 2, 0)
    out = pred.apply(img, "l0", 0.02)
    diff = np.abs(out.astype(int) - matlab_uint8(ref).astype(int))
    assert out.shape == img.shape and diff.max() <= 1 and np.mean(diff == 0) > 0.99


def test_residual_output_is_the_input_when_the_last_conv_is_zero():
    torch.manual_seed(0)
    rng = np.random.default_rng(1)
    x8 = torch.from_numpy(rng.integers(0, 256, (2, 3, 8, 10), dtype=np.uint8))
    for arch in ("decouple", "single"):
        net = OperatorNet(arch, width=4, dilations=(2,), code_dim=1, residual=True)
        code = torch.tensor([[0.3], [0.8]]) if arch == "decouple" else None
        y = net(prepare(x8), code)
        assert (y - x8.float()).abs().max() > 1  # the last conv does contribute ...
        with torch.no_grad():
            if arch == "decouple":
                net.weight_net[-1].weight.zero_()
                net.weight_net[-1].bias.zero_()
            else:
                net.weights[-1].zero_()
        torch.testing.assert_close(net(prepare(x8), code), x8.float(), rtol=0, atol=0)  # ... else: identity
        direct_net = OperatorNet(arch, width=4, dilations=(2,), code_dim=1, residual=False)
        direct_net.load_state_dict(net.state_dict())
        assert direct_net(prepare(x8), code).abs().max() == 0  # the direct form: ReLU(0)


def write_rgb(path: Path, rgb: np.ndarray) -> None:
    assert cv2.imwrite(str(path), np.ascontiguousarray(rgb[..., ::-1]))  # OpenCV writes BGR


def read_rgb(path: Path) -> np.ndarray:
    return np.ascontiguousarray(cv2.imread(str(path), cv2.IMREAD_COLOR)[..., ::-1])


def test_cli_apply_writes_what_the_python_call_returns(run, tmp_path):
    img = coloured(18, 22, seed=7)
    src = tmp_path / "in.png"
    write_rgb(src, img)
    np.testing.assert_array_equal(read_rgb(src), img)  # PNG round trip is lossless
    expected = model.load(run).apply(img, "l0", 0.03)
    swapped = model.load(run).apply(img[..., ::-1].copy(), "l0", 0.03)
    assert np.abs(expected.astype(int) - swapped.astype(int)).max() > 2  # channel order matters

    dst = tmp_path / "out.png"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run([sys.executable, "-m", "model", "apply", "--ckpt", str(run), "--op", "l0",
                           "--gamma", "0.03", str(src), str(dst)], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    np.testing.assert_array_equal(read_rgb(dst), expected)


def test_cli_apply_bgu_writes_what_the_python_call_returns(tmp_path, capsys):
    img = coloured(40, 48, seed=11)
    src, dst = tmp_path / "in.png", tmp_path / "out.png"
    write_rgb(src, img)
    expected = operators.to_uint8(bgu(img, "llf", 5, factor=2))
    swapped = operators.to_uint8(bgu(img[..., ::-1].copy(), "llf", 5, factor=2))[..., ::-1]
    assert np.abs(expected.astype(int) - swapped.astype(int)).max() > 2  # llf mixes channels
    assert main(["apply", "--method", "bgu", "--factor", "2", "--op", "llf", "--gamma", "5",
                 str(src), str(dst)]) == 0
    assert "wrote" in capsys.readouterr().out
    np.testing.assert_array_equal(read_rgb(dst), expected)


@pytest.fixture(scope="module")
def two_models(data, tmp_path_factory):
    """A decouple and a single-γ (λ = 0.02) l0 model after one iteration (only their γ checks
    are under test here)."""
    out = tmp_path_factory.mktemp("check")
    train(data, ["l0"], out / "d", preset=TINY.with_(iterations=1), progress=False)
    train(data, ["l0"], out / "s", preset=TINY.with_(iterations=1), arch="single", gamma=0.02,
          progress=False)
    return model.load(out / "d"), model.load(out / "s")


@pytest.fixture(scope="module")
def joint_model(data, tmp_path_factory):
    """A decouple model of l0 and wmf (a 2-component code) after one iteration."""
    out = tmp_path_factory.mktemp("joint")
    train(data, ["l0", "wmf"], out, preset=TINY.with_(iterations=1), progress=False, init="conv")
    return model.load(out)


def test_check_takes_the_exact_ends_of_the_range_and_refuses_just_outside(two_models):
    """The paper's test γ include both ends of each range: a strict check must accept them exactly
    and refuse the next float outside, with the whole message (and warn at the caller's line)."""
    pred, _ = two_models
    assert pred.gamma_range("l0") == (L0_LO, L0_HI)
    assert pred.check("l0", L0_LO, strict=True) == L0_LO
    assert pred.check("l0", L0_HI, strict=True) == L0_HI
    for g in (np.nextafter(L0_LO, 0), np.nextafter(L0_HI, 1)):
        msg = (f"l0: lambda={g:g} is outside the trained range [0.002, 0.2]; pass strict=False "
               "to extrapolate on purpose")
        with pytest.raises(OutOfRangeError, match=f"^{re.escape(msg)}$"):
            pred.check("l0", g, strict=True)
    img = np.zeros((4, 4, 3), np.uint8)
    with pytest.warns(operators.ExtrapolationWarning) as rec:
        pred.apply(img, "l0", 0.5, strict=False)
    assert [str(w.message) for w in rec] == [
        "l0: lambda=0.5 is outside the trained range [0.002, 0.2]: extrapolating"]
    assert rec[0].filename == __file__  # stacklevel: the user's call, not the library's


def test_check_of_a_single_gamma_network_is_exact(two_models):
    _, single = two_models
    assert single.check("l0", 0.02 * (1 + 5e-10), strict=True) == 0.02 * (1 + 5e-10)
    msg = ("this single network was trained at lambda=0.02 only, not 0.02; pass strict=False to "
           "use it anyway")
    with pytest.raises(OutOfRangeError, match=f"^{re.escape(msg)}$"):
        single.check("l0", 0.02 * (1 + 1.5e-9), strict=True)
    img = np.zeros((4, 4, 3), np.uint8)
    with pytest.warns(operators.ExtrapolationWarning) as rec:
        single.apply(img, "l0", 0.05, strict=False)
    assert [str(w.message) for w in rec] == [
        "this single network was trained at lambda=0.02 only, not 0.05; its output does not "
        "depend on γ"]
    assert rec[0].filename == __file__


def test_float_images_in_and_out(run):
    """float input in [0, 1] → float32 output on [0, 1], unclipped: the uint8 path's forward pass
    divided by 255; the batch path takes float tensors on 0–255 as it takes uint8 ones."""
    pred = model.load(run)
    img = coloured(16, 20)
    f = img.astype(np.float64) / 255.0
    out = pred.apply(f, "l0", 0.05)
    assert out.dtype == np.float32 and out.shape == (16, 20, 3)
    np.testing.assert_allclose(out, direct(pred, img, 0.05).numpy() / 255.0, rtol=0, atol=2e-5)
    x = torch.from_numpy(img.transpose(2, 0, 1).copy())[None]
    torch.testing.assert_close(pred.run(x.float(), "l0", 0.05), pred.run(x, "l0", 0.05),
                               rtol=0, atol=2e-3)
    edge = f.copy()
    edge[0, 0], edge[0, 1] = 0.0, 1.0  # both ends of [0, 1] are valid
    assert pred.apply(edge, "l0", 0.05).shape == (16, 20, 3)


def test_image_checks_accept_the_limits_and_say_what_is_wrong(run):
    pred = model.load(run)
    assert pred.apply(coloured(2, 2), "l0", 0.02).shape == (2, 2, 3)  # the smallest allowed
    f = coloured(6, 8).astype(np.float32) / 255
    cases = [
        (np.zeros((1, 5, 3), np.uint8), ValueError, "image must be at least 2x2, got (1, 5)"),
        (np.zeros((8, 8), np.uint8), ValueError, "image must be HxWx3 RGB, got shape (8, 8)"),
        (np.zeros((4, 4, 3), np.int32), TypeError,
         "image must be uint8 or float in [0, 1] RGB, got int32"),
        (np.where(np.arange(8)[:, None] < 1, np.nan, f), ValueError, "image has NaN or inf values"),
    ]
    for lo, hi in ((-0.25, 0.5), (0.0, 1.5)):
        g = f.copy()
        g[0, 0, 0], g[0, 0, 1] = lo, hi
        cases.append((g, ValueError, f"a float image must be in [0, 1], got values in "
                                     f"[{g.min():g}, {g.max():g}]"))
    for img, err, msg in cases:
        with pytest.raises(err, match=f"^{re.escape(msg)}$"):
            pred.apply(img, "l0", 0.02)


def test_one_odd_side_is_padded_and_weights_are_computed_once(run):
    pred = model.load(run)
    img = coloured(15, 20, seed=5)  # odd height, even width
    x = prepare(torch.from_numpy(img.transpose(2, 0, 1).copy())[None])
    x = torch.cat([x, x[:, :, -1:]], dim=2)
    with torch.no_grad():
        ref = pred.net(x, l0_code(0.02))[0, :, :15].permute(1, 2, 0)
    diff = np.abs(pred.apply(img, "l0", 0.02).astype(int) - matlab_uint8(ref).astype(int))
    assert diff.max() <= 1 and np.mean(diff == 0) > 0.99
    w = pred.weights("l0", 0.02)
    assert pred.weights("l0", 0.02) is w  # cached: a slider re-uses them
    with pytest.raises(OutOfRangeError):
        pred.check("l0", 0.5)  # strict unless told otherwise


def test_a_two_operator_model_applies_its_written_out_code(joint_model):
    """[γ normalised by the law, the operator's code from the authors' joint table]: l0 .1,
    wmf .5 (paper.md §5); wmf's r is uniform on [1, 10]."""
    pred = joint_model
    img = coloured(12, 14, seed=2)
    x = prepare(torch.from_numpy(img.transpose(2, 0, 1).copy())[None])
    for op, g, code in (("wmf", 5.5, [(5.5 - 1) / 9, 0.5]),
                        ("l0", 0.02, [l0_code(0.02).item(), 0.1])):
        with torch.no_grad():
            ref = pred.net(x, torch.tensor([code]))[0].permute(1, 2, 0)
        out = pred.run(x.new_tensor(img.transpose(2, 0, 1))[None].to(torch.uint8), op, g)[0]
        torch.testing.assert_close(out.permute(1, 2, 0), ref, rtol=0, atol=2e-3)
