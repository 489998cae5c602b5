"""model: batched = per-sample, γ matters, overfitting, checkpoints, resume, metrics, CLI, errors."""
from __future__ import annotations

import csv
import re
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

import model
from model.checkpoint import build_model
from model.cli import main
from model.data import GammaCoder, edge_map, prepare
from model.metrics import psnr, rgb2gray, ssim
from model.networks import OperatorNet
from model.presets import get_preset
from model.train import train

TINY = get_preset("smoke").with_(width=4, dilations=(2,), crop=16, batch=3, iterations=6,
                                 log_every=1, ckpt_every=3)


@pytest.mark.parametrize("code_dim", [1, 3])
def test_batched_modes_equal_the_per_sample_loop(code_dim):
    torch.manual_seed(0)
    net = OperatorNet("decouple", width=6, dilations=(2, 4), code_dim=code_dim)
    x, code = torch.randn(3, 4, 12, 16), torch.rand(3, code_dim)
    results = {}
    for mode in ("loop", "grouped", "linear"):
        net.mode = mode
        net.zero_grad()
        y = net(x, code)
        (y * torch.linspace(0, 1, y.numel()).reshape(y.shape)).sum().backward()
        results[mode] = (y.detach(), [p.grad.clone() for p in net.parameters()])
    for mode in ("grouped", "linear"):
        torch.testing.assert_close(results[mode][0], results["loop"][0], rtol=1e-4, atol=1e-4)
        for g, ref in zip(results[mode][1], results["loop"][1]):
            torch.testing.assert_close(g, ref, rtol=1e-3, atol=1e-3)


def test_fixed_weights_equal_generated_per_sample_weights():
    torch.manual_seed(1)
    net = OperatorNet("decouple", width=6, dilations=(2,), code_dim=1)
    x, code = torch.randn(2, 4, 8, 8), torch.tensor([[0.3], [0.3]])
    torch.testing.assert_close(net(x, fixed=net.fixed_weights(code[0])), net(x, code),
                               rtol=1e-5, atol=1e-4)


def test_output_changes_with_gamma():
    torch.manual_seed(2)
    net = OperatorNet("decouple", width=6, dilations=(2,), code_dim=1)
    x = torch.randn(1, 4, 8, 8)
    a, b = net(x, torch.tensor([[0.1]])), net(x, torch.tensor([[0.9]]))
    assert (a - b).abs().max() > 1e-3


def test_base_network_matches_the_paper():
    net = OperatorNet("decouple", width=64, code_dim=1)
    n_conv = sum(int(np.prod(s.shape)) for s in net.layout)
    assert len(net.layout) == 20 and n_conv == 696256  # TPAMI §6.1
    assert sum(p.numel() for n in net.norms for p in n.parameters()) == 2432
    assert sum(p.numel() for p in net.weight_net.parameters()) == 2 * 696256  # A and B


def test_edge_map_and_input_scaling():
    img = torch.zeros(1, 3, 3, 3, dtype=torch.uint8)
    img[0, :, 1, 1] = 12  # one bright pixel
    e = edge_map(img.float())[0, 0]
    # centre: 4 neighbours x 3 channels x 12 / 12; each neighbour: one difference x 3 channels / 12
    assert e[1, 1] == 12 and e[0, 1] == 3 and e[0, 0] == 0
    x = prepare(img)
    assert x.shape == (1, 4, 3, 3) and x[0, 0, 0, 0] == -128 and x[0, 3, 1, 1] == 12 - 128
    with pytest.raises(TypeError):
        prepare(img.float())


def test_gamma_coder():
    c = GammaCoder(("l0",))
    assert c.dim == 1
    torch.testing.assert_close(c(["l0", "l0"], [0.002, 0.2]), torch.tensor([[0.0], [1.0]]))
    assert c(["l0"], [0.02])[0, 0] == pytest.approx(0.5)  # log scale: the geometric middle
    assert GammaCoder(("l0",), norm="paper")(["l0"], [0.02])[0, 0] == pytest.approx(0.02)
    s = GammaCoder(("l0", "wls"))
    assert s.dim == 2 and s(["wls"], [1.0])[0, 1] == pytest.approx(0.2)
    o = GammaCoder(("l0", "wls"), op_code="onehot")
    assert o.dim == 3 and o(["wls"], [1.0])[0].tolist()[1:] == [0.0, 1.0]
    with pytest.raises(ValueError, match="finite"):
        c(["l0"], [float("nan")])
    with pytest.raises(ValueError, match="not 'wls'"):
        c(["wls"], [1.0])


def test_tiny_model_overfits_a_tiny_batch():
    torch.manual_seed(0)
    net = OperatorNet("decouple", width=8, dilations=(1,), code_dim=1)
    rng = np.random.default_rng(0)
    x = torch.from_numpy(rng.integers(0, 256, (2, 3, 16, 16), dtype=np.uint8))
    y = x.float().mean(dim=1, keepdim=True).expand(-1, 3, -1, -1)  # a gray-conversion "operator"
    code = torch.tensor([[0.2], [0.7]])
    opt = torch.optim.Adam(net.parameters(), lr=0.01)
    losses = []
    for _ in range(150):
        loss = torch.nn.functional.mse_loss(net(prepare(x), code), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.05 * losses[0]


def _losses(run: Path) -> list[float]:
    with open(run / "log.csv") as fh:
        return [float(r["loss"]) for r in csv.DictReader(fh)]


def test_checkpoint_roundtrip_and_resume_continues_the_curve(data, tmp_path):
    full = train(data, ["l0"], tmp_path / "full", preset=TINY, progress=False)
    half = train(data, ["l0"], tmp_path / "part", preset=TINY, stop_at=4, progress=False)
    assert half["iteration"] == 4 and len(_losses(tmp_path / "part")) == 4
    with pytest.raises(FileExistsError, match="--resume"):
        train(data, ["l0"], tmp_path / "part", preset=TINY, progress=False)
    resumed = train(data, ["l0"], tmp_path / "part", preset=TINY, resume=True, progress=False)
    assert resumed["iteration"] == 6
    assert _losses(tmp_path / "part") == _losses(tmp_path / "full")
    for k, v in full["model"].items():
        torch.testing.assert_close(resumed["model"][k], v)

    m1, m2 = model.load(tmp_path / "full"), model.load(tmp_path / "full" / "last.pt")
    img = np.random.default_rng(3).integers(0, 256, (21, 30, 3), dtype=np.uint8)  # odd size
    a, b = m1.apply(img, "l0", 0.05), m2.apply(img, "l0", 0.05)
    assert a.shape == img.shape and a.dtype == np.uint8
    np.testing.assert_array_equal(a, b)
    with pytest.raises(ValueError, match="other settings"):
        train(data, ["l0"], tmp_path / "part", preset=TINY.with_(width=6), resume=True,
              progress=False)


def test_single_gamma_baseline_and_strict(data, tmp_path):
    state = train(data, ["l0"], tmp_path / "s", preset=TINY.with_(batch=2), arch="single", gamma=0.02,
                  progress=False)
    assert state["config"]["arch"] == "single"
    net, _ = build_model(state["config"])
    assert len(net.weight_net) == 0 and len(net.weights) == len(net.layout)  # all static
    m = model.load(tmp_path / "s")
    img = np.zeros((8, 8, 3), np.uint8)
    m.apply(img, "l0", 0.02, strict=True)
    with pytest.raises(ValueError, match="trained at"):
        m.apply(img, "l0", 0.05, strict=True)
    with pytest.raises(ValueError, match="trained at"):
        m.apply(img, "l0", 0.05)  # strict by default, like operators.apply
    with pytest.warns(UserWarning, match="does not depend on γ"):
        m.apply(img, "l0", 0.05, strict=False)
    with pytest.raises(ValueError, match="--gamma"):
        train(data, ["l0"], tmp_path / "s2", preset=TINY, arch="single", progress=False)


def test_bad_inputs_are_clear_errors(data, tmp_path):
    train(data, ["l0"], tmp_path / "r", preset=TINY.with_(iterations=1), progress=False)
    m = model.load(tmp_path / "r")
    good = np.zeros((8, 8, 3), np.uint8)
    with pytest.raises(TypeError, match="uint8 or float"):
        m.apply(good.astype(np.int32), "l0", 0.02)
    with pytest.raises(ValueError, match="HxWx3"):
        m.apply(good[..., 0], "l0", 0.02)
    with pytest.raises(ValueError, match="2x2"):
        m.apply(good[:1], "l0", 0.02)
    with pytest.raises(ValueError, match="trained for"):
        m.apply(good, "wls", 1.0)
    with pytest.raises(ValueError, match="finite"):
        m.apply(good, "l0", float("nan"))
    with pytest.raises(ValueError, match="outside the trained range"):
        m.apply(good, "l0", 0.5, strict=True)
    with pytest.raises(ValueError, match="outside the trained range"):
        m.apply(good, "l0", 0.5)  # strict by default, like operators.apply
    with pytest.warns(UserWarning, match="outside the trained range"):
        assert m.apply(good, "l0", 0.5, strict=False).shape == good.shape  # on purpose
    with pytest.raises(ValueError, match="unknown operator"):
        train(data, ["nope"], tmp_path / "x", preset=TINY, progress=False)
    with pytest.raises(ValueError, match="no pairs for"):
        train(data, ["wls"], tmp_path / "x", preset=TINY, progress=False)
    with pytest.raises(FileNotFoundError):
        model.load(tmp_path / "missing")
    (tmp_path / "junk.pt").write_bytes(b"junk")
    with pytest.raises(ValueError, match="not a readable checkpoint"):
        model.load(tmp_path / "junk.pt")


def test_metrics_follow_the_protocol():
    a = np.full((16, 16, 3), 100, np.uint8)
    b = a.copy()
    b[0, 0, 0] = 110  # MSE = 100 / 768
    assert psnr(a, b) == pytest.approx(10 * np.log10(255 ** 2 * 768 / 100))
    assert psnr(a, a) == 100.0
    assert rgb2gray(np.array([[[255, 255, 255], [10, 20, 30]]], np.uint8)).tolist() == [[255, 18]]
    rng = np.random.default_rng(0)
    x = cv2.GaussianBlur(rng.integers(0, 256, (48, 48, 3), dtype=np.uint8), (5, 5), 2)
    assert ssim(x, x) == 1.0
    noisy = np.clip(x + rng.normal(0, 20, x.shape), 0, 255).astype(np.uint8)
    # independent Wang et al. SSIM: Gaussian σ = 1.5 truncated at 3.5σ, border of 5 excluded
    from scipy.ndimage import gaussian_filter

    g1, g2 = rgb2gray(x).astype(float), rgb2gray(noisy).astype(float)
    f = lambda z: gaussian_filter(z, 1.5, truncate=3.5)  # noqa: E731
    mu1, mu2 = f(g1), f(g2)
    s11, s22, s12 = f(g1 * g1) - mu1 ** 2, f(g2 * g2) - mu2 ** 2, f(g1 * g2) - mu1 * mu2
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    smap = ((2 * mu1 * mu2 + c1) * (2 * s12 + c2)) / ((mu1 ** 2 + mu2 ** 2 + c1) * (s11 + s22 + c2))
    assert ssim(x, noisy) == pytest.approx(smap[5:-5, 5:-5].mean(), abs=1e-6)
    assert 0 < ssim(x, noisy) < 0.95
    with pytest.raises(TypeError):
        psnr(a.astype(float), b)
    with pytest.raises(ValueError):
        ssim(a, b[:8])


def test_cli_train_eval_apply(data, tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["train", "--data", str(data), "--ops", "l0", "--preset", "smoke",
                 "--iterations", "4", "--width", "4", "--crop", "16", "--batch", "2",
                 "--out", str(run), "--quiet"]) == 0
    assert main(["eval", "--ckpt", str(run), "--data", str(data),
                 "--csv", str(tmp_path / "eval.csv")]) == 0
    out = capsys.readouterr().out
    assert "psnr" in out and "ave." in out
    rows = list(csv.DictReader(open(tmp_path / "eval.csv")))
    assert sorted(float(r["gamma"]) for r in rows if r["gamma"] != "ave.") == \
        [0.002, 0.00431, 0.02, 0.09283, 0.2]
    assert [r["gamma"] for r in rows][-1] == "ave."
    src = tmp_path / "in.png"
    cv2.imwrite(str(src), np.random.default_rng(0).integers(0, 256, (17, 23, 3), dtype=np.uint8))
    assert main(["apply", "--ckpt", str(run), "--op", "l0", "--gamma", "0.05", str(src),
                 str(tmp_path / "out.png")]) == 0
    assert cv2.imread(str(tmp_path / "out.png")).shape == (17, 23, 3)
    assert main(["apply", "--ckpt", str(run), "--op", "l0", "--gamma", "0.05",
                 str(tmp_path / "missing.png"), str(tmp_path / "o.png")]) == 2
    assert main(["apply", "--ckpt", str(run), "--op", "l0", "--gamma", "5", "--strict",
                 str(src), str(tmp_path / "o.png")]) == 2
    assert "outside the trained range" in capsys.readouterr().err


# ------------------------------------------------------------------ one typed training config
#: each rule of an architecture with its exact one-line error (model.registry.Arch.check, the
#: one place they are checked): (arch, ops, gamma, other flags, error)
ARCH_RULES = [
    ("single", "l0,wmf", None, [], "--arch single trains one operator, got ['l0', 'wmf']"),
    ("single", "l0", None, [], "--arch single needs exactly one operator and --gamma"),
    ("hdrnet", "shock", 1.0, [], "shock has no parameter (a fixed-effect operator): no --gamma"),
    ("single", "l0", 5.0, [], "l0 lambda=5 is outside the trained range [0.002, 0.2]; pass "
                              "strict=False to extrapolate on purpose"),
    ("decouple", "l0", 0.02, [], "--gamma is for --arch single/hdrnet; decouple trains on all γ"),
    ("dni", "l0", 0.02, [], "--gamma is for --arch single/hdrnet; dni trains on all γ (the two "
                            "ends of the range)"),
    ("adafm", "l0", None, ["--norm", "paper"],
     "--arch adafm interpolates in the law's normalised γ: --norm law only"),
    ("dni", "l0", None, ["--iterations", "1"],
     "--arch dni trains two end points: --iterations >= 2"),
]


@pytest.mark.parametrize("arch,ops,gamma,flags,error", ARCH_RULES)
def test_an_architecture_checks_its_rules_once(arch, ops, gamma, flags, error, tmp_path, capsys):
    """The registry entry refuses what it cannot train, with one line; the config, train() and
    the command line say exactly that (before any file is touched)."""
    from model import registry
    from model.train_config import TrainConfig

    norm = flags[1] if "--norm" in flags else "law"
    iterations = int(flags[1]) if "--iterations" in flags else 30
    with pytest.raises(ValueError, match="^" + re.escape(error) + "$"):
        registry.get(arch).check(ops.split(","), gamma, norm=norm, iterations=iterations)
    with pytest.raises(ValueError, match="^" + re.escape(error) + "$"):
        TrainConfig.from_preset("smoke", ops=ops.split(","), arch=arch, gamma=gamma, norm=norm,
                                iterations=iterations)
    argv = ["train", "--data", str(tmp_path / "none.h5"), "--out", str(tmp_path / "r"),
            "--preset", "smoke", "--ops", ops, "--arch", arch, *flags, "--quiet"]
    assert main(argv + (["--gamma", str(gamma)] if gamma is not None else [])) == 2
    assert capsys.readouterr().err.splitlines()[-1] == f"error: {error}"
    assert not (tmp_path / "r").exists()


def test_a_train_config_is_what_the_preset_and_flags_give():
    import dataclasses

    from model.presets import AUTHORS_JOINT_STEPS
    from model.train_config import TrainConfig

    c = TrainConfig.from_preset("paper", ops=["L0", "wmf"], lr=0.005, crop=64, init="conv")
    assert c.ops == ("l0", "wmf") and c.arch == "decouple" and c.init == "conv"
    assert c.preset.init == "paper"  # the preset's is the default; the config's is trained
    assert c.residual is get_preset("paper").residual  # not given: the preset's
    assert c.preset.lr == 0.005 and c.preset.lr_final == 0.0005  # as --lr
    assert c.preset.lr_steps == tuple((f, r / 2) for f, r in AUTHORS_JOINT_STEPS)  # joint, scaled
    assert c.preset.joint_lr_steps == () and c.preset.crop == 64 and not c.preset.batch_crop
    assert TrainConfig.from_preset("paper", ops="l0", crop=64, batch_crop=True).preset.batch_crop
    assert TrainConfig.from_preset("smoke", ops="l0", width=None) == \
        TrainConfig(ops=("l0",), preset="smoke")  # None: the preset's, as an absent flag
    assert TrainConfig.from_preset("smoke", ops="l0", arch="NORM:7").arch == "norm:7"
    with pytest.raises(dataclasses.FrozenInstanceError):
        c.seed = 1
    with pytest.raises(TypeError, match=r"^unknown training setting\(s\) widht: a TrainConfig"):
        TrainConfig.from_preset("smoke", ops="l0", widht=4)
    with pytest.raises(ValueError, match=r"^norm must be one of \['law', 'paper'\], got 'lw'$"):
        TrainConfig(ops=("l0",), preset="smoke", norm="lw")
    with pytest.raises(ValueError, match=r"^ops must name each operator once, got \['l0', 'l0'\]$"):
        TrainConfig(ops=("l0", "L0"), preset="smoke")
    with pytest.raises(TypeError, match="^preset must be a model.presets.Preset or its name"):
        TrainConfig(ops=("l0",), preset=3)


def test_train_takes_the_config_that_config_json_records(data, tmp_path):
    """train(config, data, out) trains what the earlier keyword form trains; config.json holds
    every field of the config (read back equal); --resume with another config is one line
    naming the fields that differ."""
    import dataclasses
    import json

    from model.train_config import TrainConfig

    cfg = TrainConfig(ops=("l0",), preset=TINY.with_(iterations=2), seed=3)
    state = train(cfg, data, tmp_path / "new", progress=False)
    legacy = train(data, ["l0"], tmp_path / "old", preset=TINY.with_(iterations=2), seed=3,
                   progress=False)
    assert state["config"] == legacy["config"]
    for k, v in legacy["model"].items():
        torch.testing.assert_close(state["model"][k], v, rtol=0, atol=0)
    recorded = json.loads((tmp_path / "new" / "config.json").read_text())
    assert recorded == state["config"] and TrainConfig.from_dict(recorded) == cfg
    assert {k: recorded.get(k, "none") for k in cfg.to_dict()} == cfg.to_dict()
    with pytest.raises(ValueError, match=r"^the recorded preset lacks width, dilations, crop, "
                                         r"batch, iterations \(written by an early version\)"):
        TrainConfig.from_dict({"arch": "decouple", "ops": ["l0"], "preset": {"name": "smoke"}})
    with pytest.raises(ValueError) as err:
        train(dataclasses.replace(cfg, seed=4, init="conv"), data, tmp_path / "new",
              resume=True, progress=False)
    msg = str(err.value)
    assert "\n" not in msg and "(recorded → given): init: 'paper' → 'conv'; seed: 3 → 4. " in msg
    with pytest.raises(TypeError, match="takes no arch: they are fields of the TrainConfig"):
        train(cfg, data, tmp_path / "x", arch="single")
