"""Checkpoints written before the architecture registry (format v1) load and evaluate identically.

:func:`old_checkpoint` writes, by hand and without the model package, a checkpoint exactly as the
code before issue 11 wrote it (format ``"decouple-ops model v1"``, no checksum, the config as a
hand-kept dict, the state dict under the old key names). The figures in ``EXPECTED`` were
computed from such checkpoints by that code (commit ace842f, run from `git archive`): the mean, the mean square and a
weighted sum (fixed random weights) of the float output of ``Predictor.run`` on a fixed 13×18
image. Any change in how an old checkpoint is read (key names, layer order, γ code, residual
output, padding of odd sizes) changes them.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch

import model

V1 = "decouple-ops model v1"

# (arch, ops, op, γ, mean, mean square, weighted sum), by the code of commit ace842f
EXPECTED = [
    ("decouple", ("l0",), "l0", 0.02, 128.321498, 21854.6888, -14.7929099),
    ("decouple", ("l0",), "l0", 0.1, 128.90464, 22111.1921, 373.731554),
    ("decouple", ("l0", "wmf"), "l0", 0.02, 123.494327, 20771.3636, 687.876588),
    ("decouple", ("l0", "wmf"), "l0", 0.1, 122.907178, 20756.8731, 1196.54909),
    ("decouple", ("l0", "wmf"), "wmf", 3.0, 124.424763, 20993.8976, 343.818592),
    ("single", ("l0",), "l0", 0.02, 138.007082, 24339.9584, 1247.69817),
    ("concat", ("l0",), "l0", 0.02, 129.113502, 22185.2576, 775.638431),
    ("concat", ("l0",), "l0", 0.1, 129.016037, 22167.3172, 781.826062),
    ("hdrnet", ("l0",), "l0", 0.02, -1.22707511, 1343.12499, 206.537204),
]


def _shapes(width: int, n_blocks: int, cin: int) -> list[tuple]:
    """The 20-conv base network's weight shapes (transposed conv: (in, out, k, k))."""
    w = width
    return ([(w, cin, 3, 3), (w, w, 3, 3), (w, w, 3, 3)] + [(w, w, 3, 3)] * (2 * n_blocks)
            + [(w, w, 4, 4), (w, w, 3, 3), (3, w, 3, 3)])


def old_checkpoint(arch: str, ops=("l0",), seed: int = 0) -> dict:
    """A v1 checkpoint with seeded random weights, written as the old code wrote them."""
    g = torch.Generator().manual_seed(seed)
    if arch == "hdrnet":
        from model.hdrnet import HDRNet

        with torch.random.fork_rng():
            torch.manual_seed(seed)
            ref = HDRNet(lowres=32).state_dict()
        sd = {k: (v + 0.05 * torch.randn(v.shape, generator=g))
              if v.is_floating_point() and k != "shifts" else v.clone() for k, v in ref.items()}
        config = {"arch": "hdrnet", "ops": list(ops), "width": 4, "dilations": [2],
                  "norm": "law", "op_code": "scalar", "mode": "grouped", "init": "paper",
                  "residual": True, "gamma": 0.02, "trained_range": {"l0": [0.02, 0.02]},
                  "preset": {"name": "smoke"}, "seed": 0, "data": "/x/tiny.h5", "lowres": 32,
                  "data_digest": "d" * 64, "code": "test"}
        return {"format": V1, "config": config, "model": sd,
                "optimizer": {"state": {}, "param_groups": []}, "iteration": 4, "elapsed_s": 1.0}
    width, dil = 4, [2]
    m = 1 if len(ops) == 1 else 2
    shapes = _shapes(width, len(dil), 4 + (m if arch == "concat" else 0))
    sd = {}
    for i, s in enumerate(shapes[:-1]):
        n = s[0] if i != len(shapes) - 4 else s[1]  # channels out of conv i
        sd[f"norms.{i}.weight"] = 1 + 0.1 * torch.randn(n, generator=g)
        sd[f"norms.{i}.bias"] = 0.1 * torch.randn(n, generator=g)
    for i, s in enumerate(shapes):
        fan = s[1] * s[2] * s[3]
        k = 20 if i == len(shapes) - 1 else 1
        if arch == "decouple":
            numel = int(np.prod(s))
            sd[f"weight_net.{i}.weight"] = torch.randn(numel, m, generator=g) / fan ** 0.5 * k
            sd[f"weight_net.{i}.bias"] = torch.randn(numel, generator=g) / fan ** 0.5 * k
        else:
            sd[f"weights.{i}"] = torch.randn(*s, generator=g) / fan ** 0.5 * k
    config = {"arch": arch, "ops": list(ops), "width": width, "dilations": dil, "norm": "law",
              "op_code": "scalar", "mode": "grouped", "init": "paper", "residual": True,
              "gamma": 0.02 if arch == "single" else None,
              "trained_range": {o: ([0.002, 0.2] if o == "l0" else [1.0, 10.0]) for o in ops},
              "preset": {"name": "smoke"}, "seed": 0, "data": "/x/tiny.h5",
              "data_digest": "d" * 64, "code": "test"}
    return {"format": V1, "config": config, "model": sd,
            "optimizer": {"state": {}, "param_groups": []}, "iteration": 4, "elapsed_s": 1.0}


@pytest.mark.parametrize("arch,ops,op,gamma,mean,square,weighted", EXPECTED)
def test_old_checkpoints_evaluate_identically(tmp_path, arch, ops, op, gamma, mean, square,
                                              weighted):
    torch.save(old_checkpoint(arch, ops), tmp_path / "last.pt")
    p = model.load(tmp_path)
    img = np.random.default_rng(5).integers(0, 256, (13, 18, 3), dtype=np.uint8)
    t = torch.from_numpy(np.ascontiguousarray(img.transpose(2, 0, 1)))[None]
    y = p.run(t, op, gamma).double()
    pattern = torch.from_numpy(np.random.default_rng(9).standard_normal((1, 3, 13, 18)))
    assert y.mean().item() == pytest.approx(mean, rel=1e-6, abs=1e-4)
    assert (y * y).mean().item() == pytest.approx(square, rel=1e-6)
    assert (y * pattern).sum().item() == pytest.approx(weighted, rel=1e-5, abs=2e-3)
    out = p.apply(img, op, gamma)
    assert out.shape == img.shape and out.dtype == np.uint8


def test_an_old_run_resumes_exactly(data, tmp_path):
    """A run folder whose last.pt is in the v1 format (no checksum, no operator-code table)
    resumes, and ends where an uninterrupted run ends."""
    from model.presets import get_preset
    from model.train import train

    p = get_preset("smoke").with_(width=4, dilations=(2,), crop=16, batch=2, iterations=4,
                                  log_every=1, ckpt_every=2)
    full = train(data, ["l0", "wmf"], tmp_path / "full", preset=p, progress=False)
    train(data, ["l0", "wmf"], tmp_path / "old", preset=p, stop_at=2, progress=False)
    state = torch.load(tmp_path / "old" / "last.pt", weights_only=True)
    state = {k: v for k, v in state.items() if k != "checksum"}
    state["format"] = V1
    state["config"] = {k: v for k, v in state["config"].items() if k != "op_codes"}
    torch.save(state, tmp_path / "old" / "last.pt")
    assert model.load(tmp_path / "old").coder.table == {"l0": (0.1,), "wmf": (0.5,)}
    resumed = train(data, ["l0", "wmf"], tmp_path / "old", preset=p, resume=True, progress=False)
    assert resumed["config"]["op_codes"] == {"l0": [0.1], "wmf": [0.5]}
    for k, v in full["model"].items():
        torch.testing.assert_close(resumed["model"][k], v)
