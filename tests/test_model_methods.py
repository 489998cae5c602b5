"""model: the architecture registry and the methods of issue 11 (TPAMI's real-time model, the
Table 12 ablation family, CResMD, AdaFM, DNI): conditioning checked against hand computations,
batched modes against the per-sample loop, every method through train/load/apply/re-tune."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import model
from model import registry
from model.checkpoint import load, save
from model.cli import main
from model.config import ModelConfig, op_code_table
from model.data import GammaCoder, prepare
from model.dni import DNINet
from model.networks import OperatorNet, _identity_filter
from model.presets import get_preset
from model.train import train

TINY = get_preset("smoke").with_(width=4, dilations=(2,), crop=16, batch=2, iterations=4,
                                 log_every=1, ckpt_every=2)
W, DIL = 6, (2,)
METHODS = ["decouple", "concat", "realtime", "norm:3", "norm:all", "conv:3", "conv-ch1:3",
           "conv-ch2:3", "cresmd", "adafm", "dni"]


def _x(n=2, h=12, w=16, seed=0):
    g = torch.Generator().manual_seed(seed)
    return prepare(torch.randint(0, 256, (n, 3, h, w), dtype=torch.uint8, generator=g))


def _net(arch, code_dim=1, seed=0, **kw):
    torch.manual_seed(seed)
    cfg = ModelConfig(arch=arch, ops=("l0",), width=W, dilations=DIL, residual=True, **kw)
    net = registry.get(arch).build(cfg, code_dim)
    with torch.no_grad():  # move generated parts off their neutral start so γ matters
        for name, p in net.named_parameters():
            if any(k in name for k in ("norm_net", "gate_net", "affine", "adafm")):
                p.add_(0.3 * torch.randn(p.shape))
    return net


def _single_like(net: OperatorNet) -> OperatorNet:
    """A ``single`` network with ``net``'s static weights and InstanceNorm affines."""
    s = OperatorNet("single", width=W, dilations=DIL, residual=net.residual)
    with torch.no_grad():
        for i in range(len(s.layout)):
            if i in net.weights:
                s.weights[i].copy_(net.weights[i])
        for i, n in enumerate(net.norms):
            if n.affine:
                s.norms[i].weight.copy_(n.weight)
                s.norms[i].bias.copy_(n.bias)
    return s


# ------------------------------------------------------------------------ registry
def test_registry_names_and_bad_names():
    for name in ["decouple", "single", "concat", "hdrnet", "realtime", "norm:1", "norm:19",
                 "norm:all", "conv:19", "conv-ch1:19", "conv-ch2:19", "cresmd", "adafm", "dni"]:
        assert registry.get(name).name == name
    assert registry.get("NORM:7").name == "norm:7"
    assert registry.get("conv:all").name == "decouple"  # TPAMI Table 12: conv(all)
    assert registry.get("single").per_gamma and not registry.get("realtime").per_gamma
    assert registry.get("dni").schedule == "ends" and registry.get("dni").one_op
    with pytest.raises(ValueError, match="unknown arch 'nope'; choose from decouple, single"):
        registry.get("nope")
    for bad in ("norm:0", "norm:20", "conv-ch1:25"):
        with pytest.raises(ValueError, match=r"K must be in 1\.\.19"):
            registry.get(bad)
    cfg = ModelConfig(arch="norm:19", ops=("l0",), width=4, dilations=(2,))
    with pytest.raises(ValueError, match=r"K must be in 1\.\.7 for a base network with 1 "):
        registry.build_model(cfg)


def test_cli_lists_the_allowed_archs(capsys, tmp_path):
    with pytest.raises(SystemExit):
        main(["train", "--data", "x.h5", "--ops", "l0", "--out", str(tmp_path), "--arch", "norm:20"])
    assert "K must be in 1..19" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["train", "--data", "x.h5", "--ops", "l0", "--out", str(tmp_path), "--arch", "foo"])
    assert "choose from decouple" in capsys.readouterr().err


# ------------------------------------------------------------------------ conditioning by hand
@pytest.mark.parametrize("k", [1, 3, 7])
def test_norm_k_generates_only_that_affine(k):
    net = _net(f"norm:{k}")
    code = torch.tensor([[0.3]])
    p = net.params(code)
    assert p.conv == {} and list(p.affine) == [k - 1]  # every conv weight independent of γ
    fc = net.norm_net[k - 1]
    ab = fc.weight @ code[0] + fc.bias  # A·c + B by hand
    torch.testing.assert_close(torch.cat(p.affine[k - 1], dim=1)[0], ab)
    s = _single_like(net)
    with torch.no_grad():
        s.norms[k - 1].weight.copy_(ab[:W] if k - 1 < len(s.norms) else ab)
        s.norms[k - 1].bias.copy_(ab[W:])
    x = _x()
    torch.testing.assert_close(net(x, code.expand(2, -1)), s(x), rtol=1e-5, atol=1e-4)


def test_norm_all_generates_every_affine_and_no_conv():
    net = _net("norm:all")
    p = net.params(torch.tensor([[0.6]]))
    assert p.conv == {} and sorted(p.affine) == list(range(len(net.norms)))
    assert not any(n.affine for n in net.norms)


def test_conv_k_generates_that_conv_only():
    net = _net("conv:3")
    code = torch.tensor([[0.8]])
    p = net.params(code)
    assert list(p.conv) == [2] and p.affine == {}
    fc = net.weight_net[2]
    w = (fc.weight @ code[0] + fc.bias).reshape(net.layout[2].shape)
    torch.testing.assert_close(p.conv[2][0], w)
    s = _single_like(net)
    with torch.no_grad():
        s.weights[2].copy_(w)
    x = _x()
    torch.testing.assert_close(net(x, code.expand(2, -1)), s(x), rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize("which", ["ch1", "ch2"])
def test_conv_channel_slices_vary_only_their_slice(which):
    net = _net(f"conv-{which}:4")
    a, b = net.params(torch.tensor([[0.1]])).conv[3][0], net.params(torch.tensor([[0.9]])).conv[3][0]
    static = net.weights[3]
    sl = (slice(None), slice(0, 1)) if which == "ch1" else (slice(0, 1),)
    mask = torch.zeros_like(static, dtype=torch.bool)
    mask[sl] = True
    assert torch.equal(a[~mask], static[~mask]) and torch.equal(b[~mask], static[~mask])
    assert (a[mask] - b[mask]).abs().min() > 0  # the slice follows the code
    fc = net.weight_net[3]
    shape = (W, 1, 3, 3) if which == "ch1" else (1, W, 3, 3)
    torch.testing.assert_close(a[sl], (fc.weight @ torch.tensor([0.1]) + fc.bias).reshape(shape))
    n_gen = fc.weight.numel() + fc.bias.numel()
    assert n_gen == 2 * W * 9  # M×1×3×3 or 1×N×3×3, A and B


def test_realtime_affine_is_two_mlps_and_the_rest_is_gamma_free():
    net = _net("realtime", code_dim=2)
    assert net.conv_last_in.out_channels == W and net.stem[0][0].out_channels == 2 * W
    assert net.blocks[0][1][0].groups == 4 * W  # depthwise
    code = torch.tensor([[0.25, 0.1]])
    s, b = net.affine(code)
    mlp = net.affine.scale
    hand = mlp[2].weight @ torch.relu(mlp[0].weight @ code[0] + mlp[0].bias) + mlp[2].bias
    torch.testing.assert_close(s[0], hand)
    assert mlp[0].in_features == 2 and mlp[0].out_features == 16 and mlp[2].out_features == W
    x = _x(1)
    pos, state = net.prefix(x)
    # the cached features are the last IN's normalised input: the output by hand from them
    out = x[:, :3] + 128.0 + net.out(torch.relu(state["h"] * s[0][None, :, None, None]
                                                + b[0][None, :, None, None]))
    torch.testing.assert_close(net(x, code), out)
    torch.testing.assert_close(net(x, fixed=net.fixed_weights(code[0])), out)


def test_cresmd_scales_each_blocks_residual():
    net = _net("cresmd")
    code = torch.tensor([[0.4]])
    g = net.gate_net
    hand = g[2].weight @ torch.relu(g[0].weight @ code[0] + g[0].bias) + g[2].bias
    torch.testing.assert_close(net.params(code).gates[0], hand)
    with torch.no_grad():  # gates of 1: exactly the plain residual network
        g[2].weight.zero_()
        g[2].bias.fill_(1.0)
    x = _x()
    torch.testing.assert_close(net(x, code.expand(2, -1)), _single_like(net)(x))


def test_adafm_interpolates_filters_between_identity_and_learned():
    net = _net("adafm")
    x = _x()
    # λ = 0: the identity filters, exactly the base network
    torch.testing.assert_close(net(x, torch.zeros(2, 1)), _single_like(net)(x), rtol=1e-5, atol=1e-4)
    lam = 0.3
    f, bias = net.params(torch.tensor([[lam]])).adafm[4]
    ident = _identity_filter(W, 5)
    torch.testing.assert_close(f[0], ident + lam * (net.adafm_filter[4] - ident))
    torch.testing.assert_close(bias[0], lam * net.adafm_bias[4])
    stage0, stage1 = net.stage_parameters(0), net.stage_parameters(1)
    assert {id(p) for p in stage1} == {id(p) for p in [*net.adafm_filter, *net.adafm_bias]}
    assert not {id(p) for p in stage0} & {id(p) for p in stage1}


def test_dni_interpolates_every_parameter_linearly():
    torch.manual_seed(0)
    net = DNINet(width=W, dilations=DIL, residual=True)
    x = _x()
    torch.testing.assert_close(net(x, torch.zeros(2, 1)), net.lo(x))
    torch.testing.assert_close(net(x, torch.ones(2, 1)), net.hi(x))
    a = 0.3
    mixed = OperatorNet("single", width=W, dilations=DIL, residual=True)
    with torch.no_grad():
        for (n, p), q, r in zip(mixed.named_parameters(), net.lo.parameters(), net.hi.parameters()):
            p.copy_((1 - a) * q + a * r)
    torch.testing.assert_close(net(x, torch.full((2, 1), a)), mixed(x), rtol=1e-5, atol=1e-4)
    # a batch mixing α: each sample with its own α
    y = net(x, torch.tensor([[0.0], [a]]))
    torch.testing.assert_close(y[1:], mixed(x[1:]), rtol=1e-5, atol=1e-4)
    torch.testing.assert_close(y[:1], net.lo(x[:1]))
    net.begin_stage(1)
    assert all(torch.equal(p, q) for p, q in zip(net.lo.parameters(), net.hi.parameters()))


@pytest.mark.parametrize("arch", ["norm:3", "norm:all", "conv:3", "conv-ch1:3", "conv-ch2:3",
                                  "cresmd", "adafm", "adafm-stage1", "realtime", "decouple"])
def test_batched_modes_equal_the_per_sample_loop(arch):
    """The batched forms (fused affines, AdaFM's skipped identity at λ = 0, ...) equal the
    literal per-sample loop in outputs and gradients."""
    stage1 = arch == "adafm-stage1"  # every λ = 0: the modulation is skipped (exactly identity)
    net = _net("adafm" if stage1 else arch, code_dim=2)
    x, code = _x(3), torch.rand(3, 2, generator=torch.Generator().manual_seed(1))
    if stage1:
        code[:, 0] = 0.0
    results = {}
    for mode in ("loop", "grouped", "linear"):
        net.mode = mode
        net.zero_grad()
        y = net(x, code)
        (y * torch.linspace(0, 1, y.numel()).reshape(y.shape)).sum().backward()
        results[mode] = (y.detach(), [p.grad.clone() if p.grad is not None else None
                                      for p in net.parameters()])
    for mode in ("grouped", "linear"):
        torch.testing.assert_close(results[mode][0], results["loop"][0], rtol=1e-4, atol=1e-4)
        for g, ref in zip(results[mode][1], results["loop"][1]):
            if ref is not None and g is None:  # a skipped identity: its gradient is exactly 0
                assert stage1 and not ref.any()
            elif ref is not None:
                torch.testing.assert_close(g, ref, rtol=1e-3, atol=1e-3)


@pytest.mark.parametrize("norms", [frozenset(), frozenset({6})])
def test_batched_gates_inside_the_instance_norm_equal_the_loop_in_every_block(norms):
    """Batched CResMD folds block b's gate into the affine of the IN right before its add (the
    block's second IN): with three blocks each gate must land on its own block, also where that
    IN's affine is itself generated (a Plan with gates and norm(7)), outputs and gradients."""
    from model.networks import Plan
    torch.manual_seed(0)
    net = OperatorNet(Plan(gates=True, norms=norms), width=W, dilations=(2, 1, 3), residual=True)
    assert net._norm_before_add == {4: 0, 6: 1, 8: 2}
    with torch.no_grad():  # distinct gates per block and sample, affines off (1, 0)
        for p in [*net.gate_net.parameters(), *net.norm_net.parameters(),
                  *(q for n in net.norms if n.affine for q in n.parameters())]:
            p.add_(0.5 * torch.randn(p.shape))
    x, code = _x(3), torch.tensor([[0.1], [0.5], [0.9]])
    gates = net.params(code).gates
    assert (gates.std(0) > 1e-3).all() and (gates.std(1) > 1e-3).all()
    results = {}
    for mode in ("loop", "grouped"):
        net.mode = mode
        net.zero_grad()
        y = net(x, code)
        (y * torch.linspace(0, 1, y.numel()).reshape(y.shape)).sum().backward()
        results[mode] = (y.detach(), [p.grad.clone() for p in net.parameters()])
    torch.testing.assert_close(results["grouped"][0], results["loop"][0], rtol=1e-4, atol=1e-4)
    for g, ref in zip(results["grouped"][1], results["loop"][1]):
        torch.testing.assert_close(g, ref, rtol=1e-3, atol=1e-3)
    # a gate applied to the wrong block's residual would differ: swap blocks 0 and 1's norms
    net._norm_before_add = {4: 1, 6: 0, 8: 2}
    assert not torch.allclose(net(x, code), results["loop"][0], rtol=1e-3, atol=1e-2)


@pytest.mark.parametrize("arch", METHODS)
def test_fixed_parameters_and_the_split_equal_the_batched_forward(arch):
    net = _net(arch)
    x = _x(2)
    code = torch.tensor([[0.35], [0.35]])
    ref = net(x, code)
    fixed = net.fixed_weights(code[0])
    torch.testing.assert_close(net(x, code, fixed=fixed), ref, rtol=1e-5, atol=1e-4)
    if hasattr(net, "prefix"):
        pos, state = net.prefix(x)
        torch.testing.assert_close(net.finish(pos, state, fixed, code), ref, rtol=1e-5, atol=1e-4)


def test_first_gamma_dependent_step():
    assert _net("single").first_dependent == len(_net("single").steps)
    net = _net("norm:5")
    assert net.steps[net.first_dependent] == ("norm", 4)
    net = _net("conv:3")
    assert net.steps[net.first_dependent] == ("conv", 2)
    assert _net("decouple").first_dependent == 0


# ------------------------------------------------------------------------ operator-code table
def test_the_operator_code_table_is_stored_and_checked(tmp_path):
    assert op_code_table(["l0", "wmf"], "scalar") == {"l0": [0.1], "wmf": [0.5]}
    cfg = ModelConfig(arch="decouple", ops=("l0", "wmf"), width=4, dilations=(2,))
    assert cfg.to_dict()["op_codes"] == {"l0": [0.1], "wmf": [0.5]}
    # a v1 config (no table) gets the order of the code that wrote it, whatever NAMES says now
    v1 = {k: v for k, v in cfg.to_dict().items() if k != "op_codes"}
    assert ModelConfig.from_dict(v1).op_codes == {"l0": [0.1], "wmf": [0.5]}
    custom = GammaCoder(("l0", "wmf"), table={"l0": [0.7], "wmf": [0.2]})
    assert custom(["wmf"], [5.5])[0, 1] == pytest.approx(0.2)
    net, _ = registry.build_model(cfg)
    state = {"config": {**cfg.to_dict(), "trained_range": {"l0": [0.002, 0.2], "wmf": [1, 10]}},
             "model": net.state_dict(), "iteration": 1}
    save(tmp_path / "a.pt", state)
    assert model.load(tmp_path / "a.pt").coder.table == {"l0": (0.1,), "wmf": (0.5,)}
    bad = {**state, "config": {**state["config"], "op_codes": {"l0": [0.1]}}}
    save(tmp_path / "b.pt", bad)
    with pytest.raises(ValueError, match="operator-code table"):
        model.load(tmp_path / "b.pt")


def test_a_checkpoint_of_another_method_is_refused(tmp_path):
    cfg = ModelConfig(arch="decouple", ops=("l0",), width=4, dilations=(2,),
                      trained_range={"l0": [0.002, 0.2]})
    net, _ = registry.build_model(cfg)
    save(tmp_path / "a.pt", {"config": {**cfg.to_dict(), "arch": "norm:3"},
                             "model": net.state_dict(), "iteration": 1})
    with pytest.raises(ValueError, match="do not fit a norm:3 network"):
        model.load(tmp_path / "a.pt")


# ------------------------------------------------------------------------ end to end
@pytest.mark.parametrize("arch", METHODS)
def test_every_method_trains_loads_applies_and_follows_gamma(data, tmp_path, arch):
    run = tmp_path / "run"
    assert main(["train", "--data", str(data), "--ops", "l0", "--arch", arch, "--preset", "smoke",
                 "--iterations", "4", "--width", "4", "--crop", "16", "--batch", "2",
                 "--out", str(run), "--quiet"]) == 0
    m = model.load(run)
    assert m.config["arch"] == arch
    img = np.random.default_rng(2).integers(0, 256, (13, 19, 3), dtype=np.uint8)  # odd size
    t = torch.from_numpy(img.transpose(2, 0, 1).copy())[None]
    a, b = m.run(t, "l0", 0.005), m.run(t, "l0", 0.15)
    assert (a - b).abs().max() > 1e-3  # the output follows γ
    out = m.apply(img, "l0", 0.005)
    assert out.shape == img.shape and out.dtype == np.uint8
    np.testing.assert_array_equal(m.retune(img, "l0", 0.15), m.apply(img, "l0", 0.15))
    np.testing.assert_array_equal(m.retune(img, "l0", 0.005), out)


def test_python_preset_trains_the_cli_network(data, tmp_path):
    """``train(..., preset=...)`` trains what ``python -m model train --preset ...`` trains
    (the preset's init and residual, every weight), the preset given as a Preset or by name.
    Both with the same thread count (the CLI's default follows the machine's load, and a
    different count sums in another order: ~1e-8 apart)."""
    threads = torch.get_num_threads()
    assert main(["train", "--data", str(data), "--ops", "l0", "--preset", "smoke",
                 "--iterations", "3", "--width", "4", "--out", str(tmp_path / "cli"),
                 "--threads", str(threads), "--quiet"]) == 0
    assert torch.get_num_threads() == threads
    py = train(data, ["L0"], tmp_path / "py", preset=get_preset("smoke").with_(iterations=3, width=4),
               progress=False)
    by_name = train(data, ["l0"], tmp_path / "name", preset="smoke", stop_at=1, progress=False)
    cli = load(tmp_path / "cli")
    for k in ("init", "residual", "arch", "ops", "preset"):
        assert py["config"][k] == cli["config"][k]
    for k in ("init", "residual", "dilations"):
        assert by_name["config"][k] == cli["config"][k]
    assert cli["config"]["residual"] is True  # the smoke preset's
    for k, v in cli["model"].items():
        torch.testing.assert_close(py["model"][k], v, rtol=0, atol=0)


@pytest.mark.parametrize("arch", ["dni", "adafm"])
def test_two_end_methods_resume_exactly_and_refuse_half_trained(data, tmp_path, arch):
    p = TINY.with_(iterations=6, ckpt_every=1)
    full = train(data, ["l0"], tmp_path / "full", preset=p, arch=arch, progress=False)
    half = train(data, ["l0"], tmp_path / "part", preset=p, arch=arch, stop_at=2, progress=False)
    with pytest.raises(ValueError, match=r"the low end \(lambda=0.002.*and the high end"):
        model.load(tmp_path / "part")
    train(data, ["l0"], tmp_path / "part", preset=p, arch=arch, stop_at=3, resume=True,
          progress=False)
    with pytest.raises(ValueError, match=r"iteration 3 of 6: the high end \(lambda=0.2"):
        model.load(tmp_path / "part")
    resumed = train(data, ["l0"], tmp_path / "part", preset=p, arch=arch, resume=True,
                    progress=False)
    assert half["iteration"] == 2 and resumed["iteration"] == 6
    for k, v in full["model"].items():
        torch.testing.assert_close(resumed["model"][k], v)
    model.load(tmp_path / "part")  # both ends trained
    with pytest.raises(ValueError, match="one operator"):
        train(data, ["l0", "wmf"], tmp_path / "x", preset=p, arch=arch, progress=False)


def test_retune_reuses_the_cached_features_of_the_same_image(tmp_path, monkeypatch):
    cfg = ModelConfig(arch="realtime", ops=("l0",), width=4, dilations=(2,),
                      trained_range={"l0": [0.002, 0.2]})
    torch.manual_seed(0)
    net, _ = registry.build_model(cfg)
    with torch.no_grad():
        for prm in net.affine.parameters():
            prm.add_(0.5 * torch.randn(prm.shape))
    save(tmp_path / "last.pt", {"config": cfg.to_dict(), "model": net.state_dict(), "iteration": 1})
    p = model.load(tmp_path)
    img = np.random.default_rng(4).integers(0, 256, (11, 14, 3), dtype=np.uint8)
    gammas = (0.005, 0.05, 0.15)
    applied = [p.apply(img, "l0", g) for g in gammas]
    fapplied = p.apply(img / 255.0, "l0", 0.05)
    calls = []
    real = p.net.prefix
    monkeypatch.setattr(p.net, "prefix", lambda *a, **k: calls.append(1) or real(*a, **k))
    outs = [p.retune(img, "l0", g) for g in gammas]
    assert len(calls) == 1  # one image: its features computed once
    for o, a in zip(outs, applied):
        np.testing.assert_array_equal(o, a)
    assert not np.array_equal(outs[0], outs[2])
    other = img.copy()
    other[0, 0] ^= 1
    p.retune(other, "l0", 0.05)
    assert len(calls) == 2  # another image: computed again
    f = p.retune(img / 255.0, "l0", 0.05)  # float images too
    np.testing.assert_allclose(f, fapplied, atol=1e-6)
    with pytest.raises(ValueError, match="outside the trained range"):
        p.retune(img, "l0", 0.5)


def test_single_at_a_gamma_without_pairs_names_the_ones_there(data, tmp_path):
    with pytest.raises(ValueError, match=r"at γ=0.03; its 'single' split holds the paper's test "
                                         r"γ 0.002, 0.00431, 0.02, 0.09283, 0.2"):
        train(data, ["l0"], tmp_path / "s", preset=TINY, arch="single", gamma=0.03, progress=False)
