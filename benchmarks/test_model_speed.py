"""Model speed: training samples/s at batch 8 (batched vs the authors' per-sample loop) and
inference time at 512x512 (decouple with weights generated once vs a plain single network).

Writes ``model_speed`` (CSV, LaTeX, provenance). Targets (model issue): batched training >= 3x the
loop; decouple inference within 10 % of the single network. CPU here, and CUDA when present.
"""
from __future__ import annotations

import time

import pandas as pd
import pytest
import torch

from model.data import prepare
from model.networks import PAPER_DILATIONS, OperatorNet

from ._bench import sync
from ._report import provenance, write_table

# (width, training crop, timed training steps, inference size, inference repeats)
SETTINGS = {"smoke": (16, 48, 2, 128, 2), "small": (64, 96, 3, 512, 3),
            "paper": (64, 128, 5, 512, 5)}
BATCH = 8
DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


def _train_rate(net, device, crop, steps) -> float:
    """Training samples per second (forward, backward, Adam step) at batch 8."""
    g = torch.Generator().manual_seed(0)
    x = prepare(torch.randint(0, 256, (BATCH, 3, crop, crop), dtype=torch.uint8, generator=g)).to(device)
    y = torch.rand(BATCH, 3, crop, crop, generator=g).to(device) * 255
    code = torch.rand(BATCH, 1, generator=g).to(device) if net.arch == "decouple" else None
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)

    def step():
        loss = torch.nn.functional.mse_loss(net(x, code), y)
        opt.zero_grad()
        loss.backward()
        opt.step()

    step()  # warm-up (allocations, kernel selection)
    sync(device)
    t = time.perf_counter()
    for _ in range(steps):
        step()
    sync(device)
    return steps * BATCH / (time.perf_counter() - t)


@torch.no_grad()
def _infer_time(net, device, size, repeats, fixed) -> float:
    x = prepare(torch.randint(0, 256, (1, 3, size, size), dtype=torch.uint8)).to(device)
    net.eval()
    net(x, fixed=fixed)
    sync(device)
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        net(x, fixed=fixed)
        sync(device)
        times.append(time.perf_counter() - t)
    return min(times)


@pytest.fixture(scope="module")
def rows(scale, results_dir):
    started = time.perf_counter()
    rows: list = []
    yield rows
    if rows:
        width, crop, steps, size, repeats = SETTINGS[scale]
        write_table(pd.DataFrame(rows), "model_speed", results_dir,
                    provenance(scale, started, width=width, train_crop=crop, batch=BATCH,
                               timed_steps=steps, inference_size=size,
                               torch=torch.__version__, threads=torch.get_num_threads()),
                    caption="Decouple model speed: training samples/s at batch 8 and inference "
                            "time per image")


@pytest.mark.parametrize("device", DEVICES)
def test_training_throughput(rows, scale, device):
    width, crop, steps, _, _ = SETTINGS[scale]
    rates = {}
    for arch, mode in (("decouple", "loop"), ("decouple", "grouped"), ("decouple", "linear"),
                       ("single", "grouped")):
        torch.manual_seed(0)
        net = OperatorNet(arch, width=width, dilations=PAPER_DILATIONS, mode=mode).to(device)
        rates[(arch, mode)] = _train_rate(net, device, crop, steps)
    loop = rates[("decouple", "loop")]
    for (arch, mode), r in rates.items():
        rows.append({"device": device, "measure": "train samples/s",
                     "model": arch if arch == "single" else f"decouple ({mode})",
                     "value": r, "vs_reference": r / loop,
                     "reference": "decouple (loop)", "target": ">= 3x" if mode != "loop" and arch == "decouple" else ""})
    assert all(r > 0 for r in rates.values())


@pytest.mark.parametrize("device", DEVICES)
def test_inference_time(rows, scale, device):
    width, _, _, size, repeats = SETTINGS[scale]
    torch.manual_seed(0)
    dec = OperatorNet("decouple", width=width).to(device)
    single = OperatorNet("single", width=width).to(device)
    t_single = _infer_time(single, device, size, repeats, None)
    t = time.perf_counter()
    fixed = dec.fixed_weights(torch.tensor([0.5]))  # once per (operator, γ)
    sync(device)
    t_weights = time.perf_counter() - t
    t_dec = _infer_time(dec, device, size, repeats, fixed)
    rows += [
        {"device": device, "measure": f"inference s/image {size}x{size}", "model": "single",
         "value": t_single, "vs_reference": 1.0, "reference": "single", "target": ""},
        {"device": device, "measure": f"inference s/image {size}x{size}",
         "model": "decouple (fixed weights)", "value": t_dec, "vs_reference": t_dec / t_single,
         "reference": "single", "target": "<= 1.1x"},
        {"device": device, "measure": "weight generation s (once per γ)", "model": "decouple",
         "value": t_weights, "vs_reference": float("nan"), "reference": "", "target": ""},
    ]
    assert t_dec > 0
