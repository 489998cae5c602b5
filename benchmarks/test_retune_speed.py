"""Interactive re-tuning speed, like TPAMI 2019 Table 5: ms per image for the first render of an
image and for a re-tune (a new γ on the same image), per method of :mod:`model.registry`.

A re-tune goes through ``Predictor.retune``: the features before the method's first γ-dependent
layer are cached per image, so only the layers after it run again (the real-time model: the last
affine and the output conv; ``norm:19``: the last IN onwards; ``decouple``: everything). The
first render is ``retune`` on a new image (features and the rest). Networks are untrained (speed
does not depend on the weights), built at the scale's width. Writes ``retune_speed`` (CSV,
LaTeX, provenance); CPU, and a CUDA column when a GPU is present.
"""
from __future__ import annotations

import time

import numpy as np
import pytest
import torch

import model
from model import registry
from model.config import ModelConfig

from ._bench import sync
from ._report import collect_rows, provenance, write_table

# (width, dilations, sizes (w, h), repeats): the presets' widths (the real-time model is twice
# as wide inside); "paper" is TPAMI Table 5's setting
SETTINGS = {
    "smoke": (8, (2, 4), [(64, 48), (128, 96)], 1),
    "small": (16, (2, 4, 4, 8, 8, 16, 1), [(640, 480), (1280, 720), (1920, 1080)], 2),
    "paper": (64, (2, 4, 4, 8, 8, 16, 1), [(640, 480), (1280, 720), (1920, 1080)], 5),
}
# {last}: the last InstanceNorm layer (19 for the paper's 7 residual blocks)
METHODS = ["single", "decouple", "concat", "realtime", "norm:1", "norm:{last}", "norm:all",
           "conv:{last}", "conv-ch1:{last}", "conv-ch2:{last}", "cresmd", "adafm", "dni"]
DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


def predictor(arch: str, width: int, dilations, device: str) -> model.Predictor:
    """An untrained model of ``arch`` for l0, loaded as a trained one is."""
    torch.manual_seed(0)
    cfg = ModelConfig(arch=arch, ops=("l0",), width=width, dilations=dilations, residual=True,
                      gamma=0.02 if registry.get(arch).per_gamma else None,
                      trained_range={"l0": [0.002, 0.2]}, preset={"iterations": 1})
    net, _ = registry.build_model(cfg)
    return model.Predictor({"config": cfg.to_dict(), "model": net.state_dict(), "iteration": 1},
                           device)


def _best(fn, repeats: int, device: str) -> float:
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        sync(device)
        times.append(time.perf_counter() - t)
    return min(times)


@pytest.fixture(scope="module")
def rows(scale, results_dir):
    width, dilations, sizes, repeats = SETTINGS[scale]
    yield from collect_rows(lambda df, started: write_table(
        df, "retune_speed", results_dir,
        provenance(scale, started, width=width, dilations=list(dilations), repeats=repeats,
                   torch=torch.__version__, threads=torch.get_num_threads()),
        caption="Interactive re-tuning: ms per image for the first render and for a new γ on "
                "the same image (features before the first γ-dependent layer cached)"))


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("arch", METHODS)
def test_retune_costs_only_what_depends_on_gamma(rows, scale, device, arch):
    width, dilations, sizes, repeats = SETTINGS[scale]
    arch = arch.format(last=5 + 2 * len(dilations))
    p = predictor(arch, width, dilations, device)
    per_gamma = registry.get(arch).per_gamma
    gammas = [0.02] * 2 if per_gamma else [0.01, 0.05]
    rng = np.random.default_rng(0)
    for w, h in sizes:
        images = [rng.integers(0, 256, (h, w, 3), dtype=np.uint8) for _ in range(repeats + 1)]
        p.retune(images[-1], "l0", gammas[0])  # warm-up
        it = iter(images)
        first = _best(lambda: p.retune(next(it), "l0", gammas[0]), repeats, device)
        img = images[0]
        p.retune(img, "l0", gammas[0])
        k = iter(range(10 ** 6))
        retune = _best(lambda: p.retune(img, "l0", gammas[(next(k) + 1) % 2]), repeats, device)
        np.testing.assert_array_equal(p.retune(img, "l0", gammas[1]), p.apply(img, "l0", gammas[1]))
        rows.append({"device": device, "method": arch, "size": f"{w}x{h}",
                     "first_ms": 1000 * first, "retune_ms": 1000 * retune,
                     "speedup": first / retune,
                     "retune_runs": registry.get(arch).retune})
        assert retune > 0
