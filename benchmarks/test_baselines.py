"""The other methods of TPAMI 2019 Table 6 (BGU, DBL/HDRNet): their speed.

Their scores are in ``table6_baselines`` (:mod:`benchmarks.tables.table6`, BGU's fit per image
there too), written by ``benchmarks/test_joint_tables.py``. Here:

- ``baseline_speed``: inference ms per image (1024² at small/paper scale) for each method on this
  CPU (and CUDA when present), with BGU's time split into downsampling, the operator at low
  resolution, fitting and slicing, and the operator itself at full resolution for reference.
"""
from __future__ import annotations

import time

import numpy as np
import pandas as pd
import pytest
import torch

import operators
from model.bgu import bgu
from model.checkpoint import build_model
from model.data import prepare
from model.presets import get_preset

from ._bench import bench_image, sync
from ._experiments import middle_gamma
from ._report import collect_rows, provenance, write_table
from .tables.table6 import BGU_FACTOR

OPS = operators.NAMES
# speed: image side and repeats per scale
SPEED = {"smoke": (256, 1), "small": (1024, 3), "paper": (1024, 5)}
DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


# ----------------------------------------------------------------------------- speed
def _best(fn, repeats):
    fn()  # warm-up (allocations, caches, kernel choice)
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


@pytest.fixture(scope="module")
def speed_rows(experiment, results_dir):
    yield from collect_rows(lambda df, started: _write_speed(df, started, experiment.scale,
                                                             results_dir))


def _write_speed(df: pd.DataFrame, started: float, scale: str, results_dir) -> None:
    size, repeats = SPEED[scale]
    preset = get_preset(scale)
    first = [c for c in ("method", "operator", "device", "preset", "setting", "ms") if c in df]
    write_table(df[first + [c for c in df if c not in first]], "baseline_speed", results_dir,
                provenance(scale, started, size=f"{size}x{size}", repeats=repeats,
                           width=preset.width, hdrnet_lowres=preset.hdrnet_lowres,
                           bgu_factor=BGU_FACTOR, torch=torch.__version__,
                           threads=torch.get_num_threads(),
                           timing="best of the repeats, after one warm-up call; inference only"),
                caption="Inference time per image of each method (ms); BGU split into "
                        "downsampling, the operator at low resolution, fit and slice; the "
                        "operator itself at full resolution for reference")


@pytest.mark.parametrize("op", OPS)
def test_bgu_and_operator_speed(op, experiment, speed_rows):
    size, repeats = SPEED[experiment.scale]
    img = bench_image(size)
    g = middle_gamma(op)
    best = {}
    for _ in range(repeats + 1):
        t = {}
        bgu(img, op, g, factor=BGU_FACTOR, timings=t)
        for k, v in t.items():
            best[k] = min(best.get(k, np.inf), v)
    total = sum(best.values())
    full = _best(lambda: operators.apply(op, img, g), max(1, repeats - 2))
    speed_rows.append({"method": "bgu", "operator": op, "device": "cpu", "ms": 1e3 * total,
                       **{f"{k}_ms": 1e3 * v for k, v in best.items()}})
    speed_rows.append({"method": "operator (full resolution)", "operator": op, "device": "cpu",
                       "ms": 1e3 * full})
    assert total > 0 and full > 0


def _speed_presets(scale: str) -> list[str]:
    """The scale's own preset, and at small scale also the paper's (width 64, HDRNet at 256²)."""
    return [scale] + (["paper"] if scale == "small" else [])


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("method", ["hdrnet", "concat", "single", "decouple"])
def test_network_speed(method, device, experiment, speed_rows):
    """Inference only; the weights do not change the cost, so the architecture is built untrained
    with the preset's settings (decouple: its weights generated from γ inside the timed call)."""
    size, repeats = SPEED[experiment.scale]
    x = prepare(torch.from_numpy(bench_image(size).transpose(2, 0, 1).copy())[None]).to(device)
    for name in _speed_presets(experiment.scale):
        preset = get_preset(name)
        config = {"arch": method, "ops": ["l0"], "width": preset.width,
                  "dilations": list(preset.dilations), "residual": preset.residual,
                  "lowres": preset.hdrnet_lowres}
        torch.manual_seed(0)
        net, coder = build_model(config)
        net.to(device).eval()
        code = coder(["l0"], [0.02]).to(device) if net.needs_code else None

        @torch.no_grad()
        def run():
            fixed = net.fixed_weights(None if code is None else code[0])
            net(x, code, fixed=fixed)
            sync(device)

        t = _best(run, repeats)
        speed_rows.append({"method": method, "operator": "any", "device": device,
                           "preset": name, "ms": 1e3 * t,
                           "setting": f"low-res {preset.hdrnet_lowres}²" if method == "hdrnet"
                           else f"width {preset.width}"})
        assert t > 0
