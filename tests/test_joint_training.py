"""Joint training as the authors ran it: each operator's loss in the log (issue 24, item 2), the
authors' joint learning-rate schedule (item 3) and the identity-normalised loss diagnostic
(item 4), checked against independent computations on the tiny l0 + wmf dataset."""
from __future__ import annotations

import csv

import h5py
import numpy as np
import pytest
import torch

from datagen.dataset import PairDataset
from model import train as train_module
from model.config import ModelConfig
from model.data import prepare
from model.presets import AUTHORS_JOINT_STEPS, get_preset
from model.registry import build_model
from model.train import EpochBatches, identity_weights, lr_at, train
from tiny_data import RecordingWriter

OPS = ["l0", "wmf"]
TINY = get_preset("smoke").with_(width=4, dilations=(2,), crop=16, batch=4, iterations=6,
                                 log_every=1, ckpt_every=100)


def _rows(run) -> list[dict]:
    with open(run / "log.csv", newline="") as fh:
        return list(csv.DictReader(fh))


def _batch_ops(data, preset, seed: int = 0) -> list[list[str]]:
    """The operators of each batch's samples, from the sampler and the dataset's index (what the
    training draws, reconstructed without running it)."""
    ds = PairDataset(data, OPS, "train", crop=preset.crop, flip=True)
    batches = EpochBatches(len(ds), preset.batch, seed, 0, preset.iterations)
    return [[ds.ops[ds.index[i, 0]] for i, _ in keys] for keys in batches]


def _cell(v: str) -> float:
    return float("nan") if v == "" else float(v)


def test_joint_log_has_each_operators_loss_weighted_to_the_total(data, tmp_path):
    # batches of 2 from the tiny set's 6 l0 and 6 wmf training pairs: some hold one operator
    # only, so the empty-cell branch below is exercised (asserted at the end)
    preset = TINY.with_(batch=2)
    train(data, OPS, tmp_path / "r", preset=preset, progress=False)
    rows = _rows(tmp_path / "r")
    assert list(rows[0])[5:] == ["loss_l0", "loss_wmf"]
    ops_per_batch = _batch_ops(data, preset)
    assert len(rows) == len(ops_per_batch) == 6
    seen_empty = False
    for row, ops in zip(rows, ops_per_batch):
        n = {o: ops.count(o) for o in OPS}
        for o in OPS:  # empty exactly when the batch held none of the operator's samples
            assert (row[f"loss_{o}"] == "") == (n[o] == 0), (row, ops)
            seen_empty |= n[o] == 0
        total = sum(n[o] * _cell(row[f"loss_{o}"]) for o in OPS if n[o]) / preset.batch
        assert total == pytest.approx(float(row["loss"]), rel=2e-5), (row, n)
    assert seen_empty  # the sampler is seeded: batches 4 and 5 hold one operator each


def test_first_steps_per_operator_loss_equals_an_independent_computation(data, tmp_path):
    state = train(data, OPS, tmp_path / "r", preset=TINY.with_(iterations=1), progress=False)
    row = _rows(tmp_path / "r")[0]
    torch.manual_seed(0)  # the training's initial weights: seed 0, then the network is built
    net, coder = build_model(ModelConfig.from_dict(state["config"]))
    net.train()  # InstanceNorm in training mode, as in the step
    ds = PairDataset(data, OPS, "train", crop=TINY.crop, flip=True)
    keys = next(iter(EpochBatches(len(ds), TINY.batch, 0, 0, 1)))
    items = [ds[k] for k in keys]
    x = torch.stack([d["input"] for d in items])
    with torch.no_grad():
        pred = net(prepare(x), coder([d["op"] for d in items], [d["gamma"] for d in items]))
    pred = pred.double().numpy()
    sums = {o: [] for o in OPS}
    for d, p in zip(items, pred):
        sums[d["op"]].append(np.mean((p - d["target"].double().numpy()) ** 2))
    for o in OPS:
        if sums[o]:
            assert _cell(row[f"loss_{o}"]) == pytest.approx(np.mean(sums[o]), rel=2e-5)
        else:
            assert row[f"loss_{o}"] == ""
    assert float(row["loss"]) == pytest.approx(np.mean(sum(sums.values(), [])), rel=2e-5)


def test_per_operator_loss_is_the_mean_over_the_logging_interval(data, tmp_path):
    train(data, OPS, tmp_path / "every", preset=TINY, progress=False)
    train(data, OPS, tmp_path / "third", preset=TINY.with_(log_every=3), progress=False)
    every, third = _rows(tmp_path / "every"), _rows(tmp_path / "third")
    assert [r["iteration"] for r in third] == ["3", "6"]
    ops_per_batch = _batch_ops(data, TINY)
    for k, row in enumerate(third):
        steps = range(3 * k, 3 * k + 3)
        for o in OPS:
            n = [ops_per_batch[s].count(o) for s in steps]
            if not sum(n):
                assert row[f"loss_{o}"] == ""
                continue
            want = sum(c * _cell(every[s][f"loss_{o}"]) for s, c in zip(steps, n) if c) / sum(n)
            assert _cell(row[f"loss_{o}"]) == pytest.approx(want, rel=5e-5)
        assert row["loss"] == every[3 * k + 2]["loss"]  # the total: the row's own step


def test_one_operator_log_is_unchanged(data, tmp_path):
    train(data, ["l0"], tmp_path / "r", preset=TINY.with_(iterations=2), progress=False)
    assert list(_rows(tmp_path / "r")[0]) == ["iteration", "epoch", "loss", "lr", "elapsed_s"]


def test_tensorboard_gets_each_operators_loss(data, tmp_path, monkeypatch):
    logged = []
    monkeypatch.setattr(train_module, "summary_writer", lambda out: RecordingWriter(logged))
    train(data, OPS, tmp_path / "r", preset=TINY, progress=False)
    rows = _rows(tmp_path / "r")
    for o in OPS:
        got = {s: v for t, v, s in logged if t == f"train/loss_{o}"}
        want = {int(r["iteration"]): float(r[f"loss_{o}"]) for r in rows if r[f"loss_{o}"]}
        assert set(got) == set(want) and got
        assert all(f"{got[s]:.6g}" == f"{want[s]:.6g}" for s in got)


# ------------------------------------------------------------------ the authors' joint schedule
def test_authors_joint_schedule_at_the_paper_scale():
    """130 epochs of int(15983 / 12) = 1331 iterations: 0.01, then a new Adam at 0.001 from
    epoch 90 (iteration 119,790), at 1e-5 from epoch 110 (146,410) and again from epoch 120
    (159,720); a joint model trains 1.3 x the 100 epochs of one operator."""
    paper = get_preset("paper")
    assert paper.iterations == 100 * 1331 == 133_100
    joint = paper.for_ops(10).with_(iterations=130 * 1331)
    assert int(paper.iterations * 1.3 + 1e-9) == joint.iterations == 173_030
    assert joint.lr_steps == AUTHORS_JOINT_STEPS
    for it, lr in [(0, 0.01), (119_789, 0.01), (119_790, 1e-3), (146_409, 1e-3),
                   (146_410, 1e-5), (159_720, 1e-5), (173_029, 1e-5)]:
        assert lr_at(joint, it) == lr, it
    assert 119_790 / 173_030 == pytest.approx(0.69, abs=0.005)  # "69 %"
    assert 146_410 / 173_030 == pytest.approx(0.85, abs=0.005)  # "85 %"
    assert joint.lr_schedule(173_030)[1:] == [(119_790, 1e-3), (146_410, 1e-5), (159_720, 1e-5)]
    one = paper.for_ops(1)  # one operator: 0.001 for the last 15 % (epoch 85 of 100)
    assert not one.lr_steps
    assert [lr_at(one, it) for it in (113_134, 113_135)] == [0.01, 0.001]


def test_medium_joint_schedule_and_small_unchanged():
    medium = get_preset("medium")
    joint = medium.for_ops(10).with_(iterations=int(medium.iterations * 1.3 + 1e-9))
    assert joint.iterations == 24_000
    # floor(24,000 x 90/130) = 16,615 and floor(24,000 x 110/130) = 20,307
    assert [lr_at(joint, it) for it in (16_614, 16_615, 20_306, 20_307)] == \
        [0.01, 1e-3, 1e-3, 1e-5]
    small = get_preset("small")
    assert small.for_ops(10) == small  # the small scale keeps its one schedule
    assert "lr_steps" not in small.to_dict() and "joint_lr_steps" not in small.to_dict()
    assert [lr_at(small.with_(iterations=6000), it) for it in (5099, 5100)] == [0.01, 0.001]


def test_joint_run_records_and_follows_its_schedule(data, tmp_path):
    p = TINY.with_(iterations=8, joint_lr_steps=((0.5, 1e-3), (0.75, 1e-5)))
    state = train(data, OPS, tmp_path / "j", preset=p, progress=False)
    assert state["config"]["preset"]["lr_steps"] == [[0.5, 1e-3], [0.75, 1e-5]]
    assert "joint_lr_steps" not in state["config"]["preset"]
    lrs = [float(r["lr"]) for r in _rows(tmp_path / "j")]  # the rate of each logged step
    assert lrs == [0.01] * 4 + [1e-3] * 2 + [1e-5] * 2
    one = train(data, ["l0"], tmp_path / "one", preset=p, progress=False)
    assert "lr_steps" not in one["config"]["preset"]


@pytest.mark.parametrize("stop", [4, 5])
def test_a_resumed_joint_run_continues_the_schedule(data, tmp_path, stop):
    """Stopped at a step (4: a new Adam at the first iteration after the resume) or inside one,
    and resumed: the same rates and the same weights as without the stop."""
    p = TINY.with_(iterations=8, joint_lr_steps=((0.5, 1e-3), (0.75, 1e-5)))
    torch.set_num_threads(1)  # one reduction order for both runs
    full = train(data, OPS, tmp_path / "full", preset=p, progress=False)
    train(data, OPS, tmp_path / "part", preset=p, stop_at=stop, progress=False)
    resumed = train(data, OPS, tmp_path / "part", preset=p, resume=True, progress=False)
    assert [r["lr"] for r in _rows(tmp_path / "part")] == [r["lr"] for r in
                                                           _rows(tmp_path / "full")]
    for k, v in full["model"].items():
        torch.testing.assert_close(resumed["model"][k], v)


# ------------------------------------------------------------ identity-normalised loss
def test_identity_weights_equal_an_independent_computation(data):
    w = identity_weights(data, OPS)
    with h5py.File(data, "r") as f:
        pixels = f["sources/pixels"][:].astype(np.float64)
        for o in OPS:
            g = f["ops"][o]
            rows = np.flatnonzero(g["split"][:] == 0)  # 0: train
            assert len(rows) <= 64  # all of them are used
            mse = np.mean([np.mean((pixels[g["source"][r]] - g["output"][r]) ** 2)
                           for r in rows])
            assert w[o] == pytest.approx(1 / mse, rel=1e-9)


def test_identity_normalised_loss_weights_each_sample(data, tmp_path):
    state = train(data, OPS, tmp_path / "r", preset=TINY, progress=False, loss_norm="identity")
    cfg = state["config"]
    assert cfg["loss_norm"] == "identity" and cfg["loss_weights"] == identity_weights(data, OPS)
    for row, ops in zip(_rows(tmp_path / "r"), _batch_ops(data, TINY)):
        n = {o: ops.count(o) for o in OPS}
        # the optimised loss: each operator's MSE (logged unweighted) times its weight
        want = sum(n[o] * cfg["loss_weights"][o] * _cell(row[f"loss_{o}"]) for o in OPS
                   if n[o]) / TINY.batch
        assert float(row["loss"]) == pytest.approx(want, rel=5e-5)
    with pytest.raises(ValueError, match="loss_norm"):
        train(data, OPS, tmp_path / "r", preset=TINY, progress=False, resume=True)
    plain = train(data, OPS, tmp_path / "plain", preset=TINY.with_(iterations=1), progress=False)
    assert "loss_norm" not in plain["config"] and "loss_weights" not in plain["config"]


def test_loss_norm_is_checked():
    with pytest.raises(ValueError, match="loss_norm"):
        ModelConfig(arch="decouple", ops=("l0",), width=4, dilations=(2,), loss_norm="l1")
    with pytest.raises(ValueError, match="loss_weights"):
        ModelConfig(arch="decouple", ops=("l0", "wmf"), width=4, dilations=(2,),
                    loss_norm="identity", loss_weights={"l0": 1.0})


def test_two_processes_log_the_global_batchs_per_operator_loss(data, tmp_path):
    """``torchrun --nproc_per_node 2``: rank 0's log has each operator's loss over both ranks'
    samples (summed across the processes), as one process logs it."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    torch.set_num_threads(1)
    preset = get_preset("smoke").with_(width=4, iterations=5, batch=4)  # one row: 1..5
    train(data, OPS, tmp_path / "one", preset=preset, device="cpu", progress=False)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "model", "train", "--data", str(data), "--ops", ",".join(OPS), "--preset",
           "smoke", "--width", "4", "--iterations", "5", "--batch", "4", "--device", "cpu",
           "--threads", "1", "--quiet", "--out", str(tmp_path / "two")]
    repo = Path(__file__).resolve().parents[1]
    proc = subprocess.run(cmd, env={**os.environ, "PYTHONPATH": str(repo)}, cwd=tmp_path,
                          capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr[-3000:]
    one, two = _rows(tmp_path / "one"), _rows(tmp_path / "two")
    assert len(one) == len(two) == 1
    for a, b in zip(one, two):
        for o in OPS:
            assert (a[f"loss_{o}"] == "") == (b[f"loss_{o}"] == "")
            if a[f"loss_{o}"]:
                assert float(b[f"loss_{o}"]) == pytest.approx(float(a[f"loss_{o}"]), rel=1e-4)
