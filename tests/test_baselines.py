"""The learned baselines: the γ-as-input network (concat) and DBL/HDRNet (slicing, training)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import model
from model.checkpoint import build_model
from model.cli import main
from model.data import prepare
from model.hdrnet import HDRNet, apply_affine, slice_grid
from model.networks import OperatorNet, base_layout
from model.train import train

from test_model import TINY


# ------------------------------------------------------------------------------- concat
def test_concat_shares_the_base_network():
    torch.manual_seed(0)
    concat = OperatorNet("concat", width=8, dilations=(2,), code_dim=2, residual=True)
    single = OperatorNet("single", width=8, dilations=(2,), residual=True)
    decouple = OperatorNet("decouple", width=8, dilations=(2,), code_dim=2, residual=True)
    assert concat.layout[1:] == single.layout[1:] == decouple.layout[1:] == base_layout(8, (2,))[1:]
    assert type(concat).forward is type(decouple).forward  # one forward for every arch
    assert concat.layout[0].cin == 4 + 2 and single.layout[0].cin == 4
    # with the γ channels' weights at zero, concat computes exactly what single computes
    with torch.no_grad():
        for k, w in enumerate(single.weights):
            concat.weights[k].copy_(w if k else torch.cat([w, torch.zeros(8, 2, 3, 3)], dim=1))
    x = prepare(torch.randint(0, 256, (2, 3, 16, 16), dtype=torch.uint8))
    code = torch.tensor([[0.1, 0.3], [0.9, 0.3]])
    torch.testing.assert_close(concat(x, code), single(x))


def test_concat_sees_gamma_and_needs_a_code():
    torch.manual_seed(0)
    net = OperatorNet("concat", width=8, dilations=(2,), code_dim=1)
    x = prepare(torch.randint(0, 256, (1, 3, 16, 16), dtype=torch.uint8))
    a, b = net(x, torch.tensor([[0.0]])), net(x, torch.tensor([[1.0]]))
    assert (a - b).abs().max() > 1e-3  # through the zero-padded border (see model.networks)
    with pytest.raises(ValueError, match="concat needs a code"):
        net(x)


def test_concat_trains_on_all_gammas(data, tmp_path):
    state = train(data, ["l0"], tmp_path / "c", preset=TINY, arch="concat", progress=False)
    assert state["config"]["arch"] == "concat" and state["iteration"] == TINY.iterations
    m = model.load(tmp_path / "c")
    img = np.random.default_rng(0).integers(0, 256, (13, 18, 3), dtype=np.uint8)
    assert m.apply(img, "l0", 0.01).shape == img.shape
    with pytest.raises(ValueError, match="--gamma is for"):
        train(data, ["l0"], tmp_path / "c2", preset=TINY, arch="concat", gamma=0.02,
              progress=False)


# ------------------------------------------------------------------------------- HDRNet
def _guide(h=12, w=20, seed=0):
    return torch.rand(1, h, w, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def test_slicing_along_x_only_changes_x():
    grid = torch.arange(6, dtype=torch.float64).expand(1, 1, 4, 3, 6).clone()  # varies along W
    out = slice_grid(grid, _guide())[0, 0]
    assert torch.allclose(out, out[:1].expand_as(out))  # the same in every row
    assert (out[0, 1:] >= out[0, :-1]).all() and out[0, -1] > out[0, 0]


def test_slicing_along_y_only_changes_y():
    grid = torch.arange(3, dtype=torch.float64)[:, None].expand(1, 1, 4, 3, 6).clone()
    out = slice_grid(grid, _guide())[0, 0]
    assert torch.allclose(out, out[:, :1].expand_as(out))  # the same in every column
    assert (out[1:, 0] >= out[:-1, 0]).all() and out[-1, 0] > out[0, 0]


def test_slicing_along_intensity_follows_the_guide_mapped_to_minus_one_one():
    d = 8
    grid = torch.arange(d, dtype=torch.float64)[:, None, None].expand(1, 1, d, 3, 6).clone()
    guide = _guide()
    out = slice_grid(grid, guide)[0, 0]
    # bins centred on (k + ½) / d: value = guide * d - ½, clamped to [0, d - 1]
    torch.testing.assert_close(out, (guide[0] * d - 0.5).clamp(0, d - 1))
    edges = slice_grid(grid, torch.tensor([[[0.0, 0.5, 1.0]]], dtype=torch.float64))[0, 0, 0]
    torch.testing.assert_close(edges, torch.tensor([0.0, 3.5, 7.0], dtype=torch.float64))


def test_identity_affines_return_the_input():
    rgb = torch.rand(2, 3, 5, 7)
    eye = torch.cat([torch.eye(3), torch.zeros(3, 1)], dim=1).reshape(12)
    grid = eye[None, :, None, None, None].expand(2, 12, 8, 4, 4).contiguous()
    out = apply_affine(slice_grid(grid, rgb.mean(dim=1)), rgb)
    torch.testing.assert_close(out, rgb)


def test_hdrnet_shapes_and_bad_settings():
    net = HDRNet(lowres=64)
    x = prepare(torch.randint(0, 256, (2, 3, 40, 30), dtype=torch.uint8))
    assert net.coefficients((x[:, :3] + 128) / 255).shape == (2, 12, 8, 16, 16)
    y = net(x)
    assert y.shape == (2, 3, 40, 30) and torch.isfinite(y).all()
    assert 0 <= net.guide(torch.rand(1, 3, 4, 4)).min() and net.guide(torch.rand(1, 3, 4, 4)).max() <= 1
    with pytest.raises(ValueError, match="power of 2"):
        HDRNet(lowres=100)
    with pytest.raises(ValueError, match="N, 4, H, W"):
        net(torch.zeros(1, 3, 8, 8))


def test_hdrnet_trains_applies_and_refuses_other_gammas(data, tmp_path):
    preset = TINY.with_(batch=2, hdrnet_lowres=32, hdrnet_lr=1e-3)
    state = train(data, ["l0"], tmp_path / "h", preset=preset, arch="hdrnet", gamma=0.02,
                  progress=False)
    assert state["config"]["lowres"] == 32
    net, _ = build_model(state["config"])
    assert isinstance(net, HDRNet)
    m = model.load(tmp_path / "h")
    img = np.random.default_rng(1).integers(0, 256, (15, 22, 3), dtype=np.uint8)  # odd sizes
    out = m.apply(img, "l0", 0.02, strict=True)
    assert out.shape == img.shape and out.dtype == np.uint8
    with pytest.raises(ValueError, match="hdrnet network was trained at"):
        m.apply(img, "l0", 0.05, strict=True)
    with pytest.raises(ValueError, match="--arch hdrnet needs"):
        train(data, ["l0"], tmp_path / "h2", preset=preset, arch="hdrnet", progress=False)


def test_cli_trains_the_baselines(data, tmp_path):
    common = ["--data", str(data), "--ops", "l0", "--preset", "smoke", "--iterations", "2",
              "--crop", "16", "--batch", "2", "--quiet"]
    assert main(["train", *common, "--arch", "concat", "--width", "4",
                 "--out", str(tmp_path / "c")]) == 0
    assert main(["train", *common, "--arch", "hdrnet", "--gamma", "0.02",
                 "--out", str(tmp_path / "h")]) == 0
    assert main(["eval", "--ckpt", str(tmp_path / "h"), "--data", str(data)]) == 0
    import cv2

    src = tmp_path / "in.png"
    cv2.imwrite(str(src), np.random.default_rng(0).integers(0, 256, (70, 83, 3), dtype=np.uint8))
    assert main(["apply", "--method", "bgu", "--op", "l0", "--gamma", "0.02", str(src),
                 str(tmp_path / "bgu.png")]) == 0
    assert cv2.imread(str(tmp_path / "bgu.png")).shape == (70, 83, 3)
    assert main(["apply", "--method", "bgu", "--op", "l0", "--gamma", "0.02", "--factor", "8",
                 str(src), str(tmp_path / "x.png")]) == 2  # too small for the grid at 8x
    assert main(["apply", "--op", "l0", "--gamma", "0.02", str(src), str(tmp_path / "x.png")]) == 2
