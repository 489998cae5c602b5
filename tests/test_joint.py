"""Joint multi-operator models (issue 12): the authors' operator codes, constant γ for
fixed-effect operators, blind restoration, and the per-operator evaluation protocol.

Codes are hand-written from the papers (Fan et al. ECCV 2018 §4.5, TPAMI 2019 §4.4, §5;
../shared/docs/paper.md §2, §5, §7); the single-channel metrics are recomputed from the HDF5
file read with h5py and formulas written out here.
"""
from __future__ import annotations

import math

import cv2
import h5py
import numpy as np
import pandas as pd
import pytest
import torch
from skimage.metrics import structural_similarity

import model
from datagen.dataset import PairDataset
from model import registry
from model.cli import main
from model.config import ModelConfig
from model.data import GammaCoder
from model.evaluate import evaluate
from model.presets import get_preset
from model.train import EpochBatches, train
from tiny_data import tiny_build

JOINT = ("l0", "shock", "sr", "denoise")  # a filter, a fixed-effect filter, two restorations
TINY = get_preset("smoke").with_(width=4, dilations=(2,), crop=16, batch=2, iterations=2,
                                 log_every=1, ckpt_every=2)
GRAY = np.array([0.298936021293775, 0.587043074451121, 0.114020904255103])  # MATLAB rgb2gray


@pytest.fixture(scope="module")
def joint_data(tmp_path_factory):
    """Three 40x40 images, crops of 24 (SR's modcrop keeps 24 for every scale)."""
    return tiny_build(tmp_path_factory.mktemp("joint"), "joint.h5", JOINT, seed=3, size=24,
                      per_image=2)


@pytest.fixture(scope="module")
def joint_run(joint_data, tmp_path_factory):
    out = tmp_path_factory.mktemp("run")
    state = train(joint_data, JOINT, out, preset=TINY, progress=False)
    return out, state


def _codes(ops, **kw):
    cfg = ModelConfig(arch=kw.pop("arch", "decouple"), ops=ops, width=4, dilations=(2,), **kw)
    coder = GammaCoder.from_config(ModelConfig.from_dict(cfg.to_dict()))  # via a checkpoint dict
    return cfg, coder


# ------------------------------------------------------------------------------- the codes
def test_joint_codes_are_the_papers():
    # ECCV 10-operator model (shock among the six filters): γ then L0 .1 ... denoise 1.0;
    # the restorations' γ disabled (0.02 in the authors' normalisation), shock has none
    ops = ("l0", "wls", "rtv", "rgf", "wmf", "shock", "jpeg", "rain", "sr", "denoise")
    cfg, coder = _codes(ops, norm="paper")
    expected = {"l0": 0.1, "wls": 0.2, "rtv": 0.3, "rgf": 0.4, "wmf": 0.5, "shock": 0.6,
                "jpeg": 0.7, "rain": 0.8, "sr": 0.9, "denoise": 1.0}
    gammas = {"l0": 0.02, "wls": 1.0, "rtv": 0.01, "rgf": 5.5, "wmf": 3.25, "shock": None,
              "jpeg": 20, "rain": 1.0, "sr": 3, "denoise": 25}
    first = {"l0": 0.02, "wls": 1.0 / 50, "rtv": 0.008 * 4.125 + 0.002, "rgf": 4.5 * 0.022 + 0.002,
             "wmf": 2.25 * 0.022 + 0.002, "shock": 0.02, "jpeg": 0.02, "rain": 0.02, "sr": 0.02,
             "denoise": 0.02}
    assert coder.dim == 2 and cfg.gamma_dim == 1
    assert cfg.const_gamma == {o: 0.02 for o in ("shock", "jpeg", "rain", "sr", "denoise")}
    for op in ops:
        code = coder([op], [gammas[op]])[0].tolist()
        assert code == pytest.approx([first[op], expected[op]], abs=1e-7), op
    # TPAMI Table 3: LLF replaces shock at .6; --norm law: constants 0.5, γ on the law's [0, 1]
    ops = ("l0", "wls", "rtv", "rgf", "wmf", "llf", "sr", "denoise", "jpeg", "rain")
    cfg, coder = _codes(ops)
    assert cfg.op_codes["llf"] == [0.6] and cfg.op_codes["sr"] == [0.9]
    assert cfg.const_gamma == {"sr": 0.5, "denoise": 0.5, "jpeg": 0.5, "rain": 0.5}
    assert coder(["llf"], [5])[0].tolist() == pytest.approx([0.5, 0.6])
    assert coder(["l0"], [0.002])[0].tolist() == pytest.approx([0.0, 0.1])
    assert coder(["rain"], [2.0])[0].tolist() == pytest.approx([0.5, 0.8])


def test_restoration_and_realtime_codes():
    # the 4-restoration model: a 1-D code, the operator's code only (deblock .1 ... denoise .4)
    cfg, coder = _codes(("sr", "denoise", "jpeg", "rain"))
    assert cfg.gamma_dim == 0 and coder.dim == 1 and cfg.const_gamma == {}
    assert {o: coder([o], [g])[0].tolist() for o, g in
            (("jpeg", 10), ("rain", 0.5), ("sr", 2), ("denoise", 50))} == \
        {"jpeg": [pytest.approx(0.1)], "rain": [pytest.approx(0.2)], "sr": [pytest.approx(0.3)],
         "denoise": [pytest.approx(0.4)]}
    net, _ = registry.build_model(cfg)
    assert net.state_dict()["weight_net.0.weight"].shape[1] == 1  # Linear(1, ·)
    # the realtime model over the ten TPAMI filters: its own order (paper.md §7)
    ten = ("l0", "wls", "rtv", "rgf", "wmf", "llf", "llf_remap", "wls_enhance", "style", "pencil")
    rt = {"l0": 0.1, "wls": 0.2, "rtv": 0.3, "llf": 0.4, "llf_remap": 0.5, "wls_enhance": 0.6,
          "style": 0.7, "pencil": 0.8, "rgf": 0.9, "wmf": 1.0}
    for arch in ("realtime", "norm:7", "decouple"):  # the same ten in the Table 12 ablation
        cfg, coder = _codes(ten, arch=arch, norm="paper")
        assert {o: v[0] for o, v in cfg.op_codes.items()} == pytest.approx(rt)
        assert cfg.const_gamma == {o: 0.02 for o in ten[6:]}
    # the realtime arch over a mix with restorations keeps the joint table
    cfg, _ = _codes(("l0", "llf", "sr"), arch="realtime")
    assert cfg.op_codes == {"l0": [0.1], "llf": [0.6], "sr": [0.9]}
    # one operator: no operator code; a lone degradation keeps its γ, a fixed-effect op a constant
    cfg, coder = _codes(("sr",))
    assert coder.dim == 1 and coder(["sr"], [4])[0].tolist() == [1.0] and cfg.const_gamma == {}
    assert _codes(("pencil",))[1](["pencil"], [None])[0].tolist() == [0.5]
    with pytest.raises(ValueError, match="onehot"):  # both .6 in the joint table
        _codes(("shock", "llf"))
    cfg, coder = _codes(("shock", "llf"), op_code="onehot")
    assert coder(["shock"], [None])[0].tolist() == [0.5, 1.0, 0.0]


def test_a_checkpoint_from_before_joint_models_keeps_its_code():
    """A config without gamma_dim/const_gamma (written before) codes every γ as then: a
    degradation in a joint model was not blind."""
    cfg = ModelConfig(arch="decouple", ops=("l0", "sr"), width=4, dilations=(2,))
    assert cfg.const_gamma == {"sr": 0.5}
    old = {k: v for k, v in cfg.to_dict().items() if k not in ("gamma_dim", "const_gamma")}
    coder = GammaCoder.from_config(ModelConfig.from_dict(old))
    assert coder.dim == 2 and coder.uses_gamma("sr")
    assert coder(["sr"], [2])[0].tolist() == pytest.approx([0.0, 0.9])
    assert coder(["sr"], [4])[0].tolist() == pytest.approx([1.0, 0.9])


def test_gamma_of_a_fixed_effect_operator_is_refused():
    coder = GammaCoder(("l0", "shock"))
    torch.testing.assert_close(coder(["shock", "shock"], [None, math.nan]),
                               torch.tensor([[0.5, 0.6], [0.5, 0.6]]))
    with pytest.raises(ValueError, match="fixed-effect"):
        coder(["shock"], [0.3])
    with pytest.raises(ValueError, match="domain|not allowed"):  # blind, but still checked
        GammaCoder(("l0", "sr"))(["sr"], [5])


# ------------------------------------------------------------------- training and evaluation
def test_batches_follow_the_concatenated_datasets(joint_data):
    """Operators are drawn in proportion to their pairs, as the authors' concatenated
    datasets: over one epoch each pair once (fixed-effect operators: one pair per crop)."""
    ds = PairDataset(joint_data, JOINT, "train")
    counts = {o: int((ds.index[:, 0] == k).sum()) for k, o in enumerate(ds.ops)}
    assert counts["shock"] * 2 == counts["l0"] and counts["sr"] == 3 * counts["shock"]
    batches = EpochBatches(len(ds), 2, 0, 0, len(ds) // 2)
    seen = np.concatenate([[i for i, _ in b] for b in batches])
    drawn = {o: int((ds.index[seen, 0] == k).sum()) for k, o in enumerate(ds.ops)}
    assert drawn == counts


@pytest.fixture(scope="module")
def joint_eval(joint_run, joint_data, tmp_path_factory):
    """``python -m model eval`` of the joint model (evaluate() with the ave. rows), as a table."""
    csv = tmp_path_factory.mktemp("eval") / "eval.csv"
    assert main(["eval", "--ckpt", str(joint_run[0]), "--data", str(joint_data), "--csv",
                 str(csv)]) == 0
    return pd.read_csv(csv, dtype={"gamma": str})


def test_joint_model_trains_saves_loads_and_evaluates(joint_run, joint_data, joint_eval):
    out, state = joint_run
    cfg = state["config"]
    assert cfg["op_codes"] == {"l0": [0.1], "shock": [0.6], "sr": [0.9], "denoise": [1.0]}
    assert cfg["const_gamma"] == {"shock": 0.5, "sr": 0.5, "denoise": 0.5}
    assert cfg["gamma_dim"] == 1
    p = model.load(out)
    assert p.coder.to_dict() == GammaCoder.from_config(ModelConfig.from_dict(cfg)).to_dict()
    rows = list(zip(joint_eval.operator, joint_eval.gamma))
    assert rows == [("l0", g) for g in ("0.002", "0.00431", "0.02", "0.09283", "0.2", "ave.")] \
        + [("shock", "fixed"), ("shock", "ave.")] \
        + [("sr", g) for g in ("2", "3", "4", "ave.")] \
        + [("denoise", g) for g in ("15", "25", "50", "ave.")]
    assert np.isfinite(joint_eval[["psnr", "ssim", "identity_psnr"]].to_numpy()).all()
    # a blind restoration is still reported per test γ, each over its own pairs
    srs = joint_eval[joint_eval.operator == "sr"]
    assert srs.images.tolist()[:3] == [len(PairDataset(joint_data, ["sr"], "test", gamma=g))
                                       for g in (2, 3, 4)]
    assert srs.psnr.iloc[3] == pytest.approx(srs.psnr.iloc[:3].mean())
    # evaluate() on one operator gives the same rows as the joint table
    shock = evaluate(p, joint_data, ops=["shock"])
    assert math.isnan(shock.gamma[0]) and shock.images[0] == joint_eval.images[6]
    assert shock.psnr[0] == pytest.approx(joint_eval.psnr[6], abs=1e-9)


def test_blind_outputs_do_not_depend_on_gamma_filters_do(joint_run):
    p = model.load(joint_run[0])
    img = np.random.default_rng(2).integers(0, 256, (14, 18, 3), dtype=np.uint8)
    assert not p.uses_gamma("sr") and not p.uses_gamma("shock") and p.uses_gamma("l0")
    sr = [p.run(torch.from_numpy(img.transpose(2, 0, 1).copy())[None], "sr", g)
          for g in (2, 4, None)]
    torch.testing.assert_close(sr[0], sr[1], rtol=0, atol=0)
    torch.testing.assert_close(sr[0], sr[2], rtol=0, atol=0)
    # accepted and ignored, even outside the trained range; still checked against the domain
    np.testing.assert_array_equal(p.apply(img, "denoise", 90.0), p.apply(img, "denoise", 15.0))
    with pytest.raises(ValueError, match="not allowed"):
        p.apply(img, "sr", 5)
    lo, hi = (p.run(torch.from_numpy(img.transpose(2, 0, 1).copy())[None], "l0", g)
              for g in (0.002, 0.2))
    assert (lo - hi).abs().max() > 1e-3
    assert p.apply(img, "shock", None).shape == img.shape
    with pytest.raises(ValueError, match="fixed-effect"):
        p.apply(img, "shock", 0.5)


def _gray(rgb_uint8: np.ndarray) -> np.ndarray:
    return np.floor(np.clip(rgb_uint8.astype(np.float64) @ GRAY, 0, 255) + 0.5)


@pytest.mark.parametrize("op", ["sr", "denoise"])
def test_single_channel_tasks_are_scored_on_one_channel(joint_run, joint_data, joint_eval, op):
    """evaluate() equals PSNR/SSIM of the output's MATLAB rgb2gray against the stored single
    channel, recomputed from the file (h5py) and the formulas."""
    p = model.load(joint_run[0])
    table = joint_eval[(joint_eval.operator == op) & (joint_eval.gamma != "ave.")]
    table = table.assign(gamma=table.gamma.astype(float))
    with h5py.File(joint_data, "r") as f:
        g = f["ops"][op]
        test = g["split"][:] == 1
        gammas, inputs, targets = g["gamma"][:][test], g["input"][:][test], g["target"][:][test]
    assert inputs.ndim == 3  # stored single-channel
    for row in table.itertuples():
        sel = np.isclose(gammas, row.gamma)
        ps, ss, ips = [], [], []
        for x, t in zip(inputs[sel], targets[sel]):
            x3 = torch.from_numpy(np.repeat(x[None], 3, axis=0))[None]
            y = p.run(x3, op, row.gamma)[0].double().numpy().transpose(1, 2, 0)
            y = np.floor(np.clip(y, 0, 255) + 0.5)  # MATLAB rounding to uint8
            one = _gray(y)
            mse = np.mean((one - t.astype(np.float64)) ** 2)
            ps.append(100.0 if mse == 0 else min(100.0, 10 * np.log10(255.0 ** 2 / mse)))
            ss.append(structural_similarity(one.astype(np.uint8), t, gaussian_weights=True,
                                            sigma=1.5, use_sample_covariance=False,
                                            data_range=255))
            imse = np.mean((x.astype(np.float64) - t.astype(np.float64)) ** 2)
            ips.append(10 * np.log10(255.0 ** 2 / imse))
        assert row.images == sel.sum() > 0
        assert row.psnr == pytest.approx(np.mean(ps), abs=1e-9)
        assert row.ssim == pytest.approx(np.mean(ss), abs=1e-9)
        assert row.identity_psnr == pytest.approx(np.mean(ips), abs=1e-9)


def test_crop_capped_single_network_of_a_fixed_effect_operator_and_apply_without_gamma(
        joint_data, tmp_path, capsys):
    """A preset crop larger than the stored pairs (24 here) is capped and recorded; the
    single-γ baseline of a fixed-effect operator trains on its 'train' pairs (no γ, no γ
    range); `model apply` takes such an operator without --gamma and refuses one."""
    state = train(joint_data, ["sr", "denoise"], tmp_path / "r", preset=TINY.with_(crop=32,
                  iterations=1), progress=False)
    assert state["config"]["preset"]["crop"] == 24
    state = train(joint_data, ["shock"], tmp_path / "s", preset=TINY.with_(iterations=1),
                  arch="single", progress=False)
    assert state["config"]["trained_range"] == {"shock": []} and state["config"]["gamma"] is None
    with pytest.raises(ValueError, match="no --gamma"):
        train(joint_data, ["shock"], tmp_path / "s2", preset=TINY, arch="single", gamma=1.0,
              progress=False)
    img = tmp_path / "in.png"
    cv2.imwrite(str(img), np.full((9, 11, 3), 90, np.uint8))
    out = tmp_path / "o.png"
    assert main(["apply", "--ckpt", str(tmp_path / "s"), "--op", "shock", str(img), str(out)]) == 0
    assert cv2.imread(str(out)).shape == (9, 11, 3)
    assert main(["apply", "--ckpt", str(tmp_path / "s"), "--op", "shock", "--gamma", "1",
                 str(img), str(out)]) == 2
    assert main(["apply", "--method", "bgu", "--op", "l0", str(img), str(out)]) == 2
    assert "--gamma is needed for l0" in capsys.readouterr().err
    capsys.readouterr()
    assert main(["apply", "--ckpt", str(tmp_path / "r"), "--op", "sr", "--gamma", "3",
                 str(img), str(out)]) == 0
    assert "blind to sr's s: --gamma 3 is accepted and has no effect" in capsys.readouterr().err
